"""Softmax, log-softmax and logsumexp through torch on the CPU, for comparison.

torch is imported inside each call so that importing the engines stays cheap.
"""

from __future__ import annotations

import numpy as np


def _tensor(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x))


def softmax(x: np.ndarray) -> np.ndarray:
    """torch.softmax over the last axis."""
    import torch

    return torch.softmax(_tensor(x), dim=-1).numpy()


def log_softmax(x: np.ndarray) -> np.ndarray:
    """torch.log_softmax over the last axis."""
    import torch

    return torch.log_softmax(_tensor(x), dim=-1).numpy()


def logsumexp(x: np.ndarray) -> np.ndarray:
    """torch.logsumexp over the last axis."""
    import torch

    return torch.logsumexp(_tensor(x), dim=-1).numpy()
