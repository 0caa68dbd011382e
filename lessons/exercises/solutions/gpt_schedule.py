"""Reference: linear warm-up, then half a cosine down to a floor."""

import math


def lr_at(step, max_lr, warmup, total, min_lr_ratio=0.1):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = max_lr * min_lr_ratio
    return floor + (max_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
