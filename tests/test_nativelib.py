"""The native build reports what it is, and C-side checks back the Python ones."""

from __future__ import annotations

import os

import numpy as np
import pytest

from workbench_engines import native_status
from workbench_engines.errors import NativeKernelError
from workbench_engines.nativelib import check_status


def test_status_explains_itself():
    status = native_status()
    if status.loaded:
        assert "-O3" in status.build_info and status.path
    else:
        assert status.error


@pytest.mark.skipif(os.environ.get("WB_DISABLE_NATIVE") != "1", reason="checks the disabled path")
def test_disabled_by_environment():
    assert not native_status().loaded
    assert "WB_DISABLE_NATIVE" in (native_status().error or "")


@pytest.mark.native
def test_c_rejects_bad_sizes_with_a_status():
    from workbench_engines import _native  # type: ignore[attr-defined]

    ffi, lib = _native.ffi, _native.lib
    buf = np.zeros(4, np.float32)
    ptr = ffi.from_buffer("float[]", buf)
    assert lib.wb_softmax_forward_f32(ptr, ptr, -1, 2, 2, 2, 1) == lib.WB_ERR_BAD_SIZE
    assert lib.wb_softmax_forward_f32(ptr, ptr, 2, 2, 1, 2, 1) == lib.WB_ERR_BAD_STRIDE
    assert lib.wb_softmax_forward_f32(ptr, ptr, 2, 2, 2, 2, 0) == lib.WB_ERR_BAD_THREADS
    assert lib.wb_softmax_forward_f32(ffi.NULL, ptr, 2, 2, 2, 2, 1) == lib.WB_ERR_NULL_POINTER
    with pytest.raises(NativeKernelError, match="leading dimension"):
        check_status("wb_softmax_forward_f32", lib.WB_ERR_BAD_STRIDE)


@pytest.mark.native
def test_function_names_follow_the_convention():
    """wb_<family>_<op>[_<variant>]_<dtype>: declared in wb_<family>.h, and _f32 exactly when fp32 data passes."""
    from pathlib import Path

    from workbench_engines import _native  # type: ignore[attr-defined]

    include = Path(__file__).resolve().parent.parent / "native" / "include"
    ffi, lib = _native.ffi, _native.lib
    functions = [name for name in dir(lib) if callable(getattr(lib, name))]
    assert "wb_softmax_forward_f32" in functions
    for name in functions:
        header = include / f"wb_{name.split('_')[1]}.h"
        assert header.is_file() and f"{name}(" in header.read_text(), f"{name} is not declared in {header.name}"
        args = ffi.typeof(getattr(lib, name)).args
        takes_floats = any(a.kind == "pointer" and a.item.cname == "float" for a in args)
        sizes_floats = name == "wb_attention_workspace_f32"  # the fp32 kernel's workspace, counted in floats
        assert name.endswith("_f32") == (takes_floats or sizes_floats), name
