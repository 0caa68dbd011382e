"""Where the workbench keeps its files: the XDG data directory, or $WORKBENCH_HOME (see workbench_engines.paths)."""

from __future__ import annotations

from pathlib import Path

from workbench_engines.paths import data_dir

__all__ = ["data_dir", "progress_db_path"]


def progress_db_path(create: bool = True) -> Path:
    """The SQLite file holding steps seen, quiz attempts and where to resume (its folder made unless not
    ``create``)."""
    return data_dir(create) / "progress.db"
