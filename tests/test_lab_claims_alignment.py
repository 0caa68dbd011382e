"""The DPO lab on lesson 06's settings shows what the lesson claims: ln 2 at step 0, the margin made mostly by
the rejected continuations falling, DPO beating best-of-4 at β = 0.1 and falling short at β = 0.5 with under a
quarter of the KL."""

from __future__ import annotations

import math

import pytest

from tests.conftest import needs_minilm
from tests.test_lab_claims import lesson_params


@needs_minilm
@pytest.mark.slow
@pytest.mark.claims
@pytest.mark.no_c_path
async def test_dpo_lab_beats_best_of_4_at_beta_01_and_a_larger_beta_moves_less(open_lab):
    async with open_lab("align.dpo", **lesson_params("dpo", "align.dpo")) as h:
        await h.press("r")
        await h.settle()
        low = h.lab.result
        first, last = low.run.steps[0], low.run.steps[-1]
        assert first.loss == pytest.approx(math.log(2), abs=1e-6) and first.margin == 0 and first.kl == 0
        assert last.step == 200 and last.margin > 0.5 and last.accuracy > 0.7
        assert -last.rejected_reward > 3 * abs(last.chosen_reward)  # the margin is made by the rejected falling
        evaluation = low.run.evaluation
        assert evaluation.prompts == 192 and evaluation.n == 4
        assert evaluation.policy > evaluation.best_of_n + 0.05 > evaluation.reference + 0.1
        assert evaluation.policy <= evaluation.oracle_best_of_n + 0.05
        assert low.reward_accuracy > 0.7
        assert "DPO beats or matches best-of-4" in h.readout()
        low_kl = low.run.steps[-1].kl

        await h.press("b")
        await h.press("r")
        await h.settle()
        high = h.lab.result
        assert high.run.settings.beta == 0.5
        assert high.run.steps[-1].kl < low_kl / 4
        assert high.run.evaluation.policy < high.run.evaluation.best_of_n
        assert "DPO falls short of best-of-4" in h.readout()
