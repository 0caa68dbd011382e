"""Cases for ``workbench bench finetune``: the sentiment classifier trained head-only, with LoRA at six ranks, in full.

Every regime trains all-MiniLM-L6-v2 plus a linear head (``finetune.classifier``)
on the same TRAIN movie snippets, in the same fixed budget of STEPS AdamW steps
of BATCH sentences (seed SEED, max 64 tokens, one torch thread), and is scored
on the same HELD_OUT sentences. A case per regime:

    head only       the head alone, on the frozen encoder's pooled vectors (cached once, untimed per step)
    LoRA r=R        rank-R adapters on every layer's W_q and W_v, and the head (R in RANKS)
    full            every encoder weight and the head

The budget is trained in the case's reference run (untimed: the runner keeps
that output to validate against); the timed runs are further single steps of
the same trainer, so the table's median is the time per step, and the summary
adds what the budget reached: trainable parameters, AdamW's state bytes (the
live optimiser's: two fp32 moments per trainable parameter and a step counter
per tensor), held-out accuracy and macro-F1, and the
seconds the budget took, beside the lexicon judge and the majority class on
the same held-out sentences. A step is validated by its loss being finite.

After the regimes come ``optim.bench``'s cases: the hand-written cross-entropy
and AdamW against torch's at one thread (they teach; the ratio says what
that costs).

``--quick`` trains QUICK_TRAIN sentences for QUICK_STEPS steps and scores
QUICK_HELD_OUT: a smoke test whose accuracies mean nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench_engines.errors import EngineError
from workbench_engines.finetune.classifier import (
    Metrics,
    Result,
    Settings,
    Subset,
    Trainer,
    lexicon_baseline,
    majority_baseline,
    split,
)
from workbench_engines.finetune.memory import format_bytes
from workbench_engines.profiling.bench import Case, Contender, torch_threads
from workbench_engines.profiling.profile import Profile

TRAIN, HELD_OUT, STEPS, BATCH = 2_000, 1_000, 100, 16
QUICK_TRAIN, QUICK_HELD_OUT, QUICK_STEPS, QUICK_BATCH = 48, 32, 3, 8
RANKS = (1, 2, 4, 8, 16, 64)
QUICK_RANKS = (1, 8)
SEED = 0
THREADS = 1


@dataclass
class Stepped:
    """One timed step's loss, with the budget run it continued."""

    loss: float
    budget: Result
    lexicon: Metrics
    majority: Metrics


class RegimeRun:
    """A trainer that runs its budget on the first call and one more step on every later call.

    The runner times the cases one after another and keeps every case's contenders until the bench ends, so
    each RegimeRun shares a ``live`` list with the others: starting its budget releases the model and AdamW state
    of the one before it (whose case is over), and the bench holds one regime's weights at a time, not all eight.
    """

    def __init__(self, data: Subset, settings: Settings, live: list[RegimeRun]) -> None:
        self.data = data
        self.settings = settings
        self.trainer: Trainer | None = None
        self.live = live
        """Shared by one bench's runs: the one whose trainer is alive, if any."""
        self.budget: Result | None = None
        self.baselines: tuple[Metrics, Metrics] | None = None

    def __call__(self) -> Stepped:
        if self.budget is None:
            while self.live:
                self.live.pop().release()
            self.live.append(self)
            self.trainer = Trainer(self.data, self.settings)
            self.budget = self.trainer.run()
            self.baselines = (lexicon_baseline(self.data.held_out),
                              majority_baseline(self.data.train, self.data.held_out))
            return Stepped(self.budget.losses[-1], self.budget, *self.baselines)
        if self.trainer is None:
            raise EngineError(f"{self.settings.label()}: its model was released when the next regime started")
        return Stepped(self.trainer.step(), self.budget, *self.baselines)

    def release(self) -> None:
        """Drop the trainer (model, AdamW state, batches); the budget's Result, which holds neither, stays."""
        self.trainer = None


def check(expected: Stepped, got: Stepped) -> str | None:
    """None when the step's loss is finite and it continued the budget run the reference made."""
    if not math.isfinite(got.loss):
        return f"the loss is {got.loss}"
    if got.budget is not expected.budget:
        return "the step did not continue the validated budget run"
    return None


def describe(out: Stepped) -> str:
    m, s = out.budget.metrics, out.budget.settings
    return f"held-out accuracy {100 * m.accuracy:.1f}%, macro-F1 {m.macro_f1:.3f} after {s.steps} steps"


def figures(out: Stepped) -> dict[str, float]:
    b = out.budget
    return {"accuracy": b.metrics.accuracy, "macro-F1": b.metrics.macro_f1, "trainable": float(b.trainable),
            "optimizer bytes": float(b.optimizer_state_bytes), "budget s/step": b.seconds_per_step,
            "prepare s": b.prepare_seconds, "budget s": b.seconds, "steps": float(b.settings.steps),
            "batch": float(b.settings.batch_size), "held-out": float(b.metrics.n),
            "lexicon accuracy": out.lexicon.accuracy, "lexicon macro-F1": out.lexicon.macro_f1,
            "majority accuracy": out.majority.accuracy, "majority macro-F1": out.majority.macro_f1}


def regime_settings(quick: bool = False) -> list[Settings]:
    """head only, LoRA at each rank, full: one budget for all."""
    steps, batch = (QUICK_STEPS, QUICK_BATCH) if quick else (STEPS, BATCH)
    ranks = QUICK_RANKS if quick else RANKS
    common = {"steps": steps, "batch_size": batch, "seed": SEED}
    return [Settings("head", **common), *(Settings("lora", rank=r, **common) for r in ranks),
            Settings("full", **common)]


def regime_cases(quick: bool = False) -> list[Case]:
    """One case per regime, its one contender timing single steps after the budget."""
    data = split(QUICK_TRAIN if quick else TRAIN, QUICK_HELD_OUT if quick else HELD_OUT, seed=SEED)
    setup, teardown = torch_threads(THREADS)
    live: list[RegimeRun] = []
    out = []
    for settings in regime_settings(quick):
        contender = Contender(settings.label(), RegimeRun(data, settings, live), "torch", setup=setup,
                              teardown=teardown, memory_visible=False)
        out.append(Case(f"{settings.label()}, {settings.steps} x {settings.batch_size} sentences", [contender],
                        check, reference=contender.name, baselines=(), describe=describe, figures=figures,
                        per_run=(float(settings.batch_size), "sentences")))
    return out


def cases(quick: bool = False) -> list[Case]:
    """The regimes' cases, then the hand-written cross-entropy and AdamW against torch's at one thread
    (``optim.bench``)."""
    from workbench_engines.optim.bench import cases as optim_cases

    return [*regime_cases(quick), *optim_cases(quick=quick)]


def summary(rows: list[Profile]) -> str:
    """The trade-off table: per regime, what it trains, what AdamW keeps, a step's time and what the budget reached."""
    regimes = [row for row in rows if "trainable" in row.extra]
    races = [f"{row.case}: {row.name} {ratio:.2f}x {base}" for row in rows if row.name.startswith("ours")
             for base, ratio in row.ratios.items()]
    if not regimes:
        return "\n".join(races)
    first = regimes[0].extra
    lines = [f"Fixed budget: {first['steps']:.0f} AdamW steps of {first['batch']:.0f} movie snippets, "
             f"held-out {first['held-out']:.0f} sentences, seed {SEED}, {THREADS} torch thread; "
             "s/step = the median of the timed steps after the budget",
             f"{'regime':13s} {'trainable':>11s} {'AdamW state':>12s} {'s/step':>8s} {'accuracy':>9s} "
             f"{'macro-F1':>9s} {'budget s':>9s}"]
    for row in regimes:
        e = row.extra
        lines.append(f"{row.name:13s} {e['trainable']:>11,.0f} {format_bytes(int(e['optimizer bytes'])):>12s} "
                     f"{row.wall_s:>8.4f} {100 * e['accuracy']:>8.1f}% {e['macro-F1']:>9.3f} {e['budget s']:>9.1f}")
    for name in ("lexicon", "majority"):
        label = "lexicon judge" if name == "lexicon" else "majority"
        lines.append(f"{label:13s} {'0':>11s} {'-':>12s} {'-':>8s} {100 * first[f'{name} accuracy']:>8.1f}% "
                     f"{first[f'{name} macro-F1']:>9.3f} {'-':>9s}")
    if races:
        lines.append("The training parts by hand against torch's, one thread (x > 1: ours faster): " + "; ".join(races))
    return "\n".join(lines)
