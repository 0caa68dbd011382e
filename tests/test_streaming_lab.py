"""The attention sinks lab (issue 23) shows what its lesson claims on the lesson's settings, its probe equals the
cache the lab's table shows, its knobs step and stop at their ends, and a bad knob value is refused."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_lab_claims import lesson_params, lesson_run
from tests.test_longctx_labs import probe_answers
from workbench.labs.longctx_labs import SinkRun, sinks_verdict
from workbench.labs.registry import LABS
from workbench.params import ParamError
from workbench_engines.longctx.streaming import StreamCurve

pytestmark = pytest.mark.no_c_path  # the lab's screen; test_streaming.py covers the engine with and without C

SINKS = ("attention-sinks", "longctx.attention_sinks")


@pytest.mark.slow
@pytest.mark.claims
async def test_sinks_lab_on_the_lessons_settings_shows_window_attention_break_and_the_sinks_mend_it(open_lab):
    assert lesson_params(*SINKS) == {"tokens": 1024, "cache": 256, "sinks": 4}
    async with lesson_run(open_lab, *SINKS) as h:
        run = h.lab.run
        assert (run.tokens, run.cache, run.sinks) == (1024, 256, 4)
        dense, window, sinks = (run.by(m) for m in ("dense", "window", "sinks"))
        # Nothing is evicted before token 256: the three read the same.
        np.testing.assert_allclose(window.nll[:256], dense.nll[:256], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(sinks.nll[:256], dense.nll[:256], rtol=1e-4, atol=1e-4)
        # The lesson's claims: the window alone is far worse once it evicts; four sinks bring it near dense.
        assert run.after(window) > 1.5 * run.after(dense)
        assert run.after(sinks) < 1.25 * run.after(dense)
        assert run.after(sinks) < 0.7 * run.after(window)
        shown = h.readout()
        answers = probe_answers(SINKS[0])
        assert f"{answers['sink-cache']:.2f}" in shown and f"{answers['dense-cache']:.2f}" in shown
        assert "window attention reads at perplexity" in shown
    # The lesson's aside: one sink (S pressed three times) reads this stream about as well as four.
    from workbench_engines.evaluation.heldout import held_out_plays
    from workbench_engines.longctx.streaming import stream_nll
    from workbench_engines.models.llama import bundled

    smol = bundled("quantized")
    ids = held_out_plays(smol.tokenizer, 2).ids[:1024]  # the lab's stream
    one = stream_nll(smol.model, ids, method="sinks", cache=256, sinks=1)
    assert abs(run.after(one) / run.after(sinks) - 1) < 0.05


async def test_sinks_lab_knobs_step_and_stop(open_lab):
    async with open_lab("longctx.attention_sinks", cache=1024, sinks=16) as h:
        await h.press("w")
        assert h.lab.cache == 1024 and "already the largest" in h.status()
        await h.press("W", "W")
        assert h.lab.cache == 256 and "Cache 256 tokens" in h.status()
        await h.press("s")
        assert h.lab.sinks == 16 and "already the most" in h.status()
        await h.press("S", "S")
        assert h.lab.sinks == 14 and "the first 14 + the last 242" in h.status()


def test_sinks_verdict_reads_the_runs_numbers():
    def curve(method: str, before: float, after: float, sinks: int = 0) -> StreamCurve:
        return StreamCurve(method, sinks, 8 if method != "dense" else 20,
                           np.log(np.r_[np.full(8, before), np.full(11, after)]), 100)

    run = SinkRun([curve("dense", 20.0, 30.0), curve("window", 20.0, 90.0), curve("sinks", 20.0, 33.0, 4)], 20, 8, 4)
    assert run.before(run.by("window")) == pytest.approx(20.0) and run.after(run.by("window")) == pytest.approx(90.0)
    words = sinks_verdict(run)
    assert "window attention reads at perplexity 90.0 against dense's 30.0 (×3.00)" in words
    assert "first 4 tokens as well: 33.0 (×1.10)" in words and "2.73× lower" in words


def test_sinks_lab_refuses_bad_knobs():
    spec = LABS["longctx.attention_sinks"]
    for given, name in (({"tokens": 3000}, "tokens"), ({"cache": 300}, "cache"), ({"sinks": 0}, "sinks"),
                        ({"sinks": 17}, "sinks"), ({"sinks": 2.5}, "sinks")):
        with pytest.raises(ParamError, match=name):
            spec.validate(given)
