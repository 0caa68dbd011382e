"""Profiles side by side: time, throughput, memory, ratios and whether the outputs matched.

One table for every measurement the workbench shows: ``workbench bench``
prints it, and every lab that races shows it in a :class:`ProfilePanel`, so a
lab and a benchmark show the same columns for the same case.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static
from workbench_engines.profiling import Profile


def _matches(row: Profile) -> str:
    if row.matches is None:
        return "-"
    return "yes" if row.matches else f"NO: {row.mismatch}"


def _roof(row: Profile) -> str:
    """The row's share of the ceiling that binds it, e.g. "78% peak" or "41% bw"; "-" without one."""
    return "-" if row.roof_share is None else f"{100 * row.roof_share:.0f}% {row.roof_bound}"


CASE_WIDTH = 40
"""The widest the contender column grows where it also holds each case's name as a heading line (a lab's table, and
a bench table of several cases), so a long name wraps instead of cutting the figures to its right."""


def profile_table(rows: Sequence[Profile], baselines: Sequence[str] = (), *, compact: bool = False,
                  title: str | None = None, caption: str | None = None) -> Table:
    """The table of rows: one line a contender, grouped by case, each case's name in a heading line above its rows.

    A "roof" column appears when rows carry a roof share (``workbench bench``
    measures the machine's ceilings in the same run).
    ``compact`` (labs at 80 columns) heads even a single case, leaves out the
    minimum time and GB/s where FLOPs are counted, and heads the ratio columns
    "×1", "×2" (the caption names the baselines); the figures are the same.
    """
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left",
                  header_style="bold", **({"box": None, "pad_edge": False} if compact else {}))
    # A case name as a column of its own was squeezed to five characters a line beside a dozen figures.
    headings = compact or len({row.case for row in rows}) > 1
    show_flops = any(row.gflops for row in rows)
    show_bytes = any(row.gbytes_per_s for row in rows) and not (compact and show_flops)
    show_peak = any(row.peak_bytes is not None for row in rows)
    show_roof = any(row.roof_share is not None for row in rows)
    show_note = any(row.note for row in rows)
    ratio_heads = [f"×{i + 1}" if compact and len(baselines) > 1 else "×" if compact else f"× {base}"
                   for i, base in enumerate(baselines)]
    columns = ["contender", "backend", "ms" if compact else "median ms"]
    columns += ["min ms"] * (not compact) + ["GFLOP/s"] * show_flops + ["GB/s"] * show_bytes + ["roof"] * show_roof
    columns += ["MiB" if compact else "peak MiB"] * show_peak + ratio_heads + ["matches"] + ["note"] * show_note
    for name in columns:
        left = name in ("contender", "backend", "matches", "note")
        # A long case heading wraps in the contender column rather than widening it until the figures to its
        # right are cut.
        heading = headings and name == "contender"
        table.add_column(name, justify="left" if left else "right", no_wrap=name not in ("matches", "note") and
                         not heading, overflow="fold", max_width=CASE_WIDTH if heading else None)
    previous = None
    for row in rows:
        if row.case != previous:
            if previous is not None and not compact:
                table.add_section()
            if headings and row.case:
                table.add_row(Text(row.case, style="bold underline"))
        previous = row.case
        table.add_row(
            row.label,
            row.backend,
            f"{row.wall_s * 1e3:.3f}",
            *([f"{row.min_s * 1e3:.3f}" if row.min_s is not None else "-"] if not compact else []),
            *([f"{row.gflops:,.1f}" if row.flops else "-"] if show_flops else []),
            *([f"{row.gbytes_per_s:,.2f}" if row.bytes_moved else "-"] if show_bytes else []),
            *([_roof(row)] if show_roof else []),
            *([f"{row.peak_bytes / 2**20:.1f}" if row.peak_bytes is not None else "n/a"] if show_peak else []),
            *[f"{row.ratios[b]:.2f}" if b in row.ratios else "-" for b in baselines],
            _matches(row),
            *([row.note] if show_note else []),
        )
    return table


def _contender(row: Profile) -> str:
    """The row's name, with its backend unless the name already says it ("native C" ran on native)."""
    return row.label if row.backend.lower() in row.label.lower() else f"{row.label} ({row.backend})"


def narrow_table(rows: Sequence[Profile], baselines: Sequence[str] = ()) -> Group:
    """The same figures for a pane about 40 columns wide (the exercise view at 80×24).

    Each case is a heading line above its own table; the backend joins the
    contender's name; the matches column says only yes or NO, and what did not
    match, and each row's note, follow the table in full, so nothing is cut.
    """
    show_flops = any(row.gflops for row in rows)
    show_peak = any(row.peak_bytes is not None for row in rows)
    ratio_heads = [f"×{i + 1}" if len(baselines) > 1 else "×" for i in range(len(baselines))]
    parts: list[Table | Text] = []
    for case in dict.fromkeys(row.case for row in rows):
        if case:
            parts.append(Text(case, style="bold"))
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("contender", overflow="fold", min_width=9)
        for name in ["ms", *(["GFLOP/s"] * show_flops), *(["MiB"] * show_peak), *ratio_heads]:
            table.add_column(name, justify="right", no_wrap=True)
        table.add_column("matches", no_wrap=True)
        after = Text()
        for row in (r for r in rows if r.case == case):
            table.add_row(
                _contender(row),
                f"{row.wall_s * 1e3:.3f}",
                *([f"{row.gflops:,.1f}" if row.flops else "-"] if show_flops else []),
                *([f"{row.peak_bytes / 2**20:.1f}" if row.peak_bytes is not None else "n/a"] if show_peak else []),
                *[f"{row.ratios[b]:.2f}" if b in row.ratios else "-" for b in baselines],
                "-" if row.matches is None else "yes" if row.matches else "NO",
            )
            if row.matches is False:
                after.append(f"{row.label} does not match: {row.mismatch}\n")
            if row.note:
                after.append(f"{row.label}: {row.note}\n")
        parts.append(table)
        if after:
            after.rstrip()
            parts.append(after)
    return Group(*parts)


def _possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def ratios_line(baselines: Sequence[str]) -> str:
    """What a compact table's ratio columns are: each baseline's median over the row's (higher is faster)."""
    if not baselines:
        return ""
    if len(baselines) == 1:
        return f"×: {_possessive(baselines[0])} median ÷ this median (higher is faster)"
    return "; ".join(f"×{i + 1}: {base} ÷ this" for i, base in enumerate(baselines)) + " (higher is faster)"


def sources_line(rows: Sequence[Profile]) -> str:
    """Where the figures came from: timer, repeats, memory sources."""
    timers = sorted({row.timer for row in rows})
    repeats = sorted({row.repeats for row in rows})
    memory = sorted({row.memory_source for row in rows if row.peak_bytes is not None})
    span = f"{repeats[0]}" if len(repeats) == 1 else f"{repeats[0]}–{repeats[-1]}"
    text = f"median of {span} timed runs after warm-up, {', '.join(timers)}"
    if memory:
        text += f"; peak memory from {', '.join(memory)} (n/a: an allocator it can't see)"
    return text


class ProfilePanel(Static):
    """A lab's measured results: the benchmark table, compact, with where the figures came from."""

    DEFAULT_CSS = """
    ProfilePanel { height: auto; width: 1fr; }
    """

    def __init__(self, placeholder: str = "", *, narrow: bool = False, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(placeholder, id=id, classes=classes)
        self.rows: list[Profile] = []
        """The profiles shown last (empty until a run finishes)."""
        self.narrow = narrow
        """Lay the figures out for a pane about 40 columns wide (:func:`narrow_table`) instead of a lab's width."""

    def show(self, rows: Sequence[Profile], baselines: Sequence[str] = (), note: str = "") -> None:
        """Render rows; ``note`` joins the caption under the table."""
        self.rows = list(rows)
        caption = "\n".join(part for part in (ratios_line(baselines), sources_line(rows), note) if part)
        if self.narrow:
            self.update(Group(narrow_table(rows, baselines), Text(caption, style="dim")))
        else:
            self.update(profile_table(rows, baselines, compact=True, caption=caption))
