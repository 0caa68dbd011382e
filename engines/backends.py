"""Which implementation runs: ``backend="auto"`` is resolved here, and only here.

Every engine family offers a NumPy ``reference`` and, where one exists, the
C kernels (``native``), torch or the CUDA kernels. A caller either names one
(and gets an error saying why it can't run, never something else) or asks for
``"auto"``, which takes the first of the family's preferences that can run on
this input here. Either way the answer is a :class:`Choice`: the backend's
name and the reason it was taken, which every figure on screen shows.

>>> resolve("reference", offers=("native", "reference"))
Choice(name='reference', reason='asked for')
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from typing import Mapping

from workbench_engines.errors import NativeUnavailable

KNOWN = ("reference", "native", "torch", "cuda")
FIRST_CHOICE = {
    "native": "the C kernels are loaded",
    "cuda": "the CUDA kernels are loaded",
    "torch": "torch is installed",
    "reference": "the NumPy reference",
}
"""The reason shown when "auto" takes a family's first preference."""


@dataclass(frozen=True)
class Choice:
    """A resolved backend and why it was taken (or why the better ones were not)."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def unavailable_reason(name: str) -> str | None:
    """None when backend ``name`` can run in this process, else why it can't.

    Looking at ``cuda`` builds the CUDA kernels on first use (nvcc), so
    "auto" only considers it where a family offers it.
    """
    if name == "reference":
        return None
    if name == "native":
        from workbench_engines.nativelib import native_status

        status = native_status()
        return None if status.loaded else f"the C kernels did not load: {status.error}"
    if name == "torch":
        return None if find_spec("torch") is not None else "torch is not installed"
    if name == "cuda":
        from workbench_engines.cudalib import cuda_status

        status = cuda_status()
        return None if status.loaded else f"the CUDA kernels can't run: {status.error}"
    return f"no backend called {name!r} (known: {', '.join(KNOWN)})"


def available(name: str) -> bool:
    """Whether backend ``name`` can run here (the benchmarks race only those that can)."""
    return unavailable_reason(name) is None


def resolve(requested: str = "auto", *, offers: tuple[str, ...] = ("native", "reference"),
            unsupported: Mapping[str, str] | None = None) -> Choice:
    """The backend to run: ``requested`` itself, or for "auto" the first of ``offers`` that can.

    Args:
        requested: "auto" or one of ``offers``.
        offers: the family's backends in order of preference for "auto".
        unsupported: backend -> why it can't take this particular input
            (a dtype, a head size beyond a kernel's limit); "auto" skips those.

    Raises:
        ValueError: ``requested`` is not "auto" and not offered, or it can't
            take this input.
        NativeUnavailable: ``requested`` names a backend that can't run here.
    """
    unsupported = dict(unsupported or {})
    if requested != "auto":
        if requested not in offers:
            raise ValueError(f"unknown backend {requested!r}; choose auto or one of {', '.join(offers)}")
        if requested in unsupported:
            raise ValueError(f"backend {requested!r} can't take this input: {unsupported[requested]}")
        why = unavailable_reason(requested)
        if why is not None:
            raise NativeUnavailable(f"backend {requested!r} is unavailable: {why}")
        return Choice(requested, "asked for")
    passed_over = []
    for name in offers:
        why = unsupported.get(name) or unavailable_reason(name)
        if why is None:
            return Choice(name, "; ".join(passed_over) if passed_over else FIRST_CHOICE.get(name, "preferred"))
        passed_over.append(f"not {name}: {why}")
    raise NativeUnavailable("no backend can run this: " + "; ".join(passed_over))
