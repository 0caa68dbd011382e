"""A paged KV cache (Kwon et al., 2023, "PagedAttention"): fixed-size blocks, block tables, sharing.

K and V live in one pool of blocks of ``block_size`` token slots. A sequence
owns a block table (its blocks in order), so its token at position p sits in
block table[p // block_size], slot p % block_size. Blocks are handed out from
a free list when a sequence grows, so at most the end of its last block is
unused. Blocks are reference-counted: ``fork`` shares every block of a
sequence, a full block whose token prefix was seen before is reused (prefix
caching), and writing into a shared block copies it first (copy-on-write).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from workbench_engines.backends import Choice
from workbench_engines.kvcache.accounting import CacheFull, Memory, kv_shape_from


class BlockPool:
    """Block ids, their reference counts, a free list in least-recently-freed order, and a prefix index.

    A freed block that holds a full, hashed prefix stays findable until the
    pool reuses it for something else, so a later request with the same
    prefix can still hit it.
    """

    def __init__(self, num_blocks: int) -> None:
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be positive, got {num_blocks}")
        self.num_blocks = num_blocks
        self.refs = [0] * num_blocks
        self.free: OrderedDict[int, None] = OrderedDict((b, None) for b in range(num_blocks))
        self.hash_of: dict[int, int] = {}
        self.by_hash: dict[int, int] = {}

    def allocate(self) -> int:
        if not self.free:
            raise CacheFull(f"all {self.num_blocks} blocks are in use")
        block, _ = self.free.popitem(last=False)
        self.forget(block)
        self.refs[block] = 1
        return block

    def share(self, block: int) -> None:
        if self.refs[block] == 0:
            del self.free[block]
        self.refs[block] += 1

    def release(self, block: int) -> None:
        if self.refs[block] <= 0:
            raise RuntimeError(f"block {block} released more often than taken")
        self.refs[block] -= 1
        if self.refs[block] == 0:
            self.free[block] = None

    def register(self, block: int, prefix_hash: int) -> None:
        if prefix_hash not in self.by_hash:
            self.by_hash[prefix_hash] = block
            self.hash_of[block] = prefix_hash

    def forget(self, block: int) -> None:
        """Drop the block from the prefix index (its contents are about to change)."""
        prefix_hash = self.hash_of.pop(block, None)
        if prefix_hash is not None and self.by_hash.get(prefix_hash) == block:
            del self.by_hash[prefix_hash]

    @property
    def used(self) -> int:
        return self.num_blocks - len(self.free)


@dataclass
class Sequence:
    table: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    """Token ids whose K/V are stored, in order (for prefix hashes)."""
    hashes: list[int] = field(default_factory=list)
    """Prefix hash of each full block."""
    slots: torch.Tensor | None = None
    """Pool slot of every position the table covers; rebuilt when the table changes."""
    blocks: torch.Tensor | None = None
    """The table as a tensor, for gathering whole blocks."""

    def index(self, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(slots, blocks), cached until the table changes."""
        if self.slots is None or len(self.blocks) != len(self.table):
            self.blocks = torch.tensor(self.table, dtype=torch.long)
            self.slots = (self.blocks[:, None] * block_size + torch.arange(block_size)).reshape(-1)
        return self.slots, self.blocks

    @property
    def length(self) -> int:
        return len(self.tokens)


@dataclass
class PrefixStats:
    hits: int = 0
    """Full blocks found in the prefix index instead of computed."""
    misses: int = 0
    """Full blocks of a prompt that had to be computed."""
    copies: int = 0
    """Copy-on-write copies of a shared block."""


class PagedCache:
    """The model-facing cache over a block pool; forward() works on the selected sequences.

    Sequences in one forward pass must have the same length (the model takes
    one position offset); ``add_sequence``, ``fork``, ``select`` and ``free``
    manage them.
    """

    def __init__(self, config, num_blocks: int, block_size: int = 16, dtype: torch.dtype = torch.float32,
                 prefix_caching: bool = True, attention: str = "gather") -> None:
        """attention: "gather" copies a sequence's blocks together for torch's attention;
        "native" lets single-token decode steps read the blocks in place (the C kernel)."""
        if block_size < 1:
            raise ValueError(f"block_size must be positive, got {block_size}")
        if attention not in ("gather", "native"):
            raise ValueError(f"attention must be 'gather' or 'native', got {attention!r}")
        if attention == "native" and (dtype != torch.float32 or block_size > 256 or config.head_dim > 256):
            raise ValueError("native paged attention needs float32, block_size <= 256 and head_dim <= 256")
        self.attention = attention
        self.attention_choice: Choice = Choice("native" if attention == "native" else "torch", "asked for")
        """Which backend decode steps attend with, and why (make_cache fills in the reason)."""
        self.layers, self.kv_heads, self.head_dim = kv_shape_from(config)
        self.block_size = block_size
        self.pool = BlockPool(num_blocks)
        self.prefix_caching = prefix_caching
        # K and V side by side, heads before blocks, so a sequence is read by gathering whole
        # blocks. A value block is [block_size, head_dim]; a key block is stored transposed,
        # [head_dim, block_size], the layout the C decode kernel reads (see native/include/wb_paged.h).
        self.kv = torch.zeros(self.layers, 2, self.kv_heads, num_blocks, block_size * self.head_dim, dtype=dtype)
        self.sequences: dict[int, Sequence] = {}
        self.active: list[int] = []
        self.stats = PrefixStats()
        self._next_id = 0
        self._read: list[torch.Tensor] = []
        """Each selected sequence's blocks, to read in this forward pass."""
        self._write: torch.Tensor | None = None
        """Pool slots the new tokens go to, sequence after sequence."""
        self._write_blocks: torch.Tensor | None = None
        self._write_offsets: torch.Tensor | None = None
        self._write_one: tuple[int, int] | None = None
        self._decoder = None
        if attention == "native":
            from workbench_engines.kvcache.native import PagedDecoder

            # Key/value heads run in parallel, on as many threads as torch uses (the C side
            # stays on one thread for short sequences, where starting threads costs more).
            self._decoder = PagedDecoder(self.kv, config.n_heads, block_size,
                                         threads=max(1, min(torch.get_num_threads(), self.kv_heads)))
        self._end = 0
        self._pending: list[list[int]] = []

    # --- sequences ------------------------------------------------------

    def add_sequence(self, prompt: list[int] | None = None) -> tuple[int, int]:
        """A new sequence, selected alone; returns (its id, how many prompt tokens were already cached).

        With prefix caching, the prompt's leading full blocks that an earlier
        sequence computed are shared instead of computed again; the caller
        feeds the model only prompt[cached:].
        """
        seq_id = self._next_id
        self._next_id += 1
        seq = self.sequences[seq_id] = Sequence()
        if prompt and self.prefix_caching:
            parent = 0
            # Keep at least one prompt token to compute: the model needs its logits.
            for start in range(0, len(prompt) - 1 - self.block_size + 1, self.block_size):
                chunk = tuple(prompt[start : start + self.block_size])
                prefix_hash = hash((parent, chunk))
                block = self.pool.by_hash.get(prefix_hash)
                if block is None:
                    break
                self.pool.share(block)
                seq.table.append(block)
                seq.tokens.extend(chunk)
                seq.hashes.append(prefix_hash)
                parent = prefix_hash
                self.stats.hits += 1
            full_blocks = (len(prompt) - 1) // self.block_size
            self.stats.misses += full_blocks - len(seq.table)
        self.active = [seq_id]
        return seq_id, seq.length

    def fork(self, seq_id: int) -> int:
        """A new sequence sharing every block of seq_id (beams, parallel samples)."""
        source = self.sequences[seq_id]
        for block in source.table:
            self.pool.share(block)
        new_id = self._next_id
        self._next_id += 1
        self.sequences[new_id] = Sequence(list(source.table), list(source.tokens), list(source.hashes))
        return new_id

    def free(self, seq_id: int) -> None:
        seq = self.sequences.pop(seq_id)
        for block in seq.table:
            self.pool.release(block)
        self.active = [s for s in self.active if s != seq_id]

    def select(self, seq_ids: list[int]) -> None:
        lengths = {self.sequences[s].length for s in seq_ids}
        if len(lengths) > 1:
            raise ValueError(f"sequences in one batch must have equal lengths, got {sorted(lengths)}")
        self.active = list(seq_ids)

    def block_table(self, seq_id: int) -> list[int]:
        return list(self.sequences[seq_id].table)

    # --- the model's side -----------------------------------------------

    @property
    def length(self) -> int:
        return self.sequences[self.active[0]].length if self.active else 0

    def reserve(self, new: int, ids: torch.Tensor | None = None) -> None:
        """Give every selected sequence slots for ``new`` tokens, copying shared blocks before they change."""
        if not self.active:
            raise ValueError("no sequence selected; call add_sequence() or select() first")
        bs = self.block_size
        start = self.length
        write, read = [], []
        for seq_id in self.active:
            seq = self.sequences[seq_id]
            needed = -(-(start + new) // bs)
            if start % bs:
                self._make_writable(seq, start // bs)
            while len(seq.table) < needed:
                seq.table.append(self.pool.allocate())
            slots, blocks = seq.index(bs)
            read.append(blocks)
            write.append((slots, start, start + new))
        self._read, self._end = read, start + new
        self._pending = ids.tolist() if ids is not None else [[-1] * new for _ in self.active]
        if new == 1 and len(self.active) == 1:
            # The decode step: one token of one sequence, written by plain integer indexing.
            self._write_one = (self.sequences[self.active[0]].table[start // bs], start % bs)
            if self._decoder is not None:
                self._decoder.set_table(read[0])
            return
        self._write_one = None
        parts = [slots[lo:hi] for slots, lo, hi in write]
        self._write = parts[0] if len(parts) == 1 else torch.cat(parts)
        self._write_blocks, self._write_offsets = self._write // bs, self._write % bs

    def _make_writable(self, seq: Sequence, index: int) -> None:
        block = seq.table[index]
        if self.pool.refs[block] > 1:
            copy = self.pool.allocate()
            self.kv[:, :, :, copy] = self.kv[:, :, :, block]
            self.pool.release(block)
            seq.table[index] = copy
            seq.slots = seq.blocks = None
            self.stats.copies += 1
        else:
            self.pool.forget(block)

    def fused_decode(self, batch: int, new: int) -> bool:
        """Whether decode_step() serves this forward pass (one new token of one sequence, native)."""
        return self.attention == "native" and batch == 1 and new == 1

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store the new tokens' k, v [B, Hkv, new, D] in their slots."""
        b, h, t, d = k.shape
        keys_t = self.kv[layer, 0].view(h, -1, d, self.block_size)
        values = self.kv[layer, 1].view(h, -1, self.block_size, d)
        if self._write_one is not None:
            block, offset = self._write_one
            keys_t[:, block, :, offset] = k[0, :, 0]
            values[:, block, offset] = v[0, :, 0]
            return
        if self._write is None:
            raise RuntimeError("write() before reserve()")
        values = values.view(h, -1, d)
        new_v = v[0] if b == 1 else v.transpose(0, 1).reshape(h, b * t, d)
        values.index_copy_(1, self._write, new_v)
        # Two index tensors around a slice: the indexed result is [B·new, Hkv, D].
        keys_t[:, self._write_blocks, :, self._write_offsets] = k.permute(0, 2, 1, 3).reshape(b * t, h, d)

    def decode_step(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        """Store the new token's k, v [1, Hkv, 1, D] and attend with q [1, H, 1, D] over the selected
        sequence's blocks, read in place: one C call (see fused_decode)."""
        out = self._decoder.attend(layer, q[0, :, 0].contiguous(), self._end, scale,
                                   (k[0, :, 0].contiguous(), v[0, :, 0].contiguous()), self._write_one)
        return out[None, :, None]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, h, t, d = k.shape
        self.write(layer, k, v)
        keys, values = [], []
        for blocks in self._read:
            gathered = self.kv[layer].index_select(2, blocks)  # [2, H, blocks, block_size · D]
            n = len(blocks)
            keys.append(gathered[0].view(h, n, d, self.block_size).transpose(2, 3).reshape(h, -1, d)[:, : self._end])
            values.append(gathered[1].view(h, -1, d)[:, : self._end])
        return torch.stack(keys), torch.stack(values)

    def commit(self, new: int) -> None:
        bs = self.block_size
        for seq_id, ids in zip(self.active, self._pending):
            seq = self.sequences[seq_id]
            seq.tokens.extend(ids)
            # Index each block that just became full under the hash of its whole prefix.
            while self.prefix_caching and len(seq.hashes) < seq.length // bs:
                i = len(seq.hashes)
                parent = seq.hashes[-1] if seq.hashes else 0
                prefix_hash = hash((parent, tuple(seq.tokens[i * bs : (i + 1) * bs])))
                seq.hashes.append(prefix_hash)
                if -1 not in seq.tokens[i * bs : (i + 1) * bs]:
                    self.pool.register(seq.table[i], prefix_hash)
        self._pending = []

    def truncate(self, length: int) -> None:
        """Forget the selected sequences' tokens from ``length`` on, returning emptied blocks to the pool."""
        for seq_id in self.active:
            seq = self.sequences[seq_id]
            if not 0 <= length <= seq.length:
                raise ValueError(f"cannot truncate {seq.length} tokens to {length}")
            keep = -(-length // self.block_size)
            for block in seq.table[keep:]:
                self.pool.release(block)
            del seq.table[keep:]
            seq.slots = seq.blocks = None
            del seq.tokens[length:]
            del seq.hashes[length // self.block_size :]

    # --- accounting -----------------------------------------------------

    def bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.kv.element_size()

    def memory(self) -> Memory:
        per_token = self.bytes_per_token()
        filled: dict[int, int] = {}
        for seq in self.sequences.values():
            for i, block in enumerate(seq.table):
                fill = min(self.block_size, seq.length - i * self.block_size)
                filled[block] = max(filled.get(block, 0), fill)
        allocated = sum(1 for r in self.pool.refs if r > 0) * self.block_size * per_token
        return Memory(reserved=self.pool.num_blocks * self.block_size * per_token, allocated=allocated,
                      stored=sum(filled.values()) * per_token)
