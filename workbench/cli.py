"""The ``workbench`` command: the app by default, subcommands beside it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import suppress
from pathlib import Path

from workbench import __version__


MAX_PROCS = 16
"""The most local ranks ``workbench train --procs`` starts: each is a process of its own holding torch and a model."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="A terminal lab for learning how large language models work, by running them.",
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    parser.add_argument("--lessons", type=Path, metavar="DIR",
                        help="load lessons from DIR instead of the bundled ones (for authors)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    opener = sub.add_parser("open", help="open a lesson by id")
    opener.add_argument("lesson_id")

    lessons = sub.add_parser("lessons", help="list or check the lessons")
    lessons_sub = lessons.add_subparsers(dest="lessons_command", metavar="ACTION", required=True)
    lessons_sub.add_parser("list", help="print every lesson with its track and status")
    lessons_sub.add_parser("check", help="validate every lesson; exit 1 with file:line errors")

    sub.add_parser("doctor", help="report Python, packages, native build, CUDA and data paths")

    exercises = sub.add_parser("exercises", help="write the kernels yourself: the watch view, or list/reset/check")
    exercises.add_argument("--workspace", type=Path, metavar="DIR",
                           help="folder for your exercise files (remembered; default under the data directory)")
    ex_sub = exercises.add_subparsers(dest="exercises_command", metavar="ACTION")
    ex_sub.add_parser("list", help="every exercise with its status, one a line")
    reset = ex_sub.add_parser("reset", help="restore an exercise's starter (your version is kept as .bak)")
    reset.add_argument("exercise_id")
    check = ex_sub.add_parser("check", help="check (and race) one exercise here, without the TUI")
    check.add_argument("exercise_id")
    payoff = ex_sub.add_parser("train", help="train your Build a GPT model on the plays, then race it against the "
                                             "engine's (every step solved first)")
    payoff.add_argument("--steps", type=int, default=1000, help="training steps of each model (10-5000)")
    payoff.add_argument("--seed", type=int, default=0, help="seed of your model's initialisation and the batches")
    check.add_argument("--no-race", action="store_true", help="only the checks")
    check.add_argument("--timeout", type=float, default=30.0, help="seconds before the check is stopped")

    runs = sub.add_parser("runs", help="the lab runs the app recorded: list, show, export or replay them")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    runs_list = runs_sub.add_parser("list", help="every recorded run, newest first")
    runs_list.add_argument("--lab", metavar="LAB_ID", help="only this lab's runs")
    for action, text in (("show", "print a run here: heading, readouts, figures"),
                         ("replay", "open a run in the app, drawn from its record (o runs it live)")):
        runs_sub.add_parser(action, help=text).add_argument("run", help="run id (or a unique prefix), or a run file")
    runs_export = runs_sub.add_parser("export", help="write a run as Markdown, JSON and CSV files")
    runs_export.add_argument("run", help="run id (or a unique prefix), or a run file")
    runs_export.add_argument("--format", choices=("all", "md", "json", "csv"), default="all")
    runs_export.add_argument("--out", type=Path, metavar="DIR", help="folder to write to (default: here)")

    bench = sub.add_parser("bench", help="run a benchmark side by side with its peers")
    bench.add_argument("name", nargs="?", help="benchmark to run (see --list)")
    bench.add_argument("--list", action="store_true", help="list the benchmarks")
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.add_argument("--repeats", type=int, default=10, help="timed runs per contender (default 10)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    bench.add_argument("--quick", action="store_true", help="tiny inputs: a smoke test, not figures to report")
    bench.add_argument("--quality", action="store_true",
                       help="what the speed costs instead of the race: quality tables (bench quant, bench embeddings)")

    train = sub.add_parser("train", help="rebuild a shipped GPT from the corpus (progress, live loss plot, resumable)")
    train.add_argument("model", choices=("target", "draft", "draft-distilled", "smollm2-draft"),
                       help="which recipe: the decoding labs' model, its draft, the draft distilled from it, or "
                            "SmolLM2's draft, taught by its greedy choices (about an hour on two cores)")
    train.add_argument("--out", type=Path, metavar="DIR", help="checkpoints and weights (default: DATA_DIR/models)")
    train.add_argument("--steps", type=int, help="train for this many steps instead of the recipe's")
    train.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    train.add_argument("--corpus", type=Path, metavar="PATH", help="a text file or folder instead of the plays")
    train.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; one process only)")
    train.add_argument("--procs", type=int, default=1, metavar="N",
                       help="train data-parallel on N local processes (torch.distributed, gloo, 127.0.0.1 only): "
                            "each takes its own batch, so a step sees N times the windows; the checkpoint records "
                            "the equivalent one-process run (accumulation N) and resumes only under the same N "
                            "(default 1: one process, as before)")

    serve = sub.add_parser("serve", help="serve the app in a browser (textual-serve)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--lesson", help="open this lesson in each browser session")
    serve.add_argument("--max-sessions", type=int, default=4, metavar="N",
                       help="browser sessions at once, each a workbench process (default 4)")
    serve.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                       help="also serve pages opened under this name, e.g. localhost:9000 through "
                            "`ssh -L 9000:localhost:8000` (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; its exit status.

    A reader that stops early, as ``| head`` does, is no error: the command
    exits 0 with nothing on stderr, since 1 here means a check failed.
    """
    try:
        code = _main(argv)
        sys.stdout.flush()  # so what is still buffered meets a closed pipe here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        _discard_stdout()
        return 0


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush finds no closed pipe to complain about."""
    with suppress(OSError, ValueError, AttributeError):  # a stdout without a file descriptor (tests, embedding)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def run_app(app) -> int:
    """Run the Textual app, then say what its progress store could not save and, when it stopped on an
    unhandled error, where its log is (exiting non-zero)."""
    from workbench.logs import start_logging

    app.run()
    code = app.return_code or 0
    if getattr(app, "unsaved", None):
        print(f"workbench: {app.unsaved}", file=sys.stderr)
    if code:
        log = start_logging()
        where = f"its log: {log}" if log else "no log could be written"
        print(f"workbench: the app stopped on an error (the traceback is above); {where}", file=sys.stderr)
    leave_if_work_remains(code)
    return code


def leave_if_work_remains(code: int) -> None:
    """Exit at once when a lab was still computing as the app closed.

    Lab runs live in worker threads (often inside one C call, which can't be
    interrupted), and Python joins those threads at exit, so quitting would
    wait for the run to end. The app has closed the progress store by now;
    flush the log and the streams and leave without waiting.
    """
    import logging
    import threading

    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not busy:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.lessons is not None and not args.lessons.is_dir():
        print(f"workbench: --lessons {args.lessons} is not a directory", file=sys.stderr)
        return 2
    command = args.command
    if command in (None, "open"):
        from workbench.app import WorkbenchApp
        from workbench.progress import ProgressError

        try:
            app = WorkbenchApp(open_lesson=getattr(args, "lesson_id", None), lessons_root=args.lessons)
        except ProgressError as exc:
            print(f"workbench: {exc}", file=sys.stderr)
            return 1
        if command == "open" and app.curriculum.lesson(args.lesson_id) is None:
            print(f"workbench: no lesson {args.lesson_id!r}; see `workbench lessons list`", file=sys.stderr)
            return 2
        return run_app(app)
    if command == "lessons":
        return lessons_command(args.lessons_command, args.lessons)
    if command == "doctor":
        from workbench.doctor import print_report

        return print_report()
    if command == "exercises":
        if args.exercises_command is None:
            from workbench.app import WorkbenchApp

            return run_app(WorkbenchApp(lessons_root=args.lessons, open_exercises=True,
                                        exercise_workspace=args.workspace))
        return exercises_command(args)
    if command == "runs":
        from workbench.runs_command import runs_command

        return runs_command(args)
    if command == "bench":
        return bench_command(args)
    if command == "train":
        if args.steps is not None and args.steps < 1:
            print("workbench: --steps must be >= 1", file=sys.stderr)
            return 2
        if not 1 <= args.procs <= MAX_PROCS:
            print(f"workbench: --procs must be from 1 to {MAX_PROCS} (each rank is a Python process that loads torch)",
                  file=sys.stderr)
            return 2
        if args.procs > 1 and args.threads is not None:
            print("workbench: --threads applies to one process; with --procs each rank runs on one thread",
                  file=sys.stderr)
            return 2
        from workbench.train_command import train_command

        return train_command(args.model, args.out, args.steps, args.fresh, args.corpus, args.threads, args.procs)
    if command == "serve":
        from workbench.serve import serve

        return serve(args.host, args.port, args.lesson, args.max_sessions, args.allow_host)
    raise AssertionError(command)


def lessons_command(action: str, root: Path | None) -> int:
    from workbench.curriculum import load_curriculum
    from workbench.curriculum.check import check_curriculum, lesson_needs, missing_extras
    from workbench.extras import missing

    curriculum = load_curriculum(root)
    if action == "list":
        from workbench.paths import progress_db_path
        from workbench.progress import ProgressStore
        from workbench.screens.catalog import progress_line

        def counted(n: int, what: str) -> str:
            return f"{n} {what}{'' if n == 1 else 's'}"

        # The learner's progress where there is any; listing must not create a progress file.
        path = progress_db_path(create=False)
        store = ProgressStore.open(path) if path.exists() else None
        try:
            for track in curriculum.tracks:
                print(f"{track.title} ({track.id})")
                for lesson in track.lessons:
                    if lesson.broken:
                        state = "broken"
                    else:
                        seen = store.lesson_progress(lesson.id, [q.id for q in lesson.questions]) if store else None
                        if seen and (seen.steps_seen or seen.answered):
                            state = progress_line(store, lesson)  # "steps 2/3 · quiz 1/4", as the catalog says
                        else:
                            state = (f"{counted(len(lesson.steps), 'step')}, "
                                     f"{counted(len(lesson.questions), 'question')} · not started")
                    absent = [name for name in lesson_needs(lesson) if missing(name)]
                    if absent:
                        state += f"; needs the {' and '.join(absent)} extra{'s' if len(absent) > 1 else ''}, not installed"
                    print(f"  {lesson.id:32s} {lesson.title}  [{state}]")
        finally:
            if store is not None:
                store.close()
        return 0
    issues = check_curriculum(curriculum)
    for issue in issues:
        print(issue)
    notes = missing_extras(curriculum)
    for note in notes:
        print(f"note: {note}")
    count = len(curriculum.lessons)
    if issues:
        print(f"{len(issues)} problem(s) in {count} lesson(s)", file=sys.stderr)
        return 1
    needing = len({note.file for note in notes})
    skipped = f"; {needing} need(s) an optional extra this install lacks (their probes not run)" if notes else ""
    print(f"ok: {count} lessons in {len(curriculum.tracks)} tracks, every lab, quiz and probe checked{skipped}")
    return 0


def _quality_command(args: argparse.Namespace, progress) -> int:
    """``workbench bench NAME --quality``: the benchmark's quality tables, printed or as JSON."""
    from workbench_engines.errors import EngineError
    from workbench_engines.profiling import environment, run_quality

    try:
        tables = run_quality(args.name, quick=args.quick,
                             progress=lambda fraction, what: progress(round(100 * fraction), 100, what))
    except EngineError as exc:
        print(f"workbench: {exc}", file=sys.stderr)
        return 2
    if sys.stderr.isatty() and not args.json:
        print("\r" + " " * 72 + "\r", end="", file=sys.stderr)
    if args.json:
        print(json.dumps({"benchmark": args.name, "environment": environment(),
                          "tables": [t.as_dict() for t in tables]}, indent=2))
    else:
        from workbench.bench_table import print_quality

        print_quality(args.name, tables, environment())
    return 0


def bench_command(args: argparse.Namespace) -> int:
    from workbench_engines.errors import EngineError
    from workbench_engines.profiling import BENCHMARKS, run_benchmark

    if args.list or not args.name:
        width = max(len(name) for name in BENCHMARKS)
        for spec in BENCHMARKS.values():
            print(f"{spec.name:{width}s}  {spec.description}")
        return 0 if args.list else 2
    if args.name not in BENCHMARKS:
        print(f"workbench: unknown benchmark {args.name!r}; known: {', '.join(sorted(BENCHMARKS))}", file=sys.stderr)
        return 2
    if args.repeats < 1 or args.warmup < 0:
        print("workbench: --repeats must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2

    live = sys.stderr.isatty()
    shown: set[str] = set()

    def progress(done: int, total: int, what: str) -> None:
        if args.json:
            return
        if live:
            print(f"\r[{done}/{total}] {what[:60]:60s}", end="", file=sys.stderr, flush=True)
        elif what not in shown:
            # A log or a pipe gets one plain line per case, not a stream of carriage returns.
            shown.add(what)
            print(f"[{done}/{total}] {what}", file=sys.stderr, flush=True)

    if args.quality:
        return _quality_command(args, progress)
    try:
        report = run_benchmark(args.name, quick=args.quick, warmup=args.warmup, repeats=args.repeats,
                               progress=progress)
    except EngineError as exc:
        print(f"workbench: {exc}", file=sys.stderr)
        return 2
    if live and not args.json:
        print("\r" + " " * 72 + "\r", end="", file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        from workbench.bench_table import print_report

        print_report(report)
    return 0 if all(row.matches for row in report.rows) else 1


def train_your_gpt(store, workspace: Path, steps: int, seed: int) -> int:
    """`workbench exercises train`: the Build a GPT payoff in the terminal, a line per 50 steps, then the race."""
    from workbench.exercises.buildgpt.payoff import PayoffError, Settings, payoff_verdict, run_payoff
    from workbench.exercises.catalog import EXERCISES, unsolved

    if not 10 <= steps <= 5000:
        print("workbench: --steps must be between 10 and 5000", file=sys.stderr)
        return 2
    missing = unsolved(lambda eid: store.exercise_state(eid).solved_at is not None)
    if missing:
        print(f"workbench: {len(missing)} Build a GPT steps are not solved yet: "
              + ", ".join(f"{m} ({EXERCISES[m].file_name})" for m in missing[:4]), file=sys.stderr)
        return 1

    def mine(step) -> None:
        if (step.step + 1) % 50 == 0 or step.step == 0:
            print(f"your GPT  step {step.step + 1:>5}  loss {step.loss:.3f}  lr {step.lr:.2e}  "
                  f"grad norm {step.norm:.2f}  {step.seconds:6.1f} s", flush=True)
        if step.sample is not None:
            print("  sample: " + " ".join(step.sample.split())[:150], flush=True)

    def engine(step: int, loss: float) -> None:
        if step % 100 == 0:
            print(f"engine    step {step:>5}  loss {loss:.3f}", flush=True)

    try:
        run = run_payoff(workspace, Settings.of(steps, seed), on_learner_step=mine, on_engine_step=engine)
    except PayoffError as exc:
        print(f"workbench: your training stopped: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the sandboxed run is already killed (run_child's finally)
        print("workbench: stopped", file=sys.stderr)
        return 130
    print(f"\n{'model':<34}{'params':>9}{'ms/step':>9}{'train loss':>12}{'val loss':>10}")
    for side in (run.learner, run.engine):
        print(f"{side.name:<34}{side.parameters:>9,}{side.seconds_per_step * 1e3:>9.0f}{side.final_train_loss:>12.3f}"
              f"{side.val_loss:>10.3f}")
    print("\n" + payoff_verdict(run))
    return 0


def exercises_command(args: argparse.Namespace) -> int:
    from workbench.exercises.catalog import EXERCISES, by_track
    from workbench.exercises.run import run_exercise
    from workbench.exercises.workspace import ensure_workspace, exercise_file, reset_exercise, workspace_path
    from workbench.logs import start_logging
    from workbench.paths import progress_db_path
    from workbench.progress import ProgressStore

    start_logging()  # what the store couldn't save is listed there
    store = ProgressStore.open(progress_db_path())
    if store.notice:
        print(f"workbench: {store.notice}", file=sys.stderr)
    store.listen(lambda text: print(f"workbench: {text}", file=sys.stderr))
    try:
        workspace = workspace_path(store, args.workspace)
        try:
            created = ensure_workspace(workspace)
        except OSError as exc:
            print(f"workbench: can't prepare the exercise folder {workspace}: {exc}", file=sys.stderr)
            return 1
        if created:
            print(f"copied {len(created)} starter files into {workspace}", file=sys.stderr)
        action = args.exercises_command
        if action == "list":
            for track, exercises in by_track():
                for exercise in exercises:
                    state = store.exercise_state(exercise.id)
                    print(f"{state.status:<9} {exercise.id:<20} {track:<20} {exercise_file(workspace, exercise)}")
            return 0
        if action == "train":
            return train_your_gpt(store, workspace, args.steps, args.seed)
        if args.exercise_id not in EXERCISES:
            print(f"workbench: no exercise {args.exercise_id!r}; see `workbench exercises list`", file=sys.stderr)
            return 2
        exercise = EXERCISES[args.exercise_id]
        if action == "reset":
            backup = reset_exercise(workspace, exercise)
            print(f"restored {exercise_file(workspace, exercise)}" + (f" (your version: {backup})" if backup else ""))
            return 0
        report = run_exercise(exercise.id, exercise_file(workspace, exercise), race=not args.no_race,
                              timeout=args.timeout)
        store.record_exercise_run(exercise.id, report.passed)
        if report.error:
            print(f"error: {report.error}")
        for check in report.checks:
            print(f"{'pass' if check.passed else 'FAIL'}  {check.name}" + (f"\n      {check.detail}" if check.detail else ""))
        if report.traced_to:
            print(f"note: {report.traced_to}")
        if report.race:
            from rich.console import Console

            from workbench.widgets.profile_panel import profile_table

            Console(width=160).print(profile_table(report.race, ("yours",), caption=report.race_note))
        return 0 if report.passed else 1
    finally:
        lost = store.close()
        if lost:
            print(f"workbench: {lost}", file=sys.stderr)
