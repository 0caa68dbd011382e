"""Reference: top-k experts per token, softmax over the chosen logits."""

import numpy as np


def moe_router(router_logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    experts = np.argsort(-router_logits, axis=-1, kind="stable")[:, :k]
    chosen = np.take_along_axis(router_logits, experts, axis=-1)
    weights = np.exp(chosen - chosen[:, :1])
    return weights / weights.sum(axis=-1, keepdims=True), experts
