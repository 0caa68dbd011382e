"""The LoRA labs at 80×24: the memory lab's knobs and figures, and the rank sweep run live on a tiny budget
(issue 16)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from workbench_engines.finetune import genre


pytestmark = pytest.mark.no_c_path  # torch only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged


async def test_the_memory_lab_shows_the_7b_accounting_and_holds_the_rank(open_lab):
    async with open_lab("ft.peft_memory") as h:
        readout = h.readout()
        assert "6,738,415,616" in readout and "4,194,304" in readout
        assert "75.3 GiB" in readout and "48 MiB" in readout and "12.6% of full fine-tuning's" in readout
        await h.press("f")
        assert h.lab.state.precision == "fp32"
        assert "50.2 GiB" in h.readout()
        await h.press("m", "m")  # Llama-2-7B -> MiniLM-L6 -> the small GPT
        assert h.lab.state.model == "small GPT"
        for _ in range(8):
            await h.press("r")
        assert h.lab.state.rank == 128  # attn.kv is 128 × 192: B·A cannot have rank above 128
        assert "Rank held at 128" in h.status()
        await h.press("R")
        assert h.lab.state.rank == 64 and h.status() == ""
        await h.press("t")
        assert h.lab.state.targets == "attention"


@pytest.mark.slow
async def test_the_sweep_lab_runs_and_reports_every_regime(open_lab, monkeypatch):
    real = genre.run_sweep

    asked: list[int | None] = []

    def tiny(config, progress=None, threads=None):  # the lab's own sweep, on windows small enough for a test
        asked.append(threads)
        return real(replace(config, batch_size=2, seq_len=32, eval_windows=2), progress, threads)

    monkeypatch.setattr(genre, "run_sweep", tiny)
    async with open_lab("ft.lora_sweep", steps=1, genre="tragedies") as h:
        await h.press("r")
        await h.settle()
        readout = h.readout()
        for name in ("r=1", "r=2", "r=4", "r=8", "r=16", "r=64", "full"):
            assert name in readout
        assert "Held out: othello, macbeth" in readout and "2,755,008" in readout
        assert asked == [1]  # one torch thread: the lesson's figures repeat on the same machine
        await h.press("v")
        assert h.lab.show_delta
