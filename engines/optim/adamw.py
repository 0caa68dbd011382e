"""AdamW written out: Adam's bias-corrected moments with weight decay decoupled from the gradient.

Loshchilov & Hutter (2019, "Decoupled Weight Decay Regularization", Algorithm 2).
For each parameter θ with gradient g, at step t = 1, 2, …:

    θ ← θ − lr·λ·θ                        decoupled weight decay (line 12's λθ term)
    m ← β₁·m + (1 − β₁)·g                 first moment (line 7)
    v ← β₂·v + (1 − β₂)·g²                second moment (line 8)
    m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)   bias correction (lines 9–10; Kingma & Ba, 2015)
    θ ← θ − lr · m̂ / (√v̂ + ε)             (line 12)

The moments start at zero, so without the correction both are biased towards
zero early on: at t = 1, m = (1 − β₁)·g and v = (1 − β₂)·g². Dropped together,
the first step would be lr·(1 − β₁)/√(1 − β₂) in size: 3.2·lr with Adam's
β = (0.9, 0.999), 0.45·lr with the training loop's (0.9, 0.95) (Kingma & Ba,
2015, §3). With the correction m̂ = g and √v̂ = |g| exactly, so the first update
of every weight is lr·g/(|g| + ε), about lr in size whatever the gradient's
scale.

Why decoupled: Adam with L2 regularisation adds λθ to g, and the sum is then
divided by √v̂, so weights with large gradients are decayed less than others.
AdamW subtracts lr·λ·θ outside the adaptive step, so every weight decays by the
same fraction. The paper scales the decay by the schedule multiplier η_t only;
here, as in ``torch.optim.AdamW``, it is scaled by the learning rate itself
(lr = η_t·α), which follows the schedule too.

The operations follow torch's single-tensor path in the same order, so that a
run on these parts matches a run on torch's to float32 rounding. The state
dict has torch's layout (``{"state": {index: {"step", "exp_avg",
"exp_avg_sq"}}, "param_groups": [...]}``), so a checkpoint written by either
optimizer resumes under the other.

Example::

    >>> opt = AdamW([{"params": matrices, "weight_decay": 0.1}, {"params": gains, "weight_decay": 0.0}], lr=3e-3)
    >>> loss.backward(); opt.step(); opt.zero_grad()
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from workbench_engines.errors import EngineError

if TYPE_CHECKING:
    import torch

HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay")
"""What each param group carries besides its params."""


def optimizer_state_bytes(optimizer: Any) -> int:
    """Bytes of every tensor an optimizer keeps per parameter (moments, step counters): ours or torch's.

    Args:
        optimizer: Anything with a ``state`` mapping of per-parameter dicts (torch.optim.Optimizer, AdamW here).

    Returns:
        The total, in bytes (AdamW in float32: two moments, 8 bytes a weight, plus 4 per tensor for its step).
    """
    import torch

    return sum(value.nbytes for entry in optimizer.state.values() for value in entry.values()
               if isinstance(value, torch.Tensor))


class AdamW:
    """AdamW over lists of torch parameters, in param groups with their own hyperparameters.

    Args:
        params: Tensors, or dicts {"params": tensors, and any of lr, betas, eps, weight_decay} (param groups).
        lr: Learning rate; a schedule sets each group's "lr" before every step.
        betas: (β₁, β₂), the moments' decay rates.
        eps: ε, added to √v̂.
        weight_decay: λ, decoupled.

    Raises:
        EngineError: no parameters, a parameter twice, a parameter that is not a floating-point tensor, or a
            hyperparameter out of range (lr < 0, β outside [0, 1), eps < 0, weight_decay < 0).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        """Check the groups and hyperparameters (see the class's Args and Raises); the moments start empty."""
        import torch

        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        given = list(params)
        if given and not isinstance(given[0], dict):
            given = [{"params": given}]
        self.param_groups: list[dict[str, Any]] = []
        """Each {"params": [tensor, …], "lr", "betas", "eps", "weight_decay"}; the training loop sets "lr"."""
        seen: set[int] = set()
        for group in given:
            tensors = list(group["params"])
            for p in tensors:
                if not isinstance(p, torch.Tensor) or not p.is_floating_point():
                    raise EngineError(f"AdamW optimises floating-point tensors, got {type(p).__name__}"
                                      f"{'' if not isinstance(p, torch.Tensor) else ' of ' + str(p.dtype)}")
                if id(p) in seen:
                    raise EngineError("a parameter appears in more than one param group")
                seen.add(id(p))
            full = {**defaults, **{k: v for k, v in group.items() if k != "params"}, "params": tensors}
            full["betas"] = tuple(full["betas"])
            _check_hyperparameters(full)
            self.param_groups.append(full)
        if not seen:
            raise EngineError("AdamW was given no parameters")
        self.state: dict[int, dict[str, torch.Tensor]] = {}
        """Parameter index (over all groups, in order) -> {"step", "exp_avg", "exp_avg_sq"}, made on its first step."""

    def _indexed(self) -> Iterable[tuple[int, dict[str, Any], torch.Tensor]]:
        """(index, group, parameter) for every parameter, numbered across groups as the state dict numbers them."""
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield index, group, p
                index += 1

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (set_to_none) or fill it with zeros."""
        for _, _, p in self._indexed():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def step(self) -> None:
        """One AdamW update of every parameter that has a gradient (Algorithm 2, lines 6–12).

        Raises:
            EngineError: a gradient is sparse.
        """
        import torch

        with torch.no_grad():
            for index, group, p in self._indexed():
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise EngineError("AdamW here does not take sparse gradients")
                lr, (beta1, beta2), eps, decay = (group[k] for k in HYPERPARAMETERS)
                state = self.state.get(index)
                if state is None:
                    state = self.state[index] = {
                        # A float32 counter, as torch keeps it, so either optimizer reads the other's checkpoint.
                        "step": torch.tensor(0.0),
                        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                    }
                g, m, v = p.grad, state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                t = state["step"].item()
                if decay != 0:
                    p.mul_(1 - lr * decay)  # θ ← θ − lr·λ·θ
                m.lerp_(g, 1 - beta1)  # m ← β₁m + (1 − β₁)g
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v ← β₂v + (1 − β₂)g²
                bias1 = 1 - beta1 ** t
                bias2 = 1 - beta2 ** t
                # θ ← θ − lr·m̂/(√v̂ + ε), with m̂ = m/bias1 folded into the step size
                denom = (v.sqrt() / math.sqrt(bias2)).add_(eps)
                p.addcdiv_(m, denom, value=-lr / bias1)

    def state_dict(self) -> dict[str, Any]:
        """The moments and hyperparameters in torch.optim.AdamW's layout (parameters named by index).

        Returns:
            {"state": {index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [{…, "params": [indices]}]};
            the tensors are the live ones, as torch's are (torch.save copies them).
        """
        groups, index = [], 0
        for group in self.param_groups:
            count = len(group["params"])
            groups.append({**{k: group[k] for k in HYPERPARAMETERS}, "amsgrad": False, "maximize": False,
                           "decoupled_weight_decay": True, "params": list(range(index, index + count))})
            index += count
        return {"state": {i: dict(entry) for i, entry in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Take the moments and hyperparameters from ``saved`` (this class's state_dict or torch.optim.AdamW's).

        Raises:
            EngineError: the groups or their sizes differ from this optimizer's, the state's shapes differ from
                the parameters', it was saved with AMSGrad or maximize (which this AdamW does not do), or it is
                not an Adam state: a group lacks a hyperparameter or a parameter's entry lacks step, exp_avg or
                exp_avg_sq (an SGD checkpoint, say). Nothing is changed when it raises.
        """
        import torch

        groups = saved.get("param_groups", [])
        for number, group in enumerate(groups):
            missing = [key for key in ("params", *HYPERPARAMETERS) if key not in group]
            if missing:
                raise EngineError(f"saved param group {number} has no {', '.join(missing)}: not an AdamW "
                                  "optimizer's state")
        sizes = [len(g["params"]) for g in groups]
        if sizes != [len(g["params"]) for g in self.param_groups]:
            raise EngineError(f"optimizer state saved for param groups of sizes {sizes}, not "
                              f"{[len(g['params']) for g in self.param_groups]}")
        if any(g.get("amsgrad") or g.get("maximize") for g in groups):
            raise EngineError("optimizer state saved with amsgrad or maximize, which this AdamW does not do")
        # torch numbers parameters by position across groups, whatever numbers the saved groups list.
        saved_ids = [i for g in groups for i in g["params"]]
        params = [p for _, _, p in self._indexed()]
        state: dict[int, dict[str, torch.Tensor]] = {}
        for position, saved_id in enumerate(saved_ids):
            entry = saved["state"].get(saved_id)
            if entry is None:
                continue
            missing = [key for key in ("step", "exp_avg", "exp_avg_sq") if key not in entry]
            if missing:
                raise EngineError(f"saved state of parameter {saved_id} has no {', '.join(missing)} (it holds "
                                  f"{', '.join(entry) or 'nothing'}): not an AdamW optimizer's state")
            p = params[position]
            for key in ("exp_avg", "exp_avg_sq"):
                if tuple(entry[key].shape) != tuple(p.shape):
                    raise EngineError(f"saved {key} of shape {tuple(entry[key].shape)} for a parameter of shape "
                                      f"{tuple(p.shape)}")
            step = torch.as_tensor(entry["step"], dtype=torch.float32)
            state[position] = {
                "step": step.detach().clone(),
                "exp_avg": entry["exp_avg"].detach().to(p.device, p.dtype).clone(),
                "exp_avg_sq": entry["exp_avg_sq"].detach().to(p.device, p.dtype).clone(),
            }
        for group, saved_group in zip(self.param_groups, groups):
            for key in HYPERPARAMETERS:
                group[key] = tuple(saved_group[key]) if key == "betas" else saved_group[key]
        self.state = state

    def state_bytes(self) -> int:
        """Bytes of optimizer state: the two moments (the parameters' dtype) and a 4-byte step per tensor."""
        return optimizer_state_bytes(self)


def _check_hyperparameters(group: dict[str, Any]) -> None:
    """Raise EngineError for a hyperparameter out of range.

    Raises:
        EngineError: lr, eps or weight_decay < 0 (or nan), or a β outside [0, 1).
    """
    beta1, beta2 = group["betas"]
    if not group["lr"] >= 0 or not group["eps"] >= 0 or not group["weight_decay"] >= 0:
        raise EngineError(f"AdamW needs lr, eps and weight_decay >= 0, got {group['lr']}, {group['eps']}, "
                          f"{group['weight_decay']}")
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise EngineError(f"AdamW's betas must lie in [0, 1), got {group['betas']}")
