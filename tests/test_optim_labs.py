"""The optimiser-by-hand lab (ft.by_hand) in the real app: its knobs, a short run on both sets of parts (issue 16)."""

from __future__ import annotations

import math

import pytest

from workbench.labs.optim_labs import AGREEMENT_ULPS, agreement_verdict, float32_spacing
from workbench.widgets.plots import Figure


pytestmark = pytest.mark.no_c_path  # torch only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged


def test_float32_spacing_halves_with_each_binade_below_the_loss():
    assert float32_spacing(5.79) == 2.0 ** -21 and float32_spacing(3.5) == 2.0 ** -22  # 4.8e-7 in [4, 8)
    assert float32_spacing(1.0) == 2.0 ** -23 and float32_spacing(-1.5) == 2.0 ** -23


def test_the_verdict_names_the_largest_difference_and_its_step():
    assert "1.4e-06 nats, at step 21" in agreement_verdict(1.43e-6, 21, 5.9)
    assert "identical" in agreement_verdict(0.0, 1, 7.6)


def test_a_difference_within_the_tolerance_says_the_parts_agree():
    verdict = agreement_verdict(1.43e-6, 21, 5.9)  # the lesson's default run: 3 ulps at a loss of 5.9
    assert "near its loss of 5.90 lie 4.8e-07 apart" in verdict and "3 roundings' worth" in verdict
    assert "the parts compute the same thing" in verdict
    edge = AGREEMENT_ULPS * float32_spacing(2.5)  # below 4 the spacing halves, and so does the tolerance
    assert "the same thing" in agreement_verdict(edge, 30, 2.5)
    assert "1 rounding's worth" in agreement_verdict(float32_spacing(3.0), 2, 3.0)


def test_a_difference_past_the_tolerance_does_not_claim_agreement():
    past = 2 * AGREEMENT_ULPS * float32_spacing(5.9)
    for verdict in (agreement_verdict(past, 12, 5.9), agreement_verdict(3e-3, 80, 3.1)):
        assert "past the 64 allowed" in verdict and "the same thing" not in verdict
        assert "amplified" in verdict and "lower learning rate" in verdict
    assert "128 roundings' worth" in agreement_verdict(past, 12, 5.9)
    assert "a run diverged" in agreement_verdict(math.nan, 3, math.nan)
    assert "a run diverged" in agreement_verdict(math.inf, 3, 7.0)


async def test_the_knobs_change_the_next_run(open_lab):
    async with open_lab("ft.by_hand") as h:
        assert "40 steps, peak lr 0.005, clip at 1" in h.status()
        await h.press("l", "S", "c")
        assert "20 steps, peak lr 0.01, clip at 0.25" in h.status()
        await h.press("c", "L", "L")
        assert "20 steps, peak lr 0.002, no clipping" in h.status()


@pytest.mark.slow
@pytest.mark.native
async def test_a_short_run_draws_both_curves_and_their_difference(open_lab):
    async with open_lab("ft.by_hand", steps=5) as h:
        await h.press("r")
        await h.settle()
        comparison = h.lab.comparison
        assert comparison is not None and len(comparison.hand.losses) == 5
        assert comparison.largest_difference < 1e-5
        assert "Largest per-step difference" in h.readout() and "ours" in h.readout()
        assert "torch's parts and on ours" in h.lab.query_one(Figure).title_text
        await h.press("d")
        assert "per step" in h.lab.query_one(Figure).title_text


async def test_the_race_validates_and_times_both_parts_through_the_runner(open_lab, monkeypatch):
    from workbench_engines.optim import bench
    from workbench.widgets.profile_panel import ProfilePanel

    full = bench.cases
    monkeypatch.setattr(bench, "cases", lambda quick=False: full(quick=True))  # the same cases, small inputs
    async with open_lab("ft.by_hand") as h:
        await h.press("b")
        await h.settle()
        rows = h.lab.query_one(ProfilePanel).rows
        assert {row.name for row in rows} >= {"ours 1T", "torch 1T"}
        assert {row.case.split()[0] for row in rows} == {"cross-entropy", "AdamW"}
        assert all(row.matches for row in rows) and all(row.ratios.get("torch 1T", 0) > 0 for row in rows)


async def test_a_diverged_comparison_is_drawn_without_crashing_the_lab(open_lab):
    from workbench_engines.optim.compare import PartsComparison, PartsRun

    async with open_lab("ft.by_hand") as h:
        h.lab.comparison = PartsComparison(PartsRun("torch", [7.6, math.nan], val_loss=None),
                                           PartsRun("hand", [7.6, 7.2], val_loss=None))
        await h.settle()
        assert "at step 2: a run diverged" in h.readout()
        await h.press("d")
        assert "per step" in h.lab.query_one(Figure).title_text


@pytest.mark.native
async def test_a_run_whose_loss_turns_nan_fails_in_the_status_line(open_lab, monkeypatch):
    from workbench_engines.models.gpt import GPT

    forward = GPT.forward
    monkeypatch.setattr(GPT, "forward", lambda self, *args, **kwargs: forward(self, *args, **kwargs) * math.nan)
    async with open_lab("ft.by_hand", steps=5) as h:
        await h.press("r")
        await h.settle()
        assert "Failed: training diverged at step 1: the loss is nan" in h.status()
        assert h.lab.comparison is None and not h.lab.running
        await h.press("l")
        assert "peak lr 0.01" in h.status()  # the lab still answers its keys
