"""What the child process does to itself before the learner's code runs, and what that leaves open.

The child runs as the learner's own OS user, so none of this is a security
boundary against the learner; it stops accidents and casual shortcuts, and it
keeps the verdict out of the learner's reach (the verdict is the parent's, on
outputs it receives, see :mod:`workbench.exercises.run`). In order:

- :func:`die_with_parent`: the kernel kills the child when the parent dies
  (``PR_SET_PDEATHSIG``), so an SSH drop leaves no runner behind.
- :func:`limit_resources`: address space (``RLIMIT_AS``, which counts
  ``mmap`` too), CPU seconds, no new processes or threads (``RLIMIT_NPROC``,
  which does not bind root; the guard refuses both as well), file sizes, no
  core files, and an alarm for wall time.
- :func:`install_guard`: an audit hook (which Python code cannot remove)
  refusing to import the workbench's own packages, to open their files (the
  engines' references, the shipped solutions), to open a folder as a file
  descriptor (so no ``dir_fd`` can point anywhere: paths are always resolved
  from the current folder, as the hook resolves them), to write or change
  files outside the run's scratch folder, to open any SQLite database, to
  start processes or threads, to signal or re-limit other processes, to call
  C functions through ctypes, and to walk the garbage collector's objects.
  The few functions that act without an audit event (:data:`UNAUDITED`:
  pidfds, mknod, threads, fork_exec) are replaced first by ones that refuse,
  and so is the one way to load a fresh copy of a built-in module without an
  event (``_imp.create_builtin``), after every built-in module is loaded.

The hook sees only what Python audits: native code, loaded by an extension
module the learner's code imports, is not bound by any of it.

:data:`LIMITS_TEXT` says the same to the learner, including what stays open.
"""

from __future__ import annotations

import _imp
import ctypes
import importlib
import os
import resource
import signal
import stat
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>."""
REFUSED_IMPORTS = frozenset({"workbench", "workbench_engines", "workbench_lessons", "cffi", "_cffi_backend",
                             "_posixsubprocess"})
"""Top-level modules the learner's code may not import: the judge's code, the references, cffi (a route
to C that the audit hook cannot see) and a fresh _posixsubprocess, whose fork_exec raises no audit event
(the copy loaded before the guard has it replaced; fresh built-in modules are refused another way)."""
SPAWN_EVENTS = frozenset({"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                          "subprocess.Popen", "os.startfile", "os.killpg", "_thread.start_new_thread"})
"""New processes, and new threads (RLIMIT_NPROC does not bind root; a second thread could swap a path between
the hook's check and the system call)."""
PATH_EVENTS = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.truncate": 1, "os.chmod": 1, "os.chown": 1,
               "os.utime": 1, "os.chflags": 1, "os.lchflags": 1, "os.rename": 2, "os.link": 2, "os.symlink": 2,
               "os.setxattr": 1, "os.removexattr": 1, "shutil.rmtree": 1, "shutil.chown": 1}
"""Events that change the file system, and how many of their first arguments are paths (all must lie in scratch)."""
DIR_FD_ARGS = {"os.mkdir": (2,), "os.remove": (1,), "os.rmdir": (1,), "os.rename": (2, 3), "os.link": (2, 3),
               "os.symlink": (2,), "os.chmod": (2,), "os.chown": (3,), "os.utime": (3,), "shutil.rmtree": (1,)}
"""Where those events carry a folder descriptor (-1 or None when there is none); one given is refused, since the
hook resolves relative paths from the current folder. No folder can be opened as a descriptor anyway."""
INTROSPECTION_EVENTS = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents"})
"""Walking every object would find the functions removed below, still alive inside the interpreter."""
UNAUDITED = {"os": ("pidfd_open", "mknod", "mkfifo"), "posix": ("pidfd_open", "mknod", "mkfifo"),
             "signal": ("pidfd_send_signal",), "_signal": ("pidfd_send_signal",),
             "_thread": ("start_new_thread", "start_new"), "threading": ("_start_new_thread",),
             "_posixsubprocess": ("fork_exec",)}
"""Functions that act without an audit event, replaced by ones that refuse before the hook goes up: a pidfd
signals the parent past the os.kill check, mknod and mkfifo create files anywhere, a thread is not refused
(from Python 3.13 it is audited), fork_exec starts a process (subprocess, and so torch, import it)."""
CTYPES_EVENTS = frozenset({"ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.call_function", "ctypes.string_at",
                           "ctypes.wstring_at", "ctypes.cdata", "ctypes.cdata/buffer"})
"""Looking up a C function (the step before calling it) or reading raw memory through ctypes; loading a
library stays allowed (torch's import does)."""
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
FILE_SIZE_LIMIT = 256 * 2**20

LIMITS_TEXT = """\
Each check starts a fresh Python process for your file, outside your workspace folder \
(so a json.py or numpy.py there is not imported in place of the real one), sends it the inputs, and gets back only \
what your function returned. The comparison with the right answers happens in the workbench itself, which your \
code never runs in: printing, patching NumPy or reading the call stack cannot change the verdict, and only that \
verdict marks an exercise solved.

While your code runs it cannot import the workbench's own packages, open their files (the engines and the \
reference solutions), write files outside a scratch folder that is deleted afterwards, open a database, start \
processes or threads, signal other processes or call C through ctypes. It gets about 3 GB of memory and 30 s; \
when the check ends, or the workbench quits, the process and everything it started is killed.

What this does not isolate: your code runs as you, with your permissions, on your machine. It can read your other \
files, use the network, and lower the priority of your other processes; native code it loads (an extension \
module of your own, say) could get around every rule above. The race's timings are \
measured in the same process as your code, beside the engines' own, so they (and whether your race output \
matches) are only as honest as your code; the verdict never comes from the race. The reference solutions ship with \
the workbench as ordinary files you can open yourself; the workbench only keeps them out of reach of your code and \
off this screen until you pass."""


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies; exit now if it already has."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)  # Linux only; elsewhere the alarm remains
    if prctl is not None and prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(70)


def _address_space_bytes() -> int:
    """This process's current virtual size (Linux /proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def limit_resources(memory_mb: int, cpu_seconds: int, wall_seconds: int) -> None:
    """Cap what the rest of this process may take: memory_mb beyond what it has mapped now, and more.

    The address-space limit counts every mapping (heap, ``mmap``, thread
    stacks), unlike RLIMIT_DATA; it is set on top of the current size so the
    interpreter, NumPy and torch already loaded do not eat the learner's share.
    RLIMIT_NPROC counts all of the user's processes, so 0 forbids new ones
    (and new threads) outright; it does not bind root.
    """
    try:
        limit = _address_space_bytes() + memory_mb * 2**20
        kind = resource.RLIMIT_AS
    except OSError:  # no /proc: cap the data segment at least
        limit, kind = memory_mb * 2**20, resource.RLIMIT_DATA
    resource.setrlimit(kind, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(wall_seconds)


def _refuse(what: str) -> PermissionError:
    return PermissionError(f"the exercise sandbox refused {what} (see 'How your code is checked')")


def _real(path: Any) -> str | None:
    """The resolved path of an audit event's path argument; None for a file descriptor."""
    if isinstance(path, int):
        return None
    try:
        return os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return ""


def install_guard(protected: Iterable[str], scratch: str) -> None:
    """Add the audit hook described in this module's docstring; from now on it sees every audited event.

    Args:
        protected: folders whose files the code may not open (the workbench's packages).
        scratch: the one folder the code may write in.
    """
    protected_roots = tuple(os.path.realpath(p) + os.sep for p in protected)
    scratch_root = os.path.realpath(scratch) + os.sep
    own_pid = os.getpid()

    def within(path: str | None, roots: tuple[str, ...]) -> bool:
        return path is not None and (path + os.sep).startswith(roots)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path = _real(args[0])
            if within(path, protected_roots):
                raise _refuse(f"opening {args[0]!s}, a file of the workbench itself")
            if path and os.path.isdir(path):
                raise _refuse(f"opening the folder {args[0]!s} as a file descriptor")
            mode, flags = args[1], args[2]
            writes = ((isinstance(flags, int) and flags & WRITE_FLAGS)
                      or (isinstance(mode, str) and any(c in mode for c in "wax+")))
            if writes and path is not None and path != os.devnull and not within(path, (scratch_root,)):
                raise _refuse(f"writing {args[0]!s} (only the scratch folder {scratch} is writable)")
        elif event == "import":
            if args[0].partition(".")[0] in REFUSED_IMPORTS:
                raise _refuse(f"importing {args[0]}")
        elif event in SPAWN_EVENTS:
            raise _refuse(f"{event} (no new processes or threads)")
        elif event in CTYPES_EVENTS:
            raise _refuse(f"{event} (no C calls through ctypes)")
        elif event in INTROSPECTION_EVENTS:
            raise _refuse(f"{event} (it reaches objects the sandbox keeps away)")
        elif event.startswith("sqlite3."):
            raise _refuse("opening a database")
        elif event == "os.kill":
            if args[0] != own_pid:
                raise _refuse("signalling another process")
        elif event == "resource.setrlimit" or (event == "resource.prlimit" and args[2] is not None):
            raise _refuse("changing resource limits")
        elif event in PATH_EVENTS:
            if any(args[i] not in (None, -1) for i in DIR_FD_ARGS.get(event, ()) if i < len(args)):
                raise _refuse(f"{event} with dir_fd (paths are checked from the current folder)")
            for path in args[: PATH_EVENTS[event]]:
                if not within(_real(path), (scratch_root,)):
                    raise _refuse(f"{event} on {path!s} (only the scratch folder {scratch} may change)")

    _remove_unaudited()
    _close_folder_descriptors()
    sys.addaudithook(hook)


def _remove_unaudited() -> None:
    """Replace what acts without an audit event, and the ways to load it afresh, by functions that refuse.

    The modules are loaded now (the hook refuses a fresh import of those that are not built in). A fresh
    copy of a built-in module (posix, _signal, _thread) comes from _imp.create_builtin, which raises no
    event: every built-in module is loaded first, then that function is replaced too.
    """

    def refused(what: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise _refuse(what)
        return refuse

    for name, functions in UNAUDITED.items():
        module = importlib.import_module(name)
        for function in functions:
            if hasattr(module, function):
                setattr(module, function, refused(f"{name}.{function} (it escapes the sandbox's checks)"))
    for name in sys.builtin_module_names:
        importlib.import_module(name)
    _imp.create_builtin = refused("loading a fresh copy of a built-in module")


def _close_folder_descriptors() -> None:
    """Close any folder left open by what ran before the guard, so no dir_fd can reach outside scratch."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.close(fd)
        except OSError:
            pass  # the listing's own descriptor, closed already
