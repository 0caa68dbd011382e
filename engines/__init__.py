"""Pure compute for the workbench: tokenizers, attention, sampling and friends.

Importable without any UI package and without torch; each family picks its
backend by argument (``backend="reference" | "native" | "torch"``).
"""

from workbench_engines.nativelib import NativeStatus, native_status

__all__ = ["NativeStatus", "native_status"]
