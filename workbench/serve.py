"""``workbench serve``: the app in a browser through textual-serve, on localhost by default."""

from __future__ import annotations

import shlex
import sys


def serve(host: str, port: int, lesson: str | None = None) -> int:
    from textual_serve.server import Server

    command = [sys.executable, "-m", "workbench"] + (["open", lesson] if lesson else [])
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: anyone who can reach this address can use the app", file=sys.stderr)
    Server(shlex.join(command), host=host, port=port, title="workbench").serve()
    return 0
