"""A tiny Mamba language model (Gu & Dao, 2023, §3.4 and Figure 3), trained by the project's loop beside a GPT.

The model: token embedding, ``n_layers`` residual Mamba blocks, a final
RMSNorm and the embedding reused as the output projection (tied, as
``models.gpt.GPT``). One block, with B batch, T time, C ``d_model``,
Di = ``expand``·C the inner width, N ``d_state``, R ``dt_rank``, K ``d_conv``:

    x (B, T, C) ── RMSNorm ── in_proj ──┬── u (B, T, Di) ── causal depthwise conv1d (K taps) ── SiLU ── u'
                                        └── z (B, T, Di)
    u' ── x_proj ── (Δ_raw (R), B_t (N), C_t (N)) per token;  Δ = softplus(dt_proj(Δ_raw))   (B, T, Di)
    y  = selective scan(u', Δ, A, B, C, D)                                                   (B, T, Di)
    x  + out_proj(y · SiLU(z))                                                               (B, T, C)

The scan (Algorithm 2; eq. 2a-2b with the discretisation eq. 4): per channel
h_t = exp(Δ_t A) h_{t−1} + Δ_t B_t u'_t, y_t = C_t · h_t + D u'_t, zero-order
hold for A and, as the reference implementation's ``selective_scan_ref``
does (mamba_ssm/ops/selective_scan_interface.py), the simplified Euler step
Δ B for B. A = −exp(A_log) is (Di, N), initialised to −(1, 2, ..., N) per
channel (S4D-real); Δ's bias is set so that softplus(bias) is log-uniform in
[dt_min, dt_max]; D starts at 1 — the reference's ``Mamba.__init__``.

Two ways to run it:

- **Training** (``forward``): the whole sequence at once. The scan is
  :func:`scan`, the order of ``scan.torch_loop`` (every exp(Δ A) and Δ B u at
  once, then a loop over time of one fused multiply-add), on torch tensors,
  its gradient the same loop run backwards (:class:`LinearRecurrence`,
  written out so autograd records one node, not two per token). That order
  materialises (T, B, Di, N) tensors, which the paper's fused kernel (§3.3.2)
  keeps out of main memory; on a CPU at this size they are most of a training
  step's time. Why the loop and not the log-space
  parallel scan (``scan.torch_parallel``): at the training lengths here
  (T ≤ 256) the loop is T small multiply-adds, while the parallel form does
  several times the arithmetic (two logcumsumexp per chunk, each about 15× a
  cumsum on a CPU) and takes the log of Δ B u's positive and negative parts,
  whose gradient is undefined where they are zero. A GPU would choose the
  other way (or the fused kernel of the paper's §3.3).
- **Decoding** (``prefill`` then ``step``): one token at a time, each layer
  keeping only its conv state (the last K − 1 inner inputs, (B, Di, K − 1))
  and its SSM state h (B, Di, N): :class:`MambaState`, the same bytes at
  token 10 and token 10⁶. A transformer's KV cache instead grows by
  ``GPTConfig.kv_bytes_per_token`` every token. ``step(..., backend="native")``
  runs the scan of length 1 through the C kernel (native/src/wb_scan.c).

:func:`compare_to_transformer` trains this model and a GPT of about the same
parameter count with ``models.train.train`` (same data, tokenizer, steps,
batch, schedule and seed) and measures both: see :class:`Comparison`.

Example::

    >>> model = Mamba(MambaConfig(vocab_size=256, d_model=32, n_layers=2))
    >>> model(torch.zeros(2, 10, dtype=torch.long)).shape   # ids (B, T) -> logits (B, T, V)
    torch.Size([2, 10, 256])
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench_engines.errors import EngineError
from workbench_engines.models.layers import RMSNorm, silu

STEP_BACKENDS = ("torch", "native")
"""Who runs the length-1 scan of a decode step: torch (this module) or the C kernel (float32)."""


@dataclass(frozen=True)
class MambaConfig:
    """A Mamba's shape; frozen and checked on construction.

    Raises:
        EngineError: a size is not positive, or dt_min/dt_max are out of order.
    """

    vocab_size: int
    d_model: int = 64
    """C: the residual stream's width."""
    n_layers: int = 4
    """Mamba blocks. One block holds about 6·C² weights (expand 2), a transformer block about 12·C², so a Mamba
    matches a transformer's size with twice its layers (the paper's §4.2 convention)."""
    d_state: int = 16
    """N: state entries per inner channel."""
    expand: int = 2
    """Di = expand · C, the inner width the scan runs over."""
    d_conv: int = 4
    """K: taps of the causal depthwise convolution."""
    dt_rank: int | None = None
    """R: Δ's bottleneck width; None means ceil(C / 16), the reference's "auto"."""
    dt_min: float = 0.001
    dt_max: float = 0.1
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "d_state", "expand", "d_conv"):
            if getattr(self, name) < 1:
                raise EngineError(f"MambaConfig.{name} must be positive, got {getattr(self, name)}")
        if self.d_conv < 2:
            raise EngineError(f"MambaConfig.d_conv must be at least 2 (decoding keeps its last d_conv - 1 inputs), "
                              f"got {self.d_conv}")
        if self.dt_rank is not None and self.dt_rank < 1:
            raise EngineError(f"MambaConfig.dt_rank must be positive or None, got {self.dt_rank}")
        if not 0 < self.dt_min <= self.dt_max:
            raise EngineError(f"need 0 < dt_min <= dt_max, got {self.dt_min} and {self.dt_max}")

    @property
    def d_inner(self) -> int:
        """Di = expand · C."""
        return self.expand * self.d_model

    @property
    def rank(self) -> int:
        """R: dt_rank, or ceil(C / 16)."""
        return self.dt_rank or math.ceil(self.d_model / 16)

    def state_bytes_per_layer(self, batch: int = 1, bytes_per_value: int = 4) -> int:
        """Bytes one layer keeps between decode steps: conv state Di·(K − 1) plus SSM state Di·N, per sequence."""
        return batch * self.d_inner * (self.d_conv - 1 + self.d_state) * bytes_per_value

    def state_bytes(self, batch: int = 1, bytes_per_value: int = 4) -> int:
        """Bytes the whole model keeps between decode steps, at any context length."""
        return self.n_layers * self.state_bytes_per_layer(batch, bytes_per_value)

    def as_dict(self) -> dict:
        """The fields as a plain dict (what ``train`` stores in a checkpoint as model_config)."""
        return asdict(self)


@dataclass
class MambaState:
    """What decoding carries from one token to the next: per layer, the conv and SSM states."""

    conv: list[torch.Tensor]
    """(B, Di, K − 1) per layer: the inner inputs of the last K − 1 tokens, oldest first."""
    ssm: list[torch.Tensor]
    """(B, Di, N) per layer: h after the last token."""
    length: int = 0
    """Tokens read so far."""

    @property
    def nbytes(self) -> int:
        """Bytes held, counted from the tensors themselves."""
        return sum(t.numel() * t.element_size() for t in (*self.conv, *self.ssm))


class LinearRecurrence(torch.autograd.Function):
    """Every h_t = a_t ⊙ h_{t−1} + b_t of a sequence, t = 0..L−1, with its gradient written out.

    a, b (L, ...) and h_0 (...) in; the states (L, ...) out. Autograd would
    record two nodes per step; here the forward pass is L fused
    multiply-adds into one preallocated tensor, and the backward pass is the
    same recurrence run in reverse (the adjoint of a linear recurrence is one):

        g_t = ∂ℓ/∂h_t (direct) + a_{t+1} ⊙ g_{t+1},   ∂ℓ/∂b_t = g_t,   ∂ℓ/∂a_t = g_t ⊙ h_{t−1},   ∂ℓ/∂h_{−1} = a_0 ⊙ g_0

    — what Mamba's fused kernel does in its backward pass (§3.3.2), minus the recomputation.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        states = b.new_empty(b.shape)  # contiguous, time first, whatever the layout of b
        h = h0
        for t in range(a.shape[0]):
            h = torch.addcmul(b[t], a[t], h, out=states[t])
        ctx.save_for_backward(a, h0, states)
        return states

    @staticmethod
    def backward(ctx, grad_states: torch.Tensor):
        a, h0, states = ctx.saved_tensors
        g = grad_states.clone()  # becomes g_t, filled from the last step backwards
        for t in range(a.shape[0] - 2, -1, -1):
            g[t].addcmul_(a[t + 1], g[t + 1])
        previous = torch.cat([h0[None], states[:-1]])  # h_{t-1} for every t
        return g * previous, g, a[0] * g[0]


def scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
         D: torch.Tensor | None = None, initial_state: torch.Tensor | None = None
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """The selective scan on torch tensors, differentiable: (y (batch, d, L), last state (batch, d, n)).

    ``scan.selective_scan``'s shapes and definition (delta already through
    softplus): u, delta (batch, d, L); A (d, n); B, C (batch, n, L); D (d,).
    The order of ``scan.torch_loop``: exp(Δ A) and Δ B u for every step at
    once, then the loop over time (:class:`LinearRecurrence`), the states
    read out by C in one contraction.
    """
    batch, d, L = u.shape
    n = A.shape[1]
    h0 = u.new_zeros((batch, d, n)) if initial_state is None else initial_state
    if L == 0:
        return u.new_zeros((batch, d, 0)), h0
    # Time first, so that each step's slice is contiguous.
    dt = delta.permute(2, 0, 1)[..., None]  # (L, B, D, 1)
    dA = torch.exp(dt * A)  # (L, B, D, N): zero-order hold of A
    dBu = (dt * u.permute(2, 0, 1)[..., None]) * B.permute(2, 0, 1)[:, :, None, :]  # (L, B, D, N): Δ_t B_t u_t
    states = LinearRecurrence.apply(dA.contiguous(), dBu.contiguous(), h0)  # (L, B, D, N): h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t
    readout = C.permute(2, 0, 1).reshape(L * batch, n, 1)  # (L·B, N, 1)
    y = torch.bmm(states.view(L * batch, d, n), readout).view(L, batch, d).permute(1, 2, 0)  # C_t · h_t (B, D, L)
    if D is not None:
        y = y + D[:, None] * u
    return y, states[-1]


class MambaBlock(nn.Module):
    """x + out_proj(SSM(SiLU(conv(in_x))) · SiLU(z)), with (in_x, z) = in_proj(RMSNorm(x)) (Figure 3).

    Args:
        config: The model's sizes.
    """

    def __init__(self, config: MambaConfig) -> None:
        super().__init__()
        self.config = config
        c, di, n, r, k = config.d_model, config.d_inner, config.d_state, config.rank, config.d_conv
        self.norm = RMSNorm(c, config.norm_eps)
        self.in_proj = nn.Linear(c, 2 * di, bias=False)
        self.conv = nn.Conv1d(di, di, k, groups=di, padding=k - 1)  # depthwise: weight (Di, 1, K), bias (Di,)
        self.x_proj = nn.Linear(di, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, di, bias=True)
        # Kept flat (Di·N,): train.py's AdamW decays every parameter of 2 or more axes, and A, like the
        # reference's A_log (``_no_weight_decay``), should not shrink towards A = -1.
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(di))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, c, bias=False)

    @property
    def A(self) -> torch.Tensor:
        """(Di, N), negative: A = −exp(A_log)."""
        return -torch.exp(self.A_log.view(self.config.d_inner, self.config.d_state))

    def _ssm_inputs(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Δ (..., Di) after softplus, B (..., N) and C (..., N) of the conv's output u (..., Di): the selection."""
        r, n = self.config.rank, self.config.d_state
        dt, B, C = self.x_proj(u).split([r, n, n], dim=-1)
        return F.softplus(self.dt_proj(dt)), B, C

    def forward(self, x: torch.Tensor, backend: str = "torch", keep_state: bool = False):
        """The block over a whole sequence: (B, T, C) -> (B, T, C); with keep_state also (conv state, h).

        Args:
            x: (B, T, C) float32, the residual stream.
            backend: "torch" (differentiable) or "native" (the C scan; no gradient, for prefill).
            keep_state: Also return the states a decoder continues from.
        """
        b, t, _ = x.shape
        k = self.config.d_conv
        u, z = self.in_proj(self.norm(x)).chunk(2, dim=-1)  # (B, T, Di) each
        u = u.transpose(1, 2)  # (B, Di, T)
        conv_state = F.pad(u, (max(0, k - 1 - t), 0))[:, :, -(k - 1):] if keep_state else None  # (B, Di, K-1)
        u = silu(self.conv(u)[:, :, :t])  # causal: the left padding only, (B, Di, T)
        delta, B, C = self._ssm_inputs(u.transpose(1, 2))  # (B, T, Di), (B, T, N), (B, T, N)
        args = (u, delta.transpose(1, 2), self.A, B.transpose(1, 2), C.transpose(1, 2), self.D)
        y, h = _native_scan(*args) if backend == "native" else scan(*args)  # (B, Di, T), (B, Di, N)
        out = x + self.out_proj(y.transpose(1, 2) * silu(z))
        return (out, conv_state, h) if keep_state else out

    def step(self, x: torch.Tensor, conv_state: torch.Tensor, h: torch.Tensor, backend: str = "torch"):
        """One token: x (B, C) and the states in; (x out (B, C), conv state, h) out. Constant work and memory.

        The conv's K taps read the K − 1 stored inputs and this one; the scan
        is the recurrence once, h = exp(Δ A) h + Δ B u, y = C · h + D u.
        """
        u, z = self.in_proj(self.norm(x)).chunk(2, dim=-1)  # (B, Di) each
        window = torch.cat([conv_state, u[:, :, None]], dim=2)  # (B, Di, K)
        u = silu((window * self.conv.weight[:, 0]).sum(-1) + self.conv.bias)  # (B, Di)
        delta, B, C = self._ssm_inputs(u)  # (B, Di), (B, N), (B, N)
        if backend == "native":
            y, h = _native_scan(u[:, :, None], delta[:, :, None], self.A, B[:, :, None], C[:, :, None], self.D, h,
                                threads=1)
            y = y[:, :, 0]
        else:
            h = torch.exp(delta[:, :, None] * self.A) * h + (delta * u)[:, :, None] * B[:, None, :]  # (B, Di, N)
            y = torch.einsum("bdn,bn->bd", h, C) + self.D * u  # (B, Di)
        return x + self.out_proj(y * silu(z)), window[:, :, 1:], h


def _native_scan(u, delta, A, B, C, D, initial_state=None, threads: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The C kernel (native/src/wb_scan.c) on torch tensors: float32, forward only (no gradient).

    ``threads``: the kernel's (None: its default). A decode step passes 1: one token of 128 channels is
    microseconds of work, and handing it to two threads cost 23 ms a call on a busy 2-core machine.
    """
    from workbench_engines.longctx import native

    arrays = [None if x is None else np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)
              for x in (u, delta, A, B, C, D, initial_state)]
    y, last = native.selective_scan(*arrays[:6], initial_state=arrays[6], threads=threads)
    return torch.from_numpy(y), torch.from_numpy(last)


class Mamba(nn.Module):
    """Embedding → n_layers Mamba blocks → RMSNorm → tied output projection; ``forward(ids)`` as GPT's.

    Weights start as the reference's: N(0, 0.02²) for the embedding and the
    projections, out_proj further scaled by 1/√n_layers (its
    ``rescale_prenorm_residual``), Δ's projection uniform in ±R^(−1/2) with the
    bias described in the module docstring.

    Args:
        config: The model's sizes.
    """

    def __init__(self, config: MambaConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(MambaBlock(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
        for block in self.blocks:
            nn.init.normal_(block.out_proj.weight, std=0.02 / math.sqrt(config.n_layers))
            bound = config.rank ** -0.5
            nn.init.uniform_(block.dt_proj.weight, -bound, bound)
            with torch.no_grad():
                dt = torch.exp(torch.rand(config.d_inner) * (math.log(config.dt_max) - math.log(config.dt_min))
                               + math.log(config.dt_min)).clamp(min=1e-4)
                block.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)

    def parameter_count(self) -> int:
        """All parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) for ids (B, T), the whole sequence at once (differentiable).

        Raises:
            EngineError: ids is not 2-D.
        """
        if ids.ndim != 2:
            raise EngineError(f"ids must be [batch, tokens], got shape {tuple(ids.shape)}")
        x = self.embed(ids)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.norm(x))

    def unembed(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the normed stream: x Eᵀ, the tied output projection."""
        return F.linear(x, self.embed.weight)

    def new_state(self, batch: int = 1) -> MambaState:
        """The state before any token: zeros (what the parallel forward assumes too)."""
        c = self.config
        return MambaState([torch.zeros(batch, c.d_inner, c.d_conv - 1) for _ in self.blocks],
                          [torch.zeros(batch, c.d_inner, c.d_state) for _ in self.blocks])

    @torch.no_grad()
    def prefill(self, ids: torch.Tensor, backend: str = "torch") -> tuple[torch.Tensor, MambaState]:
        """Read a prompt (B, T) in one parallel pass: (logits of its last token (B, V), the state to decode from)."""
        _check_backend(backend)
        x = self.embed(ids)
        conv, ssm = [], []
        for block in self.blocks:
            x, conv_state, h = block(x, backend=backend, keep_state=True)
            conv.append(conv_state)
            ssm.append(h)
        return self.unembed(self.norm(x[:, -1])), MambaState(conv, ssm, ids.shape[1])

    @torch.no_grad()
    def step(self, ids: torch.Tensor, state: MambaState, backend: str = "torch") -> torch.Tensor:
        """Read one token per sequence, ids (B,): its logits (B, V); ``state`` is advanced in place."""
        _check_backend(backend)
        x = self.embed(ids)  # (B, C)
        for i, block in enumerate(self.blocks):
            x, state.conv[i], state.ssm[i] = block.step(x, state.conv[i], state.ssm[i], backend)
        state.length += 1
        return self.unembed(self.norm(x))


def _check_backend(backend: str) -> None:
    if backend not in STEP_BACKENDS:
        raise EngineError(f"unknown backend {backend!r}; choose one of {', '.join(STEP_BACKENDS)}")


# ---- the comparison ---------------------------------------------------------------------------------------------

STATE_CONTEXTS = (1024, 2048, 4096, 8192, 16384)
"""Contexts at which the comparison states each model's decode memory."""


@dataclass
class ModelRun:
    """One model's side of the comparison."""

    name: str
    parameters: int
    config: dict
    train_losses: list[float] = field(default_factory=list)
    val_loss: float | None = None
    train_seconds: float = 0.0
    train_tokens_per_s: float = 0.0
    """Tokens trained on ÷ the wall time of ``train`` (validation included)."""
    decode_tokens_per_s: dict[int, float] = field(default_factory=dict)
    """Context -> tokens/s of one-token decode steps after a real prefill of that many tokens (batch 1)."""
    state_bytes_per_token: float = 0.0
    """Bytes the decode memory grows by per token: K and V of every layer for GPT, 0 for Mamba."""
    state_bytes: dict[int, int] = field(default_factory=dict)
    """Context -> bytes the model keeps to decode the next token (batch 1, float32)."""
    measured_state_bytes: dict[int, int] = field(default_factory=dict)
    """Context -> bytes actually held after the decode timing's prefill (the cache's stored K/V; Mamba's tensors)."""


@dataclass
class Comparison:
    """Both runs, and the settings they shared."""

    mamba: ModelRun
    gpt: ModelRun
    settings: dict

    @property
    def runs(self) -> list[ModelRun]:
        return [self.mamba, self.gpt]


def lab_models(vocab_size: int = 2048, d_model: int = 64, gpt_layers: int = 2, mamba_layers: int = 3,
               context: int = 16384) -> tuple[MambaConfig, dict]:
    """The Mamba config and the GPT config fields the comparison pairs: the same width and vocabulary, and the
    number of Mamba blocks that brings the totals closest. At d_model 64 and vocabulary 2,048 a 2-layer GPT (4 heads)
    has 237,888 parameters; 3 Mamba blocks give 229,248 (−3.6 %), 4 (the paper's two per transformer block) 261,952
    (+10 %): the tied 131,072-weight embedding is most of both. ``context`` sizes only the GPT's RoPE table."""
    gpt = {"vocab_size": vocab_size, "context": context, "d_model": d_model, "n_layers": gpt_layers, "n_heads": 4}
    return MambaConfig(vocab_size=vocab_size, d_model=d_model, n_layers=mamba_layers), gpt


def compare_to_transformer(steps: int = 300, *, batch_size: int = 8, seq_len: int = 64, lr: float = 3e-3,
                           seed: int = 0, d_model: int = 64, gpt_layers: int = 2, mamba_layers: int = 3,
                           decode_contexts: tuple[int, ...] = (256, 1024, 4096), decode_tokens: int = 32,
                           state_contexts: tuple[int, ...] = STATE_CONTEXTS, data=None,
                           on_step: Callable[[str, object], None] | None = None,
                           should_stop: Callable[[], bool] | None = None,
                           decode_backend: str = "torch", threads: int | None = 1) -> Comparison:
    """Train a Mamba and a GPT of about its size on the plays with the same loop and settings; measure both.

    Both go through ``models.train.train`` with one TrainConfig (steps,
    batch, seq_len, lr with warm-up and cosine, seed, so the same batches in
    the same order), one after the other. Then each decodes ``decode_tokens``
    tokens at batch 1 after a prefill of each of ``decode_contexts`` held-out
    tokens (tokens/s of the decode steps only); the state bytes at
    ``state_contexts`` come from the configs and are checked against the
    tensors the prefill left.

    Args:
        steps, batch_size, seq_len, lr, seed: The shared TrainConfig's settings (warm-up steps // 10).
        d_model, gpt_layers, mamba_layers: The two shapes (see ``lab_models``).
        data: TokenData; None encodes the plays with the shipped tokenizer (``experiments.lesson_data``).
        on_step: on_step(model name, StepReport) after every training step.
        should_stop: Polled every step and every decode context; True raises Cancelled.
        decode_backend: The Mamba's scan when decoding: "torch" or "native".
        threads: torch's threads for the whole comparison (restored after); None leaves torch's setting. One by
            default: the Mamba's many small operations gain nothing from a second thread, and on a machine whose
            cores are busy with other work each of them waits for both threads (a run then took ten times as long).

    Returns:
        The Comparison.

    Raises:
        EngineError: bad settings (from the configs) or a diverged run.
        Cancelled: should_stop() returned True.
    """
    _check_backend(decode_backend)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _compare(steps, batch_size, seq_len, lr, seed, d_model, gpt_layers, mamba_layers, decode_contexts,
                        decode_tokens, state_contexts, data, on_step, should_stop, decode_backend)
    finally:
        torch.set_num_threads(previous)


def _compare(steps, batch_size, seq_len, lr, seed, d_model, gpt_layers, mamba_layers, decode_contexts, decode_tokens,
             state_contexts, data, on_step, should_stop, decode_backend) -> Comparison:
    """compare_to_transformer's work, on the threads it set."""
    from workbench_engines.errors import Cancelled
    from workbench_engines.models.gpt import GPT, GPTConfig
    from workbench_engines.models.train import TrainConfig, train

    if data is None:
        from workbench_engines.models.experiments import lesson_data

        data = lesson_data()
    longest = max((*decode_contexts, seq_len)) + decode_tokens
    mamba_config, gpt_fields = lab_models(d_model=d_model, gpt_layers=gpt_layers, mamba_layers=mamba_layers,
                                          context=longest)
    config = TrainConfig(steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, warmup=max(1, steps // 10),
                         eval_every=steps, checkpoint_every=steps, eval_windows=32, seed=seed)
    builders = {"Mamba": lambda: Mamba(mamba_config), "GPT": lambda: GPT(GPTConfig(**gpt_fields))}
    configs = {"Mamba": mamba_config.as_dict(), "GPT": dict(gpt_fields)}
    runs = {}
    for name, build in builders.items():
        torch.manual_seed(seed)
        model = build()
        run = ModelRun(name, model.parameter_count(), configs[name])
        result = train(model, data, config, on_step=None if on_step is None else (lambda r, n=name: on_step(n, r)),
                       should_stop=should_stop)
        run.train_losses, run.val_loss = result.train_losses, result.final_val_loss
        run.train_seconds = result.seconds
        run.train_tokens_per_s = result.tokens / result.seconds
        prompt = _held_out(data, max(decode_contexts))
        for context in decode_contexts:
            if should_stop is not None and should_stop():
                raise Cancelled(f"stopped while timing {name}'s decoding")
            speed, held = (_decode_mamba(model, prompt[:, :context], decode_tokens, decode_backend) if name == "Mamba"
                           else _decode_gpt(model, prompt[:, :context], decode_tokens))
            run.decode_tokens_per_s[context], run.measured_state_bytes[context] = speed, held
        if name == "Mamba":
            run.state_bytes = {c: mamba_config.state_bytes() for c in state_contexts}
        else:
            per_token = GPTConfig(**gpt_fields).kv_bytes_per_token()
            run.state_bytes_per_token = float(per_token)
            run.state_bytes = {c: c * per_token for c in state_contexts}
        runs[name] = run
    settings = {"steps": steps, "batch_size": batch_size, "seq_len": seq_len, "lr": lr, "seed": seed,
                "decode_tokens": decode_tokens, "decode_backend": decode_backend,
                "threads": torch.get_num_threads()}
    return Comparison(runs["Mamba"], runs["GPT"], settings)


def _held_out(data, tokens: int) -> torch.Tensor:
    """(1, tokens) int64 of the validation split, repeated if it is shorter: the prefill both models read."""
    val = np.resize(data.val, tokens).astype(np.int64)
    return torch.from_numpy(val)[None]


def _decode_mamba(model: Mamba, prompt: torch.Tensor, tokens: int, backend: str) -> tuple[float, int]:
    """Tokens/s of greedy one-token steps after a prefill (the C scan prefills when it loads), and state bytes."""
    prefill_backend = backend if backend == "native" else "torch"
    logits, state = model.prefill(prompt, backend=prefill_backend)
    token = logits.argmax(-1)  # (1,)
    started = time.perf_counter()
    for _ in range(tokens):
        token = model.step(token, state, backend).argmax(-1)
    return tokens / (time.perf_counter() - started), state.nbytes


@torch.no_grad()
def _decode_gpt(model, prompt: torch.Tensor, tokens: int) -> tuple[float, int]:
    """Tokens/s of greedy one-token steps through a contiguous KV cache after a prefill, and the K/V stored."""
    from workbench_engines.kvcache.contiguous import ContiguousCache

    cache = ContiguousCache(model.config, batch=1, max_len=prompt.shape[1] + tokens)
    token = model(prompt, cache, last_only=True)[:, -1].argmax(-1)  # (1,)
    held = cache.memory().stored
    started = time.perf_counter()
    for _ in range(tokens):
        token = model(token[:, None], cache, last_only=True)[:, -1].argmax(-1)
    return tokens / (time.perf_counter() - started), held
