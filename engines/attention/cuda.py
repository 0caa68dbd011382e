"""Attention through the CUDA kernels in native/cuda/wb_attention.cu (naive and flash).

Takes torch tensors already on the GPU, fp16 or bf16, and returns one there.
Everything is checked here (type, device, dtype, shape, contiguity,
alignment, head dim, masks the kernels don't have) before a pointer crosses;
the kernels run on torch's current stream, so they order with the torch work
around them. The naive kernel's score matrix is a torch allocation, so
``torch.cuda.max_memory_allocated`` sees it grow with lq · lk.
"""

from __future__ import annotations

from workbench_engines.attention import check_shapes
from workbench_engines.attention.native import kernel_id
from workbench_engines.cudalib import check_cuda_status, cuda_library

KERNELS = ("flash", "naive")
FLASH_HEAD_DIMS = (64, 128)


def _forward_name(torch, dtype) -> str:
    """The entry point of wb_attention_cuda.h for q's dtype (one per element type)."""
    return {torch.float16: "wb_attention_forward_cuda_f16", torch.bfloat16: "wb_attention_forward_cuda_bf16"}[dtype]


def validate(q, k, v, *, window=None, key_mask=None, kernel="flash", out=None) -> None:
    """Raise TypeError/ValueError for anything the CUDA kernels can't take; needs no GPU."""
    import torch

    for a, name in ((q, "q"), (k, "k"), (v, "v")):
        if not isinstance(a, torch.Tensor):
            raise TypeError(f"the cuda backend takes torch tensors on a GPU; {name} is {type(a).__name__}")
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose flash or naive")
    if window is not None or key_mask is not None:
        raise ValueError("the cuda kernels have the causal mask only; use backend='torch' or 'native' "
                         "for a sliding window or a key_mask")
    for a, name in ((q, "q"), (k, "k"), (v, "v")):
        if a.dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"the cuda kernels take float16 or bfloat16, got {name} {a.dtype}")
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    check_shapes(q.shape, k.shape, v.shape)
    d, dv = q.shape[3], v.shape[3]
    if dv != d:
        raise ValueError(f"the cuda kernels need v's head dim equal to q's, got {dv} and {d}")
    if kernel == "flash" and d not in FLASH_HEAD_DIMS:
        raise ValueError(f"the cuda flash kernel takes head dim 64 or 128, got {d}; kernel='naive' takes any")
    for a, name in ((q, "q"), (k, "k"), (v, "v")):
        if not a.is_contiguous():
            raise ValueError(f"{name} must be contiguous for the cuda kernels (.contiguous())")
    for a, name in ((q, "q"), (k, "k"), (v, "v")):
        if a.device.type != "cuda":
            raise ValueError(f"{name} is on {a.device}; the cuda backend needs tensors on a GPU (.cuda())")
    if not q.device == k.device == v.device:
        raise ValueError(f"q, k and v are on different devices: {q.device}, {k.device}, {v.device}")
    for a, name in ((q, "q"), (k, "k"), (v, "v")):
        if a.data_ptr() % 16:
            raise ValueError(f"{name}'s data must start on a 16-byte boundary (a view at an odd offset?); "
                             "pass a fresh .contiguous() copy")
    if out is not None:
        expected = (q.shape[0], q.shape[1], q.shape[2], dv)
        if (not isinstance(out, torch.Tensor) or tuple(out.shape) != expected or out.dtype != q.dtype
                or out.device != q.device or not out.is_contiguous() or out.data_ptr() % 16):
            raise ValueError(f"out must be a contiguous, 16-byte aligned {q.dtype} tensor of shape {expected} "
                             f"on {q.device}")


def attention(q, k, v, *, causal=False, window=None, key_mask=None, scale=None, kernel="flash", out=None):
    """softmax(scale q k^T, causal) v on the GPU: [batch, heads, lq, d] in q's dtype.

    ``out``, when given, receives the result (tests poison it first to catch
    unwritten elements).
    """
    import torch

    validate(q, k, v, window=window, key_mask=key_mask, kernel=kernel, out=out)
    ffi, lib = cuda_library()
    batch, heads, lq, d = q.shape
    kv_heads, lk = k.shape[1], k.shape[2]
    scale = float(d ** -0.5 if scale is None else scale)
    if out is None:
        out = torch.empty_like(q)
    if out.numel() == 0:
        return out
    if lk == 0:  # no keys: every query sees nothing (an empty tensor has no pointer to pass)
        return out.zero_()
    kernel_code = kernel_id(lib, kernel)
    workspace_bytes = int(lib.wb_attention_workspace_cuda(kernel_code, batch, heads, lq, lk))
    if workspace_bytes < 0:  # a status: the score matrix's size overflows, or a bad argument
        check_cuda_status("wb_attention_workspace_cuda", workspace_bytes)
    workspace = None
    if workspace_bytes > 0:
        workspace = torch.empty(workspace_bytes // 4, dtype=torch.float32, device=q.device)

    def pointer(t):
        return ffi.cast("void *", t.data_ptr())

    stream = torch.cuda.current_stream(q.device)
    forward = _forward_name(torch, q.dtype)
    status = getattr(lib, forward)(
        pointer(out), pointer(q), pointer(k), pointer(v),
        batch, heads, kv_heads, lq, lk, d, scale, int(bool(causal)), kernel_code,
        ffi.NULL if workspace is None else pointer(workspace), workspace_bytes,
        q.device.index if q.device.index is not None else torch.cuda.current_device(),
        ffi.cast("void *", stream.cuda_stream),
    )
    check_cuda_status(forward, status)
    return out
