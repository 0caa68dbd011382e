"""Interpretability: reading and changing what a model computes inside, to test a hypothesis about a mechanism.

- :mod:`.hooks`: named activation sites of the GPT-shaped models, read and overwritten by forward hooks.

torch is imported inside the functions, so importing this package stays cheap.
"""

from workbench_engines.interp.hooks import (
    KINDS,
    Site,
    attention_patterns,
    hooked,
    parse_site,
    patched,
    replace_with,
    run_with_cache,
    zero_head,
)

__all__ = ["KINDS", "Site", "attention_patterns", "hooked", "parse_site", "patched", "replace_with",
           "run_with_cache", "zero_head"]
