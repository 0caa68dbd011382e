"""Exact KV-cache memory accounting: bytes per token, and what a cache reserves, allocates and fills."""

from __future__ import annotations

from dataclasses import dataclass

from workbench_engines.errors import EngineError

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "int4": 0.5}


class CacheFull(EngineError):
    """No room left: the contiguous reservation is used up or the block pool is empty."""


def kv_shape_from(config) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) of a GPTConfig."""
    return config.n_layers, config.kv_heads, config.head_dim


def kv_bytes(tokens: int, layers: int, kv_heads: int, head_dim: int, dtype: str = "fp16", batch: int = 1) -> float:
    """Bytes of K and V for ``tokens`` tokens: 2 · layers · kv_heads · head_dim · bytes/value · tokens · batch."""
    if dtype not in DTYPE_BYTES:
        raise EngineError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}")
    for name, value in (("tokens", tokens), ("layers", layers), ("kv_heads", kv_heads), ("head_dim", head_dim),
                        ("batch", batch)):
        if value < 0:
            raise EngineError(f"{name} must be >= 0, got {value}")
    return 2 * layers * kv_heads * head_dim * DTYPE_BYTES[dtype] * tokens * batch


def paged_slots(tokens: int, block_size: int) -> tuple[int, int]:
    """(blocks a paged cache gives a sequence of ``tokens`` tokens, slots of them left empty)."""
    if tokens < 0 or block_size < 1:
        raise EngineError(f"need tokens >= 0 and block_size >= 1, got {tokens} and {block_size}")
    blocks = -(-tokens // block_size)
    return blocks, blocks * block_size - tokens


@dataclass(frozen=True)
class Memory:
    """Bytes a cache holds, at three levels."""

    reserved: int
    """Set aside up front (the contiguous slab, or the whole block pool)."""
    allocated: int
    """Handed to sequences: their reservation, or the blocks in their tables."""
    stored: int
    """Actually holding a token's K/V (shared blocks counted once)."""

    @property
    def wasted(self) -> int:
        """Allocated but holding no token: reserved-but-unused slots, or the unfilled end of last blocks."""
        return self.allocated - self.stored

    @property
    def waste_fraction(self) -> float:
        return self.wasted / self.allocated if self.allocated else 0.0


@dataclass(frozen=True)
class ModelShape:
    """The KV-relevant shape of a published model (from its config.json)."""

    name: str
    layers: int
    kv_heads: int
    head_dim: int
    context: int

    def bytes_per_token(self, dtype: str = "fp16") -> float:
        return kv_bytes(1, self.layers, self.kv_heads, self.head_dim, dtype)


# Shapes as published in each model's config.json.
REAL_MODELS: dict[str, ModelShape] = {
    m.name: m
    for m in [
        ModelShape("GPT-2 small", 12, 12, 64, 1024),
        ModelShape("GPT-2 XL", 48, 25, 64, 1024),
        ModelShape("Llama-2-7B", 32, 32, 128, 4096),
        ModelShape("Llama-2-70B", 80, 8, 128, 4096),
        ModelShape("Llama-3-8B", 32, 8, 128, 8192),
        ModelShape("Mistral-7B", 32, 8, 128, 32768),
        ModelShape("Qwen2.5-0.5B", 24, 2, 64, 32768),
        # The workbench's own real model; tests/test_llama.py holds it to the GGUF file's metadata.
        ModelShape("SmolLM2-135M", 30, 3, 64, 8192),
    ]
}
