"""Decode attention read straight from the paged pool, through native/src/wb_paged.c.

A :class:`PagedDecoder` is bound to one cache's pool: shapes, dtype and
contiguity are checked once when it is made, the block table when a forward
pass starts (ids inside the pool), and each layer's call then hands raw
pointers of tensors whose layout is already known, so the per-token cost is
one C call.
"""

from __future__ import annotations

import numbers

import numpy as np

from workbench_engines.nativelib import check_status, check_threads, native


def _integer(value: object, name: str) -> int:
    """value as an int; TypeError for a float, bool or anything else that would be truncated on the way to C."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _block_ids(blocks) -> np.ndarray:
    """The block table as int64; TypeError for floats (1.7 would silently read block 1) or bools."""
    table = np.asarray(blocks.numpy() if hasattr(blocks, "numpy") else blocks)
    if table.dtype == bool or not (np.issubdtype(table.dtype, np.integer) or (table.size == 0 and table.ndim == 1)):
        raise TypeError(f"block ids must be integers, got {table.dtype}")
    if table.ndim != 1:
        raise ValueError(f"the block table must be one row of ids, got shape {table.shape}")
    return np.ascontiguousarray(table, dtype=np.int64)


class PagedDecoder:
    def __init__(self, kv, heads: int, block_size: int, threads: int = 1) -> None:
        """kv: the cache's pool [layers, 2, kv_heads, num_blocks, block_size · head_dim], float32, contiguous."""
        import torch

        if kv.dtype != torch.float32 or kv.device.type != "cpu" or not kv.is_contiguous() or kv.ndim != 5:
            raise ValueError("the pool must be a contiguous float32 CPU tensor [layers, 2, kv_heads, blocks, values]")
        heads, block_size = _integer(heads, "heads"), _integer(block_size, "block_size")
        self.layers, _, self.kv_heads, self.num_blocks, values = kv.shape
        if heads < 1 or block_size < 1:
            raise ValueError(f"heads and block_size must be positive, got {heads} and {block_size}")
        if values % block_size or heads % self.kv_heads:
            raise ValueError(f"block values {values} vs block_size {block_size}, {heads} heads vs {self.kv_heads}")
        self.heads, self.block_size, self.head_dim = heads, block_size, values // block_size
        self._q_shape = torch.Size((heads, self.head_dim))
        self._kv_shape = torch.Size((self.kv_heads, self.head_dim))
        self.threads = check_threads(threads)
        module = native()
        self.ffi, self.lib = module.ffi, module.lib
        self.kv = kv
        self.layer_stride = kv[0].numel()
        self.table = np.zeros(0, dtype=np.int64)
        self._blocks = None

    def set_table(self, blocks) -> None:
        """The block table for the coming forward pass; ids are checked here, once per table."""
        if blocks is self._blocks:
            return  # the same (unchanged) table as the last pass: already checked
        self._blocks = blocks
        table = _block_ids(blocks)
        if table.size and (table.min() < 0 or table.max() >= self.num_blocks):
            raise ValueError(f"block ids must be in [0, {self.num_blocks})")
        self.table = table
        self._table_ptr = self.ffi.from_buffer("int64_t[]", table)

    def attend(self, layer: int, q, length: int, scale: float, new_kv=None, slot: tuple[int, int] = (0, 0)):
        """out [heads, head_dim] for the query q [heads, head_dim] (contiguous float32) of one new token.

        new_kv = (k, v), each a contiguous float32 [kv_heads, head_dim], is first written at
        slot = (block, offset): the decode step's cache write in the same C call.
        """
        import torch

        if q.shape != self._q_shape or q.dtype != torch.float32 or not q.is_contiguous():
            raise ValueError(f"q must be a contiguous float32 [{self.heads}, {self.head_dim}] tensor")
        layer, length = _integer(layer, "layer"), _integer(length, "length")
        slot = (_integer(slot[0], "slot block"), _integer(slot[1], "slot offset"))
        if not 0 <= layer < self.layers or not 1 <= length <= len(self.table) * self.block_size:
            raise ValueError(f"layer {layer} or length {length} outside the pool and table")
        ffi = self.ffi
        k_ptr = v_ptr = ffi.NULL
        if new_kv is not None:
            for t in new_kv:
                if t.shape != self._kv_shape or t.dtype != torch.float32 or not t.is_contiguous():
                    raise ValueError(f"new k and v must be contiguous float32 [{self.kv_heads}, {self.head_dim}]")
            k_ptr, v_ptr = (ffi.cast("float *", t.data_ptr()) for t in new_kv)
        out = torch.empty(self._q_shape, dtype=torch.float32)
        pool = ffi.cast("float *", self.kv.data_ptr()) + layer * self.layer_stride
        status = self.lib.wb_paged_decode_f32(
            ffi.cast("float *", out.data_ptr()), ffi.cast("float *", q.data_ptr()), pool, self.heads, self.kv_heads,
            self.num_blocks, self.block_size, self.head_dim, self._table_ptr, len(self.table), int(length),
            float(scale), k_ptr, v_ptr, slot[0], slot[1], self.threads,
        )
        check_status("wb_paged_decode_f32", status)
        return out


def paged_decode_attention(q, pool_layer, blocks, length: int, scale: float, threads: int = 1):
    """One-off form: out [heads, d] for q [heads, d] over one layer's pool [2, kv_heads, blocks, block_size · d]
    (key blocks transposed, see native/include/wb_paged.h)."""
    if pool_layer.ndim != 4 or q.ndim != 2 or pool_layer.shape[3] % q.shape[1]:
        raise ValueError(f"q must be [heads, d] and the pool [2, kv_heads, blocks, block_size · d], got "
                         f"{tuple(q.shape)} and {tuple(pool_layer.shape)}")
    decoder = PagedDecoder(pool_layer.contiguous()[None], q.shape[0], pool_layer.shape[3] // q.shape[1], threads)
    decoder.set_table(blocks)
    return decoder.attend(0, q.contiguous(), length, scale)
