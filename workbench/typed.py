"""Text typed into a one-line box or written in a lesson's TOML: escapes for what a line can't hold."""

from __future__ import annotations


def unescape(typed: str) -> str:
    """\\n, \\r and \\t as typed become a newline, carriage return and tab (the plays put a speaker's name
    on its own line, code needs tabs)."""
    return typed.replace("\\n", "\n").replace("\\r", "\r").replace("\\t", "\t")
