"""Readouts that say what the numbers beside them show (issue 20)."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize(("shift", "said", "not_said"), [
    (-140.0, "every exp underflowed to 0", "overflow"),
    (-100.0, "subnormal", "agree"),
    (100.0, "exp overflowed", "underflow"),
    (0.0, "agree", "naive:"),
])
async def test_stability_lab_names_what_broke_the_naive_softmax(open_lab, shift, said, not_said):
    """−140 underflows every exp (0 / 0), never an overflow; at −100 the naive p are finite but off, not "agree"."""
    async with open_lab("softmax.stability", logits=[3.0, 1.0, 0.2], shift=shift) as h:
        readout = h.readout()
        assert said in readout and not_said not in readout, readout
        assert f"logits {'−' if shift < 0 else '+'} {abs(shift):g}" in readout


async def test_stability_lab_catches_a_sum_that_overflows(open_lab):
    """Each exp(88) is finite, but three of them overflow the float32 sum."""
    async with open_lab("softmax.stability", logits=[88.0, 88.0, 88.0], shift=0.0) as h:
        assert "sum overflowed" in h.readout()


async def test_shuffle_lab_prints_two_decimals(open_lab):
    """float32 outputs printed through tolist() showed -0.38999998569488525."""
    async with open_lab("positional.shuffle", words=["dog", "bites", "man"]) as h:
        for _ in range(3):
            await h.press("s", "e")
            readout = h.readout()
            assert re.findall(r"-?\d+\.\d+", readout)
            assert not re.search(r"\d\.\d{3,}", readout) and "-0.00" not in readout, readout
