"""Prints a benchmark Report as one plain table: medians, throughput, ratios, checks."""

from __future__ import annotations

from rich.console import Console

from workbench_engines.profiling import Report
from workbench.widgets.profile_panel import profile_table, sources_line


def print_report(report: Report) -> None:
    console = Console()
    if not console.is_terminal:
        # Piped or captured: keep each row on one line for logs and notes.
        console = Console(width=160)
    console.print(profile_table(report.rows, report.baselines,
                                title=f"workbench bench {report.benchmark}: {report.description}"))
    if report.summary:
        console.print(report.summary, highlight=False)
    env = report.environment
    console.print(
        f"{sources_line(report.rows)} (fewer for slow cases); × X = X's median / this median (higher is faster). "
        f"FLOPs and bytes counted from the shapes.\n"
        f"python {env['python']} on {env['cpu']}, {env['cpus']} CPUs; native: {env['native']}"
        + (f"\nGPU present: {env['gpu']} (GPU rows synchronise the device after each run)" if "gpu" in env else "")
    )
