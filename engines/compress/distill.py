"""Knowledge distillation: a small student trained on a teacher's softened next-token distributions.

Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural
Network", eq. 2 and §2: divide both models' logits by a temperature T, so
the teacher's distribution spreads its mass over more than its top token, and
train the student to match it:

    L = α · T² · KL( softmax(z_teacher / T) ‖ softmax(z_student / T) ) + (1 − α) · CE(z_student, y)

The T² keeps the soft term's gradients the same size as T changes (they
scale as 1/T² otherwise); α mixes in the ordinary cross-entropy on the token
that came next. At T = 1 and α = 1 the student minimises exactly the KL
divergence of its distribution from the teacher's.

Why a draft for speculative decoding wants this: the target accepts a
drafted token with probability Σ_x min(p(x), q(x)) on average (Leviathan et
al., 2023, §3.1, "α = E(β)"), one minus the total-variation distance between
target p and draft q. A draft trained on data alone learns the data's
distribution, which the target only approximates; a distilled draft learns
the target's (DistillSpec, Zhou et al., 2023, measures the rise on real
models).
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench_engines.errors import EngineError


def check_distillation(temperature: float, alpha: float) -> tuple[float, float]:
    """(temperature, alpha) as floats, or EngineError: T must be positive and finite, α within [0, 1]."""
    import math

    try:
        temperature, alpha = float(temperature), float(alpha)
    except (TypeError, ValueError):
        raise EngineError(f"temperature and alpha must be numbers, got {temperature!r} and {alpha!r}") from None
    if not (math.isfinite(temperature) and temperature > 0):
        raise EngineError(f"the distillation temperature must be a positive number, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise EngineError(f"alpha (the soft targets' weight) must be between 0 and 1, got {alpha}")
    return temperature, alpha


def distillation_loss(student_logits, teacher_logits, targets, *, temperature: float = 1.0, alpha: float = 1.0):
    """Hinton et al.'s loss, averaged over positions: α·T²·KL(teacher_T ‖ student_T) + (1 − α)·CE(student, y).

    Args:
        student_logits: (..., V) float tensor; gradients flow through it.
        teacher_logits: (..., V) float tensor of the same shape; treated as a constant.
        targets: (...) int64 next tokens, for the cross-entropy term (ignored when α = 1).
        temperature: T > 0 softens both distributions.
        alpha: Weight of the soft term, in [0, 1].

    Returns:
        A 0-d float32 tensor.

    Raises:
        EngineError: mismatched shapes, or T or α out of range.
    """
    import torch.nn.functional as F

    temperature, alpha = check_distillation(temperature, alpha)
    if student_logits.shape != teacher_logits.shape:
        raise EngineError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                          f"{tuple(teacher_logits.shape)} must have the same shape")
    if tuple(targets.shape) != tuple(student_logits.shape[:-1]):
        raise EngineError(f"targets {tuple(targets.shape)} must be the logits' shape without the vocabulary axis, "
                          f"{tuple(student_logits.shape[:-1])}")
    vocab = student_logits.shape[-1]
    student = F.log_softmax(student_logits.reshape(-1, vocab).float() / temperature, dim=-1)  # (N, V)
    teacher = F.log_softmax(teacher_logits.detach().reshape(-1, vocab).float() / temperature, dim=-1)
    # KL(p ‖ q) = Σ p (log p − log q), summed over the vocabulary, averaged over the N positions.
    soft = (teacher.exp() * (teacher - student)).sum(-1).mean() * temperature**2
    if alpha == 1.0:
        return soft
    hard = F.cross_entropy(student_logits.reshape(-1, vocab).float(), targets.reshape(-1))
    return alpha * soft + (1.0 - alpha) * hard


@dataclass
class DistillationLoss:
    """``loss_fn(model, window)`` for ``models.train.train``: the distillation loss against a frozen teacher.

    The teacher runs once per batch under ``torch.no_grad`` on the same
    window; it must share the student's tokenizer (same vocabulary).
    """

    teacher: object
    temperature: float = 1.0
    alpha: float = 1.0

    def __post_init__(self) -> None:
        self.temperature, self.alpha = check_distillation(self.temperature, self.alpha)
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def __call__(self, model, window):
        import torch

        inputs, targets = window[:, :-1], window[:, 1:]  # (B, T) each
        with torch.no_grad():
            teacher_logits = self.teacher(inputs)  # (B, T, V)
        student_logits = model(inputs)
        if student_logits.shape[-1] != teacher_logits.shape[-1]:
            raise EngineError(f"the student predicts {student_logits.shape[-1]} tokens, the teacher "
                              f"{teacher_logits.shape[-1]}: distil between models that share a tokenizer")
        return distillation_loss(student_logits, teacher_logits, targets,
                                 temperature=self.temperature, alpha=self.alpha)


def soften(logits, temperature: float):
    """softmax(z / T) in float64 (numpy): T > 1 spreads the mass over more tokens, T → ∞ makes it uniform,
    T → 0 puts it all on the top token. These are the soft targets a student learns from."""
    import numpy as np

    temperature, _ = check_distillation(temperature, 1.0)
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class DraftFit:
    """How well one draft fits a target: on held-out text, and in a speculative decoding run."""

    name: str
    comparison: object
    """evaluation.Comparison of the target (reference) and the draft (changed) on held-out text: the draft's own
    perplexity, KL(target ‖ draft), same top token (greedy acceptance) and overlap (sampled acceptance α)."""
    acceptance: dict[int, float]
    """Draft length k -> share of drafted tokens the target accepted, sampling at temperature 1 from a prompt,
    pooled over the runs (accepted over proposed, summed)."""
    tokens_per_round: dict[int, float]
    """Draft length k -> tokens per target forward pass in the same runs."""
    runs: int = 1
    """Speculative runs pooled at each k, one per seed."""


def draft_fit(target, draft, name: str, ids, *, window: int, stride: int, prompt: list[int], ks, tokens: int,
              runs: int = 4, progress=None, should_stop=None) -> DraftFit:
    """Score ``draft`` against ``target``: held-out overlap and KL, then speculative runs at each k.

    Args:
        target, draft: GPT-shaped models sharing a vocabulary.
        name: The draft's name for the report.
        ids: Held-out token ids.
        window, stride: The held-out scoring's sliding window.
        prompt: Token ids the speculative runs start from.
        ks: Draft lengths to run.
        tokens: Tokens each speculative run generates.
        runs: Speculative runs at each k, seeds 0 … runs − 1 (the same for every draft, so they face the same
            draws); one run of a few dozen rounds is too noisy to rank two drafts.
        progress: (fraction, what) between steps; should_stop: polled, True raises Cancelled.
    """
    from workbench_engines.arrays import require_int
    from workbench_engines.errors import Cancelled
    from workbench_engines.evaluation import compare_models
    from workbench_engines.generation import speculative_generate

    runs = require_int(runs, "runs", low=1)

    def report(fraction: float, what: str) -> None:
        if progress is not None:
            progress(fraction, what)

    comparison = compare_models(target, draft, ids, window=window, stride=stride, should_stop=should_stop,
                                progress=lambda f, what: report(0.6 * f, f"held-out text, {what}"))
    acceptance, per_round = {}, {}
    for i, k in enumerate(ks):
        accepted = proposed = produced = rounds = 0
        for seed in range(runs):
            if should_stop is not None and should_stop():
                raise Cancelled("measuring the drafts was cancelled")
            report(0.6 + 0.4 * (i * runs + seed) / (len(ks) * runs), f"speculative decoding at k = {k}, run {seed + 1}")
            run = speculative_generate(target, draft, prompt, tokens, k=int(k), seed=seed)
            accepted, proposed = accepted + run.accepted, proposed + run.proposed
            produced, rounds = produced + len(run.tokens), rounds + run.rounds
        acceptance[int(k)] = accepted / proposed if proposed else 0.0
        per_round[int(k)] = produced / rounds if rounds else 0.0
    return DraftFit(name, comparison, acceptance, per_round, runs)
