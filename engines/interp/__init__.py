"""Interpretability: reading and changing what a model computes inside, to test a hypothesis about a mechanism.

- :mod:`.hooks`: named activation sites of the GPT-shaped models, read and overwritten by forward hooks.
- :mod:`.probing`: linear probes by layer with a control task (Hewitt & Liang, 2019).
- :mod:`.attribution`: gradient × input and integrated gradients on the token embeddings (Sundararajan et al., 2017).
- :mod:`.lens`: the logit lens, each layer's residual stream read through the final norm and unembedding.
- :mod:`.induction`: induction heads on repeated random tokens: loss per repeat, prefix matching, copying.
- :mod:`.ablation`: zero- and mean-ablation of heads and MLPs, Δloss per component, head removal curves.
- :mod:`.patching`: activation patching (causal tracing), a layer × position map of restored probability.

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
from workbench_engines.interp.induction import InductionScan, induction_scan, ov_copying, repeated_tokens
from workbench_engines.interp.lens import LensRow, LogitLens, lens_logits, logit_lens

__all__ = ["KINDS", "Site", "attention_patterns", "hooked", "parse_site", "patched", "replace_with",
           "run_with_cache", "zero_head"]
__all__ += ["Attribution", "integrated_gradients", "quadrature"]
__all__ += ["LayerProbe", "ProbeData", "ProbeResult", "control_labels", "fit_logistic", "genre_lines", "gpt_features",
            "minilm_features", "probe_by_layer"]

from workbench_engines.interp.attribution import Attribution, integrated_gradients, quadrature  # noqa: E402
from workbench_engines.interp.probing import (  # noqa: E402
    LayerProbe,
    ProbeData,
    ProbeResult,
    control_labels,
    fit_logistic,
    genre_lines,
    gpt_features,
    minilm_features,
    probe_by_layer,
)
__all__ += ["InductionScan", "LensRow", "LogitLens", "induction_scan", "lens_logits", "logit_lens", "ov_copying",
            "repeated_tokens"]

from workbench_engines.interp.ablation import (
    ABLATIONS,
    AblationGrid,
    Configuration,
    ablated_losses,
    ablation_delta,
    ablation_grid,
    logit_difference,
    reference_means,
    removal_curve,
    text_windows,
)
from workbench_engines.interp.hooks import replace_rows
from workbench_engines.interp.patching import PATCH_KINDS, PatchMap, patch_map, patch_one, restored_fraction

__all__ += ["ABLATIONS", "AblationGrid", "Configuration", "PATCH_KINDS", "PatchMap", "ablated_losses",
            "ablation_delta", "ablation_grid", "logit_difference", "patch_map", "patch_one", "reference_means",
            "removal_curve", "replace_rows", "restored_fraction", "text_windows"]
