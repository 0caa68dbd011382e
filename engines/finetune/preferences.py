"""Preference pairs without people: the small GPT continues lines of the plays, the lexicon judge picks a winner.

RLHF starts from pairs (x, y_w, y_l): a prompt and two responses, the one a
person preferred first (Christiano et al., 2017; Ouyang et al., 2022). Here a
program is the person: for each prompt the shipped target GPT samples a few
continuations, :func:`workbench_engines.finetune.judge.compound` scores each,
and the highest-scoring one becomes ``chosen``, the lowest ``rejected``. A pair
whose scores differ by less than ``min_margin`` is a near-tie that says nothing
about the judge's taste, so it is dropped (and counted).

Prompts come from the held-out ends of the plays (text the GPT never trained
on): a speaker's cue and the first ``words`` words of the speech, e.g.
``"**ROMEO**  \\nHe jests at"``. Everything is seeded, so the same settings
give the same pairs; :func:`preference_set` keeps a built set in memory for the
process and on disk under the data directory (written to a temporary name and
renamed), so labs, probes and tests do not sample it again.

Example::

    >>> pairs = preference_set()            # about 20 s on one thread the first time
    >>> pairs.pairs[0].chosen_score > pairs.pairs[0].rejected_score
    True
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.paths import data_dir

SPEECH = re.compile(r"\*\*([A-Z][A-Z .'-]+)\*\*  \n([^\n]+)")
"""A speaker's cue in the plays' Markdown ("**ROMEO**  \\n") and the first line of the speech."""
CACHE_FOLDER = "alignment"
"""Under the data directory: built preference sets, one JSON file per settings."""


@dataclass(frozen=True)
class PreferenceSettings:
    """How a preference set is made; two equal settings make the same pairs."""

    prompts: int = 192
    """Prompts sampled (before near-ties are dropped)."""
    samples: int = 4
    """Continuations per prompt; the judge's best and worst of them make the pair."""
    tokens: int = 24
    """Tokens per continuation."""
    words: int = 2
    """Words of the speech's first line kept in the prompt after the speaker's cue."""
    temperature: float = 1.0
    min_margin: float = 0.1
    """Pairs whose judge scores differ by less are near-ties and are dropped."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("prompts", "samples", "tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "samples" else 1):
                raise EngineError(f"{name} must be an integer >= {2 if name == 'samples' else 1}, got {value!r}")
        if not self.temperature > 0:
            raise EngineError(f"temperature must be > 0, got {self.temperature}")
        if not self.min_margin >= 0:
            raise EngineError(f"min_margin must be >= 0, got {self.min_margin}")

    def key(self) -> str:
        """A short hash of the settings: the cache file's name."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Pair:
    """One labelled preference: the prompt and the judge's preferred and dispreferred continuations."""

    prompt: str
    prompt_ids: tuple[int, ...]
    chosen: tuple[int, ...]
    """Tokens of the continuation with the higher judge score (y_w)."""
    rejected: tuple[int, ...]
    """Tokens of the one with the lower score (y_l)."""
    chosen_text: str
    rejected_text: str
    chosen_score: float
    rejected_score: float

    @property
    def margin(self) -> float:
        """chosen_score − rejected_score (> 0)."""
        return self.chosen_score - self.rejected_score


@dataclass(frozen=True)
class Judged:
    """One prompt's sampled continuations with the judge's score of each."""

    prompt: str
    prompt_ids: tuple[int, ...]
    continuations: tuple[tuple[int, ...], ...]
    texts: tuple[str, ...]
    scores: tuple[float, ...]

    def pair(self, i: int, j: int) -> Pair:
        """Continuation i preferred to continuation j."""
        return Pair(self.prompt, self.prompt_ids, self.continuations[i], self.continuations[j], self.texts[i],
                    self.texts[j], self.scores[i], self.scores[j])

    def extremes(self, min_margin: float) -> Pair | None:
        """The best-scored continuation against the worst; None for a near-tie (margin < min_margin)."""
        best, worst = int(np.argmax(self.scores)), int(np.argmin(self.scores))
        if best == worst or self.scores[best] - self.scores[worst] < min_margin:
            return None
        return self.pair(best, worst)

    def comparisons(self, min_margin: float) -> list[Pair]:
        """Every pair of continuations whose scores differ by at least min_margin, the higher one chosen."""
        found = []
        for i in range(len(self.scores)):
            for j in range(len(self.scores)):
                if i != j and self.scores[i] - self.scores[j] >= max(min_margin, 1e-12):
                    found.append(self.pair(i, j))
        return found


@dataclass(frozen=True)
class PreferenceSet:
    """Judged continuations per prompt, and the preference pairs made from them."""

    judged: list[Judged]
    settings: PreferenceSettings
    seconds: float = 0.0
    """Time to sample and judge them when built (0 where it was read from the cache)."""

    @property
    def pairs(self) -> list[Pair]:
        """One pair per prompt, its best continuation against its worst, near-ties dropped: what DPO trains on."""
        found = (j.extremes(self.settings.min_margin) for j in self.judged)
        return [pair for pair in found if pair is not None]

    @property
    def comparisons(self) -> list[Pair]:
        """Every ordered comparison within each prompt that is not a near-tie: what the reward model fits.

        InstructGPT's labellers ranked K responses per prompt and the reward model
        learned from all C(K, 2) comparisons of each ranking (Ouyang et al., 2022, section 3.5).
        """
        return [pair for j in self.judged for pair in j.comparisons(self.settings.min_margin)]

    @property
    def dropped(self) -> int:
        """Prompts whose best and worst continuations are a near-tie (no pair)."""
        return len(self.judged) - len(self.pairs)

    @property
    def scores(self) -> list[float]:
        """The judge's score of every sampled continuation."""
        return [s for j in self.judged for s in j.scores]

    def split(self, test_fraction: float = 0.25) -> tuple[PreferenceSet, PreferenceSet]:
        """(train, test) by prompt: a fixed seeded shuffle of the prompts, the last ``test_fraction`` held out.

        Splitting by prompt, not by pair, keeps a test prompt's continuations out of training.

        Raises:
            EngineError: fewer than two prompts, or a fraction outside (0, 1).
        """
        if not 0 < test_fraction < 1:
            raise EngineError(f"test_fraction must be in (0, 1), got {test_fraction}")
        if len(self.judged) < 2:
            raise EngineError(f"{len(self.judged)} prompt(s): need at least two to hold some out")
        order = np.random.default_rng(self.settings.seed).permutation(len(self.judged))
        cut = min(len(order) - 1, max(1, round(len(order) * (1 - test_fraction))))
        return (PreferenceSet([self.judged[i] for i in sorted(order[:cut])], self.settings),
                PreferenceSet([self.judged[i] for i in sorted(order[cut:])], self.settings))


def speech_prompts(words: int = 2) -> list[str]:
    """Every speech in the held-out ends of the plays as a prompt: its cue and first ``words`` words.

    Returns:
        Prompts in the corpus's order, e.g. ``"**LYSANDER**  \\nLess than"``.
    """
    from workbench_engines import corpus
    from workbench_engines.evaluation.heldout import held_out_plays
    from workbench_engines.models import small_gpt

    held = held_out_plays(small_gpt.shipped_tokenizer(), len(corpus.default_corpus_files()))
    prompts = []
    for name, line in SPEECH.findall(held.text):
        first = line.split()[:words]
        if len(first) == words:
            prompts.append(f"**{name}**  \n{' '.join(first)}")
    return prompts


def sample_continuations(model, prompts: list[list[int]], tokens: int, samples: int = 1, *,
                         temperature: float = 1.0, seed: int = 0,
                         should_stop: Callable[[], bool] | None = None) -> list[list[list[int]]]:
    """``samples`` continuations of ``tokens`` tokens for every prompt, drawn at ``temperature``, many at once.

    Prompts of the same length run as one batch through a KV cache (no padding,
    so nothing shifts a position); each group draws from its own generator
    seeded from ``seed`` and the prompt length, so the same prompts and seed
    give the same continuations.

    Args:
        model: A GPT (``models.gpt.GPT``).
        prompts: Token ids, each non-empty.
        tokens: New tokens per continuation.
        samples: Continuations per prompt.
        temperature: Softmax temperature (> 0).
        seed: Seeds the draws.
        should_stop: Polled between tokens.

    Returns:
        result[i][j]: the j-th continuation of prompts[i], ``tokens`` ids.

    Raises:
        EngineError: an empty prompt, a non-positive temperature or too long a sequence.
        Cancelled: should_stop() returned True.
    """
    import torch

    from workbench_engines.kvcache import ContiguousCache

    if not temperature > 0:
        raise EngineError(f"temperature must be > 0, got {temperature}")
    if any(len(p) == 0 for p in prompts):
        raise EngineError("a prompt is empty: give at least one token")
    longest = max((len(p) for p in prompts), default=0)
    if longest + tokens > model.config.context:
        raise EngineError(f"{longest} prompt tokens + {tokens} new exceed the context of {model.config.context}")
    result: list[list[list[int]]] = [[] for _ in prompts]
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    with torch.inference_mode():
        for length, members in sorted(groups.items()):
            generator = torch.Generator().manual_seed(seed * 100_003 + length)
            ids = torch.tensor([prompts[i] for i in members for _ in range(samples)])  # (B, T)
            cache = ContiguousCache(model.config, ids.shape[0], length + tokens)
            feed, drawn = ids, []
            for _ in range(tokens):
                if should_stop is not None and should_stop():
                    raise Cancelled("sampling cancelled")
                logits = model(feed, cache, last_only=True)[:, -1].float()  # (B, V)
                probs = torch.softmax(logits / temperature, dim=-1)
                feed = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
                drawn.append(feed)
            new = torch.cat(drawn, dim=1).tolist()  # (B, tokens)
            for k, i in enumerate(members):
                result[i] = new[k * samples:(k + 1) * samples]
    return result


def build_preferences(settings: PreferenceSettings = PreferenceSettings(), *,
                      progress: Callable[[float, str], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> PreferenceSet:
    """Sample and judge a preference set (no cache: see :func:`preference_set`).

    Raises:
        EngineError: the settings ask for more prompts than the held-out plays hold.
        Cancelled: should_stop() returned True.
    """
    from workbench_engines.finetune.judge import compound
    from workbench_engines.models import small_gpt

    started = time.perf_counter()
    target = small_gpt.load("target")
    available = speech_prompts(settings.words)
    if settings.prompts > len(available):
        raise EngineError(f"{settings.prompts} prompts asked for; the held-out plays hold {len(available)}")
    order = np.random.default_rng(settings.seed).permutation(len(available))[:settings.prompts]
    texts = [available[i] for i in sorted(order)]
    prompt_ids = [target.prompt_ids(t) for t in texts]
    judged = []
    step = 32
    for start in range(0, len(texts), step):
        if progress is not None:
            progress(start / len(texts), f"sampling prompts {start + 1}–{min(start + step, len(texts))}")
        batch = prompt_ids[start:start + step]
        drawn = sample_continuations(target.model, batch, settings.tokens, settings.samples,
                                     temperature=settings.temperature, seed=settings.seed + start,
                                     should_stop=should_stop)
        for text, ids, continuations in zip(texts[start:start + step], batch, drawn):
            decoded = [target.tokenizer.decode(c) for c in continuations]
            judged.append(Judged(text, tuple(ids), tuple(tuple(c) for c in continuations), tuple(decoded),
                                 tuple(compound(d) for d in decoded)))
    if progress is not None:
        progress(1.0, f"{len(judged)} prompts judged")
    return PreferenceSet(judged, settings, time.perf_counter() - started)


_MEMORY: dict[PreferenceSettings, PreferenceSet] = {}


def cache_path(settings: PreferenceSettings, directory: Path | None = None) -> Path:
    """Where a set with these settings is kept: ``<data dir>/alignment/preferences-<hash>.json``."""
    return (directory or data_dir() / CACHE_FOLDER) / f"preferences-{settings.key()}.json"


def save(preferences: PreferenceSet, path: Path) -> Path:
    """Write the set as JSON to path.tmp, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"settings": asdict(preferences.settings),
                               "judged": [asdict(j) for j in preferences.judged]}))
    tmp.replace(path)
    return path


def load(path: Path) -> PreferenceSet:
    """Read a set :func:`save` wrote.

    Raises:
        EngineError: the file is missing, not JSON, or not a preference set.
    """
    try:
        data = json.loads(Path(path).read_text())
        judged = [Judged(j["prompt"], tuple(j["prompt_ids"]), tuple(tuple(c) for c in j["continuations"]),
                         tuple(j["texts"]), tuple(float(x) for x in j["scores"])) for j in data["judged"]]
        return PreferenceSet(judged, PreferenceSettings(**data["settings"]))
    except FileNotFoundError as exc:
        raise EngineError(f"{path}: no such preference file") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"{path}: not a preference set ({exc})") from exc


def preference_set(settings: PreferenceSettings = PreferenceSettings(), *, disk: bool = True,
                   progress: Callable[[float, str], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> PreferenceSet:
    """The preference set for ``settings``: from memory, else from the disk cache, else built (and cached).

    Args:
        settings: How the pairs are made.
        disk: Read and write the cache file under the data directory (a corrupt one is rebuilt and replaced).
        progress: progress(fraction, what) while building.
        should_stop: Polled while sampling.
    """
    if settings in _MEMORY:
        return _MEMORY[settings]
    path = cache_path(settings)
    built = None
    if disk and path.is_file():
        try:
            built = load(path)
        except EngineError:
            built = None
        if built is not None and built.settings != settings:
            built = None
    if built is None:
        built = build_preferences(settings, progress=progress, should_stop=should_stop)
        if disk:
            save(built, path)
    _MEMORY[settings] = built
    return built
