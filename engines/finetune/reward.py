"""A Bradley–Terry reward model: a linear head on the small GPT's features, trained on preference pairs.

Bradley & Terry (1952) model a comparison between a and b as
P(a ≻ b) = σ(r(a) − r(b)): each item has a strength r, and only differences
matter (adding a constant to every r changes nothing, so the head has no bias).
Fitting r to pairs (y_w ≻ y_l) by maximum likelihood minimises
−log σ(r(y_w) − r(y_l)), the loss of RLHF's reward models (Christiano et al.,
2017; Ouyang et al., 2022, eq. 1).

Features, one of two readers (``features=``):

- ``"minilm"`` (the default where the optional extra is installed): the
  continuation's text embedded by all-MiniLM-L6-v2, a frozen sentence
  encoder (mean-pooled, unit length, 384 numbers). It was trained to place
  sentences of like meaning together, and text of like mood lands near too;
  on the lessons' pairs it ranks held-out comparisons clearly
  better than the GPT's features. Embeddings of texts already read are kept
  for the process, and a preference set's are written beside its cache file,
  so a set is embedded once.
- ``"gpt"``: the frozen target GPT's final hidden state (after its last
  RMSNorm) averaged over the continuation's tokens, with the prompt as
  context (192 numbers). The same network that writes the text reads it, as
  InstructGPT's reward model starts from the policy's own weights, and it
  needs nothing beyond the shipped model.

Features are standardised with the training set's mean and spread, and the
head is trained full-batch with Adam and an L2 penalty (stronger for
MiniLM's wider features, :data:`WEIGHT_DECAY`), so training takes seconds at
most once the features exist.

Example::

    >>> train, test = preference_set().split()
    >>> run = train_reward_model(train, test)
    >>> run.test_accuracy > 0.5
    True
"""

from __future__ import annotations

import math
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from workbench_engines.errors import Cancelled, EngineError

FEATURE_BATCH = 64
"""Sequences per forward pass while computing features."""
FEATURES = ("minilm", "gpt")
"""The readers a reward model can stand on: MiniLM sentence embeddings, or the small GPT's hidden states."""

WEIGHT_DECAY = {"minilm": 0.1, "gpt": 0.01}
"""The L2 penalty each reader's head is trained with by default: MiniLM's 384 features overfit about a thousand
comparisons at 0.01 (held-out loss above ln 2) and generalise best near 0.1; the GPT's 192 do best at 0.01."""

_EMBEDDED: dict[str, np.ndarray] = {}
"""MiniLM embeddings of the texts read so far in this process, by text."""


def minilm_available() -> bool:
    """Is all-MiniLM-L6-v2 installed (the optional extra "minilm"), so that ``features="minilm"`` works?"""
    import importlib.util

    from workbench_engines.tokenizers.wordpiece import minilm_dir

    try:
        minilm_dir()
    except EngineError:
        return False
    return importlib.util.find_spec("safetensors") is not None


def default_features() -> str:
    """``"minilm"`` where it is installed, else ``"gpt"``."""
    return "minilm" if minilm_available() else "gpt"


def _check_features(name: str) -> str:
    if name not in FEATURES:
        raise EngineError(f"features must be one of {', '.join(FEATURES)}, got {name!r}")
    return name


def bradley_terry_probability(r_a: float, r_b: float) -> float:
    """P(a ≻ b) = σ(r_a − r_b) (Bradley & Terry, 1952)."""
    d = float(r_a) - float(r_b)
    return 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))


def bradley_terry_loss(r_chosen, r_rejected):
    """Mean −log σ(r_chosen − r_rejected) over pairs: the negative log-likelihood of the preferences.

    Args:
        r_chosen: (N,) torch tensor, rewards of the preferred items.
        r_rejected: (N,) torch tensor, rewards of the others.

    Returns:
        A scalar tensor (ln 2 when every difference is 0).

    Raises:
        EngineError: shapes differ or there are no pairs.
    """
    import torch.nn.functional as F

    if r_chosen.shape != r_rejected.shape or r_chosen.ndim != 1:
        raise EngineError(f"rewards must be two (N,) tensors, got {tuple(r_chosen.shape)} and "
                          f"{tuple(r_rejected.shape)}")
    if r_chosen.shape[0] == 0:
        raise EngineError("no preference pairs: the Bradley–Terry loss needs at least one")
    # −log σ(d) = softplus(−d), computed without overflow for large |d|.
    return F.softplus(-(r_chosen - r_rejected)).mean()


def features(model, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]) -> np.ndarray:
    """The mean final hidden state over each continuation's tokens, the prompt read as context.

    Args:
        model: A GPT (``models.gpt.GPT``), used frozen.
        prompts: Token ids per text (non-empty).
        continuations: Token ids per text (non-empty), as many as prompts.

    Returns:
        (N, C) float64 features.

    Raises:
        EngineError: counts differ, or a prompt or continuation is empty.
    """
    import torch

    if len(prompts) != len(continuations):
        raise EngineError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    if any(len(p) == 0 for p in prompts) or any(len(c) == 0 for c in continuations):
        raise EngineError("a prompt or a continuation is empty: the reward model needs tokens to read")
    captured = []
    hook = model.norm.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    rows = []
    try:
        with torch.inference_mode():
            for start in range(0, len(prompts), FEATURE_BATCH):
                ps, cs = prompts[start:start + FEATURE_BATCH], continuations[start:start + FEATURE_BATCH]
                width = max(len(p) + len(c) for p, c in zip(ps, cs))
                # Right padding: a causal model's earlier positions never see it.
                ids = torch.zeros((len(ps), width), dtype=torch.long)  # (B, T)
                mask = torch.zeros((len(ps), width))  # (B, T): 1 on continuation tokens
                for i, (p, c) in enumerate(zip(ps, cs)):
                    ids[i, :len(p) + len(c)] = torch.tensor([*p, *c])
                    mask[i, len(p):len(p) + len(c)] = 1.0
                captured.clear()
                model(ids)
                hidden = captured[-1].float()  # (B, T, C)
                rows.append(((hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)).double().numpy())
    finally:
        hook.remove()
    return np.concatenate(rows) if rows else np.zeros((0, model.config.d_model))


def _read_cache(path: Path) -> None:
    """Put the embeddings a file of :func:`_write_cache` holds into the process's memory; a bad file is ignored."""
    with suppress(OSError, ValueError, KeyError):  # a missing or damaged cache is rebuilt by embedding again
        with np.load(path, allow_pickle=False) as data:
            texts, vectors = data["texts"], data["vectors"]
        if len(texts) == len(vectors):
            for text, vector in zip(texts.tolist(), vectors):
                _EMBEDDED.setdefault(text, vector)


def _write_cache(path: Path, texts: Sequence[str]) -> None:
    """Write the embeddings of ``texts`` to path (as path.tmp, then renamed: never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, texts=np.array(list(texts), dtype=str), vectors=np.stack([_EMBEDDED[t] for t in texts]))
    tmp.replace(path)


def embed(texts: Sequence[str], *, cache: Path | None = None, progress: Callable[[float, str], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """MiniLM embeddings of texts, each text read once per process (and once ever, given a cache file).

    Args:
        texts: The continuations' text.
        cache: A .npz file of earlier embeddings: read first, and rewritten with every text of this call when
            some had to be embedded. None: memory only.
        progress: progress(fraction, what) after each batch embedded.
        should_stop: Polled between batches.

    Returns:
        (N, 384) float64 unit rows.

    Raises:
        EngineError: all-MiniLM-L6-v2 is not installed.
        Cancelled: should_stop() returned True.
    """
    from workbench_engines.models import minilm

    texts = list(texts)
    if cache is not None and cache.is_file() and any(t not in _EMBEDDED for t in texts):
        _read_cache(cache)
    missing = list(dict.fromkeys(t for t in texts if t not in _EMBEDDED))
    if missing:
        model = minilm.load()
        # Similar lengths in a batch waste less on padding.
        missing.sort(key=len)
        for start in range(0, len(missing), FEATURE_BATCH):
            if should_stop is not None and should_stop():
                raise Cancelled("embedding cancelled")
            if progress is not None:
                progress(start / len(missing), f"MiniLM reading texts {start + 1}–"
                                               f"{min(start + FEATURE_BATCH, len(missing))} of {len(missing)}")
            batch = missing[start:start + FEATURE_BATCH]
            for text, vector in zip(batch, model.embed(batch)):
                _EMBEDDED[text] = vector.astype(np.float64)
        if progress is not None:
            progress(1.0, f"{len(missing)} texts read")
        if cache is not None:
            _write_cache(cache, list(dict.fromkeys(texts)))
    return np.stack([_EMBEDDED[t] for t in texts]) if texts else np.zeros((0, 384))


@dataclass(frozen=True)
class RewardModel:
    """r(x, y) = w · (f(x, y) − mean) / std, f the features named by ``features`` (see the module)."""

    weight: np.ndarray
    """(C,) float64."""
    mean: np.ndarray
    """(C,) the training features' mean."""
    std: np.ndarray
    """(C,) their standard deviation (at least 1e-6)."""
    features: str = "gpt"
    """What the head reads: "minilm" or "gpt"."""

    def score_features(self, f: np.ndarray) -> np.ndarray:
        """Rewards of (N, C) features, (N,)."""
        return ((np.asarray(f, dtype=np.float64) - self.mean) / self.std) @ self.weight

    def score(self, model, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
              texts: Sequence[str] | None = None) -> np.ndarray:
        """Rewards of continuations of prompts, (N,).

        Args:
            model: The GPT the head was trained on (read when ``features`` is "gpt").
            prompts: Token ids per continuation.
            continuations: Token ids.
            texts: The continuations decoded (read when ``features`` is "minilm").

        Raises:
            EngineError: a MiniLM head without the texts.
        """
        if self.features == "minilm":
            if texts is None or len(texts) != len(continuations):
                raise EngineError("a MiniLM reward model reads text: pass the continuations' texts")
            return self.score_features(embed(texts))
        return self.score_features(features(model, prompts, continuations))


@dataclass
class RewardTraining:
    """A trained reward model and how training went."""

    reward_model: RewardModel
    losses: list[float] = field(default_factory=list)
    """Training loss (Bradley–Terry NLL, mean over training pairs) after each step."""
    test_losses: list[float] = field(default_factory=list)
    train_accuracy: float = float("nan")
    """Share of training pairs with r(chosen) > r(rejected)."""
    test_accuracy: float = float("nan")
    """The same on held-out pairs: 0.5 is chance."""
    n_train: int = 0
    n_test: int = 0
    seconds: float = 0.0
    feature_seconds: float = 0.0


def embedding_cache(settings) -> Path:
    """Where a preference set's MiniLM embeddings are kept: beside its cache file, ``minilm-<hash>.npz``."""
    from workbench_engines.finetune.preferences import cache_path

    path = cache_path(settings)
    return path.with_name(path.name.replace("preferences-", "minilm-").replace(".json", ".npz"))


def judged_features(model, preferences, kind: str = "gpt", *, cache: Path | None = None,
                    progress: Callable[[float, str], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features of every judged continuation once, and the (chosen row, rejected row) index of each comparison.

    Args:
        model: The feature GPT (read when ``kind`` is "gpt").
        preferences: A ``preferences.PreferenceSet``.
        kind: "gpt" or "minilm".
        cache: For "minilm", the embeddings' cache file (see :func:`embed`).
        progress: For "minilm", progress(fraction, what) while embedding.
        should_stop: For "minilm", polled between batches.

    Returns:
        ((M, C) features, (P, 2) int64 rows): comparison k prefers row [k, 0] to row [k, 1].
    """
    prompts, continuations, texts, index = [], [], [], []
    margin = preferences.settings.min_margin
    for judged in preferences.judged:
        base = len(continuations)
        for c, text in zip(judged.continuations, judged.texts):
            prompts.append(judged.prompt_ids)
            continuations.append(c)
            texts.append(text)
        for i, a in enumerate(judged.scores):
            for j, b in enumerate(judged.scores):
                if i != j and a - b >= max(margin, 1e-12):
                    index.append((base + i, base + j))
    if _check_features(kind) == "minilm":
        rows = embed(texts, cache=cache, progress=progress, should_stop=should_stop)
    else:
        rows = features(model, prompts, continuations) if continuations else np.zeros((0, model.config.d_model))
    return rows, np.array(index, dtype=np.int64).reshape(-1, 2)


def train_reward_model(train, test, *, features: str | None = None, model=None, steps: int = 300, lr: float = 0.02,
                       weight_decay: float | None = None, seed: int = 0, disk: bool = True,
                       on_step: Callable[[int, float], None] | None = None,
                       progress: Callable[[float, str], None] | None = None,
                       should_stop: Callable[[], bool] | None = None) -> RewardTraining:
    """Fit the Bradley–Terry head on every comparison in ``train``; measure pair accuracy on ``test``.

    Args:
        train: A ``preferences.PreferenceSet`` whose comparisons are fitted (at least one).
        test: One held out (its comparisons may be none: the test figures are then nan).
        features: "minilm" or "gpt" (see the module); None for :func:`default_features`.
        model: The feature GPT for "gpt"; None for the shipped target.
        steps: Full-batch Adam steps.
        lr: Adam's learning rate.
        weight_decay: L2 penalty on w (weight_decay · |w|² added to the loss); None for the reader's
            :data:`WEIGHT_DECAY`.
        seed: Seeds the head's initial weights.
        disk: For "minilm", keep the embeddings in a file beside the preference set's cache.
        on_step: on_step(step, loss) after each step.
        progress: progress(fraction, what) while MiniLM embeds the texts.
        should_stop: Polled every step and between batches of texts.

    Returns:
        The head and its curves.

    Raises:
        EngineError: no training comparisons, bad steps, lr or features, MiniLM asked for but not installed, or
            a loss that is not finite.
        Cancelled: should_stop() returned True.
    """
    import torch

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise EngineError(f"steps must be a positive integer, got {steps!r}")
    kind = _check_features(default_features() if features is None else features)
    weight_decay = WEIGHT_DECAY[kind] if weight_decay is None else weight_decay
    if not lr > 0 or not weight_decay >= 0:
        raise EngineError(f"lr must be > 0 and weight_decay >= 0, got {lr} and {weight_decay}")
    if not train.comparisons:
        raise EngineError("no training pairs: the reward model needs at least one preference")
    if model is None and kind == "gpt":
        from workbench_engines.models import small_gpt

        model = small_gpt.load("target").model
    started = time.perf_counter()
    cache = embedding_cache(train.settings) if disk and kind == "minilm" else None
    if kind == "minilm":
        # Both halves at once: one pass over the texts, one cache file for the whole set.
        embed([t for j in [*train.judged, *test.judged] for t in j.texts], cache=cache, progress=progress,
              should_stop=should_stop)
    train_rows, train_index = judged_features(model, train, kind)
    test_rows, test_index = judged_features(model, test, kind)
    feature_seconds = time.perf_counter() - started
    chosen, rejected = train_rows[train_index[:, 0]], train_rows[train_index[:, 1]]
    test = (test_rows[test_index[:, 0]], test_rows[test_index[:, 1]]) if len(test_index) else None
    mean, std = train_rows.mean(0), np.maximum(train_rows.std(0), 1e-6)

    def standard(f: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((f - mean) / std)

    xc, xr = standard(chosen), standard(rejected)
    tc, tr = (standard(test[0]), standard(test[1])) if test is not None else (None, None)
    generator = torch.Generator().manual_seed(seed)
    w = (torch.randn(xc.shape[1], generator=generator, dtype=torch.float64) * 0.01).requires_grad_()
    optimiser = torch.optim.Adam([w], lr=lr)
    losses, test_losses = [], []
    for step in range(1, steps + 1):
        if should_stop is not None and should_stop():
            raise Cancelled("reward model training cancelled")
        optimiser.zero_grad()
        loss = bradley_terry_loss(xc @ w, xr @ w)
        if not torch.isfinite(loss):
            raise EngineError(f"the reward model's loss is {loss.item()} at step {step}: stopped, nothing kept")
        (loss + weight_decay * (w * w).sum()).backward()
        optimiser.step()
        losses.append(loss.item())
        if tc is not None:
            with torch.no_grad():
                test_losses.append(bradley_terry_loss(tc @ w, tr @ w).item())
        if on_step is not None:
            on_step(step, losses[-1])
    weight = w.detach().numpy().copy()
    rm = RewardModel(weight, mean, std, kind)
    train_accuracy = float(np.mean(rm.score_features(chosen) > rm.score_features(rejected)))
    test_accuracy = (float(np.mean(rm.score_features(test[0]) > rm.score_features(test[1])))
                     if test is not None else float("nan"))
    return RewardTraining(rm, losses, test_losses, train_accuracy, test_accuracy, len(train_index), len(test_index),
                          time.perf_counter() - started, feature_seconds)
