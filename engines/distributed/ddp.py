"""Data-parallel training of the project's GPT across local processes: gradients all-reduced by hand.

Every rank holds the whole model and the whole optimizer. Each step, each rank
runs forward and backward on micro-batches of its own, then the ranks sum their
gradients with one all-reduce over a single flat buffer (no buckets: the
model's gradients live as views into one contiguous tensor, so the reduction is
one call, in place, with nothing copied). Every rank then takes the same
optimizer step on the same summed gradient and the replicas stay identical —
torch's DistributedDataParallel does the same with buckets overlapped with
backward (Li et al., 2020, "PyTorch Distributed: Experiences on Accelerating
Data Parallel Training"); ``gradient_check_rank`` shows its gradients agree.

Why it equals one process: with N ranks and A micro-batches each, every rank
draws the step's N·A micro-batches from one shared random stream (seeded
alike) and keeps its own A of them; each micro-batch's loss is scaled by
1/(N·A) before backward, so the all-reduced sum is the mean gradient over all
N·A micro-batches — exactly what ``train`` computes with ``accumulation=N·A``
(gradient accumulation, the single-process equivalent), or one process with a
batch N times as large. The windows are the same ones; only the order of the
float additions differs.

Per step each rank reports its loss, the bytes it sent for the all-reduce
(the ring's 2(N−1)/N · buffer, and the kernel's own count: see ``comm``), the
time in forward and backward ("compute") and in the all-reduce ("comm"), and
the time it waited at a barrier for the slower rank.

The loop is shared with ``zero``: a *strategy* object says where parameters,
gradients and optimizer state live and how gradients are reduced.
``Replicated`` (here) is stage 0; ``zero`` has stages 1–3.

Example::

    >>> report = data_parallel_run(GPTConfig(vocab_size=2048, d_model=64), TrainConfig(steps=20), data, procs=2)
    >>> report.steps[-1].ranks[0].sent_measured      # bytes rank 0 sent for that step's all-reduce
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from workbench_engines.distributed.comm import Transfer, ring_allreduce_bytes, timed
from workbench_engines.errors import EngineError

KINDS = ("params", "grads", "optimizer", "buffers")
"""What a rank's memory is accounted by: parameters, gradients, optimizer state, communication buffers."""


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a view counts once, with what it views; None is skipped)."""
    storages = {}
    for t in tensors:
        if t is not None:
            storage = t.untyped_storage()
            storages[id(storage) if storage.data_ptr() == 0 else storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def step_at(optimizer, lr: float) -> None:
    """One optimizer step at learning rate ``lr`` (the schedule's value for this step), for every strategy."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()


class Replicated:
    """Stage 0, plain data parallelism: every rank holds all parameters, gradients and optimizer state.

    The parameters become views into one flat float32 buffer, ordered matrices
    first (the ones AdamW decays) then the rest, padded to a multiple of N (ZeRO
    cuts this buffer in N equal shards); the gradients likewise become views
    into one flat buffer, which autograd accumulates into in place. The buffers
    start equal on every rank: rank 0's are broadcast.

    Args:
        model: The GPT, built alike on every rank.
        config: The TrainConfig (optimizer, clipping).
        rank: This rank.
        world: N.
    """

    stage = 0

    def __init__(self, model, config, rank: int, world: int) -> None:
        import torch
        import torch.distributed as dist

        self.model, self.config, self.rank, self.world = model, config, rank, world
        self.order = self.layout(model)
        """The flat layout's order: decayed matrices first (AdamW's first group), then gains."""
        self.numel = sum(p.numel() for p in self.order)
        """Ψ, the parameter count."""
        self.decayed = sum(p.numel() for p in self.order if p.ndim >= 2)
        self.padded = math.ceil(self.numel / world) * world
        self.shard = self.padded // world
        self.lo, self.hi = rank * self.shard, (rank + 1) * self.shard
        """This rank's shard of the flat buffers: [lo, hi)."""
        self.offsets = []
        """(start, end) of each parameter in the flat layout."""
        self.flat_param = torch.zeros(self.padded)
        start = 0
        for p in self.order:
            self.offsets.append((start, start + p.numel()))
            self.flat_param[start : start + p.numel()] = p.detach().reshape(-1)
            p.data = self.flat_param[start : start + p.numel()].view_as(p)
            start += p.numel()
        self.broadcast = timed(lambda: dist.broadcast(self.flat_param, 0), self.flat_param.nbytes,
                               ring_allreduce_bytes(self.flat_param.nbytes, world) / 2)
        """The one-off transfer that made every replica start from rank 0's weights."""
        self.flat_grad = None
        self._make_gradients()
        self.optimizer = self._make_optimizer()
        self.peak = dict.fromkeys(KINDS, 0)
        """The most bytes of each kind held at any sampled moment of any step."""
        self.peak_total = 0
        """The most bytes of all kinds together at any sampled moment."""

    @staticmethod
    def layout(model) -> list:
        """The model's parameters in the flat buffers' order: matrices (decayed by AdamW) first, then the rest."""
        params = list(model.parameters())
        return [p for p in params if p.ndim >= 2] + [p for p in params if p.ndim < 2]

    def _make_gradients(self) -> None:
        """A flat gradient buffer, the parameters' .grad being views into it."""
        import torch

        self.flat_grad = torch.zeros(self.padded)
        for p, (a, b) in zip(self.order, self.offsets):
            p.grad = self.flat_grad[a:b].view_as(p)

    def _make_optimizer(self):
        """The single-process loop's own optimizer over the whole model (train._optimizer: torch's or hand AdamW)."""
        from workbench_engines.models.train import _optimizer

        return _optimizer(self.model, self.config)

    def zero_grad(self) -> None:
        """Zero the gradients in place (they stay views into the flat buffer)."""
        self.flat_grad.zero_()

    def before_forward(self) -> Transfer:
        """Make the full parameters available to forward (they always are here)."""
        return Transfer()

    def release(self) -> None:
        """Drop what before_forward gathered (nothing here)."""

    def gather_all(self) -> None:
        """Make every parameter whole and keep it so (to read the model's state_dict); a collective in stage 3."""
        self.before_forward()

    def begin_micro(self, last: bool) -> None:
        """A micro-batch's backward is next; ``last`` says whether it is the step's last (hooks reduce then)."""

    def reduce_gradients(self) -> Transfer:
        """Sum the gradients over the ranks: one all-reduce of the whole flat buffer, in place."""
        import torch.distributed as dist

        nbytes = self.flat_grad.nbytes
        self.sample()
        return timed(lambda: dist.all_reduce(self.flat_grad), nbytes, ring_allreduce_bytes(nbytes, self.world))

    def clip(self) -> float:
        """The gradients' global norm, clipped to config.grad_clip by the single-process loop's own clipping."""
        from workbench_engines.models.train import _clip

        return _clip(self.model, self.config)

    def step(self, lr: float) -> Transfer:
        """One AdamW step at learning rate ``lr``; nothing to gather here."""
        step_at(self.optimizer, lr)
        self.sample()
        return Transfer()

    def held(self) -> dict[str, int]:
        """Bytes of the tensors this rank holds now, by kind."""
        from workbench_engines.optim.adamw import optimizer_state_bytes

        return {"params": storage_bytes([self.flat_param]), "grads": storage_bytes([self.flat_grad]),
                "optimizer": optimizer_state_bytes(self.optimizer), "buffers": 0}

    def sample(self, extra: dict[str, int] | None = None) -> None:
        """Fold what is held now (plus ``extra`` bytes by kind) into the peaks."""
        now = self.held()
        for kind, value in (extra or {}).items():
            now[kind] += value
        for kind in KINDS:
            self.peak[kind] = max(self.peak[kind], now[kind])
        self.peak_total = max(self.peak_total, sum(now.values()))

    def full_parameters(self):
        """The whole flat parameter vector (Ψ floats, layout order), the same on every rank. A collective in
        stage 3: every rank must call it."""
        return self.flat_param[: self.numel].clone()


@dataclass
class RankStep:
    """One rank's figures for one step."""

    rank: int
    compute_s: float
    """Forward and backward, less any communication done inside backward (ZeRO 2 and 3's hooks)."""
    comm_s: float
    """Inside collectives: the gradient reduction, and the parameter gathers of ZeRO. Those that ZeRO 2 and 3 run
    inside forward and backward hooks have no barrier before them, so this also holds the time a rank waited
    there for its peer to reach the same tensor."""
    wait_s: float
    """At barriers before collectives: waiting for the slower rank."""
    buffer_bytes: int
    """Bytes reduced or gathered this step."""
    sent_formula: float
    """The ring formula's bytes this rank sent (and received)."""
    sent_measured: int | None
    """The kernel's count of bytes this rank wrote during the collectives (None off Linux)."""


@dataclass
class ParallelStep:
    """What ``on_step`` receives after each optimizer step; has the fields of train.StepReport, and per-rank ones."""

    step: int
    total: int
    loss: float
    """The mean training loss over every rank's micro-batches."""
    lr: float
    grad_norm: float
    tokens_per_s: float
    """Tokens of all ranks together per second of this step."""
    val_loss: float | None = None
    ranks: list[RankStep] = field(default_factory=list)

    @property
    def compute_s(self) -> float:
        """The slowest rank's compute time."""
        return max(r.compute_s for r in self.ranks)

    @property
    def comm_s(self) -> float:
        """The slowest rank's communication time."""
        return max(r.comm_s for r in self.ranks)


class StepGatherer:
    """Gathers the ranks' per-step reports into ParallelStep lists, one list per training job of a sequence.

    A rank reports steps 1, 2, … of its first training job, then 1, 2, … of the next: a step number that does
    not grow starts the next job's list.
    """

    def __init__(self, procs: int, on_step=None) -> None:
        self.procs = procs
        self.on_step = on_step
        self.runs: list[list] = []
        self._pending: dict[tuple[int, int], dict[int, dict]] = {}
        self._job = [-1] * procs
        self._last = [10**9] * procs

    def __call__(self, rank: int, payload: dict) -> None:
        if payload["step"] <= self._last[rank]:
            self._job[rank] += 1
        self._last[rank] = payload["step"]
        key = (self._job[rank], payload["step"])
        reports = self._pending.setdefault(key, {})
        reports[rank] = payload
        if len(reports) < self.procs:
            return
        del self._pending[key]
        first = reports[0]
        done = ParallelStep(first["step"], first["total"], first["loss"], first["lr"], first["grad_norm"],
                            first["tokens"] / max(r["seconds"] for r in reports.values()), first["val_loss"],
                            [reports[r]["rank_step"] for r in range(self.procs)])
        while len(self.runs) <= key[0]:
            self.runs.append([])
        self.runs[key[0]].append(done)
        if self.on_step is not None:
            self.on_step(key[0], done)


@dataclass
class DataParallelReport:
    """A finished data-parallel (or ZeRO) run."""

    procs: int
    stage: int
    """0 for plain data parallelism, 1–3 for ZeRO."""
    parameters: int
    """Ψ."""
    steps: list[ParallelStep]
    stopped: bool
    """The run stopped early, on request (its checkpoint was saved when it had a path)."""
    peak_bytes: list[dict[str, int]]
    """Per rank: the most bytes of each kind held at once during the run (model states; activations not counted)."""
    peak_total_bytes: list[int]
    """Per rank: the most bytes of all kinds held at one moment."""
    final_parameters: np.ndarray
    """The trained parameters as one flat float32 vector (matrices first: the strategies' layout), from rank 0."""
    state_dict: dict | None = None
    """The trained model's state_dict from rank 0, when asked for."""
    broadcast_bytes: int = 0
    """Bytes of the one-off broadcast of rank 0's initial weights."""
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    resumed_from: int = 0
    held_bytes: list[dict[str, int]] = field(default_factory=list)
    """Per rank: bytes of each kind held between steps (after the last one): what the paper's formula counts."""

    @property
    def losses(self) -> list[float]:
        """Training loss per step (mean over ranks)."""
        return [s.loss for s in self.steps]

    @property
    def bytes_sent_per_step(self) -> float:
        """Mean over steps of rank 0's measured bytes sent (the formula's where unmeasured)."""
        values = [s.ranks[0].sent_measured if s.ranks[0].sent_measured is not None else s.ranks[0].sent_formula
                  for s in self.steps]
        return float(np.mean(values)) if values else 0.0

    @property
    def compute_seconds(self) -> float:
        """Sum over steps of the slowest rank's compute time."""
        return sum(s.compute_s for s in self.steps)

    @property
    def comm_seconds(self) -> float:
        """Sum over steps of the slowest rank's communication time."""
        return sum(s.comm_s for s in self.steps)


def make_strategy(stage: int, model, config, rank: int, world: int):
    """The strategy object for ``stage``: Replicated (0) or ZeRO stage 1, 2, 3."""
    if stage == 0:
        return Replicated(model, config, rank, world)
    from workbench_engines.distributed.zero import STAGES

    return STAGES[stage](model, config, rank, world)


def equivalent_config(config, world: int):
    """The single-process TrainConfig that takes the same steps: accumulation N·A (what a checkpoint records)."""
    return replace(config, accumulation=config.accumulation * world)


def check_checkpoint(saved: dict, path, model_config: dict, config, world: int) -> None:
    """Refuse a checkpoint saved for another model, or under settings other than this run's single-process
    equivalent (accumulation N·A): the message names both.

    Raises:
        EngineError: the model or the training settings differ.
    """
    if saved["model_config"] != model_config:
        raise EngineError(f"{path}: saved for model {saved['model_config']}, not {model_config}")
    single = equivalent_config(config, world)
    mine = {k: v for k, v in asdict(single).items() if k != "parts"}
    theirs = {k: v for k, v in saved["train_config"].items() if k != "parts"}
    if theirs != mine:
        raise EngineError(f"{path}: saved with training settings {saved['train_config']}, not these "
                          f"(a run on {world} processes with accumulation {config.accumulation} is saved as "
                          f"accumulation {single.accumulation})")


def train_rank(ctx, *, model_config: dict, train_config: dict, train_tokens: np.ndarray, val_tokens: np.ndarray,
               stage: int = 0, checkpoint: str | None = None, resume: bool = False,
               return_weights: bool = False, distill: dict | None = None) -> dict[str, Any]:
    """One rank of a data-parallel (stage 0) or ZeRO (1–3) run; a ``launch`` target.

    Args:
        ctx: The rank's RankContext.
        model_config: GPTConfig fields.
        train_config: TrainConfig fields; batch_size is per rank and per micro-batch.
        train_tokens: The training split (int32), the same on every rank.
        val_tokens: The validation split (int32).
        stage: 0 plain data parallelism, 1–3 ZeRO.
        checkpoint: Rank 0 saves here (``train.save_checkpoint``'s format, for the equivalent single-process
            config: accumulation N·A); stage 0 only.
        resume: Continue from ``checkpoint`` when it exists (every rank reads it).
        return_weights: Rank 0 returns the model's state_dict.
        distill: {"teacher": a shipped model's name, "temperature", "alpha"}: train on
            ``compress.distill.DistillationLoss`` against that teacher (each rank loads it) instead of the data's
            tokens alone; validation stays the plain cross-entropy. None for the plain loss.

    Returns:
        A dict: per-step losses, peaks by kind, the final flat parameters (rank 0), the state_dict when asked.

    Raises:
        EngineError: a non-finite loss or gradient norm (the step is not taken), or a checkpoint saved for
            another model or other settings.
    """
    import torch
    import torch.distributed as dist

    from workbench_engines.models.data import TokenData
    from workbench_engines.models.gpt import GPT, GPTConfig
    from workbench_engines.models.train import (TrainConfig, _State, _stop_if_not_finite, causal_lm_loss, evaluate,
                                                load_checkpoint, save_checkpoint)
    from workbench_engines.optim.schedule import learning_rate

    rank, world = ctx.rank, ctx.world_size
    config = TrainConfig(**train_config)
    single = equivalent_config(config, world)
    data = TokenData(train_tokens, val_tokens)
    torch.manual_seed(config.seed)
    model = GPT(GPTConfig(**model_config))
    model.train()
    strategy = make_strategy(stage, model, config, rank, world)
    rng = np.random.default_rng(config.seed)
    state = _State()
    if resume and checkpoint is not None and Path(checkpoint).exists():
        saved = load_checkpoint(Path(checkpoint))
        check_checkpoint(saved, checkpoint, model_config, config, world)
        model.load_state_dict(saved["model"])
        strategy.optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["numpy_rng"]
        torch.set_rng_state(saved["torch_rng"])
        state = _State(saved["step"], list(saved["train_losses"]), [tuple(v) for v in saved["val_losses"]])
    resumed_from = state.step

    def loss_fn(m, window):
        return causal_lm_loss(m, window, config.parts)

    train_loss = loss_fn
    if distill is not None:
        from workbench_engines.compress.distill import DistillationLoss
        from workbench_engines.models.small_gpt import load

        train_loss = DistillationLoss(load(distill["teacher"]).model, distill["temperature"], distill["alpha"])
    micro = config.accumulation
    stopped = False
    tokens_step = world * micro * config.batch_size * config.seq_len

    def save() -> None:
        if checkpoint is not None and rank == 0 and stage == 0:
            save_checkpoint(Path(checkpoint), model, strategy.optimizer, rng, state, single, model_config)

    while state.step < config.steps and not stopped:
        started = time.perf_counter()
        lr = learning_rate(state.step, config)
        # All N·A micro-batches of the step from the shared stream; this rank keeps its own A, in rank order.
        windows = [data.windows("train", rng, config.batch_size, config.seq_len) for _ in range(world * micro)]
        mine = windows[rank * micro : (rank + 1) * micro]
        strategy.zero_grad()
        gather = strategy.before_forward()
        compute_started = time.perf_counter()
        loss_sum = 0.0
        for i, window in enumerate(mine):
            strategy.begin_micro(last=i == micro - 1)
            loss = train_loss(model, torch.from_numpy(window.astype(np.int64)))  # window (B, T+1)
            _stop_if_not_finite("loss", loss.item(), state.step + 1)
            (loss / (world * micro)).backward()  # the all-reduced sum is then the mean over all N·A micro-batches
            loss_sum += loss.item()
        compute = time.perf_counter() - compute_started
        reduced = strategy.reduce_gradients()
        compute -= getattr(strategy, "hook_seconds", 0.0)  # collectives run inside backward by ZeRO 2 and 3
        grad_norm = strategy.clip()
        _stop_if_not_finite("gradients' global norm", grad_norm, state.step + 1)
        gather.add(strategy.step(lr))
        # One small all-reduce carries the step's loss and whether any rank was asked to stop, so all agree.
        shared = torch.tensor([loss_sum, float(ctx.stop_requested())], dtype=torch.float64)
        dist.all_reduce(shared)
        stopped = bool(shared[1] > 0)
        state.step += 1
        state.train_losses.append(float(shared[0]) / (world * micro))
        val_loss = None
        if state.step % config.eval_every == 0 or state.step == config.steps:
            strategy.before_forward()
            # Rank 0 evaluates; under ZeRO 3 every rank must, since each block's forward gathers its parameters
            # in a collective that all ranks have to join.
            if rank == 0 or strategy.stage == 3:
                val_loss = evaluate(model, data, config.seq_len, config.eval_windows, loss_fn)
                state.val_losses.append((state.step, val_loss))
            strategy.release()
        if state.step % config.checkpoint_every == 0 or state.step == config.steps or stopped:
            save()
        total = Transfer()
        total.add(reduced)
        total.add(gather)
        ctx.report({"step": state.step, "total": config.steps, "loss": state.train_losses[-1], "lr": lr,
                    "grad_norm": grad_norm, "val_loss": val_loss, "seconds": time.perf_counter() - started,
                    "tokens": tokens_step, "rank_step": RankStep(rank, compute, total.seconds, total.wait_seconds,
                                                                 total.buffer_bytes, total.formula_sent,
                                                                 total.measured_sent)})
    held = strategy.held()
    final = strategy.full_parameters()
    result = {"rank": rank, "stopped": stopped, "peak": dict(strategy.peak), "peak_total": strategy.peak_total,
              "held": held,
              "parameters": strategy.numel, "broadcast_bytes": strategy.broadcast.buffer_bytes,
              "val_losses": state.val_losses, "resumed_from": resumed_from}
    if rank == 0:
        result["final_parameters"] = final.numpy()
        if return_weights:
            strategy.gather_all()
            result["state_dict"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    elif return_weights:
        strategy.gather_all()
    model.eval()
    return result


def data_parallel_run(
    model_config,
    train_config,
    data,
    *,
    procs: int = 2,
    stage: int = 0,
    cancel: threading.Event | None = None,
    stop: threading.Event | None = None,
    on_step: Callable[[ParallelStep], None] | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    return_weights: bool = False,
    distill: dict | None = None,
    timeout_s: float = 120.0,
) -> DataParallelReport:
    """Train a GPT on ``procs`` local processes with gradients all-reduced (stage 0) or ZeRO-sharded (1–3).

    Blocks until the ranks finish; call it from a worker thread in a UI. Progress arrives through ``on_step``
    in the calling thread, once every rank has reported the step.

    Args:
        model_config: A GPTConfig.
        train_config: A TrainConfig; ``batch_size`` is per rank (the global batch is procs × batch_size ×
            accumulation windows), ``steps`` is the run's length.
        data: TokenData; its arrays are sent to every rank.
        procs: N, the number of ranks (2 on a 2-core machine; more share the cores).
        stage: 0 (data parallel) or the ZeRO stage 1, 2, 3 (see ``zero``).
        cancel: When set, the ranks are terminated at once and Cancelled is raised.
        stop: When set, the ranks finish their step, save the checkpoint (if any), and the report comes back
            with stopped=True.
        on_step: Called with each ParallelStep.
        checkpoint: Rank 0 saves here every checkpoint_every steps, at the end and when stopped (stage 0 only).
        resume: Continue from ``checkpoint`` when it exists.
        return_weights: Bring back rank 0's state_dict (to export weights).
        distill: Train against a shipped teacher (see ``train_rank``); None for the plain loss.
        timeout_s: Bound on the rendezvous and on every collective.

    Returns:
        The DataParallelReport.

    Raises:
        EngineError: procs < 1, a bad stage, a checkpoint with ZeRO, or a rank's error (RankFailed, with its
            traceback), such as a diverged loss or a checkpoint saved under other settings.
        Cancelled: ``cancel`` was set.
    """
    from workbench_engines.distributed.launch import launch

    if stage not in (0, 1, 2, 3):
        raise EngineError(f"stage must be 0 (data parallel) or a ZeRO stage 1, 2, 3; got {stage}")
    if stage and checkpoint is not None:
        raise EngineError("checkpoints are written by plain data parallelism (stage 0) only: a ZeRO rank holds "
                          "only its shard of the optimizer state")
    if resume and checkpoint is not None and Path(checkpoint).exists():
        from workbench_engines.models.train import load_checkpoint

        # Checked here too, so a mismatch is one clear message before any rank starts.
        check_checkpoint(load_checkpoint(Path(checkpoint)), checkpoint, model_config.as_dict(), train_config, procs)
    gather = StepGatherer(procs, None if on_step is None else lambda job, step: on_step(step))
    kwargs = {"model_config": model_config.as_dict(), "train_config": asdict(train_config),
              "train_tokens": data.train, "val_tokens": data.val, "stage": stage,
              "checkpoint": None if checkpoint is None else str(checkpoint), "resume": resume,
              "return_weights": return_weights, "distill": distill}
    results = launch("workbench_engines.distributed.ddp:train_rank", kwargs, procs=procs, on_report=gather,
                     cancel=cancel, stop=stop, timeout_s=timeout_s)
    first = results[0]
    report_type = DataParallelReport
    if stage:
        from workbench_engines.distributed.zero import ZeroReport

        report_type = ZeroReport
    steps = gather.runs[0] if gather.runs else []
    return report_type(procs, stage, first["parameters"], steps, first["stopped"], [r["peak"] for r in results],
                       [r["peak_total"] for r in results], first["final_parameters"], first.get("state_dict"),
                       first["broadcast_bytes"], first["val_losses"], first["resumed_from"],
                       [r["held"] for r in results])


# --- the gradient check: N ranks against one process -------------------------------------------------------------


def gradient_check_rank(ctx, *, model_config: dict, windows: np.ndarray, seed: int = 0,
                        torch_ddp: bool = True) -> dict[str, Any]:
    """One rank's gradients for its share of ``windows`` after the hand all-reduce, and after torch's DDP.

    Rank r takes windows[r·B : (r+1)·B] with B = len(windows) / N; the loss is scaled by 1/N before backward,
    so the all-reduced sum is the gradient of the mean loss over all windows.

    Args:
        ctx: The rank's RankContext.
        model_config: GPTConfig fields.
        windows: (N·B, T+1) int token windows.
        seed: Seeds torch before the model is built (the same weights on every rank).
        torch_ddp: Also compute them through torch.nn.parallel.DistributedDataParallel.

    Returns:
        {"grads": flat float32 array in model.parameters() order, "ddp_grads": likewise or None,
         "transfer": the all-reduce's Transfer, "master_addr", "listening": this process's listening TCP addresses}.
    """
    import torch

    from workbench_engines.models.gpt import GPT, GPTConfig
    from workbench_engines.models.train import causal_lm_loss

    world, rank = ctx.world_size, ctx.rank
    share = len(windows) // world
    mine = torch.from_numpy(windows[rank * share : (rank + 1) * share].astype(np.int64))  # (B, T+1)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**model_config))
    strategy = Replicated(model, _GradOnly(), rank, world)
    strategy.zero_grad()
    (causal_lm_loss(model, mine) / world).backward()
    transfer = strategy.reduce_gradients()
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy().copy()
    ddp_grads = None
    if torch_ddp:
        from torch.nn.parallel import DistributedDataParallel

        torch.manual_seed(seed)
        ddp = DistributedDataParallel(GPT(GPTConfig(**model_config)))
        causal_lm_loss(ddp, mine).backward()  # DDP averages: its all-reduce divides by N
        ddp_grads = torch.cat([p.grad.reshape(-1) for p in ddp.module.parameters()]).numpy().copy()
    return {"grads": grads, "ddp_grads": ddp_grads, "transfer": transfer, "master_addr": ctx.master_addr,
            "listening": listening_addresses()}


@dataclass(frozen=True)
class _GradOnly:
    """The TrainConfig fields Replicated reads, for a gradient check that takes no optimizer step."""

    weight_decay: float = 0.0
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    parts: str = "hand"
    grad_clip: float | None = None


def single_process_gradients(model_config, windows: np.ndarray, *, seed: int = 0, micro_batches: int = 1) -> np.ndarray:
    """The gradient of the mean loss over ``windows`` in this process: one batch, or accumulated over
    ``micro_batches`` equal micro-batches each scaled by 1/micro_batches (gradient accumulation).

    Args:
        model_config: A GPTConfig.
        windows: (B, T+1) int token windows; B divisible by micro_batches.
        seed: Seeds torch before the model is built.
        micro_batches: 1 for one batch of all windows.

    Returns:
        The flat gradient (float32) in model.parameters() order.
    """
    import torch

    from workbench_engines.models.gpt import GPT
    from workbench_engines.models.train import causal_lm_loss

    torch.manual_seed(seed)
    model = GPT(model_config)
    for part in torch.from_numpy(windows.astype(np.int64)).chunk(micro_batches):  # (B/m, T+1) each
        (causal_lm_loss(model, part) / micro_batches).backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy().copy()


def listening_addresses() -> list[str]:
    """The local addresses this process has TCP sockets listening on, read from /proc (Linux; [] elsewhere).

    Returns:
        "address:port" strings, IPv4 dotted or IPv6 in /proc's hex (an IPv4-mapped one as ::ffff:a.b.c.d).
    """
    import os

    inodes = set()
    try:
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: TCP_LISTEN
                found.append(_decode_address(fields[1]))
    return found


def _decode_address(hex_address: str) -> str:
    """/proc/net/tcp's "0100007F:1F90" as "127.0.0.1:8080" (and IPv4-mapped IPv6 as ::ffff:127.0.0.1:port)."""
    address, port = hex_address.split(":")
    if len(address) == 8:
        return ".".join(str(b) for b in bytes.fromhex(address)[::-1]) + f":{int(port, 16)}"
    words = [bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, 32, 8)]
    raw = b"".join(words)
    if raw[:12] == bytes(10) + b"\xff\xff":
        return "::ffff:" + ".".join(str(b) for b in raw[12:]) + f":{int(port, 16)}"
    return raw.hex() + f":{int(port, 16)}"
