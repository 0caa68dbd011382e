"""Prints a benchmark Report as one plain table: medians, throughput, ratios, checks."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console

from workbench_engines.profiling import Report
from workbench.widgets.profile_panel import profile_table, ratios_line, sources_line

BUSY_WARNING = 0.1
"""The share of the CPUs other processes may keep busy before a table warns that its thread rows suffered."""


FULL_WIDTH = 120
"""Narrower than this (an 80-column terminal), a report prints a lab's compact table with each row's note under it:
the full one's dozen columns would squeeze the contender and note columns to nothing."""


def print_report(report: Report) -> None:
    console = _console()
    title = f"workbench bench {report.benchmark}: {report.description}"
    full = console.width >= FULL_WIDTH
    if full:
        console.print(profile_table(report.rows, report.baselines, title=title))
    else:
        rows = [replace(row, note="") for row in report.rows]
        console.print(profile_table(rows, report.baselines, compact=True, title=title,
                                    caption=ratios_line(report.baselines)))
        for case in dict.fromkeys(row.case for row in report.rows if row.note):
            notes = "; ".join(f"{row.label}: {row.note}" for row in report.rows if row.case == case and row.note)
            console.print(f"{case}: {notes}" if case else notes, highlight=False)
    if report.summary:
        console.print(report.summary, highlight=False)
    if report.roofline:
        console.print(report.roofline.line(), highlight=False)
    env = report.environment
    console.print(
        f"{sources_line(report.rows)} (fewer for slow cases); "
        + ("× X = X's median / this median (higher is faster). " if full else "")
        + "FLOPs and bytes counted from the shapes.\n"
        f"python {env['python']} on {env['cpu']}, {env['cpus']} CPUs; native: {env['native']}"
        + (f"\nGPU present: {env['gpu']} (GPU rows synchronise the device after each run)" if "gpu" in env else "")
    )
    busy = env.get("others_busy")
    if busy is not None and busy >= BUSY_WARNING:
        console.print(f"Other processes kept {100 * busy:.0f}% of the CPUs busy as this run began: a row on several "
                      "threads waits at every barrier for a thread they keep off its core, and may read slower than "
                      "one thread (OMP_NUM_THREADS=1 makes our kernels' default one thread).", highlight=False)


def _console() -> Console:
    console = Console()
    # Piped or captured: keep each row on one line for logs and notes.
    return console if console.is_terminal else Console(width=160)


def print_quality(name: str, tables: list, env: dict) -> None:
    """The tables of ``workbench bench NAME --quality``, printed the way that benchmark's tables read."""
    printers = {"quant": _print_quant_quality, "embeddings": _print_seed_quality}
    printers[name](name, tables, env)


def _print_seed_quality(name: str, tables: list, env: dict) -> None:
    """bench embeddings --quality: each metric's mean, spread and range over seeds, ours beside gensim."""
    from rich.table import Table
    from rich.text import Text

    from workbench_engines.embeddings.quality import LEVEL

    console = _console()

    def spread(values, mean: float, sd: float, percent: bool) -> Text:
        """mean ± sd [lowest, highest]: percentage points for accuracies, three decimals for correlations."""
        scale, digits, unit, sd_unit = (100, 2, "%", " pt") if percent else (1, 3, "", "")
        return Text(f"{scale * mean:.{digits}f}{unit} ± {scale * sd:.{digits}f}{sd_unit} "
                    f"[{scale * min(values):.{digits}f}, {scale * max(values):.{digits}f}]")

    for table in tables:
        seeds = f"seeds {table.seeds[0]}-{table.seeds[-1]}" if len(table.seeds) > 1 else f"seed {table.seeds[0]}"
        out = Table(title=f"workbench bench {name} --quality: word2vec skip-gram on the plays, {table.threads} "
                          f"thread{'s' * (table.threads > 1)}, {table.epochs} x {table.words:,} words, {seeds}",
                    title_justify="left")
        for header in ("test set", "items", "ours", "gensim", "ours − gensim", "verdict"):
            out.add_column(header, justify="left" if header in ("test set", "verdict") else "right")
        for row in table.rows:
            percent = row.metric == "analogies"
            out.add_row(row.metric, f"{row.items:,}", spread(row.ours.values, row.ours.mean, row.ours.sd, percent),
                        spread(row.gensim.values, row.gensim.mean, row.gensim.sd, percent),
                        f"{100 * row.difference:+.2f} pt" if percent else f"{row.difference:+.3f}", row.verdict)
        console.print(out)
    console.print(
        "ours, gensim: mean ± standard deviation [lowest, highest] over the seeds. "
        "analogies: questions-words accuracy, 3CosAdd, gensim's counting (questions with a word outside the "
        "vocabulary skipped); WordSim-353, SimLex-999: Spearman correlation of cosines with human ratings over the "
        f"pairs in the vocabulary. Verdict: Welch's t-test on the means at the {100 * LEVEL:g}% level, t = difference "
        "/ sqrt(sd_ours^2/n + sd_gensim^2/n); 'no clear difference' below Student's t at Welch's degrees of freedom, "
        "'equal' under one question (analogies) or 0.001 (Spearman).\n"
        f"python {env['python']} on {env['cpu']}, {env['cpus']} CPUs",
        highlight=False, markup=False,
    )


def _print_quant_quality(name: str, tables: list, env: dict) -> None:
    """bench quant --quality: one table per model, each variant beside the float row."""
    from rich.table import Table

    from workbench_engines.compress.quality import GROUP

    console = _console()
    for table in tables:
        base = table.rows[0]
        out = Table(title=f"workbench bench {name} --quality: {table.model}, {table.tokens:,} held-out tokens "
                          f"({table.text})", title_justify="left")
        for header in ("weights", "bits/weight", "perplexity", "Δ ppl", "bits/byte", "KL (nats)", "same top",
                       "quantise s"):
            out.add_column(header, justify="left" if header == "weights" else "right")
        for row in table.rows:
            change = "" if row is base else f"{100 * (row.perplexity / base.perplexity - 1):+.2f}%"
            out.add_row(row.variant, f"{row.bits_per_weight:.2f}" if row is not base else "32 (float)",
                        f"{row.perplexity:.3f}", change, f"{row.bits_per_byte:.4f}",
                        f"{row.kl:.4f}" if row is not base else "", f"{100 * row.same_top:.1f}%",
                        f"{row.seconds:.1f}" if row is not base else "")
        console.print(out)
        console.print(f"{table.model}: float row = {table.float_label}; GPTQ and AWQ calibrated on "
                      f"{table.calibration}.", highlight=False)
    console.print(
        "Block linears quantised; embedding and tied output head float. KL: mean KL(float ‖ variant) per token. "
        f"RTN/GPTQ/AWQ: groups of {GROUP} with zero points and 16-bit scales.\n"
        "SmolLM2 ships only as Q4_1: its float row is those blocks dequantised, and its Q4_1 row "
        "re-rounds weights already on a Q4_1 grid.\n"
        f"python {env['python']} on {env['cpu']}, {env['cpus']} CPUs; torch threads as set (all by default)",
        highlight=False,
    )
