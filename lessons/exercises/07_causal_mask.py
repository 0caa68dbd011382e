"""Exercise: the causal mask.

Track: Attention

Return an (n, n) boolean array whose entry [i, j] is True when query position
i may attend to key position j, which in a decoder means j <= i.
causal_mask(3) == [[T, F, F], [T, T, F], [T, T, T]].
"""

import numpy as np


def causal_mask(n: int) -> np.ndarray:
    return ...  # your code here
