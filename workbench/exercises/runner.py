"""The sandboxed child that runs the learner's code: ``python -I -m workbench.exercises.runner``.

It holds no answers and gives no verdict. The parent sends it a request on
one pipe and reads its reply on another (file descriptors named on the
command line; stdout and stderr are only the learner's prints). In order it:
arranges to die with the parent, reads the whole request, prepares (the race
imports the engines and runs every contender but the learner's once), limits
its own resources, installs the audit-hook guard of
:mod:`workbench.exercises.sandbox`, and only then runs the learner's file.

``check``: calls the learner's function once per case the parent sent and
replies with every :class:`~workbench.exercises.calls.Call`.

``race`` (only after the parent has seen every check pass): times the
learner's function against the engines' reference and peers with the
benchmark runner, then calls it on fresh cases once more, and replies with
the timings and the learner's outputs (its first and last race output, and
those fresh calls), which the parent judges.
"""

from __future__ import annotations

import argparse
import importlib.util
import linecache
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.exercises import wire
from workbench.exercises.calls import Call, describe_exception, fresh, invoke
from workbench.exercises.sandbox import die_with_parent, install_guard, limit_resources

WARMUP = 2
REPEATS = 5
MODULE_NAME = "learner_solution"


def read_request(fd: int) -> Any:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    # The parent is trusted, and its requests near the reply limits (bpe_encode's cl100k ranks: 2.6 MiB).
    return wire.decode(b"".join(chunks), limited=False)


def send_reply(fd: int, reply: dict[str, Any]) -> None:
    data = memoryview(wire.encode(reply))
    while data:
        data = data[os.write(fd, data):]
    os.close(fd)


def load_function(source: bytes, path: str, name: str) -> Callable[..., Any]:
    """Run the learner's module from source already read, and return its function ``name``.

    The source is read before the guard goes up (a learner's file may lie
    anywhere) and put in linecache, so tracebacks show the learner's lines
    without opening the file again.
    """
    text = importlib.util.decode_source(source)
    linecache.cache[path] = (len(text), None, text.splitlines(True), path)
    module = types.ModuleType(MODULE_NAME)
    module.__file__ = path
    sys.modules[MODULE_NAME] = module  # dataclasses and pickling look the module up here
    exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 - running the learner's file is the point
    fn = getattr(module, name, None)
    if fn is None:
        raise AttributeError(f"{Path(path).name} defines no function {name}()")
    if not callable(fn):
        raise TypeError(f"{name} in {Path(path).name} is a {type(fn).__name__}, not a function")
    return fn


def load_package(root: str, module_name: str) -> Callable[..., Any]:
    """Import the learner's module from their package (Build a GPT) and return the case runner bound to it.

    The package's folder goes first on sys.path, so the module's own imports
    (``from mygpt.tensor import Tensor``) reach the learner's earlier steps,
    never a copy of ours. Every case names a driver
    (:mod:`workbench.exercises.buildgpt.drivers`, imported before the guard).
    """
    from functools import partial

    from workbench.exercises.buildgpt.drivers import run_case

    sys.path.insert(0, root)
    module = importlib.import_module(module_name)
    return partial(run_case, module)


def train(request: dict[str, Any], progress_fd: int) -> dict[str, Any]:
    """The payoff of Build a GPT: the learner's GPT trained by the learner's loop, optimizer and schedule.

    Every step's figures go out on the progress pipe as a JSON line as they
    happen, with a sample from the learner's generate() every
    ``sample_every`` steps; the reply holds the losses the loop returned and
    the trained parameters, which the parent measures with the engine.
    """
    import json
    import time

    import numpy as np

    model_module, adamw, loop, sample = (importlib.import_module(f"mygpt.{name}")
                                         for name in ("model", "adamw", "train", "sample"))
    shape, settings, hyper = request["shape"], request["settings"], request["hyper"]
    model = model_module.GPT(**shape, seed=request["seed"])
    optimizer = adamw.AdamW(model.parameters(), **hyper)
    prompt, every, started = request["prompt"], request["sample_every"], time.perf_counter()
    sampling = [0.0]
    """Seconds spent in generate(), left out of the training time reported (it is not a training step)."""

    def send(record: dict[str, Any]) -> None:
        line = (json.dumps(record) + "\n").encode()
        while line:
            line = line[os.write(progress_fd, line):]

    def on_step(step: int, loss: float, lr: float, norm: float) -> None:
        record = {"step": int(step), "loss": float(loss), "lr": float(lr), "norm": float(norm),
                  "seconds": time.perf_counter() - started - sampling[0]}
        if every and (int(step) + 1) % every == 0:
            began, rng = time.perf_counter(), np.random.default_rng(request["seed"] + int(step))
            record["sample"] = [int(t) for t in sample.generate(model, prompt, request["sample_tokens"], 0.8, 20, rng)]
            sampling[0] += time.perf_counter() - began
        send(record)

    losses = loop.train(model, optimizer, request["data"], rng=np.random.default_rng(request["seed"]),
                        on_step=on_step, **settings)
    return {"losses": [float(v) for v in losses], "seconds": time.perf_counter() - started - sampling[0],
            "params": {name: np.asarray(t.data) for name, t in model.named_parameters().items()}}


def sendable(call: Call) -> dict[str, Any]:
    """call as plain data, or a note that its output could not be sent (never an exception)."""
    plain = call.to_plain()
    try:
        wire.encode(plain)
    except Exception as exc:  # noqa: BLE001 - an output wire cannot carry fails its check, not the run
        return Call(error=f"the output could not be sent to the checker: {describe_exception(exc)}",
                    error_type="SendError").to_plain()
    return plain


def check(request: dict[str, Any], learner: Callable, learner_file: str, entry: str = "") -> dict[str, Any]:
    keep = request["writes_args"]
    return {"calls": [sendable(invoke(learner, args, keep_args=keep, learner_file=learner_file, entry=entry))
                      for args in request["cases"]]}


class Race:
    """The race's contenders, prepared before the guard goes up, and run once the learner's code is loaded."""

    def __init__(self, request: dict[str, Any]) -> None:
        import workbench_engines.profiling  # noqa: F401 - imported now, while imports are allowed

        from workbench.exercises.checks import SPECS

        self.spec = SPECS[request["exercise"]]
        self.args: tuple = request["race_args"]
        self.recheck: list[tuple] = request["recheck"]
        self.notes: list[str] = []
        wrap = self.spec.race_wrap or (lambda f: f)
        self.others: dict[str, Callable[[tuple], Call]] = {"reference": self.contender(wrap(self.spec.expected))}
        try:
            self.others.update({name: self.contender(fn) for name, fn in self.spec.peers().items()})
        except Exception as exc:  # noqa: BLE001 - a missing peer only shortens the race
            self.notes.append(f"peers unavailable: {exc}")
        for run in self.others.values():  # load everything they import lazily, before imports are refused
            run(fresh(self.args))
        self.outputs: list[Call] = []

    def contender(self, fn: Callable[..., Any], learner_file: str = "") -> Callable[[tuple], Call]:
        keep = self.spec.writes_args
        return lambda inputs: invoke(fn, inputs, keep_args=keep, learner_file=learner_file)

    def run(self, learner: Callable, learner_file: str) -> dict[str, Any]:
        from workbench_engines.profiling import Case, Contender, run_cases

        from workbench.exercises.checks import judge

        wrap = self.spec.race_wrap or (lambda f: f)
        timed = self.contender(wrap(learner), learner_file)

        def yours(inputs: tuple) -> Call:
            call = timed(inputs)
            if self.outputs:
                self.outputs[1:] = [call]  # the first and the latest output: what the parent judges
            else:
                self.outputs.append(call)
            return call

        contenders = [Contender("yours", yours, "python")]
        contenders += [Contender(name, run, _backend_of(name)) for name, run in self.others.items()]
        # The other rows' matches are judged here; the learner's row is judged again by the parent.
        case = Case("race on a larger input", contenders, lambda expected, got: judge(self.spec, expected, got, self.args),
                    reference="reference", baselines=("yours",), warmup=WARMUP, repeats=REPEATS, interleave=True,
                    inputs=lambda: fresh(self.args))
        rows = run_cases([case], warmup=WARMUP, repeats=REPEATS)
        recheck = [sendable(invoke(learner, args, keep_args=self.spec.writes_args, learner_file=learner_file))
                   for args in self.recheck]
        self.notes.append(f"one thread each; median of {REPEATS} interleaved rounds after {WARMUP} warm-up runs; "
                          "same inputs for all; timed inside the sandbox")
        return {"rows": [row.as_dict() for row in rows], "note": "; ".join(self.notes),
                "first": sendable(self.outputs[0]), "last": sendable(self.outputs[-1]), "recheck": recheck}


def _backend_of(name: str) -> str:
    return "native" if "native" in name else "torch" if "torch" in name else "reference"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -I -m workbench.exercises.runner")
    parser.add_argument("mode", choices=("check", "race", "train"))
    parser.add_argument("path")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--request-fd", type=int, required=True)
    parser.add_argument("--reply-fd", type=int, required=True)
    parser.add_argument("--progress-fd", type=int, default=-1)
    parser.add_argument("--memory-mb", type=int, default=3072)
    parser.add_argument("--cpu-seconds", type=int, default=60)
    parser.add_argument("--wall-seconds", type=int, default=60)
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid)
    sys.stdout.reconfigure(line_buffering=True)
    request = read_request(args.request_fd)
    race = Race(request) if args.mode == "race" else None
    package = request.get("package")
    if package:
        import workbench.exercises.buildgpt.drivers  # noqa: F401 - imported now, while imports are allowed
    with open(args.path, "rb") as f:
        source = f.read()
    limit_resources(args.memory_mb, args.cpu_seconds, args.wall_seconds)
    install_guard(request["protected"], os.getcwd())
    # A package's traceback is shown from the deepest frame in any of the learner's files.
    where = str(Path(package["root"]) / package["module"].split(".")[0]) + os.sep if package else args.path
    try:
        if package:
            learner = load_package(package["root"], package["module"])
        else:
            learner = load_function(source, args.path, request["function"])
    except BaseException as exc:  # noqa: BLE001 - a syntax error or a raise at import time
        reply: dict[str, Any] = {"import_error": f"importing {Path(args.path).name} failed: "
                                                 f"{describe_exception(exc, where, args.path)}"}
    else:
        if args.mode == "train":
            try:
                reply = train(request, args.progress_fd)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - the learner's training failed: say where
                reply = {"error": describe_exception(exc, where, args.path)}
        else:
            reply = race.run(learner, args.path) if race else check(request, learner, where, args.path)
    send_reply(args.reply_fd, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
