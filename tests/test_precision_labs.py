"""The mixed-precision lab (issue 23) shows what its lesson claims on the lesson's settings, its quizzes' probes
equal the figures it shows, its knobs step and stop where they should, and a bad knob value is refused; the matrix
units lab (issue 21) races one product in fp32, bf16 and fp16 and says why the 16-bit rows ran as they did."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.test_lab_claims import lesson_params, lesson_run
from workbench.curriculum import load_curriculum
from workbench.labs.precision_labs import power_of_two, precision_verdict, units_verdict
from workbench.labs.registry import LABS
from workbench.params import ParamError
from workbench.probes import compute_probe

pytestmark = pytest.mark.no_c_path  # torch autocast and the loss scaler; no C kernel runs

LESSON, LAB = "mixed-precision", "scale.mixed_precision"


def probe_answers(lesson_id: str) -> dict[str, float]:
    """quiz id -> the answer its probe computes today, for every probe question of the lesson."""
    lesson = load_curriculum().lesson(lesson_id)
    return {q.id: compute_probe(q.probe, q.params) for q in lesson.questions if q.kind == "probe"}


@pytest.mark.slow
@pytest.mark.claims
async def test_lab_on_the_lessons_settings_shows_plain_fp16_losing_its_gradients_and_scaling_restoring_them(
        open_lab):
    # What the lesson's prose describes: 60 steps at k = 1,024, a first scale of 2^16 doubling every 20 clean steps.
    assert lesson_params(LESSON, LAB) == {"steps": 60, "loss_divisor": 1024, "init_scale": 65536.0,
                                          "growth_interval": 20}
    async with lesson_run(open_lab, LESSON, LAB) as h:
        fp32, bf16, plain, scaled = h.lab.runs
        assert [run.precision for run in h.lab.runs] == ["fp32", "bf16", "fp16", "fp16-scaled"]
        assert [len(run.steps) for run in h.lab.runs] == [60] * 4
        # "more than three quarters of its gradient entries ... more than 0.3 nats above fp32's"
        assert plain.zeroed_share > 0.75 and plain.val_loss > fp32.val_loss + 0.3
        assert plain.overflowed == 0 and plain.skipped == 0
        assert plain.steps[-1].zeroed_share > plain.steps[0].zeroed_share + 0.1  # "the share climbs ..."
        # "within 0.01 of fp32's, with no entry overflowed and no step skipped, while the scale doubles every 20"
        assert abs(scaled.val_loss - fp32.val_loss) < 0.01
        assert scaled.overflowed == 0 and scaled.skipped == 0
        assert [scaled.steps[i].scale for i in (0, 20, 40)] == [2.0 ** 16, 2.0 ** 17, 2.0 ** 18]
        assert abs(bf16.val_loss - fp32.val_loss) < 0.05  # "within a few hundredths"
        answers = probe_answers(LESSON)
        assert answers["final-scale"] == scaled.final_scale == 2.0 ** 19
        shown = h.readout()
        assert "fp16, loss scaling" in shown and f" {power_of_two(answers['final-scale'])} " in f" {shown} "
        assert f"fp16's smallest subnormal is {answers['fp16-floor']:.3g}" in shown
        assert f"Without scaling, fp16 zeroed {100 * plain.zeroed_share:.1f}% of the gradient entries" in shown
        await h.press("v")
        assert h.lab.show_zeroed and h.text(".figure-title").startswith("% of gradient entries zeroed, per step")


@pytest.mark.slow
def test_a_first_scale_of_2_to_the_32_overflows_on_the_labs_model_and_the_scale_halves():
    """The lesson's "press i for 2^32: the first steps overflow and are skipped while the scale halves"."""
    from workbench_engines.models.precision import Settings, compare_precisions

    run, = compare_precisions(Settings(steps=2, loss_divisor=1024, init_scale=2.0 ** 32, reference_every=0),
                              ["fp16-scaled"])
    assert [(s.scale, s.skipped) for s in run.steps] == [(2.0 ** 32, True), (2.0 ** 31, True)]
    assert run.steps[0].overflowed > 0 and run.final_scale == 2.0 ** 30


async def test_the_knobs_step_stop_at_their_ends_and_wait_for_a_run(open_lab):
    async with open_lab(LAB) as h:
        assert "60 steps, loss ÷ 1024 (as a 262,144-token step), first scale 2^16" in h.status()
        await h.press("k")
        assert h.lab.knobs.loss_divisor == 4096
        await h.press("k")
        assert "k = 4096 is already the largest this lab takes" in h.status()
        await h.press(*"KKKKKK")
        assert h.lab.knobs.loss_divisor == 1 and "already the smallest" in h.status()
        await h.press("i")
        assert h.lab.knobs.init_scale == 2.0 ** 24 and "first scale 2^24" in h.status()
        await h.press("i", "i")
        assert h.lab.knobs.init_scale == 2.0 ** 16
        await h.press("v")  # nothing trained yet: the view flips, nothing is drawn
        assert h.lab.show_zeroed and h.lab.runs is None


def _run(precision: str, val: float, zeroed: float | None = None, skipped: int = 0):
    from workbench_engines.models.precision import LABELS, StepCounts

    steps = [StepCounts(1, val, 2.0 ** 16 if precision == "fp16-scaled" else 1.0, 0, bool(skipped))]
    return SimpleNamespace(precision=precision, label=LABELS[precision], val_loss=val, zeroed_share=zeroed,
                           steps=steps, skipped=skipped, final_scale=2.0 ** 19 if precision == "fp16-scaled" else None)


def test_the_verdict_says_when_plain_fp16_fell_behind_and_when_it_kept_up():
    behind = precision_verdict([_run("fp32", 5.54), _run("bf16", 5.53, 0.0), _run("fp16", 6.09, 0.839),
                                _run("fp16-scaled", 5.5402, 0.0)])
    assert behind.startswith("Without scaling, fp16 zeroed 83.9% of the gradient entries fp32 had, and its "
                             "validation loss ended 0.55 above fp32's.")
    assert "fp16, loss scaling (first scale 2^16, final 2^19, 0 skipped): fp32's to the third decimal." in behind
    assert "bf16 (no scaling): 0.010 below fp32's." in behind
    kept = precision_verdict([_run("fp32", 5.54), _run("fp16", 5.545, 0.001)])
    assert "kept up with fp32 (+0.005): at this k the gradients clear fp16's floor" in kept
    assert precision_verdict([_run("fp16", 5.5, 0.1)]) == "No fp32 run to compare with."
    assert power_of_two(2.0 ** 19) == "2^19" and power_of_two(3e5) == "3e+05"


def test_the_lab_refuses_knob_values_it_does_not_list():
    spec = LABS[LAB]
    for bad in ({"loss_divisor": 3}, {"loss_divisor": 8192}, {"init_scale": 1000.0}, {"steps": 5},
                {"steps": 10_000}, {"growth_interval": 0}, {"precision": "fp8"}):
        with pytest.raises(ParamError):
            spec.validate(bad)


def test_the_units_race_checks_each_16_bit_product_against_fp32():
    from workbench_engines.profiling import run_cases
    from workbench_engines.profiling.machine import units_case

    case = units_case(64)
    rows = run_cases([case], warmup=0, repeats=1)
    assert [row.name for row in rows] == ["torch fp32 1T", "torch bf16 1T", "torch fp16 1T"]
    assert all(row.matches for row in rows) and all("torch fp32 1T" in row.ratios for row in rows)
    expected = case.contenders[0].run()
    assert case.check(expected, case.contenders[1].run()) is None
    wrong = case.contenders[1].run().clone()
    wrong[3, 5] += 1.0  # one output off by four times what bf16's rounding is allowed at n = 64 (0.25)
    assert "max difference" in case.check(expected, wrong)
    fp16 = case.contenders[2].run().clone()
    assert case.check(expected, fp16) is None
    fp16[0, 0] += 0.25  # within bf16's allowance, eight times fp16's (0.03)
    assert "max difference" in case.check(expected, fp16)


def test_the_units_verdict_names_the_instructions_or_their_absence():
    rows = [SimpleNamespace(name=f"torch {fmt} 1T", wall_s=wall, gflops=gflops)
            for fmt, wall, gflops in (("fp32", 0.01, 80.0), ("bf16", 0.6, 1.3), ("fp16", 0.004, 200.0))]
    bare = units_verdict(rows, {"bf16": [], "fp16": []})
    assert "bf16 ran at 1.3 GFLOP/s, 1/60 of fp32's speed (80.0): this CPU has no x86 instruction that multiplies " \
           "bf16 (no avx512_bf16 or amx_bf16)" in bare
    amx = units_verdict(rows, {"bf16": [], "fp16": ["amx_fp16"]})
    assert "fp16 ran at 200.0 GFLOP/s, 2.50x fp32's speed (80.0): this CPU multiplies fp16 itself (amx_fp16)" in amx
    assert units_verdict(rows[1:], {"bf16": [], "fp16": []}) == "No fp32 row to compare with."


async def test_the_units_lab_races_and_explains_on_this_cpu(open_lab):
    from workbench.widgets.profile_panel import ProfilePanel
    from workbench_engines.profiling.machine import sixteen_bit_units

    async with open_lab("scale.matrix_units", n=256) as h:
        assert "Next race: 256 × 256 matrices" in h.status()
        await h.press("r")
        await h.settle()
        rows = h.lab.query_one(ProfilePanel).rows
        assert [row.name for row in rows] == ["torch fp32 1T", "torch bf16 1T", "torch fp16 1T"]
        assert all(row.matches for row in rows)
        assert h.readout() == " ".join(units_verdict(rows, sixteen_bit_units()).split())
        await h.press("s")
        assert h.lab.n == 512 and "Next race: 512 × 512" in h.status()


@pytest.mark.claims
async def test_units_lab_on_the_lessons_settings_shows_what_this_cpus_16_bit_units_buy(open_lab):
    """The lesson: "On an AVX2 CPU with none of these, torch's 16-bit rows run at a small fraction of fp32's speed";
    where the instructions are present, the sentence under the table names them."""
    from workbench.widgets.profile_panel import ProfilePanel
    from workbench_engines.profiling.machine import cpu_flags, sixteen_bit_units

    assert lesson_params(LESSON, "scale.matrix_units") == {"n": 512}
    async with lesson_run(open_lab, LESSON, "scale.matrix_units") as h:
        assert h.lab.n == 512
        fp32, *sixteen = h.lab.query_one(ProfilePanel).rows
        units = sixteen_bit_units()
        for row in sixteen:
            fmt = row.name.split()[1]
            assert row.matches
            if not units[fmt]:
                if not cpu_flags() & {"avx512bw", "avx_ne_convert"}:  # else oneDNN widens in a tuned kernel
                    assert row.gflops < fp32.gflops / 2
                assert f"this CPU has no x86 instruction that multiplies {fmt}" in h.readout()
            else:
                assert f"this CPU multiplies {fmt} itself ({', '.join(units[fmt])})" in h.readout()
