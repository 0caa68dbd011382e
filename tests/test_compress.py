"""Integer weights (engines.compress): RTN's bound, GPTQ against its reference code, GPTQ and AWQ against RTN.

The quality tests run on real tensors: the shipped small GPT's layers, fed
windows of the plays' train split (calibration) and of its validation split
(held out, never calibrated on). Their figures print with ``-s``:

    .venv/bin/python -m pytest -q -p no:xdist -s tests/test_compress.py
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import needs_smollm
from workbench_engines.compress import (
    Hessian,
    awq_quantize,
    calibration_windows,
    capture_inputs,
    dequantize,
    fake_quantize,
    gptq_quantize,
    layer_outliers,
    outlier_profile,
    output_error,
    quantize,
    quantize_model,
)
from workbench_engines.compress import rtn
from workbench_engines.errors import Cancelled, EngineError

pytestmark = pytest.mark.no_c_path  # torch and NumPy only: without the C build just the tokenizer feeding it changes, and
# the tokenizer tests run that path both ways

LAYER = "blocks.5.ffn.down"
"""A small-GPT layer with the widest inputs (512) and the largest activations: where the methods differ most."""


@pytest.fixture(scope="module")
def target():
    from workbench_engines.models import small_gpt

    return small_gpt.load("target")


@pytest.fixture(scope="module")
def splits(target):
    from workbench_engines.models.data import encode_corpus

    return encode_corpus(target.tokenizer)


@pytest.fixture(scope="module")
def calibration(target):
    """8 windows of 128 tokens from the train split (seed 0)."""
    return calibration_windows(target.tokenizer, windows=8, length=128)


@pytest.fixture(scope="module")
def layer_data(target, splits):
    """LAYER's weight, the Hessian of its inputs on train windows, and that of its inputs on held-out windows."""
    train = calibration_windows(target.tokenizer, windows=8, length=256, seed=1)
    held_out = splits.val[:2048].astype(np.int64).reshape(8, 256)
    hessians = []
    for ids in (train, held_out):
        x = capture_inputs(target.model, LAYER, ids, max_rows=2048)
        h = Hessian(x.shape[1])
        h.add(x)
        hessians.append(h)
    weight = dict(target.model.named_modules())[LAYER].weight.detach().clone()
    return weight, hessians[0], hessians[1]


# ---------------------------------------------------------------- round to nearest


def test_rtn_worked_examples():
    w = torch.tensor([[-1.0, 0.0, 0.5, 2.0]])
    # Zero point, 2 bits: range [-1, 2] in 3 steps of 1, zero = 1; 0.5 rounds half to even, to 0.
    qw = quantize(w, 2, symmetric=False, group="channel")
    assert qw.codes.tolist() == [[0, 1, 1, 3]] and qw.zero.item() == 1 and qw.scale.item() == 1
    assert qw.dequantize().tolist() == [[-1.0, 0.0, 0.0, 2.0]]
    # absmax, 3 bits: levels -3..3, scale 2/3; w / scale = -1.5, 0, 0.75, 3 -> -2, 0, 1, 3.
    qw = quantize(w, 3, symmetric=True, group="tensor")
    assert qw.codes.tolist() == [[-2, 0, 1, 3]]
    assert qw.dequantize() == pytest.approx(torch.tensor([[-4 / 3, 0.0, 2 / 3, 2.0]]))


@pytest.mark.parametrize("bits", rtn.BITS)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group", ["tensor", "channel", 32])
def test_rtn_moves_each_weight_by_at_most_half_a_step(rng, target, bits, symmetric, group):
    real = dict(target.model.named_modules())["blocks.2.ffn.gate"].weight.detach()  # (512, 192)
    rows, cols = int(rng.integers(1, 40)), 32 * int(rng.integers(1, 6))
    scale = float(rng.choice([1e-3, 1.0, 100.0]))
    for w in (real, torch.from_numpy(rng.standard_normal((rows, cols)).astype(np.float32) * scale)):
        qw = quantize(w, bits, symmetric=symmetric, group=group)
        low, high = rtn.levels(bits, symmetric)
        assert qw.codes.shape == w.shape and low <= int(qw.codes.min()) and int(qw.codes.max()) <= high
        w_hat = dequantize(qw)
        bound = qw.error_bound()
        assert ((w - w_hat).abs() <= bound * (1 + 1e-5) + 1e-7 * w.abs().max()).all()
        assert torch.equal(w_hat, fake_quantize(w, bits, symmetric=symmetric, group=group))
        runs = {"tensor": (1, 1), "channel": (w.shape[0], 1), 32: (w.shape[0], w.shape[1] // 32)}[group]
        assert tuple(qw.scale.shape) == runs


def test_rtn_error_falls_with_bits_and_finer_groups(target):
    w = dict(target.model.named_modules())["blocks.2.ffn.gate"].weight.detach()

    def error(bits, group):
        return float((w - fake_quantize(w, bits, group=group)).norm() / w.norm())

    by_bits = [error(b, 64) for b in (2, 3, 4, 8)]
    by_group = [error(4, g) for g in ("tensor", "channel", 64, 16)]
    print(f"\nRTN relative weight error, blocks.2.ffn.gate, group 64, 2/3/4/8 bits: {by_bits}")
    print(f"RTN relative weight error, 4 bits, per tensor / channel / g64 / g16: {by_group}")
    assert by_bits == sorted(by_bits, reverse=True) and by_bits[-1] < 0.01
    assert by_group == sorted(by_group, reverse=True)
    # 2 bits, absmax: every weight becomes -s, 0 or +s; most small weights collapse to 0.
    two = quantize(w, 2, symmetric=True, group=64)
    assert set(two.codes.unique().tolist()) <= {-1, 0, 1}
    assert float((two.codes == 0).float().mean()) > 0.5


def test_rtn_accepts_numpy_and_counts_its_bits(rng):
    w = rng.standard_normal((8, 64)).astype(np.float32)
    qw = quantize(w, 4, group=32)
    assert torch.equal(qw.dequantize(), fake_quantize(torch.from_numpy(w), 4, group=32))
    assert qw.bits_per_weight() == pytest.approx(4 + 32 / 32)  # fp16 scale and zero per 32 weights


@pytest.mark.parametrize("bad, kwargs, error, match", [
    (np.ones((4, 64), np.float32), {"bits": 5}, ValueError, "unsupported bit width 5"),
    (np.ones((4, 64), np.float32), {"bits": 16}, ValueError, "unsupported bit width"),
    (np.ones((4, 64), np.float32), {"bits": 4.0}, TypeError, "bits must be an integer"),
    (np.ones((4, 64), np.float32), {"group": 48}, ValueError, "does not divide a row of 64"),
    (np.ones((4, 64), np.float32), {"group": 0}, ValueError, "group"),
    (np.ones((4, 64), np.float32), {"group": "row"}, ValueError, "'tensor', 'channel'"),
    (np.full((4, 64), np.nan, np.float32), {}, ValueError, "inf or nan"),
    (np.array([[1.0, np.inf]], np.float32), {}, ValueError, "inf or nan"),
    (np.ones(64, np.float32), {}, ValueError, r"\(rows, cols\) matrix"),
    (np.ones((2, 4, 64), np.float32), {}, ValueError, r"\(rows, cols\) matrix"),
    (np.ones((0, 64), np.float32), {}, ValueError, "empty"),
    (np.ones((4, 64), np.int32), {}, TypeError, "floating-point"),
    ([[1.0, 2.0]], {}, TypeError, "torch tensor or a numpy array"),
])
def test_rtn_refuses_bad_input(bad, kwargs, error, match):
    with pytest.raises(error, match=match):
        quantize(bad, **{"bits": 4, **kwargs})


# ---------------------------------------------------------------- GPTQ


def reference_gptq(w, h, bits, groupsize, blocksize=128, percdamp=0.01):
    """GPTQ.fasterquant and Quantizer.find_params (asymmetric) of github.com/IST-DASLab/gptq, transcribed."""
    maxq = torch.tensor(2**bits - 1)

    def find_params(x):
        tmp = torch.zeros(x.shape[0])
        xmin = torch.minimum(x.min(1)[0], tmp)
        xmax = torch.maximum(x.max(1)[0], tmp)
        tmp = (xmin == 0) & (xmax == 0)
        xmin[tmp], xmax[tmp] = -1, +1
        scale = (xmax - xmin) / maxq
        return scale.reshape(-1, 1), torch.round(-xmin / scale).reshape(-1, 1)

    def quantize_(x, scale, zero):
        q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
        return scale * (q - zero)

    W, H = w.clone().float(), h.clone()
    columns = W.shape[1]
    scale, zero = find_params(W)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    Q = torch.zeros_like(W)
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1 = W[:, i1:i2].clone()
        Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            w_, d = W1[:, i], Hinv1[i, i]
            if groupsize != -1 and (i1 + i) % groupsize == 0:
                scale, zero = find_params(W[:, (i1 + i):(i1 + i + groupsize)])
            q = quantize_(w_.unsqueeze(1), scale, zero).flatten()
            Q1[:, i] = q
            err1 = (w_ - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return Q


@pytest.mark.parametrize("bits, group, block", [(4, 64, 128), (3, 32, 128), (3, "channel", 128), (4, 64, 48)])
def test_gptq_matches_the_reference_code(layer_data, bits, group, block):
    w, train, _ = layer_data
    h = train.matrix()
    h[7, :] = h[:, 7] = 0  # a dead input, which the reference zeroes the weights of
    ours = gptq_quantize(w, h, bits, group=group, block=block)
    theirs = reference_gptq(w, h, bits, -1 if group == "channel" else group, blocksize=block)
    assert torch.allclose(ours.weight, theirs, rtol=0, atol=1e-6)
    assert (ours.weight[:, 7] == 0).all()
    assert torch.equal(ours.quantized.dequantize(), ours.weight)
    assert int(ours.quantized.codes.max()) <= 2**bits - 1


def test_gptq_lazy_batches_give_the_result_of_eager_updates(layer_data):
    """Algorithm 1's lazy updates reorder the arithmetic, not the result, where every group starts a block.

    (With B = 128 > g = 64 the reference sets the second group's grid from weights that have not yet
    received the first half-block's updates, and a fifth of the codes differ: see engines/compress/gptq.py.)
    """
    w, train, _ = layer_data
    eager = gptq_quantize(w, train.matrix(), 3, group=64, block=1)
    for block in (16, 64):
        lazy = gptq_quantize(w, train.matrix(), 3, group=64, block=block)
        same = float((lazy.quantized.codes == eager.quantized.codes).float().mean())
        assert same > 0.999  # float round-off may flip a weight sitting on a rounding boundary
        assert output_error(w, lazy.weight, train.matrix()) == pytest.approx(
            output_error(w, eager.weight, train.matrix()), rel=1e-3)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("group", ["channel", 32])
def test_gptq_with_uncorrelated_inputs_is_round_to_nearest(rng, symmetric, group):
    """With H ∝ I no column's error can be cancelled by another: GPTQ reduces to RTN."""
    w = torch.from_numpy(rng.standard_normal((24, 128)).astype(np.float32))
    result = gptq_quantize(w, 3.0 * torch.eye(128), 3, group=group, symmetric=symmetric)
    assert torch.equal(result.weight, fake_quantize(w, 3, group=group, symmetric=symmetric))
    assert torch.equal(result.quantized.codes, quantize(w, 3, group=group, symmetric=symmetric).codes)


@pytest.mark.parametrize("bits", [4, 3])
def test_gptq_beats_rtn_on_held_out_activations(layer_data, bits):
    w, train, held_out = layer_data
    rtn_error = output_error(w, fake_quantize(w, bits, group=64), held_out.matrix())
    gptq_error = output_error(w, gptq_quantize(w, train.matrix(), bits, group=64).weight, held_out.matrix())
    print(f"\n{LAYER} {bits}-bit g64, held-out relative output error: RTN {rtn_error:.4f}, GPTQ {gptq_error:.4f}")
    assert gptq_error < 0.8 * rtn_error


def test_gptq_refuses_bad_input(layer_data):
    w, train, _ = layer_data
    h = train.matrix()
    with pytest.raises(ValueError, match=r"h must be \(512, 512\)"):
        gptq_quantize(w, h[:100, :100])
    with pytest.raises(ValueError, match="not per tensor"):
        gptq_quantize(w, h, group="tensor")
    with pytest.raises(ValueError, match="inf or nan"):
        gptq_quantize(w, torch.full_like(h, float("nan")))
    with pytest.raises(ValueError, match="damp"):
        gptq_quantize(w, h, damp=-1.0)
    with pytest.raises(ValueError, match="not positive definite"):
        gptq_quantize(w, -torch.eye(512))
    with pytest.raises(ValueError, match="unsupported bit width 6"):
        gptq_quantize(w, h, 6)
    with pytest.raises(ValueError, match="no calibration inputs"):
        Hessian(512).matrix()


# ---------------------------------------------------------------- AWQ


@pytest.mark.parametrize("bits", [4, 3])
def test_awq_beats_rtn_on_held_out_activations(layer_data, bits):
    w, train, held_out = layer_data
    result = awq_quantize(w, train.matrix(), train.mean_abs(), bits, group=64)
    rtn_weight = fake_quantize(w, bits, group=64)
    # α = 0 is plain RTN: the search can only improve on it on the calibration inputs.
    assert result.errors[0] == pytest.approx(output_error(w, rtn_weight, train.matrix()))
    assert min(result.errors) == pytest.approx(output_error(w, result.weight, train.matrix()))
    rtn_error = output_error(w, rtn_weight, held_out.matrix())
    awq_error = output_error(w, result.weight, held_out.matrix())
    print(f"\n{LAYER} {bits}-bit g64, held-out relative output error: RTN {rtn_error:.4f}, "
          f"AWQ {awq_error:.4f} (alpha {result.alpha:.2f})")
    assert result.alpha > 0 and awq_error < 0.97 * rtn_error


def test_awq_keeps_one_over_s_as_an_explicit_input_scale(layer_data):
    w, train, _ = layer_data
    result = awq_quantize(w, train.matrix(), train.mean_abs(), 4, group=64)
    assert torch.allclose(result.weight, result.quantized.dequantize() * result.input_scale, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match=r"mean_abs must be \(512,\)"):
        awq_quantize(w, train.matrix(), train.mean_abs()[:10])


# ---------------------------------------------------------------- outliers (LLM.int8)


def test_one_outlier_channel_spoils_per_tensor_int8(rng):
    x = torch.from_numpy(rng.standard_normal((256, 64)).astype(np.float32))
    x[:, 9] *= 60  # one channel of magnitude ~ 60 sigma, as LLM.int8 found in large models
    profile = outlier_profile(x)
    assert profile.outliers == (9,) and profile.share_above_threshold == 1 / 64
    assert profile.int8_error_mixed < profile.int8_error / 10


def test_outliers_on_the_small_gpt(target, calibration):
    """The normed inputs of q have no outliers; ffn.down's inputs (SwiGLU products) have many, and
    keeping those channels in float cuts the int8 error."""
    x = capture_inputs(target.model, "blocks.0.attn.q", calibration, max_rows=300)
    assert x.shape == (300, 192)
    with torch.no_grad():  # the captured rows are the layer's real inputs: the normed embeddings of window 0
        first = target.model.blocks[0].attn_norm(target.model.embed(torch.from_numpy(calibration[:1])))[0]
    assert torch.allclose(x[:128], first, atol=1e-6)
    q = outlier_profile(x)
    assert q.outliers == () and q.int8_error_mixed == q.int8_error
    down = layer_outliers(target.model, LAYER, calibration, max_rows=1024)
    assert down.rows == 1024 and np.array_equal(down.channel_max, capture_inputs(
        target.model, LAYER, calibration, max_rows=1024).abs().amax(0).numpy())
    print(f"\n{LAYER}: max|x| {down.channel_max.max():.1f}, sigma {down.sigma:.3f}, "
          f"{len(down.outliers)} of 512 channels >= 6, {down.share_above_sigmas:.0%} above 6 sigma; "
          f"int8 error {down.int8_error:.4f} -> {down.int8_error_mixed:.4f} mixed, "
          f"output {down.output_error:.4f} -> {down.output_error_mixed:.4f}")
    assert down.outliers and down.int8_error_mixed < down.int8_error / 2
    assert down.output_error_mixed < down.output_error
    with pytest.raises(ValueError, match="no module 'blocks.0.attn.qq'"):
        capture_inputs(target.model, "blocks.0.attn.qq", calibration)


# ---------------------------------------------------------------- whole model


@pytest.fixture(scope="module")
def quantized(target, calibration):
    """The small GPT quantised by each method at 4 and 3 bits, group 64, with the progress it reported."""
    results, fractions = {}, []
    for bits in (4, 3):
        for method in ("rtn", "gptq", "awq"):
            results[method, bits] = quantize_model(target, calibration, method=method, bits=bits, group=64,
                                                   progress=lambda f, what: fractions.append(f))
    return results, fractions


@pytest.fixture(scope="module")
def comparisons(target, splits, quantized):
    """compare_models of each quantised copy against the float model on 1,024 held-out tokens."""
    from workbench_engines.evaluation import compare_models

    ids = splits.val[:1024].tolist()
    return {key: compare_models(target.model, r.model, ids, window=256, stride=192)
            for key, r in quantized[0].items()}


def test_quantize_model_reports_every_layer_and_leaves_the_original(target, quantized):
    results, fractions = quantized
    names = [n for n, m in target.model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert len(names) == 36
    original = dict(target.model.named_modules())
    for (method, bits), result in results.items():
        assert [r.name for r in result.layers] == names
        changed = dict(result.model.named_modules())
        for name in names:
            assert not torch.equal(changed[name].weight, original[name].weight)
            assert changed[name].weight.dtype == torch.float32 and torch.isfinite(changed[name].weight).all()
        assert torch.equal(result.model.embed.weight, target.model.embed.weight)  # embedding stays float
        assert result.profile.backend == "torch" and result.profile.wall_s > 0
        assert result.calibration_tokens == 8 * 128 and (result.method, result.bits, result.group) == (method, bits, 64)
        if method != "awq":  # on the grids: at most 2^b distinct values in every group of 64 (AWQ's are divided by s)
            groups = changed["blocks.4.ffn.up"].weight.reshape(512, 3, 64)
            assert max(len(g.unique()) for row in groups for g in row) <= 2**bits
        if method == "gptq":
            assert all(r.error < r.rtn_error for r in result.layers)
        if method == "awq":
            assert all(r.error <= r.rtn_error * (1 + 1e-6) for r in result.layers)
    first = fractions[:36]
    assert first == sorted(first) and first[0] == 1 / 36 and first[-1] == 1.0 and len(fractions) == 6 * 36
    from workbench_engines.models import small_gpt

    fresh = small_gpt.load_weights(small_gpt.weights_path("target"), target.tokenizer, "target").model.state_dict()
    assert all(torch.equal(value, fresh[key]) for key, value in target.model.state_dict().items())  # untouched
    rtn_4 = fake_quantize(original["blocks.0.attn.q"].weight, 4, group=64)
    assert torch.equal(dict(results["rtn", 4].model.named_modules())["blocks.0.attn.q"].weight, rtn_4)


def test_four_bits_cost_less_than_three_and_gptq_beats_rtn(comparisons, quantized):
    print()
    for (method, bits), c in comparisons.items():
        layers = quantized[0][method, bits].layers
        print(f"small GPT {method.upper()}-{bits} g64: perplexity {c.reference.perplexity:.3f} -> "
              f"{c.changed.perplexity:.3f}, KL {c.kl:.4f}, same top {c.same_top:.3f}, mean layer error "
              f"{np.mean([r.error for r in layers]):.4f} (RTN {np.mean([r.rtn_error for r in layers]):.4f})")
    for method in ("rtn", "gptq", "awq"):
        four, three = comparisons[method, 4], comparisons[method, 3]
        assert abs(four.changed.nll - four.reference.nll) < abs(three.changed.nll - three.reference.nll)
        assert four.kl < three.kl
    assert comparisons["gptq", 3].kl < 0.7 * comparisons["rtn", 3].kl
    assert comparisons["gptq", 4].kl < comparisons["rtn", 4].kl


def test_quantize_model_cancels_and_refuses_bad_input(target, calibration):
    polls = []
    with pytest.raises(Cancelled):
        quantize_model(target, calibration, method="gptq", should_stop=lambda: polls.append(1) or len(polls) > 3)
    assert len(polls) == 4
    with pytest.raises(EngineError, match="unknown method 'int4'"):
        quantize_model(target, calibration, method="int4")
    with pytest.raises(ValueError, match="does not divide a row of 192"):
        quantize_model(target, calibration, group=128)
    with pytest.raises(ValueError, match="calibration must each be an integer from 0 to 2047"):
        quantize_model(target, calibration + 2048)
    with pytest.raises(ValueError, match=r"calibration must be \(B, T\)"):
        quantize_model(target, calibration[0])
    with pytest.raises(EngineError, match="not a GPT-shaped model"):
        quantize_model(torch.nn.Linear(4, 4), calibration)


def test_quantize_model_can_calibrate_on_the_float_model(target, calibration):
    """sequential=False: each layer's Hessian comes from the float model's own activations, which
    capture_inputs measures independently (window by window instead of as one batch)."""
    result = quantize_model(target, calibration, method="gptq", bits=3, group=64, sequential=False)
    w = dict(target.model.named_modules())["blocks.3.ffn.down"].weight.detach()
    h = Hessian(512)
    h.add(capture_inputs(target.model, "blocks.3.ffn.down", calibration, max_rows=calibration.size))
    direct = gptq_quantize(w, h.matrix(), 3, group=64)
    ours = dict(result.model.named_modules())["blocks.3.ffn.down"].weight
    assert float((ours == direct.weight).float().mean()) > 0.99  # batching round-off may flip a boundary weight
    report = {r.name: r for r in result.layers}["blocks.3.ffn.down"]
    assert report.error == pytest.approx(output_error(w, direct.weight, h.matrix()), rel=0.02)


def test_calibration_windows_come_from_the_train_split(target, splits):
    windows = calibration_windows(target.tokenizer, windows=4, length=64, seed=3)
    assert windows.shape == (4, 64) and windows.dtype == np.int64
    train = np.lib.stride_tricks.sliding_window_view(splits.train, 64)
    for window in windows:
        assert (train == window).all(axis=1).any()


# ---------------------------------------------------------------- SmolLM2


@pytest.fixture(scope="module")
def smol():
    """SmolLM2-135M-Instruct with float32 weights (its Q4_1 file dequantised)."""
    from workbench_engines.models import llama

    return llama.load(weights="fp32")


@pytest.mark.slow
@needs_smollm
def test_smollm2_layer_outliers_and_gptq(smol):
    """One SmolLM2 layer (blocks.20.attn.q, 576 inputs) on real activations: an outlier channel, GPTQ < RTN."""
    from workbench_engines.models.data import encode_corpus

    layer = "blocks.20.attn.q"
    w = dict(smol.model.named_modules())[layer].weight.detach().clone()
    train = calibration_windows(smol.tokenizer, windows=4, length=256)
    held_out = encode_corpus(smol.tokenizer).val[:1024].astype(np.int64).reshape(4, 256)
    xs = [capture_inputs(smol.model, layer, ids, max_rows=1024) for ids in (train, held_out)]
    profile = outlier_profile(xs[1], weight=w)
    hessians = []
    for x in xs:
        hessians.append(Hessian(576))
        hessians[-1].add(x)
    rtn_error = output_error(w, fake_quantize(w, 3, group=64), hessians[1].matrix())
    gptq_error = output_error(w, gptq_quantize(w, hessians[0].matrix(), 3, group=64).weight, hessians[1].matrix())
    awq = awq_quantize(w, hessians[0].matrix(), hessians[0].mean_abs(), 3, group=64)
    awq_error = output_error(w, awq.weight, hessians[1].matrix())
    print(f"\nSmolLM2 {layer}: outlier channels {profile.outliers} (max|x| {profile.channel_max.max():.1f}, "
          f"sigma {profile.sigma:.3f}); int8 error {profile.int8_error:.4f} -> {profile.int8_error_mixed:.4f} mixed; "
          f"3-bit g64 held-out output error RTN {rtn_error:.4f}, GPTQ {gptq_error:.4f}, AWQ {awq_error:.4f} "
          f"(alpha {awq.alpha:.2f})")
    assert profile.outliers and profile.int8_error_mixed < profile.int8_error
    assert gptq_error < 0.8 * rtn_error


@pytest.mark.slow
@needs_smollm
def test_quantize_model_on_smollm2_keeps_its_decode_kernels_in_step(smol):
    """The whole of SmolLM2 through quantize_model (RTN, a short calibration): its DecodeLinear layers, whose
    C kernel keeps its own copy of the weight, decode with the quantised weights, not the float ones."""
    ids = torch.tensor([smol.prompt_ids("To be, or not to be, that is the question:")])  # (1, T), T > 8
    with torch.no_grad():
        smol.model(ids[:, :1])  # a decode-sized pass: the float model's C kernels now hold its weights
    calibration = calibration_windows(smol.tokenizer, windows=1, length=32)
    result = quantize_model(smol, calibration, method="rtn", bits=4, group=64)
    assert len(result.layers) == 30 * 6
    model = result.model
    q = dict(model.named_modules())["blocks.0.attn.q"]
    assert torch.equal(q.weight, fake_quantize(dict(smol.model.named_modules())["blocks.0.attn.q"].weight, 4, group=64))
    with torch.no_grad():
        prefill = model(ids)[0, 0]  # T > 8 rows: torch's GEMM on the quantised weights
        decode = model(ids[:, :1])[0, 0]  # 1 row: the C kernels
        float_decode = smol.model(ids[:, :1])[0, 0]
    assert torch.allclose(decode, prefill, atol=1e-3)
    assert not torch.allclose(decode, float_decode, atol=1e-2)
