"""The payoff of Build a GPT: the learner's own GPT trained on the plays, then raced against the engine's.

:func:`train_learner` runs the learner's ``mygpt`` in the sandboxed child
(``runner train``): their model, AdamW, schedule, batches and loop, all on
one thread, streaming each step's loss (and now and then a sample from their
``generate``) back as it happens. :func:`train_engine` trains the engine's
GPT (``workbench_engines.models.gpt``, PyTorch) of the same shape with the
engine's loop and the same settings and seed; the learner's ``get_batch``
draws its windows exactly as the engine's loop does, so both see the same
batches. Both models are then measured here, by the engine, on the same
held-out windows: the learner's trained weights are loaded into the engine's
GPT (:mod:`weights`), so their validation loss is computed by code their
package cannot reach.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.exercises import wire
from workbench.exercises.buildgpt.weights import LayoutError, Shape, load_engine
from workbench.exercises.run import child_reply, protected_folders
from workbench.exercises.supervise import run_child

SHAPE = Shape(vocab_size=2048, context=64, d_model=64, n_layers=2, n_heads=4)
"""The payoff's GPT: the shipped 2,048-token tokenizer, 2 blocks of width 64, 4 heads, a 64-token context."""
CORPUS_BYTES = 1_500_000
"""The plays as the lessons' experiments encode them (engines.models.experiments.lesson_data)."""
PROMPT = "ROMEO:"
TIMEOUT_PER_STEP = 3.0
"""Seconds a step of the learner's model may take on average before the run is stopped (a step here takes
about a tenth of that): generous for a slower machine, finite for a loop that never ends."""


@dataclass(frozen=True)
class Settings:
    """One run's settings, shared by the learner's loop and the engine's."""

    steps: int = 600
    batch: int = 16
    seq_len: int = 64
    max_lr: float = 3e-3
    warmup: int = 40
    min_lr_ratio: float = 0.1
    max_norm: float = 1.0
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    seed: int = 0
    sample_every: int = 100
    sample_tokens: int = 24
    eval_windows: int = 64

    @classmethod
    def of(cls, steps: int, seed: int = 0) -> Settings:
        """The defaults for a run of steps, with a sample every 100 steps (at least five samples in a short run)."""
        return cls(steps=steps, seed=seed, sample_every=max(1, min(100, steps // 5)))

    def loop(self) -> dict[str, Any]:
        """The keyword arguments of the learner's train() (besides model, optimizer, data, rng, on_step)."""
        return {"steps": self.steps, "batch": self.batch, "seq_len": self.seq_len, "max_lr": self.max_lr,
                "warmup": self.warmup, "min_lr_ratio": self.min_lr_ratio, "max_norm": self.max_norm}


@dataclass
class Step:
    """One step of the learner's run as their loop reported it."""

    step: int
    loss: float
    lr: float
    norm: float
    seconds: float
    """Since the loop started (the child's clock)."""
    sample: str | None = None


@dataclass
class Side:
    """One contender's finished run, measured the same way for both."""

    name: str
    parameters: int
    losses: list[float]
    seconds: float
    val_loss: float
    seconds_per_step: float = field(init=False)

    def __post_init__(self) -> None:
        self.seconds_per_step = self.seconds / max(1, len(self.losses))

    @property
    def final_train_loss(self) -> float:
        """The mean of the last 20 steps' training losses (one step's is noisy)."""
        return float(np.mean(self.losses[-20:]))


@dataclass
class Payoff:
    settings: Settings
    learner: Side
    engine: Side
    samples: list[tuple[int, str]]
    """(step, text) from the learner's generate()."""
    first_loss: float
    """The learner's first step's loss: ln V ≈ 7.62 for a model that starts uniform."""


class PayoffError(Exception):
    """The learner's run could not finish (a step not solved, an error in their code, a timeout, a cancel)."""


def parse_step(line: bytes, decode: Callable[[list[int]], str]) -> Step | None:
    """A progress line from the child as a Step; None for anything not shaped like one (it is untrusted)."""
    try:
        record = json.loads(line)
        step = Step(int(record["step"]), float(record["loss"]), float(record["lr"]), float(record["norm"]),
                    float(record["seconds"]))
        if "sample" in record:
            ids = [int(t) for t in record["sample"][:512]]
            step.sample = decode([t for t in ids if 0 <= t < SHAPE.vocab_size])
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        return None
    return step


@contextmanager
def torch_threads(n: int):
    """torch on n threads for the block, as the learner's child runs on one; restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_learner(workspace: Path, settings: Settings, data, tokenizer, on_step: Callable[[Step], None],
                  should_stop: Callable[[], bool] | None = None) -> tuple[dict[str, np.ndarray], list[float], float]:
    """Train the learner's GPT in the sandbox; returns their trained parameters, losses and seconds.

    Raises:
        PayoffError: the run failed, timed out or was cancelled, or its reply was not a trained model.
    """
    shape = {"vocab_size": SHAPE.vocab_size, "context": SHAPE.context, "d_model": SHAPE.d_model,
             "n_layers": SHAPE.n_layers, "n_heads": SHAPE.n_heads}
    request = {"package": {"root": str(workspace), "module": "mygpt.train"}, "protected": protected_folders(),
               "shape": shape, "settings": settings.loop(), "seed": settings.seed,
               "hyper": {"lr": settings.max_lr, "betas": settings.betas, "eps": 1e-8,
                         "weight_decay": settings.weight_decay},
               "data": np.ascontiguousarray(data.train, dtype=np.int64), "prompt": tokenizer.encode(PROMPT),
               "sample_every": settings.sample_every, "sample_tokens": settings.sample_tokens}

    expected_step = [0]

    def progress(line: bytes) -> None:
        """Each step once, in order, and no more than the run has: anything else on the pipe is not shown."""
        step = parse_step(line, tokenizer.decode)
        if step is not None and step.step == expected_step[0] < settings.steps:
            expected_step[0] += 1
            on_step(step)

    timeout = 60 + TIMEOUT_PER_STEP * settings.steps
    child = run_child(["train", str(workspace / "mygpt" / "train.py"), "--memory-mb", "4096", "--cpu-seconds",
                       str(int(timeout) + 5), "--wall-seconds", str(int(timeout) + 10)], wire.encode(request),
                      timeout=timeout, should_stop=should_stop, on_progress=progress)
    reply, error = child_reply(child)
    if reply is None:
        raise PayoffError(error or "the run ended without a reply")
    if "import_error" in reply or "error" in reply:
        raise PayoffError(str(reply.get("import_error") or reply.get("error"))[:2000])
    try:
        params = {str(k): np.asarray(v, dtype=np.float32) for k, v in dict(reply["params"]).items()}
        losses = [float(v) for v in reply["losses"]]
        seconds = float(reply["seconds"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise PayoffError(f"the run's reply was unreadable ({type(exc).__name__}: {exc})") from None
    # The child's own clock, checked against the parent's: a patched timer must not win the race.
    if not 0 < seconds <= child.seconds:
        raise PayoffError(f"the run reported {seconds!r} s of training in a process that lived {child.seconds:.1f} s")
    return params, losses, seconds


def validation_loss(model, data, settings: Settings) -> float:
    """The engine's mean loss over the same held-out windows, for either contender."""
    import torch
    from workbench_engines.models.train import evaluate

    with torch.no_grad(), torch_threads(1):
        return evaluate(model, data, settings.seq_len, settings.eval_windows)


def train_engine(settings: Settings, data, on_step: Callable[[int, float], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> Side:
    """The engine's GPT of the same shape, trained by the engine's loop with the same settings, on one thread."""
    import torch
    from workbench_engines.models.gpt import GPT
    from workbench_engines.models.train import TrainConfig, train

    config = TrainConfig(steps=settings.steps, batch_size=settings.batch, seq_len=settings.seq_len,
                         lr=settings.max_lr, min_lr_ratio=settings.min_lr_ratio, warmup=settings.warmup,
                         weight_decay=settings.weight_decay, betas=settings.betas, grad_clip=settings.max_norm,
                         eval_every=10**9, eval_windows=settings.eval_windows, checkpoint_every=10**9,
                         seed=settings.seed)
    with torch_threads(1):
        torch.manual_seed(settings.seed)
        model = GPT(SHAPE.engine_config())
        result = train(model, data, config, should_stop=should_stop,
                       on_step=(lambda r: on_step(r.step, r.loss)) if on_step else None)
    return Side("engine GPT (PyTorch)", model.parameter_count(), result.train_losses, result.seconds,
                result.final_val_loss if result.final_val_loss is not None else validation_loss(model, data, settings))


def payoff_verdict(run: Payoff) -> str:
    """The race in words, from its own figures."""
    mine, theirs = run.learner, run.engine
    speed = theirs.seconds_per_step / max(mine.seconds_per_step, 1e-9)
    pace = (f"Your NumPy autograd took {mine.seconds_per_step * 1e3:.0f} ms a step, "
            + (f"{speed:.2f}× the engine's speed" if speed < 1 else f"{speed:.2f}× as fast as the engine")
            + f" ({theirs.seconds_per_step * 1e3:.0f} ms in PyTorch, one thread each).")
    gap = mine.val_loss - theirs.val_loss
    quality = (f"On the same held-out windows your model's loss is {mine.val_loss:.3f} against the engine's "
               f"{theirs.val_loss:.3f} ({gap:+.3f} nats per token), from {run.first_loss:.2f} at your first step "
               f"(a uniform guess over {SHAPE.vocab_size:,} tokens is ln {SHAPE.vocab_size:,} = 7.62).")
    return f"{quality} {pace}"


def run_payoff(workspace: Path, settings: Settings, *, on_learner_step: Callable[[Step], None],
               on_engine_step: Callable[[int, float], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> Payoff:
    """Both runs and the race: the learner's model first, then the engine's on the same batches."""
    from workbench_engines.models.experiments import lesson_data
    from workbench_engines.models.small_gpt import shipped_tokenizer

    tokenizer = shipped_tokenizer()
    data = lesson_data(CORPUS_BYTES)
    steps: list[Step] = []

    def seen(step: Step) -> None:
        steps.append(step)
        on_learner_step(step)

    params, losses, seconds = train_learner(workspace, settings, data, tokenizer, seen, should_stop)
    if len(losses) != settings.steps or not all(math.isfinite(v) for v in losses):
        raise PayoffError(f"your train() returned {len(losses)} losses for {settings.steps} steps"
                          + ("" if all(math.isfinite(v) for v in losses) else ", some of them not finite"))
    try:
        model = load_engine(SHAPE, params)
    except LayoutError as exc:
        raise PayoffError(f"your trained model cannot be measured: {exc}") from None
    learner = Side("your GPT (NumPy, your autograd)", sum(p.size for p in params.values()), losses, seconds,
                   validation_loss(model, data, settings))
    engine = train_engine(settings, data, on_engine_step, should_stop)
    samples = [(s.step + 1, s.sample) for s in steps if s.sample is not None]
    return Payoff(settings, learner, engine, samples, losses[0])

