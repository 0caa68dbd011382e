"""``workbench bench quant --quality``: whole-model quantisation scored on held-out text, ordered as the field's
tables are (8 bits nearly free, fewer bits worse, GPTQ ahead of RTN at 3 bits)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench.cli import main
from workbench_engines import quant
from workbench_engines.compress.apply import block_linears
from workbench_engines.compress.quality import block_format_model, quality_table
from workbench_engines.errors import EngineError
from workbench_engines.models import small_gpt


@pytest.mark.parametrize("fmt", ["Q4_1", "Q8_0"])
def test_block_format_model_is_the_C_round_trip_of_every_block_linear(fmt):
    source = small_gpt.load("target").model
    before = {k: v.clone() for k, v in source.state_dict().items()}
    changed = block_format_model(source, fmt)
    for block, original in zip(changed.blocks, source.blocks):
        for (name, linear), (_, kept) in zip(block_linears(block), block_linears(original)):
            w = kept.weight.detach().numpy()
            expected = quant.dequantize(quant.quantize(w, fmt)).reshape(w.shape)
            assert np.array_equal(linear.weight.detach().numpy(), expected), name
            assert not np.array_equal(expected, w)
    assert torch.equal(changed.embed.weight, source.embed.weight)
    assert all(torch.equal(v, before[k]) for k, v in source.state_dict().items())


def test_unknown_variants_are_refused():
    target = small_gpt.load("target")
    with pytest.raises(EngineError, match="unknown quality variant"):
        quality_table(target.model, "small GPT", list(range(100)), calibration=np.zeros((1, 8), np.int64),
                      token_bytes=target.tokenizer.token_bytes, float_label="fp32", text="t", window=64, stride=32,
                      variants=(("Q5_0", "gguf", 5),))


@pytest.mark.slow
def test_quality_quick_orders_the_variants(capsys):
    assert main(["bench", "quant", "--quality", "--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (table,) = report["tables"]
    rows = {row["variant"]: row for row in table["rows"]}
    assert list(rows) == ["fp32", "Q8_0", "Q4_0", "RTN-3", "GPTQ-3"] and table["model"] == "small GPT"
    assert rows["fp32"]["kl"] == 0 and rows["fp32"]["same_top"] == 1
    # 8 bits nearly free; fewer bits cost more; GPTQ's error compensation beats rounding at 3 bits.
    assert rows["Q8_0"]["kl"] < rows["Q4_0"]["kl"] < rows["RTN-3"]["kl"]
    assert rows["GPTQ-3"]["kl"] < rows["RTN-3"]["kl"]
    assert abs(rows["Q8_0"]["perplexity"] / rows["fp32"]["perplexity"] - 1) < 0.005
    assert rows["Q8_0"]["same_top"] > rows["RTN-3"]["same_top"]
    assert [rows[v]["bits_per_weight"] for v in ("Q8_0", "Q4_0", "RTN-3")] == [8.5, 4.5, 3.5]
    assert all(row["bits_per_byte"] > 0 for row in rows.values())


def test_quality_is_refused_for_a_benchmark_without_tables(capsys):
    assert main(["bench", "softmax", "--quality"]) == 2
    assert "no quality tables" in capsys.readouterr().err
