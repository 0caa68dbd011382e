"""Linear probes with control tasks: how much of a label a layer's representation makes linearly readable.

A probe is a logistic regression trained on frozen activations of one layer
to predict a label. High accuracy alone says little: a probe with enough
capacity can learn a mapping the representation merely permits. Hewitt &
Liang (2019, "Designing and Interpreting Probes with Control Tasks") pair
each task with a control task whose labels are a fixed random function of
word identity: a probe can only do well on it by memorising word types. The
gap, selectivity = accuracy − control accuracy, credits the representation
rather than the probe.

The task here is the genre of a line of a play (comedy, tragedy or history;
the default corpus keeps the plays in folders by genre). The lines come from
the held-out end of each play (``evaluation.heldout``), text the small GPT
never trained on. Each line's control label is a hash of its first word, so
lines opening with the same word always share a control label, whatever their
genre: the sentence-level form of Hewitt & Liang's per-word-type control.

Example::

    >>> data = genre_lines(per_genre=100)
    >>> feats = gpt_features(small_gpt.load("target"), data.texts)      # [(N, C)] per layer, 0 = embeddings
    >>> result = probe_by_layer(feats, data.labels, data.control, classes=len(data.genres))
    >>> result.best.layer, result.best.selectivity

torch is imported inside the functions.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from workbench_engines.errors import EngineError

GENRES = ("comedies", "tragedies", "histories")
"""The three genre folders the task asks a probe to tell apart."""
MIN_WORDS = 4
"""Shorter lines ("My lord?") say too little about a play's genre to ask for it."""
LINES = 4
"""Spoken lines per passage: one verse line is too little text to tell a comedy from a tragedy."""
L2 = 1e-2
"""The probe's L2 penalty on its weights (features standardised first), the same for every layer and model."""

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class ProbeData:
    """Lines of plays with their genre and their control label."""

    texts: list[str]
    labels: np.ndarray
    """(N,) int, index into genres."""
    control: np.ndarray
    """(N,) int in 0 … len(genres) − 1: the hash of the line's first word (the control task)."""
    genres: tuple[str, ...]


@dataclass(frozen=True)
class LayerProbe:
    """One layer's probe on the task and on its control task, scored on the held-back test lines."""

    layer: int
    """0 is the embeddings; L is the output of block L − 1."""
    accuracy: float
    control_accuracy: float

    @property
    def selectivity(self) -> float:
        """Hewitt & Liang's selectivity: task accuracy minus control-task accuracy."""
        return self.accuracy - self.control_accuracy


@dataclass(frozen=True)
class ProbeResult:
    """Probes of every layer of one model."""

    layers: list[LayerProbe]
    train: int
    """Lines the probes were fitted on."""
    test: int
    """Lines they were scored on."""
    chance: float
    """The share of the test lines in their most common class: what always guessing it scores."""
    control_chance: float
    """The same for the control labels: the control probe's floor (its classes need not be balanced)."""

    @property
    def best(self) -> LayerProbe:
        """The layer of highest selectivity (the earliest one on a tie)."""
        return max(self.layers, key=lambda p: (round(p.selectivity, 12), -p.layer))


def first_word(line: str) -> str:
    """The line's first word, lower-cased, without punctuation: the word type the control label hangs on."""
    words = re.findall(r"[a-z']+", line.lower())
    return words[0].strip("'") if words else ""


def control_labels(texts: Sequence[str], classes: int) -> np.ndarray:
    """(N,) control labels: crc32 of each line's first word, mod classes; fixed per word type, random across types."""
    return np.array([zlib.crc32(first_word(t).encode()) % classes for t in texts], dtype=np.int64)


def spoken_lines(text: str) -> list[str]:
    """The lines of a play's Markdown that a character speaks: no headings, stage directions or speaker names."""
    lines = [line.strip() for line in text.split("\n")]
    return [line for line in lines if line and not line.startswith(("#", "_", "**", "["))
            and len(line.split()) >= MIN_WORDS]


def genre_lines(per_genre: int = 100, seed: int = 0, genres: Sequence[str] = GENRES) -> ProbeData:
    """per_genre lines of each genre, drawn at random (seeded) from the held-out ends of that genre's plays.

    The end of each play is cut where the small GPT's training cut it (the last 5% of its tokens), so
    none of these lines were trained on. The first, possibly partial, line of each end is dropped.

    Raises:
        EngineError: an unknown genre, or fewer than per_genre lines in one.
    """
    from workbench_engines import corpus
    from workbench_engines.arrays import require_int
    from workbench_engines.models.data import held_out_start
    from workbench_engines.models.small_gpt import shipped_tokenizer

    per_genre = require_int(per_genre, "per_genre", low=2)
    files = corpus.default_corpus_files()
    known = sorted({f.parent.name for f in files})
    for genre in genres:
        if genre not in known:
            raise EngineError(f"unknown genre {genre!r}; the corpus has {', '.join(known)}")
    tokenizer = shipped_tokenizer()
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[int] = []
    for g, genre in enumerate(genres):
        plays = [f for f in files if f.parent.name == genre]
        pool: list[str] = []
        for ids in tokenizer.encode_batch([corpus.read_text(f) for f in plays]):
            spoken = spoken_lines(tokenizer.decode(ids[held_out_start(len(ids)):]).split("\n", 1)[-1])
            pool.extend(" ".join(spoken[i:i + LINES]) for i in range(0, len(spoken) - LINES + 1, LINES))
        if len(pool) < per_genre:
            raise EngineError(f"{genre} has {len(pool)} held-out lines, fewer than the {per_genre} asked for")
        texts.extend(pool[i] for i in sorted(rng.choice(len(pool), per_genre, replace=False)))
        labels.extend([g] * per_genre)
    return ProbeData(texts, np.array(labels, dtype=np.int64), control_labels(texts, len(genres)), tuple(genres))


def _pool(hidden: np.ndarray, mask: np.ndarray, pool: str) -> np.ndarray:
    """(B, T, C) states → (B, C): the mean over real tokens, or the last real token's state."""
    if pool == "mean":
        weights = mask[..., None].astype(np.float64)  # (B, T, 1)
        return (hidden * weights).sum(axis=1) / weights.sum(axis=1)
    last = mask.sum(axis=1) - 1  # (B,)
    return hidden[np.arange(len(hidden)), last].astype(np.float64)


def _check_pool(pool: str) -> None:
    if pool not in ("mean", "last"):
        raise EngineError(f"pool is 'mean' or 'last', got {pool!r}")


def gpt_features(pretrained, texts: Sequence[str], pool: str = "mean", batch: int = 64,
                 progress: Progress | None = None) -> list[np.ndarray]:
    """Each layer's residual stream of a GPT-shaped model, pooled per text: [(N, C) float64] × (n_layers + 1).

    Layer 0 is resid_pre.0 (the token embeddings), layer L the stream leaving block L − 1 (resid_post),
    read with ``hooks.run_with_cache``. Texts are right-padded in a batch; the model is causal, so padding
    after a line never reaches its tokens, and pooling counts only real ones.

    Raises:
        EngineError: no texts, a text with no tokens, or a bad pool.
    """
    from workbench_engines.interp.hooks import gpt_module, run_with_cache

    _check_pool(pool)
    if not texts:
        raise EngineError("no texts to probe")
    module = gpt_module(pretrained)
    n = len(module.blocks)
    sites = ["resid_pre.0", *(f"resid_post.{l}" for l in range(n))]
    encoded = [list(pretrained.tokenizer.encode(t)) for t in texts]
    if any(not e for e in encoded):
        raise EngineError("a text encodes to no tokens")
    out: list[list[np.ndarray]] = [[] for _ in sites]
    for start in range(0, len(encoded), batch):
        chunk = encoded[start:start + batch]
        longest = max(map(len, chunk))
        ids = np.zeros((len(chunk), longest), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(chunk):
            ids[row, :len(e)], mask[row, :len(e)] = e, 1
        _, cache = run_with_cache(module, ids, sites)
        for i, site in enumerate(sites):
            out[i].append(_pool(cache[site].double().numpy(), mask, pool))
        if progress is not None:
            progress(min(start + batch, len(encoded)) / len(encoded), "reading the residual stream")
    return [np.concatenate(parts) for parts in out]


def minilm_features(minilm, texts: Sequence[str], pool: str = "mean", batch: int = 64,
                    progress: Progress | None = None) -> list[np.ndarray]:
    """Each of MiniLM's hidden states, pooled per text ([CLS] … [SEP], padding left out): [(N, 384)] × 7.

    Layer 0 is the normed embeddings, layer L the output of encoder layer L − 1. "last" takes [SEP].
    """
    _check_pool(pool)
    if not texts:
        raise EngineError("no texts to probe")
    out: list[list[np.ndarray]] = []
    for start in range(0, len(texts), batch):
        ids, mask, _ = minilm.encode_texts(list(texts[start:start + batch]))
        hidden = minilm.forward(ids, mask).hidden_states
        if not out:
            out = [[] for _ in hidden]
        for i, h in enumerate(hidden):
            out[i].append(_pool(h, mask, pool))
        if progress is not None:
            progress(min(start + batch, len(texts)) / len(texts), "running MiniLM")
    return [np.concatenate(parts) for parts in out]


def split(labels: np.ndarray, test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices), stratified: each class keeps its share in both (seeded, sorted)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        cut = int(round(len(members) * test_fraction))
        test.extend(members[:cut])
        train.extend(members[cut:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(test, dtype=np.int64))


@dataclass(frozen=True)
class LogisticProbe:
    """Multinomial logistic regression on standardised features: softmax((x − μ) / σ · W + b)."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    """(C, K)."""
    bias: np.ndarray
    """(K,)."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N,) the most probable class of each row of x (N, C)."""
        return np.argmax(((x - self.mean) / self.scale) @ self.weight + self.bias, axis=1)


def fit_logistic(x: np.ndarray, y: np.ndarray, classes: int, l2: float = L2, iters: int = 300) -> LogisticProbe:
    """Fit a LogisticProbe by full-batch gradient descent with Nesterov momentum on
    mean cross-entropy + l2/2 · ‖W‖² (float64, from zeros, a fixed number of steps).

    The step is 1 / L for L = ‖X‖₂² / N + l2, a bound on the loss's curvature (the softmax's Hessian is at
    most ½ I per example), so the descent is stable without a line search. Deterministic: no sampling,
    the same start, the same data give the same weights.
    """
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-8
    xs = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])  # (N, C + 1): the last column carries the bias
    onehot = np.eye(classes)[np.asarray(y, dtype=np.int64)]  # (N, K)
    n = len(xs)
    step = 1.0 / (np.linalg.norm(xs, 2) ** 2 / n + l2)
    penalty = np.ones((xs.shape[1], 1))
    penalty[-1] = 0.0  # the bias is not penalised
    w = np.zeros((xs.shape[1], classes))
    previous = w
    for k in range(iters):
        look = w + (k / (k + 3)) * (w - previous)  # Nesterov's look-ahead point
        logits = xs @ look
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)  # (N, K) softmax
        grad = xs.T @ (p - onehot) / n + l2 * penalty * look
        previous, w = w, look - step * grad
    return LogisticProbe(mean, scale, w[:-1].copy(), w[-1].copy())


def probe_by_layer(features: Sequence[np.ndarray], labels: np.ndarray, control: np.ndarray, classes: int, *,
                   test_fraction: float = 0.3, seed: int = 0, l2: float = L2,
                   progress: Progress | None = None) -> ProbeResult:
    """Fit the task probe and the control probe at every layer on one train split; score both on its test lines.

    Both tasks use the same split (stratified by the task's labels), features and probe, so the only
    difference between the two accuracies is the labels.

    Raises:
        EngineError: no layers, or features, labels and control of different lengths.
    """
    labels, control = np.asarray(labels), np.asarray(control)
    if not features:
        raise EngineError("no layers to probe")
    if any(len(f) != len(labels) for f in features) or len(control) != len(labels):
        raise EngineError("every layer's features, the labels and the control labels need one row per text")
    train, test = split(labels, test_fraction, seed)
    if len(train) == 0 or len(test) == 0:
        raise EngineError("too few texts for a train and a test split")
    layers = []
    for layer, x in enumerate(features):
        scores = []
        for target in (labels, control):
            probe = fit_logistic(x[train], target[train], classes, l2)
            scores.append(float((probe.predict(x[test]) == target[test]).mean()))
        layers.append(LayerProbe(layer, *scores))
        if progress is not None:
            progress((layer + 1) / len(features), f"probing layer {layer}")
    chance = float(np.bincount(labels[test]).max() / len(test))
    control_chance = float(np.bincount(control[test]).max() / len(test))
    return ProbeResult(layers, len(train), len(test), chance, control_chance)
