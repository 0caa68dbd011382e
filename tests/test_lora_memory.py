"""Memory accounting of full fine-tuning against LoRA (engines.finetune.memory), checked against the real models'
parameters and against what lora.apply_lora actually makes trainable (issue 16)."""

from __future__ import annotations

import copy

import pytest

from workbench_engines.errors import EngineError
from workbench_engines.finetune.lora import apply_lora, trainable_parameters
from workbench_engines.finetune.memory import (
    GIB,
    MODELS,
    format_bytes,
    full_finetune,
    llama_2_7b,
    lora_finetune,
    lora_trainable,
    minilm_l6,
    model_shape,
    small_gpt,
)

pytestmark = pytest.mark.no_c_path  # arithmetic on shapes: the WB_DISABLE_NATIVE=1 run would repeat it unchanged


def test_llama_2_7b_has_its_published_parameter_count():
    shape = llama_2_7b()
    assert shape.parameters == 6_738_415_616  # Touvron et al. (2023)'s "7B", as the released checkpoint holds it
    assert lora_trainable(shape, ("q_proj", "v_proj"), 8) == 32 * 2 * 8 * (4096 + 4096) == 4_194_304
    assert full_finetune(shape, "mixed").total == 16 * 6_738_415_616
    assert full_finetune(shape).total_gib == pytest.approx(100.41, abs=0.01)


def test_the_small_gpt_shape_matches_the_shipped_model_and_apply_lora(rng):
    from workbench_engines.models.small_gpt import load

    # A copy with every weight trainable: the cached shipped model is shared, and a teacher or reference elsewhere
    # in the process may have frozen it.
    model = copy.deepcopy(load("target").model).requires_grad_(True)
    shape = small_gpt()
    assert shape.parameters == model.parameter_count()
    for preset, targets in shape.target_presets.items():
        r = int(rng.integers(1, 65))
        adapted = copy.deepcopy(model)
        apply_lora(adapted, targets, r=r, alpha=1.0)
        assert lora_trainable(shape, targets, r) == trainable_parameters(adapted), preset
        # The shapes predict AdamW's two fp32 moments a weight; the live optimiser adds a 4-byte step per tensor.
        live, tensors = _live_adamw_bytes(adapted)
        assert lora_finetune(shape, targets, r, "fp32").optimizer == live - 4 * tensors, preset
    live, tensors = _live_adamw_bytes(model)
    assert full_finetune(shape, "fp32").optimizer == live - 4 * tensors


def _live_adamw_bytes(model) -> tuple[int, int]:
    """(bytes of a torch AdamW's state after one step on the model's trainable tensors, how many tensors)."""
    import torch

    from workbench_engines.optim.adamw import optimizer_state_bytes

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params)
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    return optimizer_state_bytes(optimizer), len(params)


def test_the_minilm_shape_matches_the_shipped_weights():
    from workbench_engines.models import minilm

    try:
        weights = minilm.load().w
    except EngineError as exc:
        pytest.skip(str(exc))
    parameters = sum(v.size for name, v in weights.items() if not name.endswith("position_ids"))  # a buffer
    assert minilm_l6().parameters == parameters == 22_713_216


@pytest.mark.parametrize("precision", ["fp32", "mixed"])
def test_the_byte_accounting(rng, precision):
    shape = model_shape(list(MODELS)[int(rng.integers(len(MODELS)))])
    n = shape.parameters
    full = full_finetune(shape, precision)
    assert full.total == 16 * n  # Rajbhandari et al. (2020): 2 + 2 + 12 mixed; 4 + 4 + 8 in fp32
    expected = {"fp32": (4, 4, 8), "mixed": (2, 2, 12)}[precision]
    assert (full.weights, full.gradients, full.optimizer) == tuple(b * n for b in expected)
    r = int(rng.integers(1, 65))
    targets = shape.targets("attention")
    lora = lora_finetune(shape, targets, r, precision)
    phi = lora_trainable(shape, targets, r)
    frozen = {"fp32": 4, "mixed": 2}[precision]
    assert lora.trainable == phi
    assert lora.weights == frozen * n + expected[0] * phi
    assert (lora.gradients, lora.optimizer) == (expected[1] * phi, expected[2] * phi)
    assert lora.total < full.total
    assert lora.total_gib == lora.total / GIB


def test_bad_input_is_refused():
    shape = small_gpt()
    with pytest.raises(EngineError, match="unknown precision"):
        full_finetune(shape, "fp8")
    with pytest.raises(EngineError, match=r"rank must lie in 1\.\.128 for attn\.kv"):
        lora_trainable(shape, ("attn.kv",), 129)
    with pytest.raises(EngineError, match="rank must lie"):
        lora_trainable(shape, ("attn.q",), 0)
    with pytest.raises(EngineError, match="no linear layer of small GPT .* matches attn.k$|matches attn.k;"):
        lora_trainable(shape, ("attn.k",), 2)
    with pytest.raises(EngineError, match="unknown model"):
        model_shape("GPT-5")
    with pytest.raises(EngineError, match="unknown model"):
        small_gpt("huge")
    with pytest.raises(EngineError, match="no target set"):
        shape.targets("everything")


@pytest.mark.parametrize(("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"),
                                         (48 * 2**20, "48 MiB"), (int(100.41 * GIB), "100 GiB"),
                                         (3 * 2**40, "3 TiB")])
def test_format_bytes(n, text):
    assert format_bytes(n) == text
