"""Labs at 80×24: nothing a learner needs is cut, and keys say what they do (issue 20)."""

from __future__ import annotations

from textual.widgets import Footer, Input
from textual.widgets._footer import FooterKey

from workbench.labs.knobs import knob_note


def footer_keys(app) -> dict[str, FooterKey]:
    return {key.key: key for key in app.screen.query(FooterKey)}


async def test_sampler_footer_reaches_its_reset_key(open_lab):
    """"z Reset knobs" was never visible at 80 columns: the knobs and "Draw samples" filled the footer."""
    async with open_lab("decode.sampler") as h:
        await h.settle()  # while the model loads, "x Cancel" takes the footer's room
        keys = footer_keys(h.app)
        assert not [key for key in h.app.screen.query(FooterKey) if key.has_class("-command-palette")]
        assert keys["z"].region.width > 0 and keys["z"].region.right <= h.app.screen.query_one(Footer).region.right


async def test_character_names_wrap_instead_of_being_cut(open_lab):
    """Names were cut at 28 characters ("LATIN SMALL LETTER I WITH DI"); emoji parts drew at odd widths."""
    async with open_lab("tokenize.bytes") as h:
        h.lab.query_one(Input).value = "ï👍🏽🇫🇷"
        await h.pilot.pause()
        readout = h.readout()
        assert "LATIN SMALL LETTER I WITH DIAERESIS" in readout
        assert "EMOJI MODIFIER FITZPATRICK TYPE-4" in readout
        assert "[F]" in readout and "[R]" in readout


async def test_the_json_schema_is_shown_whole(open_lab):
    """The schema and its regex were cut at 150 characters, mid-property."""
    async with open_lab("decode.constrained") as h:
        shown = h.text(".schema")
        assert '"lines": {"type": "integer"}}}' in shown and shown.rstrip().endswith("\\}")


def test_a_knob_that_switches_a_filter_on_says_so():
    """"k+" jumped top-k from off to 1 (greedy) and "u+" top-p from off to 0.1 without a word."""
    assert knob_note("top_k", None, 1, 1) == \
        "top-k switched on at 1 (only the most likely token: greedy): the first step up from off"
    assert knob_note("top_p", None, 0.1, 1) == "top-p switched on at 0.1: the first step up from off"
    assert knob_note("top_p", 0.1, None, -1) == "top-p switched off: it no longer removes any token"
    assert knob_note("temperature", 2.0, 2.0, 1) == "temperature is already at its highest setting"
    assert knob_note("top_k", 1, 2, 1) == ""


async def test_sampler_says_when_a_filter_switches_on(open_lab):
    async with open_lab("decode.sampler") as h:
        await h.settle()
        await h.press("u")
        assert h.lab.state.sampler.top_p == 0.1
        assert "top-p switched on at 0.1" in h.status()
        await h.press("U")
        assert "top-p switched off" in h.status()
