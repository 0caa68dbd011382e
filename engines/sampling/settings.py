"""One decoding step's knobs in one place: penalties, then temperature with top-k, top-p and min-p, then a draw.

The order is the one most inference servers use: penalties change the logits,
the filters cut the tail, and what is left is renormalised by a softmax at the
temperature. Temperature 0 means greedy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench_engines import sampling
from workbench_engines.errors import EngineError
from workbench_engines.sampling import reference


@dataclass(frozen=True)
class Sampler:
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    backend: str = "reference"
    """Backend of the top-k / top-p filters ("native" selects without a full sort)."""

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise EngineError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if self.top_k is not None and (isinstance(self.top_k, bool) or self.top_k < 1):
            raise EngineError(f"top_k must be a positive integer, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise EngineError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.min_p is not None and not 0 < self.min_p <= 1:
            raise EngineError(f"min_p must be in (0, 1], got {self.min_p}")
        if not self.repetition_penalty >= 1:
            raise EngineError(f"repetition_penalty must be >= 1, got {self.repetition_penalty}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def filtered(self, logits: np.ndarray, previous: list[int] | np.ndarray = ()) -> np.ndarray:
        """Logits after penalties and filters, removed tokens at -inf (the temperature is not applied)."""
        x = np.asarray(logits, dtype=np.float32)
        penalised = self.repetition_penalty != 1 or self.frequency_penalty or self.presence_penalty
        # The history grows every step: convert it only when a penalty reads it.
        previous = np.asarray(previous, dtype=np.int64) if penalised else np.empty(0, dtype=np.int64)
        if previous.size:
            if self.repetition_penalty != 1:
                x = sampling.repetition_penalty(x, previous, self.repetition_penalty)
            if self.frequency_penalty or self.presence_penalty:
                x = sampling.frequency_presence_penalty(x, previous, self.frequency_penalty,
                                                       self.presence_penalty).astype(np.float32)
        if self.greedy:
            return x
        if self.top_k is not None:
            x = sampling.top_k(x, self.top_k, backend=self.backend)
        if self.top_p is not None and self.top_p < 1:
            x = sampling.top_p(x, self.top_p, temperature=self.temperature, backend=self.backend)
        if self.min_p is not None:
            x = sampling.min_p(x, self.min_p, temperature=self.temperature)
        return x

    def distribution(self, logits: np.ndarray, previous: list[int] | np.ndarray = ()) -> np.ndarray:
        """The probabilities the next token is drawn from (one-hot when greedy)."""
        x = self.filtered(logits, previous)
        if self.greedy:
            probs = np.zeros(x.shape, dtype=np.float64)
            np.put_along_axis(probs, np.argmax(x, axis=-1)[..., None], 1.0, axis=-1)
            return probs
        return reference.softmax(x, self.temperature)

    def choose(self, logits: np.ndarray, previous: list[int] | np.ndarray, rng: np.random.Generator) -> int:
        """The next token of one sequence."""
        x = self.filtered(logits, previous)
        if self.greedy:
            return int(np.argmax(x))
        return int(reference.sample(x, rng, self.temperature))


GREEDY = Sampler(temperature=0.0)


def entropy_bits(probs: np.ndarray) -> float:
    """Shannon entropy H = −Σ p log2 p of one distribution, in bits."""
    p = np.asarray(probs, dtype=np.float64)
    p = p[p > 0]
    # H ≥ 0: a certain outcome gives −(1 · 0) = −0.0, and rounding a near-certain one can dip below zero.
    return max(0.0, float(-(p * np.log2(p)).sum()))
