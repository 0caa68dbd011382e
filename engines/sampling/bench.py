"""Cases for ``workbench bench sampling``: top-p and top-k over LLM-sized vocabularies.

The native kernels bucket probabilities instead of sorting the vocabulary;
torch and NumPy sort. One row is one decoding step for one sequence.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from workbench_engines import sampling
from workbench_engines.backends import available
from workbench_engines.nativelib import default_threads
from workbench_engines.profiling.bench import Case, Contender, torch_threads


def _same_kept(expected: np.ndarray, got: np.ndarray) -> str | None:
    kept_e, kept_g = np.isfinite(expected), np.isfinite(got)
    if kept_e.shape != kept_g.shape:
        return f"shape {got.shape} != {expected.shape}"
    differ = int((kept_e != kept_g).sum())
    # Sort-based float32 implementations can end the nucleus a token or two
    # away from the float64 definition, where the cumulative sum meets p.
    allowed = max(2, int(0.01 * kept_e.sum()))
    return None if differ <= allowed else f"{differ} tokens kept differently"


def cases(quick: bool = False) -> list[Case]:
    rng = np.random.default_rng(0)
    vocab = 1000 if quick else 100_000
    threads = sorted({1, default_threads()})
    result = []
    for rows in (1, 64):
        x = (rng.standard_normal((rows, vocab)) * 3).astype(np.float32)
        for name, fn, kwargs in (("top-p 0.9", sampling.top_p, {"p": 0.9}), ("top-k 50", sampling.top_k, {"k": 50})):
            contenders = [Contender("numpy", partial(fn, x, backend="reference", **kwargs), "reference")]
            setup, teardown = torch_threads(1)
            contenders.append(Contender("torch 1T", partial(fn, x, backend="torch", **kwargs), "torch", setup, teardown))
            if available("native"):
                for n in threads if rows > 1 else [1]:
                    contenders.append(Contender(f"native {n}T", partial(fn, x, backend="native", threads=n, **kwargs),
                                                "native"))
            result.append(Case(f"{name}, {rows}×{vocab:,}", contenders, _same_kept, "numpy", ("torch 1T", "numpy"),
                               bytes_moved=x.nbytes * 2))
    return result
