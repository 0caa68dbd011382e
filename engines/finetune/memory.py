"""What training a model costs in memory, from its shapes alone: full fine-tuning against LoRA.

Training state has three parts: the weights, a gradient for every trainable
weight, and the optimizer's state for every trainable weight. For Adam with
mixed precision Rajbhandari et al. (2020, ZeRO, section 3.1) count, per
parameter, 2 bytes of fp16 weights, 2 of fp16 gradients and K = 12 of
optimizer state (an fp32 master copy of the weight and Adam's two fp32
moments): 16 bytes. Plain fp32 training comes to the same 16 (4 + 4 + 8).
LoRA (Hu et al., 2021) keeps the base frozen: it pays the weights' bytes
once, and gradients and optimizer state only for the adapter's r·(in + out)
numbers per adapted matrix.

Not counted here: activations, which grow with batch and sequence length and
are needed by both regimes (LoRA still back-propagates through the frozen
layers), and temporary buffers. So these are lower bounds on what a run
needs, and exact for what the optimizer and parameters hold.

Example::

    >>> llama = llama_2_7b()
    >>> llama.parameters                                   # Touvron et al. (2023)'s "7B"
    6738415616
    >>> full_finetune(llama, "mixed").total / 2**30        # GiB: 16 bytes × 6.74e9
    100.41...
    >>> lora_trainable(llama, ("q_proj", "v_proj"), r=8)   # Hu et al.'s setting: W_q, W_v
    4194304
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from workbench_engines.errors import EngineError

GIB = 2**30

PRECISIONS = {
    # name: (bytes per weight held, per gradient, per parameter of optimizer state), trainable parameters.
    "fp32": (4, 4, 8),
    "mixed": (2, 2, 12),
}
"""Bytes per trainable parameter with AdamW. fp32: weight, gradient, two moments. mixed (Rajbhandari et al., 2020,
section 3.1): fp16 weight and gradient, and K = 12 bytes of fp32 master weight and two moments."""

FROZEN_BYTES = {"fp32": 4, "mixed": 2}
"""Bytes per frozen (untrained) parameter: only the weight, in the precision the forward pass uses."""


@dataclass(frozen=True)
class ModelShape:
    """A transformer's parameter count and the shapes of the linear layers every block repeats.

    Attributes are what the formulae need; ``parameters`` adds them up.
    """

    name: str
    n_layers: int
    linears: dict[str, tuple[int, int]]
    """Per block: a linear layer's module-name suffix -> its weight's (out, in)."""
    other: int
    """Every parameter outside the blocks' linear weights: embeddings, norms, biases, output head, pooler."""
    target_presets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Named sets of LoRA targets for this model: "query, value", "attention", "all linear"."""
    preset_labels: dict[str, str] = field(default_factory=dict)
    """What a preset really adapts in this model, where its name says less (the small GPT's fused key/value)."""

    @property
    def parameters(self) -> int:
        """All parameters: n_layers · Σ out·in + other."""
        return self.n_layers * sum(o * i for o, i in self.linears.values()) + self.other

    def targets(self, preset: str) -> tuple[str, ...]:
        """The module-name suffixes of a named target set.

        Raises:
            EngineError: an unknown preset.
        """
        if preset not in self.target_presets:
            raise EngineError(f"{self.name} has no target set {preset!r}; choose one of "
                              f"{', '.join(self.target_presets)}")
        return self.target_presets[preset]

    def label(self, preset: str) -> str:
        """A target set's name as this model reads it: "query, value" is "query, key/value" on the small GPT."""
        return self.preset_labels.get(preset, preset)


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes a training regime holds for parameters, gradients and optimizer state (activations excluded)."""

    regime: str
    parameters: int
    """Every parameter the model holds, adapter included."""
    trainable: int
    weights: int
    """Bytes of weights."""
    gradients: int
    """Bytes of gradients: trainable parameters only."""
    optimizer: int
    """Bytes of optimizer state (with mixed precision, the fp32 master weights too)."""

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer

    @property
    def total_gib(self) -> float:
        return self.total / GIB


def _check_precision(precision: str) -> tuple[int, int, int]:
    if precision not in PRECISIONS:
        raise EngineError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


def full_finetune(shape: ModelShape, precision: str = "mixed") -> TrainingMemory:
    """Every parameter trained with AdamW: 16 bytes each in either precision (Rajbhandari et al., 2020, 3.1).

    Args:
        shape: The model.
        precision: "fp32" or "mixed" (fp16 weights and gradients, fp32 master weights and moments).

    Raises:
        EngineError: an unknown precision.
    """
    w, g, o = _check_precision(precision)
    n = shape.parameters
    return TrainingMemory(f"full ({precision})", n, n, w * n, g * n, o * n)


def _targeted(shape: ModelShape, targets: Sequence[str]) -> list[str]:
    """The shape's linear layers whose names end with one of targets at a dot boundary, as apply_lora matches.

    Raises:
        EngineError: none does.
    """
    matched = [name for name in shape.linears if any(name == t or name.endswith("." + t) for t in targets)]
    if not matched:
        raise EngineError(f"no linear layer of {shape.name} matches {', '.join(targets) or 'no targets'}; "
                          f"its layers are {', '.join(shape.linears)}")
    return matched


def max_rank(shape: ModelShape, targets: Sequence[str]) -> int:
    """The largest rank every targeted layer allows: min(in, out) over them (B·A cannot exceed it).

    Raises:
        EngineError: no target names a linear layer of the model.
    """
    return min(min(shape.linears[name]) for name in _targeted(shape, targets))


def lora_trainable(shape: ModelShape, targets: Sequence[str], r: int) -> int:
    """LoRA's trainable parameters: n_layers · Σ over adapted matrices of r·(in + out) (A is r×in, B out×r).

    Args:
        shape: The model.
        targets: Module-name suffixes, matched as ``lora.apply_lora`` matches them.
        r: The rank.

    Raises:
        EngineError: no target names a linear layer of the model, or r is not in 1..min(in, out) of one.
    """
    matched = _targeted(shape, targets)
    for name in matched:
        out_features, in_features = shape.linears[name]
        if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= min(out_features, in_features):
            raise EngineError(f"LoRA rank must lie in 1..{min(out_features, in_features)} for {name} "
                              f"({out_features}×{in_features}), got {r!r}: B·A cannot have rank above min(in, out)")
    return shape.n_layers * sum(r * sum(shape.linears[name]) for name in matched)


def lora_finetune(shape: ModelShape, targets: Sequence[str], r: int, precision: str = "mixed") -> TrainingMemory:
    """The base frozen (its weights only) plus an adapter trained with AdamW (weights, gradients, state).

    Args:
        shape: The model.
        targets: Module-name suffixes to adapt.
        r: The rank.
        precision: "fp32" or "mixed"; the frozen base is held in that precision's forward dtype.

    Raises:
        EngineError: see ``lora_trainable``; an unknown precision.
    """
    w, g, o = _check_precision(precision)
    trainable = lora_trainable(shape, targets, r)
    frozen = shape.parameters
    return TrainingMemory(f"LoRA r={r} ({precision})", frozen + trainable, trainable,
                          FROZEN_BYTES[precision] * frozen + w * trainable, g * trainable, o * trainable)


def llama_2_7b() -> ModelShape:
    """Llama-2-7B's shapes (Touvron et al., 2023): 32 layers, d 4096, 32 heads, SwiGLU 11008, vocab 32000.

    No biases; an RMSNorm weight (d) before attention and before the MLP in
    every block and one at the end; input embedding and output head untied.
    Names are the Hugging Face module names that LoRA configs target.
    """
    d, ffn, vocab, layers = 4096, 11008, 32000, 32
    linears = {"self_attn.q_proj": (d, d), "self_attn.k_proj": (d, d), "self_attn.v_proj": (d, d),
               "self_attn.o_proj": (d, d), "mlp.gate_proj": (ffn, d), "mlp.up_proj": (ffn, d),
               "mlp.down_proj": (d, ffn)}
    other = 2 * vocab * d + layers * 2 * d + d
    presets = {"query, value": ("q_proj", "v_proj"), "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
               "all linear": tuple(name.split(".")[1] for name in linears)}
    return ModelShape("Llama-2-7B", layers, linears, other, presets)


def minilm_l6() -> ModelShape:
    """all-MiniLM-L6-v2's shapes: 6 BERT layers, d 384, feed-forward 1536, 30,522 tokens, 512 positions.

    Counted as the model ships (Hugging Face BertModel): word, position and
    token-type embeddings with their LayerNorm; per block biased Q, K, V,
    output, intermediate and output dense layers and two LayerNorms; and the
    pooler (a 384×384 dense layer with bias).
    """
    d, ffn, vocab, positions, layers = 384, 1536, 30522, 512, 6
    linears = {"attention.self.query": (d, d), "attention.self.key": (d, d), "attention.self.value": (d, d),
               "attention.output.dense": (d, d), "intermediate.dense": (ffn, d), "output.dense": (d, ffn)}
    biases = 5 * d + ffn
    norms = 2 * 2 * d
    other = (vocab + positions + 2) * d + 2 * d + layers * (biases + norms) + d * d + d
    presets = {"query, value": ("query", "value"), "attention": ("query", "key", "value", "attention.output.dense"),
               "all linear": tuple(linears)}
    return ModelShape("all-MiniLM-L6-v2", layers, linears, other, presets)


def small_gpt(name: str = "target") -> ModelShape:
    """A shipped small GPT's shapes, from its recipe (``models.small_gpt.RECIPES``).

    Per block: the query projection, the fused key/value projection (GQA:
    2·KVH·HS outputs), the output projection and SwiGLU's gate, up and down;
    two RMSNorm weights. Outside: the embedding, tied to the output head, and
    the final RMSNorm.

    Raises:
        EngineError: name is not a recipe.
    """
    from workbench_engines.models.gpt import GPTConfig
    from workbench_engines.models.small_gpt import RECIPES

    if name not in RECIPES:
        raise EngineError(f"unknown model {name!r}; choose one of {', '.join(RECIPES)}")
    c = GPTConfig(**RECIPES[name].model)
    d, hs = c.d_model, c.head_dim
    linears = {"attn.q": (c.n_heads * hs, d), "attn.kv": (2 * c.kv_heads * hs, d), "attn.out": (d, d),
               "ffn.gate": (c.hidden, d), "ffn.up": (c.hidden, d), "ffn.down": (d, c.hidden)}
    other = c.vocab_size * d + c.n_layers * 2 * d + d
    presets = {"query, value": ("attn.q", "attn.kv"), "attention": ("attn.q", "attn.kv", "attn.out"),
               "all linear": tuple(linears)}
    # attn.kv computes K and V with one matrix: adapting it adapts W_k as well as W_v.
    labels = {"query, value": "query, key/value"}
    return ModelShape(f"small GPT ({name})", c.n_layers, linears, other, presets, labels)


MODELS = {"Llama-2-7B": llama_2_7b, "MiniLM-L6": minilm_l6, "small GPT": small_gpt}
"""The shapes the lessons account for, by the name the lab and probes use."""


def model_shape(name: str) -> ModelShape:
    """One of MODELS by name.

    Raises:
        EngineError: an unknown name.
    """
    if name not in MODELS:
        raise EngineError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]()


def format_bytes(n: int) -> str:
    """Bytes in the largest binary unit that keeps the number at or above 1 (KiB, MiB, GiB), 3 significant digits."""
    value, unit = float(n), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{n} B" if unit == "B" else f"{value:.3g} {unit}"
