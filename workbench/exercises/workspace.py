"""The learner's exercise folder: starters copied in once, reset on request, never overwritten silently."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from workbench.exercises.catalog import EXERCISES, Exercise
from workbench.paths import data_dir
from workbench.progress import ProgressStore

SETTING = "exercise_workspace"


def default_workspace() -> Path:
    return data_dir() / "exercises"


def workspace_path(store: ProgressStore, override: Path | None = None) -> Path:
    """The chosen workspace: override (remembered from now on), the remembered one, or the default."""
    if override is not None:
        path = override.expanduser().resolve()
        store.set_setting(SETTING, str(path))
        return path
    remembered = store.get_setting(SETTING)
    return Path(remembered) if remembered else default_workspace()


def exercise_file(workspace: Path, exercise: Exercise) -> Path:
    return workspace / exercise.file_name


def ensure_workspace(workspace: Path) -> list[Path]:
    """Create the folder and copy in every starter not there yet; returns the files created."""
    workspace.mkdir(parents=True, exist_ok=True)
    created = []
    for exercise in EXERCISES.values():
        target = exercise_file(workspace, exercise)
        if not target.exists():
            shutil.copyfile(exercise.starter, target)
            created.append(target)
    return created


def reset_exercise(workspace: Path, exercise: Exercise) -> Path | None:
    """Restore the starter; the learner's version is kept beside it as a timestamped .bak. Returns the backup."""
    target = exercise_file(workspace, exercise)
    backup = None
    if target.exists():
        backup = target.with_name(f"{target.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
        target.replace(backup)
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exercise.starter, target)
    return backup
