"""A sentiment classifier on all-MiniLM-L6-v2, fine-tuned three ways: the head alone, LoRA, or every weight.

The data are Hutto & Gilbert's (2014) movie-review snippets, each rated by 20
people (``sentiment_data``); a sentence is positive when its mean valence is
above zero. The model pools the encoder's last hidden states (the mean of the
real tokens, as sentence-transformers does for this model) and puts a linear
head on the pooled vector:

    p(positive | x) = softmax(W · mean_t h_t(x) + b)       (binary task, cross-entropy)
    v̂(x) = w · mean_t h_t(x) + b                          (regression on valence / 4, squared error)

What each regime trains, with AdamW (Loshchilov & Hutter, 2019) on a fixed
seed:

- ``head``: the head alone (770 numbers); the encoder is frozen, so every
  sentence's pooled vector is computed once, cached, and each step is a
  matrix product on 384-wide vectors;
- ``lora``: rank-r adapters on every layer's query and value projections
  (Hu et al., 2021, section 4.2, ``finetune.lora``) and the head;
- ``full``: all 22.6 million encoder weights and the head (Devlin et al., 2019, section 4).

The figures reported are held-out accuracy and macro-F1 (the mean over the two
classes of F1 = 2TP / (2TP + FP + FN)), beside the lexicon judge's on the same
sentences (``judge.compound`` > 0: the baseline that learned nothing from the
data), the trainable parameters, AdamW's state bytes, and the seconds.

Example::

    >>> data = split(train=2_000, held_out=1_000, seed=0)
    >>> result = finetune(data, Settings(regime="lora", rank=8, steps=100), threads=1)
    >>> round(result.metrics.accuracy, 3), result.trainable     # bench finetune's LoRA r=8 row
    (0.777, 74498)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.finetune.sentiment_data import Sentence, load_sentences

REGIMES = ("head", "lora", "full")
TASKS = ("binary", "regression")
LORA_TARGETS = ("attention.query", "attention.value")
"""W_q and W_v of every layer, the pair Hu et al. (2021, Table 5) found best for a fixed parameter budget."""
LEARNING_RATES = {"head": 3e-2, "lora": 3e-3, "full": 5e-5}
"""The encoder-side AdamW rate per regime (the head's own in ``head``). Full fine-tuning takes BERT's usual 5e-5
(Devlin et al., 2019, appendix A.3); LoRA's thin matrices, B starting at zero, take 3e-3; a head on frozen features
3e-2. Chosen on 1,000 training snippets (seed 0, 60 steps of 16), where they beat 1e-4, 1e-3 and 1e-2 in turn."""
HEAD_LEARNING_RATE = 1e-3
"""The head's rate when it trains beside the encoder (lora, full)."""
WEIGHT_DECAY = 0.01
PREPARE_SHARE = 0.9
"""The share of the progress bar the head regime's encoding of both sets takes (its steps cost next to nothing)."""
EMBED_BATCH = 64
"""Sentences per forward pass when only predicting (no gradients): sorted by length, so little padding."""

Progress = Callable[[float, str], None]
"""progress(fraction_done, what)."""
OnStep = Callable[[int, float, "Metrics | None"], None]
"""on_step(step, loss, held-out metrics when this step was scored, else None)."""


@dataclass(frozen=True)
class Subset:
    """A training set and a held-out set drawn without overlap from one corpus."""

    train: tuple[Sentence, ...]
    held_out: tuple[Sentence, ...]
    source: str
    seed: int

    def describe(self) -> str:
        positive = sum(s.positive for s in self.train)
        return (f"{len(self.train):,} training and {len(self.held_out):,} held-out {self.source} sentences "
                f"(seed {self.seed}; {100 * positive / max(len(self.train), 1):.1f}% of training positive)")


def split(train: int = 2_000, held_out: int = 1_000, *, seed: int = 0, source: str = "movie") -> Subset:
    """Shuffle a corpus with ``seed`` and take ``train`` sentences, then the next ``held_out``.

    Args:
        train: Training sentences (>= 1).
        held_out: Held-out sentences (>= 1).
        seed: Seeds the shuffle.
        source: A ``sentiment_data`` corpus ("movie", "amazon", "nyt", "tweets").

    Raises:
        EngineError: a size below 1, more than the corpus holds, or the data not installed.
    """
    sentences = load_sentences(source)
    if train < 1 or held_out < 1:
        raise EngineError(f"the training and held-out sets need at least one sentence each, got {train} and {held_out}")
    if train + held_out > len(sentences):
        raise EngineError(f"{train:,} + {held_out:,} sentences asked for; the {source} corpus has {len(sentences):,}")
    order = np.random.default_rng(seed).permutation(len(sentences))
    return Subset(tuple(sentences[i] for i in order[:train]),
                  tuple(sentences[i] for i in order[train:train + held_out]), source, seed)


@dataclass(frozen=True)
class Settings:
    """One fine-tuning run."""

    regime: str = "head"
    """One of REGIMES."""
    rank: int = 8
    """LoRA's r (lora only)."""
    alpha: float = 16.0
    """LoRA's α, fixed across ranks so that α/r does the rescaling (Hu et al., 2021, section 4.1)."""
    steps: int = 60
    batch_size: int = 16
    learning_rate: float | None = None
    """None: LEARNING_RATES[regime]."""
    task: str = "binary"
    """"binary" (valence > 0, cross-entropy) or "regression" (valence / 4, squared error). LEARNING_RATES were
    chosen for the binary task; the head alone on a regression target overshoots at 3e-2 and wants about 1e-3."""
    max_tokens: int = 64
    """A sentence's tokens kept, [CLS] and [SEP] included (``minilm_torch.MAX_TOKENS``): 6 movie snippets of 10,605
    are longer."""
    seed: int = 0
    """Seeds the head, the LoRA matrices and the order of the batches."""
    evaluate_every: int = 0
    """Also score the held-out set every so many steps (0: at the end only); each costs a forward pass over it."""

    def check(self) -> None:
        """Raise EngineError for a setting that cannot run."""
        if self.regime not in REGIMES:
            raise EngineError(f"unknown regime {self.regime!r}; choose one of {', '.join(REGIMES)}")
        if self.task not in TASKS:
            raise EngineError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.steps < 1 or self.batch_size < 1:
            raise EngineError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        if self.evaluate_every < 0:
            raise EngineError(f"evaluate_every must be >= 0, got {self.evaluate_every}")
        rate = self.rate
        if not math.isfinite(rate) or rate <= 0:
            raise EngineError(f"the learning rate must be a positive number, got {rate}")

    @property
    def rate(self) -> float:
        return LEARNING_RATES[self.regime] if self.learning_rate is None else self.learning_rate

    def label(self) -> str:
        """"head only", "LoRA r=8", "full"."""
        return {"head": "head only", "lora": f"LoRA r={self.rank}", "full": "full"}[self.regime]


@dataclass(frozen=True)
class Metrics:
    """Scores of predicted labels against the raters' labels."""

    accuracy: float
    macro_f1: float
    n: int


def accuracy(predicted: Sequence[bool] | np.ndarray, truth: Sequence[bool] | np.ndarray) -> float:
    """The share of predictions equal to the truth.

    Raises:
        EngineError: empty, or different lengths.
    """
    p, t = _labels(predicted, truth)
    return float((p == t).mean())


def macro_f1(predicted: Sequence[bool] | np.ndarray, truth: Sequence[bool] | np.ndarray) -> float:
    """The unweighted mean over the two classes of F1 = 2TP / (2TP + FP + FN); a class never predicted nor true
    scores 0 (scikit-learn's ``f1_score(average="macro", labels=[0, 1], zero_division=0)``).

    Unlike accuracy, it does not reward always answering the majority class:
    that scores F1 = 0 on the other class, so at most 0.5 overall.

    Raises:
        EngineError: empty, or different lengths.
    """
    p, t = _labels(predicted, truth)
    scores = []
    for positive in (False, True):
        tp = int(np.sum((p == positive) & (t == positive)))
        wrong = int(np.sum(p != t))  # FP + FN of either class: every miss is one of each
        scores.append(2 * tp / (2 * tp + wrong) if tp + wrong else 0.0)
    return float(np.mean(scores))


def score(predicted: Sequence[bool] | np.ndarray, truth: Sequence[bool] | np.ndarray) -> Metrics:
    """Accuracy and macro-F1 together."""
    return Metrics(accuracy(predicted, truth), macro_f1(predicted, truth), len(truth))


def _labels(predicted: Sequence[bool] | np.ndarray,
            truth: Sequence[bool] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true labels as two 1-D bool arrays of one length, checked before scoring.

    Raises:
        EngineError: not 1-D, lengths differ, or nothing to score.
    """
    p, t = np.asarray(predicted, dtype=bool), np.asarray(truth, dtype=bool)
    if p.ndim != 1 or p.shape != t.shape:
        raise EngineError(f"predictions and labels must be two 1-D sequences of one length, got {p.shape} "
                          f"and {t.shape}")
    if not p.size:
        raise EngineError("no predictions to score")
    return p, t


def lexicon_baseline(sentences: Sequence[Sentence]) -> Metrics:
    """The lexicon judge's scores: positive when ``judge.compound(text) > 0`` (a sentence with no rated word,
    compound 0, counts negative)."""
    from workbench_engines.finetune.judge import compound

    return score([compound(s.text) > 0 for s in sentences], [s.positive for s in sentences])


def majority_baseline(train: Sequence[Sentence], held_out: Sequence[Sentence]) -> Metrics:
    """Always answering the training set's more common label, scored on the held-out set."""
    label = 2 * sum(s.positive for s in train) > len(train)
    return score([label] * len(held_out), [s.positive for s in held_out])


@dataclass
class Result:
    """What one run measured."""

    settings: Settings
    metrics: Metrics
    """On the held-out set, after the last step."""
    losses: list[float]
    """The training loss of every step."""
    step_seconds: list[float]
    """Wall time of every step (forward, backward, AdamW)."""
    curve: list[tuple[int, Metrics]]
    """(step, held-out metrics) at every evaluation, the last at ``settings.steps``."""
    trainable: int
    optimizer_state_bytes: int
    """The live AdamW's state after the last step: two fp32 moments per trainable weight and a 4-byte step counter
    per tensor (``optim.adamw.optimizer_state_bytes``)."""
    prepare_seconds: float
    """Loading the encoder, and for ``head`` computing the cached pooled vectors of both sets."""
    evaluate_seconds: float
    """Every held-out evaluation together."""
    seconds: float
    """The whole run."""
    predictions: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=bool))
    """The last evaluation's labels, one per held-out sentence."""

    @property
    def seconds_per_step(self) -> float:
        """The median step."""
        return float(np.median(self.step_seconds))


def finetune(data: Subset, settings: Settings, *, progress: Progress | None = None,
             should_stop: Callable[[], bool] | None = None, on_step: OnStep | None = None,
             threads: int | None = None) -> Result:
    """Train the classifier on ``data.train`` and score it on ``data.held_out``.

    Args:
        data: The sentences (``split``).
        settings: Regime, rank, steps, batch size, rates, task, seed.
        progress: Called with (fraction done, what) after each step and evaluation.
        should_stop: Polled between steps; True stops the run with Cancelled.
        on_step: Called after every step with (step, loss, held-out Metrics or None when it was not scored).
        threads: torch's intra-op threads for the run (restored after); None leaves torch's setting.

    Returns:
        The Result.

    Raises:
        EngineError: an empty set, a bad setting (regime, task, rank, rate), or a loss that stops being finite
            (the step is named; nothing is kept). Cancelled: should_stop() said so.
    """
    import torch

    trainer = Trainer(data, settings, progress, should_stop)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return trainer.run(on_step)
    finally:
        torch.set_num_threads(previous)


class Trainer:
    """One run, step by step: ``prepare`` builds the model, ``step`` trains one batch, ``evaluate`` scores the
    held-out set, ``run`` does the settings' budget of steps and returns the Result.

    ``finetune`` is ``Trainer(...).run()``; ``bench finetune`` runs the budget, then times further single steps.

    Args:
        data: The sentences.
        settings: The run's settings (checked).
        progress: Called with (fraction done, what).
        should_stop: Polled between steps and batches; True stops with Cancelled.

    Raises:
        EngineError: an empty set or a bad setting.
    """

    def __init__(self, data: Subset, settings: Settings, progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None) -> None:
        settings.check()
        if not data.train or not data.held_out:
            raise EngineError(f"fine-tuning needs training and held-out sentences, got {len(data.train)} and "
                              f"{len(data.held_out)}")
        self.data, self.settings = data, settings
        self.report = progress or (lambda fraction, what: None)
        self.should_stop = should_stop or (lambda: False)
        self.model = None
        self.features = None
        """For ``head``: {"train": (N, C), "held-out": (M, C)} pooled vectors of the frozen encoder."""
        self.steps_done = 0
        self.first = 0.0
        """The share of the progress bar that preparing took."""

    def prepare(self) -> float:
        """Build the model and the optimizer (and for ``head`` cache the pooled vectors); returns the seconds."""
        import torch

        s = self.settings
        start = time.perf_counter()
        self.model = build(s)
        self.report(0.0, f"{s.label()}: preparing")
        if s.regime == "head":
            # The frozen encoder gives every sentence the same vector at every step: compute each once.
            sizes = len(self.data.train), len(self.data.held_out)
            middle = PREPARE_SHARE * sizes[0] / sum(sizes)
            self.features = {"train": self._pooled(self.data.train, "train", (0.0, middle)),
                             "held-out": self._pooled(self.data.held_out, "held-out", (middle, PREPARE_SHARE))}
            self.first = PREPARE_SHARE
        head = list(self.model.head.parameters())
        encoder = [p for p in self.model.encoder.parameters() if p.requires_grad]
        groups = [{"params": head, "lr": s.rate if s.regime == "head" else HEAD_LEARNING_RATE}]
        if encoder:
            groups.append({"params": encoder, "lr": s.rate})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=WEIGHT_DECAY)
        self.targets = torch.tensor([self._target(x) for x in self.data.train])
        self.batches = _batches(len(self.data.train), s.batch_size, s.seed)
        return time.perf_counter() - start

    def step(self) -> float:
        """One AdamW step on the next batch; returns its loss.

        Raises:
            EngineError: the loss is not finite (the weights are then not updated).
        """
        import torch

        if self.model is None:
            self.prepare()
        s = self.settings
        self.model.train()
        rows = next(self.batches)
        output = self._forward(rows, "train", self.data.train)
        loss = _loss(output, self.targets[rows], s.task)
        if not torch.isfinite(loss):
            raise EngineError(f"{s.label()}: the training loss became {loss.item()} at step {self.steps_done + 1} "
                              f"(learning rate {s.rate:g}); stopped, nothing was kept")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.steps_done += 1
        return loss.item()

    def evaluate(self) -> tuple[Metrics, np.ndarray]:
        """The held-out metrics of the model as it is now, and its labels."""
        predictions = self.predict()
        return score(predictions, [x.positive for x in self.data.held_out]), predictions

    def run(self, on_step: OnStep | None = None) -> Result:
        """Prepare, train ``settings.steps`` steps (scoring every ``evaluate_every``), score; the Result.

        Args:
            on_step: Called after every step with (step, loss, held-out Metrics or None when not scored).
        """
        from workbench_engines.finetune.lora import trainable_parameters
        from workbench_engines.optim.adamw import optimizer_state_bytes

        s = self.settings
        start = time.perf_counter()
        prepare = self.prepare()
        losses, step_seconds, curve = [], [], []
        evaluate_seconds = 0.0
        for step in range(1, s.steps + 1):
            if self.should_stop():
                raise Cancelled(f"stopped at step {step} of {s.steps}")
            t0 = time.perf_counter()
            losses.append(self.step())
            step_seconds.append(time.perf_counter() - t0)
            self.report(self.first + (1 - self.first) * step / s.steps,
                        f"{s.label()}: step {step}/{s.steps}, loss {losses[-1]:.3f}")
            if step == s.steps or (s.evaluate_every and step % s.evaluate_every == 0):
                t0 = time.perf_counter()
                metrics, predictions = self.evaluate()
                curve.append((step, metrics))
                evaluate_seconds += time.perf_counter() - t0
            if on_step is not None:
                on_step(step, losses[-1], curve[-1][1] if curve and curve[-1][0] == step else None)
        return Result(s, curve[-1][1], losses, step_seconds, curve, trainable_parameters(self.model),
                      optimizer_state_bytes(self.optimizer), prepare, evaluate_seconds, time.perf_counter() - start,
                      predictions)

    def _target(self, sentence: Sentence) -> float:
        return float(sentence.positive) if self.settings.task == "binary" else sentence.valence / 4

    def _forward(self, rows: np.ndarray, name: str, sentences: Sequence[Sentence]):
        """The head's output for the given rows of one set: (B, 2) logits or (B,) valences."""
        from workbench_engines.models.minilm_torch import encode

        if self.features is not None:
            return self.model.head_output(self.features[name][rows])
        ids, mask = encode(self.model.encoder.tokenizer, [sentences[i].text for i in rows], self.settings.max_tokens)
        return self.model(ids, mask)

    def _pooled(self, sentences: Sequence[Sentence], name: str, span: tuple[float, float]):
        """The frozen encoder's pooled vectors (N, C), in length-sorted batches; progress runs across ``span``."""
        import torch

        from workbench_engines.models.minilm_torch import encode

        model = self.model.encoder
        out = torch.empty(len(sentences), model.config.hidden)
        batches = _by_length(model.tokenizer, sentences, self.settings.max_tokens)
        with torch.no_grad():
            for k, rows in enumerate(batches, 1):
                if self.should_stop():
                    raise Cancelled("stopped while encoding the sentences")
                ids, mask = encode(model.tokenizer, [sentences[i].text for i in rows], self.settings.max_tokens)
                out[rows] = model.pool(model(ids, mask), mask)
                self.report(span[0] + (span[1] - span[0]) * k / len(batches),
                            f"{self.settings.label()}: encoding the {name} set, "
                            f"{min(k * EMBED_BATCH, len(sentences)):,}/{len(sentences):,}")
        return out

    def predict(self) -> np.ndarray:
        """Held-out labels from the current model: positive when p > 1/2 (binary) or v̂ > 0 (regression)."""
        import torch

        from workbench_engines.models.minilm_torch import encode

        held_out = self.data.held_out
        self.model.eval()
        outputs = []
        with torch.no_grad():
            if self.features is not None:
                outputs.append(self.model.head_output(self.features["held-out"]))
                order = np.arange(len(held_out))
            else:
                batches = _by_length(self.model.encoder.tokenizer, held_out, self.settings.max_tokens)
                for rows in batches:
                    if self.should_stop():
                        raise Cancelled("stopped while scoring the held-out set")
                    ids, mask = encode(self.model.encoder.tokenizer, [held_out[i].text for i in rows],
                                       self.settings.max_tokens)
                    outputs.append(self.model(ids, mask))
                order = np.concatenate(batches)
        output = torch.cat(outputs)
        positive = (output[:, 1] > output[:, 0]) if self.settings.task == "binary" else output > 0
        labels = np.empty(len(held_out), dtype=bool)
        labels[order] = positive.numpy()
        return labels


def build(settings: Settings):
    """A fresh ``minilm_torch.SentenceClassifier``: MiniLM with a seeded head, LoRA applied or the encoder frozen.

    Raises:
        EngineError: the minilm extra is missing, or a LoRA rank the layers cannot take.
    """
    import torch

    from workbench_engines.finetune.lora import apply_lora
    from workbench_engines.models.minilm_torch import SentenceClassifier, load

    settings.check()
    encoder = load()
    torch.manual_seed(settings.seed)
    model = SentenceClassifier(encoder, 2 if settings.task == "binary" else 1)
    if settings.regime == "lora":
        apply_lora(encoder, LORA_TARGETS, settings.rank, settings.alpha, seed=settings.seed)
    elif settings.regime == "head":
        encoder.requires_grad_(False)
    return model


def _loss(output, target, task: str):
    """Cross-entropy of the (B, 2) logits against 0/1 labels, or the mean squared error against valence / 4."""
    import torch.nn.functional as F

    if task == "binary":
        return F.cross_entropy(output, target.long())
    return F.mse_loss(output, target.to(output.dtype))


def _batches(n: int, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """Batches of row indices without end: the rows shuffled afresh every epoch, an epoch's last batch shorter."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        yield from (order[i:i + batch_size] for i in range(0, n, batch_size))


def _by_length(tokenizer, sentences: Sequence[Sentence], max_tokens: int) -> list[np.ndarray]:
    """Row indices in batches of EMBED_BATCH sentences of similar length, so padding costs little."""
    lengths = [min(len(tokenizer.encode(s.text)) + 2, max_tokens) for s in sentences]
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + EMBED_BATCH] for i in range(0, len(order), EMBED_BATCH)]
