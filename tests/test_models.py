"""The hand-written layers against torch's, the small GPT, the training loop and the shipped weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from workbench_engines.errors import Cancelled, EngineError  # noqa: E402
from workbench_engines.models import layers  # noqa: E402
from workbench_engines.models.data import TokenData  # noqa: E402
from workbench_engines.models.gpt import GPT, ContextTooLong, GPTConfig  # noqa: E402
from workbench_engines.models.train import TrainConfig, learning_rate, train  # noqa: E402
from workbench_engines.positional import rope  # noqa: E402


def _input(rng, *shape):
    return torch.tensor(rng.standard_normal(shape) * 2, dtype=torch.float64, requires_grad=True)


def _grads(fn, x, *params):
    out = fn(x)
    out.backward(torch.ones_like(out) * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out))
    return out.detach(), [t.grad.clone() for t in (x, *params)]


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 5, 64)])
def test_layer_norm_matches_torch_forward_and_backward(rng, shape):
    dim = shape[-1]
    ours, theirs = layers.LayerNorm(dim).double(), torch.nn.LayerNorm(dim).double()
    with torch.no_grad():
        w, b = torch.tensor(rng.standard_normal(dim)), torch.tensor(rng.standard_normal(dim))
        ours.weight.copy_(w), ours.bias.copy_(b), theirs.weight.copy_(w), theirs.bias.copy_(b)
    x = _input(rng, *shape)
    x2 = x.detach().clone().requires_grad_(True)
    a, ga = _grads(ours, x, ours.weight, ours.bias)
    b_, gb = _grads(theirs, x2, theirs.weight, theirs.bias)
    torch.testing.assert_close(a, b_)
    for g1, g2 in zip(ga, gb):
        torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("shape", [(1, 4), (3, 7, 32)])
def test_rms_norm_matches_torch(rng, shape):
    dim = shape[-1]
    ours, theirs = layers.RMSNorm(dim, eps=1e-6).double(), torch.nn.RMSNorm(dim, eps=1e-6).double()
    with torch.no_grad():
        w = torch.tensor(rng.standard_normal(dim))
        ours.weight.copy_(w), theirs.weight.copy_(w)
    x = _input(rng, *shape)
    x2 = x.detach().clone().requires_grad_(True)
    a, ga = _grads(ours, x, ours.weight)
    b, gb = _grads(theirs, x2, theirs.weight)
    torch.testing.assert_close(a, b)
    for g1, g2 in zip(ga, gb):
        torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_and_silu_match_torch(rng, approximate):
    x = _input(rng, 5, 33)
    x2 = x.detach().clone().requires_grad_(True)
    a, ga = _grads(lambda t: layers.gelu(t, approximate), x)
    b, gb = _grads(lambda t: F.gelu(t, approximate=approximate), x2)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ga[0], gb[0])
    torch.testing.assert_close(layers.silu(x.detach()), F.silu(x.detach()))
    with pytest.raises(ValueError, match="approximate"):
        layers.gelu(x, "erf")


def test_swiglu_is_down_of_silu_gate_times_up(rng):
    ffn = layers.SwiGLU(16, 40).double()
    x = _input(rng, 3, 16).detach()
    expected = F.linear(F.silu(F.linear(x, ffn.gate.weight)) * F.linear(x, ffn.up.weight), ffn.down.weight)
    torch.testing.assert_close(ffn(x), expected)


def test_torch_rope_equals_the_numpy_reference(rng):
    x = rng.standard_normal((2, 9, 16)).astype(np.float32)
    cos, sin = layers.rope_tables(16, 9)
    np.testing.assert_allclose(layers.apply_rope(torch.from_numpy(x), cos, sin).numpy(), rope(x), atol=1e-5)


def _tiny(**kw) -> GPT:
    torch.manual_seed(kw.pop("seed", 0))
    return GPT(GPTConfig(**{"vocab_size": 50, "context": 64, "d_model": 32, "n_layers": 2, "n_heads": 4, **kw})).eval()


@pytest.mark.parametrize("kv_heads", [None, 2, 1])
def test_gpt_is_causal(rng, kv_heads):
    model = _tiny(n_kv_heads=kv_heads)
    ids = torch.tensor(rng.integers(0, 50, (2, 20)))
    changed = ids.clone()
    changed[:, 12:] = torch.tensor(rng.integers(0, 50, (2, 8)))
    with torch.no_grad():
        a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_last_only_scores_the_last_position_as_the_full_pass_does(rng):
    from workbench_engines.kvcache import make_cache

    model = _tiny(n_kv_heads=2)
    ids = torch.tensor(rng.integers(0, 50, (2, 9)))
    with torch.no_grad():
        full = model(ids)
        last = model(ids, last_only=True)
        cache = make_cache("contiguous", model.config, batch=2, max_len=9)
        model(ids[:, :5], cache, last_only=True)
        cached = model(ids[:, 5:], cache, last_only=True)  # the cache still holds every position
    assert last.shape == (2, 1, full.shape[-1])
    torch.testing.assert_close(last[:, 0], full[:, -1])
    torch.testing.assert_close(cached[:, 0], full[:, -1], rtol=1e-5, atol=1e-5)


def test_gpt_config_and_input_errors():
    with pytest.raises(EngineError, match="divisible"):
        GPTConfig(vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(EngineError, match="multiple of n_kv_heads"):
        GPTConfig(vocab_size=10, d_model=32, n_heads=4, n_kv_heads=3)
    model = _tiny()
    with pytest.raises(ContextTooLong, match="context of 64"):
        model(torch.zeros((1, 65), dtype=torch.long))
    with pytest.raises(EngineError, match="batch, tokens"):
        model(torch.zeros(5, dtype=torch.long))
    assert GPTConfig(vocab_size=10).kv_bytes_per_token(2) == 2 * 4 * 4 * 32 * 2


def test_learning_rate_warms_up_then_follows_a_cosine():
    config = TrainConfig(steps=1000, lr=1e-3, warmup=100, min_lr_ratio=0.1)
    assert learning_rate(0, config) == pytest.approx(1e-5)
    assert learning_rate(99, config) == pytest.approx(1e-3)
    assert learning_rate(550, config) == pytest.approx(1e-4 + 0.9e-3 * 0.5)
    assert learning_rate(1000, config) == pytest.approx(1e-4)
    rates = [learning_rate(s, config) for s in range(100, 1000)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def _data(rng) -> TokenData:
    # A learnable stream: each token is mostly the previous one plus one.
    walk = np.arange(6000) % 50
    noise = rng.random(6000) < 0.1
    ids = np.where(noise, rng.integers(0, 50, 6000), walk).astype(np.int32)
    return TokenData(ids[:5000], ids[5000:])


def test_training_lowers_the_loss(rng):
    data = _data(rng)
    model = _tiny()
    config = TrainConfig(steps=40, batch_size=8, seq_len=32, lr=1e-2, warmup=5, eval_every=20, eval_windows=8)
    result = train(model, data, config)
    assert result.val_losses[-1][1] < math.log(50) - 1.0
    assert result.train_losses[-1] < result.train_losses[0]
    assert len(result.val_losses) == 2 and result.tokens == 40 * 8 * 32
    with pytest.raises(EngineError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(EngineError, match="autocast"):
        TrainConfig(autocast="fp8")


def test_bf16_autocast_trains_close_to_fp32(rng):
    data = _data(rng)
    config = TrainConfig(steps=10, batch_size=4, seq_len=16, lr=5e-3, warmup=2, eval_every=10, eval_windows=4)
    fp32 = train(_tiny(seed=5), data, config)
    bf16 = train(_tiny(seed=5), data, TrainConfig(**{**config.__dict__, "autocast": "bf16"}))
    assert bf16.train_losses != fp32.train_losses  # the forward really ran in bf16
    assert abs(bf16.val_losses[-1][1] - fp32.val_losses[-1][1]) < 0.1


def test_resuming_takes_exactly_the_steps_an_unbroken_run_takes(rng, tmp_path):
    data = _data(rng)
    config = TrainConfig(steps=12, batch_size=4, seq_len=16, lr=5e-3, warmup=3, eval_every=6, eval_windows=4,
                         checkpoint_every=100, accumulation=2)
    straight = _tiny(seed=3)
    train(straight, data, config)

    broken = _tiny(seed=3)
    checkpoint = tmp_path / "run.ckpt"
    calls = []
    with pytest.raises(Cancelled, match="step 7"):
        train(broken, data, config, checkpoint=checkpoint, should_stop=lambda: len(calls) >= 7,
              on_step=calls.append)
    resumed = _tiny(seed=99)  # different start: everything must come from the checkpoint
    result = train(resumed, data, config, checkpoint=checkpoint, resume=True)
    assert result.resumed_from == 7
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)
    with pytest.raises(EngineError, match="training settings"):
        train(_tiny(seed=3), data, TrainConfig(steps=13), checkpoint=checkpoint, resume=True)


def test_checkpoint_for_another_model_is_refused(rng, tmp_path):
    data = _data(rng)
    config = TrainConfig(steps=2, batch_size=2, seq_len=8, eval_windows=2)
    checkpoint = tmp_path / "a.ckpt"
    train(_tiny(), data, config, model_config={"d": 32}, checkpoint=checkpoint)
    with pytest.raises(EngineError, match="saved for model"):
        train(_tiny(), data, config, model_config={"d": 64}, checkpoint=checkpoint, resume=True)
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(EngineError, match="not a readable checkpoint"):
        train(_tiny(), data, config, model_config={"d": 32}, checkpoint=tmp_path / "bad.ckpt", resume=True)


def test_shipped_models_load_and_report_what_training_measured():
    from workbench_engines.models import small_gpt

    target, draft = small_gpt.load("target"), small_gpt.load("draft")
    assert target.tokenizer.vocab_size == target.config.vocab_size == draft.config.vocab_size == 2048
    assert target.config.kv_heads < target.config.n_heads  # the target uses GQA
    assert target.meta["parameters"] == target.model.parameter_count()
    assert draft.model.parameter_count() * 8 < target.model.parameter_count()
    assert target.meta["val_loss"] < draft.meta["val_loss"] < math.log(2048)
    with pytest.raises(EngineError, match="unknown model"):
        small_gpt.load("huge")


@pytest.mark.native  # the corpus is encoded in C
def test_shipped_weights_reproduce_their_validation_loss_and_tokenizer():
    """The recipe is deterministic: a fresh tokenizer equals the shipped one, and the fp16
    weights score the recorded validation loss on the recorded split."""
    from workbench_engines.models import small_gpt
    from workbench_engines.models.data import encode_corpus
    from workbench_engines.models.train import evaluate

    shipped = small_gpt.load("draft")
    fresh = small_gpt.train_tokenizer()
    assert fresh.ranks == shipped.tokenizer.ranks and fresh.special_tokens == shipped.tokenizer.special_tokens
    data = encode_corpus(fresh)
    assert len(data.train) == shipped.meta["train_tokens"] and len(data.val) == shipped.meta["val_tokens"]
    config = shipped.meta["train_config"]
    loss = evaluate(shipped.model, data, config["seq_len"], config["eval_windows"])
    assert loss == pytest.approx(shipped.meta["val_loss"], abs=0.01)
