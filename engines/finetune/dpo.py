"""Direct Preference Optimisation of the small GPT, with its KL to the reference and a best-of-n baseline.

DPO (Rafailov et al., 2023) skips RLHF's reward model and PPO loop. The KL-
regularised RL objective max E[r] − β·KL(π ‖ π_ref) has the closed-form optimum
π*(y|x) ∝ π_ref(y|x)·exp(r(x, y)/β), so r(x, y) = β·log(π*(y|x)/π_ref(y|x)) + a
term in x alone; put that into the Bradley–Terry likelihood and the x term
cancels, leaving a loss on the policy itself (their eq. 7):

    L = −log σ(β·[(log πθ(y_w|x) − log π_ref(y_w|x)) − (log πθ(y_l|x) − log π_ref(y_l|x))])

The policy starts as a copy of the reference, so both differences are 0 and
the loss is −log σ(0) = ln 2 at step 0, whatever the data. β·(log πθ − log π_ref)
is each continuation's *implicit reward*; their difference is the margin, and
the share of pairs with a positive margin is the preference accuracy.

How far the policy moved: the KL(πθ ‖ π_ref) per token, estimated on fresh
continuations sampled from the policy. At every sampled position the exact KL
of the two next-token distributions over the whole vocabulary is summed and
averaged over positions: the expectation of that average is the sequence KL
divided by its length, with less variance than the one-sample
log πθ(y) − log π_ref(y) estimator (which :func:`sampled_kl` gives, for comparison).

The baseline DPO must beat or match: best-of-n with the reward model —
sample n continuations from the reference, keep the one the reward model
scores highest — judged by the same programmatic judge as DPO's samples.

Example::

    >>> train, test = preference_set().split()
    >>> run = train_dpo(train, test, DPOSettings(beta=0.1))
    >>> run.steps[0].loss                       # ln 2
    0.6931...
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from workbench_engines.errors import Cancelled, EngineError

LN2 = math.log(2.0)
PAIRINGS = ("all", "extremes")
"""Which pairs of a prompt's judged samples DPO trains on (DPOSettings.pairs)."""


@dataclass(frozen=True)
class DPOSettings:
    """A DPO run's knobs."""

    beta: float = 0.1
    """β: how strongly the policy is held to the reference (the implicit reward's scale)."""
    steps: int = 200
    batch: int = 16
    """Pairs per step."""
    pairs: str = "all"
    """"all": every comparison of a prompt's samples that is not a near-tie, C(4, 2) = 6 at most (as InstructGPT's
    reward model learned from every ranked pair); "extremes": only each prompt's best against its worst. On the
    lesson's 576 training prompts, 2,597 pairs against 551, and DPO then beats best-of-4 where it fell short."""
    lr: float = 1e-4
    """Adam's learning rate."""
    kl_every: int = 10
    """Measure the KL to the reference every this many steps (and at step 0 and the last)."""
    kl_samples: int = 32
    """Continuations sampled from the policy for each KL estimate."""
    eval_samples: int = 2
    """Continuations per test prompt for the final judge scores (policy and reference)."""
    best_of: int = 4
    """n of best-of-n."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta > 0):
            raise EngineError(f"beta must be a finite number > 0, got {self.beta!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise EngineError(f"lr must be > 0, got {self.lr!r}")
        if self.pairs not in PAIRINGS:
            raise EngineError(f"pairs must be one of {', '.join(PAIRINGS)}, got {self.pairs!r}")
        for name in ("steps", "batch", "kl_every", "kl_samples", "eval_samples", "best_of"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EngineError(f"{name} must be a positive integer, got {value!r}")


def dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta: float):
    """Rafailov et al. (2023), eq. 7, and the implicit rewards it is made of.

    Args:
        policy_chosen: (B,) log πθ(y_w|x), summed over y_w's tokens.
        policy_rejected: (B,) log πθ(y_l|x).
        reference_chosen: (B,) log π_ref(y_w|x).
        reference_rejected: (B,) log π_ref(y_l|x).
        beta: β > 0.

    Returns:
        (loss, chosen_rewards, rejected_rewards): the mean loss, and β·(log πθ − log π_ref) per pair, (B,) each.

    Raises:
        EngineError: β <= 0, shapes differ, or no pairs.
    """
    import torch.nn.functional as F

    if not (math.isfinite(beta) and beta > 0):
        raise EngineError(f"beta must be a finite number > 0, got {beta!r}")
    shapes = {tuple(t.shape) for t in (policy_chosen, policy_rejected, reference_chosen, reference_rejected)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise EngineError(f"the four log-probabilities must be (B,) tensors of one shape, got {sorted(shapes)}")
    if policy_chosen.shape[0] == 0:
        raise EngineError("no preference pairs: the DPO loss needs at least one")
    chosen = beta * (policy_chosen - reference_chosen)
    rejected = beta * (policy_rejected - reference_rejected)
    # −log σ(m) = softplus(−m): no overflow for a large margin of either sign.
    return F.softplus(-(chosen - rejected)).mean(), chosen.detach(), rejected.detach()


def _padded(prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]):
    """Right-padded (B, T) ids and a (B, T−1) mask that is 1 where position t predicts a continuation token."""
    import torch

    width = max(len(p) + len(c) for p, c in zip(prompts, continuations))
    ids = torch.zeros((len(prompts), width), dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(prompts), width - 1))  # (B, T-1): logits at t score token t+1
    for i, (p, c) in enumerate(zip(prompts, continuations)):
        ids[i, :len(p) + len(c)] = torch.tensor([*p, *c])
        mask[i, len(p) - 1:len(p) + len(c) - 1] = 1.0
    return ids, mask


def sequence_logprobs(model, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]):
    """log π(y|x) for each pair: the continuation's token log-probabilities summed, the prompt's masked out.

    Args:
        model: A GPT; gradients flow when called outside inference mode.
        prompts: Token ids per sequence, each non-empty.
        continuations: Token ids per sequence, each non-empty.

    Returns:
        (B,) float32 tensor.

    Raises:
        EngineError: counts differ, or a prompt or continuation is empty.
    """
    import torch

    if len(prompts) != len(continuations) or not prompts:
        raise EngineError(f"need as many prompts as continuations, at least one; got {len(prompts)} and "
                          f"{len(continuations)}")
    if any(len(p) == 0 for p in prompts) or any(len(c) == 0 for c in continuations):
        raise EngineError("a prompt or a continuation is empty")
    ids, mask = _padded(prompts, continuations)
    logits = model(ids)[:, :-1].float()  # (B, T-1, V)
    token = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]  # (B, T-1)
    return (token * mask).sum(dim=1)


def token_kl(policy_logits, reference_logits, mask=None) -> float:
    """Mean over masked positions of KL(p ‖ q), p = softmax(policy_logits) and q = softmax(reference_logits).

    Args:
        policy_logits: (..., V) logits of πθ.
        reference_logits: (..., V) logits of π_ref, same shape.
        mask: (...) 1 on positions to average over; None for all.

    Returns:
        KL in nats per position.

    Raises:
        EngineError: shapes differ or the mask selects nothing.
    """
    import torch

    if policy_logits.shape != reference_logits.shape:
        raise EngineError(f"logits differ in shape: {tuple(policy_logits.shape)} and {tuple(reference_logits.shape)}")
    logp = torch.log_softmax(policy_logits.double(), dim=-1)
    logq = torch.log_softmax(reference_logits.double(), dim=-1)
    kl = (logp.exp() * (logp - logq)).sum(-1)  # (...)
    if mask is None:
        return float(kl.mean())
    mask = mask.double()
    if float(mask.sum()) == 0:
        raise EngineError("the mask selects no position to average the KL over")
    return float((kl * mask).sum() / mask.sum())


def sampled_kl(logp_policy: np.ndarray, logp_reference: np.ndarray) -> float:
    """The one-sample estimator of KL(πθ ‖ π_ref): the mean of log πθ(y) − log π_ref(y) over samples y ∼ πθ.

    Unbiased for KL(πθ ‖ π_ref) but noisy (single terms can be negative).
    """
    a, b = np.asarray(logp_policy, dtype=np.float64), np.asarray(logp_reference, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise EngineError(f"need two equal, non-empty arrays of log-probabilities, got {a.shape} and {b.shape}")
    return float(np.mean(a - b))


def kl_to_reference(policy, reference, prompts: Sequence[Sequence[int]], tokens: int, *, seed: int = 0) -> float:
    """KL(πθ ‖ π_ref) per token on continuations freshly sampled from the policy (T = 1), see the module's note."""
    import torch

    from workbench_engines.finetune.preferences import sample_continuations

    drawn = [c[0] for c in sample_continuations(policy, prompts, tokens, 1, seed=seed)]
    ids, mask = _padded(prompts, drawn)
    with torch.inference_mode():
        return token_kl(policy(ids)[:, :-1], reference(ids)[:, :-1], mask)


@dataclass(frozen=True)
class DPOStep:
    """What one DPO step measured on its batch (before the update)."""

    step: int
    loss: float
    margin: float
    """Mean implicit reward margin β·(Δ_w − Δ_l)."""
    chosen_reward: float
    """Mean β·(log πθ(y_w|x) − log π_ref(y_w|x))."""
    rejected_reward: float
    accuracy: float
    """Share of the batch's pairs with a positive margin (ties count half)."""
    kl: float | None = None
    """KL(πθ ‖ π_ref) per token on fresh policy samples, where measured."""
    seconds: float = 0.0
    """Since the run started."""


@dataclass
class Evaluation:
    """The judge's mean score of continuations of the test prompts, four ways."""

    reference: float
    """Plain samples from the reference (all n of each prompt's best-of-n pool)."""
    policy: float
    """Plain samples from the DPO policy."""
    best_of_n: float
    """The reward model's pick of n reference samples."""
    oracle_best_of_n: float
    """The judge's own pick of the same n: the most best-of-n could reach with a perfect reward model."""
    n: int
    prompts: int
    samples: int
    """Continuations per prompt behind the policy's figure."""
    examples: list[tuple[str, str, str]] = field(default_factory=list)
    """(prompt, reference's continuation, policy's continuation) for the first test prompts."""

    @property
    def dpo_beats_best_of_n(self) -> bool:
        """Does DPO's mean judge score reach best-of-n's (within 0.005)?"""
        return self.policy >= self.best_of_n - 0.005


@dataclass
class DPORun:
    settings: DPOSettings
    steps: list[DPOStep]
    policy: object
    """The trained GPT (a copy; the reference is untouched)."""
    evaluation: Evaluation | None = None
    seconds: float = 0.0


def judge_mean(tokenizer, continuations: Sequence[Sequence[int]]) -> float:
    """The lexicon judge's mean compound score of decoded continuations."""
    from workbench_engines.finetune.judge import compound

    return float(np.mean([compound(tokenizer.decode(list(c))) for c in continuations]))


def evaluate(policy, reference, tokenizer, prompts: Sequence[Sequence[int]], reward_model, settings: DPOSettings,
             tokens: int, texts: Sequence[str] = (), should_stop: Callable[[], bool] | None = None,
             progress: Callable[[float, str], None] | None = None) -> Evaluation:
    """Judge fresh samples from policy and reference, and best-of-n of the reference picked by reward_model.

    Args:
        policy: The trained GPT.
        reference: The frozen GPT (also the reward model's feature GPT).
        tokenizer: Decodes tokens for the judge.
        prompts: Test prompts' ids.
        reward_model: ``reward.RewardModel`` for best-of-n.
        settings: eval_samples, best_of and seed are read.
        tokens: Tokens per continuation.
        texts: The prompts as text, for the examples.
        should_stop: Polled while sampling and while the reward model reads.
        progress: progress(fraction, what) while a MiniLM reward model embeds the n samples.
    """
    from workbench_engines.finetune.judge import compound
    from workbench_engines.finetune.preferences import sample_continuations

    seed, k, n = settings.seed + 7, settings.eval_samples, settings.best_of
    mine = sample_continuations(policy, prompts, tokens, k, seed=seed, should_stop=should_stop)
    theirs = sample_continuations(reference, prompts, tokens, n, seed=seed, should_stop=should_stop)
    flat_prompts = [p for p in prompts for _ in range(n)]
    flat = [c for group in theirs for c in group]
    decoded = [tokenizer.decode(c) for c in flat]
    if reward_model.features == "minilm":
        from workbench_engines.finetune.reward import embed

        rewards = reward_model.score_features(embed(decoded, progress=progress, should_stop=should_stop))
    else:
        rewards = reward_model.score(reference, flat_prompts, flat)
    rewards = rewards.reshape(len(prompts), n)
    judged = np.array([compound(d) for d in decoded]).reshape(len(prompts), n)
    picks = rewards.argmax(axis=1)
    examples = [(texts[i] if i < len(texts) else tokenizer.decode(list(prompts[i])),
                 tokenizer.decode(theirs[i][0]), tokenizer.decode(mine[i][0])) for i in range(min(4, len(prompts)))]
    return Evaluation(
        reference=float(judged.mean()),
        policy=judge_mean(tokenizer, [c for group in mine for c in group]),
        best_of_n=float(judged[np.arange(len(prompts)), picks].mean()),
        oracle_best_of_n=float(judged.max(axis=1).mean()),
        n=n, prompts=len(prompts), samples=k, examples=examples)


def train_dpo(train, test, settings: DPOSettings = DPOSettings(), *, reference=None, tokenizer=None,
              reward_model=None, on_step: Callable[[DPOStep], None] | None = None,
              progress: Callable[[float, str], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> DPORun:
    """Train a copy of the reference GPT with DPO on ``train``'s pairs; measure KL and, given a reward model, judge.

    Args:
        train: A ``preferences.PreferenceSet``: its ``comparisons`` (every ranked pair) are trained on, or its
            ``pairs`` (best against worst per prompt) with settings.pairs "extremes".
        test: A held-out ``PreferenceSet``: its prompts are where KL and the final judge scores are measured.
        settings: β, steps, batch, learning rate and evaluation sizes.
        reference: The frozen GPT; None for the shipped target (with its tokenizer).
        tokenizer: Decodes for the judge; None for the shipped one.
        reward_model: A ``reward.RewardModel`` for the best-of-n baseline; None skips the final evaluation.
        on_step: Called with each DPOStep.
        progress: progress(fraction, what).
        should_stop: Polled every step and while sampling.

    Returns:
        The per-step figures, the policy and (with a reward model) the evaluation.

    Raises:
        EngineError: no training pairs or test prompts, or a loss that is not finite (the policy is discarded).
        Cancelled: should_stop() returned True.
    """
    import torch

    pairs = train.comparisons if settings.pairs == "all" else train.pairs
    if not pairs:
        raise EngineError("no preference pairs to train on: DPO needs at least one")
    if not test.judged:
        raise EngineError("no test prompts: the KL and the judge's scores are measured on held-out prompts")
    if reference is None or tokenizer is None:
        from workbench_engines.models import small_gpt

        shipped = small_gpt.load("target")
        reference = shipped.model if reference is None else reference
        tokenizer = shipped.tokenizer if tokenizer is None else tokenizer
    started = time.perf_counter()
    # The reference is only read, under no_grad, and is usually the shipped model every lab shares (loaded once
    # per process): its requires_grad flags are left as they are, or any later fine-tuning of it would find
    # nothing to train.
    reference.eval()
    policy = copy.deepcopy(reference)
    for p in policy.parameters():
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(policy.parameters(), lr=settings.lr)
    rng = np.random.default_rng(settings.seed)
    test_prompts = [j.prompt_ids for j in test.judged]
    kl_prompts = [test_prompts[i % len(test_prompts)] for i in range(settings.kl_samples)]
    tokens = len(pairs[0].chosen)
    evaluating = reward_model is not None
    total = settings.steps + (1 if evaluating else 0)
    steps: list[DPOStep] = []
    for step in range(settings.steps + 1):
        if should_stop is not None and should_stop():
            raise Cancelled("DPO cancelled")
        batch = [pairs[i] for i in rng.choice(len(pairs), size=min(settings.batch, len(pairs)), replace=False)]
        prompts = [p.prompt_ids for p in batch] * 2
        continuations = [p.chosen for p in batch] + [p.rejected for p in batch]
        with torch.no_grad():
            ref = sequence_logprobs(reference, prompts, continuations)
        mine = sequence_logprobs(policy, prompts, continuations)
        b = len(batch)
        loss, chosen, rejected = dpo_loss(mine[:b], mine[b:], ref[:b], ref[b:], settings.beta)
        if not torch.isfinite(loss):
            raise EngineError(f"the DPO loss is {loss.item()} at step {step}: stopped, the policy is discarded "
                              f"(try a smaller learning rate than {settings.lr:g})")
        margin = chosen - rejected
        kl = None
        if step % settings.kl_every == 0 or step == settings.steps:
            kl = kl_to_reference(policy, reference, kl_prompts, tokens, seed=settings.seed + 1)
        record = DPOStep(step, loss.item(), float(margin.mean()), float(chosen.mean()), float(rejected.mean()),
                         float(((margin > 0).float() + 0.5 * (margin == 0).float()).mean()), kl,
                         time.perf_counter() - started)
        steps.append(record)
        if on_step is not None:
            on_step(record)
        if progress is not None:
            progress(step / total, f"DPO step {step}/{settings.steps}, loss {record.loss:.3f}")
        if step == settings.steps:
            break  # the last row measures the trained policy; no update after it
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    policy.eval()
    for p in policy.parameters():
        p.requires_grad_(False)
    run = DPORun(settings, steps, policy)
    if evaluating:
        if progress is not None:
            progress(settings.steps / total, f"judging samples (policy, reference, best-of-{settings.best_of})")
        run.evaluation = evaluate(
            policy, reference, tokenizer, test_prompts, reward_model, settings, tokens, [j.prompt for j in test.judged],
            should_stop, None if progress is None else lambda f, what: progress(settings.steps / total, what))
    run.seconds = time.perf_counter() - started
    return run
