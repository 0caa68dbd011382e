"""Reading and overwriting a GPT's activations without editing its classes: named sites, forward hooks.

Works on every GPT-shaped model of the project: the shipped small GPTs
(``models.gpt.GPT``) and SmolLM2 (``models.llama.Llama``, a GPT subclass,
fp32 or quantised weights). MiniLM is a NumPy encoder: its forward pass
already returns every layer's hidden states and attention weights, so it
needs no hooks.

A site names one activation at one layer, ``"<kind>.<layer>"``:

    resid_pre.L    (B, T, C)      the residual stream entering block L
    resid_post.L   (B, T, C)      the residual stream leaving block L (resid_pre of L + 1)
    attn_out.L     (B, T, C)      what block L's attention adds to the stream
    mlp_out.L      (B, T, C)      what block L's feed-forward adds
    head_z.L       (B, T, NH, HS) each attention head's output before the output projection mixes them

``resid_post`` of the last block is the stream before the final norm. The
attention pattern is not a tensor the model materialises (scaled dot-product
attention fuses it away); :func:`attention_patterns` recomputes it from the
block's own projections.

Example::

    >>> logits, cache = run_with_cache(model, ids, ["resid_post.2", "head_z.1"])
    >>> with patched(model, {"head_z.1": zero_head(3)}):      # knock out head 3 of layer 1
    ...     ablated = model(ids)

Only the sites asked for are kept, so memory grows with the request, not the model.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from workbench_engines.errors import EngineError

KINDS = ("resid_pre", "resid_post", "attn_out", "mlp_out", "head_z")
_SITE = re.compile(r"^([a-z_]+)\.(\d+)$")

Edit = Callable[..., object]
"""edit(activation) -> the activation to use instead (same shape and dtype); it may also edit in place and return
None. For head_z the activation is (B, T, NH, HS)."""


@dataclass(frozen=True)
class Site:
    """One activation: its kind and the block it belongs to."""

    kind: str
    layer: int

    def __str__(self) -> str:
        return f"{self.kind}.{self.layer}"


def gpt_module(model):
    """The torch module of a GPT-shaped model (a Pretrained or LoadedModel gives its .model), or EngineError."""
    module = getattr(model, "model", model)
    if not all(hasattr(module, a) for a in ("embed", "blocks", "norm", "unembed", "rope_cos")):
        raise EngineError(f"{type(module).__name__} is not a GPT-shaped model (embed, blocks, norm, unembed); "
                          "hooks work on the small GPTs and SmolLM2")
    return module


def parse_site(site: str | Site, n_layers: int) -> Site:
    """A Site from "kind.layer", checked against the kinds and the model's layer count.

    Raises:
        EngineError: an unknown kind, a malformed name, or a layer outside 0 … n_layers − 1.
    """
    if isinstance(site, Site):
        kind, layer = site.kind, site.layer
    else:
        match = _SITE.match(str(site))
        if match is None:
            raise EngineError(f"a site is written kind.layer (e.g. resid_post.3), got {site!r}")
        kind, layer = match.group(1), int(match.group(2))
    if kind not in KINDS:
        raise EngineError(f"unknown site kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not 0 <= layer < n_layers:
        raise EngineError(f"layer {layer} is out of range: the model has layers 0 to {n_layers - 1}")
    return Site(kind, layer)


def check_ids(ids, vocab_size: int, context: int):
    """ids as a (B, T) int64 tensor: a list, (T,) or (B, T) array or tensor, T ≥ 1, every id in the vocabulary.

    Raises:
        EngineError: empty, not integers, out of range, more than 2-D, or longer than the context.
    """
    import numpy as np
    import torch

    from workbench_engines.arrays import require_int_array

    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    try:
        array = require_int_array(ids, "ids", low=0, high=vocab_size - 1)
    except (TypeError, ValueError) as exc:
        raise EngineError(str(exc)) from None
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] == 0:
        raise EngineError(f"ids must be a non-empty prompt, (T,) or (B, T) token ids; got shape {array.shape}")
    if array.shape[1] > context:
        raise EngineError(f"{array.shape[1]} tokens do not fit the model's context of {context}")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))


def _module_for(module, site: Site):
    """(the module whose call carries the site, "in" for its first input or "out" for its output)."""
    block = module.blocks[site.layer]
    return {"resid_pre": (block, "in"), "resid_post": (block, "out"), "attn_out": (block.attn, "out"),
            "mlp_out": (block.ffn, "out"), "head_z": (block.attn.out, "in")}[site.kind]


def _heads_view(x, module):
    """(B, T, C) → (B, T, NH, HS), a view sharing x's memory."""
    c = module.config
    return x.view(*x.shape[:-1], c.n_heads, c.head_dim)


def _apply(edit: Edit, x, site: Site, module):
    """Run edit on the site's activation and return what the model should use: checked to keep shape and dtype."""
    shown = _heads_view(x, module) if site.kind == "head_z" else x
    result = edit(shown)
    if result is None:
        result = shown
    if tuple(result.shape) != tuple(shown.shape) or result.dtype != shown.dtype:
        raise EngineError(f"an edit of {site} must keep its shape {tuple(shown.shape)} and dtype {shown.dtype}, "
                          f"got {tuple(result.shape)} {result.dtype}")
    return result.reshape(x.shape) if site.kind == "head_z" else result


@contextmanager
def hooked(model, *, read: Iterable[str | Site] = (), edits: Mapping[str | Site, Edit] | None = None,
           store: dict | None = None) -> Iterator[dict]:
    """Within the block, every forward pass of the model stores the ``read`` sites and applies the ``edits``.

    Args:
        model: A GPT-shaped model.
        read: Sites to store, after any edit of the same site (detached).
        edits: site -> edit function, applied in the forward pass.
        store: The dict to fill (a new one by default), site name -> tensor of the last pass.

    Yields:
        The store. Hooks are removed on exit, also after an error.

    Raises:
        EngineError: a bad site name, kind or layer; an edit that changed a shape or dtype (in the pass).
    """
    module = gpt_module(model)
    n = len(module.blocks)
    reads = [parse_site(s, n) for s in read]
    changes = {parse_site(s, n): fn for s, fn in (edits or {}).items()}
    store = {} if store is None else store
    # Hooks live on the shared module, but only this thread's passes use them: a lab's worker and a quiz's probe
    # may run the same loaded model at once, and one's edits must not leak into the other's pass.
    owner = threading.get_ident()
    handles = []
    for site in dict.fromkeys([*changes, *reads]):
        target, side = _module_for(module, site)
        edit = changes.get(site)
        keep = site in reads

        if side == "in":
            def pre(mod, args, site=site, edit=edit, keep=keep):
                if threading.get_ident() != owner:
                    return None
                x = args[0]
                if edit is not None:
                    x = _apply(edit, x, site, module)
                if keep:
                    store[str(site)] = (_heads_view(x, module) if site.kind == "head_z" else x).detach().clone()
                return (x, *args[1:]) if edit is not None else None

            handles.append(target.register_forward_pre_hook(pre))
        else:
            def post(mod, args, output, site=site, edit=edit, keep=keep):
                if threading.get_ident() != owner:
                    return None
                if edit is not None:
                    output = _apply(edit, output, site, module)
                if keep:
                    store[str(site)] = output.detach().clone()
                return output if edit is not None else None

            handles.append(target.register_forward_hook(post))
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def run_with_cache(model, ids, sites: Iterable[str | Site], *, edits: Mapping[str | Site, Edit] | None = None):
    """One forward pass (torch.no_grad) storing only ``sites``: (logits (B, T, V) float32, {site: tensor}).

    Raises:
        EngineError: as ``hooked``, or bad ids (empty, out of the vocabulary, past the context).
    """
    import torch

    module = gpt_module(model)
    ids = check_ids(ids, module.config.vocab_size, module.config.context)
    with torch.no_grad(), hooked(module, read=sites, edits=edits) as store:
        logits = module(ids)
    return logits, store


@contextmanager
def patched(model, edits: Mapping[str | Site, Edit]) -> Iterator[None]:
    """Every forward pass within the block runs with ``edits`` applied."""
    with hooked(model, edits=edits):
        yield


def zero_head(*heads: int) -> Edit:
    """An edit of a head_z site that zeroes the given heads' outputs (zero-ablation)."""
    def edit(z):
        for h in heads:
            if not 0 <= h < z.shape[-2]:
                raise EngineError(f"head {h} is out of range: the layer has heads 0 to {z.shape[-2] - 1}")
        z = z.clone()
        z[..., list(heads), :] = 0
        return z

    return edit


def replace_with(value, *, positions=None) -> Edit:
    """An edit that writes ``value`` in place of the activation, at every position or only at ``positions``
    (indices along T): activation patching's "put the clean run's value here".

    value has the site's shape, or batch 1 to patch every row of a batch of corrupted runs alike.
    """
    def edit(x):
        v = value.to(x.dtype)
        if v.shape[1:] != x.shape[1:] or v.shape[0] not in (1, x.shape[0]):
            raise EngineError(f"a patch of shape {tuple(v.shape)} does not fit an activation of {tuple(x.shape)}; "
                              "patch between prompts of the same length")
        x = x.clone()
        at = slice(None) if positions is None else list(positions)
        x[:, at] = v.expand_as(x)[:, at]
        return x

    return edit


def replace_rows(value, positions) -> Edit:
    """Like ``replace_with``, but row b of the batch takes ``value`` at position ``positions[b]`` alone (None: row b
    is left as it is): one forward pass over B copies of a corrupted prompt patches a different position in each.

    value has the site's shape with batch 1 (or B); positions has one entry per row.
    """
    def edit(x):
        v = value.to(x.dtype)
        if v.shape[1:] != x.shape[1:] or v.shape[0] not in (1, x.shape[0]):
            raise EngineError(f"a patch of shape {tuple(v.shape)} does not fit an activation of {tuple(x.shape)}; "
                              "patch between prompts of the same length")
        if len(positions) != x.shape[0]:
            raise EngineError(f"{len(positions)} positions for a batch of {x.shape[0]} rows: give one per row")
        rows = [b for b, p in enumerate(positions) if p is not None]
        at = [positions[b] for b in rows]
        if any(not 0 <= p < x.shape[1] for p in at):
            raise EngineError(f"a position is out of range: the prompt has positions 0 to {x.shape[1] - 1}")
        x = x.clone()
        x[rows, at] = v.expand_as(x)[rows, at]
        return x

    return edit


def attention_patterns(model, ids, layers: Iterable[int] | None = None) -> dict[int, object]:
    """Each chosen layer's attention weights softmax(q kᵀ / √HS + causal mask), (B, NH, T, T) float32.

    The model's scaled dot-product attention never forms these weights; they are
    recomputed from the block's own query and key projections (with RoPE and
    GQA as in ``Attention.forward``), on the normed stream a hook reads as the
    pass runs.

    Raises:
        EngineError: bad ids or a layer out of range.
    """
    import math

    import torch

    from workbench_engines.models.layers import apply_rope

    module = gpt_module(model)
    n = len(module.blocks)
    chosen = list(range(n)) if layers is None else [parse_site(f"resid_pre.{l}", n).layer for l in layers]
    ids = check_ids(ids, module.config.vocab_size, module.config.context)
    c = module.config
    normed: dict[int, torch.Tensor] = {}
    owner = threading.get_ident()  # as in hooked: another thread's pass over the same model is not ours

    def keep(mod, args, l):
        if threading.get_ident() == owner:
            normed[l] = args[0].detach()

    handles = [module.blocks[l].attn.register_forward_pre_hook(lambda mod, args, l=l: keep(mod, args, l))
               for l in chosen]
    try:
        with torch.no_grad():  # not inference_mode: the results stay usable in later autograd code
            module(ids)
            patterns = {}
            b, t = ids.shape
            cos, sin = module.rope_cos[:t], module.rope_sin[:t]
            causal = torch.ones(t, t, dtype=torch.bool).tril()
            for l in chosen:
                attn = module.blocks[l].attn
                x = normed[l]
                q = attn.q(x).view(b, t, c.n_heads, c.head_dim).transpose(1, 2)  # (B, NH, T, HS)
                k = attn.kv(x).view(b, t, 2, c.kv_heads, c.head_dim).permute(2, 0, 3, 1, 4)[0]  # (B, KVH, T, HS)
                q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
                k = k.repeat_interleave(c.n_heads // c.kv_heads, dim=1)  # (B, NH, T, HS): each KV head serves a group
                scores = (q @ k.transpose(-1, -2)).float() / math.sqrt(c.head_dim)  # (B, NH, T, T)
                patterns[l] = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
    finally:
        for handle in handles:
            handle.remove()
    return patterns
