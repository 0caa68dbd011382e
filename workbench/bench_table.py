"""Prints a benchmark Report as one plain table: medians, throughput, ratios, checks."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from workbench_engines.profiling import Report


def print_report(report: Report) -> None:
    console = Console()
    if not console.is_terminal:
        # Piped or captured: keep each row on one line for logs and notes.
        console = Console(width=160)
    table = Table(title=f"workbench bench {report.benchmark}: {report.description}", title_justify="left")
    show_flops = any(row.gflops for row in report.rows)
    show_bytes = any(row.gbytes_per_s for row in report.rows)
    show_peak = any(row.peak_bytes is not None for row in report.rows)
    columns = ["case", "contender", "median ms", "min ms"]
    columns += ["GFLOP/s"] * show_flops + ["MB/s"] * show_bytes + ["peak MiB"] * show_peak
    for name in columns:
        table.add_column(name, justify="left" if name in ("case", "contender") else "right")
    for base in report.baselines:
        table.add_column(f"× {base}", justify="right")
    table.add_column("matches")
    show_note = any(row.note for row in report.rows)
    if show_note:
        table.add_column("note")
    previous = None
    for row in report.rows:
        if previous is not None and row.case != previous:
            table.add_section()
        previous = row.case
        table.add_row(
            row.case,
            row.contender,
            f"{row.median_s * 1e3:.3f}",
            f"{row.min_s * 1e3:.3f}",
            *([f"{row.gflops:,.2f}"] if show_flops else []),
            *([f"{row.gbytes_per_s * 1e3:.1f}"] if show_bytes else []),
            *([f"{row.peak_bytes / 2**20:.1f}" if row.peak_bytes is not None else "-"] if show_peak else []),
            *[f"{row.ratios[b]:.2f}" if b in row.ratios else "-" for b in report.baselines],
            "yes" if row.matches else f"NO: {row.mismatch}",
            *([row.note] if show_note else []),
        )
    console.print(table)
    env = report.environment
    console.print(
        f"median of {max((r.repeats for r in report.rows), default=0)} timed runs (fewer for slow cases) after warm-up, wall clock; "
        f"× X = X's median / this median (higher is faster). FLOPs and bytes counted from the shapes.\n"
        f"python {env['python']} on {env['machine']}, {env['cpus']} CPUs; native: {env['native']}"
        + (f"\nGPU present: {env['gpu']} (GPU rows synchronise the device after each run)" if "gpu" in env else "")
    )
