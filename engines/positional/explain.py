"""Positional encodings taken apart for the lessons: order invisible to attention, and each encoding as curves.

Each function returns the numbers a lab draws, computed with this package's
encodings and the attention engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench_engines.attention import attention
from workbench_engines.positional import alibi_bias, rope, sinusoidal


@dataclass(frozen=True)
class ShuffleOutputs:
    """Self-attention outputs of a few tokens in their order and shuffled."""

    original: np.ndarray
    """(n, C) the output of each token in the original order."""
    shuffled: np.ndarray
    """(n, C) the output at each slot of the shuffled order."""
    order: list[int]
    """order[slot] = the original index of the token at that slot."""

    @property
    def same(self) -> list[bool]:
        """Per slot: does the token there have the output it had unshuffled (only moved)?"""
        return [bool(np.allclose(self.original[i], self.shuffled[slot], atol=1e-5)) for slot, i in enumerate(self.order)]


def shuffle_outputs(words: list[str], order: list[int], *, with_positions: bool, dim: int = 16,
                    seed: int = 7) -> ShuffleOutputs:
    """Self-attention (q = k = v = x) over random word embeddings, in order and shuffled.

    Without positions attention is permutation-equivariant: shuffling the
    inputs only shuffles the outputs. Adding sinusoidal encodings (×2, so they
    matter beside the unit-variance embeddings) breaks that.
    """
    if sorted(order) != list(range(len(words))):
        raise ValueError(f"order must be a permutation of 0..{len(words) - 1}, got {order}")
    rng = np.random.default_rng(seed)
    table = {w: rng.standard_normal(dim).astype(np.float32) for w in dict.fromkeys(words)}

    def outputs(sequence: list[int]) -> np.ndarray:
        x = np.stack([table[words[i]] for i in sequence])  # (T, C)
        if with_positions:
            x = x + sinusoidal(len(sequence), dim) * 2
        h = x[None, None]  # (1, 1, T, C)
        return attention(h, h, h)[0, 0]

    return ShuffleOutputs(outputs(list(range(len(words)))), outputs(order), list(order))


@dataclass(frozen=True)
class Curve:
    label: str
    x: list[float]
    y: list[float]


@dataclass(frozen=True)
class Curves:
    """What one positional plot draws, and the sentence that explains it."""

    title: str
    xlabel: str
    curves: list[Curve]
    note: str


ENCODING_PLOTS = ("sinusoidal", "similarity", "rope_scaling", "alibi")


def encoding_curves(kind: str, n: int, knob: int) -> Curves:
    """The curves of one plot of ``n`` positions; ``knob`` is the plot's adjustable quantity (see each title).

    - sinusoidal: three columns of the encoding, the middle one at dimension 2·knob;
    - similarity: PE[0]·PE[d] of the sinusoidal encoding and RoPE's q·k for one
      vector against distance, with RoPE's base divided by knob;
    - rope_scaling: q·k against position up to n·knob with no scaling, linear
      (position interpolation) and NTK scaling by a factor of knob;
    - alibi: ALiBi's bias against distance for the first, the knob-th and the last of 8 heads.
    """
    if kind not in ENCODING_PLOTS:
        raise ValueError(f"unknown plot {kind!r}; choose one of {', '.join(ENCODING_PLOTS)}")
    if knob < 1:
        raise ValueError(f"knob must be at least 1, got {knob}")
    positions = list(range(n))
    if kind == "sinusoidal":
        dim = 64
        pe = sinusoidal(n, dim)
        index = min(2 * knob, dim - 2)
        curves = [Curve(f"dim {c}", positions, pe[:, c].tolist()) for c in sorted({0, index, dim - 2})]
        return Curves("sinusoidal encoding: fast and slow waves", "position", curves,
                      f"wavelength of dim {index}: {2 * np.pi * 10000 ** (index / dim):.1f} positions "
                      f"(+/- moves the middle curve)")
    if kind == "similarity":
        dim = 64
        v = np.random.default_rng(0).standard_normal(dim)
        sin = sinusoidal(n, dim).astype(np.float64)
        base = 10000.0 / knob
        r = rope(np.tile(v, (n, 1)), base=base)
        return Curves(f"similarity against distance d (RoPE base {base:g})", "distance", [
            Curve("sinusoidal PE[0]·PE[d]", positions, (sin @ sin[0] / dim).tolist()),
            Curve("RoPE q·k, same vector", positions, (r @ r[0] / (v @ v)).tolist()),
        ], "Both decay (unevenly) with distance; RoPE's depends only on the distance by construction. "
           "+ halves RoPE's base, - doubles it (a smaller base rotates faster and decays sooner).")
    if kind == "rope_scaling":
        dim, factor = 64, float(knob)
        scaled = np.arange(n) * factor
        ones = np.ones((n, dim))
        curves = []
        for label, kwargs in (("no scaling", {}), (f"linear ×{factor:g}", {"scaling": "linear", "factor": factor}),
                              (f"NTK ×{factor:g}", {"scaling": "ntk", "factor": factor})):
            r = rope(ones, positions=scaled, **kwargs)
            curves.append(Curve(label, scaled.tolist(), (r @ r[0] / dim).tolist()))
        return Curves(f"q·k against position, scaling factor {factor:g}", "position", curves,
                      "Linear scaling squeezes positions back into the trained range; NTK stretches only the slow "
                      "frequencies. +/- doubles or halves the factor.")
    heads = 8
    bias = alibi_bias(heads, n)
    curves = [Curve(f"head {h + 1}", positions, bias[h, n - 1, ::-1].tolist())
              for h in sorted({0, min(knob, heads) - 1, heads - 1})]
    return Curves("ALiBi: the bias on the score against distance, per head", "distance", curves,
                  "Each head penalises distance with its own slope: steep heads look local, shallow ones far. "
                  "+/- picks the middle head.")
