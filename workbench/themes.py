"""The theme for terminals without truecolour, and the rule that picks it (DESIGN §8).

Over SSH and inside tmux, ``COLORTERM`` is usually not forwarded and the
terminal is driven in 256 colours. Textual's default theme then loses its
looks: rich maps each colour to the nearest of the 256, so the footer's panel
(#242F38) turns saturated blue (colour 17) and near greys merge. This theme
uses only colours of the xterm 256-colour cube and grey ramp, so each is shown
exactly as chosen, and the surfaces a learner must tell apart (background,
surface, panel, the step bar, the footer) stay distinct shades.
"""

from __future__ import annotations

from collections.abc import Mapping

from textual.theme import Theme

TRUECOLOR_THEME = "textual-dark"
"""The theme where the terminal says it shows 24-bit colour."""

THEME_256 = Theme(
    name="workbench-256",
    primary="#0087d7",  # 32
    secondary="#005f87",  # 24
    accent="#ffaf00",  # 214
    warning="#ffaf00",  # 214
    error="#d75f5f",  # 167
    success="#5faf5f",  # 71
    foreground="#e4e4e4",  # 254 (rich sends 253)
    background="#121212",  # 233
    surface="#1c1c1c",  # 234
    panel="#303030",  # 236
    dark=True,
    variables={
        # Derived shades are blends that fall between palette entries; pin the ones that carry meaning.
        "primary-background": "#005f87",  # 24: the lesson's step bar
        "footer-background": "#303030",  # 236
        "footer-key-foreground": "#ffaf00",  # 214
        "footer-description-foreground": "#e4e4e4",
        "block-cursor-background": "#0087d7",  # 32
        "block-cursor-foreground": "#ffffff",  # 231
        "scrollbar": "#585858",  # 240
        "scrollbar-hover": "#808080",  # 244
        "scrollbar-active": "#0087d7",  # 32
        "scrollbar-background": "#1c1c1c",  # 234
        "border": "#0087d7",  # 32
        "border-blurred": "#4e4e4e",  # 239
    },
)
"""Every colour named here is an exact entry of the 256-colour palette (tests/test_app.py checks)."""


def theme_for(environ: Mapping[str, str]) -> str:
    """The theme to start in: the 256-colour one unless ``COLORTERM`` says the terminal shows truecolour."""
    if environ.get("COLORTERM", "").lower() in ("truecolor", "24bit"):
        return TRUECOLOR_THEME
    return THEME_256.name
