"""Exercise: a top-k mixture-of-experts router.

Track: Mixture of experts

router_logits: (tokens, experts). For each token choose the k experts with
the largest logits (on ties the lower index), in descending order of logit,
and weight them by a softmax over just those k logits (Shazeer et al., 2017;
Mixtral renormalises the same way). Return (weights (tokens, k) float,
experts (tokens, k) int).
"""

import numpy as np


def moe_router(router_logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    return ...  # your code here
