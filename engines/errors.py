"""Exceptions shared by every engine family."""


class EngineError(Exception):
    """Base class for errors an engine raises on bad input or a failed kernel."""


class NativeUnavailable(EngineError):
    """The compiled C kernels were asked for but did not load (see ``workbench doctor``)."""


class NativeKernelError(EngineError):
    """A C kernel returned a non-zero status."""

    def __init__(self, function: str, status: int, message: str) -> None:
        super().__init__(f"{function} failed with status {status}: {message}")
        self.function = function
        self.status = status


class Cancelled(EngineError):
    """Long engine work stopped because its caller's should_stop() said so; nothing was kept."""
