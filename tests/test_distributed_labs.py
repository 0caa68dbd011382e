"""The data-parallel and ZeRO labs (issue 23) show what their lessons claim on the lessons' settings, their quizzes'
probes equal the paper's numbers and the figures the labs show, and a bad knob value is refused.

Each lab run starts two rank processes (a few seconds: each imports torch), so there are exactly two such tests,
one launch each, marked slow. No time is asserted: only bytes, gradients and parameters, which do not depend on the
machine's speed."""

from __future__ import annotations

import pytest

from tests.test_lab_claims import lesson_params, lesson_run
from workbench.curriculum import load_curriculum
from workbench.labs.distributed_labs import kib
from workbench_engines.distributed.ddp import StepGatherer
from workbench.labs.registry import LABS
from workbench.params import ParamError
from workbench.probes import compute_probe
from workbench_engines.distributed.ddp import RankStep

pytestmark = pytest.mark.no_c_path  # torch.distributed ranks; no C kernel runs

DDP, ZERO = ("data-parallel", "scale.data_parallel"), ("zero", "scale.zero")
BUFFER = 4 * 237_888
"""The draft GPT's fp32 gradient buffer: 237,888 parameters (an even count, so no padding at N = 2)."""


def probe_answers(lesson_id: str) -> dict[str, float]:
    """quiz id -> the answer its probe computes today, for every probe question of the lesson."""
    lesson = load_curriculum().lesson(lesson_id)
    return {q.id: compute_probe(q.probe, q.params) for q in lesson.questions if q.kind == "probe"}


def choice_answer(lesson_id: str, quiz_id: str) -> str:
    """The text of the right choice of a single-choice quiz."""
    quiz = next(q for q in load_curriculum().lesson(lesson_id).questions if q.id == quiz_id)
    return quiz.choices[quiz.answer]


def test_probes_give_the_papers_numbers():
    gigabytes = [compute_probe("scale.zero_memory_gb", {"psi": 7.5e9, "n_d": 64, "stage": s}) for s in range(4)]
    assert [round(g, 1) for g in gigabytes] == [120.0, 31.4, 16.6, 1.9]
    assert gigabytes[0] == 16 * 7.5  # (2 + 2 + 12)Ψ bytes
    assert probe_answers("zero") == {"stage-2-gb": pytest.approx(16.640625), "stage-3-gb": pytest.approx(1.875)}
    # fp32 AdamW (4 + 4 + 8 bytes a parameter): the same 16Ψ, sharded kind by kind.
    fp32 = {"k": 8.0, "param_bytes": 4.0, "grad_bytes": 4.0}
    assert [compute_probe("scale.zero_memory_gb", {"psi": 1e9, "n_d": 2, "stage": s, **fp32}) for s in range(4)] \
        == [16.0, 12.0, 10.0, 8.0]
    assert compute_probe("scale.ring_allreduce_bytes", {"buffer_bytes": 1000.0, "n": 2}) == 1000.0
    assert probe_answers("data-parallel") == {"ring-bytes": 1.5 * BUFFER}


def test_labs_refuse_bad_knobs():
    for bad in (1, 5, "2", 2.5):
        with pytest.raises(ParamError, match="procs"):
            LABS["scale.data_parallel"].validate({"procs": bad})
    for bad in (0, 1000):
        with pytest.raises(ParamError, match="steps"):
            LABS["scale.zero"].validate({"steps": bad})


def _payload(step: int, rank: int, loss: float) -> dict:
    return {"step": step, "total": 2, "loss": loss, "lr": 1e-3, "grad_norm": 1.0, "val_loss": None, "seconds": 0.5,
            "tokens": 1024, "rank_step": RankStep(rank, 0.1, 0.01, 0.0, 8, 8.0, 9)}


def test_step_gatherer_waits_for_every_rank_and_starts_a_new_run_when_the_steps_restart():
    seen = []
    gather = StepGatherer(2, lambda job, step: seen.append((job, step.step, step.loss)))
    for step in (1, 2):
        gather(0, _payload(step, 0, 5.0 - step))
    assert seen == []  # rank 1 has not reported: nothing is complete
    gather(1, _payload(1, 1, 9.0))
    assert seen == [(0, 1, 4.0)]  # rank 0's loss is the step's (it carries the mean over the ranks)
    gather(1, _payload(2, 1, 9.0))
    gather(0, _payload(1, 0, 7.0))  # the next job's first step
    gather(1, _payload(1, 1, 7.0))
    assert seen == [(0, 1, 4.0), (0, 2, 3.0), (1, 1, 7.0)]
    assert [len(run) for run in gather.runs] == [2, 1]
    assert gather.runs[0][0].tokens_per_s == 2048 and [r.rank for r in gather.runs[0][0].ranks] == [0, 1]


async def test_data_parallel_lab_ranks_knob_stops_at_its_ends(open_lab):
    async with open_lab("scale.data_parallel") as h:
        await h.press("W")
        assert h.lab.procs == 2 and "already the fewest" in h.status()
        await h.press("w", "w", "w")
        assert h.lab.procs == 4 and "already the most" in h.status()
        await h.press("x")
        assert h.status() == "Nothing is running."


@pytest.mark.slow
@pytest.mark.no_c_path  # torch and processes only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged
@pytest.mark.claims
async def test_data_parallel_lab_on_the_lessons_settings(open_lab):
    assert lesson_params(*DDP) == {"steps": 30, "procs": 2}
    async with lesson_run(open_lab, *DDP) as h:
        run = h.lab.result
        assert run is not None, h.status()
        assert len(run.steps) == 30 and run.procs == 2 and run.parameters == BUFFER // 4
        assert run.steps[-1].loss < run.steps[0].loss - 0.5  # the run trains
        # N ranks = one process with N× the batch = accumulation, to float32 rounding.
        assert run.largest_gradient > 1e-3
        assert max(run.check_diff, run.accumulated_diff, run.torch_ddp_diff) < 1e-6
        for rank in range(2):
            row = run.per_rank(rank)
            assert row["buffer"] == BUFFER and row["formula"] == BUFFER  # 2(N − 1)/N · B = B at N = 2
            assert BUFFER <= row["measured"] <= BUFFER + 4096  # the payload plus gloo's headers
        shown = h.readout()
        assert "951,552-byte gradient" in shown and "the ring's 2(2−1)/2 × buffer is 951,552" in shown
        assert "differs from one process with 2× the batch by at most" in shown
        assert "A few hundred bytes above it" in choice_answer("data-parallel", "bytes-measured")
        assert run.per_rank(0)["measured"] - BUFFER < 1000


@pytest.mark.slow
@pytest.mark.no_c_path
@pytest.mark.claims
async def test_zero_lab_on_the_lessons_settings(open_lab):
    assert lesson_params(*ZERO) == {"steps": 4}
    async with lesson_run(open_lab, *ZERO) as h:
        run = h.lab.result
        assert run is not None, h.status()
        assert [len(zs.steps) for zs in run.stages] == [4, 4, 4, 4]
        slack = 4 * 2 * 3 + 4 * 16  # stage 3 pads each unit to 2 shards; AdamW's step counters
        for zs in run.stages:
            expected = run.formula(zs.stage)
            for rank in range(2):
                assert all(abs(zs.held[rank][kind] - expected[kind]) <= slack for kind in expected), (zs.stage, rank)
        totals = [zs.total(0) / run.stages[0].total(0) for zs in run.stages]
        assert totals == pytest.approx([1.0, 0.75, 0.625, 0.5], abs=1e-3)
        shown = h.readout()
        assert "stage 1 holds 0.75×, stage 2 holds 0.62×, stage 3 holds 0.50×" in shown
        assert run.max_param_diff < 1e-5  # every stage took the same steps
        sent = [zs.sent_per_step() for zs in run.stages]
        assert sent[0] == pytest.approx(BUFFER, abs=4096)
        # gloo: the gradient all-reduce under every stage, plus the parameters' all-gather (half the buffer).
        assert sent[1] / sent[0] == pytest.approx(1.5, abs=0.03) and sent[2] / sent[0] == pytest.approx(1.5, abs=0.03)
        assert max(range(4), key=lambda s: sent[s]) == 3 and choice_answer("zero", "zero-most-bytes") == "Stage 3"
        answers = probe_answers("zero")
        for row in ("120.0", f"{answers['stage-2-gb']:.1f}", f"{answers['stage-3-gb']:.1f}"):
            assert row in shown
        assert kib(run.stages[0].total(0)) in shown
