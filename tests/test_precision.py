"""Mixed precision (issue 23): the formats' figures, the hand-written loss scaler against torch.amp.GradScaler,
the overflow and zeroed-entry counts on cases with known answers, and a tiny GPT trained in each precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench_engines.errors import EngineError
from workbench_engines.models.data import TokenData
from workbench_engines.models.gpt import GPT, GPTConfig
from workbench_engines.models.precision import (
    FORMATS,
    LossScaler,
    Settings,
    compare_precisions,
    count_overflowed,
    count_zeroed,
    train_precision,
)

TINY = {"vocab_size": 64, "d_model": 32, "n_layers": 1, "n_heads": 2}
"""A GPT of about 16k weights: a step in fp16 on the CPU takes milliseconds."""
TINY_RUN = {"steps": 30, "batch_size": 4, "seq_len": 16, "lr": 1e-2, "warmup": 3, "eval_windows": 8}
"""30 steps of 64 tokens, enough for the tiny GPT to learn most of the bigram chain below."""
TRACKING_BOUND = 5e-3
"""Nats by which a loss-scaled fp16 step's loss (and validation loss) may differ from fp32's on the tiny run. fp16
keeps 11 significant bits (a rounding of up to 2^-11 ≈ 4.9e-4 relative) in every matmul's inputs and outputs; over
18 seeds the largest difference in 30 steps was 1.7e-4 at k = 65,536 (6e-4 at k = 1), so 5e-3 leaves room for other
seeds and is still a hundredth of the 0.6 nats or more plain fp16 loses at k = 65,536."""


def chain(rng: np.random.Generator, vocab: int = 64, tokens: int = 20_000) -> TokenData:
    """Tokens from a random bigram chain: each token is followed by its image under a fixed permutation, or by a
    random token one time in five. A model can learn it (about 1.2 nats of entropy per token) in a few steps."""
    successor = rng.permutation(vocab)
    noise, random_ids = rng.random(tokens) < 0.2, rng.integers(0, vocab, tokens)
    ids = np.empty(tokens, np.int32)
    ids[0] = 0
    for i in range(1, tokens):
        ids[i] = random_ids[i] if noise[i] else successor[ids[i - 1]]
    split = tokens * 9 // 10
    return TokenData(ids[:split], ids[split:])


# ---- formats -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_format_figures_are_torchs_and_half_the_smallest_subnormal_rounds_to_zero(name, dtype):
    fmt, info = FORMATS[name], torch.finfo(dtype)
    assert (fmt.largest, fmt.smallest_normal, fmt.epsilon) == (info.max, info.smallest_normal, info.eps)
    tiny = fmt.smallest_subnormal
    assert torch.tensor(tiny, dtype=torch.float64).to(dtype).item() == tiny
    assert torch.tensor(tiny / 2, dtype=torch.float64).to(dtype).item() == 0.0  # a tie, rounded to even: zero
    assert torch.tensor(tiny * 0.75, dtype=torch.float64).to(dtype).item() == tiny
    assert torch.tensor(fmt.largest * 1.01, dtype=torch.float64).to(dtype).item() == float("inf")
    assert FORMATS["fp16"].smallest_subnormal == 2.0 ** -24 and FORMATS["fp16"].largest == 65504.0


# ---- the loss scaler ---------------------------------------------------------------------------------------------

def test_loss_scaler_follows_gradscaler_scale_for_scale_and_skip_for_skip(rng):
    interval = int(rng.integers(1, 5))
    init = 2.0 ** int(rng.integers(4, 20))
    pattern = rng.random(80) < 0.25  # True: this step's gradients hold an inf or a nan
    weight = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(6)).float())
    optimizer = torch.optim.SGD([weight], lr=0.1)
    reference = torch.amp.GradScaler("cpu", init_scale=init, growth_interval=interval)
    ours = LossScaler(scale=init, growth_interval=interval)
    x = torch.from_numpy(rng.standard_normal(6)).float()
    for step, bad in enumerate(pattern):
        optimizer.zero_grad()
        assert ours.scale == reference.get_scale(), step
        reference.scale((weight * x).sum()).backward()
        if bad:
            weight.grad[int(rng.integers(0, 6))] = float("inf") if rng.random() < 0.5 else float("nan")
        grad = weight.grad.clone()
        before = weight.detach().clone()
        reference.step(optimizer)
        reference.update()
        found = ours.unscale([grad])
        ours.update(found)
        assert found == bool(bad) and found == bool(torch.equal(weight.detach(), before)), step  # skipped iff found
        assert ours.clean_steps == reference._get_growth_tracker(), step
        if not found:
            torch.testing.assert_close(grad, x, rtol=0, atol=0)  # a power-of-two scale divides out exactly
    assert ours.scale == reference.get_scale()


def test_loss_scaler_backs_off_on_overflow_grows_after_clean_steps_and_stops_below_fp32s_largest():
    scaler = LossScaler(scale=2.0 ** 16, growth_interval=3)
    for overflow in (False, False, True, True, False, False, False):
        scaler.update(overflow)
    assert (scaler.scale, scaler.clean_steps) == (2.0 ** 15, 0)  # two halvings, then three clean steps: one doubling
    top = LossScaler(scale=2.0 ** 126, growth_interval=1)
    for _ in range(3):
        top.update(False)
    assert top.scale == 2.0 ** 127  # 2^128 is inf in fp32, where GradScaler keeps its scale
    reference = torch.amp.GradScaler("cpu", init_scale=2.0 ** 126, growth_interval=1)
    weight = torch.nn.Parameter(torch.ones(2))
    for _ in range(3):
        reference.scale(weight.sum()).backward()
        reference.step(torch.optim.SGD([weight], lr=0.0))
        reference.update()
    assert reference.get_scale() == top.scale
    with pytest.raises(EngineError):
        LossScaler(scale=0.0)
    with pytest.raises(EngineError):
        LossScaler(growth_interval=0)


# ---- counting ----------------------------------------------------------------------------------------------------

def test_count_overflowed_and_count_zeroed_on_made_up_gradients(rng):
    grads = [torch.from_numpy(rng.standard_normal((5, 7))).float(), torch.from_numpy(rng.standard_normal(4)).float()]
    grads[0][1, 2], grads[0][4, 6], grads[1][0] = float("inf"), float("-inf"), float("nan")
    assert count_overflowed([*grads, None]) == 3
    reference = [torch.from_numpy(rng.standard_normal((5, 7))).float(),
                 torch.from_numpy(rng.standard_normal(4)).float()]
    reference[0][0, 0] = 0.0  # zero in both: not counted
    low = [reference[0].clone(), None]  # the second parameter got no gradient at all: all 4 entries lost
    low[0][0, 0] = low[0][2, 3] = low[0][3, 1] = 0.0
    assert count_zeroed(low, reference) == (2 + 4, 34 + 4)


def test_an_fp16_backward_zeroes_exactly_the_rows_whose_upstream_gradient_is_below_half_the_smallest_subnormal(rng):
    inputs, outputs = int(rng.integers(3, 40)), int(rng.integers(4, 40))
    layer = torch.nn.Linear(inputs, outputs, bias=False)
    x = torch.from_numpy(1 + rng.random((1, inputs))).float()  # (1, in) entries in [1, 2)
    small = rng.random(outputs) < 0.5
    # dL/dy_j = c_j: 2^-26 rounds to 0 in fp16 (below half of 2^-24), 2^-10 survives; dW_ji = c_j · x_i.
    c = torch.from_numpy(np.where(small, 2.0 ** -26, 2.0 ** -10)).float()  # (out,)
    with torch.autocast("cpu", dtype=torch.float16):
        y = layer(x)  # (1, out) fp16
    (y.float() * c).sum().backward()
    reference = torch.outer(c, x[0])  # the fp32 dW: every entry nonzero
    zeroed, nonzero = count_zeroed([layer.weight.grad], [reference])
    assert (zeroed, nonzero) == (int(small.sum()) * inputs, outputs * inputs)


# ---- training ----------------------------------------------------------------------------------------------------

def test_overflowing_steps_are_skipped_and_the_scale_backs_off(rng):
    torch.manual_seed(int(rng.integers(2**31)))
    model = GPT(GPTConfig(context=16, **TINY))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    settings = Settings(**{**TINY_RUN, "steps": 3}, init_scale=2.0 ** 100, reference_every=0,
                        seed=int(rng.integers(1000)))
    run = train_precision(model, chain(rng), "fp16-scaled", settings)
    assert [s.scale for s in run.steps] == [2.0 ** 100, 2.0 ** 99, 2.0 ** 98] and run.final_scale == 2.0 ** 97
    assert run.skipped == 3 and all(s.overflowed > 0 for s in run.steps)
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), before[name]), name  # no step was taken


def test_scaled_fp16_and_bf16_track_fp32_and_plain_fp16_loses_most_gradients_at_a_large_divisor(rng):
    settings = Settings(**TINY_RUN, loss_divisor=2 ** 16, seed=int(rng.integers(1000)))
    fp32, bf16, plain, scaled = compare_precisions(settings, data=chain(rng), model=TINY)
    # fp16-scaled's backward runs at S / k = 1 for 20 steps, then 2: the first steps see fp16 plain's gradients
    # at k = 1, the k every other row trains at except plain fp16.
    assert [s.scale for s in scaled.steps[18:22]] == [2.0 ** 16] * 2 + [2.0 ** 17] * 2
    worst = max(abs(a - b) for a, b in zip(scaled.losses, fp32.losses))
    assert worst < TRACKING_BOUND, worst
    assert abs(scaled.val_loss - fp32.val_loss) < TRACKING_BOUND
    assert abs(bf16.val_loss - fp32.val_loss) < 0.01  # 8 significant bits; at most 4e-4 apart over 10 seeds
    assert bf16.zeroed_share < 0.01 and scaled.zeroed_share < 0.01
    assert plain.zeroed_share > 0.5  # every dL/dlogit of a wrong token is below 2^-25 here
    assert plain.val_loss > fp32.val_loss + 0.3 and plain.tail_loss() > fp32.tail_loss() + 0.3
    assert fp32.final_scale is None and scaled.skipped == 0 and plain.overflowed == 0
    assert all(s.zeroed is None for s in fp32.steps)


def test_settings_and_precisions_out_of_range_are_refused():
    for bad in ({"steps": 0}, {"loss_divisor": 0}, {"growth_interval": 0}, {"reference_every": -1}, {"lr": 0.0}):
        with pytest.raises(EngineError):
            Settings(**bad)
    with pytest.raises(EngineError, match="precision"):
        compare_precisions(Settings(steps=1), ["fp8"], data=chain(np.random.default_rng(0), tokens=200), model=TINY)
