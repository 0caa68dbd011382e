"""Reference: write new keys and values after the valid prefix."""

import numpy as np


def kv_cache_append(cache_k: np.ndarray, cache_v: np.ndarray, length: int,
                    k_new: np.ndarray, v_new: np.ndarray) -> int:
    n = k_new.shape[0]
    if length + n > cache_k.shape[0]:
        raise ValueError(f"{n} new positions do not fit: {length} of {cache_k.shape[0]} used")
    cache_k[length : length + n] = k_new
    cache_v[length : length + n] = v_new
    return length + n
