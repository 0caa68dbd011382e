"""Generation whose output must match a regex or a JSON schema, by masking disallowed tokens each step."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from workbench_engines.generation.generate import check_prompt
from workbench_engines.sampling.constrained import ConstraintError, TokenAutomaton, schema_regex, token_strings
from workbench_engines.sampling.settings import Sampler


@dataclass
class ConstrainedResult:
    text: str
    tokens: list[int]
    complete: bool
    """True when the text is a full match. Always, for a vocabulary where every character is a token
    (the budget steers generation to finish in time)."""
    allowed_counts: list[int]
    """How many tokens were allowed at each step."""


MAX_PATTERN_POSITIONS = 1_000
"""Most character positions a regex may spell out once its counted repeats are unrolled.

Building the automaton costs time quadratic in these (``[a-z]{1,32000}``
took 70 s), so a larger regex is refused before the build starts.
"""

IN_PROCESS_POSITIONS = 8
"""Largest regex, in positions, whose automaton is built in this process rather than in a child.

Determinising can at worst give a state per subset of positions, so at most
2**8 here: the worst shapes measured (``[ab]*a[ab]{6}``, ``(?!.*a.{5}).*``)
build in well under the ~50 ms a child takes just to start.
"""


def parse_regex(pattern: str):
    """interegular's parse tree of pattern: the dialect the automaton is built from, not Python's ``re``.

    Raises ConstraintError saying whether the syntax is wrong or a feature is
    one interegular does not support (backreferences, ``\\p{...}``).
    """
    import interegular
    from interegular.patterns import InvalidSyntax, Unsupported

    try:
        return interegular.parse_pattern(pattern)
    except Unsupported as exc:
        raise ConstraintError(f"the regex uses a feature constrained decoding does not support: {exc}") from None
    except (InvalidSyntax, RecursionError) as exc:
        raise ConstraintError(f"cannot compile the regex: {exc or 'nested too deeply'}") from None


def pattern_positions(pattern: str) -> int:
    """Character positions in pattern with every counted repeat unrolled (``a{2,5}`` is 5, ``a*`` is 1).

    Counted on interegular's own parse tree, so a regex is measured in the
    dialect it will be built in. Raises ConstraintError for a pattern
    interegular rejects.
    """
    return _positions(parse_regex(pattern))


def _positions(node) -> int:
    """Positions under one node of interegular's parse tree, stopping early past MAX_PATTERN_POSITIONS."""
    from interegular.patterns import Pattern, _Concatenation, _NonCapturing, _Repeated

    if isinstance(node, _Repeated):
        copies = node.min + 1 if node.max is None else node.max
        return max(copies, 1) * _positions(node.base)
    if isinstance(node, _NonCapturing):  # a lookaround is built as an automaton of its own
        return _positions(node.inner)
    if isinstance(node, (Pattern, _Concatenation)):
        total = 0
        for child in node.options if isinstance(node, Pattern) else node.parts:
            total += _positions(child)
            if total > MAX_PATTERN_POSITIONS:
                break
        return total
    return 1  # a character, a class of them, or the empty pattern


def check_pattern_size(pattern: str) -> int:
    """pattern's positions; raises ConstraintError when it is too large to build an automaton for in
    reasonable time."""
    positions = pattern_positions(pattern)
    if positions > MAX_PATTERN_POSITIONS:
        raise ConstraintError(f"the regex spells out more than {MAX_PATTERN_POSITIONS:,} character positions "
                              "(counted repeats unrolled); write a smaller one")
    return positions


BUILD_TIMEOUT_S = 10.0
"""Longest a regex's automaton may take to build (in its own process, killed after this)."""
BUILD_MEMORY_BYTES = 2 << 30
"""Address space the building process may use."""

# Runs in a child: the pattern on stdin, the automaton as JSON on stdout (anything_else written as null).
# argv: address-space bytes, CPU seconds, the parent's pid. PR_SET_PDEATHSIG (1, Linux) has the kernel kill
# the child when the parent dies: a daemon thread abandoned at exit never gets to kill it itself.
_BUILD = """
import ctypes, json, os, resource, signal, sys
memory, cpu, parent = (int(arg) for arg in sys.argv[1:4])
prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
if prctl is not None:
    prctl(1, signal.SIGKILL, 0, 0, 0)
if os.getppid() != parent:
    sys.exit("the workbench quit before the build started")
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
import interegular
from interegular.fsm import anything_else
fsm = interegular.parse_pattern(sys.stdin.read()).to_fsm()
json.dump({"symbols": [[None if c is anything_else else c, k] for c, k in fsm.alphabet.items()],
           "states": sorted(fsm.states), "initial": fsm.initial, "finals": sorted(fsm.finals),
           "map": [[s, sorted(edges.items())] for s, edges in fsm.map.items()]}, sys.stdout)
"""


def build_fsm(pattern: str, timeout_s: float = BUILD_TIMEOUT_S):
    """interegular's automaton for pattern: built here when it is small, else in a child killed past timeout_s.

    The subset construction can take time exponential in the regex
    (``(a|b)*a(a|b){20}``) and no Python thread can be stopped, so a regex of
    more than IN_PROCESS_POSITIONS positions is built where it can be: a stuck
    build costs the learner one message, not a frozen lab or an app that can't
    quit, and the child dies with the app (CPU-limited to timeout_s besides).
    Raises ConstraintError.
    """
    if pattern_positions(pattern) <= IN_PROCESS_POSITIONS:
        try:
            return parse_regex(pattern).to_fsm()
        except Exception as exc:  # noqa: BLE001 - interegular raises several types for what it can't build
            raise ConstraintError(f"cannot compile the regex {pattern[:80]!r}: {exc}") from None
    return _build_in_child(pattern, timeout_s)


def _build_in_child(pattern: str, timeout_s: float):
    from interegular.fsm import FSM, Alphabet, anything_else

    took_too_long = ConstraintError(f"building the automaton of this regex took over {timeout_s:g} s; "
                                    "write a simpler one")
    limits = [str(BUILD_MEMORY_BYTES), str(math.ceil(timeout_s)), str(os.getpid())]
    try:
        done = subprocess.run([sys.executable, "-I", "-c", _BUILD, *limits], input=pattern,
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise took_too_long from None
    if done.returncode == -signal.SIGXCPU:
        raise took_too_long
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        why = lines[-1] if lines else f"exit status {done.returncode}"
        if "MemoryError" in why:
            why = f"it needs more than {BUILD_MEMORY_BYTES >> 30} GiB"
        raise ConstraintError(f"cannot compile the regex {pattern[:80]!r}: {why}")
    built = json.loads(done.stdout)
    alphabet = Alphabet({anything_else if c is None else c: k for c, k in built["symbols"]})
    edges = {state: dict(pairs) for state, pairs in built["map"]}
    return FSM(alphabet=alphabet, states=set(built["states"]), initial=built["initial"],
               finals=set(built["finals"]), map=edges)


def bounded_automaton(pattern: str, tokenizer, eos: int | None) -> TokenAutomaton:
    """TokenAutomaton for pattern over tokenizer's vocabulary, after check_pattern_size, its automaton built
    by build_fsm (bounded in time and memory)."""
    check_pattern_size(pattern)
    return TokenAutomaton(pattern, token_strings(tokenizer), eos, fsm=build_fsm(pattern))


_AUTOMATA: dict[tuple[str, int], tuple[object, TokenAutomaton]] = {}


def _automaton(pattern: str, tokenizer, eos: int | None) -> TokenAutomaton:
    """One automaton per (regex, tokenizer), kept: its per-state token sets fill in as they are visited."""
    key = (pattern, id(tokenizer))
    held = _AUTOMATA.get(key)
    if held is None or held[0] is not tokenizer:
        if len(_AUTOMATA) >= 16:
            _AUTOMATA.pop(next(iter(_AUTOMATA)))
        held = _AUTOMATA[key] = (tokenizer, bounded_automaton(pattern, tokenizer, eos))
    return held[1]


def generate_constrained(model, tokenizer, prompt: list[int], pattern: str, *, max_new_tokens: int = 256,
                         sampler: Sampler = Sampler(temperature=0.8), seed: int | None = 0) -> ConstrainedResult:
    """Sample a continuation of prompt that matches ``pattern``; stops at end-of-text in an accepting state."""
    import torch

    from workbench_engines.kvcache import ContiguousCache

    eos = tokenizer.special_tokens.get("<|endoftext|>")
    automaton = _automaton(pattern, tokenizer, eos)
    prompt = check_prompt(prompt, 0, model.config)
    budget = min(max_new_tokens, model.config.context - len(prompt))
    rng = np.random.default_rng(seed)
    cache = ContiguousCache(model.config, 1, len(prompt) + budget)
    state = automaton.initial
    tokens: list[int] = []
    counts: list[int] = []
    shortest = automaton.shortest_completion(state)
    if shortest > budget:
        raise ConstraintError(f"the shortest match needs {shortest} tokens; only {budget} fit after the prompt")
    feed = prompt
    with torch.inference_mode():
        for step in range(budget):
            left = budget - step
            allowed = automaton.allowed(state, left)
            if len(allowed) == 0 or (len(allowed) == 1 and allowed[0] == eos):
                break  # a full match that cannot be extended (in the tokens left)
            counts.append(len(allowed))
            logits = model(torch.tensor([feed]), cache, last_only=True)[0, -1].float().numpy()
            token = sampler.choose(automaton.mask(logits, state, left), prompt + tokens, rng)
            if token == eos:
                break
            state = automaton.advance(state, token)
            tokens.append(token)
            feed = [token]
    return ConstrainedResult(tokenizer.decode(tokens), tokens, automaton.is_final(state), counts)


def generate_json(model, tokenizer, prompt: list[int], schema: dict, **kwargs) -> tuple[object, ConstrainedResult]:
    """Generate JSON valid under ``schema`` (the subset of workbench_engines.sampling.constrained.schema_regex); returns
    the parsed value and the raw result."""
    result = generate_constrained(model, tokenizer, prompt, schema_regex(schema), **kwargs)
    return (json.loads(result.text) if result.complete else None), result


def json_verdict(text: str) -> str:
    """Whether text parses as JSON, in words: what a learner compares against constrained output."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"json.loads fails: {exc.msg}"
    return "parses (by luck)"
