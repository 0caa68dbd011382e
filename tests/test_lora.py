"""LoRA from scratch (engines.finetune.lora): the identity at initialisation, merge and unmerge, where gradients go,
the counts, bad input, and parity of values and gradients with Hugging Face peft (issue 16)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench_engines.errors import EngineError
from workbench_engines.finetune.lora import (
    DEFAULT_TARGETS,
    LoRALinear,
    apply_lora,
    lora_layers,
    merge_lora,
    trainable_parameters,
    unmerge_lora,
)
from workbench_engines.models.gpt import GPT, GPTConfig
from workbench_engines.optim.adamw import optimizer_state_bytes

pytestmark = pytest.mark.no_c_path  # torch only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged


TOL = {torch.float32: (1e-5, 1e-5), torch.float64: (1e-12, 1e-12)}
"""(atol, rtol) by dtype."""


def close(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    atol, rtol = TOL[expected.dtype]
    return bool(((actual - expected).abs() <= atol + rtol * expected.abs()).all())


class TwoLayer(nn.Module):
    """A small model with odd sizes and biases: the names "up" and "down" are the LoRA targets."""

    def __init__(self, d_in: int, hidden: int, d_out: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.up = nn.Linear(d_in, hidden, dtype=dtype)
        self.norm = nn.LayerNorm(hidden, dtype=dtype)
        self.down = nn.Linear(hidden, d_out, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.tanh(self.norm(self.up(x))))


def small_gpt(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=97, context=32, d_model=48, n_layers=2, n_heads=4, n_kv_heads=2))


def randomise_b(model: nn.Module, generator: torch.Generator) -> None:
    """B starts at zero; give it values so ΔW is not zero."""
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator, dtype=torch.float64) * 0.1)


def seed_of(rng) -> int:
    return int(rng.integers(2**31))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_at_init_equals_the_base_model_exactly(rng, dtype):
    d_in, hidden, d_out = (int(n) for n in rng.integers(3, 40, size=3))
    torch.manual_seed(seed_of(rng))
    model = TwoLayer(d_in, hidden, d_out, dtype)
    x = torch.randn(int(rng.integers(1, 5)), 7, d_in, dtype=dtype)
    before = model(x)
    r = int(rng.integers(1, min(d_in, hidden, d_out) + 1))
    names = apply_lora(model, ("up", "down"), r=r, alpha=float(rng.uniform(0.5, 32)), seed=seed_of(rng))
    assert names == ["up", "down"]
    assert torch.equal(model(x), before)  # B = 0, so ΔW = 0 and not one bit changes


def test_gpt_forward_at_init_is_unchanged_and_the_default_targets_exist(rng):
    model = small_gpt(seed_of(rng))
    ids = torch.from_numpy(rng.integers(0, 97, size=(3, 11)))
    before = model(ids)
    names = apply_lora(model, DEFAULT_TARGETS, r=4, alpha=8.0, seed=seed_of(rng))
    assert names == ["blocks.0.attn.q", "blocks.0.attn.kv", "blocks.1.attn.q", "blocks.1.attn.kv"]
    assert torch.equal(model(ids), before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_merged_output_equals_unmerged_and_unmerge_restores_the_weights(rng, dtype):
    d_in, hidden, d_out = 13, 29, 6
    torch.manual_seed(seed_of(rng))
    model = TwoLayer(d_in, hidden, d_out, dtype)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, d_in, dtype=dtype)
    base_output = model(x)
    apply_lora(model, ("up", "down"), r=3, alpha=5.0, seed=seed_of(rng))
    randomise_b(model, torch.Generator().manual_seed(seed_of(rng)))
    unmerged = model(x)
    assert not torch.allclose(unmerged, base_output)  # the adapter does change the output
    assert merge_lora(model) == 2
    assert close(model(x), unmerged)
    assert unmerge_lora(model) == 2
    assert close(model(x), unmerged)
    for name in ("up", "down"):
        assert close(lora_layers(model)[name].base.weight, original[f"{name}.weight"])
    merge_lora(model)
    # Merged, the LoRA path is not computed at all: poisoning A and B changes nothing.
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_A.fill_(float("nan"))
            layer.lora_B.fill_(float("nan"))
    assert close(model(x), unmerged)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unmerge_takes_delta_w_back_out(rng, dtype):
    torch.manual_seed(seed_of(rng))
    base = nn.Linear(17, 11, dtype=dtype)
    w0 = base.weight.detach().clone()
    layer = LoRALinear(base, r=5, alpha=10.0, generator=torch.Generator().manual_seed(seed_of(rng)))
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(9, 17, dtype=dtype)
    y = layer(x)
    delta = layer.delta_weight()
    assert close(delta, layer.scaling * layer.lora_B.detach() @ layer.lora_A.detach())
    assert torch.linalg.matrix_rank(delta).item() <= 5
    layer.merge()
    assert close(layer.base.weight.detach(), w0 + delta)
    assert close(layer(x), y)
    layer.unmerge()
    assert close(layer.base.weight.detach(), w0)
    assert close(layer(x), y)
    with pytest.raises(EngineError, match="not merged"):
        layer.unmerge()
    layer.merge()
    with pytest.raises(EngineError, match="already merged"):
        layer.merge()


def test_gradients_reach_only_a_and_b(rng):
    model = small_gpt(seed_of(rng))
    apply_lora(model, DEFAULT_TARGETS, r=2, alpha=4.0, seed=seed_of(rng))
    ids = torch.from_numpy(rng.integers(0, 97, size=(2, 9)))

    def backward() -> None:
        model.zero_grad(set_to_none=True)
        model(ids).logsumexp(-1).mean().backward()

    backward()
    for name, p in model.named_parameters():
        if "lora_" in name:
            assert p.requires_grad and p.grad is not None, name
        else:
            assert not p.requires_grad and p.grad is None, name
    layer = lora_layers(model)["blocks.0.attn.q"]
    # dL/dA = (α/r)·Bᵀ·(dL/dy)·xᵀ is exactly zero while B = 0; dL/dB is not.
    assert torch.count_nonzero(layer.lora_A.grad) == 0
    assert torch.count_nonzero(layer.lora_B.grad) > 0
    randomise_b(model, torch.Generator().manual_seed(seed_of(rng)))
    backward()
    assert torch.count_nonzero(layer.lora_A.grad) > 0


def live_adamw_bytes(model: nn.Module) -> int:
    """The state a torch AdamW keeps after one step on the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params)
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    return optimizer_state_bytes(optimizer)


def test_trainable_parameters_and_a_live_adamw_follow_the_shapes(rng):
    model = small_gpt(seed_of(rng))
    full = trainable_parameters(model)
    assert full == model.parameter_count()
    tensors = len(list(model.parameters()))
    assert live_adamw_bytes(model) == 8 * full + 4 * tensors  # two fp32 moments a weight, a step counter a tensor
    r = int(rng.integers(1, 33))
    apply_lora(model, DEFAULT_TARGETS, r=r, alpha=16.0)
    c = model.config
    per_block = r * (c.d_model + c.n_heads * c.head_dim) + r * (c.d_model + 2 * c.kv_heads * c.head_dim)
    assert trainable_parameters(model) == c.n_layers * per_block
    assert live_adamw_bytes(model) == 8 * c.n_layers * per_block + 4 * c.n_layers * 2 * 2


def test_a_second_apply_keeps_the_first_adapters_trainable(rng):
    model = small_gpt(seed_of(rng))
    first = apply_lora(model, ("attn.q",), r=2, alpha=4.0)
    second = apply_lora(model, ("ffn.up",), r=3, alpha=4.0)
    layers = lora_layers(model)
    assert list(layers) == sorted(first + second, key=list(layers).index) and len(layers) == len(first) + len(second)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{name}.lora_{m}" for name in layers for m in "AB"}
    randomise_b(model, torch.Generator().manual_seed(seed_of(rng)))
    model(torch.randint(0, 97, (2, 5))).square().mean().backward()
    assert all(layer.lora_A.grad is not None and layer.lora_B.grad is not None for layer in layers.values())
    c = model.config
    assert trainable_parameters(model) == c.n_layers * (2 * (c.d_model + c.n_heads * c.head_dim)
                                                        + 3 * (c.d_model + c.hidden))


def test_the_seed_makes_a_reproducible(rng):
    seed = seed_of(rng)
    a1 = [m.lora_A.detach().clone() for m in _wrapped(seed).values()]
    a2 = [m.lora_A.detach().clone() for m in _wrapped(seed).values()]
    a3 = [m.lora_A.detach().clone() for m in _wrapped(seed + 1).values()]
    assert all(torch.equal(x, y) for x, y in zip(a1, a2))
    assert not torch.equal(a1[0], a3[0])
    assert not torch.equal(a1[0], a1[1][:, : a1[0].shape[1]])  # each layer draws its own A


def _wrapped(seed: int) -> dict[str, LoRALinear]:
    model = small_gpt(0)
    apply_lora(model, DEFAULT_TARGETS, r=3, alpha=3.0, seed=seed)
    return lora_layers(model)


def test_a_starts_gaussian_with_fan_in_variance():
    layer = LoRALinear(nn.Linear(400, 300), r=64, alpha=1.0, generator=torch.Generator().manual_seed(0))
    a = layer.lora_A.detach().double()
    assert abs(a.mean().item()) < 3 / (64 * 400) ** 0.5 / 20  # mean 0 within ~3 standard errors of N(0, 1/400)
    assert abs(a.var().item() * 400 - 1) < 0.02
    assert torch.count_nonzero(layer.lora_B) == 0


def test_dropout_acts_on_the_lora_path_in_training_only(rng):
    torch.manual_seed(seed_of(rng))
    layer = LoRALinear(nn.Linear(12, 10), r=4, alpha=4.0, dropout=0.5)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(6, 12)
    layer.eval()
    expected = layer.base(x) + x @ layer.lora_A.T @ layer.lora_B.T * layer.scaling
    assert close(layer(x).detach(), expected.detach())
    layer.train()
    assert not torch.allclose(layer(x), expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"r": 0}, "positive integer"),
        ({"r": -2}, "positive integer"),
        ({"r": 2.0}, "positive integer"),
        ({"r": 8}, r"cannot have rank above min\(in, out\) = 7"),
        ({"alpha": 0.0}, "alpha must be a positive"),
        ({"alpha": -1.0}, "alpha must be a positive"),
        ({"alpha": float("nan")}, "alpha must be a positive"),
        ({"dropout": 1.0}, r"dropout must lie in \[0, 1\)"),
        ({"dropout": -0.1}, r"dropout must lie in \[0, 1\)"),
    ],
)
def test_bad_settings_raise_and_leave_the_model_untouched(kwargs, message):
    model = TwoLayer(9, 7, 20, torch.float32)  # "up" is 7×9, "down" 20×7: rank at most 7 for both
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = {"r": 2, "alpha": 4.0, "dropout": 0.0} | kwargs
    with pytest.raises(EngineError, match=message):
        apply_lora(model, ("up", "down"), **settings)
    assert not lora_layers(model)
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(EngineError, match=message):
        LoRALinear(nn.Linear(9, 7), **settings)


def test_targets_that_match_nothing_or_no_linear_layer_are_refused():
    model = small_gpt(0)
    with pytest.raises(EngineError, match=r"no module matches attn\.w.*blocks\.\*\.attn\.q, blocks\.\*\.attn\.kv"):
        apply_lora(model, ("attn.w",), r=2, alpha=2.0)
    with pytest.raises(EngineError, match="blocks.0.attn is Attention, not nn.Linear"):
        apply_lora(model, ("attn",), r=2, alpha=2.0)
    with pytest.raises(EngineError, match="non-empty sequence"):
        apply_lora(model, "attn.q", r=2, alpha=2.0)
    with pytest.raises(EngineError, match="not nn.Linear"):
        LoRALinear(nn.Conv1d(3, 3, 1), r=1, alpha=1.0)
    apply_lora(model, ("attn.q",), r=2, alpha=2.0)
    with pytest.raises(EngineError, match="already has a LoRA adapter"):
        apply_lora(model, ("attn.q",), r=2, alpha=2.0)
    with pytest.raises(EngineError, match="no LoRA layers"):
        merge_lora(small_gpt(0))
    with pytest.raises(EngineError, match="no LoRA layers"):
        unmerge_lora(small_gpt(0))


# ---- parity with Hugging Face peft -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_and_gradients_match_peft(rng, dtype):
    peft = pytest.importorskip("peft")
    d_in, hidden, d_out = (int(n) for n in rng.integers(5, 50, size=3))
    r = int(rng.integers(1, min(d_in, hidden, d_out) + 1))
    alpha = float(rng.uniform(0.5, 64))
    torch.manual_seed(seed_of(rng))
    ours = TwoLayer(d_in, hidden, d_out, dtype)
    theirs = TwoLayer(d_in, hidden, d_out, dtype)
    theirs.load_state_dict(ours.state_dict())
    apply_lora(ours, ("up", "down"), r=r, alpha=alpha, seed=seed_of(rng))
    randomise_b(ours, torch.Generator().manual_seed(seed_of(rng)))
    config = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=["up", "down"], lora_dropout=0.0, bias="none",
                             init_lora_weights="gaussian")
    theirs = peft.get_peft_model(theirs, config)
    with torch.no_grad():
        for name, layer in lora_layers(ours).items():
            twin = theirs.base_model.model.get_submodule(name)
            twin.lora_A["default"].weight.copy_(layer.lora_A)
            twin.lora_B["default"].weight.copy_(layer.lora_B)
            assert twin.scaling["default"] == pytest.approx(layer.scaling)
    assert trainable_parameters(ours) == trainable_parameters(theirs)
    x = torch.randn(int(rng.integers(1, 6)), 3, d_in, dtype=dtype)
    y_ours, y_theirs = ours(x), theirs(x)
    assert close(y_ours, y_theirs)
    y_ours.square().sum().backward()
    y_theirs.square().sum().backward()
    for name, layer in lora_layers(ours).items():
        twin = theirs.base_model.model.get_submodule(name)
        assert close(layer.lora_A.grad, twin.lora_A["default"].weight.grad)
        assert close(layer.lora_B.grad, twin.lora_B["default"].weight.grad)
    # peft's merge folds the same ΔW into W.
    merge_lora(ours)
    merged = theirs.merge_and_unload()
    assert close(lora_layers(ours)["up"].base.weight, merged.up.weight)
    assert close(lora_layers(ours)["down"].base.weight, merged.down.weight)
