"""Renders a tokenizer's output as coloured pieces, readable without colour too."""

from __future__ import annotations

from rich.text import Text

from workbench_engines.tokenizers.peers import Token

# Background colours far enough apart to tell neighbours apart in 256 colours.
PALETTE = ("on #3b4a6b", "on #5b3f5e", "on #2f5d50", "on #6b5a2f", "on #4a3b6b", "on #2f4f5d")
VISIBLE = str.maketrans({"\n": "↵", "\t": "⇥", "\r": "␍"})


def visible(label: str) -> str:
    """A label with line breaks and tabs drawn as symbols so every token has a width."""
    return label.translate(VISIBLE)


def token_strip(tokens: list[Token], *, separate: bool = False, limit: int = 400) -> Text:
    """Pieces in alternating colours; with ``separate`` (the app's NO_COLOR), a │ between pieces marks the boundaries.

    Textual takes NO_COLOR out of the environment when the app starts, so the
    caller passes ``app.no_color`` rather than this reading the environment.
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
