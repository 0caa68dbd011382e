"""The learner's exercise folder: starters copied in once, reset on request, never overwritten silently."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from workbench.exercises.catalog import EXERCISES, Exercise
from workbench.paths import data_dir
from workbench.progress import ProgressStore

SETTING = "exercise_workspace"
PACKAGE_INIT = '''"""Your GPT, one module per step of Build a GPT; each step imports your earlier ones (from mygpt.x import ...)."""
'''


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


def ensure_package(workspace: Path, exercise: Exercise) -> None:
    """The folder of a packaged exercise (mygpt), made importable, with its __init__.py written once."""
    if exercise.package:
        folder = workspace / exercise.package
        folder.mkdir(parents=True, exist_ok=True)
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text(PACKAGE_INIT, encoding="utf-8")


def ensure_workspace(workspace: Path) -> list[Path]:
    """Create the folder and copy in every starter not there yet; returns the files created."""
    workspace.mkdir(parents=True, exist_ok=True)
    created = []
    for exercise in EXERCISES.values():
        target = exercise_file(workspace, exercise)
        if not target.exists():
            ensure_package(workspace, exercise)
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
    ensure_package(workspace, exercise)
    shutil.copyfile(exercise.starter, target)
    return backup
