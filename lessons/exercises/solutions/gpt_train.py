"""Reference: batches, one training step, and the loop."""

import numpy as np

from mygpt.adamw import clip_grad_norm
from mygpt.schedule import lr_at


def get_batch(data, batch, seq_len, rng):
    """batch windows of seq_len + 1 tokens at random starts: inputs and the same shifted by one."""
    starts = rng.integers(0, len(data) - seq_len, size=batch)
    x = np.stack([data[s:s + seq_len] for s in starts])
    y = np.stack([data[s + 1:s + seq_len + 1] for s in starts])
    return x, y


def train_step(model, optimizer, x, y, lr, max_norm=1.0):
    optimizer.zero_grad()
    loss = model.loss(x, y)
    loss.backward()
    norm = clip_grad_norm(optimizer.params, max_norm)
    optimizer.step(lr)
    return float(loss.data), norm


def train(model, optimizer, data, steps, batch, seq_len, max_lr, warmup, rng, min_lr_ratio=0.1, max_norm=1.0,
          on_step=None):
    losses = []
    for step in range(steps):
        lr = lr_at(step, max_lr, warmup, steps, min_lr_ratio)
        x, y = get_batch(data, batch, seq_len, rng)
        loss, norm = train_step(model, optimizer, x, y, lr, max_norm)
        losses.append(loss)
        if on_step is not None:
            on_step(step, loss, lr, norm)
    return losses
