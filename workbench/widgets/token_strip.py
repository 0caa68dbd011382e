"""Renders a tokenizer's output as coloured pieces, readable without colour too."""

from __future__ import annotations

from rich.text import Text

from workbench_engines.tokenizers.peers import Token

PALETTE = (
    "#ffffff on #870000",  # red       256: 88   16: red
    "#ffffff on #005faf",  # cyan-blue 256: 25   16: cyan
    "#ffffff on #875f00",  # brown     256: 94   16: yellow
    "#ffffff on #5f005f",  # magenta   256: 53   16: magenta
    "#ffffff on #005f00",  # green     256: 22   16: green
    "#ffffff on #000087",  # blue      256: 18   16: blue
)
"""Token backgrounds, taken from the xterm 256-colour cube so a terminal without truecolour (tmux, most SSH
sessions) shows each as itself, and each a different one of the 16 ANSI colours. Ordered so that neighbours
(wrapping around too) differ in hue, red never beside green; white text reads on all of them (contrast ≥ 5.7).
tests/test_tokenizer_labs.py checks they stay distinct after rich's downgrade to 256 and to 16 colours."""
VISIBLE = str.maketrans({"\n": "↵", "\t": "⇥", "\r": "␍"})


def visible(label: str) -> str:
    """A label with line breaks and tabs drawn as symbols so every token has a width."""
    return label.translate(VISIBLE)


def token_strip(tokens: list[Token], *, separate: bool = False, limit: int = 400) -> Text:
    """Pieces in alternating colours; with ``separate``, a │ between pieces marks the boundaries.

    Labs pass ``separate`` under NO_COLOR and when the learner asks for
    separators (a colour alone can fail: a terminal's palette, colour
    blindness). Textual takes NO_COLOR out of the environment when the app
    starts, so the caller passes ``app.no_color`` rather than this reading it.
    """
    text = Text()
    for k, token in enumerate(tokens[:limit]):
        style = "bold reverse" if token.special else PALETTE[k % len(PALETTE)]
        if separate and k:
            text.append("│", style="dim")
        text.append(visible(token.label) or "∅", style=style)
    if len(tokens) > limit:
        text.append(f" … {len(tokens) - limit} more", style="dim")
    return text


def id_line(tokens: list[Token], *, limit: int = 24) -> str:
    ids = " ".join(str(t.id) for t in tokens[:limit])
    return ids + (f" … (+{len(tokens) - limit})" if len(tokens) > limit else "")
