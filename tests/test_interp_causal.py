"""engines.interp.ablation and .patching: the batched runs equal one-at-a-time hooks, and the invariants hold
(patching the clean run restores 100%, ablating nothing changes nothing), on the small GPT."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import needs_smollm
from workbench_engines.errors import EngineError
from workbench_engines.interp import (
    Configuration,
    ablated_losses,
    ablation_grid,
    logit_difference,
    patch_map,
    patched,
    reference_means,
    removal_curve,
    replace_with,
    run_with_cache,
    text_windows,
    zero_head,
)
from workbench_engines.models import small_gpt

pytestmark = pytest.mark.no_c_path  # interpretability calls no C kernel of its own

CLEAN = "**JULIET**  \nWhere art thou, my lord? Where art thou"
CORRUPT = "**JULIET**  \nWhere art thou, my lord? Now art thou"


@pytest.fixture(scope="module")
def target():
    return small_gpt.load("target")


@pytest.fixture(scope="module")
def windows():
    return np.random.default_rng(0).integers(0, 2048, (2, 33))  # (N, T + 1): two 32-token windows


def _loss(model, windows) -> float:
    w = torch.from_numpy(windows)
    with torch.no_grad():
        logits = model(w[:, :-1]).float()  # (N, T, V)
    return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1)))


def _blank(model):
    c = model.config
    return np.zeros((c.n_layers, c.n_heads), dtype=bool), np.zeros(c.n_layers, dtype=bool)


def test_ablating_nothing_gives_the_plain_loss_and_one_head_matches_a_hooked_pass(target, windows):
    model = target.model
    heads, mlps = _blank(model)
    one = heads.copy()
    one[3, 2] = True
    both_mlp = mlps.copy()
    both_mlp[1] = True
    losses = ablated_losses(model, windows, [Configuration(heads, mlps), Configuration(one, mlps),
                                             Configuration(heads, both_mlp)])
    assert losses[0] == pytest.approx(_loss(model, windows), rel=1e-5)
    with torch.no_grad(), patched(model, {"head_z.3": zero_head(2)}):
        assert losses[1] == pytest.approx(_loss(model, windows), rel=1e-5)
    with torch.no_grad(), patched(model, {"mlp_out.1": lambda y: torch.zeros_like(y)}):
        assert losses[2] == pytest.approx(_loss(model, windows), rel=1e-5)


def test_mean_ablation_writes_the_reference_mean(target, windows):
    model = target.model
    means = reference_means(model, windows)
    _, cache = run_with_cache(model, windows[:, :-1], ["head_z.2", "mlp_out.4"])
    torch.testing.assert_close(means["head_z.2"], cache["head_z.2"].mean(dim=(0, 1)))
    assert means["mlp_out.4"].shape == (model.config.d_model,)
    heads, mlps = _blank(model)
    heads[2, 5] = True

    def to_mean(z):
        z = z.clone()
        z[:, :, 5] = means["head_z.2"][5]
        return z

    loss = ablated_losses(model, windows, [Configuration(heads, mlps)], "mean", means=means)[0]
    with torch.no_grad(), patched(model, {"head_z.2": to_mean}):
        assert loss == pytest.approx(_loss(model, windows), rel=1e-5)


def test_grid_curve_and_bad_input(target, windows):
    model = target.model
    grid = ablation_grid(model, windows, "zero")
    assert grid.heads.shape == (6, 6) and grid.mlps.shape == (6,) and grid.tokens == 64
    order = grid.ranked()
    assert grid.heads[order[0]] == grid.heads.min() and grid.heads[order[-1]] == grid.heads.max()
    curve = removal_curve(model, windows, order, [0, 1, 36])
    assert curve[0] == pytest.approx(grid.base_loss, rel=1e-6)
    assert curve[1] == pytest.approx(grid.base_loss + grid.heads[order[0]], rel=1e-5)
    with pytest.raises(EngineError, match="unknown ablation"):
        ablated_losses(model, windows, [], "random")
    with pytest.raises(EngineError, match="do not make"):
        text_windows(list(range(10)), 8, 2)


def test_logit_difference_intact_and_ablated(target):
    model = target.model
    ids = target.prompt_ids(CLEAN)
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0, -1]
    q, dot = target.prompt_ids("?")[0], target.prompt_ids(".")[0]
    assert logit_difference(model, ids, q, dot) == pytest.approx(float(logits[q] - logits[dot]), rel=1e-5)
    heads, mlps = _blank(model)
    heads[4, 0] = True
    with torch.no_grad(), patched(model, {"head_z.4": zero_head(0)}):
        ablated = model(torch.tensor([ids]))[0, -1]
    assert logit_difference(model, ids, q, dot, Configuration(heads, mlps)) == pytest.approx(
        float(ablated[q] - ablated[dot]), rel=1e-5)


def test_patching_restores_100_percent_where_it_must(target):
    model = target.model
    clean, corrupt = target.prompt_ids(CLEAN), target.prompt_ids(CORRUPT)
    result = patch_map(model, clean, corrupt, kind="resid_post", layers=[0, 5])
    # The last layer's stream at the last position is everything the output reads: the clean run itself.
    assert result.restored[-1, -1] == pytest.approx(1.0, abs=1e-5)
    # Positions before the first changed token see identical inputs: nothing to restore (causal attention).
    assert np.abs(result.restored[:, : result.differing[0]]).max() < 1e-6
    # Every position of resid_pre.0, the clean embeddings, turns the corrupted run into the clean one.
    _, cache = run_with_cache(model, clean, ["resid_pre.0"])
    logits, _ = run_with_cache(model, corrupt, [], edits={"resid_pre.0": replace_with(cache["resid_pre.0"])})
    p = float(torch.softmax(logits[0, -1].double(), -1)[result.answer])
    assert (p - result.p_corrupt) / (result.p_clean - result.p_corrupt) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["resid_pre", "resid_post", "attn_out", "mlp_out"])
def test_the_batched_map_equals_one_patch_at_a_time(target, kind):
    """Rows start at their own layer from the corrupted stream; each cell must equal a whole patched forward pass."""
    model = target.model
    clean, corrupt = target.prompt_ids(CLEAN), target.prompt_ids(CORRUPT)
    result = patch_map(model, clean, corrupt, kind=kind, layers=[1, 5])
    _, cache = run_with_cache(model, clean, [f"{kind}.5", f"{kind}.1"])
    for row, layer, position in [(1, 5, 15), (0, 1, 14), (1, 5, 17), (0, 1, 0)]:
        logits, _ = run_with_cache(model, corrupt, [], edits={
            f"{kind}.{layer}": replace_with(cache[f"{kind}.{layer}"], positions=[position])})
        p = float(torch.softmax(logits[0, -1].double(), -1)[result.answer])
        assert result.p_patched[row, position] == pytest.approx(p, rel=1e-4, abs=1e-7)
    layer, position, value = result.best()
    assert layer in (1, 5) and value == pytest.approx(result.restored.max())
    assert result.restored[result.layers.index(layer), position] == value


def test_patching_rejects_bad_pairs(target):
    model = target.model
    clean = target.prompt_ids(CLEAN)
    with pytest.raises(EngineError, match="same length"):
        patch_map(model, clean, clean[:-1])
    with pytest.raises(EngineError, match="nothing to restore"):
        patch_map(model, clean, clean)
    with pytest.raises(EngineError, match="unknown site kind"):
        patch_map(model, clean, target.prompt_ids(CORRUPT), kind="head_z")
    with pytest.raises(EngineError, match="layer 6 is out of range"):
        patch_map(model, clean, target.prompt_ids(CORRUPT), layers=[6])
    with pytest.raises(EngineError, match="non-empty"):
        patch_map(model, [], [])


@needs_smollm
def test_smollm_patching_the_last_stream_restores_paris():
    from workbench_engines.models.llama import bundled

    m = bundled("quantized")
    clean, corrupt = m.prompt_ids("The Eiffel Tower is in the city of"), m.prompt_ids("The Colosseum is in the city of")
    result = patch_map(m.model, clean, corrupt, kind="resid_post", layers=[29])
    assert m.tokenizer.decode([result.answer]) == " Paris"
    assert result.restored[0, -1] == pytest.approx(1.0, abs=1e-4)
