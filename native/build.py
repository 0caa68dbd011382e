"""cffi build script for the C kernels: compiles native/src into workbench_engines._native.

Run by setuptools through ``cffi_modules`` at install time (API mode). The
headers in native/include are the single source of truth: their
declarations are fed to ``cdef`` with preprocessor lines removed.

Environment:
    WB_NATIVE=0            skip the native build (the reference path still works).
    WB_NATIVE_ARCH=native  -march to compile for (default ``native``; ``portable``
                           leaves it out so the library runs on any x86-64/arm64).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
INCLUDE = HERE / "include"
SOURCES = sorted(str(p.relative_to(HERE.parent)) for p in (HERE / "src").glob("*.c"))
HEADERS = [
    "wb_status.h", "wb_softmax.h", "wb_pretok.h", "wb_bpe.h", "wb_attention.h", "wb_sampling.h", "wb_moe.h",
    "wb_paged.h", "wb_quant.h", "wb_linear.h", "wb_roofline.h", "wb_scan.h",
    # search (issue 15)
    "wb_search.h", "wb_hnsw.h",
    # word2vec (issue 15)
    "wb_word2vec.h",
]


def cdef_text() -> str:
    """Declarations of every header, without preprocessor lines."""
    lines = []
    for name in HEADERS:
        for line in (INCLUDE / name).read_text().splitlines():
            if not line.lstrip().startswith("#"):
                lines.append(line)
    return "\n".join(lines)


def compiler_accepts(flags: list[str]) -> bool:
    """Whether the C compiler compiles and links a small OpenMP/SIMD program with flags."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    if shutil.which(cc[0]) is None:
        return False
    program = "#include <math.h>\nint main(void){float s=0;\n#pragma omp parallel for reduction(+:s)\nfor(int i=0;i<4;i++) s+=expf(i); return s<0;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(program)
        result = subprocess.run(
            [*cc, *flags, str(src), "-o", str(Path(tmp) / "probe"), "-lm"],
            capture_output=True,
        )
    return result.returncode == 0


def compile_flags() -> tuple[list[str], list[str]]:
    """Compile and link flags: -O3, the target arch if accepted, OpenMP if available.

    ISO C mode (-std=c11) turns off GCC's contraction of a * b + c into one
    fused multiply-add; the kernels' inner loops are exactly that, so it is
    turned back on. -fno-trapping-math lets GCC turn the clamps and selects of
    wb_expf into vector blends: under its default, a comparison that might
    raise a floating-point exception is "control flow", and on an AVX2 Zen 3
    every exp loop stayed scalar (softmax 4x slower, 0.3x torch). Nothing here
    enables floating-point traps; each operation rounds as before, and only
    sums now vectorised add in another order.
    """
    cflags = ["-O3", "-std=c11", "-ffp-contract=fast", "-fno-trapping-math", "-fopenmp-simd"]
    arch = os.environ.get("WB_NATIVE_ARCH", "native")
    if arch != "portable" and compiler_accepts([f"-march={arch}"]):
        cflags.append(f"-march={arch}")
    ldflags: list[str] = []
    if compiler_accepts(["-fopenmp"]):
        cflags.append("-fopenmp")
        ldflags.append("-fopenmp")
    return cflags, ldflags


def make_builder() -> FFI:
    cflags, ldflags = compile_flags()
    info = " ".join(cflags) + (" openmp=yes" if "-fopenmp" in cflags else " openmp=no")
    builder = FFI()
    builder.cdef(cdef_text())
    builder.set_source(
        "workbench_engines._native",
        "".join(f'#include "{name}"\n' for name in HEADERS),
        sources=SOURCES,
        include_dirs=[str(INCLUDE)],
        define_macros=[("WB_BUILD_INFO", f'"{info}"')],
        extra_compile_args=cflags,
        extra_link_args=ldflags,
        libraries=["m"],
        optional=True,
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
