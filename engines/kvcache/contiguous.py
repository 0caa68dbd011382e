"""A contiguous KV cache: one pre-reserved [layers, batch, kv_heads, max_len, head_dim] slab for K and one for V."""

from __future__ import annotations

import torch

from workbench_engines.kvcache.accounting import CacheFull, Memory, kv_shape_from


class ContiguousCache:
    """Every sequence owns max_len slots from the start, whether it fills them or not.

    That reservation is what makes this cache simple (a token's K/V sit at its
    position) and what wastes memory when most sequences end early.
    """

    def __init__(self, config, batch: int = 1, max_len: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        self.layers, self.kv_heads, self.head_dim = kv_shape_from(config)
        self.batch = batch
        self.max_len = max_len if max_len is not None else config.context
        if batch < 1 or self.max_len < 1:
            raise ValueError(f"batch and max_len must be positive, got {batch} and {self.max_len}")
        shape = (self.layers, batch, self.kv_heads, self.max_len, self.head_dim)
        self.k = torch.zeros(shape, dtype=dtype)
        self.v = torch.zeros(shape, dtype=dtype)
        self.length = 0

    def reserve(self, new: int, ids: torch.Tensor | None = None) -> None:
        if self.length + new > self.max_len:
            raise CacheFull(f"{self.length + new} tokens do not fit a cache reserved for {self.max_len}")

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.shape[2]
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def commit(self, new: int) -> None:
        self.length += new

    def fused_decode(self, batch: int, new: int) -> bool:
        """Never: attention reads this cache's slab through update()."""
        return False

    def truncate(self, length: int) -> None:
        """Forget every token from ``length`` on (speculative decoding's rollback)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate {self.length} tokens to {length}")
        self.length = length

    def reorder(self, index: torch.Tensor) -> None:
        """Make sequence i a copy of sequence index[i] (beam search keeps the surviving beams)."""
        self.k[:, :, :, : self.length] = self.k[:, index, :, : self.length]
        self.v[:, :, :, : self.length] = self.v[:, index, :, : self.length]

    def memory(self) -> Memory:
        per_token = 2 * self.layers * self.kv_heads * self.head_dim * self.k.element_size()
        reserved = self.batch * self.max_len * per_token
        stored = self.batch * self.length * per_token
        return Memory(reserved=reserved, allocated=reserved, stored=stored)
