"""The workbench's log file: where a failed lab, probe or worker leaves its traceback.

The screen shows one line about a failure; the whole traceback goes to
``workbench.log`` in the data directory, which that line names. When the data
directory can't be written, logging goes nowhere rather than failing the app.
"""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

from workbench.paths import data_dir

logger = logging.getLogger("workbench")
"""The app's logger; every module logs through it."""


class LogFile(RotatingFileHandler):
    """The rotating log file, which drops a record it can't write (a full disk) instead of printing
    logging's "--- Logging error ---" traceback over the terminal UI; the store reports a full disk itself."""

    def handleError(self, record: logging.LogRecord) -> None:
        """Drop the record: there is nowhere left to report it that wouldn't draw over the UI."""


def log_path() -> Path:
    """The log file in the data directory."""
    return data_dir() / "workbench.log"


def start_logging() -> Path | None:
    """Send the app's log records to the log file (once per process); its path, or None if it can't be written."""
    if logger.handlers:
        return next((Path(h.baseFilename) for h in logger.handlers if isinstance(h, RotatingFileHandler)), None)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        path = log_path()
        handler: logging.Handler = LogFile(path, maxBytes=1_000_000, backupCount=2, encoding="utf-8")
    except OSError:
        logger.addHandler(logging.NullHandler())
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    return path
