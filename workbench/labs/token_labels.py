"""Tokens as short labels for plots and tables: one place, so every lab shows a token the same way."""

from __future__ import annotations


def token_label(raw: bytes) -> str:
    """A token's bytes as a label: escapes for newlines, ␣ for a token of spaces alone (else it would be blank)."""
    text = repr(raw.decode("utf-8", "replace"))[1:-1]
    return text.replace(" ", "␣") if not text.strip() else text


def token_text(tokenizer, token: int) -> str:
    """Token id ``token`` of ``tokenizer`` as a label (its bytes where the tokenizer has them, else its decoding)."""
    if hasattr(tokenizer, "token_bytes"):
        return token_label(tokenizer.token_bytes(token))
    return token_label(tokenizer.decode([token]).encode())
