"""Sentence embeddings with the project's own MiniLM, the Lee document-similarity benchmark, and InfoNCE.

A sentence embedding is one vector per text. all-MiniLM-L6-v2 (Reimers &
Gurevych, 2019, "Sentence-BERT", with the MiniLM encoder of Wang et al., 2020)
makes it by mean pooling: the encoder's last hidden states averaged over the
real tokens ([CLS] ... [SEP], padding left out), then divided by their length,

    e = m / |m|,   m = (1/T) Σ_t h_t,

so that the cosine of two texts is the dot product of their unit vectors.
:func:`embed` runs :class:`workbench_engines.models.minilm.MiniLM` in length-sorted
batches (little padding), keeps the first ``max_tokens`` WordPiece tokens of
each text ([CLS] and [SEP] included, as sentence-transformers truncates: its
max_seq_length for this model is 256), reports progress between batches, and
stops when the progress callback raises (the caller's cancel).

The Lee benchmark (Lee, Pincombe & Welsh, 2005, "An empirical evaluation of
models of text document similarity"): 50 short news documents, each pair rated
for similarity by students; the ratings ship in the gensim wheel's test data as
``lee.cor`` (one document a line, Latin-1) and ``similarities0-1.txt`` (50 × 50,
mean rating scaled to [0, 1], upper triangle filled). A model is scored by the
Pearson and Spearman correlation of its cosines with the 1,225 ratings above
the diagonal. Baselines: TF-IDF cosine (IDF from the 50 documents themselves)
and the mean of the GloVe 6B 50d vectors of the words.

:func:`contrastive_demo` trains a linear map on top of frozen mean GloVe
vectors with InfoNCE and in-batch negatives (Oord et al., 2018; as in
Sentence-BERT's MultipleNegativesRankingLoss and SimCSE, Gao et al., 2021):
for a batch of B (headline, lede) pairs with unit embeddings q_i, d_j,

    loss = −(1/B) Σ_i log( exp(s·q_i·d_i) / Σ_j exp(s·q_i·d_j) ),

each headline's own lede is the positive and the other B − 1 ledes are the
negatives; s is a learned scale (inverse temperature) starting at 1. While the
model cannot tell the pairs apart every softmax is uniform and the loss is
ln B. It falls below ln B as soon as the true pairs score above the batch's
other pairs on average, long before every true pair ranks first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from workbench_engines.backends import resolve
from workbench_engines.embeddings.evaldata import INSTALL as GENSIM_INSTALL
from workbench_engines.embeddings.evaldata import test_data_dir
from workbench_engines.errors import EngineError
from workbench_engines.progress import Progress

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256
"""sentence-transformers' max_seq_length for all-MiniLM-L6-v2: longer texts are cut there."""
BATCH = 128
"""Most texts per forward pass."""
BATCH_TOKENS = 2048
"""Most padded tokens per forward pass (16 texts of 128 tokens, 100 headlines of 20): short texts go many to a
batch. Measured on 2 cores with NumPy's BLAS on one thread, the 2,087 BBC headlines embed in about 10 s
(13 s in batches of 16)."""
LEE_DOCS = "lee.cor"
LEE_RATINGS = "similarities0-1.txt"
LEE_METHODS = ("MiniLM", "TF-IDF", "GloVe mean")


def check_texts(texts: Sequence[str], noun: str = "text") -> list[str]:
    """``texts`` as a list, or an EngineError naming the first that is not a str with some words in it.

    ``noun`` names the texts in the message ("query": "the query is empty: type some words").
    """
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        got = "one str" if isinstance(texts, str) else f"a {type(texts).__name__}"
        raise EngineError(f"give a list of {noun} strings, not {got}")
    for i, text in enumerate(texts):
        which = f"{noun} {i}" if len(texts) > 1 else f"the {noun}"
        if not isinstance(text, str):
            raise EngineError(f"{which} is a {type(text).__name__}, not a str")
        if not text.strip():
            raise EngineError(f"{which} is empty: type some words")
    return list(texts)


def token_ids(model, text: str, max_tokens: int) -> list[int]:
    """[CLS] + the first max_tokens − 2 WordPiece ids of ``text`` + [SEP].

    A long text is tokenised from a prefix cut at a space, doubled until it
    holds enough pieces: the cut falls after the pieces that are kept, so the
    ids are those of the whole text, truncated.
    """
    keep = max_tokens - 2
    vocab = model.tokenizer.vocab
    length = 8 * max_tokens
    while True:
        cut = text if length >= len(text) else text[: max(text.rfind(" ", 0, length), 1)]
        ids = model.tokenizer.encode(cut, add_special_tokens=False)
        if cut is text or len(ids) > keep:
            return [vocab["[CLS]"], *ids[:keep], vocab["[SEP]"]]
        length *= 2


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Unit-length masked means: hidden (B, T, C), mask (B, T) 1 for real tokens → (B, C) float32."""
    weights = mask[..., None].astype(np.float32)  # (B, T, 1)
    mean = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)  # (B, C)
    return (mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def embed(texts: Sequence[str], *, max_tokens: int = MAX_TOKENS, batch_size: int = BATCH, backend: str = "auto",
          model=None, progress: Progress | None = None, what: str = "texts") -> np.ndarray:
    """Unit sentence embeddings (N, 384) float32 of ``texts`` by all-MiniLM-L6-v2 (module docstring).

    Args:
        texts: N non-empty strings.
        max_tokens: Tokens kept per text, [CLS] and [SEP] included (3..512).
        batch_size: Most texts per forward pass; a batch also holds at most BATCH_TOKENS padded tokens.
        backend: The attention backend ("auto": the C kernels where they loaded).
        model: A loaded MiniLM (default: the shared one).
        progress: progress(fraction, what) after every batch, with an estimate of the time left.
        what: The noun progress messages use ("articles", "chunks").

    Raises:
        EngineError: an empty list or text, a bad max_tokens, or the minilm extra missing.
    """
    from workbench_engines.models import minilm

    texts = check_texts(texts)
    if not texts:
        raise EngineError("nothing to embed: the list of texts is empty")
    model = model or minilm.load()
    limit = model.config.max_positions
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 2 < max_tokens <= limit:
        raise EngineError(f"max_tokens must be an int in 3..{limit}, got {max_tokens!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EngineError(f"batch_size must be an int ≥ 1, got {batch_size!r}")
    choice = resolve(backend, offers=("native", "reference"))
    ids = [token_ids(model, t, max_tokens) for t in texts]
    order = np.argsort([-len(i) for i in ids], kind="stable")  # longest first: batches of like lengths
    out = np.empty((len(texts), model.config.hidden), dtype=np.float32)
    pad = model.tokenizer.vocab["[PAD]"]
    started, done = time.perf_counter(), 0
    while done < len(order):
        longest = len(ids[order[done]])  # the batch's first text is its longest
        rows = order[done : done + max(1, min(batch_size, BATCH_TOKENS // longest))]
        batch = np.full((len(rows), longest), pad, dtype=np.int64)  # (B, T)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for j, r in enumerate(rows):
            batch[j, : len(ids[r])] = ids[r]
            mask[j, : len(ids[r])] = 1
        hidden = model.forward(batch, mask, backend=choice.name).last_hidden  # (B, T, C)
        out[rows] = mean_pool(hidden, mask)
        done += len(rows)
        if progress is not None:
            progress(done / len(texts), _eta(what, done, len(texts), time.perf_counter() - started))
    return out


def _eta(what: str, done: int, total: int, seconds: float) -> str:
    """'embedded 320/2087 articles, about 3 min left' (the rest at the pace so far; longest texts go first)."""
    left = seconds / done * (total - done)
    rest = f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left" if left >= 1 else ""
    return f"embedded {done:,}/{total:,} {what}{rest}"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """cos(a, b) = a·b / (|a| |b|); 0 for a zero vector."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise EngineError(f"cosine needs two vectors of one length, got {a.shape} and {b.shape}")
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norm) if norm > 0 else 0.0


def similarity(first: str, second: str, *, backend: str = "auto") -> float:
    """The cosine of two texts' MiniLM embeddings (the dot product of the unit vectors)."""
    a, b = embed([first, second], backend=backend)
    return float(a @ b)


@dataclass(frozen=True)
class Neighbour:
    text: str
    cosine: float


def nearest(query: str, candidates: Sequence[str], k: int = 3, *, backend: str = "auto") -> list[Neighbour]:
    """The ``k`` candidates nearest ``query`` by cosine, nearest first (ties: the earlier candidate); all of them
    when there are fewer than k."""
    return pair_and_nearest(query, None, candidates, k, backend=backend)[1]


def pair_and_nearest(first: str, second: str | None, candidates: Sequence[str], k: int = 3, *,
                     backend: str = "auto") -> tuple[float | None, list[Neighbour]]:
    """(cos(first, second), the ``k`` candidates nearest ``first``) from one embedding pass over all the texts;
    the cosine is None without a second text.

    Raises:
        EngineError: no candidates, an empty text, or k not an int ≥ 1.
    """
    candidates = check_texts(candidates, "candidate")
    if not candidates:
        raise EngineError("no candidate sentences to compare with")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise EngineError(f"k must be an int ≥ 1 (how many neighbours to list), got {k!r}")
    head = [first] if second is None else [first, second]
    vectors = embed([*head, *candidates], backend=backend)
    scores = vectors[len(head):] @ vectors[0]  # (N,)
    order = np.argsort(-scores, kind="stable")[:k]
    cosine_pair = None if second is None else float(vectors[0] @ vectors[1])
    return cosine_pair, [Neighbour(candidates[i], float(scores[i])) for i in order]


# --- the Lee benchmark ---------------------------------------------------------------------------


def _lee_file(name: str) -> Path:
    path = test_data_dir() / name
    if not path.is_file():
        raise EngineError(f"{path} is missing from the gensim install; reinstall it: {GENSIM_INSTALL}")
    return path


@cache
def lee_documents() -> tuple[str, ...]:
    """The 50 Lee documents, one a line of lee.cor (Latin-1)."""
    lines = _lee_file(LEE_DOCS).read_text(encoding="latin-1").splitlines()
    docs = tuple(line.strip() for line in lines if line.strip())
    if len(docs) != 50:
        raise EngineError(f"{LEE_DOCS}: {len(docs)} documents, expected 50")
    return docs


@cache
def lee_ratings() -> np.ndarray:
    """The 1,225 human ratings of document pairs (i < j) in row order of the upper triangle, float64."""
    matrix = np.loadtxt(_lee_file(LEE_RATINGS), dtype=np.float64)
    if matrix.shape != (50, 50):
        raise EngineError(f"{LEE_RATINGS}: shape {matrix.shape}, expected (50, 50)")
    return matrix[np.triu_indices(50, 1)]


@dataclass(frozen=True)
class LeeResult:
    """How well one method's cosines follow the human ratings of the 1,225 Lee pairs."""

    method: str
    pearson: float
    spearman: float
    pairs: int
    cosines: np.ndarray
    """(1225,) the method's cosine of each pair, in the order of lee_ratings()."""


def _pair_cosines(vectors: np.ndarray) -> np.ndarray:
    """Cosines of all pairs i < j of the rows of ``vectors`` (N, D), upper-triangle order."""
    x = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    return (x @ x.T)[np.triu_indices(len(x), 1)]


def tfidf_vectors(texts: Sequence[str]) -> np.ndarray:
    """TF-IDF rows (N, V): raw term counts × ln((1 + N)/(1 + df)) + 1 (scikit-learn's smoothed IDF),
    terms from the BM25 tokeniser (lower case, English stop words out)."""
    from workbench_engines.retrieval.tokenizer import tokenize_many

    docs = tokenize_many(texts)
    vocab = {t: i for i, t in enumerate(dict.fromkeys(t for d in docs for t in d))}
    counts = np.zeros((len(docs), len(vocab)))
    for row, doc in enumerate(docs):
        np.add.at(counts[row], [vocab[t] for t in doc], 1.0)
    df = (counts > 0).sum(axis=0)
    return counts * (np.log((1.0 + len(docs)) / (1.0 + df)) + 1.0)


def glove_mean_vectors(texts: Sequence[str]) -> np.ndarray:
    """The mean GloVe 6B 50d vector of each text's words (BM25 tokeniser, stop words out; unknown words skipped;
    a text with no known word gets a zero row)."""
    from workbench_engines.retrieval.tokenizer import tokenize_many

    glove = _glove()
    rows = []
    for words in tokenize_many(texts):
        ids = [glove.index[w] for w in words if w in glove.index]
        rows.append(glove.matrix[ids].mean(axis=0) if ids else np.zeros(glove.matrix.shape[1], np.float32))
    return np.asarray(rows, dtype=np.float32)


@dataclass(frozen=True)
class _Glove:
    index: dict[str, int]
    matrix: np.ndarray


@cache
def _glove() -> _Glove:
    """GloVe 6B 50d's words and matrix, read once per process."""
    from workbench_engines.embeddings.glove import load_matrix, load_vocab

    words = load_vocab()
    return _Glove({w: i for i, w in enumerate(words)}, np.asarray(load_matrix()))


_LEE_MINILM: dict[str, np.ndarray] = {}
"""MiniLM's embeddings of the 50 Lee documents, by backend: computed once per process."""


def lee_benchmark(method: str = "MiniLM", *, backend: str = "auto", progress: Progress | None = None) -> LeeResult:
    """Pearson and Spearman of ``method``'s document cosines (one of LEE_METHODS) against the Lee ratings.

    MiniLM's embeddings of the 50 documents are computed once per process.
    """
    from scipy import stats

    docs = list(lee_documents())
    if method == "MiniLM":
        key = resolve(backend, offers=("native", "reference")).name
        if key not in _LEE_MINILM:
            _LEE_MINILM[key] = embed(docs, backend=key, progress=progress, what="Lee documents")
        vectors = _LEE_MINILM[key]
    elif method == "TF-IDF":
        vectors = tfidf_vectors(docs)
    elif method == "GloVe mean":
        vectors = glove_mean_vectors(docs)
    else:
        raise EngineError(f"Lee method {method!r}: use one of {', '.join(LEE_METHODS)}")
    cosines = _pair_cosines(vectors)
    human = lee_ratings()
    return LeeResult(method, float(stats.pearsonr(cosines, human)[0]), float(stats.spearmanr(cosines, human)[0]),
                     len(human), cosines)


# --- InfoNCE with in-batch negatives ---------------------------------------------------------------


@dataclass(frozen=True)
class ContrastiveResult:
    """A linear map trained by InfoNCE on frozen mean GloVe vectors of BBC (headline, lede) pairs."""

    batch: int
    epochs: int
    losses: list[float]
    """The training loss of every step, in order."""
    epoch_losses: list[float]
    """The mean training loss of each epoch."""
    recall: list[float]
    """Held-out recall@1 (headline → its lede among all held-out ledes): before training, then after each epoch."""
    scales: list[float]
    """The learned scale s after each epoch."""
    train_pairs: int
    test_pairs: int

    @property
    def ln_batch(self) -> float:
        """The loss of a model that can't tell the pairs apart: ln B."""
        return math.log(self.batch)


def lede_pairs(articles=None) -> tuple[list[str], list[str]]:
    """(headlines, ledes) of the BBC headline task: each article's headline and its first sentence."""
    from workbench_engines.retrieval.chunking import sentences
    from workbench_engines.retrieval.corpora import bbc_headline_task, headline_task

    task = bbc_headline_task() if articles is None else headline_task(articles)
    ledes = []
    for body in task.documents:
        start, end = sentences(body)[0]
        ledes.append(body[start:end])
    return task.queries, ledes


def _adam_step(params, moments, t: int, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
    """One Adam update (Kingma & Ba, 2015) of each (tensor, learning rate), gradients then cleared.

    Written out rather than torch.optim.Adam, whose first use imports torch's compiler (seconds).
    """
    import torch

    with torch.no_grad():
        for (p, lr), (m, v) in zip(params, moments):
            m.mul_(beta1).add_(p.grad, alpha=1 - beta1)  # first moment
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)  # second moment
            step = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)  # bias corrections folded into the rate
            p.sub_(step * m / (v.sqrt() + eps))
            p.grad = None


def contrastive_demo(*, batch: int = 64, epochs: int = 6, lr: float = 0.002, scale_lr: float = 0.05, seed: int = 0,
                     test_every: int = 5, articles=None, progress: Progress | None = None) -> ContrastiveResult:
    """Train W (50 × 50, from the identity) and the scale s by InfoNCE on the training pairs (module docstring).

    Every ``test_every``-th pair is held out. Features are mean GloVe vectors,
    centred on the training mean; embeddings are W·x scaled to unit length. At
    the identity the map is plain mean GloVe, so the first recall is the
    untrained baseline. Deterministic for a given ``seed``.
    """
    import torch

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 2:
        raise EngineError(f"batch must be an int ≥ 2 (one positive, at least one negative), got {batch!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise EngineError(f"epochs must be an int ≥ 1, got {epochs!r}")
    if isinstance(test_every, bool) or not isinstance(test_every, int) or test_every < 2:
        raise EngineError(f"test_every must be an int ≥ 2 (every test_every-th pair is held out), got {test_every!r}")
    headlines, ledes = lede_pairs(articles)
    q_all, d_all = glove_mean_vectors(headlines), glove_mean_vectors(ledes)
    test = np.arange(len(headlines)) % test_every == 0
    if test.sum() < 2 or (~test).sum() < batch:
        raise EngineError(f"{len(headlines)} pairs are too few for batches of {batch} with one pair in {test_every} "
                          "held out")
    centre = np.concatenate([q_all[~test], d_all[~test]]).mean(axis=0)

    def as_tensor(x: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x - centre, dtype=np.float64))

    q_train, d_train, q_test, d_test = (as_tensor(x) for x in (q_all[~test], d_all[~test], q_all[test], d_all[test]))
    generator = torch.Generator().manual_seed(seed)
    weight = torch.eye(q_all.shape[1], dtype=torch.float64, requires_grad=True)
    log_scale = torch.zeros((), dtype=torch.float64, requires_grad=True)
    params = [(weight, lr), (log_scale, scale_lr)]
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p, _ in params]

    def project(x):
        return torch.nn.functional.normalize(x @ weight.T, dim=1)  # (N, D), unit rows

    def held_out_recall() -> float:
        with torch.no_grad():
            scores = project(q_test) @ project(d_test).T  # (Q, Q)
            return float((scores.argmax(dim=1) == torch.arange(len(scores))).double().mean())

    losses, epoch_losses, recall, scales = [], [], [held_out_recall()], []
    n, steps = len(q_train), len(q_train) // batch
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for step in range(steps):
            rows = order[step * batch : (step + 1) * batch]
            logits = log_scale.exp() * project(q_train[rows]) @ project(d_train[rows]).T  # (B, B)
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(batch))  # the diagonal is positive
            loss.backward()
            _adam_step(params, moments, len(losses) + 1)
            losses.append(loss.item())
            total += losses[-1]
        epoch_losses.append(total / steps)
        recall.append(held_out_recall())
        scales.append(log_scale.exp().item())
        if progress is not None:
            progress((epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs}: loss {epoch_losses[-1]:.3f}")
    return ContrastiveResult(batch, epochs, losses, epoch_losses, recall, scales, int((~test).sum()), int(test.sum()))
