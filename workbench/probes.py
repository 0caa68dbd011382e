"""Probes: values an engine computes at run time, so quiz answers never go stale.

A probe question names a probe id and its parameters; the answer is whatever
the engine returns for them today.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from workbench.params import Param, validate_params


@dataclass(frozen=True)
class ProbeSpec:
    id: str
    description: str
    params: dict[str, Param]
    compute: Callable[..., float]


def _probs(logits: list[float], temperature: float):
    import numpy as np

    from engines.softmax import with_temperature

    return with_temperature(np.asarray(logits, dtype=np.float64), temperature)


def _top_probability(logits: list[float], temperature: float) -> float:
    return float(_probs(logits, temperature).max())


def _probability_of(logits: list[float], index: int, temperature: float) -> float:
    if index >= len(logits):
        raise ValueError(f"index {index} is outside the {len(logits)} logits")
    return float(_probs(logits, temperature)[index])


def _entropy_bits(logits: list[float], temperature: float) -> float:
    from engines.softmax import entropy_bits

    return float(entropy_bits(_probs(logits, temperature)))


def _logsumexp(values: list[float]) -> float:
    import numpy as np

    from engines.softmax import logsumexp

    return float(logsumexp(np.asarray(values, dtype=np.float64)))


_LOGITS = Param("list[float]", help="the logits", min_len=1)
_TEMPERATURE = Param("float", default=1.0, min=1e-3, help="softmax temperature (> 0)")

PROBES: dict[str, ProbeSpec] = {
    spec.id: spec
    for spec in [
        ProbeSpec(
            "softmax.top_probability",
            "Largest probability of softmax(logits / temperature)",
            {"logits": _LOGITS, "temperature": _TEMPERATURE},
            _top_probability,
        ),
        ProbeSpec(
            "softmax.probability_of",
            "Probability of one index under softmax(logits / temperature)",
            {"logits": _LOGITS, "index": Param("int", min=0), "temperature": _TEMPERATURE},
            _probability_of,
        ),
        ProbeSpec(
            "softmax.entropy_bits",
            "Entropy in bits of softmax(logits / temperature)",
            {"logits": _LOGITS, "temperature": _TEMPERATURE},
            _entropy_bits,
        ),
        ProbeSpec(
            "softmax.logsumexp",
            "log(sum(exp(values))), computed stably",
            {"values": _LOGITS},
            _logsumexp,
        ),
    ]
}


def compute_probe(probe_id: str, params: dict[str, Any]) -> float:
    """Validate params for probe_id and return the engine's answer.

    Raises KeyError for an unknown probe and ParamError for bad parameters.
    """
    if probe_id not in PROBES:
        raise KeyError(f"unknown probe {probe_id!r}; known: {', '.join(sorted(PROBES))}")
    spec = PROBES[probe_id]
    return spec.compute(**validate_params(spec.params, params, f"probe {probe_id}"))
