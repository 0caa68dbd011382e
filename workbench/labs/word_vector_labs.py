"""Word-vector labs: one-hot codes against dense vectors, word2vec trained live on the plays, GloVe's analogies and
what data size does to the standard evaluations.

The computing lives in workbench_engines.embeddings; this module keeps what a
process should build once (GloVe, the tokenised plays, the last word2vec
model of each training setting, GloVe's evaluation) and draws.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Input, Static

from workbench.labs.base import Lab, Progress, RaceResult
from workbench.labs.knobs import cycled
from workbench.widgets.profile_panel import ProfilePanel
from workbench_engines.embeddings.vectors import AnalogyResult, PairsResult, WordVectors
from workbench_engines.embeddings.word2vec import Word2VecConfig, Word2VecModel
from workbench_engines.errors import EngineError
from workbench_engines.progress import sub_progress

MAX_WORDS = 6
"""Most words a lab's text box takes: six columns of a cosine matrix, or six rows of neighbours, fit 80 columns."""
NEIGHBOURS = 5
"""Neighbours shown per word."""
MODES = ("skipgram", "cbow")
MODE_NAMES = {"skipgram": "skip-gram", "cbow": "CBOW"}
RESTRICT_VOCAB = 30_000
"""Candidate answers of the analogy evaluation: the most frequent 30,000 words, the threshold word2vec.c's
demo-word-accuracy.sh passes to compute-accuracy (gensim's default, 300,000, costs ten times the time)."""
FAMILY = "family"
"""The questions-words section the plays can answer most of: king : queen :: brother : sister."""
_SPLIT = re.compile(r"[\s,;:]+")


def parse_words(text: str, most: int = MAX_WORDS) -> list[str]:
    """The words in a text box, lower-cased, each once, in order; EngineError when there are none or too many."""
    words = list(dict.fromkeys(w for w in _SPLIT.split(text.strip().lower()) if w))
    if not words:
        raise EngineError("type some words, separated by spaces")
    if len(words) > most:
        raise EngineError(f"at most {most} words fit the screen; got {len(words)}")
    return words


def check_known(vectors: WordVectors, words: list[str], where: str) -> None:
    """EngineError naming every word of ``words`` that ``vectors`` lack."""
    unknown = [w for w in words if w not in vectors]
    if unknown:
        raise EngineError(f"not in {where}'s {len(vectors):,}-word vocabulary: {', '.join(unknown)}")


def bytes_text(n: float) -> str:
    """A byte count in the largest unit that keeps it at 1 or more (decimal units: 80 MB, 640 GB)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}".replace(".0 ", " ")
        n /= 1000
    raise AssertionError("unreachable")


@cache
def glove() -> WordVectors:
    """GloVe 6B 50d, loaded once per process (EngineError with the install line where it is missing)."""
    from workbench_engines.embeddings.glove import load_glove

    return load_glove()


# ---------------------------------------------------------------- one-hot against dense


@dataclass(frozen=True)
class OneHotView:
    """What the one-hot lab draws for a list of words."""

    words: list[str]
    rows: list[int]
    """Each word's row in GloVe (its one-hot position)."""
    one_hot_cosines: np.ndarray  # (W, W)
    dense_cosines: np.ndarray  # (W, W)
    lookup: np.ndarray  # (W, D): one-hot codes times the matrix
    identical: bool
    """Whether the product equals the rows read directly, bit for bit."""
    vocab: int
    dim: int


def one_hot_view(words: list[str]) -> OneHotView:
    """Cosines of the words' one-hot codes and of their GloVe vectors, and the lookup as a matrix product."""
    vectors = glove()
    check_known(vectors, words, "GloVe")
    rows = [vectors.row(w) for w in words]
    codes = np.zeros((len(words), len(vectors)), dtype=np.float32)  # (W, V): one 1 per row
    codes[np.arange(len(words)), rows] = 1
    lookup = codes @ vectors.matrix  # (W, V) @ (V, D) -> (W, D)
    return OneHotView(words, rows, cosines(codes), cosines(lookup), lookup,
                      bool(np.array_equal(lookup, vectors.matrix[rows])), len(vectors), vectors.dim)


def cosines(matrix: np.ndarray) -> np.ndarray:
    """(W, W) cosines of the rows of a (W, N) matrix."""
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return unit @ unit.T


def cosine_table(title: str, words: list[str], values: np.ndarray, digits: int, labels: bool) -> Table:
    """A small matrix, columns numbered; with ``labels`` each row names its word ("1 king"), so that two
    matrices of six words fit side by side in 80 columns."""
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold",
                  padding=(0, 0, 0, 1))
    if labels:
        table.add_column("")
    for number in range(1, len(words) + 1):
        table.add_column(str(number), justify="right", min_width=4)
    for number, (word, row) in enumerate(zip(words, values, strict=True), 1):
        table.add_row(*([f"{number} {word[:8]}"] if labels else []), *(f"{v:.{digits}f}" for v in row))
    return table


def memory_lines(vocab: int, dim: int) -> Text:
    """Memory of one word and of the whole table, one-hot against dense, as float32."""
    return Text(
        f"One word: a one-hot code is {vocab:,} numbers ({bytes_text(4 * vocab)}; in practice just its index), "
        f"a dense vector {dim} ({bytes_text(4 * dim)}). The whole vocabulary: one-hot codes stack into the "
        f"{vocab:,} × {vocab:,} identity ({bytes_text(4.0 * vocab * vocab)}); GloVe's table is {vocab:,} × {dim} "
        f"({bytes_text(4.0 * vocab * dim)}).")


class WordsLab(Lab):
    """A lab whose text box holds a few words: Enter shows them; bad input is said in the status line."""

    words = reactive(tuple, init=False)
    """The words shown."""

    @on(Input.Submitted)
    def _typed(self, event: Input.Submitted) -> None:
        try:
            self.words = tuple(parse_words(event.value))
        except EngineError as exc:
            self.status(str(exc))


class OneHotLab(WordsLab):
    """The cosine matrix of one-hot codes (the identity) beside GloVe-50d's, and a lookup as one-hot × matrix."""

    view = reactive(None, always_update=True)
    """The OneHotView of the words last shown."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=" ".join(self.params["words"]), placeholder="a few words, e.g. king queen apple")
        yield Static("Type up to six words and press Enter.", classes="readout")

    def on_mount(self) -> None:
        self.words = tuple(self.params["words"])

    def watch_words(self, words: tuple[str, ...]) -> None:
        self.start(lambda progress: one_hot_view(list(words)), lambda view: setattr(self, "view", view),
                   "Looking up the words in GloVe")

    def watch_view(self, view: OneHotView | None) -> None:
        if view is None:
            return
        grid = Table.grid(padding=(0, 3))
        grid.add_row(cosine_table("one-hot cosines", view.words, view.one_hot_cosines, 0, True),
                     cosine_table("GloVe-50d cosines", view.words, view.dense_cosines, 2, False))
        first = view.words[0]
        shown = ", ".join(f"{v:.2f}" for v in view.lookup[0][:4])
        lookup = Text(f"Lookup: one_hot({first}) · E, a {view.vocab:,}-long row with one 1 (at {view.rows[0]:,}) "
                      f"times the {view.vocab:,} × {view.dim} matrix, gives [{shown}, …]: row {view.rows[0]:,} of E, "
                      + ("identical to reading it directly." if view.identical else "NOT the row read directly."))
        self.readout(Group(grid, Text(""), lookup, memory_lines(view.vocab, view.dim),
                           Text("GloVe 6B 50d (Pennington et al., 2014); Enter shows the words typed.", style="dim")))


# ---------------------------------------------------------------- word2vec on the plays


@dataclass(frozen=True)
class TrainSettings:
    """One word2vec run on the plays; also the key its model is kept under, which the GloVe lab looks up."""

    mode: str = "skipgram"
    dim: int = 50
    epochs: int = 5
    corpus_bytes: int = 0
    """0: all the plays."""
    threads: int = 0
    """0: this process's CPUs (Hogwild: the vectors then differ a little from run to run)."""

    def config(self) -> Word2VecConfig:
        """word2vec.c's settings, with its CBOW learning rate (0.05) in CBOW mode."""
        return Word2VecConfig(mode=self.mode, dim=self.dim, epochs=self.epochs,
                              alpha=0.05 if self.mode == "cbow" else 0.025)

    def describe(self) -> str:
        corpus = "all the plays" if not self.corpus_bytes else f"the plays' first {self.corpus_bytes:,} bytes"
        return f"{MODE_NAMES[self.mode]}, {self.dim} dims, {self.epochs} epochs on {corpus}"


def settings_from(params: dict, mode: str | None = None) -> TrainSettings:
    """The word2vec lab's parameters as TrainSettings (``mode``: another mode than the parameters')."""
    return TrainSettings(mode or params["mode"], params["dim"], params["epochs"], params["corpus_bytes"],
                         params["threads"])


def default_settings() -> TrainSettings:
    """The word2vec lab's default run: what the GloVe lab compares with GloVe."""
    from workbench.labs.registry import LABS

    return settings_from(LABS["emb.word2vec"].validate({}))


@cache
def plays_sentences(corpus_bytes: int = 0) -> list[list[str]]:
    """The plays tokenised for word2vec (the first ``corpus_bytes`` bytes; 0: all), once per process."""
    from workbench_engines.embeddings.w2v_data import corpus_sentences

    return corpus_sentences(None, corpus_bytes or None)


@cache
def plays_vocab(min_count: int = 5):
    """The plays' word2vec vocabulary (word2vec.c's min_count 5), once per process."""
    from workbench_engines.embeddings.w2v_data import build_vocab

    return build_vocab(plays_sentences(0), min_count)


_TRAINED: dict[TrainSettings, Word2VecModel] = {}
"""The last model trained for each setting in this process."""


def train_word2vec(settings: TrainSettings, progress: Progress | None = None, on_epoch=None) -> Word2VecModel:
    """Train on the plays with the C trainer where it loaded (else the NumPy reference, one thread) and keep it."""
    from workbench_engines.embeddings.word2vec import train

    model = train(plays_sentences(settings.corpus_bytes), settings.config(), threads=settings.threads or None,
                  progress=progress, on_epoch=on_epoch)
    _TRAINED[settings] = model
    return model


def trained_word2vec(settings: TrainSettings, progress: Progress | None = None) -> Word2VecModel:
    """The model the word2vec lab trained with these settings in this process, or a new one."""
    return _TRAINED.get(settings) or train_word2vec(settings, progress)


def keep_probability(word: str, sample: float = 1e-3) -> float:
    """The chance that subsampling keeps one occurrence of ``word`` in the plays (word2vec.c's formula)."""
    from workbench_engines.embeddings.w2v_data import keep_thresholds

    vocab = plays_vocab()
    if word not in vocab.index:
        raise EngineError(f"{word!r} occurs fewer than 5 times in the plays")
    return min(1.0, float(keep_thresholds(vocab.counts, sample)[vocab.index[word]]))


def noise_shares(word: str) -> tuple[float, float]:
    """(share of the unigram^0.75 noise draws, share of the corpus) of ``word`` in the plays."""
    from workbench_engines.embeddings.w2v_data import NOISE_POWER

    vocab = plays_vocab()
    if word not in vocab.index:
        raise EngineError(f"{word!r} occurs fewer than 5 times in the plays")
    count = vocab.counts[vocab.index[word]]
    smoothed = vocab.counts.astype(np.float64) ** NOISE_POWER
    return float(count ** NOISE_POWER / smoothed.sum()), float(count / vocab.total)


def neighbours_text(vectors: WordVectors, word: str, k: int = NEIGHBOURS) -> str:
    """'duke .71  prince .69 …' or why there are none."""
    if word not in vectors:
        return "(fewer than 5 times in the plays)"
    return "  ".join(f"{w} {s:.2f}".replace("0.", ".", 1) for w, s in vectors.nearest(word, k))


def sampling_table(words: list[str]) -> Table:
    """Per word: its count in the plays, how often subsampling keeps it, its share of the noise and of the text."""
    vocab = plays_vocab()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("word", "count", "kept", "noise share", "text share"):
        table.add_column(name, justify="left" if name == "word" else "right")
    for word in dict.fromkeys(["the", *words]):
        if word not in vocab.index:
            continue
        noise, text = noise_shares(word)
        table.add_row(word, f"{vocab.counts[vocab.index[word]]:,}", f"{keep_probability(word):.1%}",
                      f"{noise:.3%}", f"{text:.3%}")
    return table


@dataclass(frozen=True)
class Training:
    """A run so far: its settings and the vectors after each epoch done."""

    settings: TrainSettings
    epochs: tuple[tuple[int, WordVectors], ...] = ()
    model: Word2VecModel | None = None
    """The finished model (None while training)."""


def race_cases(mode: str, corpus_bytes: int) -> list:
    """The C trainer at one thread against the NumPy reference: one epoch on a slice of the plays, same seed.

    With one thread both draw the same random numbers in the same order, so
    the check is that they end in the same generator state with the same
    vectors up to float32 round-off.
    """
    from workbench_engines.embeddings.word2vec import train
    from workbench_engines.profiling import Case, Contender

    sentences = plays_sentences(corpus_bytes)
    config = replace(TrainSettings(mode, epochs=1).config(), min_count=2, table_size=100_000)
    words = sum(map(len, sentences))

    def check(expected: Word2VecModel, got: Word2VecModel) -> str | None:
        if expected.rng != got.rng:
            return "the random streams diverged"
        error = float(np.abs(expected.syn0 - got.syn0).max())
        scale = float(np.abs(expected.syn0).max())
        return None if error <= 1e-4 * scale else f"max |Δ syn0| {error:.2g} of {scale:.2g}"

    return [Case(
        name=f"{MODE_NAMES[mode]}, 1 epoch, {words:,} words", reference="NumPy", baselines=("NumPy",), check=check,
        contenders=[
            Contender("NumPy", lambda: train(sentences, config, backend="reference"), "reference", repeats=2,
                      warmup=0),
            Contender("C 1 thread", lambda: train(sentences, config, backend="native", threads=1), "native"),
        ],
        per_run=(words, "words"))]


class Word2VecLab(WordsLab):
    """word2vec trained live on the plays: the nearest neighbours of a few words after every epoch."""

    BINDINGS = [Binding("m", "mode", "Mode", tooltip="Switch skip-gram and CBOW, and train again"),
                Binding("t", "train", "Train", tooltip="Train again from new random vectors"),
                Binding("r", "race", "Race", tooltip="Race the C trainer against the NumPy reference")]
    mode = reactive("skipgram", init=False)
    training = reactive(None, always_update=True)
    """The Training shown: grows an epoch at a time."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=" ".join(self.params["words"]), placeholder="words whose neighbours to show")
        yield Static("", classes="readout")
        yield ProfilePanel("r races the C trainer (1 thread) against the NumPy reference on a slice of the plays.",
                           narrow=True)

    def on_mount(self) -> None:
        self.words = tuple(self.params["words"])
        self.set_reactive(Word2VecLab.mode, self.params["mode"])
        self._train()

    def action_mode(self) -> None:
        if self.busy():
            return
        self.mode = cycled(MODES, self.mode)

    def action_train(self) -> None:
        self._train()

    def watch_mode(self) -> None:
        self._train()

    def watch_words(self) -> None:
        self.watch_training(self.training)

    def _train(self) -> None:
        if self.busy():
            return
        settings = settings_from(self.params, self.mode)
        self.training = Training(settings)

        def epoch_done(epoch: int, model: Word2VecModel) -> None:
            self._ui(self._add_epoch, settings, epoch, model.vectors())

        def work(progress: Progress) -> Word2VecModel:
            plays_vocab()  # the counts the sampling table reads, built here rather than on the UI thread
            return train_word2vec(settings, progress, epoch_done)

        self.start(work, lambda model: setattr(self, "training", replace(self.training, model=model)),
                   f"Training {settings.describe()}")

    def _add_epoch(self, settings: TrainSettings, epoch: int, vectors: WordVectors) -> None:
        if self.training is not None and self.training.settings == settings:
            self.training = replace(self.training, epochs=(*self.training.epochs, (epoch, vectors)))

    def watch_training(self, training: Training | None) -> None:
        words = list(self.words)
        if training is None or not words:
            return
        parts: list = [Text(training.settings.describe(), style="bold")]
        if training.epochs:
            epoch, vectors = training.epochs[-1]
            table = Table(box=None, pad_edge=False, header_style="bold")
            table.add_column("word")
            table.add_column(f"nearest after epoch {epoch} of {training.settings.epochs} (cosine)",
                             overflow="fold")
            for word in words:
                table.add_row(word, neighbours_text(vectors, word))
            history = Table(box=None, pad_edge=False, header_style="bold")
            history.add_column("epoch", justify="right")
            history.add_column(f"{words[0]}'s nearest", overflow="fold")
            for done, snapshot in training.epochs:
                history.add_row(str(done), neighbours_text(snapshot, words[0]))
            parts += [table, Text(""), history]
        else:
            parts.append(Text("Training the first epoch…"))
        model = training.model
        if model is not None:
            parts.append(Text(f"{model.words_seen:,} words read, {model.words_trained:,} kept by subsampling, in "
                              f"{model.seconds:.1f} s: {model.words_per_second:,.0f} words/s ({model.backend}, "
                              f"{model.threads} thread{'s' * (model.threads > 1)}); {len(model.vocab):,}-word "
                              "vocabulary (5 or more times).", style="dim"))
        if training.epochs:  # the vocabulary is built by then (on the worker)
            parts += [Text(""), sampling_table(words)]
        self.readout(Group(*parts))

    def action_race(self) -> None:
        mode, corpus_bytes = self.mode, self.params["race_bytes"]
        self.race(lambda: race_cases(mode, corpus_bytes), "Racing the C trainer against NumPy", self._raced,
                  warmup=1, repeats=3)

    def _raced(self, result: RaceResult) -> None:
        self.query_one(ProfilePanel).show(
            result.rows, result.baselines,
            "matches: the same random stream and the same vectors up to float32 round-off (1e-4 of the largest)")


# ---------------------------------------------------------------- GloVe: analogies and evaluation


@dataclass(frozen=True)
class Evaluation:
    """One model's figures on the three test sets."""

    name: str
    words: str
    """How much text it was trained on, in words."""
    analogies: AnalogyResult
    wordsim: PairsResult
    simlex: PairsResult

    def section(self, name: str):
        return next(s for s in self.analogies.sections if s.name == name)


def evaluate(name: str, words: str, vectors: WordVectors, restrict_vocab: int = RESTRICT_VOCAB,
             progress: Progress | None = None) -> Evaluation:
    """questions-words (3CosAdd), WordSim-353 and SimLex-999 for one set of vectors."""
    from workbench_engines.embeddings import evaldata

    if progress is not None:
        progress(0.0, f"{name}: questions-words")
    analogies = vectors.evaluate_analogies(evaldata.analogies_path(), restrict_vocab)
    if progress is not None:
        progress(0.9, f"{name}: WordSim-353 and SimLex-999")
    return Evaluation(name, words, analogies, vectors.evaluate_pairs(evaldata.wordsim353_path(), restrict_vocab),
                      vectors.evaluate_pairs(evaldata.simlex999_path(), restrict_vocab))


@cache
def glove_evaluation(restrict_vocab: int = RESTRICT_VOCAB) -> Evaluation:
    """GloVe-50d's figures, once per process."""
    return evaluate("GloVe 6B 50d", "6B tokens", glove(), restrict_vocab)


def evaluate_both(settings: TrainSettings, restrict_vocab: int, progress: Progress) -> tuple[Evaluation, Evaluation]:
    """(the plays' word2vec, GloVe-50d): training first where this process has no model for ``settings``."""
    model = trained_word2vec(settings, sub_progress(progress, 0.0, 0.4))
    words = f"{model.words_seen // settings.epochs / 1e6:.2f}M words"
    ours = evaluate("plays word2vec", words, model.vectors(), restrict_vocab, sub_progress(progress, 0.4, 0.5))
    progress(0.5, "GloVe 6B 50d: questions-words, WordSim-353, SimLex-999")
    return ours, glove_evaluation(restrict_vocab)


def section_accuracy(vectors: WordVectors, section: str, restrict_vocab: int, method: str = "3CosAdd") -> float:
    """Accuracy on one section of questions-words alone (as in the whole set's evaluation, which counts each
    question on its own)."""
    from workbench_engines.embeddings import evaldata

    return vectors.evaluate_analogies(evaldata.analogies_path(), restrict_vocab, method=method,
                                      sections=[section]).accuracy


def evaluation_table(ours: Evaluation, theirs: Evaluation) -> Table:
    """The two models side by side: analogy accuracy with coverage, Spearman's rho with coverage."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("test set (coverage)")
    for evaluation in (ours, theirs):
        table.add_column(f"{evaluation.name}\n{evaluation.words}", justify="right")

    def cover(oov_ratio: float) -> str:
        return f"({100 - oov_ratio:.0f}%)"

    table.add_row("questions-words, 3CosAdd", *(f"{e.analogies.accuracy:.1%} {cover(e.analogies.oov_ratio)}"
                                               for e in (ours, theirs)))
    table.add_row("  family section", *(f"{e.section(FAMILY).accuracy:.1%} ({e.section(FAMILY).total})"
                                       for e in (ours, theirs)))
    table.add_row("WordSim-353, Spearman", *(f"{e.wordsim.spearman:.2f} {cover(e.wordsim.oov_ratio)}"
                                            for e in (ours, theirs)))
    table.add_row("SimLex-999, Spearman", *(f"{e.simlex.spearman:.2f} {cover(e.simlex.oov_ratio)}"
                                           for e in (ours, theirs)))
    return table


def analogy_table(a: str, b: str, c: str, k: int = NEIGHBOURS) -> Table:
    """GloVe's k best answers to a : b :: c : ? by 3CosAdd and by 3CosMul, side by side."""
    vectors = glove()
    check_known(vectors, [a, b, c], "GloVe")
    add = vectors.analogy(a, b, c, k, method="3CosAdd")
    mul = vectors.analogy(a, b, c, k, method="3CosMul")
    table = Table(title=f"{a} : {b} :: {c} : ?", title_justify="left", box=None, pad_edge=False,
                  header_style="bold")
    for name in ("3CosAdd", "score", "3CosMul", "score"):
        table.add_column(name, justify="right" if name == "score" else "left")
    for (wa, sa), (wm, sm) in zip(add, mul, strict=True):
        table.add_row(wa, f"{sa:.3f}", wm, f"{sm:.3f}")
    return table


def parse_analogy(text: str) -> tuple[str, str, str]:
    """'man king woman' (or 'man : king :: woman') as three words; EngineError otherwise."""
    words = [w for w in _SPLIT.split(text.strip().lower()) if w]
    if len(words) != 3:
        raise EngineError(f"type three words a b c, for a : b :: c : ?; got {len(words)}")
    return words[0], words[1], words[2]


class GloVeLab(Lab):
    """Analogies on GloVe-50d by 3CosAdd and 3CosMul, and the plays' word2vec against GloVe on the test sets."""

    BINDINGS = [Binding("e", "evaluate", "Evaluate", tooltip="Score the plays' word2vec and GloVe on the test sets")]
    analogy = reactive(tuple, init=False)
    answers = reactive(None, always_update=True)
    """The analogy table last computed."""
    evaluations = reactive(None, always_update=True)
    """(plays word2vec Evaluation, GloVe Evaluation) once e has run."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["analogy"], placeholder="a b c, for a : b :: c : ?")
        yield Static("", classes="readout")
        yield Static("e scores the plays' word2vec against GloVe on questions-words, WordSim-353 and SimLex-999 "
                     "(trains the vectors first unless the word2vec lab did, with the same settings).",
                     classes="evaluation")

    def on_mount(self) -> None:
        self.analogy = parse_analogy(self.params["analogy"])

    @on(Input.Submitted)
    def _typed(self, event: Input.Submitted) -> None:
        try:
            self.analogy = parse_analogy(event.value)
        except EngineError as exc:
            self.status(str(exc))

    def watch_analogy(self, analogy: tuple[str, str, str]) -> None:
        self.start(lambda progress: analogy_table(*analogy), lambda table: setattr(self, "answers", table),
                   "Solving the analogy on GloVe")

    def watch_answers(self, table: Table | None) -> None:
        if table is not None:
            self.readout(Group(table, Text("Unit vectors; a, b and c are never answers. 3CosAdd: cos(x, b − a + c); "
                                           "3CosMul: cos'(x,b) cos'(x,c) / (cos'(x,a) + 0.001), cos' = (cos + 1)/2.",
                                           style="dim")))

    def action_evaluate(self) -> None:
        settings, restrict = default_settings(), self.params["restrict_vocab"]
        self.start(lambda progress: evaluate_both(settings, restrict, progress),
                   lambda both: setattr(self, "evaluations", both), "Evaluating")

    def watch_evaluations(self, both: tuple[Evaluation, Evaluation] | None) -> None:
        if both is None:
            return
        ours, theirs = both
        settings = default_settings()
        note = Text(f"Plays: {settings.describe()}. Analogies among the {self.params['restrict_vocab']:,} most "
                    "frequent words; coverage: questions or pairs with every word in the vocabulary; family: "
                    "accuracy on its questions asked.", style="dim")
        self.query_one(".evaluation", Static).update(Group(evaluation_table(ours, theirs), note))
        self.status(f"questions-words: plays {ours.analogies.accuracy:.1%}, GloVe {theirs.analogies.accuracy:.1%}.")
