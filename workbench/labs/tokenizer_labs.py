"""Labs of the Tokenization track: bytes, vocabulary size, BPE training, pre-tokenisation,
WordPiece, Unigram, and every tokenizer side by side.

Anything slower than a keystroke (loading vocabularies, training) runs in a
worker through :meth:`Lab.start`, with progress and ``x`` to cancel.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static
from textual_plotext import PlotextPlot

from workbench_engines import corpus
from workbench_engines.nativelib import native_status
from workbench_engines.tokenizers import pretokenize
from workbench_engines.tokenizers.bpe import BPETokenizer
from workbench_engines.tokenizers.bpe_reference import bpe_merge_steps
from workbench_engines.tokenizers.peers import Token, TokenizerView, build, label_bytes
from workbench.typed import unescape
from workbench.labs.base import Lab, Progress
from workbench.widgets.token_strip import id_line, token_strip, visible

FORMS = ("NFC", "NFD", "NFKC", "NFKD")


def _backend() -> str:
    return "native" if native_status().loaded else "reference"


def _corpus_source(params: dict[str, Any]) -> str:
    """Training text: the named file or folder, or the default corpus, cut to corpus_bytes."""
    limit = params.get("corpus_bytes") or None
    return corpus.read_text(params.get("corpus") or None, limit=limit)


class TextLab(Lab):
    """A lab whose input is a line of text the learner edits; redraw() runs on every change.

    The box is one line, so a line break is typed as \\n (and a tab as \\t).
    """

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["text"], placeholder="type any text; \\n is a line break, \\t a tab")
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self.redraw()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.redraw()

    @property
    def text(self) -> str:
        return unescape(self.query_one(Input).value)

    def show(self, renderable: Any) -> None:
        self.query_one(".readout", Static).update(renderable)


class BytesLab(TextLab):
    """Each character of the text: code point, category and UTF-8 bytes, under a normalisation form."""

    BINDINGS = [Binding("ctrl+n", "next_form", "Next form")]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.form = params["form"]

    def action_next_form(self) -> None:
        self.form = FORMS[(FORMS.index(self.form) + 1) % len(FORMS)]
        self.redraw()

    def redraw(self) -> None:
        text = unicodedata.normalize(self.form, self.text)
        table = Table(box=None, header_style="bold", title=f"{self.form}: {len(text)} code points, "
                      f"{len(text.encode('utf-8', 'surrogatepass'))} UTF-8 bytes", title_justify="left")
        for name in ("char", "code point", "category", "name", "UTF-8 bytes"):
            table.add_column(name)
        for ch in text[:32]:
            data = ch.encode("utf-8", "surrogatepass")
            category = unicodedata.category(ch)
            # Marks are drawn on a dotted circle; spaces and controls as a dot.
            shown = "◌" + ch if category[0] == "M" else "·" if category[0] in "CZ" else ch
            table.add_row(shown, f"U+{ord(ch):04X}", unicodedata.category(ch), unicodedata.name(ch, "?")[:28],
                          " ".join(f"{b:02x}" for b in data))
        if len(text) > 32:
            table.add_row("…", "", "", f"{len(text) - 32} more", "")
        counts = " · ".join(
            f"{form} {len(unicodedata.normalize(form, self.text).encode('utf-8', 'surrogatepass'))} B" for form in FORMS
        )
        table.caption = f"bytes under each form: {counts}  (ctrl+n switches the form shown)"
        self.show(table)


class PretokenizeLab(TextLab):
    """The text split by the GPT-2 and cl100k patterns, and cl100k's merges inside the longest piece."""

    def redraw(self) -> None:
        text = self.text
        out = Text()
        for name in ("gpt2", "cl100k"):
            pieces = pretokenize.split(text, name, backend=_backend())
            out.append(f"{name}: {len(pieces)} pieces\n", style="bold")
            out.append(token_strip([Token(k, p) for k, p in enumerate(pieces)]))
            out.append("\n\n")
        pieces = pretokenize.split(text, "cl100k", backend=_backend())
        if pieces:
            longest = max(pieces, key=lambda p: len(p.encode("utf-8")))
            steps = bpe_merge_steps(longest.encode("utf-8"), _cl100k().ranks)
            out.append(f"cl100k merges inside {visible(longest)!r} ({len(steps) - 1} merges):\n", style="bold")
            for k, parts in enumerate(steps[-8:], start=max(0, len(steps) - 8)):
                out.append(f"{k:>3} ", style="dim")
                out.append(token_strip([Token(i, label_bytes(p)) for i, p in enumerate(parts)]))
                out.append("\n")
        self.show(out)


_CL100K: list[BPETokenizer] = []


def _cl100k() -> BPETokenizer:
    if not _CL100K:
        from workbench_engines.tokenizers.formats import load_cl100k

        _CL100K.append(load_cl100k(_backend()))
    return _CL100K[0]


class WordPieceLab(TextLab):
    """BERT's pipeline step by step: normalised text, words, then ## pieces, beside HF tokenizers."""

    def on_mount(self) -> None:
        from workbench_engines.tokenizers.wordpiece import load_minilm

        try:
            self.model = load_minilm()
        except Exception as exc:  # noqa: BLE001 - the optional extra may be missing
            self.model = None
            self.show(f"WordPiece needs all-MiniLM-L6-v2: {exc}")
            return
        self.redraw()

    def redraw(self) -> None:
        if getattr(self, "model", None) is None:
            return
        from workbench_engines.tokenizers.wordpiece import normalize, pre_tokenize

        text = self.text
        normal = normalize(text)
        words = pre_tokenize(normal)
        pieces = self.model.tokenize(text)
        out = Text()
        out.append("normalised: ", style="bold")
        out.append(visible(normal) + "\n")
        out.append(f"words ({len(words)}): ", style="bold")
        out.append(token_strip([Token(k, w) for k, w in enumerate(words)]))
        out.append(f"\npieces ({len(pieces)}): ", style="bold")
        tokens = [Token(self.model.vocab[p], p, p == self.model.unk_token) for p in pieces]
        out.append(token_strip(tokens))
        out.append(f"\nids: {id_line(tokens)}\n")
        try:
            from workbench_engines.tokenizers.peers import hf_minilm

            theirs = hf_minilm().encode(text, add_special_tokens=False).tokens
            verdict = "same pieces" if theirs == pieces else f"DIFFERENT: {theirs}"
            out.append(f"HF tokenizers: {verdict}", style="dim")
        except Exception as exc:  # noqa: BLE001 - the peer is optional here
            out.append(f"HF tokenizers unavailable: {exc}", style="dim")
        self.show(out)


class CompareLab(TextLab):
    """Every tokenizer on the same text: coloured pieces, counts and ids, side by side."""

    BINDINGS = [Binding("ctrl+n", "next_sample", "Next sample")]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.views: list[TokenizerView] = []
        self.problems: list[str] = []
        self.sample = -1

    def on_mount(self) -> None:
        self.show("Loading tokenizers…")
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
        progress(1.0, "done")
        return views, problems

    def _loaded(self, result: tuple[list[TokenizerView], list[str]]) -> None:
        self.views, self.problems = result
        self.status("Type to retokenize; ctrl+n cycles the samples." + (" Missing: " + "; ".join(self.problems) if self.problems else ""))
        self.redraw()

    def action_next_sample(self) -> None:
        samples = self.params["samples"]
        if samples:
            self.sample = (self.sample + 1) % len(samples)
            self.query_one(Input).value = samples[self.sample]

    def redraw(self) -> None:
        if not self.views:
            return
        text = self.text
        out = Text()
        n_bytes = len(text.encode("utf-8", "surrogatepass"))
        out.append(f"{len(text)} characters, {n_bytes} UTF-8 bytes\n\n", style="dim")
        for view in self.views:
            try:
                tokens = view.tokens(text)
            except Exception as exc:  # noqa: BLE001 - one peer failing must not hide the others
                out.append(f"{view.name}: failed: {exc}\n\n", style="bold")
                continue
            per = f"{n_bytes / len(tokens):.2f} bytes/token" if tokens else "no tokens"
            out.append(f"{view.name}", style="bold")
            out.append(f" · {view.family} · vocab {view.vocab_size:,} · {len(tokens)} tokens · {per}\n", style="dim")
            out.append(token_strip(tokens))
            out.append(f"\n{id_line(tokens)}\n\n", style="dim")
        self.show(out)


class VocabSweepLab(Lab):
    """Trains BPE once, then measures every smaller vocabulary: sequence length falls, tables grow."""

    DEFAULT_CSS = """
    VocabSweepLab PlotextPlot { height: 14; }
    """
    BINDINGS = [Binding("t", "sweep", "Train and measure")]

    def compose_lab(self) -> ComposeResult:
        yield PlotextPlot()
        yield Static("Press t to train and measure.", classes="readout")

    def on_mount(self) -> None:
        self.action_sweep()

    def action_sweep(self) -> None:
        params = dict(self.params)
        self.start(lambda progress: sweep(params, progress), self._swept, "Training BPE")

    def _swept(self, rows: list[tuple[int, float]]) -> None:
        plt = self.fresh_plot()
        # A log2 axis drawn by hand: textual-plotext does not draw lines on xscale("log").
        xs = [math.log2(v) for v, _ in rows]
        plt.plot(xs, [t for _, t in rows], marker="braille")
        plt.xticks(xs, [f"{v // 1000}k" if v >= 1000 else str(v) for v, _ in rows])
        plt.xlabel("vocabulary size (log scale)")
        plt.title("tokens per 1,000 bytes of held-out text")
        self.refresh_plot()
        d_model = self.params["d_model"]
        table = Table(box=None, header_style="bold")
        for name in ("vocab", "tokens / 1000 B", "bytes / token", f"embedding params (d={d_model})"):
            table.add_column(name, justify="right")
        for vocab, per_k in rows:
            table.add_row(f"{vocab:,}", f"{per_k:.0f}", f"{1000 / per_k:.2f}", f"{vocab * d_model:,}")
        self.query_one(".readout", Static).update(table)
        self.status("Bigger vocabularies shorten sequences with diminishing returns, and every token costs a row.")


def sweep(params: dict[str, Any], progress: Progress) -> list[tuple[int, float]]:
    """Tokens per 1,000 held-out bytes for each vocabulary size (prefixes of one training run)."""
    from workbench_engines.tokenizers.bpe_train import train_bpe

    text = _corpus_source(params)
    cut = int(len(text) * 0.9)
    train, held = text[:cut], text[cut:]
    sizes = sorted({int(v) for v in params["sizes"]})

    def report(done: int, total: int, what: str) -> None:
        progress(0.8 * done / max(total, 1), what)

    result = train_bpe(train, max(sizes), pattern="gpt2", special_tokens=(), backend=_backend(),
                       progress=report, should_stop=None)
    ranks = sorted(result.tokenizer.ranks.items(), key=lambda kv: kv[1])
    held_bytes = len(held.encode("utf-8"))
    rows = []
    for k, size in enumerate(sizes):
        progress(0.8 + 0.2 * k / len(sizes), f"encoding with {size:,} tokens")
        tokenizer = BPETokenizer(f"bpe-{size}", dict(ranks[:size]), "gpt2", {}, _backend())
        rows.append((size, 1000 * len(tokenizer.encode(held)) / held_bytes))
    return rows


class BPETrainerLab(Lab):
    """Trains byte-level BPE on the corpus, then replays the merges one at a time on a sample line."""

    DEFAULT_CSS = """
    BPETrainerLab PlotextPlot { height: 12; }
    """
    BINDINGS = [
        Binding("t", "train", "Train"),
        Binding("space", "step(1)", "Next merge"),
        Binding("b", "step(-1)", "Previous merge"),
        Binding("f", "step(25)", "+25 merges"),
    ]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.result = None
        self.shown = 0

    def compose_lab(self) -> ComposeResult:
        yield Static("Press t to train on the corpus.", classes="readout")
        yield PlotextPlot()

    def action_train(self) -> None:
        params = dict(self.params)

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
                             backend=params["backend"] if params["backend"] != "auto" else _backend(),
                             progress=report)

        self.start(work, self._trained, "Training BPE")

    def _trained(self, result) -> None:
        self.result = result
        self.shown = min(10, len(result.merges))
        tokens = [result.corpus_bytes]
        for merge in result.merges:
            tokens.append(tokens[-1] - merge.count)
        plt = self.fresh_plot()
        step = max(1, len(tokens) // 400)
        plt.plot(list(range(0, len(tokens), step)), [result.corpus_bytes / t for t in tokens[::step]], marker="braille")
        plt.xlabel("merges")
        plt.title("bytes per token on the training text")
        self.refresh_plot()
        self.status(f"{len(result.merges):,} merges over {result.distinct_pieces:,} distinct pieces of "
                    f"{result.corpus_bytes / 1e6:.2f} MB in {result.seconds:.2f} s. space/b/f step through them.")
        self.redraw()

    def action_step(self, delta: int) -> None:
        if self.result is None:
            self.status("Train first (t).")
            return
        self.shown = max(0, min(len(self.result.merges), self.shown + delta))
        self.redraw()

    def redraw(self) -> None:
        result = self.result
        ranks = sorted(result.tokenizer.ranks.items(), key=lambda kv: kv[1])
        by_id = {rank: token for token, rank in ranks}
        first = {token: rank for token, rank in ranks[: 256 + self.shown]}
        out = Text()
        out.append(f"After {self.shown} merges\n", style="bold")
        for merge in result.merges[max(0, self.shown - 6) : self.shown]:
            left, right = by_id.get(merge.pair[0], b"?"), by_id.get(merge.pair[1], b"?")
            out.append(f"#{merge.new_id - 255:<5} {visible(label_bytes(left))!r} + {visible(label_bytes(right))!r}"
                       f" → {visible(label_bytes(left + right))!r}  ×{merge.count:,}\n")
        sample = self.params["sample"]
        pieces = pretokenize.split(sample, self.params["pattern"])
        parts = [p for piece in pieces for p in bpe_merge_steps(piece.encode("utf-8"), first)[-1]]
        out.append(f"\n{sample!r} → {len(parts)} tokens\n", style="bold")
        out.append(token_strip([Token(k, label_bytes(p)) for k, p in enumerate(parts)]))
        self.query_one(".readout", Static).update(out)


class UnigramLab(TextLab):
    """Trains a Unigram model with EM and pruning, then segments the text with it and with sentencepiece."""

    DEFAULT_CSS = """
    UnigramLab PlotextPlot { height: 10; }
    """
    BINDINGS = [Binding("ctrl+t", "train", "Train Unigram")]

    def __init__(self, spec, params: dict[str, Any]) -> None:
        super().__init__(spec, params)
        self.model = None
        self.reference = None

    def compose_lab(self) -> ComposeResult:
        yield from super().compose_lab()
        yield PlotextPlot()

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

        self.start(work, self._trained, "Training Unigram")

    def _trained(self, result) -> None:
        trained, reference = result
        self.model, self.reference = trained.model, reference
        plt = self.fresh_plot()
        plt.plot([r["pieces"] for r in trained.rounds], [r["loglik_per_word"] for r in trained.rounds], marker="braille")
        plt.xlabel("pieces kept")
        plt.title("log-likelihood per word as pruning shrinks the vocabulary")
        self.refresh_plot()
        self.status(f"{len(trained.rounds)} EM + prune rounds in {trained.seconds:.1f} s → {trained.model.vocab_size} pieces.")
        self.redraw()

    def redraw(self) -> None:
        if self.model is None:
            self.show("Press ctrl+t to train a Unigram model on the corpus.")
            return
        text = self.text
        out = Text()
        pieces = self.model.viterbi(self.model.prepare_text(text))
        out.append(f"workbench Unigram ({self.model.vocab_size} pieces): {len(pieces)} pieces\n", style="bold")
        out.append(token_strip([Token(i, p, i == self.model.unk_id) for p, i in pieces]))
        tokens = self.reference.tokens(text)
        out.append(f"\n{self.reference.name}: {len(tokens)} pieces\n", style="bold")
        out.append(token_strip(tokens))
        self.show(out)
