"""Labs of the data-parallel and ZeRO lessons: real rank processes on torch.distributed (gloo) on this machine.

Both labs start their ranks once per run through ``launch`` with the rank target ``rank:sequence``: the start-up
(each rank imports torch, then meets the others) costs about five seconds, paid once for the gradient check and
the training (data parallel), or for the four stages (ZeRO). The ranks' per-step reports arrive in the worker
thread and are gathered into ``ddp.ParallelStep``s as ``ddp.data_parallel_run`` gathers them. The cancel key sets a
``threading.Event`` that ``launch`` watches: it terminates the ranks and leaves no process behind.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Initialize, reactive
from textual.widgets import Static

from workbench_engines.models import small_gpt
from workbench.labs.base import Lab, Progress
from workbench.labs.knobs import paired_keys, stepped
from workbench.widgets.plots import Figure, Series

MODEL = {k: v for k, v in small_gpt.RECIPES["draft"].model.items() if k != "context"}
"""The shipped draft GPT's shape (small_gpt.RECIPES["draft"]), 237,888 parameters; the context is SEQ_LEN."""
BATCH, SEQ_LEN = 8, 64
"""Windows per rank per step, and tokens per window."""
CHECK_WINDOWS = 4
"""Windows per rank in the gradient check."""
CORPUS_BYTES = 300_000
"""Bytes of the plays encoded for the runs (about 108,000 tokens): every rank receives the token arrays."""
PAPER_PSI, PAPER_N_D = 7.5e9, 64
"""The paper's Figure 1 example: Ψ = 7.5 billion parameters on N_d = 64 devices."""
KINDS = ("params", "grads", "optimizer")
"""The model states ZeRO shards, in the order drawn."""


def kib(nbytes: float) -> str:
    """Bytes as whole KiB with thousands separators: 929 for 951,552."""
    return f"{nbytes / 1024:,.0f}"


def _configs(steps: int, seed: int = 0):
    """The GPTConfig and TrainConfig of a lab run: fp32, the hand AdamW (its state bytes are counted exactly)."""
    from workbench_engines.models.gpt import GPTConfig
    from workbench_engines.models.train import TrainConfig

    model = GPTConfig(**MODEL, context=SEQ_LEN)
    train = TrainConfig(steps=steps, batch_size=BATCH, seq_len=SEQ_LEN, warmup=max(1, steps // 10),
                        eval_every=10**6, eval_windows=8, checkpoint_every=10**6, parts="hand", seed=seed)
    return model, train


def _train_job(model, train, data, stage: int) -> tuple[str, dict]:
    """A ``rank:sequence`` job: ddp.train_rank on ``stage`` (0 plain data parallel, 1–3 ZeRO)."""
    return ("workbench_engines.distributed.ddp:train_rank",
            {"model_config": model.as_dict(), "train_config": asdict(train), "train_tokens": data.train,
             "val_tokens": data.val, "stage": stage})


class DistributedLab(Lab):
    """What both labs share: a cancel key that also stops the rank processes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cancel_event = threading.Event()
        """Set by the cancel key: ``launch`` then terminates the ranks and raises Cancelled."""

    def action_cancel(self) -> None:
        if self.running:
            self.cancel_event.set()
        super().action_cancel()

    def on_unmount(self) -> None:
        self.cancel_event.set()  # the learner left the lab: the ranks go now, not at their next step's report

    def launch(self, jobs: list, procs: int, gather) -> list:
        """Run ``jobs`` on ``procs`` ranks in one process group (blocking: call it from the worker)."""
        from workbench_engines.distributed.launch import launch

        return launch("workbench_engines.distributed.rank:sequence", {"jobs": jobs}, procs=procs, on_report=gather,
                      cancel=self.cancel_event)


# ---- data parallelism ----------------------------------------------------------------------------------------


@dataclass
class DataParallelRun:
    """A data-parallel run and its gradient check."""

    procs: int
    parameters: int
    steps: list
    """ddp.ParallelStep per step."""
    check_diff: float
    """max |Δ| between rank 0's all-reduced gradient and one process's gradient of the whole batch."""
    accumulated_diff: float
    """max |Δ| between one process accumulating N micro-batches and the same process on the whole batch."""
    torch_ddp_diff: float
    """max |Δ| between torch's DistributedDataParallel and one process on the whole batch."""
    largest_gradient: float
    """The largest |entry| of the whole batch's gradient: the scale the differences are read against."""

    def per_rank(self, rank: int) -> dict[str, float]:
        """Seconds in compute, in communication and waiting, summed over steps, and the mean bytes sent per step."""
        rows = [s.ranks[rank] for s in self.steps]
        measured = [r.sent_measured for r in rows if r.sent_measured is not None]
        return {"compute": sum(r.compute_s for r in rows), "comm": sum(r.comm_s for r in rows),
                "wait": sum(r.wait_s for r in rows), "buffer": rows[0].buffer_bytes if rows else 0,
                "formula": rows[0].sent_formula if rows else 0.0,
                "measured": float(np.mean(measured)) if measured else float("nan")}


def data_parallel_verdict(run: DataParallelRun) -> str:
    """The run in words, from its own figures: the gradient check, the bytes against the ring, compute against comm."""
    zero = run.per_rank(0)
    compute = max(run.per_rank(r)["compute"] for r in range(run.procs))
    comm = max(run.per_rank(r)["comm"] for r in range(run.procs))
    words = [f"Gradient check: {run.procs} ranks' all-reduced gradient differs from one process with "
             f"{run.procs}× the batch by at most {run.check_diff:.1e} (largest entry {run.largest_gradient:.3f}); "
             f"accumulating {run.procs} micro-batches in one process: {run.accumulated_diff:.1e}; torch's DDP: "
             f"{run.torch_ddp_diff:.1e}."]
    if np.isfinite(zero["measured"]):
        words.append(f"Rank 0 sent {zero['measured']:,.0f} bytes a step for a {zero['buffer']:,}-byte gradient: the "
                     f"ring's 2({run.procs}−1)/{run.procs} × buffer is {zero['formula']:,.0f}, the rest is gloo's "
                     f"headers.")
    share = comm / (compute + comm) if compute + comm else 0.0
    words.append(f"Communication took {100 * share:.0f}% of compute + communication (slowest rank, summed).")
    return " ".join(words)


class DataParallelLab(DistributedLab):
    """The draft GPT trained on N real rank processes, gradients all-reduced; and N ranks checked against one."""

    DEFAULT_CSS = "DataParallelLab Figure PlotextPlot { height: 9; }"
    BINDINGS = [Binding("r", "train", "Train", tooltip="Start the ranks: the gradient check, then the training"),
                *paired_keys("w", "W", "procs(1)", "procs(-1)", "ranks±", up_help="One more rank (process)",
                             down_help="One rank fewer")]
    procs = reactive(Initialize(lambda lab: lab.params["procs"]), init=False)
    """N, the ranks of the next run."""
    result = reactive(None, always_update=True)
    """The last DataParallelRun."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static(f"r starts the ranks: a gradient check, then {self.params['steps']} steps of the draft GPT "
                     f"({BATCH} windows of {SEQ_LEN} tokens per rank per step; about 15 s). w/W: more or fewer ranks.",
                     classes="readout")

    def on_mount(self) -> None:
        self._knobs()

    def _knobs(self) -> None:
        self.status(f"Next run: {self.procs} ranks, {self.params['steps']} steps (r trains, w/W the ranks).")

    def action_procs(self, step: int) -> None:
        if self.busy():
            return
        procs = stepped(list(self.spec.params["procs"].choices), self.procs, step)
        if procs == self.procs:
            self.status(f"{procs} ranks is already the {'most' if step > 0 else 'fewest'} this lab starts.")
            return
        self.procs = procs

    def watch_procs(self) -> None:
        self._knobs()

    def action_train(self) -> None:
        if self.busy():
            return
        procs, steps = self.procs, self.params["steps"]
        self.cancel_event = threading.Event()

        def work(progress: Progress) -> DataParallelRun:
            from workbench_engines.distributed.ddp import StepGatherer, single_process_gradients
            from workbench_engines.models.experiments import lesson_data

            model, train = _configs(steps)
            data = lesson_data(CORPUS_BYTES)
            windows = data.windows("train", np.random.default_rng(train.seed), procs * CHECK_WINDOWS, SEQ_LEN)
            jobs = [("workbench_engines.distributed.ddp:gradient_check_rank",
                     {"model_config": model.as_dict(), "windows": windows, "seed": train.seed}),
                    _train_job(model, train, data, 0)]

            def on_step(_, step) -> None:
                progress(step.step / step.total, f"{procs} ranks: step {step.step} of {step.total}")
                self._ui_stream(self._draw_losses, [s.loss for s in gather.runs[0]])

            gather = StepGatherer(procs, on_step)
            progress(0.0, f"Starting {procs} ranks (each imports torch)")
            results = self.launch(jobs, procs, gather)
            whole = single_process_gradients(model, windows, seed=train.seed)
            accumulated = single_process_gradients(model, windows, seed=train.seed, micro_batches=procs)
            check = results[0][0]
            return DataParallelRun(procs, results[0][1]["parameters"], gather.runs[0],
                                   float(np.abs(check["grads"] - whole).max()),
                                   float(np.abs(accumulated - whole).max()),
                                   float(np.abs(check["ddp_grads"] - whole).max()), float(np.abs(whole).max()))

        self.start(work, lambda run: setattr(self, "result", run), f"Training on {procs} ranks")

    def _draw_losses(self, losses: list[float]) -> None:
        self.query_one(Figure).lines(f"training loss per step, {self.procs} ranks (mean over the ranks' windows)",
                                     [Series("loss", list(range(1, len(losses) + 1)), losses)], xlabel="step")

    def watch_result(self, run: DataParallelRun | None) -> None:
        if run is None:
            return
        self.query_one(Figure).lines(
            f"training loss per step, {run.procs} ranks (mean over the ranks' windows)",
            [Series("loss", [s.step for s in run.steps], [s.loss for s in run.steps])], xlabel="step")
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("rank", "compute s", "comm s", "wait s", "sent/step B", "ring formula B"):
            table.add_column(name, justify="right", no_wrap=True)
        for rank in range(run.procs):
            row = run.per_rank(rank)
            measured = f"{row['measured']:,.0f}" if np.isfinite(row["measured"]) else "-"
            table.add_row(str(rank), f"{row['compute']:.2f}", f"{row['comm']:.3f}", f"{row['wait']:.2f}", measured,
                          f"{row['formula']:,.0f}")
        source = Text(f"{run.parameters:,} parameters, fp32: a {run.per_rank(0)['buffer']:,}-byte gradient buffer "
                      f"all-reduced once a step. {len(run.steps)} steps of {run.procs} × {BATCH} windows of {SEQ_LEN} "
                      "tokens. Times are summed over the steps; sent: the kernel's count of bytes written.",
                      style="dim")
        self.readout(Group(table, Text(data_parallel_verdict(run)), source))


# ---- ZeRO ------------------------------------------------------------------------------------------------------


@dataclass
class ZeroStage:
    """One stage's run: each rank's bytes held by kind after the last step, and its steps."""

    stage: int
    held: list[dict[str, int]]
    """Per rank: bytes of params, grads, optimizer (and buffers) held between steps."""
    peak: list[dict[str, int]]
    """Per rank: the most bytes of each kind held at any sampled moment."""
    steps: list = field(default_factory=list)
    """ddp.ParallelStep per step."""

    def sent_per_step(self, rank: int = 0) -> float:
        """Mean bytes ``rank`` wrote per step (the formula's where the kernel's count is unavailable)."""
        values = [s.ranks[rank].sent_measured if s.ranks[rank].sent_measured is not None else s.ranks[rank].sent_formula
                  for s in self.steps]
        return float(np.mean(values)) if values else float("nan")

    def total(self, rank: int) -> int:
        return sum(self.held[rank][kind] for kind in KINDS)


@dataclass
class ZeroRun:
    """Stages 0–3 trained from the same weights on the same batches, one after another on the same ranks."""

    procs: int
    parameters: int
    stages: list[ZeroStage]
    max_param_diff: float
    """max |Δ| between each ZeRO stage's final parameters and plain data parallelism's."""

    def formula(self, stage: int) -> dict[str, float]:
        """The paper's formula for this run (Ψ padded to N shards, N = procs), fp32 AdamW's bytes (4, 4, K = 8)."""
        from workbench_engines.distributed.zero import zero_memory_by_kind

        padded = -(-self.parameters // self.procs) * self.procs
        return zero_memory_by_kind(padded, self.procs, stage)


STAGE_NAMES = ("0 DP", "1 Pos", "2 Pos+g", "3 Pos+g+p")
"""Row labels: the stage and the paper's name for it."""


def zero_verdict(run: ZeroRun) -> str:
    """The run in words, from its own figures: memory held against stage 0 and the formula, bytes sent against DP."""
    base = run.stages[0]
    words = []
    for zs in run.stages[1:]:
        words.append(f"stage {zs.stage} holds {zs.total(0) / base.total(0):.2f}×")
    sent = [zs.sent_per_step() / base.sent_per_step() for zs in run.stages]
    return (f"Rank 0, against plain data parallelism: {', '.join(words)} of the model states, and sends "
            + ", ".join(f"{ratio:.2f}×" for ratio in sent[1:]) + " the bytes per step (stages 1, 2, 3). "
            f"Every stage ended at the same parameters (max |Δ| {run.max_param_diff:.1e}).")


class ZeroLab(DistributedLab):
    """Plain data parallelism and ZeRO stages 1, 2, 3 on the same ranks: bytes held by kind and bytes sent."""

    DEFAULT_CSS = "ZeroLab Figure PlotextPlot { height: 9; }"
    BINDINGS = [Binding("r", "train", "Run stages", tooltip="Train a few steps with stages 0, 1, 2 and 3")]
    result = reactive(None, always_update=True)
    """The last ZeroRun."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static(f"r trains the draft GPT {self.params['steps']} steps with each of stages 0–3 on 2 ranks "
                     "(about 15 s) and measures what each rank holds and sends.", classes="readout")

    def on_mount(self) -> None:
        self.status("r runs the four stages on 2 ranks.")

    def action_train(self) -> None:
        if self.busy():
            return
        procs, steps = 2, self.params["steps"]
        self.cancel_event = threading.Event()

        def work(progress: Progress) -> ZeroRun:
            from workbench_engines.distributed.ddp import StepGatherer
            from workbench_engines.models.experiments import lesson_data

            model, train = _configs(steps)
            data = lesson_data(CORPUS_BYTES)
            jobs = [_train_job(model, train, data, stage) for stage in range(4)]

            def on_step(job: int, step) -> None:
                progress((job * steps + step.step) / (4 * steps), f"stage {job}: step {step.step} of {steps}")

            gather = StepGatherer(procs, on_step)
            progress(0.0, f"Starting {procs} ranks (each imports torch)")
            results = self.launch(jobs, procs, gather)
            stages = [ZeroStage(stage, [r[stage]["held"] for r in results], [r[stage]["peak"] for r in results],
                                gather.runs[stage] if stage < len(gather.runs) else [])
                      for stage in range(4)]
            unsharded = results[0][0]["final_parameters"]
            diff = max(float(np.abs(results[0][stage]["final_parameters"] - unsharded).max()) for stage in (1, 2, 3))
            return ZeroRun(procs, results[0][0]["parameters"], stages, diff)

        self.start(work, lambda run: setattr(self, "result", run), "Training stages 0–3 on 2 ranks")

    def watch_result(self, run: ZeroRun | None) -> None:
        if run is None:
            return
        from workbench_engines.distributed.zero import zero_memory_per_device

        self.query_one(Figure).grouped_bars(
            f"KiB each rank holds between steps (rank 0; Ψ = {run.parameters:,}, N = {run.procs})",
            [f"stage {zs.stage}" for zs in run.stages],
            {kind: [zs.held[0][kind] / 1024 for zs in run.stages] for kind in KINDS})
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("stage", "params", "grads", "optim", "r0 all", "r1 all", "formula", "sent", "paper"):
            table.add_column(name, justify="left" if name == "stage" else "right", no_wrap=True)
        for zs in run.stages:
            formula = run.formula(zs.stage)
            paper = zero_memory_per_device(PAPER_PSI, PAPER_N_D, zs.stage) / 1e9
            table.add_row(STAGE_NAMES[zs.stage], *(kib(zs.held[0][kind]) for kind in KINDS), kib(zs.total(0)),
                          kib(zs.total(1)), kib(sum(formula.values())), kib(zs.sent_per_step()), f"{paper:.1f}")
        source = Text("KiB held after the last step, measured (storages behind the tensors; activations not counted); "
                      "r0 all, r1 all: each rank's total. formula: (4+4+8)Ψ sharded as the stage says (fp32 AdamW). "
                      "sent: KiB rank 0 wrote per step. paper: GB per device, (2+2+12)Ψ, mixed-precision Adam, "
                      f"Ψ = 7.5B, N_d = {PAPER_N_D}. On gloo the reduce-scatter costs an all-reduce, so stages 1, 2 "
                      "send 1.5× plain DP at N = 2 (NCCL: 1×).", style="dim")
        self.readout(Group(table, Text(zero_verdict(run)), source))
