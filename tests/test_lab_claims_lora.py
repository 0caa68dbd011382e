"""The LoRA sweep's longer run (lesson 03 of fine-tuning, 100 steps) shows the shape of Hu et al.'s Table 6 that
the lesson claims: rank 1 near rank 64, rank 16 level with it, full fine-tuning lowest."""

from __future__ import annotations

import pytest

from tests.test_lab_claims import LESSONS
from workbench.curriculum import load_curriculum
from workbench.curriculum.model import LabBlock


@pytest.mark.slow
@pytest.mark.claims
@pytest.mark.no_c_path
async def test_the_100_step_sweep_brings_rank_1_near_rank_64(open_lab):
    lesson = load_curriculum(LESSONS).lesson("lora-from-scratch")
    blocks = [b for step in lesson.steps for b in step.blocks if isinstance(b, LabBlock) and b.lab_id == "ft.lora_sweep"]
    assert [b.params["steps"] for b in blocks] == [30, 100]
    async with open_lab("ft.lora_sweep", **blocks[1].params) as h:
        await h.press("r")
        await h.settle()
        sweep = h.lab.result
        gain = {r.name: r.val_before - r.val_after for r in sweep.regimes}
        assert gain["r=1"] > 0.6 * gain["r=64"] > 0
        assert abs(gain["r=16"] - gain["r=64"]) < 0.001
        assert gain["full"] == max(gain.values())
        assert sweep.regime("r=1").val_after == pytest.approx(3.5545, abs=5e-4)  # the lesson's figures
        assert sweep.regime("r=64").val_after == pytest.approx(3.5493, abs=5e-4)
