"""The lab registry: ids a lesson may name, their parameters, and where the widget lives."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from workbench.params import Param, validate_params


@dataclass(frozen=True)
class LabSpec:
    id: str
    title: str
    summary: str
    params: dict[str, Param]
    target: str
    """``module:Class`` of the Lab widget; imported when the lab is shown."""

    def validate(self, given: dict[str, Any]) -> dict[str, Any]:
        """Full parameters with defaults, or ParamError naming this lab."""
        return validate_params(self.params, given, f"lab {self.id}")

    def widget_class(self) -> type:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)


_DEFAULT_LOGITS = [3.0, 2.2, 1.5, 0.8, 0.3, -0.4, -1.0, -2.0]

LABS: dict[str, LabSpec] = {
    spec.id: spec
    for spec in [
        LabSpec(
            "softmax.temperature",
            "Temperature and the softmax",
            "Change the temperature and watch the distribution sharpen or flatten; race the kernels.",
            {
                "logits": Param("list[float]", default=_DEFAULT_LOGITS, min_len=2, help="logits to turn into probabilities"),
                "labels": Param("list[str]", default=[], help="a label per logit (defaults to its index)"),
                "temperature": Param("float", default=1.0, min=0.05, max=20.0, help="starting temperature"),
                "race_rows": Param("int", default=2048, min=1, max=65536, help="rows in the profiling race"),
                "race_cols": Param("int", default=4096, min=1, max=262144, help="columns in the profiling race"),
            },
            "workbench.labs.softmax_labs:TemperatureLab",
        ),
        LabSpec(
            "softmax.stability",
            "Why softmax subtracts the maximum",
            "Shift every logit by a constant and compare the naive and the stable softmax.",
            {
                "logits": Param("list[float]", default=[2.0, 1.0, 0.5], min_len=2, help="logits before the shift"),
                "shift": Param("float", default=0.0, help="constant added to every logit"),
                "step": Param("float", default=25.0, min=0.1, help="how far one key press moves the shift"),
            },
            "workbench.labs.softmax_labs:StabilityLab",
        ),
    ]
}
