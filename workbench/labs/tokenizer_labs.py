"""Labs of the Tokenization track: bytes, vocabulary size, BPE training, pre-tokenisation,
WordPiece, Unigram, and every tokenizer side by side.

Anything slower than a keystroke (loading vocabularies, training) runs in a
worker through :meth:`Lab.start`, with progress and ``x`` to cancel.
"""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

from workbench_engines import corpus
from workbench_engines.backends import resolve
from workbench_engines.errors import EngineError
from workbench_engines.tokenizers import pretokenize
from workbench_engines.tokenizers.bpe_reference import bpe_merge_steps
from workbench_engines.tokenizers.explain import FORMS, characters, utf8
from workbench_engines.tokenizers.peers import Token, TokenizerView, build, label_bytes
from workbench_engines.tokenizers.user_files import UserTokenizer
from workbench.labs.base import Lab, Progress, backend_caption
from workbench.labs.knobs import cycled, paired_keys
from workbench.typed import unescape
from workbench.widgets.plots import Figure, Series
from workbench.widgets.token_strip import id_line, token_strip, visible


def _corpus_source(params: dict[str, Any]) -> str:
    """Training text: the named file or folder, or the default corpus, cut to corpus_bytes."""
    limit = params.get("corpus_bytes") or None
    return corpus.read_text(params.get("corpus") or None, limit=limit)


class TokenLab(Lab):
    """A lab that draws tokens as coloured pieces, where ctrl+o puts a │ between them: for when colours alone
    don't show where a token ends (a terminal's palette, colour blindness). Each redraws in :meth:`redraw_pieces`.
    """

    BINDINGS = [Binding("ctrl+o", "toggle_separators", "Separators")]
    separators = reactive(False, init=False)
    """Whether the learner asked for │ between pieces (NO_COLOR always draws them)."""

    def action_toggle_separators(self) -> None:
        self.separators = not self.separators

    def watch_separators(self) -> None:
        self.redraw_pieces()

    def redraw_pieces(self) -> None:
        """Draw the lab's pieces again with the current separator setting."""

    def strip(self, tokens: list[Token]) -> Text:
        """Tokens as coloured pieces, with │ between them when asked for or without colour (NO_COLOR)."""
        return token_strip(tokens, separate=self.separators or self.app.no_color)


class TextLab(TokenLab):
    """A lab whose input is a line of text the learner edits; its watcher draws on every change.

    The box is one line, so a line break is typed as \\n (and a tab as \\t).
    """

    text = reactive(Initialize(lambda lab: unescape(lab.params["text"])), always_update=True)
    """The text as typed, with \\n and \\t turned into the characters."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["text"], placeholder="type any text; \\n is a line break, \\t a tab",
                    classes="lab-text")
        yield Static("", classes="readout")

    @on(Input.Changed, ".lab-text")
    def _text_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.text = unescape(event.value)

    def watch_text(self, text: str) -> None:
        self.draw(text)

    def draw(self, text: str) -> None:
        """Show what the lab makes of text."""

    def redraw_pieces(self) -> None:
        self.draw(self.text)


def glyph_of(c) -> str:
    """How the char column draws one code point, in cells every terminal agrees on.

    Marks sit on a dotted circle; spaces and controls are a dot. A regional
    indicator alone is drawn as its letter in brackets and an emoji modifier
    alone as a dot: terminals give them widths other than Rich's, which pushed
    the table's right edge out of line.
    """
    if 0x1F1E6 <= c.code_point <= 0x1F1FF:
        return f"[{chr(ord('A') + c.code_point - 0x1F1E6)}]"
    if c.category[0] == "M":
        return "◌" + c.char
    if c.category[0] in "CZ" or 0x1F3FB <= c.code_point <= 0x1F3FF:
        return "·"
    return c.char


class BytesLab(TextLab):
    """Each character of the text: code point, category and UTF-8 bytes, under a normalisation form."""

    BINDINGS = [Binding("ctrl+n", "next_form", "Next form")]
    form = reactive(Initialize(lambda lab: lab.params["form"]))

    def action_next_form(self) -> None:
        self.form = cycled(FORMS, self.form)

    def watch_form(self) -> None:
        self.draw(self.text)

    def draw(self, text: str) -> None:
        shown = characters(text, self.form)
        table = Table(box=None, header_style="bold", title=f"{shown.form}: {len(shown.characters)} code points, "
                      f"{shown.utf8_bytes} UTF-8 bytes", title_justify="left")
        for name in ("char", "code point", "category", "name", "UTF-8 bytes"):
            table.add_column(name)
        # The name wraps in its column rather than being cut ("LATIN SMALL LETTER I WITH DI").
        table.columns[3].overflow = "fold"
        for c in shown.characters[:32]:
            table.add_row(glyph_of(c), f"U+{c.code_point:04X}", c.category, c.name, " ".join(f"{b:02x}" for b in c.utf8))
        if len(shown.characters) > 32:
            table.add_row("…", "", "", f"{len(shown.characters) - 32} more", "")
        counts = " · ".join(f"{form} {characters(text, form).utf8_bytes} B" for form in FORMS)
        table.caption = f"bytes under each form: {counts}  (ctrl+n switches the form shown)"
        self.readout(table)


class OwnTokenizerLab(TextLab):
    """A text lab that also shows the learner's own tokenizer files (a tokenizer.json or a .tiktoken rank file).

    ctrl+l opens a path box; Enter loads the file in a worker through
    :func:`~workbench_engines.tokenizers.user_files.load_user_tokenizer`, and
    a file it refuses is reported as path:line in the status line. The
    lab's ``files`` parameter names files to load at the start.
    """

    PATH_BOX = "user-file"
    BINDINGS = [Binding("ctrl+l", "ask_path", "File", tooltip="Read your own tokenizer.json or .tiktoken file")]
    user_files: reactive[list[UserTokenizer]] = reactive(list, always_update=True)
    """The learner's files read so far, in the order given."""

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self._queue: list[str] = []
        """Files asked for and not read yet: one worker runs at a time."""

    def compose_lab(self) -> ComposeResult:
        box = Input(placeholder="a tokenizer.json or .tiktoken path (then ' gpt2' for a GPT-2-pattern rank file); "
                    "Enter loads, Esc closes", id=self.PATH_BOX)
        box.display = False
        for widget in super().compose_lab():
            yield widget
            if box is not None and isinstance(widget, Input):  # just under the text box: in sight when opened
                yield box
                box = None

    def action_ask_path(self) -> None:
        box = self.query_one(f"#{self.PATH_BOX}", Input)
        box.display = True
        box.focus()

    def on_key(self, event) -> None:
        box = self.query_one(f"#{self.PATH_BOX}", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.display = False
            self.query_one(".lab-text", Input).focus()

    @on(Input.Submitted, f"#{PATH_BOX}")
    def _path_given(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.read_files([event.value.strip()])

    def read_files(self, given: list[str]) -> None:
        """Queue files ("path", or "path pattern" for a rank file) to read one at a time in a worker."""
        self._queue += given
        if not self.running:
            self._next_file()

    def _next_file(self) -> None:
        from workbench_engines.tokenizers.user_files import RANK_FILE_PATTERNS, load_user_tokenizer

        if not self._queue:
            return
        given = self._queue.pop(0)
        path, _, last = given.rpartition(" ")
        path, pattern = (path, last) if path and last in RANK_FILE_PATTERNS else (given, "cl100k")
        backend = resolve().name

        def work(progress: Progress) -> UserTokenizer | str:
            try:
                return load_user_tokenizer(path, pattern, backend)
            except EngineError as exc:  # the learner's file, not the lab, is at fault: say where, keep going
                return str(exc)

        self.start(work, self._file_read, f"Reading {path}")

    def _file_read(self, user: UserTokenizer | str) -> None:
        if isinstance(user, str):
            self.status(f"Could not read it: {user}")
        else:
            self.user_files = [u for u in self.user_files if u.path != user.path] + [user]
            box = self.query_one(f"#{self.PATH_BOX}", Input)
            box.display = False
            box.value = ""
            self.query_one(".lab-text", Input).focus()
            self.status(f"Read {user.path} ({user.kind})." + (f" {user.note}" if user.note else ""))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Lab's own handler runs too (Textual calls each class's); once a run has ended, the next file starts.
        if event.worker is self._worker and event.state not in (WorkerState.PENDING, WorkerState.RUNNING):
            self.call_after_refresh(self._next_file)

    def watch_user_files(self) -> None:
        self.draw(self.text)


class PretokenizeLab(OwnTokenizerLab):
    """The text split by the GPT-2 and cl100k patterns (and by the learner's own tokenizers' pre-tokenisers),
    and cl100k's merges inside the longest piece."""

    def on_mount(self) -> None:
        self.read_files(list(self.params["files"]))

    def draw(self, text: str) -> None:
        choice = resolve()
        out = Text()
        pieces: list[str] = []
        for user in self.user_files:
            try:
                theirs = user.split(text)
            except Exception as exc:  # noqa: BLE001 - a learner's pre-tokenizer failing must not hide the rest
                out.append(f"{user.path.name}: failed: {exc}\n\n", style="bold")
                continue
            out.append(f"{user.path.name}, split by {user.split_by}: {len(theirs)} pieces\n", style="bold")
            out.append(self.strip([Token(k, p) for k, p in enumerate(theirs)]))
            out.append("\n\n")
        for name in ("gpt2", "cl100k"):
            pieces = pretokenize.split(text, name, backend=choice.name)
            out.append(f"{name}: {len(pieces)} pieces\n", style="bold")
            out.append(self.strip([Token(k, p) for k, p in enumerate(pieces)]))
            out.append("\n\n")
        if pieces:
            longest = max(pieces, key=lambda p: len(utf8(p)))
            steps = bpe_merge_steps(utf8(longest), _cl100k(choice.name).ranks)
            out.append(f"cl100k merges inside {visible(longest)!r} ({len(steps) - 1} merges):\n", style="bold")
            for k, parts in enumerate(steps[-8:], start=max(0, len(steps) - 8)):
                out.append(f"{k:>3} ", style="dim")
                out.append(self.strip([Token(i, label_bytes(p)) for i, p in enumerate(parts)]))
                out.append("\n")
        out.append(backend_caption([choice]), style="dim")
        self.readout(out)


def _cl100k(backend: str):
    from workbench_engines.tokenizers.formats import load_cl100k

    return load_cl100k(backend)


class WordPieceLab(TextLab):
    """BERT's pipeline step by step: normalised text, words, then ## pieces, beside HF tokenizers."""

    def draw(self, text: str) -> None:
        from workbench_engines.tokenizers.wordpiece import load_minilm, normalize, pre_tokenize

        try:
            model = load_minilm()
        except EngineError as exc:  # the optional extra is missing
            self.readout(Text(f"WordPiece needs all-MiniLM-L6-v2: {exc}"))
            return
        normal = normalize(text)
        words = pre_tokenize(normal)
        pieces = model.tokenize(text)
        out = Text()
        out.append("normalised: ", style="bold")
        out.append(visible(normal) + "\n")
        out.append(f"words ({len(words)}): ", style="bold")
        out.append(self.strip([Token(k, w) for k, w in enumerate(words)]))
        out.append(f"\npieces ({len(pieces)}): ", style="bold")
        tokens = [Token(model.vocab[p], p, p == model.unk_token) for p in pieces]
        out.append(self.strip(tokens))
        out.append(f"\nids: {id_line(tokens)}\n")
        from workbench_engines.tokenizers.peers import hf_minilm

        theirs = hf_minilm().encode(text, add_special_tokens=False).tokens
        out.append("HF tokenizers: " + ("same pieces" if theirs == pieces else f"DIFFERENT: {theirs}"), style="dim")
        self.readout(out)


class CompareLab(OwnTokenizerLab):
    """Every tokenizer on the same text, the learner's own files first: coloured pieces, counts and ids."""

    BINDINGS = [Binding("ctrl+n", "next_sample", "Sample", tooltip="Next sample text")]
    views: reactive[list[TokenizerView]] = reactive(list, always_update=True)
    """The tokenizers loaded so far (they load in a worker)."""

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.sample = -1

    def on_mount(self) -> None:
        names = list(self.params["tokenizers"])
        self.start(lambda progress: self._load(names, progress), self._loaded, "Loading tokenizers")

    @staticmethod
    def _load(names: list[str], progress: Progress) -> tuple[list[TokenizerView], list[str]]:
        views, problems = [], []
        for k, name in enumerate(names):
            progress(k / len(names), f"loading {name}")
            built, failed = build([name])
            views += built
            problems += failed
        return views, problems

    def _loaded(self, result: tuple[list[TokenizerView], list[str]]) -> None:
        self.views, problems = result
        self.status("Type to retokenize; ctrl+n cycles the samples, ctrl+l reads your own tokenizer file."
                    + (" Missing: " + "; ".join(problems) if problems else ""))
        self.read_files(list(self.params["files"]))

    def watch_views(self) -> None:
        self.draw(self.text)

    def action_next_sample(self) -> None:
        samples = self.params["samples"]
        if samples:
            self.sample = (self.sample + 1) % len(samples)
            self.query_one(".lab-text", Input).value = samples[self.sample]

    def draw(self, text: str) -> None:
        if not self.views:
            self.readout("Loading tokenizers…")
            return
        out = Text()
        n_bytes = len(utf8(text))
        out.append(f"{len(text)} characters, {n_bytes} UTF-8 bytes\n\n", style="dim")
        for user in self.user_files:
            try:
                agreement = user.agreement(text)
            except Exception as exc:  # noqa: BLE001 - a learner's file failing must not hide the others
                agreement = f"failed: {exc}"
            out.append(f"your {user.path.name}: " + (agreement or user.note), style="bold")
            out.append("\n")
        if self.user_files:
            out.append("\n")
        for view in [view for user in self.user_files for view in user.views] + self.views:
            try:
                tokens = view.tokens(text)
            except Exception as exc:  # noqa: BLE001 - one peer failing must not hide the others
                out.append(f"{view.name}: failed: {exc}\n\n", style="bold")
                continue
            per = f"{n_bytes / len(tokens):.2f} bytes/token" if tokens else "no tokens"
            out.append(f"{view.name}", style="bold")
            out.append(f" · {view.family} · vocab {view.vocab_size:,} · {len(tokens)} tokens · {per}\n", style="dim")
            out.append(self.strip(tokens))
            out.append(f"\n{id_line(tokens)}\n\n", style="dim")
        self.readout(out)


class VocabSweepLab(Lab):
    """Trains BPE once, then measures every smaller vocabulary: sequence length falls, tables grow."""

    DEFAULT_CSS = """
    VocabSweepLab Figure PlotextPlot { height: 12; }
    """
    BINDINGS = [Binding("t", "sweep", "Train and measure")]
    sweep = reactive(None, always_update=True)
    """The last VocabSweep measured."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static("Press t to train and measure.", classes="readout")

    def on_mount(self) -> None:
        self.action_sweep()

    def action_sweep(self) -> None:
        params = dict(self.params)

        def work(progress: Progress):
            from workbench_engines.tokenizers.explain import vocab_sweep

            return vocab_sweep(_corpus_source(params), [int(v) for v in params["sizes"]], progress=progress)

        self.start(work, lambda sweep: setattr(self, "sweep", sweep), "Training BPE")

    def watch_sweep(self, sweep) -> None:
        if sweep is None:
            return
        points = sweep.points
        # A log2 axis drawn by hand: textual-plotext does not draw lines on xscale("log").
        xs = [math.log2(p.vocab_size) for p in points]
        self.query_one(Figure).lines(
            "tokens per 1,000 bytes of held-out text",
            [Series("tokens per 1,000 bytes", xs, [p.tokens_per_1000_bytes for p in points])],
            xlabel="vocabulary size (log scale)",
            xticks=(xs, [f"{p.vocab_size // 1000}k" if p.vocab_size >= 1000 else str(p.vocab_size) for p in points]))
        d_model = self.params["d_model"]
        table = Table(box=None, header_style="bold")
        for name in ("vocab", "tokens / 1000 B", "bytes / token", f"embedding params (d={d_model})"):
            table.add_column(name, justify="right")
        for p in points:
            table.add_row(f"{p.vocab_size:,}", f"{p.tokens_per_1000_bytes:.0f}", f"{p.bytes_per_token:.2f}",
                          f"{p.vocab_size * d_model:,}")
        table.caption = (f"trained on {sweep.train_bytes:,} bytes, measured on the next {sweep.held_out_bytes:,}; "
                         f"BPE by {sweep.backend}")
        self.readout(table)
        self.status("Bigger vocabularies shorten sequences with diminishing returns, and every token costs a row.")


class BPETrainerLab(TokenLab):
    """Trains byte-level BPE on the corpus, then replays the merges one at a time on a sample line."""

    DEFAULT_CSS = """
    BPETrainerLab Figure PlotextPlot { height: 11; }
    """
    BINDINGS = [
        Binding("t", "train", "Train"),
        *paired_keys("space", "b", "step(1)", "step(-1)", "merge±", display="space/b", up_help="Next merge",
                     down_help="Previous merge"),
        Binding("f", "step(25)", "Jump 25", tooltip="25 merges on"),
        # Hidden here: the step keys already fill the footer at 80 columns; the status line names it.
        Binding("ctrl+o", "toggle_separators", "Separators", show=False),
    ]
    result = reactive(None, always_update=True)
    """The TrainResult of the last training."""
    shown = reactive(0)
    """How many merges are replayed on the sample."""

    def compose_lab(self) -> ComposeResult:
        yield Static("Press t to train on the corpus.", classes="readout")
        yield Figure()

    def action_train(self) -> None:
        params = dict(self.params)
        choice = resolve(params["backend"])

        def work(progress: Progress):
            from pathlib import Path

            from workbench_engines.tokenizers.bpe_train import train_bpe

            progress(0.0, "reading the corpus")
            # The whole corpus is streamed from disk; a slice is read into memory.
            if params["corpus_bytes"]:
                source: str | Path = _corpus_source(params)
            else:
                source = Path(params["corpus"]).expanduser() if params["corpus"] else corpus.default_corpus_dir()

            def report(done: int, total: int, what: str) -> None:
                progress(done / max(total, 1), what)

            return train_bpe(source, params["vocab_size"], pattern=params["pattern"], special_tokens=(),
                             backend=choice.name, progress=report)

        self.choice = choice
        """The backend of the last training and why it was chosen."""
        self.start(work, lambda result: setattr(self, "result", result), f"Training BPE ({choice.name})")

    def watch_result(self, result) -> None:
        if result is None:
            return
        tokens = result.tokens_after_merges()
        step = max(1, len(tokens) // 400)
        self.query_one(Figure).lines(
            "bytes per token on the training text",
            [Series("bytes per token", list(range(0, len(tokens), step)), [result.corpus_bytes / t for t in tokens[::step]])],
            xlabel="merges")
        self.status(f"{len(result.merges):,} merges over {result.distinct_pieces:,} distinct pieces of "
                    f"{result.corpus_bytes / 1e6:.2f} MB in {result.seconds:.2f} s by {self.choice}. "
                    "space/b/f step through them; ctrl+o separates the tokens.")
        self.shown = min(10, len(result.merges))

    def action_step(self, delta: int) -> None:
        if self.result is None:
            self.status("Train first (t).")
            return
        self.shown = max(0, min(len(self.result.merges), self.shown + delta))

    def watch_shown(self, shown: int) -> None:
        result = self.result
        if result is None:
            return
        ranks = sorted(result.tokenizer.ranks.items(), key=lambda kv: kv[1])
        by_id = {rank: token for token, rank in ranks}
        first = {token: rank for token, rank in ranks[: 256 + shown]}
        out = Text()
        out.append(f"After {shown} merges\n", style="bold")
        for merge in result.merges[max(0, shown - 6) : shown]:
            left, right = by_id.get(merge.pair[0], b"?"), by_id.get(merge.pair[1], b"?")
            out.append(f"#{merge.new_id - 255:<5} {visible(label_bytes(left))!r} + {visible(label_bytes(right))!r}"
                       f" → {visible(label_bytes(left + right))!r}  ×{merge.count:,}\n")
        sample = self.params["sample"]
        pieces = pretokenize.split(sample, self.params["pattern"])
        parts = [p for piece in pieces for p in bpe_merge_steps(utf8(piece), first)[-1]]
        out.append(f"\n{sample!r} → {len(parts)} tokens\n", style="bold")
        out.append(self.strip([Token(k, label_bytes(p)) for k, p in enumerate(parts)]))
        self.readout(out)

    def redraw_pieces(self) -> None:
        self.watch_shown(self.shown)


class UnigramLab(TextLab):
    """Trains a Unigram model with EM and pruning, then segments the text with it and with sentencepiece."""

    DEFAULT_CSS = """
    UnigramLab Figure PlotextPlot { height: 9; }
    """
    BINDINGS = [Binding("ctrl+t", "train", "Train")]
    trained = reactive(None, always_update=True)
    """(UnigramTrainResult, the sentencepiece view to compare with), once trained."""

    def compose_lab(self) -> ComposeResult:
        yield from super().compose_lab()
        yield Figure()

    def action_train(self) -> None:
        params = dict(self.params)
        self.focus()  # so that x reaches the lab rather than the text box

        def work(progress: Progress):
            from textual.worker import get_current_worker

            from workbench_engines.tokenizers.peers import unigram_view
            from workbench_engines.tokenizers.unigram import SHRINK, train_unigram

            worker = get_current_worker()
            text = _corpus_source(params)
            # The seed holds 8x the target; each round keeps 3/4 of it.
            rounds = math.ceil(math.log(8) / -math.log(SHRINK)) + 1

            def report(done: int, total: int, what: str) -> None:
                progress(min(0.95, done / rounds), what)

            result = train_unigram(text, params["vocab_size"], progress=report,
                                   should_stop=lambda: worker.is_cancelled)
            progress(0.97, "training the sentencepiece model to compare with")
            return result, unigram_view()

        self.start(work, lambda trained: setattr(self, "trained", trained), "Training Unigram")

    def watch_trained(self, trained) -> None:
        if trained is not None:
            result, _ = trained
            self.query_one(Figure).lines(
                "log-likelihood per word as pruning shrinks the vocabulary",
                [Series("log-likelihood per word", [r["pieces"] for r in result.rounds],
                        [r["loglik_per_word"] for r in result.rounds])], xlabel="pieces kept")
            self.status(f"{len(result.rounds)} EM + prune rounds in {result.seconds:.1f} s → "
                        f"{result.model.vocab_size} pieces.")
        self.draw(self.text)

    def draw(self, text: str) -> None:
        if self.trained is None:
            self.readout("Press ctrl+t to train a Unigram model on the corpus.")
            return
        result, reference = self.trained
        model = result.model
        out = Text()
        pieces = model.viterbi(model.prepare_text(text))
        out.append(f"workbench Unigram ({model.vocab_size} pieces): {len(pieces)} pieces\n", style="bold")
        out.append(self.strip([Token(i, p, i == model.unk_id) for p, i in pieces]))
        tokens = reference.tokens(text)
        out.append(f"\n{reference.name}: {len(tokens)} pieces\n", style="bold")
        out.append(self.strip(tokens))
        self.readout(out)
