"""The runner behind ``workbench bench`` and every lab that races: contenders side by side, one run.

Follows llm.c's order: run the reference, validate every contender against
it, warm up, time repeats, validate again, report medians with counted FLOPs
and bytes, and ratios against the baselines measured in the same run. A lab
describes its cases with the same builders a benchmark uses and calls
:func:`run_cases`, so both show the same figures for the same case.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from workbench_engines.profiling import roofline
from workbench_engines.profiling.profile import Profile, Timer, median, peak_memory
from workbench_engines.profiling.roofline import Roofline

ProgressFn = Callable[[int, int, str], None]
"""progress(done, total, what) called between timed steps; it may raise to stop the run (a lab's cancel)."""

Check = Callable[[Any, Any], str | None]
"""check(expected, got) -> None when they match, else a short description."""


@dataclass
class Contender:
    """One implementation racing in a case."""

    name: str
    run: Callable[[], Any]
    backend: str
    setup: Callable[[], None] | None = None
    """Called before the contender's runs (e.g. set torch's thread count)."""
    teardown: Callable[[], None] | None = None
    memory_visible: bool = True
    """False when its allocations bypass tracemalloc (torch): its peak is then not reported."""
    repeats: int | None = None
    """Timed runs for this contender when it is much slower than the rest (e.g. decoding without a cache)."""
    warmup: int | None = None
    memory_probe: Callable[[Callable[[], Any]], int] | None = None
    """probe(run) -> peak bytes of one run, for allocators tracemalloc can't see (the CUDA caching allocator)."""
    memory_source: str = "tracemalloc"
    """What measured its peak memory (name the allocator a memory_probe reads)."""
    bytes_moved: float | None = None
    """Its own bytes per run where contenders of one case move different amounts (else the case's)."""
    note: str = ""
    """A fixed word on this contender for the table (what the case's describe can't see in the output)."""


@dataclass
class Case:
    """One workload: several contenders computing the same thing on the same inputs."""

    name: str
    contenders: list[Contender]
    check: Check
    reference: str
    """Contender whose output every other one is validated against."""
    baselines: tuple[str, ...]
    """Contenders to give ratios against (baseline median / contender median)."""
    flops: float = 0.0
    bytes_moved: float = 0.0
    repeats: int | None = None
    """Timed runs for this case when it must differ from the run's (slow contenders)."""
    warmup: int | None = None
    measure_memory: bool = False
    """Also run each contender once under tracemalloc and report its peak allocation."""
    describe: Callable[[Any], str] | None = None
    """A short note on a contender's output for the table (tokens/s, acceptance rate, waste)."""
    figures: Callable[[Any], dict[str, float]] | None = None
    """Numbers read off a contender's output (acceptance rate, loss) into its Profile's extra, for plots."""
    interleave: bool = False
    """Time the contenders in alternating rounds instead of one after another, so that a noisy
    machine's drift (other load, clock changes) falls on all of them alike."""
    inputs: Callable[[], Any] | None = None
    """Fresh inputs for every run, made outside the timer, for contenders that may write to theirs;
    each contender's run then takes them as its one argument."""
    per_run: tuple[float, str] | None = None
    """(count, unit) one run processes, e.g. (128, "tokens"): the table notes count / median as a rate."""


@dataclass
class Report:
    benchmark: str
    description: str
    baselines: tuple[str, ...]
    rows: list[Profile]
    environment: dict[str, Any]
    summary: str = ""
    """Lines the benchmark draws from its rows, printed under the table (bench llm: the roofline)."""
    roofline: Roofline | None = None
    """The ceilings measured in the same run that each row's roof share is of (None: none measured)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "description": self.description,
            "baselines": list(self.baselines),
            "environment": self.environment,
            "rows": [row.as_dict() for row in self.rows],
            "summary": self.summary,
            "roofline": self.roofline.as_dict() if self.roofline else None,
        }


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    description: str
    target: str
    """``module:function`` returning list[Case]; imported only when run."""
    summary: str | None = None
    """``module:function`` turning the measured rows into the Report's summary, or None."""
    quality: str | None = None
    """``module:function`` making the benchmark's quality tables (``--quality``: what a speed-up costs), or None."""


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in [
        BenchmarkSpec(
            "softmax",
            "Row softmax / log-softmax / logsumexp, fp32: native C vs NumPy vs torch",
            "workbench_engines.softmax.bench:cases",
        ),
        BenchmarkSpec(
            "machine",
            "This machine's roofline: fp32 FMA peak (our register-resident chains and torch's matmul; bf16 where the "
            "CPU has it) and memory bandwidth (STREAM triad, read), at 1 and all threads, with the vector paths "
            "compiled and the ridge point between the ceilings; and one matmul in fp32, bf16 and fp16 at one thread "
            "(what 16-bit units buy)",
            "workbench_engines.profiling.machine:cases",
            "workbench_engines.profiling.machine:summary",
        ),
        BenchmarkSpec(
            "attention",
            "Attention forward, fp32, batch 1, 8 heads, dim 64 (and 128): native naive and flash vs torch SDPA vs "
            "NumPy, beside torch's fp32 matmul rate in the same run (goals: flash >= 1.2x torch SDPA and >= 75% of "
            "the matmul rate at seq >= 2048); with a GPU also bf16 CUDA flash and naive vs torch SDPA",
            "workbench_engines.attention.bench:cases",
            "workbench_engines.attention.bench:summary",
        ),
        BenchmarkSpec(
            "attention-gpu",
            "The GPU rows of bench attention alone: bf16 CUDA flash and naive vs torch SDPA (none without a GPU)",
            "workbench_engines.attention.bench:gpu_only_cases",
        ),
        BenchmarkSpec(
            "moe",
            "Mixture-of-experts dispatch and combine: native C vs torch index-based vs NumPy",
            "workbench_engines.moe.bench:cases",
        ),
        BenchmarkSpec(
            "sampling",
            "Next-token top-p / top-k over a 100k vocabulary: native bucketed selection vs sort-based torch and NumPy",
            "workbench_engines.sampling.bench:cases",
        ),
        BenchmarkSpec(
            "quant",
            "Quantised matrix-vector product, one decoding step of SmolLM2-135M (Q4_1, Q8_0): "
            "native float32- and int8-activation kernels vs torch fp32, dequantise-then-matmul and llama.cpp's ggml "
            "(where installed), at 1 and 2 threads; --quality: what each format and method costs in perplexity",
            "workbench_engines.quant.bench:cases",
            quality="workbench_engines.compress.quality:quality_tables",
        ),
        BenchmarkSpec(
            "decode",
            "Decoding the shipped GPT: KV cache on/off, paged vs contiguous, KV memory waste, top-p, speculative",
            "workbench_engines.generation.bench:cases",
        ),
        BenchmarkSpec(
            "llm",
            "SmolLM2-135M-Instruct: prefill and decode tokens/s, ours fp32 and quantized vs transformers "
            "(and llama.cpp where installed), at 1 and 2 threads, beside the measured memory bandwidth; then the "
            "cost of verifying T tokens at once, and the acceptance a speculative draft needs for 1.3x",
            "workbench_engines.models.llm_bench:cases",
            "workbench_engines.models.llm_bench:summary",
        ),
        BenchmarkSpec(
            "longctx",
            "Long context and the alternatives to attention: Mamba's selective scan on one Mamba-130m layer (d 1536, "
            "n 16, 2048 tokens), C at 1 and all threads vs a torch loop (selective_scan_ref's order), torch's "
            "log-space parallel scan and NumPy; then one decoded token's cost and state bytes against context 1k-64k "
            "for softmax attention over a KV cache, a 4096 sliding window, the linear-attention recurrence and the "
            "scan step (one thread)",
            "workbench_engines.longctx.bench:cases",
        ),
        BenchmarkSpec(
            "tokenizers",
            "cl100k encode (native vs tiktoken vs HF tokenizers) on the plays and on two adversarial one-piece texts, "
            "and BPE training (vs HF, sentencepiece); goals: >= 8x tiktoken at one thread on the text, >= 3x on the "
            "adversarial pieces",
            "workbench_engines.tokenizers.bench:cases",
            "workbench_engines.tokenizers.bench:summary",
        ),
        BenchmarkSpec(
            "embeddings",
            "word2vec skip-gram training on the plays, words/s end to end: ours (C, Hogwild) vs gensim with the same "
            "hyperparameters, at 1 and 2 threads, with both sides' analogy accuracy (questions-words); goal >= 1.0x "
            "gensim at equal quality; a full run takes a few minutes; --quality: both trainers over several seeds on "
            "three test sets",
            "workbench_engines.embeddings.bench:cases",
            "workbench_engines.embeddings.bench:summary",
            quality="workbench_engines.embeddings.quality:quality_tables",
        ),
        BenchmarkSpec(
            "search",
            "Search at one thread, queries/s: exact, IVF and HNSW on GloVe's 400,000 unit vectors vs faiss-cpu "
            "(recall@10, build time, bytes per vector); BM25 on the BBC headline task vs bm25s and rank_bm25. Goals: "
            "exact >= 1.0x faiss flat, HNSW >= 0.7x faiss HNSW at recall@10 >= 0.95, BM25 >= 1.0x bm25s. Indexes "
            "are built once, untimed: the HNSW builds take about 90 s a side, a full run several minutes",
            "workbench_engines.search.bench:cases",
            "workbench_engines.search.bench:summary",
        ),
        BenchmarkSpec(
            "finetune",
            "Sentiment classifier on all-MiniLM-L6-v2, one thread: head only, LoRA r = 1..64 and full fine-tuning in "
            "one budget (trainable parameters, AdamW state, time per step, held-out accuracy and macro-F1 beside the "
            "lexicon judge); then the hand-written cross-entropy and AdamW against torch's. A full run takes about "
            "ten minutes",
            "workbench_engines.finetune.bench:cases",
            "workbench_engines.finetune.bench:summary",
        ),
    ]
}


def torch_threads(n: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """(setup, teardown) for a Contender: run torch on n threads, then restore its setting."""
    previous: list[int] = []

    def setup() -> None:
        import torch

        previous.append(torch.get_num_threads())
        torch.set_num_threads(n)

    def teardown() -> None:
        import torch

        torch.set_num_threads(previous.pop())

    return setup, teardown


def blas_threads(n: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """(setup, teardown) for a Contender: NumPy's BLAS and OpenMP pools on n threads, then restored.

    Through threadpoolctl (the test extra has it); without it the pools keep their own setting and setup
    returns quietly, so a caller that must know checks :func:`can_limit_blas`.
    """
    held: list[Any] = []

    def setup() -> None:
        held.append(_threadpool_limits(n))

    def teardown() -> None:
        limits = held.pop()
        if limits is not None:
            limits.restore_original_limits()

    return setup, teardown


def can_limit_blas() -> bool:
    """Whether blas_threads can pin NumPy's BLAS (threadpoolctl is installed)."""
    return importlib.util.find_spec("threadpoolctl") is not None


def _threadpool_limits(n: int) -> Any:
    if not can_limit_blas():
        return None
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """NumPy's BLAS on one thread inside the block: where two processes (or a lab beside the app) share two
    cores, BLAS threads spin against each other and a small product can take ten times as long."""
    setup, teardown = blas_threads(1)
    setup()
    try:
        yield
    finally:
        teardown()


VECTOR_UNITS = (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("VNNI", "avx512_vnni"), ("BF16", "avx512_bf16"),
                ("AMX", "amx_tile"))
"""(name, /proc/cpuinfo flag) of the vector units a table's footer names."""


def cpu_fields() -> dict[str, str]:
    """The first processor's fields of Linux's /proc/cpuinfo ("model name", "flags", ...); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in fields.items()}


def cpu_model() -> str:
    """The processor's name and its widest vector units (Linux /proc/cpuinfo; the architecture elsewhere).

    Figures from one session's machine differ from the next one's: a note that
    quotes a table says which CPU printed it.
    """
    fields = cpu_fields()
    flags = set(fields.get("flags", "").split())
    units = [name for name, flag in VECTOR_UNITS if flag in flags]
    name = fields.get("model name") or platform.processor() or platform.machine()
    return f"{name} ({', '.join(units)})" if units else name


def _busy_ticks() -> tuple[int, int] | None:
    """(ticks the CPUs this process may run on spent busy, ticks this process spent) since boot, from Linux's
    /proc; None elsewhere. Only those CPUs: in a container the host's others would read as busy neighbours."""
    mine = {f"cpu{n}" for n in os.sched_getaffinity(0)}
    try:
        lines = [line.split() for line in Path("/proc/stat").read_text().splitlines() if line.startswith("cpu")]
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # /proc/stat's cpuN lines: user nice system idle iowait irq softirq steal ...; proc(5): utime, stime are
    # fields 14 and 15, the 12th and 13th after the parenthesised name.
    busy = sum(int(v) for fields in lines if fields[0] in mine for i, v in enumerate(fields[1:9]) if i not in (3, 4))
    return busy, int(own[11]) + int(own[12])


def others_busy(seconds: float = 0.25) -> float | None:
    """The share of all CPUs that other processes kept busy over the next ``seconds`` (Linux; None elsewhere).

    A benchmark's multi-threaded rows need every CPU they use: an OpenMP team waits at each barrier for its
    slowest thread, and a thread that another process keeps off its core waits a scheduler slice. Measured
    before a run so the table can say when its thread rows were taken on a busy machine.
    """
    before = _busy_ticks()
    if before is None:
        return None
    time.sleep(seconds)
    after = _busy_ticks()
    if after is None:
        return None
    ticks = seconds * os.sysconf("SC_CLK_TCK") * len(os.sched_getaffinity(0))
    others = (after[0] - before[0]) - (after[1] - before[1])
    return min(1.0, max(0.0, others / ticks))


def environment() -> dict[str, Any]:
    """The machine a run measured: Python, CPU, CPUs, the native build, the GPU torch used."""
    from workbench_engines.nativelib import native_status

    status = native_status()
    environment = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpus": len(os.sched_getaffinity(0)),
        "native": status.build_info if status.loaded else f"not loaded: {status.error}",
    }
    torch = sys.modules.get("torch")  # only a benchmark that used torch can have used its GPU
    if torch is not None and torch.cuda.is_available():
        environment["gpu"] = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return environment


def baselines_of(cases: list[Case]) -> tuple[str, ...]:
    """Every baseline any of the cases names, in first-seen order (a table's ratio columns)."""
    return tuple(dict.fromkeys(base for case in cases for base in case.baselines))


def run_cases(
    cases: list[Case],
    *,
    warmup: int = 2,
    repeats: int = 10,
    progress: ProgressFn | None = None,
) -> list[Profile]:
    """Race every case's contenders and return one Profile per contender, case by case.

    ``progress`` is called before each timed step and may raise to stop the
    run; nothing is returned then.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    total = sum(len(case.contenders) for case in cases)
    done = 0
    rows: list[Profile] = []
    for case in cases:
        by_name = {c.name: c for c in case.contenders}
        if progress:
            progress(done, total, f"{case.name}: {case.reference} (reference output)")
        expected = _call(by_name[case.reference], lambda c: _once(case, c))
        plan = [
            (contender,
             min([warmup, *(w for w in (case.warmup, contender.warmup) if w is not None)]),
             min([repeats, *(r for r in (case.repeats, contender.repeats) if r is not None)]))
            for contender in case.contenders
        ]
        if case.interleave:
            if progress:
                progress(done, total, f"{case.name}: interleaved rounds")
            case_rows = _time_interleaved(case, plan, expected)
            done += len(plan)
        else:
            case_rows = []
            for contender, n_warmup, n_repeats in plan:
                if progress:
                    progress(done, total, f"{case.name}: {contender.name}")
                case_rows.append(_time(case, contender, expected, n_warmup, n_repeats))
                done += 1
        medians = {row.name: row.wall_s for row in case_rows}
        rows += [replace(row, ratios={base: medians[base] / row.wall_s for base in case.baselines
                                      if base in medians and row.wall_s > 0})
                 for row in case_rows]
    if progress:
        progress(done, total, "done")
    return rows


def run_benchmark(
    name: str,
    *,
    quick: bool = False,
    warmup: int = 2,
    repeats: int = 10,
    progress: ProgressFn | None = None,
) -> Report:
    """Run every case of benchmark ``name`` and return the report.

    Raises KeyError for an unknown name. ``quick`` uses small inputs (for tests
    and smoke checks), never for figures you report.
    """
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    spec = BENCHMARKS[name]
    busy = others_busy(0.05 if quick else 0.25)
    module_name, func_name = spec.target.split(":")
    cases: list[Case] = getattr(importlib.import_module(module_name), func_name)(quick=quick)
    roof = None
    counted = any(case.flops or case.bytes_moved or any(c.bytes_moved for c in case.contenders) for case in cases)
    if name != "machine" and counted:
        if progress:
            progress(0, sum(len(case.contenders) for case in cases), "this machine's roofline (FMA chains, read)")
        roof = roofline.measure(quick)
    rows = run_cases(cases, warmup=warmup, repeats=repeats, progress=progress)
    if name == "machine":
        roof = roofline.from_rows(rows)
    if roof:
        rows = [roof.place(row) for row in rows]
    summary = ""
    if spec.summary:
        module_name, func_name = spec.summary.split(":")
        summary = getattr(importlib.import_module(module_name), func_name)(rows)
    return Report(name, spec.description, baselines_of(cases), rows, {**environment(), "others_busy": busy}, summary,
                  roof)


def run_quality(name: str, *, quick: bool = False, progress: Callable[[float, str], None] | None = None) -> list:
    """The quality tables of benchmark ``name`` (``workbench bench NAME --quality``); each has ``as_dict()``.

    Raises:
        KeyError: an unknown benchmark. EngineError: one without quality tables.
    """
    from workbench_engines.errors import EngineError

    spec = BENCHMARKS[name]
    if spec.quality is None:
        with_tables = ", ".join(n for n, s in BENCHMARKS.items() if s.quality)
        raise EngineError(f"bench {name} has no quality tables (--quality goes with: {with_tables})")
    module_name, func_name = spec.quality.split(":")
    return getattr(importlib.import_module(module_name), func_name)(quick=quick, progress=progress)


def _call(contender: Contender, fn: Callable[[Contender], Any]) -> Any:
    if contender.setup:
        contender.setup()
    try:
        return fn(contender)
    finally:
        if contender.teardown:
            contender.teardown()


def _once(case: Case, contender: Contender) -> Any:
    """One untimed run of contender (with fresh inputs when the case makes them)."""
    return contender.run(case.inputs()) if case.inputs else contender.run()


def _timed(case: Case, contender: Contender) -> tuple[Any, float]:
    """One run of contender and its wall time; making fresh inputs is not timed."""
    inputs = case.inputs() if case.inputs else None
    with Timer() as t:
        output = contender.run(inputs) if case.inputs else contender.run()
    return output, t.seconds



def _time_interleaved(case: Case, plan: list[tuple[Contender, int, int]], expected: Any) -> list[Profile]:
    """Validate and warm up each contender, then time one run of each per round."""
    times: dict[str, list[float]] = {}
    checks: dict[str, str | None] = {}
    seen: dict[str, tuple[str, dict[str, float]]] = {}
    for contender, n_warmup, _ in plan:
        def first(c: Contender) -> None:
            output, seconds = _timed(case, c)
            checks[c.name] = case.check(expected, output)
            seen[c.name] = _observe(case, output)
            for _ in range(n_warmup):
                _once(case, c)
            times[c.name] = [] if n_warmup else [seconds]

        _call(contender, first)
    for _ in range(max(n for _, _, n in plan)):
        for contender, _, n_repeats in plan:
            if len(times[contender.name]) < n_repeats:
                def once(c: Contender) -> None:
                    times[c.name].append(_timed(case, c)[1])

                _call(contender, once)
    rows = []
    for contender, _, n_repeats in plan:
        mismatch = checks[contender.name]
        if n_repeats > 1:
            mismatch = mismatch or _call(contender, lambda c: case.check(expected, _once(case, c)))
        peak = _call(contender, lambda c: _peak(case, c))
        rows.append(_row(case, contender, times[contender.name], mismatch, peak, seen[contender.name]))
    return rows


def _rate(case: Case, seconds: float) -> str:
    """The case's per-run count as a rate at this median, e.g. "42.1 tokens/s"."""
    if case.per_run is None or seconds <= 0:
        return ""
    count, unit = case.per_run
    return f"{count / seconds:,.1f} {unit}/s"


def _observe(case: Case, output: Any) -> tuple[str, dict[str, float]]:
    """The case's note on an output and the figures it reads off it."""
    return (case.describe(output) if case.describe else "", case.figures(output) if case.figures else {})


def _peak(case: Case, contender: Contender) -> int | None:
    """Peak bytes of one run when the case measures memory and some probe can see the contender's allocations."""
    if not case.measure_memory:
        return None
    run = (lambda: contender.run(case.inputs())) if case.inputs else contender.run
    if contender.memory_probe is not None:
        return contender.memory_probe(run)
    return peak_memory(run)[1] if contender.memory_visible else None


def _row(case: Case, contender: Contender, times: list[float], mismatch: str | None, peak: int | None,
         observed: tuple[str, dict[str, float]]) -> Profile:
    note, figures = observed
    return Profile(
        backend=contender.backend,
        wall_s=median(times),
        min_s=min(times),
        repeats=len(times),
        flops=case.flops,
        bytes_moved=case.bytes_moved if contender.bytes_moved is None else contender.bytes_moved,
        peak_bytes=peak,
        memory_source=contender.memory_source,
        name=contender.name,
        case=case.name,
        matches=mismatch is None,
        mismatch=mismatch,
        note="; ".join(part for part in (_rate(case, median(times)), contender.note, note) if part),
        extra=dict(figures),
    )


def _time(case: Case, contender: Contender, expected: Any, warmup: int, repeats: int) -> Profile:
    def timed(c: Contender) -> tuple[list[float], str | None, int | None, tuple[str, dict[str, float]]]:
        output, first = _timed(case, c)
        mismatch = case.check(expected, output)
        observed = _observe(case, output)
        for _ in range(warmup):
            _once(case, c)
        # Without warm-up the validated run is the first timed one (slow contenders run once).
        times = [] if warmup else [first]
        for _ in range(repeats - len(times)):
            times.append(_timed(case, c)[1])
        if repeats > 1:
            # Validate again after the timed runs: a contender must not drift.
            mismatch = mismatch or case.check(expected, _once(case, c))
        return times, mismatch, _peak(case, c), observed

    times, mismatch, peak, observed = _call(contender, timed)
    return _row(case, contender, times, mismatch, peak, observed)
