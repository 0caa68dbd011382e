"""What quantising a whole model costs in quality: ``workbench bench quant --quality``.

One table per model (the shipped small GPT, and SmolLM2-135M-Instruct where
installed): the model at its float weights and at each of ``VARIANTS``,
scored on the same held-out text with the same windows, each row beside the
float row: perplexity, bits per byte, the mean KL divergence from the float
model's next-token distributions, the share of positions whose top token is
unchanged, and the bits a quantised weight takes.

Every variant quantises the same weights, the linear layers of the blocks;
the token embedding and the tied output head stay float (llama.cpp stores
them at 6 to 8 bits; GPTQ and AWQ leave them alone). The GGUF rows are the C
quantisers' blocks dequantised back to float32; the RTN, GPTQ and AWQ rows
use groups of 64 weights with zero points, so GPTQ-4 and AWQ-4 sit beside
RTN-4 at the same 4.5 bits a weight, and GPTQ and AWQ calibrate on windows of
the plays' train split, never on the held-out text.

SmolLM2 ships only as Q4_1 (its output head as Q8_0): its "float" weights
are those blocks dequantised, so its Q4_1 row re-rounds weights that already
lie on a Q4_1 grid. The anchor in shape is llama.cpp's own table for
Llama-3-8B on WikiText-2 (f16 6.233, Q8_0 6.234, Q4_1 6.683, Q4_0 6.700):
8 bits nearly free, 4 bits a few per cent, GPTQ ahead of RTN at 3 and 4 bits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workbench_engines.errors import Cancelled, EngineError

GROUP = 64
"""Weights per grid for the RTN, GPTQ and AWQ rows: divides every width of both models (192, 576, 1536, …)."""
VARIANTS: tuple[tuple[str, str, int], ...] = (
    ("Q8_0", "gguf", 8),
    ("Q4_1", "gguf", 4),
    ("Q4_0", "gguf", 4),
    ("RTN-4", "rtn", 4),
    ("GPTQ-4", "gptq", 4),
    ("AWQ-4", "awq", 4),
    ("RTN-3", "rtn", 3),
    ("GPTQ-3", "gptq", 3),
)
"""(row label, how, bits): a GGUF block format by name, or a method of ``compress.apply`` at a bit width."""


@dataclass(frozen=True)
class QualityRow:
    """One variant of one model on the held-out text."""

    variant: str
    bits_per_weight: float
    """Of the quantised layers, scales and zero points included (32 for the float row)."""
    perplexity: float
    bits_per_byte: float
    kl: float
    """Mean KL(P_float ‖ P_variant) per token, nats."""
    same_top: float
    seconds: float
    """Time to quantise (0 for the float row)."""


@dataclass(frozen=True)
class QualityTable:
    """Every variant of one model, on one text."""

    model: str
    float_label: str
    """What the float row is ("fp32", or "Q4_1 dequantised" for SmolLM2)."""
    text: str
    """Which held-out text, in words."""
    tokens: int
    calibration: str
    """What GPTQ and AWQ calibrated on, in words."""
    rows: list[QualityRow]

    def as_dict(self) -> dict:
        return {"model": self.model, "float": self.float_label, "text": self.text, "tokens": self.tokens,
                "calibration": self.calibration, "rows": [row.__dict__ for row in self.rows]}


def block_format_model(model, fmt: str):
    """A deep copy of a GPT-shaped model whose block linears are stored in GGUF block format ``fmt`` and
    dequantised back to float32 (the C quantiser, bit-exact with gguf.quants).

    Raises:
        EngineError: an unknown format, or a layer whose width is not a multiple of its block.
    """
    import torch

    from workbench_engines import quant
    from workbench_engines.compress.apply import _copy, _gpt_of, block_linears

    source = _gpt_of(model)
    copy = _copy(source)
    with torch.no_grad():
        for block in copy.blocks:
            for _, linear in block_linears(block):
                w = linear.weight.detach().float().numpy()
                back = quant.dequantize(quant.quantize(w, fmt)).reshape(w.shape)
                linear.weight.copy_(torch.from_numpy(back).to(linear.weight.dtype))
                if hasattr(linear, "_prepared"):
                    linear._prepared = None
    return copy


def _quantised_bits(model, how: str, fmt: str, bits: int) -> float:
    """Bits per weight over the block linears: the format's layout, or b plus a 16-bit scale and zero per group."""
    from workbench_engines.quant import reference

    if how == "gguf":
        return reference.bits_per_weight(fmt)
    return bits + 32 / GROUP


def quality_table(model, tokenizer_name: str, ids, *, calibration, token_bytes: Callable[[int], bytes],
                  float_label: str, text: str, window: int, stride: int, variants=VARIANTS,
                  progress: Callable[[float, str], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> QualityTable:
    """Score the float model and each variant on ids (held-out tokens) over the same windows.

    Args:
        model: A GPT-shaped float model (the small GPT, or SmolLM2 loaded with weights="fp32").
        tokenizer_name: The model's name for the table.
        ids: Held-out token ids in the model's tokenizer.
        calibration: (B, T) train-split windows for GPTQ and AWQ.
        token_bytes: UTF-8 bytes of a token id, for bits per byte.
        float_label, text: What the float row and the text are, in words.
        window, stride: Perplexity's sliding window.
        variants: Rows to make, from VARIANTS.
        progress: (fraction done, what) between steps.
        should_stop: Polled between steps; True raises Cancelled.

    Raises:
        EngineError: as compare_models and quantize_model.
    """
    from workbench_engines.compress.apply import quantize_model
    from workbench_engines.evaluation import compare_models

    known = {label for label, _, _ in VARIANTS}
    if any(v not in VARIANTS for v in variants):
        raise EngineError(f"unknown quality variant; choose from {', '.join(sorted(known))}")
    rows: list[QualityRow] = []
    steps = 2 * len(variants)
    for i, (label, how, bits) in enumerate(variants):
        if should_stop is not None and should_stop():
            raise Cancelled("quality table cancelled")
        if progress is not None:
            progress(2 * i / steps, f"{tokenizer_name}: quantising to {label}")
        started = time.perf_counter()
        if how == "gguf":
            changed = block_format_model(model, label)
        else:
            changed = quantize_model(model, calibration, method=how, bits=bits, group=GROUP,
                                     should_stop=should_stop).model
        seconds = time.perf_counter() - started
        if progress is not None:
            progress((2 * i + 1) / steps, f"{tokenizer_name}: scoring {label}")
        result = compare_models(getattr(model, "model", model), changed, ids, window=window, stride=stride,
                                token_bytes=token_bytes, should_stop=should_stop)
        if not rows:
            rows.append(QualityRow(float_label, 32.0, result.reference.perplexity, result.reference.bits_per_byte,
                                   0.0, 1.0, 0.0))
        rows.append(QualityRow(label, _quantised_bits(model, how, label, bits), result.changed.perplexity,
                               result.changed.bits_per_byte, result.kl, result.same_top, seconds))
    if progress is not None:
        progress(1.0, f"{tokenizer_name}: done")
    windows, length = np.shape(calibration)
    return QualityTable(tokenizer_name, float_label, text, len(ids),
                        f"{windows} train-split windows of {length} tokens", rows)


QUICK_VARIANTS = tuple(v for v in VARIANTS if v[0] in ("Q8_0", "Q4_0", "RTN-3", "GPTQ-3"))
"""--quick: one GGUF format at each width and GPTQ against RTN, on the small GPT alone."""


def quality_tables(*, quick: bool = False, progress: Callable[[float, str], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> list[QualityTable]:
    """The benchmark's tables: the small GPT on the held-out ends of 3 plays (window 256, stride 128), and
    SmolLM2 where installed on the same text in its own tokens. ``quick``: the small GPT on one play, 4 variants.

    Calibration for GPTQ and AWQ: 16 windows of 256 tokens from the train split (``calibration_windows``).
    """
    from workbench_engines.compress.apply import calibration_windows
    from workbench_engines.evaluation.heldout import LESSON_STRIDE, LESSON_WINDOW, held_out_plays
    from workbench_engines.models import small_gpt
    from workbench_engines.gguf_file import GGUFError, bundled_model_path

    target = small_gpt.load("target")
    held = held_out_plays(target.tokenizer, plays=1 if quick else 3)
    text = f"{len(held.text.encode()):,} bytes, the held-out ends of {', '.join(held.plays)}"
    variants = QUICK_VARIANTS if quick else VARIANTS
    models = [("small GPT", lambda: target, "fp32", held.ids)]
    try:
        installed = not quick and bundled_model_path() is not None
    except GGUFError:
        installed = False  # the small GPT's table alone
    if installed:
        from workbench_engines.models import llama

        def smollm2():
            return llama.load(weights="fp32")

        models.append(("SmolLM2-135M", smollm2, "Q4_1 dequantised", None))
    tables = []
    for i, (name, load, float_label, ids) in enumerate(models):

        def step(fraction: float, what: str, i=i) -> None:
            if progress is not None:
                progress((i + fraction) / len(models), what)

        loaded = load()
        if ids is None:
            ids = loaded.tokenizer.encode_ordinary(held.text)
        calibration = calibration_windows(loaded.tokenizer, windows=4 if quick else 16, length=128 if quick else 256)
        tables.append(quality_table(loaded.model, name, ids, calibration=calibration,
                                    token_bytes=loaded.tokenizer.token_bytes, float_label=float_label, text=text,
                                    window=LESSON_WINDOW, stride=LESSON_STRIDE, variants=variants,
                                    progress=step, should_stop=should_stop))
    return tables
