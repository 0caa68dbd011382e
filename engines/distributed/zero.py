"""ZeRO stages 1–3, written by hand on the gloo process group, with per-rank memory measured and the paper's formula.

Rajbhandari, Rasley, Ruwase & He (2020), "ZeRO: Memory Optimizations Toward
Training Trillion Parameter Models" (§5, Figure 1). Data parallelism keeps N
copies of everything; ZeRO cuts the *model states* into N shards, one per
rank, and each rank updates only its own:

- stage 1, P_os: the optimizer state (Adam's two moments) is sharded. Each
  rank steps only its shard of the flat parameters, with its shard of the
  gradient, then an all-gather gives every rank the whole updated parameters.
- stage 2, P_os+g: gradients are sharded too. As backward produces each
  parameter's gradient, a hook reduces it over the ranks, keeps the part that
  falls in this rank's shard and frees the rest, so the whole gradient never
  sits in memory at once (with accumulation > 1 the earlier micro-batches'
  gradients are held whole until the last one, as DDP's no_sync does).
- stage 3, P_os+g+p: parameters are sharded too, layer by layer as in the
  paper: each transformer block is a unit with a flat buffer of its own, cut
  in N shards. A forward pre-hook all-gathers a block just before it runs and
  a forward hook frees it after; a hook on the block's output gathers it again
  just before its backward, and it is freed once its gradients are reduced.
  The root unit (the embedding, tied to the output projection, and the final
  norm) is gathered before forward and freed after backward, since the model
  uses it at both ends. At its peak a rank holds its shards, the root and one
  block whole.

Communication, by hand with torch.distributed on gloo:

- stage 1 all-reduces the flat gradient in place and reads its shard as a
  view. The paper reduce-scatters; gloo has ``reduce_scatter_single``, but
  measured it sends as many bytes as an all-reduce (torch's gloo backend
  implements it as one), so on gloo stage 1 costs an all-reduce *plus* the
  all-gather, 1.5× data parallelism at N = 2 either way (with NCCL a
  reduce-scatter and an all-gather cost exactly DP's all-reduce);
- stages 2 and 3 all-reduce each parameter's gradient inside its hook and
  keep their slice ("all-reduce then drop": a parameter's gradient does not
  split evenly across the shards' boundaries, and on gloo it costs the same
  bytes as a reduce-scatter would);
- stages 1 and 2 all-gather the updated parameters after the step
  (``all_gather_single``); stage 3 gathers each block twice a step (forward,
  backward) and the root once, and never after the step.

AdamW on a shard: the project's hand AdamW (``optim.adamw``) over at most two
views of this rank's slice of the flat buffer: the part inside the decayed
matrices (first in the layout) and the part inside the gains (stage 3: two
per unit). Adam is elementwise, so this is the same arithmetic as the whole
model's AdamW.
Clipping: each rank sums the squares of its gradient shard, one all-reduce
gives the global norm.

Memory is *measured*: the bytes of the storages behind the tensors each rank
holds (parameters, gradients, optimizer state, communication buffers), sampled
after backward, inside the gradient hooks, after each gather and after the
step; activations are not counted. ``zero_memory_per_device`` is the paper's formula.

Example::

    >>> zero_memory_per_device(7.5e9, 64, 3) / 1e9   # GB per device for P_os+g+p
    1.875
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench_engines.distributed.comm import Transfer, ring_allreduce_bytes, ring_half_bytes, timed
from workbench_engines.distributed.ddp import DataParallelReport, Replicated, step_at, storage_bytes
from workbench_engines.errors import EngineError

MIXED_PRECISION_K = 12
"""K, bytes of optimizer state per parameter under mixed-precision Adam: an fp32 copy of the weights, m and v."""


def zero_memory_per_device(psi: float, n_d: int, stage: int, *, k: float = MIXED_PRECISION_K,
                           param_bytes: float = 2, grad_bytes: float = 2) -> float:
    """Model-state bytes per device for Ψ parameters on N_d devices (Rajbhandari et al., 2020, §5, Figure 1).

    With mixed-precision Adam (fp16 parameters and gradients, 2 + 2 bytes; K = 12):

        stage 0 (baseline)   (2 + 2 + K)·Ψ
        stage 1 (P_os)       2Ψ + 2Ψ + K·Ψ/N_d
        stage 2 (P_os+g)     2Ψ + (2 + K)·Ψ/N_d
        stage 3 (P_os+g+p)   (2 + 2 + K)·Ψ/N_d

    For Ψ = 7.5e9 and N_d = 64: 120, 31.4, 16.6 and 1.9 GB. Training in fp32 with AdamW, as this project does,
    is param_bytes = grad_bytes = 4 and k = 8 (m and v; the weights are their own master copy).

    Args:
        psi: Ψ, parameters.
        n_d: N_d, data-parallel devices.
        stage: 0–3.
        k: Optimizer bytes per parameter.
        param_bytes: Bytes per parameter as the model holds it.
        grad_bytes: Bytes per gradient.

    Returns:
        Bytes per device.

    Raises:
        EngineError: a stage outside 0–3 or n_d < 1.
    """
    return sum(zero_memory_by_kind(psi, n_d, stage, k=k, param_bytes=param_bytes, grad_bytes=grad_bytes).values())


def zero_memory_by_kind(psi: float, n_d: int, stage: int, *, k: float = 8, param_bytes: float = 4,
                        grad_bytes: float = 4) -> dict[str, float]:
    """The formula's bytes per device split by kind (default: fp32 AdamW, as this project trains): stage s
    shards the optimizer state from s ≥ 1, the gradients from s ≥ 2, the parameters from s = 3.

    Raises:
        EngineError: a stage outside 0–3 or n_d < 1.
    """
    if stage not in (0, 1, 2, 3) or n_d < 1:
        raise EngineError(f"stage must be 0–3 and n_d ≥ 1, got stage {stage}, n_d {n_d}")
    return {"params": param_bytes * psi / (n_d if stage >= 3 else 1),
            "grads": grad_bytes * psi / (n_d if stage >= 2 else 1),
            "optimizer": k * psi / (n_d if stage >= 1 else 1)}


class ShardedOptimizer(Replicated):
    """Stage 1 (P_os): each rank keeps Adam's moments for its shard only, steps its shard, then all-gathers."""

    stage = 1

    def _shard_views(self, flat):
        """The parameter groups over this rank's slice of ``flat`` (laid out like the flat buffer): decayed part,
        undecayed part, each a view; padding past Ψ left out."""
        lo, hi = self.lo, min(self.hi, self.numel)
        groups = []
        if lo < min(hi, self.decayed):
            groups.append((flat[: min(hi, self.decayed) - lo], self.config.weight_decay, 0))
        if max(lo, self.decayed) < hi:
            start = max(lo, self.decayed) - lo
            groups.append((flat[start : hi - lo], 0.0, start))
        return groups

    def _shard_parameters(self):
        """The tensor AdamW updates: this rank's slice of the full flat parameters (a view)."""
        return self.flat_param[self.lo : self.hi]

    def _make_optimizer(self):
        """Hand AdamW over the shard's views, each with its .grad a view into the gradient shard."""
        from workbench_engines.optim.adamw import AdamW

        self.grad_shard = self._gradient_shard()
        groups = []
        for view, decay, start in self._shard_views(self._shard_parameters()):
            view.grad = self.grad_shard[start : start + view.numel()]
            groups.append({"params": [view], "weight_decay": decay})
        if not groups:
            raise EngineError(f"rank {self.rank}'s shard holds no parameters: more ranks than parameters")
        return AdamW(groups, lr=self.config.lr, betas=self.config.betas)

    def _gradient_shard(self):
        """Stage 1 keeps the whole gradient, so its shard is a view of the flat gradient buffer."""
        return self.flat_grad[self.lo : self.hi]

    def reduce_gradients(self) -> Transfer:
        """Sum the flat gradient over the ranks, in place; the optimizer reads this rank's shard of it.

        The paper reduce-scatters here. On gloo ``reduce_scatter_single`` sends as many bytes as an all-reduce
        (measured: torch's gloo backend runs an all-reduce and keeps a slice) and would need a separate shard
        buffer, so the in-place all-reduce is the cheaper of the two on this backend.
        """
        import torch.distributed as dist

        nbytes = self.flat_grad.nbytes
        self.sample()
        return timed(lambda: dist.all_reduce(self.flat_grad), nbytes, ring_allreduce_bytes(nbytes, self.world))

    def clip(self) -> float:
        """Global norm from each shard's sum of squares (one all-reduce), then clip the shard alone."""
        import torch
        import torch.distributed as dist

        from workbench_engines.optim.clip import clip_scale

        squares = torch.sum(self.grad_shard.double() ** 2).reshape(1)
        dist.all_reduce(squares)
        norm = float(squares.sqrt())
        if self.config.grad_clip is not None:
            scale = clip_scale(norm, self.config.grad_clip)
            if not scale >= 1.0:
                self.grad_shard.mul_(scale)
        return norm

    def step(self, lr: float) -> Transfer:
        """AdamW on the shard, then all-gather every rank's updated shard into the full flat parameters."""
        step_at(self.optimizer, lr)
        self.sample()
        return self._gather()

    def _gather(self) -> Transfer:
        """All-gather the parameter shards into flat_param (a copy of this rank's shard is the input)."""
        import torch.distributed as dist

        mine = self._shard_parameters().clone()
        self.sample({"buffers": mine.nbytes})
        nbytes = self.flat_param.nbytes
        return timed(lambda: dist.all_gather_single(self.flat_param, mine), nbytes, ring_half_bytes(nbytes, self.world))

    def held(self) -> dict[str, int]:
        """Bytes held now by kind; the gradient shard counts with the gradients."""
        from workbench_engines.optim.adamw import optimizer_state_bytes

        return {"params": storage_bytes([self.flat_param]),
                "grads": storage_bytes([self.flat_grad, self.grad_shard]),
                "optimizer": optimizer_state_bytes(self.optimizer), "buffers": 0}


class ShardedGradients(ShardedOptimizer):
    """Stage 2 (P_os+g): also gradients: each parameter's gradient is reduced in a hook as backward makes it,
    this rank's slice is kept in the gradient shard and the rest freed."""

    stage = 2

    def _gradient_shard(self):
        """A buffer of its own: only this rank's slice of the reduced gradient is kept."""
        import torch

        return torch.zeros(self.shard)

    def _make_gradients(self) -> None:
        """No flat gradient buffer: autograd makes each gradient, the hook reduces and frees it."""
        self.flat_grad = None
        self._last = True
        self._hooked = Transfer()
        self.hook_seconds = 0.0
        """Seconds of collectives inside this step's backward (the loop subtracts them from compute)."""
        for p, (a, b) in zip(self.order, self.offsets):
            p.grad = None
            p.register_post_accumulate_grad_hook(self._hook_for(p, a, b))

    def _hook_for(self, p, a: int, b: int):
        """The hook for parameter ``p`` at [a, b) of the flat layout."""

        def reduce_and_keep_slice(param) -> None:
            import torch.distributed as dist

            if not self._last:
                return  # an earlier micro-batch: keep accumulating the whole gradient locally
            grad = param.grad
            self.sample()  # held() counts every live gradient already
            transfer = timed(lambda: dist.all_reduce(grad), grad.nbytes, ring_allreduce_bytes(grad.nbytes, self.world),
                             barrier=False)
            self._hooked.add(transfer)
            self.hook_seconds += transfer.seconds
            lo, hi = max(a, self.lo), min(b, self.hi)
            if lo < hi:
                self.grad_shard[lo - self.lo : hi - self.lo] = grad.reshape(-1)[lo - a : hi - a]
            param.grad = None

        return reduce_and_keep_slice

    def zero_grad(self) -> None:
        """Zero the gradient shard; the per-parameter gradients were freed by the hooks."""
        self.grad_shard.zero_()
        self._hooked = Transfer()
        self.hook_seconds = 0.0
        for p in self.order:
            p.grad = None

    def begin_micro(self, last: bool) -> None:
        """Reduce in the hooks only during the last micro-batch's backward."""
        self._last = last

    def reduce_gradients(self) -> Transfer:
        """Already done by the hooks during backward: return what they sent."""
        self.sample()
        return self._hooked

    def held(self) -> dict[str, int]:
        """Bytes held now by kind; live per-parameter gradients (before their hook ran) count as gradients."""
        from workbench_engines.optim.adamw import optimizer_state_bytes

        live = [p.grad for p in self.order if p.grad is not None]
        return {"params": storage_bytes([self.flat_param, *self._extra_params()]),
                "grads": storage_bytes([self.grad_shard, *live]),
                "optimizer": optimizer_state_bytes(self.optimizer), "buffers": 0}

    def _extra_params(self) -> list:
        """Parameter tensors held besides flat_param (stage 3's shard)."""
        return []


@dataclass
class _Unit:
    """A group of parameters gathered and freed together (stage 3): one transformer block, or the root."""

    params: list
    """In the unit's flat order: matrices first (decayed), then gains."""
    offsets: list
    """(start, end) of each parameter in the unit's flat buffer."""
    decayed: int
    """Elements of the matrices, at the front."""
    flat: object
    """The full buffer (padded to N shards); its storage is resized to 0 while the unit is released."""
    shard: object
    """This rank's persistent slice of the parameters."""
    grad_shard: object
    """This rank's slice of the reduced gradient."""
    lo: int
    hi: int
    resident: bool = False
    """The root unit stays gathered from forward to the end of backward (the tied embedding is used at both ends)."""
    gathered: bool = False
    reduced: int = 0
    """Parameters whose gradient hook ran in the current backward."""


class ShardedParameters(ShardedGradients):
    """Stage 3 (P_os+g+p): also parameters, gathered layer by layer.

    Each transformer block is a unit with its own flat buffer, cut in N shards; the root unit holds the rest
    (the embedding, tied to the output projection, and the final norm). Between steps a rank holds only its
    shards. A block's parameters are all-gathered by a forward pre-hook and freed by a forward hook; a hook on
    the block's output gathers them again just before the block's backward runs, and they are freed once every
    one of its gradients has been reduced. The root is gathered once before forward and freed after backward,
    since the embedding is used at both ends of the model. So at most the root and a block or two are whole at
    any moment, as in the paper (and in FSDP, whose storage-freeing trick this uses: the buffer's storage is
    resized to 0 and back, and the gather writes through an alias with its own version counter, so autograd's
    saved views of the parameters stay valid).
    """

    stage = 3

    def _make_gradients(self) -> None:
        """Units instead of one flat buffer: build them from the broadcast weights, then free the flat buffer."""
        import torch

        blocks = [list(block.parameters()) for block in self.model.blocks]
        in_blocks = {id(p) for params in blocks for p in params}
        root = [p for p in self.order if id(p) not in in_blocks]
        self.units = [self._unit(root, resident=True)] + [self._unit(params) for params in blocks]
        self.flat_param = torch.zeros(0)
        self.grad_shard = torch.zeros(0)
        super()._make_gradients()
        for unit in self.units[1:]:
            self._hook_block(unit)

    def _unit(self, params, resident: bool = False) -> _Unit:
        """A unit over ``params``: its flat buffer (the parameters become views into it) and this rank's shards."""
        import torch

        ordered = [p for p in params if p.ndim >= 2] + [p for p in params if p.ndim < 2]
        numel = sum(p.numel() for p in ordered)
        padded = math.ceil(numel / self.world) * self.world
        shard = padded // self.world
        flat = torch.zeros(padded)
        offsets, start = [], 0
        for p in ordered:
            flat[start : start + p.numel()] = p.detach().reshape(-1)
            offsets.append((start, start + p.numel()))
            start += p.numel()
        lo = self.rank * shard
        unit = _Unit(ordered, offsets, sum(p.numel() for p in ordered if p.ndim >= 2), flat,
                     flat[lo : lo + shard].clone(), torch.zeros(shard), lo, lo + shard, resident)
        for p, (a, b) in zip(ordered, offsets):
            p.data = flat[a:b].view_as(p)
        self._free(unit)
        return unit

    def _hook_for(self, p, a: int, b: int):
        """Stage 2's hook, on the unit's layout: reduce, keep this rank's slice, free; free the block when done."""
        unit, index = next((u, i) for u in self.units for i, q in enumerate(u.params) if q is p)
        a, b = unit.offsets[index]

        def reduce_and_keep_slice(param) -> None:
            import torch.distributed as dist

            if self._last:
                grad = param.grad
                self.sample()  # held() counts every live gradient already
                transfer = timed(lambda: dist.all_reduce(grad), grad.nbytes,
                                 ring_allreduce_bytes(grad.nbytes, self.world), barrier=False)
                self._hooked.add(transfer)
                self.hook_seconds += transfer.seconds
                lo, hi = max(a, unit.lo), min(b, unit.hi)
                if lo < hi:
                    unit.grad_shard[lo - unit.lo : hi - unit.lo] = grad.reshape(-1)[lo - a : hi - a]
                param.grad = None
            unit.reduced += 1
            if unit.reduced == len(unit.params):  # the block's backward is over: its parameters can go
                unit.reduced = 0
                if not unit.resident:
                    self._free(unit)

        return reduce_and_keep_slice

    def _hook_block(self, unit: _Unit) -> None:
        """Gather a block before its forward, free it after, and gather it again before its backward."""
        import torch

        block = next(b for b in self.model.blocks if any(p is unit.params[0] for p in b.parameters()))

        def gather_for_backward(grad):
            self._gather_unit(unit)
            return grad

        def before(module, args):
            self._gather_unit(unit)

        def after(module, args, output):
            if torch.is_grad_enabled() and output.requires_grad:
                output.register_hook(gather_for_backward)
            self._free(unit)

        block.register_forward_pre_hook(before)
        block.register_forward_hook(after)

    def _gather_unit(self, unit: _Unit, sample: bool = True) -> None:
        """Reallocate a unit's buffer and all-gather every rank's shard into it (through an alias, leaving the
        parameters' version counters alone); ``sample`` folds the moment into the peaks (not when gathering
        everything to hand the result back)."""
        import torch
        import torch.distributed as dist

        if unit.gathered:
            return
        storage = unit.flat.untyped_storage()
        storage.resize_(unit.flat.numel() * unit.flat.element_size())
        alias = torch.empty(0).set_(storage, 0, (unit.flat.numel(),))
        transfer = timed(lambda: dist.all_gather_single(alias, unit.shard), unit.flat.nbytes,
                         ring_half_bytes(unit.flat.nbytes, self.world), barrier=False)
        self._hooked.add(transfer)
        self.hook_seconds += transfer.seconds
        unit.gathered = True
        if sample:
            self.sample()

    def _free(self, unit: _Unit) -> None:
        """Release a unit's full buffer (its parameters keep their shapes, with no memory behind them)."""
        unit.flat.untyped_storage().resize_(0)
        unit.gathered = False

    def _make_optimizer(self):
        """Hand AdamW over each unit's shard: at most two views per unit (its matrices' part, its gains' part)."""
        from workbench_engines.optim.adamw import AdamW

        groups = []
        for unit in self.units:
            numel = unit.offsets[-1][1]
            lo, hi = unit.lo, min(unit.hi, numel)
            if lo < min(hi, unit.decayed):
                view = unit.shard[: min(hi, unit.decayed) - lo]
                view.grad = unit.grad_shard[: view.numel()]
                groups.append({"params": [view], "weight_decay": self.config.weight_decay})
            if max(lo, unit.decayed) < hi:
                start = max(lo, unit.decayed) - lo
                view = unit.shard[start : hi - lo]
                view.grad = unit.grad_shard[start : hi - lo]
                groups.append({"params": [view], "weight_decay": 0.0})
        return AdamW(groups, lr=self.config.lr, betas=self.config.betas)

    def zero_grad(self) -> None:
        """Zero the gradient shards; the per-parameter gradients were freed by the hooks."""
        for unit in self.units:
            unit.grad_shard.zero_()
            unit.reduced = 0
        self._hooked = Transfer()
        self.hook_seconds = 0.0
        for p in self.order:
            p.grad = None

    def before_forward(self) -> Transfer:
        """Gather the root unit (the blocks gather themselves in their hooks)."""
        self._hooked = Transfer()
        self.hook_seconds = 0.0
        self._gather_unit(self.units[0])
        gathered, self._hooked = self._hooked, Transfer()
        self.hook_seconds = 0.0
        return gathered

    def release(self) -> None:
        """Free every unit's full buffer."""
        for unit in self.units:
            self._free(unit)

    def reduce_gradients(self) -> Transfer:
        """The hooks reduced the gradients (and gathered the blocks) during backward; free the root now."""
        self.sample()
        self.release()
        return self._hooked

    def clip(self) -> float:
        """Global norm from every unit's gradient shard (one all-reduce of the sum of squares), then clip them."""
        import torch
        import torch.distributed as dist

        from workbench_engines.optim.clip import clip_scale

        squares = sum(torch.sum(u.grad_shard.double() ** 2) for u in self.units).reshape(1)
        dist.all_reduce(squares)
        norm = float(squares.sqrt())
        if self.config.grad_clip is not None:
            scale = clip_scale(norm, self.config.grad_clip)
            if not scale >= 1.0:
                for unit in self.units:
                    unit.grad_shard.mul_(scale)
        return norm

    def step(self, lr: float) -> Transfer:
        """AdamW on the shards; nothing to gather until the next forward."""
        step_at(self.optimizer, lr)
        self.sample()
        return Transfer()

    def held(self) -> dict[str, int]:
        """Bytes held now by kind: the shards, any unit gathered now, live per-parameter gradients."""
        from workbench_engines.optim.adamw import optimizer_state_bytes

        live = [p.grad for p in self.order if p.grad is not None]
        return {"params": storage_bytes([t for u in self.units for t in (u.flat, u.shard)]),
                "grads": storage_bytes([*(u.grad_shard for u in self.units), *live]),
                "optimizer": optimizer_state_bytes(self.optimizer), "buffers": 0}

    def full_parameters(self):
        """Gather every unit, copy the parameters out in the global flat layout, free again (a collective)."""
        import torch

        for unit in self.units:
            self._gather_unit(unit, sample=False)
        full = torch.cat([p.detach().reshape(-1) for p in self.order])
        self.release()
        return full

    def gather_all(self) -> None:
        """Gather every unit and keep them (to read the model's state_dict); a collective."""
        for unit in self.units:
            self._gather_unit(unit, sample=False)


STAGES = {1: ShardedOptimizer, 2: ShardedGradients, 3: ShardedParameters}
"""The ZeRO stage → its strategy class (stage 0, plain data parallelism, is ddp.Replicated)."""


@dataclass
class ZeroReport(DataParallelReport):
    """A ZeRO run's report: DataParallelReport's figures, and the formula's bytes for comparison."""

    def formula_bytes(self) -> dict[str, float]:
        """The paper's formula for this run's Ψ, N and stage, split by kind, in fp32 AdamW's bytes (4, 4, K = 8)."""
        return zero_memory_by_kind(self.parameters, self.procs, self.stage)


def zero_run(stage: int, model_config, train_config, data, *, procs: int = 2, cancel=None, stop=None, on_step=None,
             timeout_s: float = 120.0) -> ZeroReport:
    """Train with ZeRO ``stage`` (1, 2 or 3; 0 is plain data parallelism) on ``procs`` local ranks.

    The same loop, data and arithmetic as ``ddp.data_parallel_run``; only where the model states live differs,
    so the parameters after k steps match the unsharded run's to float32 rounding.

    Args:
        stage: 0–3.
        model_config: A GPTConfig.
        train_config: A TrainConfig (batch_size per rank).
        data: TokenData.
        procs: N.
        cancel: Terminates the ranks when set (Cancelled).
        stop: Asks them to stop after the current step.
        on_step: Called with each ddp.ParallelStep.
        timeout_s: Bound on the rendezvous and on every collective.

    Returns:
        The ZeroReport: per-rank peak bytes by kind, per-step bytes and times, the final parameters.
    """
    from workbench_engines.distributed.ddp import data_parallel_run

    return data_parallel_run(model_config, train_config, data, procs=procs, stage=stage, cancel=cancel, stop=stop,
                             on_step=on_step, timeout_s=timeout_s)
