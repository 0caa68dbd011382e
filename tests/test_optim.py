"""The training parts written out by hand (engines.optim) against torch's: cross-entropy and its gradient, AdamW,
global-norm clipping, the warm-up + cosine schedule, and the training loop's switch between them (issue 16)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from workbench_engines.errors import Cancelled, EngineError  # noqa: E402
from workbench_engines.models import train as train_module  # noqa: E402
from workbench_engines.models.data import TokenData  # noqa: E402
from workbench_engines.models.gpt import GPT, GPTConfig  # noqa: E402
from workbench_engines.models.train import TrainConfig, train  # noqa: E402
from workbench_engines.optim import schedule  # noqa: E402
from workbench_engines.optim.adamw import AdamW, optimizer_state_bytes  # noqa: E402
from workbench_engines.optim.clip import clip_grad_norm, clip_scale, global_norm  # noqa: E402
from workbench_engines.optim.loss import cross_entropy, cross_entropy_and_grad  # noqa: E402

pytestmark = pytest.mark.no_c_path  # torch and Python only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-6}, torch.float64: {"rtol": 1e-12, "atol": 1e-14}}


def _tol(dtype, vocab: int) -> dict[str, float]:
    """TOL for sums over ``vocab`` terms: two summation orders' rounding differs by about √V ulps."""
    grow = max(1.0, math.sqrt(vocab) / 16)
    return {key: value * grow for key, value in TOL[dtype].items()}


def _logits(rng, shape, dtype, scale=4.0):
    return torch.tensor(rng.standard_normal(shape) * scale, dtype=dtype)


def _targets(rng, shape, vocab):
    return torch.tensor(rng.integers(0, vocab, shape), dtype=torch.int64)


# ---- cross-entropy ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (13, 257), (3, 50_257), (2, 5, 11), (1, 1, 3)])
def test_cross_entropy_and_its_gradient_match_torch(rng, dtype, shape):
    x = _logits(rng, shape, dtype)
    t = _targets(rng, shape[:-1], shape[-1])
    loss, grad = cross_entropy_and_grad(x, t)
    ref_x = x.clone().requires_grad_(True)
    ref = F.cross_entropy(ref_x.reshape(-1, shape[-1]), t.reshape(-1))
    ref.backward()
    assert loss.dtype == dtype and grad.shape == x.shape
    torch.testing.assert_close(loss, ref.detach(), **_tol(dtype, shape[-1]))
    torch.testing.assert_close(grad, ref_x.grad, **_tol(dtype, shape[-1]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_autograd_op_backpropagates_the_hand_gradient_times_the_upstream_one(rng, dtype):
    x = _logits(rng, (4, 6, 9), dtype).requires_grad_(True)
    t = _targets(rng, (4, 6), 9)
    ref_x = x.detach().clone().requires_grad_(True)
    (2.5 * cross_entropy(x, t)).backward()
    (2.5 * F.cross_entropy(ref_x.reshape(-1, 9), t.reshape(-1))).backward()
    torch.testing.assert_close(x.grad, ref_x.grad, **TOL[dtype])


def test_the_autograd_op_passes_gradcheck(rng):
    x = _logits(rng, (3, 5), torch.float64, scale=1.0).requires_grad_(True)
    t = torch.tensor([0, 4, -100])
    assert torch.autograd.gradcheck(lambda z: cross_entropy(z, t), (x,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_ignored_targets_add_nothing_as_in_torch(rng, dtype):
    x = _logits(rng, (12, 10), dtype)
    t = _targets(rng, (12,), 10)
    t[rng.choice(12, 5, replace=False)] = -100
    for ignore, targets in ((-100, t), (3, torch.where(t == -100, 3, t))):
        loss, grad = cross_entropy_and_grad(x, targets, ignore_index=ignore)
        ref_x = x.clone().requires_grad_(True)
        ref = F.cross_entropy(ref_x, targets, ignore_index=ignore)
        ref.backward()
        torch.testing.assert_close(loss, ref.detach(), **TOL[dtype])
        torch.testing.assert_close(grad, ref_x.grad, **TOL[dtype])
        assert torch.all(grad[targets == ignore] == 0)
    valid = _targets(rng, (12,), 10)
    torch.testing.assert_close(cross_entropy_and_grad(x, valid, ignore_index=None)[0], F.cross_entropy(x, valid),
                               **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_logits_far_beyond_exp_overflow_give_torch_finite_loss(rng, dtype):
    # exp overflows float32 past about 88.7 and float64 past about 709.8: logits of 10,000 would give inf naively.
    x = _logits(rng, (6, 33), dtype) + 10_000.0
    x[:, 0] += 50.0
    t = _targets(rng, (6,), 33)
    assert not torch.isfinite(x.exp().sum(dim=1).log()).any()
    loss, grad = cross_entropy_and_grad(x, t)
    ref_x = x.clone().requires_grad_(True)
    F.cross_entropy(ref_x, t).backward()
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    torch.testing.assert_close(loss, F.cross_entropy(x, t), **TOL[dtype])
    torch.testing.assert_close(grad, ref_x.grad, **TOL[dtype])


def test_non_contiguous_logits_and_int32_targets(rng):
    x = _logits(rng, (17, 8), torch.float32).t()  # (8, 17), not contiguous
    t = _targets(rng, (8,), 17).to(torch.int32)
    loss, grad = cross_entropy_and_grad(x, t)
    ref_x = x.clone().requires_grad_(True)
    F.cross_entropy(ref_x, t.long()).backward()
    torch.testing.assert_close(loss, F.cross_entropy(x, t.long()), **TOL[torch.float32])
    torch.testing.assert_close(grad, ref_x.grad, **TOL[torch.float32])


def test_the_gradient_is_softmax_minus_one_hot_over_the_count():
    x = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]], dtype=torch.float64)
    loss, grad = cross_entropy_and_grad(x, torch.tensor([0, 2]))
    expected = (torch.softmax(x, dim=1) - torch.tensor([[1.0, 0, 0], [0, 0, 1.0]], dtype=torch.float64)) / 2
    torch.testing.assert_close(grad, expected)
    assert loss.item() == pytest.approx(((math.log(math.exp(2) + 1 + math.exp(-1)) - 2) + math.log(3)) / 2)


@pytest.mark.parametrize("logits, targets, match", [
    (torch.zeros(2, 3, dtype=torch.int64), torch.tensor([0, 1]), "floating point"),
    (torch.zeros(2, 3), torch.tensor([0.0, 1.0]), "integer"),
    (torch.zeros(2, 3), torch.tensor([True, False]), "integer"),
    (torch.zeros(2, 3), torch.tensor([0, 3]), r"\[0, 3\)"),
    (torch.zeros(2, 3), torch.tensor([0, -1]), r"\[0, 3\)"),
    (torch.zeros(2, 3), torch.tensor([0, 1, 2]), "targets"),
    (torch.zeros(2, 3, 4), torch.tensor([0, 1]), "targets"),
    (torch.zeros(3), torch.tensor(0), "targets"),
    (torch.zeros(2, 3), torch.tensor([-100, -100]), "every target"),
    (torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64), "at least one"),
    (torch.zeros(2, 0), torch.tensor([0, 0]), "at least one"),
    (np.zeros((2, 3)), torch.tensor([0, 1]), "torch tensors"),
])
def test_bad_input_raises_engine_error(logits, targets, match):
    with pytest.raises(EngineError, match=match):
        cross_entropy_and_grad(logits, targets)
    if isinstance(logits, torch.Tensor) and logits.is_floating_point():
        with pytest.raises(EngineError, match=match):
            cross_entropy(logits.requires_grad_(True), targets)


# ---- AdamW --------------------------------------------------------------------------------------------------------

SHAPES = [(7, 5), (1, 1), (3,), (13, 1, 2), (1,)]


def _twin_params(rng, dtype):
    ours = [torch.nn.Parameter(torch.tensor(rng.standard_normal(s), dtype=dtype)) for s in SHAPES]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    return ours, theirs


def _groups(params, weight_decay):
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def _step_both(rng, ours, theirs, opt_ours, opt_theirs, lr):
    for p, q in zip(ours, theirs):
        g = torch.tensor(rng.standard_normal(tuple(p.shape)) * rng.choice([1e-3, 1.0, 30.0]), dtype=p.dtype)
        p.grad, q.grad = g.clone(), g.clone()
    for opt in (opt_ours, opt_theirs):
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_matches_torch_step_for_step_with_decay_groups(rng, dtype):
    ours, theirs = _twin_params(rng, dtype)
    kwargs = {"lr": 3e-3, "betas": (0.9, 0.95), "eps": 1e-8}
    opt_ours, opt_theirs = AdamW(_groups(ours, 0.1), **kwargs), torch.optim.AdamW(_groups(theirs, 0.1), **kwargs)
    for step in range(6):
        _step_both(rng, ours, theirs, opt_ours, opt_theirs, lr=1e-2 * (step + 1) / 6)
        for p, q in zip(ours, theirs):
            torch.testing.assert_close(p, q, **TOL[dtype])
    saved_ours, saved_theirs = opt_ours.state_dict(), opt_theirs.state_dict()
    for i, entry in saved_theirs["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(saved_ours["state"][i][key], entry[key], **TOL[dtype])
    assert opt_ours.state_bytes() == optimizer_state_bytes(opt_theirs) == sum(
        2 * p.numel() * p.element_size() + 4 for p in ours)


def test_adamw_first_update_is_about_lr_whatever_the_gradient_scale(rng):
    lr = 1e-3
    for scale in (1e-4, 1.0, 1e4):
        p = torch.nn.Parameter(torch.zeros(50, dtype=torch.float64))
        p.grad = torch.tensor(rng.standard_normal(50) * scale)
        opt = AdamW([p], lr=lr, weight_decay=0.0)
        opt.step()
        # bias correction makes m̂ = g and √v̂ = |g| at t = 1: the step is lr·g/(|g| + ε), about lr where |g| ≫ ε
        torch.testing.assert_close(p.detach(), -lr * p.grad / (p.grad.abs() + 1e-8))
        large = p.grad.abs() > 1e-5
        torch.testing.assert_close(p.detach().abs()[large], torch.full_like(p, lr)[large], rtol=1e-3, atol=0)


def test_decoupled_decay_shrinks_weights_by_lr_times_lambda_whatever_the_gradient():
    p = torch.nn.Parameter(torch.tensor([2.0, -4.0], dtype=torch.float64))
    p.grad = torch.zeros(2, dtype=torch.float64)
    AdamW([p], lr=0.1, weight_decay=0.5).step()
    torch.testing.assert_close(p.detach(), torch.tensor([2.0, -4.0], dtype=torch.float64) * (1 - 0.1 * 0.5))


@pytest.mark.parametrize("direction", ["ours to torch", "torch to ours"])
def test_a_saved_state_resumes_under_the_other_optimizer(rng, direction):
    ours, theirs = _twin_params(rng, torch.float32)
    opt_ours, opt_theirs = AdamW(_groups(ours, 0.1), lr=1e-2), torch.optim.AdamW(_groups(theirs, 0.1), lr=1e-2)
    for _ in range(3):
        _step_both(rng, ours, theirs, opt_ours, opt_theirs, lr=1e-2)
    source = opt_ours if direction == "ours to torch" else opt_theirs
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)  # through a file, as a checkpoint goes
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    fresh_ours, fresh_theirs = _twin_params(rng, torch.float32)
    with torch.no_grad():
        for f, g, p in zip(fresh_ours, fresh_theirs, ours):
            f.copy_(p)
            g.copy_(p)
    resumed_ours = AdamW(_groups(fresh_ours, 0.7), lr=5.0)
    resumed_theirs = torch.optim.AdamW(_groups(fresh_theirs, 0.7), lr=5.0)
    resumed_ours.load_state_dict(saved)
    resumed_theirs.load_state_dict(saved)
    assert resumed_ours.param_groups[0]["weight_decay"] == 0.1 and resumed_ours.param_groups[0]["lr"] == 1e-2
    for _ in range(3):
        _step_both(rng, fresh_ours, fresh_theirs, resumed_ours, resumed_theirs, lr=4e-3)
    for p, q in zip(fresh_ours, fresh_theirs):
        torch.testing.assert_close(p, q, **TOL[torch.float32])


def test_adamw_bad_input_raises_engine_error():
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(EngineError, match="no parameters"):
        AdamW([])
    with pytest.raises(EngineError, match="more than one"):
        AdamW([{"params": [p]}, {"params": [p]}])
    with pytest.raises(EngineError, match="floating-point"):
        AdamW([torch.zeros(3, dtype=torch.int64)])
    with pytest.raises(EngineError, match="betas"):
        AdamW([p], betas=(0.9, 1.0))
    with pytest.raises(EngineError, match="lr"):
        AdamW([p], lr=-1.0)
    other = torch.optim.AdamW([p, torch.nn.Parameter(torch.zeros(2))])
    with pytest.raises(EngineError, match="sizes"):
        AdamW([p]).load_state_dict(other.state_dict())
    with pytest.raises(EngineError, match="amsgrad"):
        AdamW([p]).load_state_dict(torch.optim.AdamW([p], amsgrad=True).state_dict())


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_an_sgd_state_is_refused_by_name_and_changes_nothing(rng, momentum):
    p = torch.nn.Parameter(torch.tensor(rng.standard_normal(5), dtype=torch.float32))
    p.grad = torch.tensor(rng.standard_normal(5), dtype=torch.float32)
    sgd = torch.optim.SGD([p], lr=0.1, momentum=momentum)
    sgd.step()
    ours = AdamW([p], lr=2e-3)
    ours.step()
    before = {k: v.clone() for k, v in ours.state[0].items()}
    with pytest.raises(EngineError, match="param group 0 has no betas, eps: not an AdamW"):
        ours.load_state_dict(sgd.state_dict())
    # An Adam-shaped group over a state that holds only SGD's momentum: the entry is named, with what it holds.
    saved = sgd.state_dict()
    saved["param_groups"][0].update(betas=(0.9, 0.999), eps=1e-8)
    saved["state"] = {0: {"momentum_buffer": torch.zeros(5)}}
    with pytest.raises(EngineError, match="parameter 0 has no step, exp_avg, exp_avg_sq .it holds momentum_buffer"):
        ours.load_state_dict(saved)
    assert ours.param_groups[0]["lr"] == 2e-3 and set(ours.state[0]) == set(before)
    for key, value in before.items():
        torch.testing.assert_close(ours.state[0][key], value, rtol=0, atol=0)


# ---- clipping -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_norm", [0.05, 1.0, 1e6])
def test_clipping_matches_torch(rng, dtype, max_norm):
    ours, theirs = _twin_params(rng, dtype)
    for i, (p, q) in enumerate(zip(ours, theirs)):
        if i != 2:  # one parameter without a gradient is skipped by both
            g = torch.tensor(rng.standard_normal(tuple(p.shape)), dtype=dtype)
            p.grad, q.grad = g.clone(), g.clone()
    norm = clip_grad_norm(ours, max_norm)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert norm == pytest.approx(float(ref), rel=TOL[dtype]["rtol"])
    for p, q in zip(ours, theirs):
        if q.grad is None:
            assert p.grad is None
        else:
            torch.testing.assert_close(p.grad, q.grad, **TOL[dtype])
    after = global_norm(p.grad for p in ours if p.grad is not None)
    assert after == pytest.approx(min(norm, max_norm), rel=1e-4)


def test_a_zero_gradient_is_left_alone_and_its_norm_is_zero():
    p, q = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(4))
    p.grad, q.grad = torch.zeros(4), torch.zeros(4)
    assert clip_grad_norm([p], 1.0) == float(torch.nn.utils.clip_grad_norm_([q], 1.0)) == 0.0
    assert torch.equal(p.grad, q.grad) and clip_scale(0.0, 1.0) == 1.0
    assert clip_scale(5.0, 1.0) == pytest.approx(0.2, rel=1e-6)


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_a_non_finite_norm_raises_or_scales_as_torch_does(rng, bad):
    g = torch.tensor(rng.standard_normal(6), dtype=torch.float32)
    g[3] = bad
    p, q = torch.nn.Parameter(torch.zeros(6)), torch.nn.Parameter(torch.zeros(6))
    p.grad, q.grad = g.clone(), g.clone()
    with pytest.raises(EngineError, match="cannot be clipped"):
        clip_grad_norm([p], 1.0)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_([q], 1.0, error_if_nonfinite=True)
    torch.testing.assert_close(p.grad, g, rtol=0, atol=0, equal_nan=True)  # raising left the gradient alone
    norm = clip_grad_norm([p], 1.0, error_if_nonfinite=False)
    ref = torch.nn.utils.clip_grad_norm_([q], 1.0, error_if_nonfinite=False)
    assert (math.isnan(norm) and math.isnan(float(ref))) or norm == float(ref)
    torch.testing.assert_close(p.grad, q.grad, equal_nan=True)


def test_clipping_rejects_a_threshold_that_is_not_positive():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.ones(2)
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(EngineError, match="max_norm"):
            clip_grad_norm([p], bad)


# ---- the schedule -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("steps, warmup, ratio", [(200, 20, 0.1), (37, 5, 0.0), (50, 2, 1.0)])
def test_the_schedule_matches_torchs_linear_then_cosine_schedulers(steps, warmup, ratio):
    lr = 3e-3
    config = TrainConfig(steps=steps, lr=lr, warmup=warmup, min_lr_ratio=ratio)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps - warmup, eta_min=lr * ratio),
    ], milestones=[warmup])
    theirs = []
    for _ in range(steps):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    ours = [schedule.learning_rate(s, config) for s in range(steps)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-15)


def test_the_training_loop_still_exports_the_schedule():
    assert train_module.learning_rate is schedule.learning_rate
    assert schedule.learning_rate(10**6, TrainConfig(steps=100, lr=1.0, warmup=0)) == pytest.approx(0.1)


# ---- the training loop's switch -----------------------------------------------------------------------------------

def _data(rng) -> TokenData:
    walk = np.arange(3000) % 40
    ids = np.where(rng.random(3000) < 0.1, rng.integers(0, 40, 3000), walk).astype(np.int32)
    return TokenData(ids[:2500], ids[2500:])


def _run(data, parts, steps=10, grad_clip=0.5, **kwargs):
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=40, context=16, d_model=32, n_layers=2, n_heads=2))
    config = TrainConfig(steps=steps, batch_size=4, seq_len=16, lr=1e-2, warmup=3, eval_every=5, eval_windows=2,
                         checkpoint_every=2, grad_clip=grad_clip, parts=parts)
    return train(model, data, config, model_config={"tiny": 1}, **kwargs), model


def test_training_on_hand_parts_agrees_with_torch_parts_step_for_step(rng):
    data = _data(rng)
    (theirs, model_theirs), (ours, model_ours) = _run(data, "torch"), _run(data, "hand")
    np.testing.assert_allclose(ours.train_losses, theirs.train_losses, rtol=0, atol=1e-5)
    np.testing.assert_allclose([v for _, v in ours.val_losses], [v for _, v in theirs.val_losses], atol=1e-5)
    assert ours.train_losses[-1] < ours.train_losses[0]  # it learnt something, not just agreed
    for p, q in zip(model_ours.parameters(), model_theirs.parameters()):
        # Adam divides by √v: a weight whose gradient is near zero takes steps of up to lr from a ratio of tiny
        # numbers, so float32's rounding there moves it by ~1e-5 (WB_SEED=1693274073: 1.5e-5 at a weight of 0.017).
        torch.testing.assert_close(p, q, rtol=1e-4, atol=5e-5)
    with pytest.raises(EngineError, match="parts"):
        TrainConfig(parts="jax")


@pytest.mark.parametrize("first, then", [("torch", "hand"), ("hand", "torch"), ("hand", "hand")])
def test_a_checkpoint_resumes_under_either_parts(rng, tmp_path, first, then):
    data = _data(rng)
    unbroken, _ = _run(data, "torch")
    path = tmp_path / "run.ckpt"
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        _run(data, first, checkpoint=path, should_stop=lambda: next(calls) == 6)
    resumed, _ = _run(data, then, checkpoint=path, resume=True)
    assert resumed.resumed_from == 6
    # float32 parts summed in other orders drift apart a little each step: CI saw 1.05e-5 at step 6 of losses near
    # 3.1 (3.4e-6 of them), so the bound is relative, about 30 times float32's rounding.
    np.testing.assert_allclose(resumed.train_losses, unbroken.train_losses, rtol=1e-5, atol=0)


def test_compare_parts_trains_both_runs_alike(rng):
    from workbench_engines.optim.compare import compare_parts

    ids = rng.integers(0, 2048, 4000).astype(np.int32)
    result = compare_parts(steps=3, data=TokenData(ids[:3500], ids[3500:]))
    assert [run.parts for run in (result.torch, result.hand)] == ["torch", "hand"]
    assert len(result.torch.losses) == len(result.hand.losses) == 3 and len(result.differences) == 3
    assert result.largest_difference < 1e-5 and 1 <= result.worst_step <= 3
    assert result.torch.losses[0] == pytest.approx(math.log(2048), abs=0.1)  # an untrained model: near uniform
    assert result.hand.val_loss == pytest.approx(result.torch.val_loss, abs=1e-5)
    assert result.torch.rates == result.hand.rates and result.torch.rates[0] == pytest.approx(5e-3)
    with pytest.raises(EngineError, match="steps"):
        compare_parts(steps=0)


def _nan_after(calls: int):
    """A loss_fn whose training losses turn nan after ``calls`` training calls (validation calls are not counted)."""
    from workbench_engines.models.train import causal_lm_loss

    seen = []

    def loss_fn(model, window):
        loss = causal_lm_loss(model, window)
        if model.training:
            seen.append(1)
            if len(seen) > calls:
                return loss * float("nan")
        return loss

    return loss_fn


@pytest.mark.parametrize("parts", ["torch", "hand"])
@pytest.mark.parametrize("clip", [0.5, None])
def test_a_nan_loss_stops_either_parts_with_a_clear_message_and_saves_nothing(rng, tmp_path, parts, clip):
    path = tmp_path / "run.ckpt"
    with pytest.raises(EngineError, match="diverged at step 1: the loss is nan"):
        _run(_data(rng), parts, loss_fn=_nan_after(0), checkpoint=path, grad_clip=clip)
    assert not list(tmp_path.iterdir())  # neither the checkpoint nor a half-written .tmp


@pytest.mark.parametrize("parts", ["torch", "hand"])
def test_a_nan_loss_mid_run_leaves_the_last_checkpoint_whole_and_resumable(rng, tmp_path, parts):
    data = _data(rng)
    path = tmp_path / "run.ckpt"
    with pytest.raises(EngineError, match="diverged at step 4: the loss is nan"):
        _run(data, parts, loss_fn=_nan_after(3), checkpoint=path)  # checkpoints every 2 steps: the last at 2
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]
    assert train_module.load_checkpoint(path)["step"] == 2
    unbroken, _ = _run(data, "torch")
    resumed, _ = _run(data, parts, checkpoint=path, resume=True)
    assert resumed.resumed_from == 2
    np.testing.assert_allclose(resumed.train_losses, unbroken.train_losses, rtol=0, atol=1e-5)


@pytest.mark.parametrize("parts", ["torch", "hand"])
@pytest.mark.parametrize("clip", [0.5, None])
def test_a_nan_gradient_under_a_finite_loss_stops_the_run_before_its_step(rng, parts, clip):
    from workbench_engines.models.train import causal_lm_loss

    def nan_gradient(model, window):
        first = next(model.parameters())
        return causal_lm_loss(model, window) + torch.sqrt(first.sum() * 0)  # adds 0; d√x/dx at 0 is inf, ·0: nan

    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=40, context=16, d_model=32, n_layers=2, n_heads=2))
    start = [p.detach().clone() for p in model.parameters()]
    config = TrainConfig(steps=3, batch_size=4, seq_len=16, warmup=1, grad_clip=clip, parts=parts)
    match = "cannot be clipped" if parts == "hand" and clip else "diverged at step 1: the gradients' global norm is nan"
    with pytest.raises(EngineError, match=match):
        train(model, _data(rng), config, loss_fn=nan_gradient)
    for p, q in zip(model.parameters(), start):
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=0)  # the step was not taken


def test_worst_step_finds_a_nan_difference_and_ties_go_to_the_first():
    from workbench_engines.optim.compare import PartsComparison, PartsRun

    def compare(theirs, ours):
        return PartsComparison(PartsRun("torch", theirs), PartsRun("hand", ours))

    diverged = compare([7.6, 7.0, math.nan, 6.0], [7.6, 7.5, 7.1, 6.5])
    assert diverged.worst_step == 3 and math.isnan(diverged.largest_difference)
    tied = compare([5.0, 4.0, 3.0], [5.0, 4.5, 3.5])
    assert tied.worst_step == 2 and tied.largest_difference == 0.5
    assert compare([2.0], [2.0]).worst_step == 1 and compare([2.0], [2.0]).largest_difference == 0.0
    assert compare([], []).worst_step == 0 and compare([], []).largest_difference == 0.0
