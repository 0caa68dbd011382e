"""Exercise: Sampling from your model.

Track: Build a GPT · lesson: gpt-sampling

sample_next(logits, temperature, top_k, u): logits, a float array (V,);
u, a number in [0, 1). At temperature 0 return int(argmax(logits)).
Otherwise, in float64:

    z = logits / temperature
    if top_k is given: keep z >= the top_k-th largest z, the rest -inf
    p = softmax(z),   cdf = cumsum(p)
    return the first index whose cdf exceeds u:
        min(np.searchsorted(cdf, u, side="right"), V - 1)

as an int. The cap guards against the last cdf entry rounding below u.
Ties at the top_k-th value are all kept; top_k None, or top_k >= V,
keeps every token (the checks use both).

generate(model, ids, n, temperature=1.0, top_k=None, rng=None): ids, the
prompt as a list of token ids; rng, np.random.default_rng() when None.
Produce n new tokens one at a time: run the model on the last
model.context ids as a (1, T) array, take the logits of the last
position (V,), and pick with sample_next(..., rng.random()). Call
rng.random() exactly once per new token, at temperature 0 too, and feed
each new token back in. Return the list of the n new ids (without the
prompt). No mygpt import is needed: the model (mygpt.model.GPT) comes in
as an argument.
"""

import numpy as np


def sample_next(logits, temperature, top_k, u):
    """The next token id from logits (V,): argmax at temperature 0; else keep the top_k largest (all if None),
    softmax(logits / temperature), and return the first index whose cumulative probability exceeds u."""
    raise NotImplementedError("your code here")


def generate(model, ids, n, temperature=1.0, top_k=None, rng=None):
    """n new token ids after the prompt ids (a list), each from the model's last logits and one rng.random()."""
    raise NotImplementedError("your code here")
