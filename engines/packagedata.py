"""Data shipped inside an installed package, found without importing it (a data package's __init__ may pull in
heavy dependencies, such as scikit-learn, that reading its files never needs)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path


def package_folder(package: str, *parts: str, holding: Iterable[str] = ()) -> Path | None:
    """The folder ``parts`` inside the installed top-level ``package`` that exists and holds every file named in
    ``holding``; None when the package or the folder is not there."""
    spec = importlib.util.find_spec(package)
    needed = tuple(holding)
    for root in list(spec.submodule_search_locations or []) if spec else []:
        folder = Path(root).joinpath(*parts)
        if folder.is_dir() and all((folder / name).is_file() for name in needed):
            return folder
    return None
