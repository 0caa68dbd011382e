"""Reference: choosing the next token, and generating text one token at a time."""

import numpy as np


def sample_next(logits, temperature, top_k, u):
    """The next token id from logits (V,): argmax at temperature 0; else keep the top_k largest (all if None),
    softmax(logits / temperature), and return the first index whose cumulative probability exceeds u."""
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < len(z):
        kth = np.sort(z)[-top_k]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    cdf = np.cumsum(p / p.sum())
    return int(min(np.searchsorted(cdf, u, side="right"), len(z) - 1))


def generate(model, ids, n, temperature=1.0, top_k=None, rng=None):
    """n new token ids after the prompt ids (a list), each from the model's last logits and one rng.random()."""
    rng = rng if rng is not None else np.random.default_rng()
    ids = list(ids)
    new = []
    for _ in range(n):
        context = np.asarray([ids[-model.context:]])
        logits = model(context).data[0, -1]
        token = sample_next(logits, temperature, top_k, rng.random())
        ids.append(token)
        new.append(token)
    return new
