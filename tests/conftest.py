"""Shared fixtures: an isolated data directory for every test, colour on for snapshots."""

from __future__ import annotations

import os
import random
import zlib

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("default", max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "100")), deadline=None)
settings.load_profile("default")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    # Snapshots and colour assertions need colour; NO_COLOR has its own test.
    monkeypatch.delenv("NO_COLOR", raising=False)


# Fresh inputs every run; WB_SEED=<n> replays a run (the header prints n).
BASE_SEED = int(os.environ.get("WB_SEED", random.randrange(2**32)))


def pytest_report_header(config):
    return f"random inputs: WB_SEED={BASE_SEED}"


@pytest.fixture
def rng(request):
    """A generator seeded from the run's seed and the test's id."""
    return np.random.default_rng([BASE_SEED, zlib.crc32(request.node.nodeid.encode())])
