"""Importing the engines pulls in no UI package and no torch (the lazy import really defers)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import workbench_engines


# Modules that are torch code by nature (models and the tensors a KV cache holds);
# nothing else may pull them in at import time.
TORCH_MODULES = {
    "workbench_engines.models.layers", "workbench_engines.models.gpt", "workbench_engines.models.train",
    "workbench_engines.kvcache.contiguous", "workbench_engines.kvcache.paged", "workbench_engines.kvcache.stream",
    "workbench_engines.moe.layer", "workbench_engines.models.miniformer", "workbench_engines.models.llama",
    "workbench_engines.models.minilm_torch", "workbench_engines.finetune.lora", "workbench_engines.finetune.genre",
    "workbench_engines.longctx.mamba", "workbench_engines.models.llm_draft",
}


def test_engines_import_without_ui_or_torch():
    modules = [m.name for m in pkgutil.walk_packages(workbench_engines.__path__, "workbench_engines.")
               if m.name != "workbench_engines._native" and m.name not in TORCH_MODULES]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'rich', 'plotext', 'textual_plotext', 'workbench', 'torch'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
    assert "workbench_engines.softmax.bench" in modules


def test_app_start_does_not_import_torch():
    code = (
        "import sys\nfrom workbench.app import WorkbenchApp\nfrom workbench.screens import catalog, lesson\n"
        "import workbench.labs.softmax_labs\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
