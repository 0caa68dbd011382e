"""Knowledge distillation (engines.compress.distill): the loss against torch's own KL, its gradient, soft targets,
a student that moves toward its teacher, and the overlap a draft's acceptance rate is read from."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench_engines.compress import DistillationLoss, distillation_loss, soften
from workbench_engines.errors import EngineError
from workbench_engines.evaluation import compare_models
from workbench_engines.models.data import TokenData
from workbench_engines.models.gpt import GPT, GPTConfig
from workbench_engines.models.train import TrainConfig, causal_lm_loss, train


def _logits(rng, shape=(3, 7, 50), scale=3.0):
    return torch.from_numpy(rng.standard_normal(shape) * scale).float()


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 4.0])
def test_soft_term_matches_torch_kl_div(rng, temperature):
    student, teacher = _logits(rng), _logits(rng)
    targets = torch.from_numpy(rng.integers(0, 50, (3, 7)))
    ours = distillation_loss(student, teacher, targets, temperature=temperature, alpha=1.0)
    peer = F.kl_div(F.log_softmax(student.reshape(-1, 50) / temperature, -1),
                    F.log_softmax(teacher.reshape(-1, 50) / temperature, -1),
                    log_target=True, reduction="batchmean") * temperature**2
    torch.testing.assert_close(ours, peer, rtol=1e-5, atol=1e-6)


def test_alpha_mixes_in_the_cross_entropy(rng):
    student, teacher = _logits(rng), _logits(rng)
    targets = torch.from_numpy(rng.integers(0, 50, (3, 7)))
    hard = F.cross_entropy(student.reshape(-1, 50), targets.reshape(-1))
    soft = distillation_loss(student, teacher, targets, temperature=2.0, alpha=1.0)
    torch.testing.assert_close(distillation_loss(student, teacher, targets, temperature=2.0, alpha=0.0), hard)
    torch.testing.assert_close(distillation_loss(student, teacher, targets, temperature=2.0, alpha=0.3),
                               0.3 * soft + 0.7 * hard)


def test_loss_is_zero_at_the_teacher_and_its_gradient_is_T_times_q_minus_p(rng):
    teacher = _logits(rng, (4, 50))
    targets = torch.zeros(4, dtype=torch.long)
    same = distillation_loss(teacher.clone(), teacher, targets, temperature=3.0)
    assert abs(float(same)) < 1e-6
    # d/dz [T² · KL(p_T ‖ q_T)] = T · (q_T − p_T) per position, divided by the N positions averaged over.
    student = _logits(rng, (4, 50)).requires_grad_(True)
    distillation_loss(student, teacher, targets, temperature=3.0).backward()
    q, p = torch.softmax(student.detach() / 3.0, -1), torch.softmax(teacher / 3.0, -1)
    torch.testing.assert_close(student.grad, 3.0 * (q - p) / 4, rtol=1e-4, atol=1e-6)


def test_teacher_gets_no_gradient(rng):
    student, teacher = _logits(rng).requires_grad_(True), _logits(rng).requires_grad_(True)
    distillation_loss(student, teacher, torch.zeros(3, 7, dtype=torch.long), temperature=2.0).backward()
    assert teacher.grad is None and student.grad is not None


@pytest.mark.parametrize("temperature, alpha", [(0, 1), (-1, 1), (math.nan, 1), (math.inf, 1), (1, 1.5), (1, -0.1),
                                                ("hot", 1)])
def test_bad_temperature_or_alpha_is_refused(rng, temperature, alpha):
    with pytest.raises(EngineError):
        distillation_loss(_logits(rng), _logits(rng), torch.zeros(3, 7, dtype=torch.long),
                          temperature=temperature, alpha=alpha)


def test_mismatched_shapes_are_refused(rng):
    with pytest.raises(EngineError, match="same shape"):
        distillation_loss(_logits(rng), _logits(rng, (3, 7, 49)), torch.zeros(3, 7, dtype=torch.long))
    with pytest.raises(EngineError, match="targets"):
        distillation_loss(_logits(rng), _logits(rng), torch.zeros(3, 8, dtype=torch.long))


def test_soften_spreads_the_mass_and_keeps_the_order(rng):
    logits = rng.standard_normal(100) * 4
    logits[np.argmax(logits)] += 1.0  # a clear winner, so the coldest softening is one-hot
    cold, warm, hot = soften(logits, 0.05), soften(logits, 2.0), soften(logits, 1e6)
    for p in (cold, warm, hot):
        assert p.sum() == pytest.approx(1.0)
    assert cold.max() > 0.99 and np.argmax(cold) == np.argmax(logits)
    assert np.array_equal(np.argsort(warm, kind="stable"), np.argsort(logits, kind="stable"))
    assert soften(logits, 1.0).max() > warm.max() > hot.max()
    np.testing.assert_allclose(hot, np.full(100, 0.01), rtol=1e-4)
    with pytest.raises(EngineError):
        soften(logits, 0.0)


def _tiny(seed: int, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{"vocab_size": 50, "context": 64, "d_model": 32, "n_layers": 2, "n_heads": 4, **kw})).eval()


def test_a_distilled_student_moves_toward_its_teacher(rng):
    teacher = _tiny(1, d_model=64)
    data = TokenData(rng.integers(0, 50, 4000).astype(np.int32), rng.integers(0, 50, 600).astype(np.int32))
    held = rng.integers(0, 50, 300)
    config = TrainConfig(steps=30, batch_size=8, seq_len=32, lr=1e-2, warmup=3, eval_every=30, eval_windows=4)
    student = _tiny(2)
    before = compare_models(teacher, student, held, window=64, stride=32)
    result = train(student, data, config, loss_fn=DistillationLoss(teacher, temperature=1.0),
                   eval_loss_fn=causal_lm_loss)
    after = compare_models(teacher, student, held, window=64, stride=32)
    assert after.kl < 0.5 * before.kl and after.overlap > before.overlap
    # Validation is scored by the data's tokens (eval_loss_fn), not by the distillation loss.
    assert result.val_losses[-1][1] == pytest.approx(after.changed.mean_nll, rel=0.5)
    assert not any(p.requires_grad for p in teacher.parameters())


def test_students_of_another_vocabulary_are_refused(rng):
    loss = DistillationLoss(_tiny(1), temperature=2.0)
    window = torch.from_numpy(rng.integers(0, 40, (2, 9)))
    with pytest.raises(EngineError, match="share a tokenizer"):
        loss(_tiny(2, vocab_size=40), window)
    with pytest.raises(EngineError):
        DistillationLoss(_tiny(1), temperature=-2.0)


def test_overlap_is_one_minus_total_variation(rng):
    a, b = _tiny(3), _tiny(4)
    ids = rng.integers(0, 50, 40)
    result = compare_models(a, b, ids, window=64, stride=32)  # 40 tokens: one window
    with torch.no_grad():
        p = torch.softmax(a(torch.from_numpy(ids)[None])[0, :-1].double(), -1)  # (39, V)
        q = torch.softmax(b(torch.from_numpy(ids)[None])[0, :-1].double(), -1)
    tv = 0.5 * (p - q).abs().sum(-1).mean()
    assert result.overlap == pytest.approx(1 - float(tv), rel=1e-9)
    assert compare_models(a, a, ids, window=64, stride=32).overlap == pytest.approx(1.0)
