"""The learner's GPT as the engines' GPT: the same architecture, parameters renamed and transposed.

The track's model (``mygpt.model.GPT``) is built to equal
:class:`workbench_engines.models.gpt.GPT` with one key/value head per query
head: a tied embedding, pre-norm RMSNorm blocks with RoPE attention and a
SwiGLU feed-forward, a final RMSNorm. Its linear layers hold ``x @ W`` weights
(in, out), torch's hold (out, in), and its keys and values are two layers where
the engine has one. :func:`engine_state` maps one onto the other, so the
parent can load what the learner trained into the engine and measure it with
code the learner's cannot touch, and so the checks can compute every expected
answer with the engine loaded with the case's weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

@dataclass(frozen=True)
class Shape:
    """The sizes the track's GPT takes (its constructor's arguments)."""

    vocab_size: int
    context: int
    d_model: int
    n_layers: int
    n_heads: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def hidden(self) -> int:
        """SwiGLU's width, as both models compute it: 8/3·C rounded up to a multiple of 32."""
        return 32 * math.ceil(8 * self.d_model / 3 / 32)

    def engine_config(self):
        from workbench_engines.models.gpt import GPTConfig

        return GPTConfig(vocab_size=self.vocab_size, context=self.context, d_model=self.d_model,
                         n_layers=self.n_layers, n_heads=self.n_heads)

    def learner_names(self) -> dict[str, tuple[int, ...]]:
        """Every parameter the learner's GPT must have, with its shape (mygpt's layout)."""
        c, h, v = self.d_model, self.hidden, self.vocab_size
        names = {"embed.weight": (v, c)}
        for i in range(self.n_layers):
            p = f"blocks.{i}."
            names |= {p + "attn_norm.weight": (c,), p + "attn.q.weight": (c, c), p + "attn.k.weight": (c, c),
                      p + "attn.v.weight": (c, c), p + "attn.out.weight": (c, c), p + "ffn_norm.weight": (c,),
                      p + "ffn.gate.weight": (c, h), p + "ffn.up.weight": (c, h), p + "ffn.down.weight": (h, c)}
        return names | {"norm.weight": (c,)}


class LayoutError(ValueError):
    """The learner's parameters are not the track's GPT (a name missing or extra, a shape off)."""


def check_layout(shape: Shape, params: dict[str, np.ndarray]) -> None:
    """Raise LayoutError naming the first difference between params and the track's layout."""
    expected = shape.learner_names()
    missing = [n for n in expected if n not in params]
    extra = [n for n in params if n not in expected]
    if missing or extra:
        raise LayoutError("the model's named_parameters() differ from the track's GPT: "
                          + "; ".join(p for p in (f"missing {missing[:3]}" if missing else "",
                                                  f"unexpected {extra[:3]}" if extra else "") if p))
    for name, want in expected.items():
        got = np.shape(params[name])
        if got != want:
            raise LayoutError(f"{name} has shape {got}, the track's GPT has {want}")


def to_engine(params: dict[str, np.ndarray], d_model: int) -> dict[str, np.ndarray]:
    """Any part of the track's GPT (a whole model, a block, an attention layer) in the engine's names and layouts.

    Matrices are transposed (x @ W against torch's x Wᵀ), except the embedding,
    which both hold as (V, C); a k.weight and v.weight beside each other become
    the engine's one kv.weight, keys first.
    """
    state: dict[str, np.ndarray] = {}
    for name, value in params.items():
        prefix, _, leaf = name.rpartition(".")
        head = prefix.rpartition(".")[0] + "." if "." in prefix else ""
        layer = prefix.rpartition(".")[2]
        if leaf == "weight" and layer == "k" and f"{head}v.weight" in params:
            state[f"{head}kv.weight"] = np.concatenate([value.T, params[f"{head}v.weight"].T])
        elif leaf == "weight" and layer == "v" and f"{head}k.weight" in params:
            continue
        elif np.ndim(value) == 2 and name != "embed.weight":
            state[name] = np.ascontiguousarray(np.asarray(value).T)
        else:
            state[name] = np.asarray(value)
    return state


def from_engine(state: dict[str, np.ndarray], d_model: int) -> dict[str, np.ndarray]:
    """The inverse of to_engine: the engine's names and layouts as the track's."""
    params: dict[str, np.ndarray] = {}
    for name, value in state.items():
        value = np.asarray(value)
        if name.endswith("kv.weight"):
            head = name[: -len("kv.weight")]
            params[f"{head}k.weight"] = np.ascontiguousarray(value[:d_model].T)
            params[f"{head}v.weight"] = np.ascontiguousarray(value[d_model:].T)
        elif value.ndim == 2 and name != "embed.weight":
            params[name] = np.ascontiguousarray(value.T)
        else:
            params[name] = value.copy()
    return params


def engine_state(shape: Shape, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The engine GPT's state dict holding params (the track's names); LayoutError if they do not fit."""
    check_layout(shape, params)
    return to_engine(params, shape.d_model)


def learner_state(shape: Shape, engine: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The track's names and layouts for an engine GPT's state dict."""
    params = from_engine(engine, shape.d_model)
    check_layout(shape, params)
    return params


def load_engine(shape: Shape, params: dict[str, np.ndarray], dtype=None):
    """An engine GPT (torch, eval mode) holding the learner's parameters, in dtype (default: theirs)."""
    import torch

    from workbench_engines.models.gpt import GPT

    state = engine_state(shape, params)
    model = GPT(shape.engine_config())
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    if dtype is not None:
        model = model.to(dtype)
        tensors = {k: t.to(dtype) for k, t in tensors.items()}
    else:
        model = model.to(next(iter(tensors.values())).dtype)
    model.load_state_dict(tensors)
    return model.eval()
