"""``workbench serve``: the app in a browser through textual-serve, on localhost by default.

textual-serve on its own accepts a websocket from any web origin, so any page
the learner has open could open one to ``ws://127.0.0.1:8000/ws`` and drive
their workbench (cross-site WebSocket hijacking); and a site whose name
resolves to 127.0.0.1 (DNS rebinding) could load the page itself. So
:class:`GuardedServer` answers a request only when its ``Host`` names the
served address and port, and opens a session only when the websocket's
``Origin`` is a page of that same address; anything else gets 403. Each session
is a workbench process, so at most ``max_sessions`` run at once; one more gets
503.

A page reached under another name (an SSH tunnel, ``ssh -L 9000:localhost:8000``,
arrives as ``Host: localhost:9000``) is served only when that name is given
with ``--allow-host``.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
MAX_SESSIONS = 4
"""Browser sessions at once, by default: each is a workbench process with its own engines."""


def check_extra_host(value: str) -> str:
    """value as it will be compared with a ``Host`` header (lower case); ValueError unless it is a bare
    ``HOST[:PORT]``."""
    parts = urlsplit(f"//{value}")
    try:
        parts.port  # noqa: B018 - raises ValueError unless the port is a number in 0..65535
        plain = bool(parts.hostname) and parts.netloc == value and not any(ch == "@" or ch.isspace() for ch in value)
    except ValueError:
        plain = False
    if not plain:
        raise ValueError(f"--allow-host {value!r} is not HOST[:PORT] (as the browser's address bar shows it)")
    return value.lower()


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` values (and ``Origin`` host:port parts) that name this server, lower case.

    A loopback or wildcard bind answers to every loopback name; any other bind
    only to the address it was given. extra are further ``HOST[:PORT]`` names,
    taken as written: a browser leaves out the port only for 80 (http) and 443 (https).
    """
    names = {host} | (set(LOOPBACK) if host in LOOPBACK or host in WILDCARD else set())
    allowed = {check_extra_host(value) for value in extra}
    for name in names - set(WILDCARD):
        bracketed = f"[{name}]" if ":" in name else name
        allowed.add(f"{bracketed}:{port}".lower())
        if port == 80:  # browsers leave the default port out
            allowed.add(bracketed.lower())
    return frozenset(allowed)


class GuardedServer(Server):
    """textual-serve's server, answering only its own page, with a cap on concurrent sessions."""

    def __init__(self, command: str, host: str, port: int, title: str, max_sessions: int = MAX_SESSIONS,
                 allow_hosts: Iterable[str] = ()) -> None:
        super().__init__(command, host=host, port=port, title=title)
        self.max_sessions = max_sessions
        self.sessions = 0
        """Websocket sessions open now."""
        self.hosts = allowed_hosts(host, port, allow_hosts)

    def refusal(self, request: web.Request, websocket: bool) -> str | None:
        """Why request is not from this server's own page, or None if it is."""
        host = request.headers.get("Host", "").lower()
        if host not in self.hosts:
            return f"Host {host or '(none)'} is not this server"
        if websocket:
            origin = request.headers.get("Origin")
            if origin is None:
                return "a websocket without an Origin"
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() not in self.hosts:
                return f"Origin {origin} is not this server's page"
        return None

    def _check(self, request: web.Request, websocket: bool = False) -> None:
        reason = self.refusal(request, websocket)
        if reason is not None:
            print(f"workbench serve: refused {request.path} from {request.remote}: {reason}", file=sys.stderr)
            raise web.HTTPForbidden(text=f"Forbidden: {reason}.\n")

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        return await super().handle_index(request)

    async def handle_download(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        return await super().handle_download(request)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        self._check(request, websocket=True)
        if self.sessions >= self.max_sessions:
            raise web.HTTPServiceUnavailable(
                text=f"{self.sessions} sessions are open, the most this server allows; close one and reload.\n")
        self.sessions += 1
        try:
            return await super().handle_websocket(request)
        finally:
            self.sessions -= 1


def serve(host: str, port: int, lesson: str | None = None, max_sessions: int = MAX_SESSIONS,
          allow_hosts: Iterable[str] = ()) -> int:
    if max_sessions < 1:
        print("workbench: --max-sessions must be >= 1", file=sys.stderr)
        return 2
    try:
        allow_hosts = [check_extra_host(value) for value in allow_hosts]
    except ValueError as exc:
        print(f"workbench: {exc}", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "workbench"] + (["open", lesson] if lesson else [])
    if host in WILDCARD:
        print(f"warning: bound to every address of this machine, but only pages opened as "
              f"http://127.0.0.1:{port} or http://localhost:{port} are served; give --host the address "
              f"others should use", file=sys.stderr)
    elif host not in LOOPBACK:
        print(f"warning: serving on {host}: anyone who can reach this address can use the app", file=sys.stderr)
    GuardedServer(shlex.join(command), host=host, port=port, title="workbench", max_sessions=max_sessions,
                  allow_hosts=allow_hosts).serve()
    return 0
