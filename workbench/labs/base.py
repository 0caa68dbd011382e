"""The Lab base class: validated parameters, engine work in workers, races, progress and cancel.

The pattern every lab follows:

- what the learner changes lives in reactives (usually one frozen dataclass,
  ``state``) and a watcher draws it, so an action only assigns;
- engine work slower than a keystroke goes through :meth:`Lab.start`, which
  runs it in a thread worker (a cffi call releases the GIL, so the screen
  stays live), reports progress in the lab's bar and stops at the next
  progress call once the learner presses the cancel key; its result lands in
  a reactive whose watcher draws it;
- timing goes through :meth:`Lab.race`: the lab describes cases and
  contenders (with the same builders ``workbench bench`` uses), the
  benchmark runner validates, warms up, times and re-validates them, and a
  :class:`~workbench.widgets.profile_panel.ProfilePanel` shows the figures;
- the computing itself lives in ``workbench_engines``; a lab only calls it and draws;
- a run that finishes is recorded from what the panel then shows (:mod:`workbench.run_record`: figures as
  their data, readouts as text), so ``workbench runs`` can list, replay and export it; ctrl+e exports the
  panel as it is, ctrl+y lists the lab's past runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.events import Mount
from textual.message import Message
from textual.widgets import Input, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from workbench_engines.errors import Cancelled
from workbench_engines.profiling import Case, Profile
from workbench.labs.registry import LabSpec
from workbench.logs import logger, start_logging

STREAM_INTERVAL_S = 0.1
"""The least time between two of a stream's updates on screen (_ui_stream)."""

NAVIGATION_KEYS = frozenset({"n", "p", "left", "right"})
"""The lesson's step keys: a lab binding one would steal them from the learner."""


class LabCancelled(Exception):
    """Raised inside a lab's engine work when the learner cancelled it."""


Progress = Callable[[float, str], None]
"""progress(fraction_done, what): report progress; raises LabCancelled once cancelled."""


@dataclass(frozen=True)
class RaceResult:
    """What a race measured: a Profile per contender and the baselines its ratios are against."""

    rows: list[Profile]
    baselines: tuple[str, ...]

    def by_case(self) -> dict[str, dict[str, Profile]]:
        """case name -> contender name -> its Profile."""
        cases: dict[str, dict[str, Profile]] = {}
        for row in self.rows:
            cases.setdefault(row.case, {})[row.name] = row
        return cases


class Lab(Vertical, can_focus=True):
    """Base class of every lab widget."""

    DEFAULT_CSS = """
    Lab { height: auto; border: round $primary; padding: 0 1; margin: 1 0; }
    Lab:focus-within { border: round $accent; }
    Lab .lab-title { text-style: bold; width: 1fr; }
    Lab .lab-status { width: 1fr; color: $text-muted; }
    Lab .readout { width: 1fr; height: auto; }
    Lab Input { margin: 0 0 1 0; }
    Lab ProgressBar { display: none; }
    Lab.-running ProgressBar { display: block; }
    """
    BINDINGS = [
        # "Cancel", not "Cancel run": four columns the sampler's footer needs beside a lesson's keys (issue 20).
        Binding("x", "cancel", "Cancel", tooltip="Cancel the run"),
        # The same key while nothing runs: hidden from the footer, it still answers "Nothing is running."
        Binding("x", "nothing_to_cancel", "Cancel run (nothing running now)", show=False),
        # Out of the footer to leave room for the lab's own keys (as ctrl+s is); help (?) lists them.
        Binding("ctrl+e", "export", "Export", show=False,
                tooltip="Save this lab's results as Markdown, JSON and CSV (and record them as a run)"),
        Binding("ctrl+y", "past_runs", "Past runs", show=False, tooltip="This lab's recorded runs; Enter replays one"),
    ]

    def __init__(self, spec: LabSpec, params: dict[str, Any]) -> None:
        super().__init__()
        self.spec = spec
        self.params = params
        """Validated parameters with defaults filled in."""
        self._worker: Worker | None = None
        self._began: tuple[float, float, str] = (0.0, 0.0, "")
        """(time.time(), time.perf_counter(), what) of the latest run's start, for its record."""
        self._took = 0.0
        """Seconds the latest finished run took."""
        self._recorded: dict[str, Any] | None = None
        """The record saved last (of the latest run, or of an export)."""
        self._streamed_at = 0.0
        """time.monotonic() of the last update _ui_stream let through."""

    def compose(self) -> ComposeResult:
        yield Static(f"Lab · {self.spec.title}", classes="lab-title")
        yield from self.compose_lab()
        yield ProgressBar(total=1.0, show_eta=False)
        yield Static("", classes="lab-status")

    def compose_lab(self) -> ComposeResult:
        """The lab's own widgets, between its title and its progress bar."""
        yield from ()

    @on(Mount)
    def _keep_text_on_focus(self) -> None:
        # Tab into a lab's text box must not select all of it: one keystroke would then wipe the prompt.
        for box in self.query(Input):
            box.select_on_focus = False

    # --- engine work -----------------------------------------------------

    def busy(self) -> bool:
        """True, and the status line says so, while a run is going: a knob that would relabel its result waits."""
        if self.running:
            self.status("Already running (x cancels it).")
        return self.running

    def start(self, work: Callable[[Progress], Any], done: Callable[[Any], None], what: str) -> None:
        """Run work(progress) in a thread worker and pass its result to done on the UI thread.

        While a run is going, another start only says so: one run per lab at a time.
        """
        if self.busy():
            return
        self.add_class("-running")
        self.status(f"{what}… (x cancels)")
        self._began = (time.time(), time.perf_counter(), what)
        self._worker = self.run_worker(
            lambda: self._run(work, done),
            thread=True,
            exclusive=True,
            group=f"lab:{self.spec.id}",
            description=what,
        )
        self.refresh_bindings()

    def race(self, cases: Callable[[], list[Case]], what: str, done: Callable[[RaceResult], None], *,
             warmup: int = 1, repeats: int = 3) -> None:
        """Race the cases ``cases()`` builds (on the worker thread) through the benchmark runner.

        The runner validates every contender against the case's reference,
        warms up, times ``repeats`` runs, validates again and computes the
        ratios; ``done`` receives the Profiles on the UI thread.
        """
        def work(progress: Progress) -> RaceResult:
            from workbench_engines.profiling import baselines_of, run_cases

            built = cases()
            rows = run_cases(built, warmup=warmup, repeats=repeats,
                             progress=lambda finished, total, step: progress(finished / max(total, 1), step))
            return RaceResult(rows, baselines_of(built))

        self.start(work, done, what)

    def _run(self, work: Callable[[Progress], Any], done: Callable[[Any], None]) -> None:
        worker = get_current_worker()

        def progress(fraction: float, what: str) -> None:
            if worker.is_cancelled:
                raise LabCancelled
            self._ui(self._progress, fraction, what)

        try:
            result = work(progress)
        except (LabCancelled, Cancelled):
            self._ui(self.status, "Cancelled.")
            return
        except Exception as exc:  # shown in the lab, never a crash; the traceback goes to the log
            logger.exception("lab %s failed", self.spec.id)
            where = start_logging()
            self._ui(self.status, f"Failed: {exc}" + (f" (traceback in {where})" if where else ""))
            return
        seconds = time.perf_counter() - self._began[1]
        self._ui(self.status, "")
        self._ui(done, result)
        self._ui(self._record, seconds)

    # --- keeping what ran ----------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The record of what the panel shows now (see workbench.run_record), timed by the latest run."""
        from workbench.run_record import snapshot

        started, _, what = self._began
        status = str(self.query_one(".lab-status", Static).content)
        return snapshot(self, what or "as shown", started or time.time(), self._took, status)

    def _record(self, seconds: float) -> None:
        """Keep the run that just finished in DATA_DIR/runs, unless $WORKBENCH_RECORD is 0.

        A disk that refuses the file costs the record, never the run: the
        reason goes to the log.
        """
        self._took = seconds
        if os.environ.get("WORKBENCH_RECORD", "1") == "0":
            return
        from workbench.run_store import save

        try:
            record = self.snapshot()
            save(record)
        except Exception as exc:  # noqa: BLE001 - a record is never worth the run it records, or the app
            logger.warning("lab %s: run not recorded: %s", self.spec.id, exc)
            return
        self._recorded = record

    def action_export(self) -> None:
        from workbench.run_store import save

        if self.busy():  # the panel is half old, half new: export what it shows once the run is done
            return
        record = self.snapshot()
        last = self._recorded
        if last is not None and (last["params"], last["panel"]) == (record["params"], record["panel"]):
            record = last  # the run just recorded, unchanged since: the same id, not a copy
        else:
            try:
                save(record)
                self._recorded = record
            except Exception as exc:  # noqa: BLE001 - the exported files are what was asked for
                logger.warning("lab %s: export not recorded: %s", self.spec.id, exc)
        if self.app.export_record(record):
            self.status(f"Exported as {record['id']} (ctrl+y lists this lab's runs).")

    def action_past_runs(self) -> None:
        self.app.open_runs(self.spec.id)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The footer's cancel key goes when the worker has really ended, not when its result is queued.
        if event.worker is self._worker and event.state not in (WorkerState.PENDING, WorkerState.RUNNING):
            self.remove_class("-running")
            self.refresh_bindings()

    class _Call(Message):
        """fn(*args), asked for by the lab's worker thread, to run on the UI thread."""

        def __init__(self, fn: Callable[..., None], args: tuple) -> None:
            super().__init__()
            self.fn, self.args = fn, args

    def _ui(self, fn: Callable[..., None], *args: Any) -> None:
        """Run fn(*args) on the UI thread, in the order asked, without waiting for it.

        A message, not ``App.call_from_thread``, which blocks the worker until
        the UI has run the call: a model streaming tokens would then decode at
        the pace of the terminal's redraws.
        """
        # The app may have closed or the lab left the screen while the worker ran.
        if self.is_attached and self.app.is_running:
            self.post_message(self._Call(fn, args))

    def _ui_stream(self, fn: Callable[..., None], *args: Any, every: float = STREAM_INTERVAL_S) -> None:
        """_ui for one of a fast stream of updates (tokens as a model writes them): at most one per ``every``
        seconds passes (ten a second by default; a costly redraw, such as a live plot, asks for fewer).

        Redrawing costs the UI thread, and through the GIL the worker, more
        than a token takes; the work's ``done`` draws the final state in full.
        """
        now = time.monotonic()
        if now - self._streamed_at >= every:
            self._streamed_at = now
            self._ui(fn, *args)

    def on_lab__call(self, message: _Call) -> None:
        message.stop()
        # NoMatches: the lab's children were removed while the update was queued.
        if self.is_attached:
            with suppress(NoMatches):
                message.fn(*message.args)

    def _progress(self, fraction: float, what: str) -> None:
        self.query_one(ProgressBar).update(progress=fraction)
        self.status(f"{what}… (x cancels)")

    def action_cancel(self) -> None:
        worker = self._worker
        if worker is not None and self.running:
            worker.cancel()
            self.status("Cancelling…")
        else:
            self.action_nothing_to_cancel()

    def action_nothing_to_cancel(self) -> None:
        """x while idle: say so, rather than a key that silently does nothing."""
        self.status("Nothing is running.")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Offer "cancel" in the footer only while there is something to cancel; the hidden
        # binding of the same key takes over when there is not.
        if action == "cancel":
            return self.running
        if action == "nothing_to_cancel":
            return not self.running
        return True

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def status(self, text: str) -> None:
        # Plain text: messages hold brackets (pip install 'workbench[minilm]') that markup would eat.
        self.query_one(".lab-status", Static).update(Text(text))

    def readout(self, renderable: Any) -> None:
        """Show renderable in the lab's readout (its Static with class "readout")."""
        self.query_one(".readout", Static).update(renderable)


def backend_caption(choices: Sequence[Any]) -> str:
    """A caption line naming the backend(s) that produced a figure and why each was chosen."""
    return "computed by " + "; ".join(str(choice) for choice in dict.fromkeys(choices))
