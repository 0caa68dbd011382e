"""Exercise: append to a key/value cache.

Track: Decoding

cache_k, cache_v: preallocated (capacity, heads, d) arrays holding `length`
valid positions. Write k_new, v_new (each (n, heads, d)) at positions
length .. length + n - 1 in place, and return the new length. If they do not
fit, raise ValueError and leave the cache untouched.
"""

import numpy as np


def kv_cache_append(cache_k: np.ndarray, cache_v: np.ndarray, length: int,
                    k_new: np.ndarray, v_new: np.ndarray) -> int:
    return ...  # your code here
