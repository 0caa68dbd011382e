"""``workbench bench llm``: every contender's output validated, and the roofline note read from the rows."""

from __future__ import annotations

import json

import pytest

from tests.conftest import needs_smollm


pytest.importorskip("torch")
pytest.importorskip("transformers")
pytestmark = needs_smollm


@pytest.mark.slow
def test_bench_llm_quick_validates_every_output(capsys):
    from workbench.cli import main

    assert main(["bench", "llm", "--quick", "--repeats", "1", "--warmup", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["rows"]
    assert all(row["matches"] for row in rows), [row["mismatch"] for row in rows if not row["matches"]]
    decode = {row["name"] for row in rows if row["case"].startswith("decode")}
    assert {"ours fp32", "ours quantized", "ours quantized, int8 x", "transformers fp32"} <= decode
    # Under the table, for each decode row: the weight bytes a token reads and the ceiling they put on tokens/s.
    roofline = report["summary"].splitlines()
    assert [line for line in roofline if not line.startswith("  ")] == [
        case for case in dict.fromkeys(row["case"] for row in rows) if case.startswith("decode")]
    assert len(roofline) == sum(row["case"].startswith("decode") for row in rows) + 2  # two headings
    quantized = next(line for line in roofline if line.startswith("  ours quantized:"))
    assert "97 MB of weights a token" in quantized, quantized
    assert report["environment"]["cpu"]


