"""all-MiniLM-L6-v2 as a torch nn.Module, so that it can be fine-tuned: the NumPy encoder's forward, with gradients.

Unlike ``models.minilm`` (NumPy, inference only, the code the attention and
embedding lessons explain), this module holds the same weights as torch
parameters, so a classifier can train all of them, some of them, or LoRA
adapters wrapped around a few (``finetune.lora``). The forward is the same
post-LayerNorm BERT (Devlin et al., 2019):

    h = LayerNorm(word + position + token_type embeddings)
    per layer:  a = LayerNorm(h + output(Attention(h W_q, h W_k, h W_v)))
                h = LayerNorm(a + down(GELU(up(a))))

Weights, sizes and tokenizer come from ``models.minilm.load()`` (copied, so
training never changes the NumPy model). Modules are named for what they
are, so a LoRA target reads as it would in the paper: ``attention.query``,
``attention.key``, ``attention.value``, ``attention.output``,
``feed_forward.up``, ``feed_forward.down`` (``HF_NAMES`` maps them to the
checkpoint's names). Dropout is left out: BERT's 0.1 is for pretraining
at scale; on a few thousand sentences and a few hundred steps it only adds
noise to the comparison of regimes, and without it a fixed seed gives the
same run twice.

Example::

    >>> model = load()
    >>> ids, mask = encode(model.tokenizer, ["a cat sat", "a dog ran"])
    >>> model.pool(model(ids, mask), mask).shape     # (B, C) mean of the real tokens
    torch.Size([2, 384])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from workbench_engines.errors import EngineError
from workbench_engines.models.minilm import Config
from workbench_engines.tokenizers.wordpiece import WordPiece

MAX_TOKENS = 64
"""The default cut of a sentence, [CLS] and [SEP] included: 99.9% of the movie snippets fit (fine-tuning cost grows
with it, so a 2-core CPU wants it short)."""


class SelfAttention(nn.Module):
    """Multi-head self-attention with a key-padding mask: NH heads of HS = C / NH, then the output projection."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        c = config.hidden
        self.heads = config.heads
        self.query = nn.Linear(c, c)
        self.key = nn.Linear(c, c)
        self.value = nn.Linear(c, c)
        self.output = nn.Linear(c, c)

    def forward(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """h (B, T, C), keep (B, 1, 1, T) bool (True: a real key) -> (B, T, C) before the residual."""
        b, t, c = h.shape

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, t, self.heads, c // self.heads).transpose(1, 2)  # (B, NH, T, HS)

        # softmax(q k^T / sqrt(HS)) v over real keys only (Vaswani et al., 2017, eq. 1)
        context = F.scaled_dot_product_attention(split(self.query(h)), split(self.key(h)), split(self.value(h)),
                                                 attn_mask=keep)  # (B, NH, T, HS)
        return self.output(context.transpose(1, 2).reshape(b, t, c))


class FeedForward(nn.Module):
    """up (C -> intermediate), exact GELU (Hendrycks and Gimpel, 2016), down (intermediate -> C)."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.up = nn.Linear(config.hidden, config.intermediate)
        self.down = nn.Linear(config.intermediate, config.hidden)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(a)))


class Layer(nn.Module):
    """One post-LN BERT layer: attention and feed-forward, each added to its input and then normalised."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden, eps=config.eps)
        self.feed_forward = FeedForward(config)
        self.output_norm = nn.LayerNorm(config.hidden, eps=config.eps)

    def forward(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        a = self.attention_norm(h + self.attention(h, keep))
        return self.output_norm(a + self.feed_forward(a))


class MiniLMEncoder(nn.Module):
    """The encoder: embeddings, LayerNorm, ``config.layers`` Layers; ``pool`` averages the real tokens.

    Args:
        config: The sizes (``models.minilm.Config``).
        tokenizer: The model's WordPiece tokenizer, kept beside the weights for ``encode``.
        vocab: Rows of the word-embedding table (30,522 for the checkpoint).
    """

    def __init__(self, config: Config, tokenizer: WordPiece, vocab: int) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.word_embeddings = nn.Embedding(vocab, config.hidden)
        self.position_embeddings = nn.Embedding(config.max_positions, config.hidden)
        self.token_type_embeddings = nn.Embedding(2, config.hidden)
        self.embedding_norm = nn.LayerNorm(config.hidden, eps=config.eps)
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden states.

        Args:
            input_ids: (B, T) integer token ids.
            attention_mask: (B, T), 1 for real tokens and 0 for padding; None: all real.

        Returns:
            (B, T, C) in the parameters' dtype.

        Raises:
            EngineError: ids not a 2-D integer tensor or out of range, too many tokens, a mismatched mask, or a mask
                row of all zeros (a sentence with no real token).
        """
        ids = _check_ids(input_ids, self.word_embeddings.num_embeddings, self.config.max_positions)
        mask = torch.ones_like(ids) if attention_mask is None else torch.as_tensor(attention_mask)
        if mask.shape != ids.shape:
            raise EngineError(f"attention_mask must have shape {tuple(ids.shape)}, got {tuple(mask.shape)}")
        empty = (~mask.bool()).all(dim=1).nonzero().flatten().tolist()
        if empty:
            # Softmax over no keys is 0/0: scaled_dot_product_attention answers NaN (or, in newer torch, zeros) for
            # the row and says nothing; the pooled vector would then be NaN or meaningless.
            raise EngineError(f"every sentence needs at least one real token; attention_mask row(s) {empty} are "
                              "all zeros")
        t = ids.shape[1]
        # word (B, T, C) + position (T, C) + token type 0 (C,): every sentence is segment A
        h = self.embedding_norm(self.word_embeddings(ids) + self.position_embeddings.weight[:t]
                                + self.token_type_embeddings.weight[0])
        keep = mask.bool()[:, None, None, :]  # (B, 1, 1, T): queries attend to real keys only
        for layer in self.layers:
            h = layer(h, keep)
        return h

    @staticmethod
    def pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The mean of each sentence's real tokens (sentence-transformers' pooling for this model).

        Args:
            hidden: (B, T, C).
            attention_mask: (B, T), 1 for real tokens.

        Returns:
            (B, C), not normalised (``embed`` normalises).
        """
        weights = torch.as_tensor(attention_mask).to(hidden.dtype)[..., None]  # (B, T, 1): padding counts zero
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-9)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings (B, C): mean-pooled last hidden states, L2-normalised, as ``MiniLM.embed``."""
        return F.normalize(self.pool(self(input_ids, attention_mask), attention_mask), dim=-1, eps=1e-12)


class SentenceClassifier(nn.Module):
    """An encoder, mean pooling, and a linear head: (B, 2) logits for two classes, or (B,) scores for regression.

    Args:
        encoder: A MiniLMEncoder (or any module with ``config.hidden``, ``pool`` and a (B, T, C) forward).
        outputs: Classes (2 for positive/negative), or 1 for a regression score.
    """

    def __init__(self, encoder: MiniLMEncoder, outputs: int) -> None:
        super().__init__()
        if outputs < 1:
            raise EngineError(f"a head needs at least one output, got {outputs}")
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden, outputs)

    def head_output(self, pooled: torch.Tensor) -> torch.Tensor:
        """The head on pooled vectors (B, C): (B, outputs), or (B,) with one output."""
        out = self.head(pooled)
        return out[:, 0] if out.shape[-1] == 1 else out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """ids and mask (B, T) -> the head's output on the pooled last hidden states."""
        return self.head_output(self.encoder.pool(self.encoder(input_ids, attention_mask), attention_mask))


HF_NAMES = {
    "word_embeddings": "embeddings.word_embeddings",
    "position_embeddings": "embeddings.position_embeddings",
    "token_type_embeddings": "embeddings.token_type_embeddings",
    "embedding_norm": "embeddings.LayerNorm",
    "attention.query": "attention.self.query",
    "attention.key": "attention.self.key",
    "attention.value": "attention.self.value",
    "attention.output": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "feed_forward.up": "intermediate.dense",
    "feed_forward.down": "output.dense",
    "output_norm": "output.LayerNorm",
}
"""Our module names (without ``layers.N.``) -> the checkpoint's (without ``encoder.layer.N.``)."""


def checkpoint_name(name: str) -> str:
    """The checkpoint's name of one of our parameters: ``layers.0.attention.query.weight`` ->
    ``encoder.layer.0.attention.self.query.weight``."""
    module, _, kind = name.rpartition(".")
    if module.startswith("layers."):
        _, index, rest = module.split(".", 2)
        return f"encoder.layer.{index}.{HF_NAMES[rest]}.{kind}"
    return f"{HF_NAMES[module]}.{kind}"


def from_numpy_model(numpy_model: object, dtype: torch.dtype = torch.float32) -> MiniLMEncoder:
    """A torch copy of a ``models.minilm.MiniLM``: its config, its tokenizer, every weight copied.

    Args:
        numpy_model: A loaded ``MiniLM`` (``.w`` arrays by checkpoint name, ``.config``, ``.tokenizer``).
        dtype: The parameters' dtype (float32 as shipped; float64 for exact comparisons).

    Raises:
        EngineError: a weight is missing or has another shape than the module expects.
    """
    weights = numpy_model.w
    vocab = weights["embeddings.word_embeddings.weight"].shape[0]
    model = MiniLMEncoder(numpy_model.config, numpy_model.tokenizer, vocab)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            source = checkpoint_name(name)
            if source not in weights:
                raise EngineError(f"all-MiniLM-L6-v2's weights have no {source} (for {name})")
            value = torch.from_numpy(weights[source].copy())  # a copy: training must not change the NumPy model
            if value.shape != parameter.shape:
                raise EngineError(f"{source} is {tuple(value.shape)}, {name} needs {tuple(parameter.shape)}")
            parameter.copy_(value.to(dtype))
    return model.to(dtype).eval()


def load(dtype: torch.dtype = torch.float32) -> MiniLMEncoder:
    """A fresh trainable copy of all-MiniLM-L6-v2 (about 90 MB), from the weights ``models.minilm`` loads.

    Each call returns a new copy (each fine-tuning run changes its own).

    Raises:
        EngineError: the minilm extra is not installed.
    """
    from workbench_engines.models.minilm import load as load_numpy

    return from_numpy_model(load_numpy(), dtype)


def encode(tokenizer: WordPiece, texts: Sequence[str],
           max_tokens: int = MAX_TOKENS) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ids and mask for a batch: [CLS] pieces [SEP], cut to max_tokens with [SEP] kept (as HF truncates).

    Args:
        tokenizer: The model's WordPiece.
        texts: B sentences.
        max_tokens: The most tokens a sentence keeps, [CLS] and [SEP] included (>= 2).

    Returns:
        (ids (B, T) int64 padded with [PAD], mask (B, T) int64, 1 for real tokens), T the longest kept.

    Raises:
        EngineError: no texts, or max_tokens < 2.
    """
    if not texts:
        raise EngineError("encode needs at least one text")
    if max_tokens < 2:
        raise EngineError(f"max_tokens must leave room for [CLS] and [SEP] (>= 2), got {max_tokens}")
    cls, sep, pad = (tokenizer.vocab[t] for t in ("[CLS]", "[SEP]", "[PAD]"))
    rows = [[cls, *tokenizer.encode(text)[: max_tokens - 2], sep] for text in texts]
    longest = max(map(len, rows))
    ids = torch.full((len(rows), longest), pad, dtype=torch.int64)
    mask = torch.zeros((len(rows), longest), dtype=torch.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def _check_ids(input_ids: torch.Tensor, vocab: int, max_positions: int) -> torch.Tensor:
    ids = torch.as_tensor(input_ids)
    if ids.ndim != 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise EngineError(f"input_ids must be an integer tensor [batch, seq], got {ids.dtype} {tuple(ids.shape)}")
    if ids.shape[1] > max_positions:
        raise EngineError(f"{ids.shape[1]} tokens exceed the model's {max_positions} positions")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise EngineError(f"token ids must be in [0, {vocab})")
    return ids.long()
