"""``workbench train``: rebuild a shipped model from the corpus, with a progress bar and a live loss plot.

The first Ctrl+C stops after the current step and saves a checkpoint (a
second one stops at once, keeping the last periodic checkpoint); the same
command resumes.

With ``--procs N`` (N > 1) the recipe trains data-parallel on N local
processes (``workbench_engines.distributed``: torch.distributed over gloo,
127.0.0.1 only): each rank takes its own batch, gradients are all-reduced, and
the progress line adds each step's compute and communication time and the
bytes rank 0 sent. Ctrl+C reaches only this process, which asks every rank to
stop after the step (rank 0 saves the checkpoint), or, the second time, kills
them all.
"""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from workbench.widgets.plots import Series, lines_text

SMOOTHING = 10
"""Steps in the running mean of the train loss: single-batch losses are noisy."""


def loss_plot(train: list[float], val: list[tuple[int, float]], width: int) -> RenderableType:
    """The live loss plot: the train loss's running mean and the validation points, drawn as the labs draw."""
    smooth = [sum(train[max(0, i - SMOOTHING + 1): i + 1]) / len(train[max(0, i - SMOOTHING + 1): i + 1])
              for i in range(len(train))]
    series = [Series(f"train ({SMOOTHING}-step mean)", list(range(1, len(train) + 1)), smooth)]
    if val:
        series.append(Series("validation", [s for s, _ in val], [v for _, v in val], points=True))
    return lines_text("cross-entropy loss (nats per token)", series, width=max(40, min(width, 100)), xlabel="step")


def parallel_stats(report) -> str:
    """The figures a data-parallel step adds to the progress line: compute and communication time, bytes sent."""
    rank0 = report.ranks[0]
    sent = rank0.sent_measured if rank0.sent_measured is not None else rank0.sent_formula
    return f"  comm {report.comm_s:.2f}s of {report.compute_s + report.comm_s:.2f}s, {sent / 1e6:.1f} MB"


def _live_training(console: Console, total: int, run, labels: int | None = None,
                   settings_hint: str | None = None):
    """Run ``run(on_step, on_label, stop)`` under a progress bar and a live loss plot; Ctrl+C stops it cleanly.

    ``labels`` adds a bar for a labelling phase before training (on_label(done, total) moves it).
    Returns run's result, or the exit status when it stopped or failed.
    """
    from workbench_engines.errors import Cancelled, EngineError

    train_losses: list[float] = []
    val_losses: list[tuple[int, float]] = []
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console)
    label_task = progress.add_task("labelling windows", total=labels, stats="") if labels else None
    task = progress.add_task("steps", total=total, stats="")
    stop = threading.Event()

    def interrupt(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        progress.update(task, description="stopping after this step")

    previous_handler = signal.signal(signal.SIGINT, interrupt)

    with Live(Group(progress), console=console, refresh_per_second=4) as live:
        def on_label(done: int, of: int) -> None:
            progress.update(label_task, completed=done, total=of)

        def on_step(report) -> None:
            train_losses.append(report.loss)
            if report.val_loss is not None:
                val_losses.append((report.step, report.val_loss))
            stats = f"loss {report.loss:.3f}  lr {report.lr:.1e}  {report.tokens_per_s:,.0f} tok/s"
            if val_losses:
                stats += f"  val {val_losses[-1][1]:.3f}"
            if getattr(report, "ranks", None):
                stats += parallel_stats(report)
            progress.update(task, completed=report.step, stats=stats)
            if report.step % 5 == 0 or report.val_loss is not None:
                live.update(Group(progress, loss_plot(train_losses, val_losses, console.width)))

        try:
            return run(on_step, on_label, stop)
        except KeyboardInterrupt:
            # Checkpoints are written to a temporary file and renamed, so the last one is whole.
            console.print("stopped; run the same command to resume from the last checkpoint")
            return 130
        except Cancelled as exc:
            console.print(f"{exc}; saved, run the same command to resume")
            return 130
        except EngineError as exc:
            console.print(f"[red]workbench train: {exc}[/]")
            if settings_hint and "saved with training settings" in str(exc):
                console.print(settings_hint)
            return 1
        finally:
            signal.signal(signal.SIGINT, previous_handler)


def train_command(name: str, out: Path | None, steps: int | None, fresh: bool, corpus: Path | None,
                  threads: int | None, procs: int = 1) -> int:
    from workbench_engines.errors import EngineError
    from workbench_engines.models import llm_draft, small_gpt
    from workbench.paths import data_dir

    out_dir = out or data_dir() / "models"
    console = Console()
    if name == llm_draft.NAME:
        return _draft_command(console, out_dir, steps, fresh, corpus, threads, procs)
    recipe = small_gpt.RECIPES[name]
    console.print(f"training [bold]{name}[/]: {recipe.summary}")
    if procs > 1:
        console.print(f"data-parallel on {procs} local processes (gloo, 127.0.0.1): each takes its own batch of "
                      f"{recipe.train['batch_size']}, a step sees {procs * recipe.train['batch_size']} windows")
    console.print(f"checkpoints and weights go to {out_dir}" + ("" if fresh else " (resuming if a checkpoint is there)"))
    if fresh:
        (out_dir / f"{name}.ckpt").unlink(missing_ok=True)

    def run(on_step, on_label, stop):
        if procs > 1:
            from workbench_engines.distributed.recipes import train_recipe_parallel

            return train_recipe_parallel(name, out_dir, procs=procs, resume=not fresh, steps=steps,
                                         corpus_path=corpus, on_step=on_step, stop=stop)
        return small_gpt.train_recipe(name, out_dir, resume=not fresh, steps=steps, corpus_path=corpus,
                                      on_step=on_step, should_stop=stop.is_set, threads=threads)

    hint = ("the checkpoint was saved under other settings (another --steps, or another number of processes); "
            "add --fresh to start over") if procs > 1 else None
    result = _live_training(console, steps or recipe.train["steps"], run, settings_hint=hint)
    if isinstance(result, int):
        return result
    meta = result.meta
    console.print(
        f"{name}: {meta['parameters']:,} parameters, validation loss {meta['val_loss']:.3f} "
        f"(perplexity {math.exp(meta['val_loss']):.1f}) after {meta['steps']} steps; "
        f"weights: {small_gpt.weights_path(name, out_dir)}"
    )
    shipped = small_gpt.WEIGHTS_DIR / f"{name}.pt"
    if shipped.exists():
        try:
            reference = small_gpt.load(name).meta
            console.print(f"the shipped {name} scored {reference['val_loss']:.3f} after {reference['steps']} steps")
        except EngineError as exc:
            console.print(f"(could not read the shipped weights: {exc})")
    return 0


def _draft_command(console: Console, out_dir: Path, steps: int | None, fresh: bool, corpus: Path | None,
                   threads: int | None, procs: int) -> int:
    """``workbench train smollm2-draft``: label windows with SmolLM2, then train the draft on them."""
    from workbench_engines.errors import EngineError
    from workbench_engines.models import llm_draft

    if corpus is not None or procs > 1:
        console.print(f"[red]workbench train: {llm_draft.NAME} is taught by SmolLM2 on the plays, in one process "
                      f"(no --corpus, no --procs)[/]")
        return 2
    console.print(f"training [bold]{llm_draft.NAME}[/]: {llm_draft.SUMMARY}")
    console.print(f"labels, checkpoints and weights go to {out_dir}"
                  + ("" if fresh else " (resuming if labels or a checkpoint are there)"))
    if fresh:
        for leftover in (f"{llm_draft.NAME}.ckpt", f"{llm_draft.NAME}-labels.npz"):
            (out_dir / leftover).unlink(missing_ok=True)

    def run(on_step, on_label, stop):
        return llm_draft.train_draft(out_dir, resume=not fresh, steps=steps, on_label=on_label, on_step=on_step,
                                     should_stop=stop.is_set, threads=threads)

    hint = "the checkpoint was saved under other settings (another --steps); add --fresh to start over"
    result = _live_training(console, steps or llm_draft.TRAIN["steps"], run, labels=llm_draft.WINDOWS,
                            settings_hint=hint)
    if isinstance(result, int):
        return result
    meta = result.meta
    console.print(f"{llm_draft.NAME}: {meta['parameters']:,} parameters over {meta['kept_tokens']:,} of SmolLM2's "
                  f"tokens, validation loss {meta['val_loss']:.3f} after {meta['steps']} steps; agrees with "
                  f"SmolLM2's greedy choice on {100 * meta['agreement']:.1f}% of positions kept out of training; "
                  f"weights: {out_dir / f'{llm_draft.NAME}.pt'}")
    try:
        shipped = llm_draft.load_file(llm_draft.WEIGHTS_FILE).meta
        console.print(f"the shipped draft agrees on {100 * shipped['agreement']:.1f}% after {shipped['steps']} steps")
    except EngineError as exc:
        console.print(f"(could not read the shipped weights: {exc})")
    return 0
