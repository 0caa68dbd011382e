#!/usr/bin/env bash
# Everything the CUDA kernels need checked on a GPU machine, in one call: the
# build report (registers, shared memory, spills), the parity and bad-input
# tests, then the GPU rows of the attention benchmark.
#
# It runs from a plain checkout with only torch, numpy, rich, pytest and
# hypothesis installed (no `pip install -e .`): cffi and pycparser are
# installed from wheels in .whl/ when missing, e.g. fetched beforehand with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 -d .whl cffi pycparser
# Usage: native/cuda/gpu_check.sh [bench repeats, default 20]
set -euo pipefail
cd "$(dirname "$0")/../.."
repeats="${1:-20}"
if ! python3 -c "import cffi" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/wb-site .whl/*.whl
    export PYTHONPATH="/tmp/wb-site${PYTHONPATH:+:$PYTHONPATH}"
fi
# Installed, engines/ and lessons/ are the packages workbench_engines and
# workbench_lessons; without an install, links give them those names.
links=/tmp/wb-packages
mkdir -p "$links"
ln -sfn "$PWD/engines" "$links/workbench_engines"
ln -sfn "$PWD/lessons" "$links/workbench_lessons"
export PYTHONPATH="$PWD:$links${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WB_CUDA_CACHE="${WB_CUDA_CACHE:-/tmp/wb-cuda}"
out="${OUT:-/tmp/wb-gpu-check}"
mkdir -p "$out"

nvidia-smi --query-gpu=name,compute_cap,clocks.sm,clocks.max.sm,memory.total --format=csv
python3 -c "from workbench_engines.cudalib import cuda_status; print(cuda_status())"
grep -E "Compiling entry|registers|spill" "$WB_CUDA_CACHE"/*/build.log | sed 's/ptxas info *: //' | tee "$out/ptxas.txt"
status=0
python3 -m pytest -q -p no:cacheprovider tests/test_attention_cuda.py > "$out/tests.txt" 2>&1 || status=$?
tail -15 "$out/tests.txt"
python3 -m workbench bench attention-gpu --repeats "$repeats" --warmup 3 2>/dev/null | tee "$out/bench.txt" || status=$?
exit "$status"
