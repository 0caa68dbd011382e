"""A table of engine Profiles side by side: time, throughput, memory, ratio."""

from __future__ import annotations

from rich.table import Table
from textual.widgets import Static

from workbench_engines.profiling import Profile


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f}"


class ProfilePanel(Static):
    """Shows Profiles of one workload on several backends, with speed relative to the first."""

    profiles: list[Profile] = []
    """The profiles shown last (empty until a run finishes)."""
    note: str = ""

    DEFAULT_CSS = """
    ProfilePanel { height: auto; width: 1fr; }
    """

    def show(self, profiles: list[Profile], note: str = "") -> None:
        """Render profiles; the first is the baseline for the ratio column."""
        self.profiles = list(profiles)
        self.note = note
        table = Table(box=None, pad_edge=False, expand=False, header_style="bold")
        for name, justify in [("backend", "left"), ("median ms", "right"), ("GB/s", "right"),
                              ("GFLOP/s", "right"), ("peak MiB", "right"), ("× first", "right")]:
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        base = profiles[0].wall_s if profiles else 0.0
        for p in profiles:
            table.add_row(
                p.backend,
                f"{p.wall_s * 1e3:.3f}",
                f"{p.gbytes_per_s:.1f}",
                f"{p.gflops:.2f}",
                _mib(p.peak_bytes),
                f"{base / p.wall_s:.2f}" if p.wall_s > 0 else "-",
            )
        if note:
            table.caption = note
        self.update(table)
