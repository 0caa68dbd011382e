"""The project's own small GPTs: recipes, the shipped weights, and how to reproduce them.

Three models share one tokenizer (byte-level BPE, 2,048 tokens, trained on the
plays): ``target``, the model the decoding labs sample from; ``draft``, a
much smaller one that proposes tokens for speculative decoding; and
``draft-distilled``, the same draft taught by the target's next-token
distributions instead of the data's tokens (``compress.distill``). Their weights
ship with the package in fp16 (``engines/models/weights``); ``train_recipe``
(``workbench train``) rebuilds them from the corpus.

Example::

    >>> pretrained = load("target")
    >>> ids = torch.tensor([pretrained.tokenizer.encode("ROMEO:")])   # (B, T) int64
    >>> pretrained.model(ids).shape                                 # (B, T, V)
    torch.Size([1, 2, 2048])
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Callable

from workbench_engines.errors import EngineError
from workbench_engines.tokenizers.bpe import BPETokenizer

WEIGHTS_DIR = Path(__file__).parent / "weights"
TOKENIZER_FILE = "shakespeare-2k.wbtok"
TOKENIZER_VOCAB = 2048


@dataclass(frozen=True)
class Recipe:
    """How one shipped model was made: its shape and its training run."""

    name: str
    summary: str
    """One line for listings (``workbench train`` shows it)."""
    model: dict
    """GPTConfig fields."""
    train: dict
    """TrainConfig fields."""
    distill: dict | None = None
    """Distilled from a shipped teacher instead of trained on the data's tokens alone: {"teacher": a recipe name,
    "temperature": T, "alpha": α} for ``compress.distill.DistillationLoss``; None for the ordinary loss."""


_DRAFT_SHAPE = {"vocab_size": TOKENIZER_VOCAB, "context": 2048, "d_model": 64, "n_layers": 2, "n_heads": 2}
_DRAFT_RUN = {"steps": 600, "batch_size": 8, "seq_len": 512, "lr": 5e-3, "warmup": 50, "eval_every": 100,
              "checkpoint_every": 50}
"""The drafts' shape and training run: the data-trained and the distilled one differ only in what teaches them."""

RECIPES: dict[str, Recipe] = {
    "target": Recipe(
        "target",
        "6 layers, d_model 192, 6 query heads sharing 2 key/value heads (GQA)",
        {"vocab_size": TOKENIZER_VOCAB, "context": 2048, "d_model": 192, "n_layers": 6, "n_heads": 6, "n_kv_heads": 2},
        {"steps": 800, "batch_size": 8, "seq_len": 512, "lr": 3e-3, "warmup": 50, "eval_every": 100,
         "checkpoint_every": 50},
    ),
    "draft": Recipe(
        "draft",
        "2 layers, d_model 64, 2 heads: a twelfth of the target, for speculative decoding",
        _DRAFT_SHAPE,
        _DRAFT_RUN,
    ),
    "draft-distilled": Recipe(
        "draft-distilled",
        "the draft's shape and training run, taught by the target's distributions (KL at T = 1) instead of the data",
        _DRAFT_SHAPE,
        _DRAFT_RUN,
        {"teacher": "target", "temperature": 1.0, "alpha": 1.0},
    ),
}


def train_tokenizer(corpus_path: Path | None = None) -> BPETokenizer:
    """The shared tokenizer: BPE with the GPT-2 split pattern, learned from the corpus.

    Deterministic: the same corpus gives the same merges.

    Args:
        corpus_path: The corpus folder; None for the default corpus.

    Returns:
        A 2,048-token BPETokenizer.
    """
    from workbench_engines import corpus
    from workbench_engines.tokenizers.bpe_train import train_bpe

    source = Path(corpus_path) if corpus_path is not None else corpus.default_corpus_dir()
    return train_bpe(source, TOKENIZER_VOCAB, pattern="gpt2", name="shakespeare-2k").tokenizer


@cache
def shipped_tokenizer() -> BPETokenizer:
    """The shipped 2,048-token tokenizer, on the C encoder where it loads."""
    from workbench_engines.backends import resolve
    from workbench_engines.tokenizers.formats import load_saved

    return load_saved(WEIGHTS_DIR / TOKENIZER_FILE, resolve().name)


@dataclass
class Pretrained:
    """A model ready to run, with its tokenizer and what its training reported."""

    name: str
    model: object
    """workbench_engines.models.gpt.GPT, in eval mode, float32."""
    tokenizer: BPETokenizer
    meta: dict
    """What training reported: parameters, losses, steps, tokens, the TrainConfig."""

    @property
    def config(self):
        """The model's GPTConfig."""
        return self.model.config

    def prompt_ids(self, text: str) -> list[int]:
        """The tokens of a prompt; an empty prompt becomes the end-of-text token, where documents start."""
        return self.tokenizer.encode_ordinary(text) or [self.tokenizer.special_tokens["<|endoftext|>"]]


def weights_path(name: str, directory: Path | None = None) -> Path:
    """``<directory>/<name>.pt``, directory defaulting to the shipped weights.

    Raises:
        EngineError: name is not a recipe.
    """
    if name not in RECIPES:
        raise EngineError(f"unknown model {name!r}; choose one of {', '.join(RECIPES)}")
    return (directory or WEIGHTS_DIR) / f"{name}.pt"


def load_weights(path: Path, tokenizer: BPETokenizer, name: str) -> Pretrained:
    """Build a GPT from a weights file (fp16 on disk, float32 in memory) and pair it with ``tokenizer``.

    Args:
        path: A file ``export_weights`` wrote.
        tokenizer: Must have the model's vocab size.
        name: The recipe name, for messages.

    Returns:
        The model in eval mode, with its tokenizer and training figures.

    Raises:
        EngineError: no file, not a weights file, or a vocab size mismatch.
    """
    from workbench_engines.models.gpt import GPT, GPTConfig

    saved = read_weights(path, name)
    model = GPT(GPTConfig(**saved["config"]))
    model.load_state_dict({k: v.float() for k, v in saved["state"].items()})
    model.eval()
    if model.config.vocab_size != tokenizer.vocab_size:
        raise EngineError(f"{path}: the model has {model.config.vocab_size} tokens, the tokenizer {tokenizer.vocab_size}")
    return Pretrained(name, model, tokenizer, dict(saved.get("meta", {})))


def read_weights(path: Path, name: str) -> dict:
    """What ``export_weights`` saved at path: "config", "state" (fp16), "meta" and any extra fields.

    Raises:
        EngineError: no such file (the message names ``workbench train <name>``), or not a weights file.
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise EngineError(f"{path}: no such weights file (run `workbench train {name}`)") from exc
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise EngineError(f"{path}: not a weights file ({exc})") from exc


@cache
def load(name: str = "target") -> Pretrained:
    """A shipped model (a key of RECIPES), loaded once per process."""
    return load_weights(weights_path(name), shipped_tokenizer(), name)


def export_weights(model, path: Path, meta: dict, extra: dict | None = None) -> Path:
    """Save the weights in fp16 with the config and training figures (what ships).

    fp16 halves what the package carries; the models train in float32 and load back to it.
    Written to path.tmp and renamed, so a crash never leaves a half-written file.

    Args:
        model: A GPT.
        path: The destination ``.pt`` file.
        meta: Training figures stored beside the weights.
        extra: More fields to store (a model that is more than a GPT: llm_draft's vocabulary maps).

    Returns:
        path.
    """
    import torch

    state = {k: v.detach().half() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"config": model.config.as_dict(), "state": state, "meta": meta, **(extra or {})}, tmp)
    tmp.replace(path)
    return path


def train_recipe(
    name: str,
    out_dir: Path,
    *,
    resume: bool = True,
    steps: int | None = None,
    corpus_path: Path | None = None,
    on_step: Callable | None = None,
    should_stop: Callable[[], bool] | None = None,
    threads: int | None = None,
) -> Pretrained:
    """Train recipe ``name`` from scratch (or from out_dir's checkpoint) and export its weights there.

    The tokenizer is retrained from the same corpus (deterministic), written
    beside the weights. ``steps`` overrides the recipe's length (for a short try).

    Args:
        name: A key of RECIPES.
        out_dir: Receives the tokenizer, checkpoint and weights.
        resume: Continue from out_dir's checkpoint when there is one.
        steps: Overrides the recipe's step count.
        corpus_path: The corpus folder; None for the default corpus.
        on_step: Passed to train: called with each StepReport.
        should_stop: Passed to train: polled every step.
        threads: torch's CPU thread count, when given.

    Returns:
        The trained model with its tokenizer and training figures.

    Raises:
        EngineError: an unknown recipe, or a checkpoint saved for other settings.
        Cancelled: should_stop() returned True.
    """
    import torch

    from workbench_engines.models.data import encode_corpus
    from workbench_engines.models.gpt import GPT, GPTConfig
    from workbench_engines.models.train import TrainConfig, causal_lm_loss, evaluate, train
    from workbench_engines.tokenizers.formats import save

    recipe = RECIPES.get(name)
    if recipe is None:
        raise EngineError(f"unknown model {name!r}; choose one of {', '.join(RECIPES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    tokenizer = train_tokenizer(corpus_path)
    save(tokenizer, out_dir / TOKENIZER_FILE)
    data = encode_corpus(tokenizer, corpus_path)
    train_config = TrainConfig(**{**recipe.train, **({"steps": steps} if steps else {})})
    model_config = GPTConfig(**recipe.model)
    loss = {}
    if recipe.distill is not None:
        from workbench_engines.compress.distill import DistillationLoss

        # The shipped teacher: the model the student will draft for, whatever out_dir holds.
        teacher = load(recipe.distill["teacher"]).model
        loss = {"loss_fn": DistillationLoss(teacher, recipe.distill["temperature"], recipe.distill["alpha"]),
                "eval_loss_fn": causal_lm_loss}
    torch.manual_seed(train_config.seed)
    model = GPT(model_config)
    started = time.perf_counter()
    result = train(model, data, train_config, model_config=model_config.as_dict(),
                   checkpoint=out_dir / f"{name}.ckpt", resume=resume, on_step=on_step, should_stop=should_stop,
                   **loss)
    val_loss = result.final_val_loss
    if val_loss is None:
        val_loss = evaluate(model, data, train_config.seq_len, train_config.eval_windows)
    meta = {
        "parameters": model.parameter_count(),
        "val_loss": val_loss,
        "train_loss": sum(result.train_losses[-20:]) / max(1, len(result.train_losses[-20:])),
        "steps": result.steps,
        "train_tokens": len(data.train),
        "val_tokens": len(data.val),
        "seconds_this_run": time.perf_counter() - started,
        "train_config": asdict(train_config),
        "val_curve": result.val_losses,
        "distill": recipe.distill,
    }
    export_weights(model, weights_path(name, out_dir), meta)
    return Pretrained(name, model, tokenizer, meta)
