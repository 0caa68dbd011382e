"""Where the workbench keeps its files: the XDG data directory, or $WORKBENCH_HOME.

The engines keep data converted once from an installed package there (so a
reader needed only for the conversion is not needed again); the app keeps
progress and the learner's files there too (workbench.paths).
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

from platformdirs import user_data_path


def data_dir(create: bool = True) -> Path:
    """The directory for progress and learner files, created if missing (and if it can be) unless ``create``
    is false (a command that only reads, such as ``lessons list``, must leave no folder behind).

    ``$WORKBENCH_HOME`` wins; otherwise the platform's user data directory
    (``$XDG_DATA_HOME/workbench``, usually ``~/.local/share/workbench``). A
    folder that can't be created (a read-only home, a file in the way) is still
    returned: asking for the path must not crash the app, and whatever then
    writes there reports its own failure (the progress store runs unsaved and
    says why).
    """
    home = os.environ.get("WORKBENCH_HOME")
    path = Path(home).expanduser() if home else user_data_path("workbench", appauthor=False)
    if create:
        with suppress(OSError):  # see above: whoever writes there reports it
            path.mkdir(parents=True, exist_ok=True)
    return path
