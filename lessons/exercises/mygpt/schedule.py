"""Exercise: Warm-up and cosine decay.

Track: Build a GPT · lesson: gpt-optimizer-and-loop

lr_at(step, max_lr, warmup, total, min_lr_ratio=0.1): the learning rate
for step (0, 1, ..., total - 1). A linear warm-up over the first warmup
steps, then half a cosine from max_lr down to the floor
max_lr * min_lr_ratio at step total, and the floor after that:

    step < warmup:  lr = max_lr * (step + 1) / warmup
    otherwise:      p = min(1, (step - warmup) / max(1, total - warmup))
                    lr = floor + (max_lr - floor) * (1 + cos(π p)) / 2

Step 0 already gets max_lr / warmup, never 0, and step warmup gets
max_lr exactly. Imports nothing from mygpt.
"""

import math


def lr_at(step, max_lr, warmup, total, min_lr_ratio=0.1):
    raise NotImplementedError("your code here")
