"""Unigram language-model tokenization (Kudo, 2018), as SentencePiece does it.

A Unigram model is a set of pieces, each with a log-probability. A text is
segmented into the most probable sequence of pieces, found by Viterbi over
the lattice of every piece that matches somewhere in it. Training starts
from many candidate substrings and alternates EM (expected piece counts from
forward-backward, then new log-probabilities) with pruning the pieces whose
removal costs the corpus likelihood least, until the vocabulary is small
enough.

Text is prepared as SentencePiece prepares it: runs of spaces collapse, the
ends are trimmed, a space is put in front, and every space becomes "▁".
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from workbench_engines.errors import EngineError
from workbench_engines.tokenizers.bpe_train import TrainingCancelled

SPACE = "\u2581"
UNK_PENALTY = 10.0  # sentencepiece's kUnkPenalty: unknown scores min_score - 10
SHRINK = 0.75  # share of pieces each pruning round keeps (sentencepiece's shrinking_factor)


def prepare(text: str, *, add_dummy_prefix: bool = True, remove_extra_whitespaces: bool = True) -> str:
    """SentencePiece's whitespace handling: trim, collapse runs of spaces, spaces to ▁, a ▁ in front.

    As in sentencepiece, leading trimming and collapsing see only real spaces,
    while trailing trimming happens after the mapping, so a ▁ typed at the end
    goes too.
    """
    if remove_extra_whitespaces:
        text = re.sub(" +", " ", text.lstrip(" "))
    text = text.replace(" ", SPACE)
    if add_dummy_prefix and text:
        text = SPACE + text
    if remove_extra_whitespaces:
        text = text.rstrip(SPACE)
    return text


@dataclass
class Unigram:
    """Pieces with log-probability scores; ids are positions in ``pieces``."""

    pieces: list[tuple[str, float]]
    unk_id: int = 0
    control: frozenset[int] = frozenset()
    """Ids never matched in text (<s>, </s>, and the unknown piece itself)."""
    name: str = "unigram"
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    _index: dict[str, int] = field(init=False, repr=False)

    def __repr__(self) -> str:
        """A short summary instead of every piece and score."""
        return f"Unigram(name={self.name!r}, pieces={len(self.pieces)}, unk_id={self.unk_id})"

    def __post_init__(self) -> None:
        if not 0 <= self.unk_id < len(self.pieces):
            raise EngineError(f"{self.name}: unk_id {self.unk_id} is outside the {len(self.pieces)} pieces")
        self._index = {}
        for i, (piece, _) in enumerate(self.pieces):
            if i in self.control or i == self.unk_id:
                continue
            if not piece:
                raise EngineError(f"{self.name}: piece {i} is empty")
            self._index.setdefault(piece, i)
        normal = [score for i, (_, score) in enumerate(self.pieces) if i not in self.control and i != self.unk_id]
        self.unk_score = (min(normal) if normal else 0.0) - UNK_PENALTY
        self._max_len = max((len(p) for p in self._index), default=1)

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def lattice(self, text: str) -> list[list[tuple[int, int, float]]]:
        """For each start position, the (end, id, score) of every piece that matches there."""
        edges: list[list[tuple[int, int, float]]] = []
        for start in range(len(text)):
            here = []
            for end in range(start + 1, min(len(text), start + self._max_len) + 1):
                i = self._index.get(text[start:end])
                if i is not None:
                    here.append((end, i, self.pieces[i][1]))
            if not any(end == start + 1 for end, _, _ in here):
                here.insert(0, (start + 1, self.unk_id, self.unk_score))
            edges.append(here)
        return edges

    def viterbi(self, text: str) -> list[tuple[str, int]]:
        """The best segmentation of prepared text as (piece, id) pairs."""
        n = len(text)
        best = [-math.inf] * (n + 1)
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
        best[0] = 0.0
        for start, here in enumerate(self.lattice(text)):
            base = best[start]
            for end, i, score in here:
                # Strictly greater: on a tie the earlier start wins, as in sentencepiece.
                if base + score > best[end]:
                    best[end] = base + score
                    back[end] = (start, i)
        pieces: list[tuple[str, int]] = []
        end = n
        while end > 0:
            start, i = back[end]
            if pieces and i == self.unk_id and pieces[-1][1] == self.unk_id:
                # sentencepiece reports a run of unknown characters as one piece.
                pieces[-1] = (text[start:end] + pieces[-1][0], i)
            else:
                pieces.append((text[start:end], i))
            end = start
        return pieces[::-1]

    def tokenize(self, text: str) -> list[str]:
        """The pieces of text (unknown characters stay as themselves)."""
        return [piece for piece, _ in self.viterbi(self.prepare_text(text))]

    def encode(self, text: str) -> list[int]:
        return [i for _, i in self.viterbi(self.prepare_text(text))]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids: ▁ back to spaces, the leading one dropped; unknowns as ⁇."""
        out = []
        for i in ids:
            if not isinstance(i, int) or not 0 <= i < len(self.pieces):
                raise EngineError(f"token id {i!r} is not in {self.name}'s vocabulary")
            if i == self.unk_id:
                out.append(" \u2047 ")
            elif i not in self.control:
                out.append(self.pieces[i][0])
        text = "".join(out).replace(SPACE, " ")
        return text[1:] if self.add_dummy_prefix and text.startswith(" ") else text

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        return self.decode(ids).encode("utf-8")

    def prepare_text(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"encode takes str, got {type(text).__name__}")
        return prepare(text, add_dummy_prefix=self.add_dummy_prefix,
                       remove_extra_whitespaces=self.remove_extra_whitespaces)

    @classmethod
    def from_sentencepiece(cls, processor) -> "Unigram":
        """The pieces and scores of a loaded sentencepiece Unigram model."""
        pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
        control = frozenset(i for i in range(len(pieces)) if processor.is_control(i) or processor.is_unknown(i))
        return cls(pieces, unk_id=processor.unk_id(), control=control, name="sentencepiece")


# ---- training ---------------------------------------------------------------

def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    hi, lo = (a, b) if a > b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


def _digamma(x: float) -> float:
    """ψ(x) by recurrence up to x >= 6, then the asymptotic series (as sentencepiece's Digamma)."""
    result = 0.0
    while x < 6:
        result -= 1 / x
        x += 1
    inv = 1 / x
    inv2 = inv * inv
    return result + math.log(x) - 0.5 * inv - inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 / 252))


@dataclass
class UnigramTrainResult:
    model: Unigram
    rounds: list[dict[str, float]]
    """Per pruning round: pieces kept and corpus log-likelihood per word."""
    seconds: float


def _expected_counts(model: Unigram, words: list[tuple[str, int]]) -> tuple[Counter[int], float]:
    """E-step: expected uses of each piece (forward-backward over each word's lattice)."""
    expected: Counter[int] = Counter()
    loglik = 0.0
    for word, count in words:
        edges = model.lattice(word)
        n = len(word)
        alpha = [-math.inf] * (n + 1)
        alpha[0] = 0.0
        for start, here in enumerate(edges):
            for end, _, score in here:
                alpha[end] = _logsumexp(alpha[end], alpha[start] + score)
        beta = [-math.inf] * (n + 1)
        beta[n] = 0.0
        for start in range(n - 1, -1, -1):
            for end, _, score in edges[start]:
                beta[start] = _logsumexp(beta[start], score + beta[end])
        z = alpha[n]
        loglik += count * z
        for start, here in enumerate(edges):
            for end, i, score in here:
                posterior = math.exp(alpha[start] + score + beta[end] - z)
                if posterior > 1e-12:
                    expected[i] += count * posterior
    return expected, loglik


def train_unigram(
    text: str,
    vocab_size: int,
    *,
    max_piece_len: int = 16,
    seed_factor: int = 8,
    shrink: float = SHRINK,
    em_iterations: int = 2,
    progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> UnigramTrainResult:
    """Learn a Unigram model of vocab_size pieces (plus <unk>) from text."""
    if vocab_size < 2:
        raise EngineError(f"vocab_size must be at least 2, got {vocab_size}")
    started = time.perf_counter()
    report = progress or (lambda d, t, w: None)
    words = Counter(prepare(line) for line in text.splitlines() if line.strip())
    # Words are whitespace-separated runs with their leading ▁.
    word_counts: Counter[str] = Counter()
    for line, count in words.items():
        for part in line.split(SPACE)[1:]:
            word_counts[SPACE + part] += count
    if not word_counts:
        raise EngineError("the training text is empty")
    chars: Counter[str] = Counter()
    subs: Counter[str] = Counter()
    for word, count in word_counts.items():
        for k, ch in enumerate(word):
            chars[ch] += count
            for end in range(k + 2, min(len(word), k + max_piece_len) + 1):
                subs[word[k:end]] += count
    # Seed: every character, plus the most frequent longer substrings (by count x length).
    seed = [s for s, _ in sorted(subs.items(), key=lambda kv: (-kv[1] * len(kv[0]), kv[0]))][: vocab_size * seed_factor]
    total = sum(chars.values()) + sum(subs[s] for s in seed)
    scores = {s: math.log(c / total) for s, c in chars.items()}
    scores.update({s: math.log(subs[s] / total) for s in seed})
    required = set(chars)
    word_list = sorted(word_counts.items())
    rounds = []

    def model_of(table: dict[str, float]) -> Unigram:
        return Unigram([("<unk>", 0.0), *sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))], 0, frozenset({0}))

    target = vocab_size - 1
    step = 0
    while True:
        for _ in range(em_iterations):
            if should_stop and should_stop():
                raise TrainingCancelled("training cancelled")
            model = model_of(scores)
            expected, loglik = _expected_counts(model, word_list)
            # M-step with the Bayesian (digamma) update sentencepiece uses; it
            # pushes rarely used pieces towards -inf so pruning drops them.
            kept = {model.pieces[i][0]: c for i, c in expected.items() if i != 0 and (c >= 0.5 or model.pieces[i][0] in required)}
            norm = _digamma(sum(kept.values()))
            scores = {p: _digamma(max(c, 1e-3)) - norm for p, c in kept.items()}
            for ch in required - scores.keys():
                scores[ch] = min(scores.values()) - 1.0
        rounds.append({"pieces": len(scores), "loglik_per_word": loglik / sum(word_counts.values())})
        step += 1
        report(step, step + 1, f"{len(scores)} pieces")
        if len(scores) <= target:
            break
        # Prune: the loss of removing a piece is its expected count times how much
        # worse its best segmentation without it scores.
        model = model_of(scores)
        losses = []
        for piece, score in scores.items():
            if piece in required:
                continue
            without = Unigram([("<unk>", 0.0), *((p, s) for p, s in scores.items() if p != piece)], 0, frozenset({0}))
            alternative = sum(without.pieces[i][1] for _, i in without.viterbi(piece))
            losses.append((expected[model._index[piece]] * (score - alternative), piece))
        losses.sort(reverse=True)
        keep_n = max(target - len(required), int(len(scores) * shrink) - len(required))
        keep = {piece for _, piece in losses[:keep_n]} | required
        scores = {p: s for p, s in scores.items() if p in keep}
    final = dict(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:target])
    for ch in required - final.keys():
        final[ch] = min(final.values()) - 1.0
    return UnigramTrainResult(model_of(final), rounds, time.perf_counter() - started)
