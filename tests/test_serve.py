"""``workbench serve`` answers only its own page (issue 18): Host and Origin checked, sessions capped.

A real server runs in a subprocess on a free port; each browser session it
opens runs a stand-in for the app (a process that waits on its stdin), so the
tests exercise textual-serve's own handshake without starting the workbench.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import aiohttp
import pytest

from workbench.cli import build_parser
from workbench.serve import allowed_hosts, serve

TUNNELLED = "localhost:9000"
"""The name the server's page has through ``ssh -L 9000:localhost:8000``; the fixture allows it."""

# The stand-in leaves when textual-serve sends it the "quit" message that ends a session (or its stdin closes).
APP = "import sys\nwhile b'quit' not in (sys.stdin.buffer.read1(65536) or b'quit'): pass"
SERVER = f"""
import shlex, sys
from workbench.serve import GuardedServer
command = shlex.join([sys.executable, "-c", {APP!r}])
GuardedServer(command, "127.0.0.1", int(sys.argv[1]), "test", max_sessions=1, allow_hosts=sys.argv[2:]).serve()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), TUNNELLED], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60  # a hang guard: start-up imports textual-serve
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
    yield port
    # textual-serve ignores SIGTERM while a session is open (TOOLCHAIN.md): end it for good.
    proc.kill()
    proc.wait(30)


def _run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


async def _get(port: int, host: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/",
                                                                headers={"Host": host}) as response:
        return response.status


async def _handshake(port: int, headers: dict[str, str], wait_for_a_free_slot: bool = True) -> int:
    """The status of a websocket handshake to /ws: 101 when a session opens (closed again at once).

    A slot frees once the server has stopped the last session's process, a moment after it closed;
    unless told not to, a 503 is retried for a while.
    """
    for _ in range(100):
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(f"ws://127.0.0.1:{port}/ws", headers=headers):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status != 503 or not wait_for_a_free_slot:
                    return exc.status
        await asyncio.sleep(0.1)
    return 503


def test_the_page_answers_only_to_its_own_host_issue18(server):
    assert _run(_get(server, f"127.0.0.1:{server}")) == 200
    assert _run(_get(server, f"localhost:{server}")) == 200
    # DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1.
    assert _run(_get(server, f"evil.example:{server}")) == 403
    assert _run(_get(server, "127.0.0.1:1")) == 403


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},  # a sandboxed frame or a file:// page
    {},  # every browser sends an Origin with a websocket
    {"Origin": "http://127.0.0.1:1"},  # another local server's page
    {"Origin": "http://127.0.0.1:{port}", "Host": "evil.example:{port}"},
])
def test_a_websocket_from_another_page_is_refused_issue18(server, headers):
    headers = {key: value.format(port=server) for key, value in headers.items()}
    assert _run(_handshake(server, headers)) == 403


@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "http://localhost:{port}"])
def test_the_served_page_opens_a_session(server, origin):
    assert _run(_handshake(server, {"Origin": origin.format(port=server)})) == 101


def test_sessions_beyond_the_cap_are_refused_issue18(server):
    origin = {"Origin": f"http://127.0.0.1:{server}"}

    async def two_at_once() -> tuple[int, int]:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # until an earlier test's session has ended
                try:
                    first = await session.ws_connect(f"ws://127.0.0.1:{server}/ws", headers=origin)
                    break
                except aiohttp.WSServerHandshakeError:
                    await asyncio.sleep(0.1)
            second = await _handshake(server, origin, wait_for_a_free_slot=False)
            await first.close()
        return second, await _handshake(server, origin)

    assert _run(two_at_once()) == (503, 101)


def test_allowed_hosts():
    assert allowed_hosts("127.0.0.1", 8000) == {"127.0.0.1:8000", "localhost:8000", "[::1]:8000"}
    assert allowed_hosts("0.0.0.0", 80) == {"127.0.0.1:80", "localhost:80", "[::1]:80", "127.0.0.1", "localhost",
                                            "[::1]"}
    assert allowed_hosts("192.168.1.5", 8000) == {"192.168.1.5:8000"}


def test_a_page_through_a_port_forward_is_served_only_when_allowed(server):
    """Issue 18 review: `ssh -L 9000:localhost:8000` sends `Host: localhost:9000`, which got 403 with no way out."""
    assert _run(_get(server, TUNNELLED)) == 200
    tunnelled = {"Host": TUNNELLED, "Origin": f"http://{TUNNELLED}"}
    assert _run(_handshake(server, tunnelled)) == 101
    assert _run(_get(server, "localhost:9001")) == 403
    assert _run(_handshake(server, {"Origin": "http://localhost:9001"})) == 403


def test_allow_host_is_repeatable_and_checked(capsys):
    args = build_parser().parse_args(["serve", "--allow-host", "localhost:9000", "--allow-host", "Box.example"])
    assert allowed_hosts(args.host, args.port, args.allow_host) == {
        "127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost:9000", "box.example"}
    for bad in ("http://localhost:9000", "localhost:port", "user@localhost:9000", "localhost:9000/"):
        assert serve("127.0.0.1", 8000, allow_hosts=[bad]) == 2
        assert "is not HOST[:PORT]" in capsys.readouterr().err
