"""Probes: values an engine computes at run time, so quiz answers never go stale.

A probe question names a probe id and its parameters; the answer is whatever
the engine returns for them today.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from workbench.params import Param, validate_params


@dataclass(frozen=True)
class ProbeSpec:
    id: str
    description: str
    params: dict[str, Param]
    compute: Callable[..., float]


def _probs(logits: list[float], temperature: float):
    import numpy as np

    from workbench_engines.softmax import with_temperature

    return with_temperature(np.asarray(logits, dtype=np.float64), temperature)


def _top_probability(logits: list[float], temperature: float) -> float:
    return float(_probs(logits, temperature).max())


def _probability_of(logits: list[float], index: int, temperature: float) -> float:
    if index >= len(logits):
        raise ValueError(f"index {index} is outside the {len(logits)} logits")
    return float(_probs(logits, temperature)[index])


def _entropy_bits(logits: list[float], temperature: float) -> float:
    from workbench_engines.softmax import entropy_bits

    return float(entropy_bits(_probs(logits, temperature)))


def _logsumexp(values: list[float]) -> float:
    import numpy as np

    from workbench_engines.softmax import logsumexp

    return float(logsumexp(np.asarray(values, dtype=np.float64)))


def _utf8_bytes(text: str, form: str) -> float:
    import unicodedata

    return float(len(unicodedata.normalize(form, text).encode("utf-8", "surrogatepass")))


def _code_points(text: str, form: str) -> float:
    import unicodedata

    return float(len(unicodedata.normalize(form, text)))


def _token_count(tokenizer: str, text: str) -> float:
    from workbench_engines.tokenizers.peers import VIEWS

    return float(len(VIEWS[tokenizer]().tokens(text)))


def _pieces(text: str, pattern: str) -> float:
    from workbench_engines.tokenizers.pretokenize import split

    return float(len(split(text, pattern)))


def _merge_count(text: str, merge: int, pattern: str) -> float:
    from workbench_engines.tokenizers.bpe_train import count_pieces, train_reference

    merges = train_reference(count_pieces(text, pattern), merge)
    if len(merges) < merge:
        raise ValueError(f"the text allows only {len(merges)} merges")
    return float(merges[merge - 1].count)


def _bytes_per_token(vocab_size: int, corpus_bytes: int) -> float:
    from workbench_engines import corpus
    from workbench_engines.nativelib import native_status
    from workbench_engines.tokenizers.bpe_train import train_bpe

    text = corpus.read_text(limit=corpus_bytes + 200_000)
    train, held = text[:corpus_bytes], text[corpus_bytes:]
    backend = "native" if native_status().loaded else "reference"
    tokenizer = train_bpe(train, vocab_size, pattern="gpt2", special_tokens=(), backend=backend).tokenizer
    return len(held.encode("utf-8")) / len(tokenizer.encode(held))


def _attention_weight(text: str, layer: int, head: int, query: int, key: int) -> float:
    from workbench_engines.models.minilm import load

    model = load()
    ids, mask, tokens = model.encode_texts([text])
    if max(query, key) >= len(tokens[0]):
        raise ValueError(f"the text has {len(tokens[0])} tokens ({' '.join(tokens[0])})")
    return float(model.forward(ids, mask, output_attentions=True).attentions[layer][0, head, query, key])


def _one_query_weight(query: list[float], keys: list[float], index: int) -> float:
    import numpy as np

    from workbench_engines.attention import attention

    d = len(query)
    if len(keys) % d:
        raise ValueError(f"keys must hold whole rows of {d} numbers")
    k = np.asarray(keys, dtype=np.float64).reshape(-1, d)
    if index >= len(k):
        raise ValueError(f"index {index} is outside the {len(k)} keys")
    # Attention with one-hot values returns the weights themselves.
    out = attention(np.asarray(query, dtype=np.float64)[None, None, None], k[None, None], np.eye(len(k))[None, None])
    return float(out[0, 0, 0, index])


def _kv_cache_mib(layers: int, kv_heads: int, head_dim: int, tokens: int, bytes_per_value: int) -> float:
    # Keys and values: two tensors per layer.
    return 2 * layers * kv_heads * head_dim * tokens * bytes_per_value / 2**20


def _model_kv_gib(model: str, tokens: int, dtype: str, batch: int) -> float:
    from workbench_engines.kvcache import REAL_MODELS, kv_bytes

    m = REAL_MODELS[model]
    return kv_bytes(tokens, m.layers, m.kv_heads, m.head_dim, dtype, batch) / 2**30


def _paged_empty_slots(tokens: int, block_size: int) -> float:
    from workbench_engines.kvcache import paged_slots

    return float(paged_slots(tokens, block_size)[1])


def _kept_tokens(logits: list[float], method: str, value: float, temperature: float) -> float:
    import numpy as np

    from workbench_engines.sampling.settings import Sampler

    knob = {"top_k": {"top_k": int(value)}, "top_p": {"top_p": value}, "min_p": {"min_p": value}}[method]
    sampler = Sampler(temperature=temperature, **knob)
    return float(np.isfinite(sampler.filtered(np.asarray(logits, dtype=np.float32))).sum())


def _expected_tokens(alpha: float, k: int) -> float:
    from workbench_engines.generation.speculative import expected_tokens_per_round

    return expected_tokens_per_round(alpha, k)


def _next_token_probability(prompt: str, token: str) -> float:
    from workbench.typed import unescape
    from workbench_engines.generation import next_token_logits
    from workbench_engines.models import small_gpt
    from workbench_engines.sampling.reference import softmax

    pretrained = small_gpt.load("target")
    ids = pretrained.tokenizer.encode_ordinary(unescape(prompt))
    pieces = pretrained.tokenizer.encode_ordinary(token)
    if len(pieces) != 1:
        raise ValueError(f"{token!r} is {len(pieces)} tokens for this model, not one")
    return float(softmax(next_token_logits(pretrained.model, ids))[pieces[0]])


def _first_allowed(pattern: str) -> float:
    from workbench_engines.models import small_gpt
    from workbench_engines.sampling.constrained import TokenAutomaton, token_strings

    tokenizer = small_gpt.shipped_tokenizer()
    automaton = TokenAutomaton(pattern, token_strings(tokenizer), tokenizer.special_tokens.get("<|endoftext|>"))
    return float(len(automaton.allowed(automaton.initial)))


def _norm_value(vector: list[float], index: int, kind: str) -> float:
    import torch

    from workbench_engines.models.layers import LayerNorm, RMSNorm

    if index >= len(vector):
        raise ValueError(f"index {index} is outside the {len(vector)} values")
    norm = LayerNorm(len(vector)) if kind == "layer" else RMSNorm(len(vector), eps=1e-6)
    with torch.no_grad():
        return float(norm.double()(torch.tensor([vector], dtype=torch.float64))[0, index])


def _objective_targets(objective: str, length: int, prefix: int) -> float:
    import torch

    from workbench_engines.models.objectives import mask_tokens, prefix_targets

    if objective == "causal":
        return float(length)
    if objective == "prefix":
        if not 1 <= prefix <= length:
            raise ValueError(f"prefix must be between 1 and {length}")
        following = torch.zeros((1, length), dtype=torch.long)
        return float((prefix_targets(following, torch.tensor([prefix])) != -100).sum())
    # Masked LM picks positions at random: the expected count, from a large sample of windows.
    _, targets = mask_tokens(torch.zeros((2000, length), dtype=torch.long), 1, 2,
                             generator=torch.Generator().manual_seed(0))
    return float((targets != -100).sum()) / 2000


def _learning_rate(step: int, steps: int, lr: float, warmup: int, min_lr_ratio: float) -> float:
    from workbench_engines.models.train import TrainConfig, learning_rate

    return learning_rate(step, TrainConfig(steps=steps, lr=lr, warmup=warmup, min_lr_ratio=min_lr_ratio))


def _power_law_prediction(sizes: list[float], losses: list[float], at: float) -> float:
    from workbench_engines.models.experiments import fit_power_law

    a, b = fit_power_law(sizes, losses)
    return a * at ** -b


def _gelu(x: float) -> float:
    import torch

    from workbench_engines.models.layers import gelu

    return float(gelu(torch.tensor(x, dtype=torch.float64)))


def _moe_active(d_model: int, hidden: int, experts: int, top_k: int, layers: int) -> float:
    from workbench_engines.moe.layer import MoELayer

    if top_k > experts:
        raise ValueError(f"top_k {top_k} exceeds {experts} experts")
    layer = MoELayer(d_model, hidden, experts, top_k)
    per_expert = sum(p.numel() for p in layer.experts[0].parameters())
    return float(layers * (top_k * per_expert + layer.router.weight.numel()))


def _sinusoidal_value(position: int, index: int, dim: int) -> float:
    from workbench_engines.positional import sinusoidal

    if index >= dim:
        raise ValueError(f"index {index} is outside dimension {dim}")
    return float(sinusoidal(position + 1, dim)[position, index])


def _rope_angle(position: float, pair: int, dim: int, base: float, scaling: str, factor: float) -> float:
    from workbench_engines.positional import rope_frequencies

    if pair >= dim // 2:
        raise ValueError(f"pair {pair} is outside the {dim // 2} rotated pairs")
    theta, divisor = rope_frequencies(dim, base, scaling=None if scaling == "none" else scaling, factor=factor)
    return float(position / divisor * theta[pair])


def _alibi_slope(heads: int, head: int) -> float:
    from workbench_engines.positional import alibi_slopes

    if head >= heads:
        raise ValueError(f"head {head} is outside the {heads} heads")
    return float(alibi_slopes(heads)[head])


def _score_matrix_mib(seq: int, heads: int, bytes_per_score: int) -> float:
    return seq * seq * heads * bytes_per_score / 2**20


_LOGITS = Param("list[float]", help="the logits", min_len=1)
_TEXT = Param("str", help="the text")
_FORM = Param("str", default="NFC", choices=("NFC", "NFD", "NFKC", "NFKD"), help="Unicode normalisation form")
_TOKENIZER = Param("str", default="cl100k", choices=("cl100k", "shakespeare-bpe", "wordpiece", "unigram"),
                   help="which tokenizer counts")
_TEMPERATURE = Param("float", default=1.0, min=1e-3, help="softmax temperature (> 0)")

PROBES: dict[str, ProbeSpec] = {
    spec.id: spec
    for spec in [
        ProbeSpec(
            "softmax.top_probability",
            "Largest probability of softmax(logits / temperature)",
            {"logits": _LOGITS, "temperature": _TEMPERATURE},
            _top_probability,
        ),
        ProbeSpec(
            "softmax.probability_of",
            "Probability of one index under softmax(logits / temperature)",
            {"logits": _LOGITS, "index": Param("int", min=0), "temperature": _TEMPERATURE},
            _probability_of,
        ),
        ProbeSpec(
            "softmax.entropy_bits",
            "Entropy in bits of softmax(logits / temperature)",
            {"logits": _LOGITS, "temperature": _TEMPERATURE},
            _entropy_bits,
        ),
        ProbeSpec(
            "softmax.logsumexp",
            "log(sum(exp(values))), computed stably",
            {"values": _LOGITS},
            _logsumexp,
        ),
        ProbeSpec("text.utf8_bytes", "UTF-8 bytes of text after normalisation", {"text": _TEXT, "form": _FORM}, _utf8_bytes),
        ProbeSpec("text.code_points", "Code points of text after normalisation", {"text": _TEXT, "form": _FORM}, _code_points),
        ProbeSpec("tokenizer.count", "Tokens a tokenizer makes of text", {"tokenizer": _TOKENIZER, "text": _TEXT}, _token_count),
        ProbeSpec(
            "pretokenize.pieces",
            "Pieces a split pattern makes of text",
            {"text": _TEXT, "pattern": Param("str", default="cl100k", choices=("gpt2", "cl100k"))},
            _pieces,
        ),
        ProbeSpec(
            "bpe.merge_count",
            "How often the pair of BPE merge number `merge` occurred when it was merged",
            {"text": _TEXT, "merge": Param("int", default=1, min=1, max=5000),
             "pattern": Param("str", default="gpt2", choices=("gpt2", "cl100k"))},
            _merge_count,
        ),
        ProbeSpec(
            "bpe.bytes_per_token",
            "Bytes per token on held-out Shakespeare for BPE of a vocabulary size",
            {"vocab_size": Param("int", min=257, max=50000), "corpus_bytes": Param("int", default=1_000_000, min=10_000, max=4_000_000)},
            _bytes_per_token,
        ),
        ProbeSpec(
            "attention.weight",
            "all-MiniLM-L6-v2's attention weight from token `query` to token `key` in a layer and head",
            {"text": _TEXT, "layer": Param("int", min=0, max=5), "head": Param("int", min=0, max=11),
             "query": Param("int", min=0), "key": Param("int", min=0)},
            _attention_weight,
        ),
        ProbeSpec(
            "attention.one_query_weight",
            "Softmax weight of key `index` for one query (scaled by 1/sqrt(d))",
            {"query": Param("list[float]", min_len=1), "keys": Param("list[float]", min_len=1),
             "index": Param("int", min=0)},
            _one_query_weight,
        ),
        ProbeSpec(
            "positional.sinusoidal_value",
            "Entry `index` of the sinusoidal encoding of `position` (dimension `dim`)",
            {"position": Param("int", min=0), "index": Param("int", min=0), "dim": Param("int", default=64, min=2)},
            _sinusoidal_value,
        ),
        ProbeSpec(
            "positional.rope_angle",
            "RoPE's rotation angle (radians) of pair `pair` at `position`",
            {"position": Param("float", min=0), "pair": Param("int", min=0), "dim": Param("int", default=64, min=2),
             "base": Param("float", default=10000.0, min=1.0),
             "scaling": Param("str", default="none", choices=("none", "linear", "ntk")),
             "factor": Param("float", default=1.0, min=0.01)},
            _rope_angle,
        ),
        ProbeSpec(
            "positional.alibi_slope",
            "ALiBi's slope for head `head` (0-based) of `heads`",
            {"heads": Param("int", min=1), "head": Param("int", min=0)},
            _alibi_slope,
        ),
        ProbeSpec(
            "attention.kv_cache_mib",
            "MiB of a KV cache: 2 × layers × kv_heads × head_dim × tokens × bytes per value",
            {"layers": Param("int", min=1), "kv_heads": Param("int", min=1), "head_dim": Param("int", min=1),
             "tokens": Param("int", min=1), "bytes_per_value": Param("int", default=2, min=1)},
            _kv_cache_mib,
        ),
        ProbeSpec(
            "kv.model_gib",
            "GiB of KV cache a published model needs for `tokens` tokens at a dtype and batch",
            {"model": Param("str", choices=("GPT-2 small", "GPT-2 XL", "Llama-2-7B", "Llama-2-70B", "Llama-3-8B",
                                            "Mistral-7B", "Qwen2.5-0.5B")),
             "tokens": Param("int", min=1), "dtype": Param("str", default="fp16", choices=("fp32", "fp16", "fp8", "int4")),
             "batch": Param("int", default=1, min=1)},
            _model_kv_gib,
        ),
        ProbeSpec(
            "kv.paged_empty_slots",
            "Token slots a paged cache leaves empty for one sequence (the end of its last block)",
            {"tokens": Param("int", min=0), "block_size": Param("int", min=1)},
            _paged_empty_slots,
        ),
        ProbeSpec(
            "sampling.kept",
            "How many tokens a top_k / top_p / min_p filter keeps of these logits",
            {"logits": _LOGITS, "method": Param("str", choices=("top_k", "top_p", "min_p")),
             "value": Param("float", min=0.0), "temperature": Param("float", default=1.0, min=0.01)},
            _kept_tokens,
        ),
        ProbeSpec(
            "speculative.expected_tokens",
            "Tokens per target pass when each of k draft tokens is accepted with probability alpha",
            {"alpha": Param("float", min=0.0, max=1.0), "k": Param("int", min=0, max=64)},
            _expected_tokens,
        ),
        ProbeSpec(
            "decode.next_token_probability",
            "The small GPT's probability that `token` (one token) comes right after `prompt`",
            {"prompt": _TEXT, "token": Param("str")},
            _next_token_probability,
        ),
        ProbeSpec(
            "constrained.first_allowed",
            "How many of the small GPT's 2,048 tokens may start a match of the regex",
            {"pattern": Param("str")},
            _first_allowed,
        ),
        ProbeSpec(
            "blocks.rmsnorm",
            "Entry `index` of RMSNorm(vector) with unit gain",
            {"vector": Param("list[float]", min_len=1), "index": Param("int", default=0, min=0)},
            lambda vector, index: _norm_value(vector, index, "rms"),
        ),
        ProbeSpec(
            "blocks.layernorm",
            "Entry `index` of LayerNorm(vector) with unit gain and zero bias",
            {"vector": Param("list[float]", min_len=2), "index": Param("int", default=0, min=0)},
            lambda vector, index: _norm_value(vector, index, "layer"),
        ),
        ProbeSpec("blocks.gelu", "GELU(x) = x·Φ(x)", {"x": Param("float")}, _gelu),
        ProbeSpec(
            "training.learning_rate",
            "The training loop's learning rate at `step`: linear warm-up, then a cosine down to lr × min_lr_ratio",
            {"step": Param("int", min=0), "steps": Param("int", min=1), "lr": Param("float", min=0.0),
             "warmup": Param("int", default=0, min=0), "min_lr_ratio": Param("float", default=0.1, min=0.0, max=1.0)},
            _learning_rate,
        ),
        ProbeSpec(
            "training.power_law_prediction",
            "Loss at size `at` predicted by the fit L = a·N^(−b) to (sizes, losses)",
            {"sizes": Param("list[float]", min_len=2), "losses": Param("list[float]", min_len=2),
             "at": Param("float", min=1.0)},
            _power_law_prediction,
        ),
        ProbeSpec(
            "objectives.targets",
            "Positions of one window that are training targets under an objective (masked: the mean)",
            {"objective": Param("str", choices=("causal", "masked", "prefix")), "length": Param("int", min=1, max=4096),
             "prefix": Param("int", default=1, min=1)},
            _objective_targets,
        ),
        ProbeSpec(
            "moe.active_parameters",
            "Parameters one token uses in MoE SwiGLU layers: top_k experts and the router, per layer",
            {"d_model": Param("int", min=1), "hidden": Param("int", min=1), "experts": Param("int", min=1),
             "top_k": Param("int", default=1, min=1), "layers": Param("int", default=1, min=1)},
            _moe_active,
        ),
        ProbeSpec(
            "attention.score_matrix_mib",
            "MiB that one batch's lq = lk = seq score matrices take across heads",
            {"seq": Param("int", min=1), "heads": Param("int", min=1), "bytes_per_score": Param("int", default=4, min=1)},
            _score_matrix_mib,
        ),
    ]
}


def compute_probe(probe_id: str, params: dict[str, Any]) -> float:
    """Validate params for probe_id and return the engine's answer.

    Raises KeyError for an unknown probe and ParamError for bad parameters.
    """
    if probe_id not in PROBES:
        raise KeyError(f"unknown probe {probe_id!r}; known: {', '.join(sorted(PROBES))}")
    spec = PROBES[probe_id]
    return spec.compute(**validate_params(spec.params, params, f"probe {probe_id}"))
