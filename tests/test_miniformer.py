"""The mini-former's switches, its objectives, and the trainable MoE layer against the dense reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from workbench_engines.errors import EngineError  # noqa: E402
from workbench_engines.models.data import TokenData  # noqa: E402
from workbench_engines.models.miniformer import MiniConfig, MiniFormer, attention_mask  # noqa: E402
from workbench_engines.models.objectives import mask_tokens, objective  # noqa: E402
from workbench_engines.models.train import TrainConfig, train  # noqa: E402
from workbench_engines.moe import reference as moe_reference  # noqa: E402
from workbench_engines.moe.layer import MoELayer  # noqa: E402


def test_moe_layer_with_every_expert_equals_the_dense_mixture(rng):
    torch.manual_seed(int(rng.integers(1000)))
    layer = MoELayer(16, 24, n_experts=4, k=4, capacity_factor=4.0).double()
    x = torch.tensor(rng.standard_normal((3, 5, 16)), requires_grad=True)
    y, _ = layer(x)
    gates = torch.softmax(layer.router(x), dim=-1)
    dense = sum(gates[..., e : e + 1] * expert(x) for e, expert in enumerate(layer.experts))
    torch.testing.assert_close(y, dense)
    (gx,) = torch.autograd.grad(y.sum(), x)
    (gd,) = torch.autograd.grad(dense.sum(), x)
    torch.testing.assert_close(gx, gd)
    assert layer.stats.dropped == 0 and int(layer.stats.counts.sum()) == 15 * 4


def test_moe_layer_drops_exactly_what_the_reference_dispatch_drops(rng):
    torch.manual_seed(1)
    layer = MoELayer(8, 16, n_experts=4, k=2, capacity_factor=0.5)
    x = torch.tensor(rng.standard_normal((40, 8)), dtype=torch.float32)
    with torch.no_grad():
        layer(x)
        experts = layer.router(x).topk(2, dim=-1).indices.numpy()
    capacity = moe_reference.capacity(40, 4, 2, 0.5)
    _, positions, counts = moe_reference.dispatch(x.numpy(), experts, 4, capacity)
    assert layer.stats.dropped == int((positions < 0).sum()) > 0
    assert layer.stats.counts.tolist() == counts.tolist()


def test_moe_balancing_loss_is_one_when_balanced():
    layer = MoELayer(4, 8, n_experts=2, k=1)
    with torch.no_grad():
        layer.router.weight.zero_()  # uniform probabilities: P_e = 1/2
    _, balance = layer(torch.randn(10, 4))
    assert balance.item() == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, message", [({"k": 3}, "k <= n_experts"), ({"capacity_factor": 0}, "capacity")])
def test_moe_layer_rejects_bad_settings(kwargs, message):
    with pytest.raises(EngineError, match=message):
        MoELayer(4, 8, n_experts=2, **kwargs)


def _model(**kw) -> MiniFormer:
    torch.manual_seed(kw.pop("seed", 0))
    return MiniFormer(MiniConfig(**{"vocab_size": 30, "context": 32, "d_model": 32, "n_layers": 2, "n_heads": 4,
                                     "hidden": 48, **kw})).eval()


@pytest.mark.parametrize("norm", ["layer", "rms"])
@pytest.mark.parametrize("placement", ["pre", "post"])
@pytest.mark.parametrize("ffn", ["gelu", "swiglu", "moe"])
def test_every_switch_combination_runs_and_stays_causal(rng, norm, placement, ffn):
    model = _model(norm=norm, placement=placement, ffn=ffn, n_experts=2, capacity_factor=8.0)
    ids = torch.tensor(rng.integers(0, 30, (2, 12)))
    changed = ids.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % 30
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    assert a.shape == (2, 12, 30)
    torch.testing.assert_close(a[:, :8], b[:, :8])


def test_masks_see_what_they_should(rng):
    model = _model()
    ids = torch.tensor(rng.integers(0, 30, (1, 10)))
    changed = ids.clone()
    changed[0, 6] = (changed[0, 6] + 1) % 30
    with torch.no_grad():
        both = [model(x, attention="bidirectional").logits for x in (ids, changed)]
        prefix = [model(x, attention="prefix", prefix=torch.tensor([8])).logits for x in (ids, changed)]
    assert not torch.allclose(both[0][:, :6], both[1][:, :6])  # bidirectional: the past sees the future
    assert not torch.allclose(prefix[0][:, :6], prefix[1][:, :6])  # inside the prefix, too
    mask = attention_mask("prefix", 5, torch.tensor([2]))[0, 0]
    assert mask.tolist()[0] == [True, True, False, False, False]
    assert mask.tolist()[3] == [True, True, True, True, False]
    with pytest.raises(EngineError, match="prefix length"):
        attention_mask("prefix", 5)


def test_residuals_off_and_post_ln_change_the_model():
    ids = torch.arange(10)[None]
    with torch.no_grad():
        base = _model(seed=3)(ids).logits
        off = _model(seed=3, residual=False)(ids).logits
        post = _model(seed=3, placement="post")(ids).logits
    assert not torch.allclose(base, off) and not torch.allclose(base, post)
    with pytest.raises(EngineError, match="norm must be"):
        MiniConfig(vocab_size=10, norm="batch")


def test_active_parameters_of_a_sparse_model_equal_a_dense_one():
    dense = _model(ffn="swiglu", hidden=48)
    sparse = _model(ffn="moe", hidden=48, n_experts=4, top_k=1)
    router = 2 * 32 * 4  # layers × d_model × experts
    assert sparse.parameter_count(active=True) == dense.parameter_count() + router
    assert sparse.parameter_count() == dense.parameter_count() + router + 2 * 3 * 3 * 32 * 48


def test_bert_masking_rates():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 20, (200, 250), generator=generator)
    corrupted, targets = mask_tokens(ids, 99, 20, generator=generator)
    chosen = targets != -100
    assert chosen.float().mean().item() == pytest.approx(0.15, abs=0.005)
    masked = (corrupted == 99) & chosen
    unchanged = (corrupted == ids) & chosen
    assert (masked.sum() / chosen.sum()).item() == pytest.approx(0.8, abs=0.01)
    assert (unchanged.sum() / chosen.sum()).item() == pytest.approx(0.1 + 0.1 / 20, abs=0.01)
    assert torch.equal(corrupted[~chosen], ids[~chosen])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["causal", "masked", "prefix"])
def test_each_objective_trains(name):
    # A fixed stream: on a fresh one the masked objective's 150 steps land within a few hundredths of the bar.
    rng = np.random.default_rng(0)
    stream = np.where(rng.random(8000) < 0.05, rng.integers(0, 30, 8000), np.arange(8000) % 30).astype(np.int32)
    data = TokenData(stream[:7000], stream[7000:])
    model = _model(ffn="moe" if name == "causal" else "swiglu").train()
    config = TrainConfig(steps=150, batch_size=8, seq_len=24, lr=1e-2, warmup=10, eval_every=50, eval_windows=8)
    result = train(model, data, config, loss_fn=objective(name))
    assert result.val_losses[-1][1] < math.log(30) - 0.5
    with pytest.raises(ValueError, match="unknown objective"):
        objective("denoising")
