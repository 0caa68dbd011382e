"""Builds the CUDA kernels in native/cuda with nvcc for the GPU present, caches them, loads them.

The library is compiled on first use for the compute capability torch
reports, into ``$WB_CUDA_CACHE`` or the user cache directory
(``~/.cache/workbench/cuda``), under a key made of the sources, the flags,
nvcc's version and the capability; a build is written to a temporary name and
renamed, so two processes building at once both end with a whole library.
The sources are read through importlib.resources (native/ is package data,
``workbench_engines.native_sources``), so a plain install builds as an
editable one does. It is loaded with cffi's ABI mode (``ffi.dlopen``) and takes device pointers
from torch tensors. native/src/wb_status.c is compiled in beside the .cu
file and native/include is on the include path, so the library returns the
CPU kernels' status codes with the same messages and shares their kernel
enum; its cdef is those headers, stripped as the CPU build strips them.
Like the C kernels, nothing falls back silently: asking for it where it
can't load raises :class:`CudaUnavailable` with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from workbench_engines.errors import NativeKernelError, NativeUnavailable

SOURCE_PACKAGE = "workbench_engines.native_sources"
"""native/ installed as package data (pyproject.toml maps it), so a plain install can build the kernels too."""


def native_dir() -> Path:
    """The native sources as a folder on disk, wherever workbench is installed (nvcc needs real paths)."""
    try:
        root = resources.files(SOURCE_PACKAGE)
    except ImportError as exc:
        raise CudaUnavailable(f"the CUDA sources are not installed ({exc}); reinstall workbench") from exc
    if not isinstance(root, Path):
        raise CudaUnavailable(f"the CUDA sources in {SOURCE_PACKAGE} are not files on disk ({root!r})")
    return root


def sources() -> tuple[Path, ...]:
    """What nvcc compiles: the kernels, and wb_status.c for the shared messages."""
    root = native_dir()
    return root / "cuda" / "wb_attention.cu", root / "src" / "wb_status.c"


def headers() -> tuple[Path, ...]:
    """The cdef, in order: status codes, the kernel enum (wb_attention.h's CPU functions come along but
    are not in this library), the CUDA entry points; wb_checked.h is only included, so it is hashed."""
    root = native_dir()
    return (root / "include" / "wb_status.h", root / "include" / "wb_attention.h",
            root / "cuda" / "wb_attention_cuda.h")


# -Xptxas -v writes registers, shared memory and spills per kernel into the build log.
NVCC_FLAGS = ("-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC", "-Xptxas", "-v", "-lineinfo")
MIN_CAPABILITY = (8, 0)  # mma.sync with bf16 and cp.async


class CudaUnavailable(NativeUnavailable):
    """The CUDA kernels were asked for where they can't run: no GPU, no nvcc, or a failed build."""


@dataclass(frozen=True)
class CudaStatus:
    """Whether the CUDA kernels can run here, and where the built library and its log are."""

    loaded: bool
    error: str | None
    library: Path | None
    device: str | None


def find_nvcc() -> Path | None:
    """nvcc from $CUDA_HOME, $PATH or /usr/local/cuda, in that order."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    for home in candidates:
        if home and (Path(home) / "bin" / "nvcc").is_file():
            return Path(home) / "bin" / "nvcc"
    found = shutil.which("nvcc")
    if found:
        return Path(found)
    default = Path("/usr/local/cuda/bin/nvcc")
    return default if default.is_file() else None


def cache_dir() -> Path:
    """Where built libraries go: $WB_CUDA_CACHE, else the user cache directory."""
    override = os.environ.get("WB_CUDA_CACHE")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("workbench", appauthor=False) / "cuda"


def cdef_text() -> str:
    """The headers' declarations without preprocessor lines, for ``ffi.cdef``."""
    lines = [line for header in headers() for line in header.read_text().splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def _nvcc_version(nvcc: Path) -> str:
    out = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise CudaUnavailable(f"{nvcc} --version failed: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


def build(capability: tuple[int, int], nvcc: Path | None = None) -> Path:
    """Compile the kernels for sm_<capability> (cached) and return the library's path.

    The build log beside it (``build.log``) holds ptxas's per-kernel report.
    Raises CudaUnavailable when nvcc is missing or the build fails.
    """
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise CudaUnavailable("nvcc not found: install the CUDA toolkit or set CUDA_HOME")
    arch = f"{capability[0]}{capability[1]}"
    # Hopper's wgmma-era features need the "a" target; the kernels use only mma.sync, so plain sm_90 is enough.
    root = native_dir()
    flags = [*NVCC_FLAGS, f"-gencode=arch=compute_{arch},code=sm_{arch}", f"-I{root / 'cuda'}", f"-I{root / 'include'}",
             f'-DWB_BUILD_INFO="nvcc sm_{arch}"']  # what wb_status_build_info() answers
    digest = hashlib.sha256()
    for path in (*sources(), *headers(), root / "include" / "wb_checked.h"):
        digest.update(path.read_bytes())
    digest.update(" ".join(flags).encode())
    digest.update(_nvcc_version(nvcc).encode())
    target_dir = cache_dir() / f"sm{arch}-{digest.hexdigest()[:16]}"
    library = target_dir / "libwb_cuda.so"
    if library.is_file():
        return library
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target_dir, suffix=".so", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        cmd = [str(nvcc), *flags, "-o", str(partial), *map(str, sources())]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        (target_dir / "build.log").write_text(" ".join(cmd) + "\n" + out.stdout + out.stderr)
        if out.returncode != 0:
            raise CudaUnavailable(f"nvcc failed for sm_{arch} (log: {target_dir / 'build.log'}): "
                                  f"{out.stderr.strip()[-2000:]}")
        os.replace(partial, library)
    finally:
        partial.unlink(missing_ok=True)
    return library


_loaded: tuple | None = None
_failure: str | None = None
_lock = threading.Lock()


def _load():
    """The loaded library, built once per process; a failure is remembered too, so a machine without a
    working nvcc pays for one failed build, not one per call (forget_failure() allows a retry)."""
    global _loaded, _failure
    with _lock:
        if _loaded is not None:
            return _loaded
        if _failure is not None:
            raise CudaUnavailable(_failure)
        try:
            _loaded = _load_uncached()
        except CudaUnavailable as exc:
            _failure = str(exc)
            raise
        except (OSError, subprocess.SubprocessError) as exc:  # sources unreadable, cache read-only, nvcc hung
            _failure = f"the CUDA kernels could not be built: {exc}"
            raise CudaUnavailable(_failure) from exc
        return _loaded


def forget_failure() -> None:
    """Let the next call try the build again (after installing nvcc, say)."""
    global _failure
    with _lock:
        _failure = None


def _load_uncached():
    try:
        import torch
    except ImportError as exc:
        raise CudaUnavailable(f"torch is not importable: {exc}") from exc
    if not torch.cuda.is_available():
        raise CudaUnavailable(f"no CUDA GPU visible to torch {torch.__version__} (built for CUDA {torch.version.cuda})")
    capability = torch.cuda.get_device_capability()
    if capability < MIN_CAPABILITY:
        raise CudaUnavailable(f"the CUDA kernels need compute capability 8.0 or newer (tensor-core bf16 mma); "
                              f"this GPU is {capability[0]}.{capability[1]}")
    library = build(capability)
    from cffi import FFI

    ffi = FFI()
    ffi.cdef(cdef_text())
    lib = ffi.dlopen(str(library))
    count = ffi.new("int *")
    status = lib.wb_cuda_device_count(count)
    if status != 0 or count[0] < 1:
        message = ffi.string(lib.wb_cuda_status_message(status)).decode()
        raise CudaUnavailable(f"the CUDA runtime found no device: {message}")
    return ffi, lib, library, torch.cuda.get_device_name()


def cuda_library():
    """(ffi, lib) of the built CUDA kernels, or CudaUnavailable with the reason."""
    ffi, lib, _, _ = _load()
    return ffi, lib


def cuda_status() -> CudaStatus:
    """Whether the CUDA kernels load here; builds them on first call where a GPU is present."""
    try:
        _, _, library, device = _load()
    except CudaUnavailable as exc:
        return CudaStatus(loaded=False, error=str(exc), library=None, device=None)
    return CudaStatus(loaded=True, error=None, library=library, device=device)


def check_cuda_status(function: str, status: int) -> None:
    """Raise NativeKernelError for a non-zero status from the CUDA library."""
    if status != 0:
        ffi, lib = cuda_library()
        raise NativeKernelError(function, status, ffi.string(lib.wb_cuda_status_message(status)).decode())
