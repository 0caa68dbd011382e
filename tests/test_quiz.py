"""Quiz grading for every kind, and probe answers computed by the engines."""

from __future__ import annotations

import math

import pytest

from workbench.params import ParamError
from workbench.probes import compute_probe
from workbench.quiz import QuizError, parse_question


def q(**body):
    return parse_question({"id": "q", "prompt": "p", "explanation": "e", **body})


def test_single_multiple_order_numeric():
    single = q(kind="single", choices=["a", "b"], answer=1)
    assert single.grade(1).correct and not single.grade(0).correct
    multi = q(kind="multiple", choices=["a", "b", "c"], answer=[2, 0])
    assert multi.grade([0, 2]).correct and not multi.grade([0]).correct and not multi.grade([0, 1, 2]).correct
    order = q(kind="order", items=["x", "y", "z"])
    shown = order.shuffled_order()
    assert sorted(shown) == [0, 1, 2] and shown != [0, 1, 2]
    assert order.grade([0, 1, 2]).correct and not order.grade(shown).correct
    num = q(kind="numeric", answer=88.7, tolerance=1.0)
    assert num.grade(88.0).correct and not num.grade(90.0).correct and not num.grade(math.nan).correct


def test_probe_graded_against_engine_value():
    probe = q(kind="probe", probe="softmax.top_probability", params={"logits": [2.0, 1.0, 0.1], "temperature": 0.5}, tolerance=0.005)
    expected = compute_probe(probe.probe, probe.params)
    assert expected == pytest.approx(math.exp(4) / (math.exp(4) + math.exp(2) + math.exp(0.2)))
    assert probe.grade(round(expected, 3), expected).correct
    assert not probe.grade(0.66, expected).correct


def test_probe_values():
    assert compute_probe("softmax.logsumexp", {"values": [1000.0, 1000.0]}) == pytest.approx(1000 + math.log(2))
    assert compute_probe("softmax.entropy_bits", {"logits": [0.0] * 8}) == pytest.approx(3.0)
    with pytest.raises(ParamError, match="temperature must be >="):
        compute_probe("softmax.top_probability", {"logits": [1.0], "temperature": 0.0})
    with pytest.raises(KeyError):
        compute_probe("nope", {})


@pytest.mark.parametrize("body, message", [
    ({"kind": "single", "choices": ["a"], "answer": 0}, "at least 2"),
    ({"kind": "single", "choices": ["a", "b"], "answer": True}, "'answer' must be"),
    ({"kind": "multiple", "choices": ["a", "b"], "answer": []}, "non-empty"),
    ({"kind": "numeric", "answer": "4"}, "'answer' must be a number"),
    ({"kind": "numeric", "answer": 4, "tolerance": -1}, "non-negative"),
    ({"kind": "single", "choices": ["a", "b"], "answer": 0, "why": ["x"]}, "'why' has 1"),
    ({"kind": "order", "items": ["a", "b"], "answer": 1}, "unknown field"),
])
def test_malformed_questions(body, message):
    with pytest.raises(QuizError, match=message):
        q(**body)
