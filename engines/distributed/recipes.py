"""A shipped model's recipe trained data-parallel across local processes (``workbench train NAME --procs N``).

The same recipe, tokenizer, corpus and weights file as
``models.small_gpt.train_recipe``; the difference is the step: each of the N
ranks takes its own micro-batch of the recipe's batch_size, so a step sees N
times the windows (the global batch is N·batch_size), and the gradients are
all-reduced (``ddp``). The run is arithmetically the single-process recipe
with ``accumulation = N`` (the same windows in the same order), so that is the
TrainConfig its checkpoint records: a checkpoint resumes under the same N and
is refused, with the settings named, under another.

Rank 0 writes the checkpoint (``train.save_checkpoint``'s format) every
checkpoint_every steps, at the end, and when a stop is requested; the parent
exports the weights from rank 0's state_dict.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from workbench_engines.errors import Cancelled, EngineError


def train_recipe_parallel(
    name: str,
    out_dir: Path,
    *,
    procs: int,
    resume: bool = True,
    steps: int | None = None,
    corpus_path: Path | None = None,
    on_step: Callable | None = None,
    stop: threading.Event | None = None,
    cancel: threading.Event | None = None,
):
    """Train recipe ``name`` on ``procs`` local ranks and export its weights to out_dir, as train_recipe does.

    Args:
        name: A key of small_gpt.RECIPES.
        out_dir: Receives the tokenizer, the checkpoint (``<name>.ckpt``) and the weights.
        procs: N ≥ 2 ranks.
        resume: Continue from out_dir's checkpoint when there is one (saved by a run on as many ranks).
        steps: Overrides the recipe's step count.
        corpus_path: The corpus folder; None for the default corpus.
        on_step: Called with each ddp.ParallelStep (it has train.StepReport's fields).
        stop: When set, the ranks finish their step, rank 0 saves the checkpoint, and Cancelled is raised.
        cancel: When set, the ranks are terminated at once (the last periodic checkpoint stays) and Cancelled
            is raised.

    Returns:
        small_gpt.Pretrained with the trained model, its tokenizer and training figures (with "procs").

    Raises:
        EngineError: an unknown recipe, procs < 2, a checkpoint saved under other settings, or a rank's error.
        Cancelled: ``stop`` or ``cancel`` was set.
    """
    from workbench_engines.distributed.ddp import data_parallel_run, equivalent_config
    from workbench_engines.models import small_gpt
    from workbench_engines.models.data import encode_corpus
    from workbench_engines.models.gpt import GPT, GPTConfig
    from workbench_engines.models.train import TrainConfig
    from workbench_engines.tokenizers.formats import save

    recipe = small_gpt.RECIPES.get(name)
    if recipe is None:
        raise EngineError(f"unknown model {name!r}; choose one of {', '.join(small_gpt.RECIPES)}")
    if procs < 2:
        raise EngineError(f"train_recipe_parallel needs at least 2 processes, got {procs} (use train_recipe)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = small_gpt.train_tokenizer(corpus_path)
    save(tokenizer, out_dir / small_gpt.TOKENIZER_FILE)
    data = encode_corpus(tokenizer, corpus_path)
    train_config = TrainConfig(**{**recipe.train, **({"steps": steps} if steps else {})})
    model_config = GPTConfig(**recipe.model)
    started = time.perf_counter()
    report = data_parallel_run(model_config, train_config, data, procs=procs, cancel=cancel, stop=stop,
                               on_step=on_step, checkpoint=out_dir / f"{name}.ckpt", resume=resume,
                               return_weights=True, distill=recipe.distill)
    last = report.steps[-1].step if report.steps else report.resumed_from
    if report.stopped:
        raise Cancelled(f"training stopped at step {last} of {train_config.steps}")
    model = GPT(model_config)
    model.load_state_dict(report.state_dict)
    model.eval()
    val_loss = report.val_losses[-1][1]
    losses = report.losses[-20:]
    meta = {
        "parameters": model.parameter_count(),
        "val_loss": val_loss,
        "train_loss": sum(losses) / max(1, len(losses)),
        "steps": last,
        "train_tokens": len(data.train),
        "val_tokens": len(data.val),
        "seconds_this_run": time.perf_counter() - started,
        "train_config": asdict(equivalent_config(train_config, procs)),
        "val_curve": report.val_losses,
        "distill": recipe.distill,
        "procs": procs,
    }
    small_gpt.export_weights(model, small_gpt.weights_path(name, out_dir), meta)
    return small_gpt.Pretrained(name, model, tokenizer, meta)
