"""Making a model smaller: integer weights by round-to-nearest, GPTQ and AWQ, the activation outlier problem,
pruning, and distillation into a smaller student.

- :mod:`.rtn`: round-to-nearest onto a b-bit grid, absmax or zero point, per tensor, channel or group.
- :mod:`.outliers`: LLM.int8's outlier channels, measured on a layer's real inputs.
- :mod:`.gptq`: GPTQ's column-by-column rounding with error compensation (Frantar et al., 2022).
- :mod:`.awq`: AWQ's activation-aware channel scales (Lin et al., 2023).
- :mod:`.apply`: any of the three over a whole model, layer by layer, with a per-layer report.
- :mod:`.prune`: magnitude and 2:4 weight pruning, and heads removed by Michel et al.'s importance.
- :mod:`.distill`: knowledge distillation (Hinton et al., 2015), and how well a draft fits its target.
- :mod:`.quality`: every method and block format over a whole model, scored on held-out text.

torch is imported inside the functions, so importing this package stays cheap.
"""

from workbench_engines.compress.apply import (
    LayerReport,
    QuantizedModel,
    calibration_windows,
    lesson_calibration,
    quantize_model,
)
from workbench_engines.compress.awq import AWQResult, awq_quantize
from workbench_engines.compress.distill import DistillationLoss, DraftFit, distillation_loss, draft_fit, soften
from workbench_engines.compress.gptq import GPTQResult, Hessian, gptq_quantize, output_error
from workbench_engines.compress.outliers import OutlierProfile, capture_inputs, layer_outliers, outlier_profile
from workbench_engines.compress.prune import PRUNING_METHODS, PrunedModel, head_importance, prune_heads, prune_model
from workbench_engines.compress.rtn import BITS, QuantizedWeight, dequantize, fake_quantize, quantize

__all__ = [
    "AWQResult",
    "BITS",
    "DistillationLoss",
    "DraftFit",
    "GPTQResult",
    "Hessian",
    "LayerReport",
    "OutlierProfile",
    "PRUNING_METHODS",
    "PrunedModel",
    "QuantizedModel",
    "QuantizedWeight",
    "awq_quantize",
    "calibration_windows",
    "capture_inputs",
    "dequantize",
    "distillation_loss",
    "draft_fit",
    "fake_quantize",
    "gptq_quantize",
    "head_importance",
    "layer_outliers",
    "lesson_calibration",
    "outlier_profile",
    "output_error",
    "prune_heads",
    "prune_model",
    "quantize",
    "quantize_model",
    "soften",
]
