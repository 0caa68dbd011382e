"""The sentiment classifier on MiniLM (issue 16): metrics, the three regimes, bad input, and the bench's cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.finetune.classifier import (
    Settings,
    Subset,
    accuracy,
    macro_f1,
    score,
)
from workbench_engines.finetune.sentiment_data import Sentence, available
from tests.conftest import minilm_installed

pytestmark = pytest.mark.no_c_path  # torch only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged


needs_data = pytest.mark.skipif(not (available() and minilm_installed()),
                                reason="needs the sentiment data and the minilm extra")

POSITIVE = ["A gorgeous, witty, seductive movie.", "One of the year's best films.", "Funny and touching.",
            "A triumph of acting and of heart."]
NEGATIVE = ["Dull, lifeless and far too long.", "A boring mess.", "The worst script in years.",
            "Tedious, shallow and utterly forgettable."]


def tiny(train: int = 8, held_out: int = 4) -> Subset:
    """Hand-written sentences, half positive: a few steps on them take a second."""
    texts = [(t, 2.0) for t in POSITIVE] + [(t, -2.0) for t in NEGATIVE]
    sentences = tuple(Sentence(t, v, "test", str(i)) for i, (t, v) in enumerate(texts))
    order = [0, 4, 1, 5, 2, 6, 3, 7]
    picked = tuple(sentences[i] for i in order)
    return Subset(picked[:train], picked[:held_out], "test", 0)


# --- metrics ------------------------------------------------------------------------------------------------------

def test_metrics_match_a_case_worked_by_hand():
    predicted = [True, True, False, False, True]
    truth = [True, False, False, True, True]
    assert accuracy(predicted, truth) == pytest.approx(3 / 5)
    # positive: TP 2, FP 1, FN 1 -> 4/6; negative: TP 1, FP 1, FN 1 -> 2/4
    assert macro_f1(predicted, truth) == pytest.approx((4 / 6 + 2 / 4) / 2)
    # always the majority: F1 of the other class is 0, so macro-F1 is half of the majority's F1
    assert macro_f1([True] * 4, [True, True, True, False]) == pytest.approx((2 * 3 / (2 * 3 + 1)) / 2)
    assert macro_f1([True, False], [True, False]) == 1.0
    assert score([False], [False]).macro_f1 == pytest.approx(0.5)  # the positive class never appears: F1 0


def test_metrics_match_scikit_learn_on_random_labels(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    for n in (1, 2, 7, 100):
        predicted, truth = rng.random(n) < 0.6, rng.random(n) < 0.5
        assert accuracy(predicted, truth) == pytest.approx(metrics.accuracy_score(truth, predicted))
        assert macro_f1(predicted, truth) == pytest.approx(
            metrics.f1_score(truth, predicted, average="macro", labels=[False, True], zero_division=0))


def test_metrics_refuse_empty_or_mismatched_input():
    with pytest.raises(EngineError, match="no predictions"):
        accuracy([], [])
    with pytest.raises(EngineError, match="one length"):
        macro_f1([True, False], [True])


# --- settings and data -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("settings", "message"), [
    (Settings(regime="lora-ish"), "unknown regime"),
    (Settings(task="ranking"), "unknown task"),
    (Settings(steps=0), "steps and batch_size"),
    (Settings(learning_rate=float("nan")), "learning rate"),
    (Settings(learning_rate=-1.0), "learning rate"),
])
def test_bad_settings_raise(settings, message):
    with pytest.raises(EngineError, match=message):
        settings.check()


@needs_data
def test_split_is_disjoint_seeded_and_checked():
    from workbench_engines.finetune.classifier import split

    data = split(50, 30, seed=3)
    assert len(data.train) == 50 and len(data.held_out) == 30
    assert not {s.id for s in data.train} & {s.id for s in data.held_out}
    assert split(50, 30, seed=3) == data and split(50, 30, seed=4) != data
    with pytest.raises(EngineError, match="at least one sentence"):
        split(0, 10)
    with pytest.raises(EngineError, match="corpus has 10,605"):
        split(10_000, 1_000)


@needs_data
def test_empty_training_set_is_refused():
    from workbench_engines.finetune.classifier import finetune

    with pytest.raises(EngineError, match="got 0 and 4"):
        finetune(Subset((), tiny().held_out, "test", 0), Settings())


# --- the regimes --------------------------------------------------------------------------------------------------

@needs_data
@pytest.mark.parametrize(("regime", "trainable", "tensors"), [
    ("head", 384 * 2 + 2, 2),
    # 6 layers x (W_q, W_v) x r (in + out), and the head; tensors: an A and a B per adapted matrix, and the head's two
    ("lora", 6 * 2 * 2 * (384 + 384) + 384 * 2 + 2, 6 * 2 * 2 + 2),
    # 3 embeddings + their LayerNorm's 2, then per layer 4 biased attention matrices, 2 biased FFN ones, 2 LayerNorms
    ("full", 22_565_376 + 384 * 2 + 2, 3 + 2 + 6 * (8 + 4 + 4) + 2),
])
def test_each_regime_fits_one_batch_and_counts_what_it_trains(regime, trainable, tensors):
    from workbench_engines.finetune.classifier import finetune

    rates = {"head": 5e-2, "lora": 1e-2, "full": 1e-4}
    seen = []
    result = finetune(tiny(), Settings(regime=regime, rank=2, steps=4, batch_size=8, learning_rate=rates[regime]),
                      progress=lambda fraction, what: seen.append(fraction), threads=1)
    assert result.losses[-1] < result.losses[0]  # the same 8 sentences every step: the loss must fall
    assert result.trainable == trainable
    # The live AdamW's state: two fp32 moments per weight and one fp32 step counter per tensor.
    assert result.optimizer_state_bytes == 8 * trainable + 4 * tensors
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert result.metrics.n == 4 and len(result.predictions) == 4 and len(result.step_seconds) == 4


@needs_data
def test_regression_task_trains_on_valence():
    from workbench_engines.finetune.classifier import finetune

    result = finetune(tiny(), Settings(regime="head", task="regression", steps=6, batch_size=8, learning_rate=1e-3))
    assert result.losses[-1] < result.losses[0]
    assert 0.0 <= result.metrics.accuracy <= 1.0


@needs_data
def test_a_loss_that_stops_being_finite_raises_and_names_the_step():
    from workbench_engines.finetune.classifier import finetune

    with pytest.raises(EngineError, match=r"loss became (nan|inf) at step \d"):
        finetune(tiny(), Settings(regime="head", steps=20, batch_size=8, learning_rate=1e30))


@needs_data
def test_should_stop_cancels_between_steps_and_a_bad_rank_is_refused():
    from workbench_engines.finetune.classifier import finetune

    calls = []
    with pytest.raises(Cancelled, match="step 3 of 10"):
        finetune(tiny(), Settings(regime="lora", rank=1, steps=10, batch_size=8),
                 should_stop=lambda: len(calls) > 1, progress=lambda f, w: calls.append(f) if "step" in w else None)
    with pytest.raises(EngineError, match="rank"):
        finetune(tiny(), Settings(regime="lora", rank=0, steps=1))
    with pytest.raises(EngineError, match="larger than"):
        finetune(tiny(), Settings(regime="lora", rank=385, steps=1))


@needs_data
@pytest.mark.slow
def test_head_only_beats_the_majority_class_and_the_lexicon_judge_on_a_fixed_seed():
    from workbench_engines.finetune.classifier import finetune, lexicon_baseline, majority_baseline, split

    data = split(300, 200, seed=0)
    result = finetune(data, Settings(regime="head", steps=60, batch_size=16, seed=0), threads=1)
    majority = majority_baseline(data.train, data.held_out)
    # seed 0, one thread: head 0.725 / 0.719, majority 0.480 / 0.324, lexicon 0.625 / 0.623 (accuracy / macro-F1)
    assert result.metrics.accuracy > majority.accuracy + 0.1
    assert result.metrics.macro_f1 > lexicon_baseline(data.held_out).macro_f1


# --- the benchmark ------------------------------------------------------------------------------------------------

@needs_data
@pytest.mark.slow
def test_bench_quick_validates_every_regime_and_draws_the_table():
    from workbench_engines.finetune import bench
    from workbench_engines.profiling.bench import run_cases

    cases = bench.regime_cases(quick=True)
    assert [c.contenders[0].name for c in cases] == ["head only", "LoRA r=1", "LoRA r=8", "full"]
    rows = run_cases(cases, warmup=0, repeats=2)
    assert all(row.matches for row in rows)
    trainable = [row.extra["trainable"] for row in rows]
    assert trainable == sorted(trainable)  # head < LoRA r=1 < r=8 < full
    assert all(math.isfinite(row.wall_s) and row.wall_s > 0 for row in rows)
    table = bench.summary(rows)
    assert "LoRA r=8" in table and "lexicon judge" in table and "22,566,146" in table
    # Each regime's model and AdamW state were let go when the next one started: only the last is alive.
    runs = [c.contenders[0].run for c in cases]
    assert [run.trainer is None for run in runs] == [True, True, True, False]
    assert "KiB" in table and "MiB" in table and " kB" not in table  # one unit system: binary


def test_bench_check_flags_a_non_finite_step():
    from workbench_engines.finetune.bench import Stepped, check

    budget = object()
    good = Stepped(0.5, budget, None, None)
    assert check(good, good) is None
    assert "nan" in check(good, Stepped(float("nan"), budget, None, None))
    assert "continue" in check(good, Stepped(0.5, object(), None, None))
    assert np.isfinite(good.loss)
