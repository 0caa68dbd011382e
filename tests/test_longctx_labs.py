"""The long-context labs (issue 23) show what their lessons claim on the lessons' settings, their quizzes' probes
equal the figures the labs show, and a bad knob value is refused. No time is asserted: the verdicts are checked
on made-up timings for both outcomes instead."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.test_lab_claims import lesson_params, lesson_run
from workbench.curriculum import load_curriculum
from workbench.labs.longctx_labs import MethodCost, contexts_up_to, decode_verdict, scan_verdict, size_text
from workbench.labs.registry import LABS
from workbench.params import ParamError
from workbench.probes import compute_probe
from workbench.widgets.profile_panel import ProfilePanel
from workbench_engines.backends import available

DECODE, SCAN = ("cost-of-remembering", "longctx.decode_cost"), ("selective-state-spaces", "longctx.scan_race")


def probe_answers(lesson_id: str) -> dict[str, float]:
    """quiz id -> the answer its probe computes today, for every probe question of the lesson."""
    lesson = load_curriculum().lesson(lesson_id)
    return {q.id: compute_probe(q.probe, q.params) for q in lesson.questions if q.kind == "probe"}


# ---------------------------------------------------------------- the decode lab


@pytest.mark.slow
async def test_decode_lab_on_the_lessons_settings_shows_the_cache_growing_and_the_states_fixed(open_lab):
    assert lesson_params(*DECODE) == {"longest": 16384}
    async with lesson_run(open_lab, *DECODE) as h:
        rows = h.lab.result.rows
        assert rows and all(row.matches for row in rows), [row.mismatch for row in rows if not row.matches]
        assert h.lab.contexts == [1024, 2048, 4096, 8192, 16384]
        shown = h.lab.query_one(ProfilePanel).rows  # the same figures under short case names
        assert [row.case for row in shown][:3] == ["softmax 1k"] * 2 + ["softmax 2k"]
        assert [(r.name, r.wall_s, f"state {r.note}") for r in shown] == [(r.name, r.wall_s, r.note) for r in rows]
        assert {row.case for row in shown} >= {"window 16k", "linear 16k", "scan 16k"}
        costs = {cost.label: cost for cost in h.lab.costs}
        assert costs["softmax, KV cache"].state == [2**22 * k for k in (1, 2, 4, 8, 16)]  # 4 MiB per 1k tokens
        assert costs["sliding window"].state == [2**22, 2**23, 2**24, 2**24, 2**24]  # stops at 4,096 tokens
        assert len(set(costs["linear attention"].state)) == len(set(costs["selective scan"].state)) == 1
        # The table's state column says what every case's own note says.
        notes = {row.case: row.note for row in rows}
        assert notes["decode softmax, KV cache, context 16,384"].endswith("64.00 MiB")
        assert notes["decode linear attention, context 16,384"].endswith("130.0 KiB")
        assert notes["decode selective scan (d 1536, n 16), context 16,384"].endswith("96.0 KiB")
        answers = probe_answers(DECODE[0])
        shown = h.readout()
        for quiz, text in (("cache-at-16k", "{:.2f} MiB"), ("window-at-16k", "{:.2f} MiB"),
                           ("linear-state", "{:.1f} KiB")):
            assert text.format(answers[quiz]) in shown, (quiz, answers[quiz], shown)
        assert h.status().startswith("From 1k to 16k tokens (16× the context) the softmax step took")
        assert "its cache grew to 64.00 MiB" in h.status() and "The window's cache stopped at 16.00 MiB" in h.status()


async def test_decode_lab_small_race_and_its_longest_knob(open_lab):
    async with open_lab("longctx.decode_cost", longest=2048) as h:
        await h.press("minus")
        assert h.lab.longest == 2048 and "already the shortest" in h.status()
        await h.press("r")
        await h.settle()
        rows = h.lab.result.rows
        assert {row.case for row in rows} >= {"decode softmax, KV cache, context 1,024",
                                              "decode linear attention, context 2,048"}
        assert all(row.matches for row in rows)
        assert [len(cost.seconds) for cost in h.lab.costs] == [2, 2, 2, 2]
        await h.press("plus", "plus")
        assert h.lab.longest == 8192 and "Contexts 1k, 2k, 4k, 8k: r races" in h.status()


def test_decode_lab_refuses_contexts_it_does_not_list():
    spec = LABS["longctx.decode_cost"]
    for bad in (1024, 3000, 131072, "16k", 16384.0):
        with pytest.raises(ParamError, match="longest"):
            spec.validate({"longest": bad})
    assert contexts_up_to(65536) == [1024 * 2**i for i in range(7)]


def _costs(softmax, window, linear, scan) -> list[MethodCost]:
    from workbench_engines.longctx import state_bytes

    contexts = contexts_up_to(16384)
    states = [state_bytes(c) for c in contexts]
    return [MethodCost(label, seconds, [s[key] for s in states]) for label, key, seconds in (
        ("softmax, KV cache", "kv cache", softmax), ("sliding window", "sliding window", window),
        ("linear attention", "linear attention", linear), ("selective scan", "selective scan", scan))]


def test_decode_verdict_says_when_the_times_separate_and_when_they_did_not():
    contexts = contexts_up_to(16384)
    clear = decode_verdict(contexts, _costs([1, 2, 4, 9, 20], [1, 2, 4, 4, 4], [0.1] * 5, [0.2] * 5))
    assert clear.startswith("From 1k to 16k tokens (16× the context) the softmax step took 20.0× as long; its cache "
                            "grew to 64.00 MiB.")
    assert "Linear attention ×1.0 and the scan ×1.0: their states stay 130.0 KiB and 96.0 KiB" in clear
    assert clear.endswith("The window's cache stopped at 16.00 MiB.")
    muddled = decode_verdict(contexts, _costs([1, 1, 2, 2, 3], [1, 1, 1, 1, 1], [0.1, 0.1, 0.1, 0.1, 0.3],
                                              [0.2] * 5))
    assert "did not separate (linear attention ×3.0, scan ×1.0)" in muddled and "their states stay" not in muddled
    short = decode_verdict(contexts[:2], [MethodCost(c.label, c.seconds[:2], c.state[:2]) for c in
                                          _costs([1, 2] * 3, [1, 2] * 3, [1] * 5, [1] * 5)])
    assert "stopped" not in short  # 1k and 2k are both inside the window
    assert size_text(2**20) == "1.00 MiB" and size_text(1023 * 1024) == "1,023.0 KiB"


# ---------------------------------------------------------------- the scan lab


@pytest.mark.slow
async def test_scan_lab_on_the_lessons_settings_validates_every_contender_and_shows_the_state(open_lab):
    assert lesson_params(*SCAN) == {"d": 768, "L": 512}
    async with lesson_run(open_lab, *SCAN) as h:
        rows = h.lab.result.rows
        assert rows and all(row.matches for row in rows), [row.mismatch for row in rows if not row.matches]
        assert {row.case for row in rows} == {"selective scan, batch 1, d 768, n 16, L 512"}
        shown = h.lab.query_one(ProfilePanel).rows  # the same figures, the case named short for 80 columns
        assert [(r.case, r.name, r.wall_s) for r in shown] == [("d 768, L 512", r.name, r.wall_s) for r in rows]
        names = {row.name.rsplit(" ", 1)[0] for row in rows}
        assert {"numpy", "torch loop", "torch parallel"} <= names and ("C" in names) == available("native")
        assert "Every output matched NumPy's." in h.readout() and "Fastest: " in h.readout()
        answer = probe_answers(SCAN[0])["scan-state"]
        assert answer == h.lab.state_kib == 48.0
        assert f"(1, 768, 16) float32 = {answer:.1f} KiB, at any L" in h.readout()


async def test_scan_lab_small_race_and_its_knobs(open_lab):
    async with open_lab("longctx.scan_race", d=16, L=1536) as h:
        await h.press("D", "l")
        assert h.lab.layer == h.lab.Layer(16, 2048) and "already the most" not in h.status()
        await h.press("l")
        assert h.lab.layer.L == 2048 and "L = 2,048 is already the most this lab takes" in h.status()
        await h.press("L", "L", "L", "L", "L", "L", "L")
        assert h.lab.layer == h.lab.Layer(16, 16)
        await h.press("r")
        await h.settle()
        rows = h.lab.result.rows
        assert {row.case for row in rows} == {"selective scan, batch 1, d 16, n 16, L 16"}
        assert all(row.matches for row in rows)
        assert "(1, 16, 16) float32 = 1.0 KiB" in h.readout()


def test_scan_lab_refuses_sizes_out_of_range():
    spec = LABS["longctx.scan_race"]
    for bad in ({"d": 8}, {"d": 7000}, {"L": 0}, {"L": 10**6}, {"d": 768.0}, {"n": 16}):
        with pytest.raises(ParamError):
            spec.validate(bad)


def _row(name, seconds, matches=True):
    return SimpleNamespace(name=name, wall_s=seconds, matches=matches)


def test_scan_verdict_names_the_winner_the_threads_and_the_parallel_scans_cost():
    text = scan_verdict([_row("numpy", 0.1), _row("C 1T", 0.01), _row("C 2T", 0.005), _row("torch loop 2T", 0.2),
                         _row("torch parallel 2T", 0.6)])
    assert text.startswith("Every output matched NumPy's. Fastest: C 2T, 2.0× C 1T, 20.0× numpy, "
                           "40.0× torch loop 2T")
    assert "C 2T took 0.50× the time of C 1T: the channels split between the threads, each running" in text
    assert text.endswith("The torch parallel scan took 3.0× the torch loop's time: more arithmetic, which a CPU "
                         "pays for.")
    busy = scan_verdict([_row("numpy", 0.1, False), _row("C 1T", 0.01), _row("C 2T", 0.02),
                         _row("torch loop 2T", 0.2), _row("torch parallel 2T", 0.1)])
    assert busy.startswith("Outputs that did not match NumPy's: numpy.")
    assert "but the split did not pay" in busy and busy.endswith("took 0.5× the torch loop's time.")
    without_c = scan_verdict([_row("numpy", 0.1), _row("torch loop 2T", 0.2)])
    assert "The C kernel did not load" in without_c and "parallel" not in without_c
    assert scan_verdict([]) == "Nothing raced."


def test_decay_probe_is_exp_of_softplus_times_a():
    import math

    softplus = math.log1p(math.exp(-4.0))
    assert compute_probe("longctx.decay", {"delta": -4.0, "a": -1.0}) == pytest.approx(math.exp(-softplus))
    assert compute_probe("longctx.decay", {"delta": 0.0, "a": 0.0}) == 1.0
    with pytest.raises(ParamError):
        compute_probe("longctx.decay", {"delta": 0.0, "a": 1.0})  # a growing state is no decay
    assert compute_probe("longctx.state_ratio", {"method": "kv cache", "versus": "selective scan",
                                                 "context": 65536}) == pytest.approx(256 * 1024 / 96)
