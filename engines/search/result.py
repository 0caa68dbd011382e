"""What every search returns: ids and their scores or distances, best first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SearchResult:
    """The k nearest database vectors of each query, best first.

    ids (Q, K) int64 are database row numbers; values (Q, K) float32 are inner
    products (descending) for metric "ip" or squared L2 distances (ascending)
    for "l2". Ties go to the lower id. An approximate index that reaches fewer
    than K vectors pads a row with id -1 (value -inf for "ip", inf for "l2").
    """

    ids: np.ndarray
    values: np.ndarray
    metric: str
