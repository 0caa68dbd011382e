"""Exercise: The training loop.

Track: Build a GPT · lesson: gpt-optimizer-and-loop

get_batch(data, batch, seq_len, rng): data, a 1-D integer array of token
ids. Draw the window starts with exactly one call,

    starts = rng.integers(0, len(data) - seq_len, size=batch)

and return x, y, each (batch, seq_len): x[b] = data[s:s + seq_len] and
y[b] = data[s + 1:s + seq_len + 1], the same window shifted by one, so
y holds each position's next token.

train_step(model, optimizer, x, y, lr, max_norm=1.0): zero the
gradients, compute model.loss(x, y), run backward, clip the gradients of
optimizer.params to max_norm, then optimizer.step(lr). Return
(loss, norm): the loss as a float and the norm clip_grad_norm returned.

train(model, optimizer, data, steps, batch, seq_len, max_lr, warmup, rng,
min_lr_ratio=0.1, max_norm=1.0, on_step=None): for step = 0..steps-1,

    lr = lr_at(step, max_lr, warmup, steps, min_lr_ratio)
    x, y = get_batch(data, batch, seq_len, rng)
    loss, norm = train_step(model, optimizer, x, y, lr, max_norm)

then call on_step(step, loss, lr, norm) when it is not None. Return the
list of the steps' losses. Imports clip_grad_norm from mygpt.adamw and
lr_at from mygpt.schedule; the model (mygpt.model.GPT) and optimizer
(mygpt.adamw.AdamW) come in as arguments.
"""

import numpy as np

from mygpt.adamw import clip_grad_norm
from mygpt.schedule import lr_at


def get_batch(data, batch, seq_len, rng):
    """batch windows of seq_len + 1 tokens at random starts: inputs and the same shifted by one."""
    raise NotImplementedError("your code here")


def train_step(model, optimizer, x, y, lr, max_norm=1.0):
    raise NotImplementedError("your code here")


def train(model, optimizer, data, steps, batch, seq_len, max_lr, warmup, rng, min_lr_ratio=0.1, max_norm=1.0,
          on_step=None):
    raise NotImplementedError("your code here")
