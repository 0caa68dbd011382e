"""Decode attention read straight from the paged pool, through native/src/wb_paged.c.

A :class:`PagedDecoder` is bound to one cache's pool: shapes, dtype and
contiguity are checked once when it is made, the block table when a forward
pass starts (ids inside the pool), and each layer's call then hands raw
pointers of tensors whose layout is already known, so the per-token cost is
one C call.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.arrays import require_int, require_int_array
from workbench_engines.nativelib import check_status, check_threads, native


class PagedDecoder:
    def __init__(self, kv, heads: int, block_size: int, threads: int = 1) -> None:
        """kv: the cache's pool [layers, 2, kv_heads, num_blocks, block_size · head_dim], float32, contiguous."""
        import torch

        if kv.dtype != torch.float32 or kv.device.type != "cpu" or not kv.is_contiguous() or kv.ndim != 5:
            raise ValueError("the pool must be a contiguous float32 CPU tensor [layers, 2, kv_heads, blocks, values]")
        heads, block_size = require_int(heads, "heads", low=1), require_int(block_size, "block_size", low=1)
        self.layers, _, self.kv_heads, self.num_blocks, values = kv.shape
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
        # Integers only: a float table would be truncated (1.7 read as block 1).
        table = require_int_array(blocks, "block ids", low=0, high=self.num_blocks - 1)
        if table.ndim != 1:
            raise ValueError(f"the block table must be one row of ids, got shape {table.shape}")
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
        layer = require_int(layer, "layer", low=0, high=self.layers - 1)
        length = require_int(length, "length", low=1, high=len(self.table) * self.block_size)
        slot = (require_int(slot[0], "slot block"), require_int(slot[1], "slot offset"))
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
            self.num_blocks, self.block_size, self.head_dim, self._table_ptr, len(self.table), length,
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
