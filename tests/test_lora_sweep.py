"""The genre adaptation sweep (engines.finetune.genre) on a tiny budget: what it holds out, what each regime trains,
reproducibility, progress and cancel, NaN, and bad settings (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench_engines.errors import EngineError
from workbench_engines.finetune import genre
from workbench_engines.finetune.genre import HELD_OUT, SweepConfig, genre_data, run_sweep
from workbench_engines.finetune.lora import LoRALinear
from workbench_engines.finetune.memory import lora_trainable, small_gpt
from workbench_engines.models.small_gpt import load

pytestmark = pytest.mark.no_c_path  # torch only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged


TINY = {"steps": 2, "batch_size": 2, "seq_len": 32, "eval_windows": 3}


def test_held_out_plays_are_not_trained_on_and_only_their_tails_are_scored():
    data = genre_data("tragedies")
    assert data.held_out == HELD_OUT["tragedies"]
    assert not set(data.held_out) & set(data.train_plays)
    assert len(data.train_plays) == 4  # six tragedies in the corpus, two held out
    assert data.train.dtype == np.int32 and data.val.dtype == np.int32
    assert 0 < len(data.val) < len(data.train) / 20  # the final 5% of two plays against four whole ones


def test_a_tiny_sweep(rng):
    seed = int(rng.integers(2**31))
    config = SweepConfig(genre="comedies", ranks=(1, 4), targets=("attn.q", "attn.kv"), seed=seed, **TINY)
    fractions: list[float] = []
    threads: set[int] = set()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = run_sweep(config, lambda fraction, what: (fractions.append(fraction),
                                                           threads.add(torch.get_num_threads())), threads=1)
        assert threads == {1} and torch.get_num_threads() == 2  # pinned for the sweep, restored after
    finally:
        torch.set_num_threads(before)
    assert [r.name for r in result.regimes] == ["r=1", "r=4", "full"]
    assert len({r.val_before for r in result.regimes}) == 1
    shape = small_gpt()
    for r in result.regimes[:2]:
        assert r.trainable == lora_trainable(shape, config.targets, r.rank)
        # The live AdamW: two fp32 moments a weight, a 4-byte step per tensor (an A and a B per adapted matrix).
        assert r.optimizer_bytes == 8 * r.trainable + 4 * shape.n_layers * len(config.targets) * 2
        sv = np.asarray(r.delta_singular_values)
        assert sv[0] > 0 and np.all(sv[r.rank:] < 1e-6 * sv[0])  # ΔW = BA has rank at most r
        assert len(r.train_losses) == config.steps and all(np.isfinite(r.train_losses))
    full = result.regime("full")
    assert full.trainable == load("target").model.parameter_count()
    assert full.optimizer_bytes == 8 * full.trainable + 4 * len(list(load("target").model.parameters()))
    assert np.count_nonzero(np.asarray(full.delta_singular_values) > 1e-9) > 4
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    # The same seed replays the same sweep.
    again = run_sweep(config)
    assert [r.val_after for r in again.regimes] == [r.val_after for r in result.regimes]
    with pytest.raises(EngineError, match="no regime 'r=2'"):
        result.regime("r=2")


def test_the_base_model_is_left_unchanged():
    model = load("target").model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run_sweep(SweepConfig(ranks=(2,), **TINY))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(isinstance(m, LoRALinear) for m in model.modules())


def test_cancel_stops_the_sweep():
    class Stop(Exception):
        """Raised by the progress callback: the learner's cancel."""

    calls = []

    def progress(fraction: float, what: str) -> None:
        calls.append(what)
        if "step" in what:
            raise Stop

    with pytest.raises(Stop):
        run_sweep(SweepConfig(ranks=(1, 2), **TINY), progress)
    assert calls[0] == "encoding the histories and loading the small GPT"
    assert len(calls) == 2 and calls[1].startswith("r=1: step 1/2, loss ")


def test_a_nan_loss_stops_with_a_clear_message(monkeypatch):
    real = genre.causal_lm_loss

    def poisoned(model, windows):
        return real(model, windows) * float("nan") if model.training else real(model, windows)

    monkeypatch.setattr(genre, "causal_lm_loss", poisoned)
    with pytest.raises(EngineError, match=r"r=1: the loss became nan at step 1; lower the learning rate"):
        run_sweep(SweepConfig(ranks=(1,), **TINY))


def test_a_rank_larger_than_a_layer_is_refused_before_training():
    with pytest.raises(EngineError, match=r"cannot have rank above min\(in, out\) = 128"):
        run_sweep(SweepConfig(ranks=(129,), full=False, **TINY))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"genre": "romances"}, "unknown genre"),
    ({"ranks": (), "full": False}, "nothing to run"),
    ({"ranks": (0,)}, "positive integers"),
    ({"steps": 0}, "steps must be positive"),
    ({"lora_lr": float("nan")}, "lora_lr must be a positive"),
    ({"alpha": 0.0}, "alpha must be a positive"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(EngineError, match=message):
        SweepConfig(**kwargs)
