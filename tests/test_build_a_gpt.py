"""Build a GPT: each step's reference passes and its starter fails; wrong steps are caught and traced to where
they went wrong; the learner's model trains in the sandbox and races the engine's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from workbench.exercises.buildgpt.cases import SPECS
from workbench.exercises.buildgpt.weights import Shape, engine_state, learner_state, load_engine
from workbench.exercises.catalog import BUILD_A_GPT, EXERCISES, needs_in_order
from workbench.exercises.run import run_exercise
from workbench.exercises.workspace import ensure_workspace, exercise_file

pytestmark = pytest.mark.no_c_path
STEPS = sorted(BUILD_A_GPT, key=list(BUILD_A_GPT).index)


def install(workspace: Path, ids=STEPS, *, starter: str | None = None) -> Path:
    """The reference solutions of ids copied into workspace/mygpt (the starter for one id, if named)."""
    (workspace / "mygpt").mkdir(parents=True, exist_ok=True)
    (workspace / "mygpt" / "__init__.py").write_text("")
    for exercise_id in ids:
        exercise = EXERCISES[exercise_id]
        source = exercise.starter if exercise_id == starter else exercise.solution
        shutil.copyfile(source, exercise_file(workspace, exercise))
    return workspace


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> Path:
    return install(tmp_path_factory.mktemp("references"))


@pytest.mark.parametrize("exercise_id", STEPS)
def test_every_reference_passes_its_checks(exercise_id, references):
    report = run_exercise(exercise_id, exercise_file(references, EXERCISES[exercise_id]), race=False)
    assert report.error is None, report.error
    assert report.passed, report.first_failure
    assert len(report.checks) >= 2 and report.race == []


@pytest.mark.parametrize("exercise_id", STEPS)
def test_every_starter_fails_saying_where(exercise_id, tmp_path):
    """With the earlier steps solved, the starter fails its own checks, naming a line of its own file."""
    workspace = install(tmp_path, [*needs_in_order(exercise_id), exercise_id], starter=exercise_id)
    report = run_exercise(exercise_id, exercise_file(workspace, EXERCISES[exercise_id]), race=False, trace=False)
    assert report.error is None, report.error
    assert not report.passed
    detail = report.first_failure.detail
    assert "your code here" in detail or "ellipsis" in detail
    assert Path(EXERCISES[exercise_id].file_name).name in detail


def test_each_step_names_the_steps_it_imports(references):
    """needs holds every mygpt module a reference imports, and beyond those only what its checks build from the
    learner's earlier steps (their Tensor, their GPT), so a failure is traced to a file it really depends on."""
    import ast

    for exercise in BUILD_A_GPT.values():
        tree = ast.parse(exercise.solution.read_text())
        imported = {node.module.split(".")[1] for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mygpt.")}
        imported = {f"gpt_{name}" for name in imported}
        assert imported <= set(exercise.needs), exercise.id
        assert set(exercise.needs) - imported <= {"gpt_tensor", "gpt_model"}, exercise.id


WRONG_SOFTMAX_BACKWARD = '''
import numpy as np
from mygpt.tensor import Tensor


def softmax(x, axis=-1):
    e = np.exp(x.data - x.data.max(axis=axis, keepdims=True))
    s = e / e.sum(axis=axis, keepdims=True)
    out = Tensor(s, (x,))

    def _backward():
        x.grad += s * out.grad  # forgets the - sum(g * s) term
    out._backward = _backward
    return out
'''


def test_a_wrong_backward_fails_the_gradient_check_and_is_traced_from_a_later_step(tmp_path):
    workspace = install(tmp_path)
    (workspace / "mygpt" / "softmax.py").write_text(WRONG_SOFTMAX_BACKWARD)
    own = run_exercise("gpt_softmax", workspace / "mygpt" / "softmax.py", race=False)
    failed = {c.name: c.detail for c in own.checks if not c.passed}
    assert "gradient check: finite differences of your forward" in failed
    assert "the backward does not match the forward" in failed["gradient check: finite differences of your forward"]
    assert all(detail.startswith("gradient of") or "backward" in detail for detail in failed.values())  # outputs match
    later = run_exercise("gpt_attention", workspace / "mygpt" / "attention.py", race=False)
    assert not later.passed
    assert later.traced_to is not None and "softmax.py" in later.traced_to


def test_renamed_parameters_are_named_not_a_crash(tmp_path):
    workspace = install(tmp_path)
    path = workspace / "mygpt" / "norm.py"
    path.write_text(path.read_text().replace("self.weight", "self.gain"))
    report = run_exercise("gpt_norm", path, race=False)
    assert not report.passed
    assert "named_parameters() gives ['gain']" in report.first_failure.detail


def test_the_cases_are_fresh_for_every_seed():
    for exercise_id, spec in SPECS.items():
        first = repr([repr(a)[:4000] for _, a in spec.cases(np.random.default_rng(1))])
        assert first != repr([repr(a)[:4000] for _, a in spec.cases(np.random.default_rng(2))]), exercise_id


def test_the_learners_layout_maps_onto_the_engine_and_back():
    """An engine GPT's weights in the track's layout and back are the same weights, loaded into an equal model."""
    import torch
    from workbench_engines.models.gpt import GPT

    shape = Shape(vocab_size=37, context=12, d_model=12, n_layers=2, n_heads=3)
    torch.manual_seed(0)
    original = GPT(shape.engine_config()).to(torch.float64)
    params = learner_state(shape, {k: v.numpy() for k, v in original.state_dict().items()})
    assert set(params) == set(shape.learner_names())
    assert params["blocks.1.attn.k.weight"].shape == (12, 12) and params["blocks.0.ffn.gate.weight"].shape == (12, 32)
    again = engine_state(shape, params)
    assert all(np.array_equal(again[k], v.numpy()) for k, v in original.state_dict().items())
    ids = torch.randint(0, 37, (2, 9))
    assert torch.equal(load_engine(shape, params)(ids), original(ids))


def test_a_layout_that_is_not_the_tracks_is_refused_by_name():
    from workbench.exercises.buildgpt.weights import LayoutError

    shape = Shape(vocab_size=37, context=12, d_model=12, n_layers=1, n_heads=3)
    params = {name: np.zeros(size) for name, size in shape.learner_names().items()}
    with pytest.raises(LayoutError, match="missing"):
        engine_state(shape, {k: v for k, v in params.items() if k != "norm.weight"})
    with pytest.raises(LayoutError, match=r"blocks.0.attn.q.weight has shape \(12, 6\)"):
        engine_state(shape, params | {"blocks.0.attn.q.weight": np.zeros((12, 6))})


def test_the_workspace_gets_an_importable_package(tmp_path):
    created = ensure_workspace(tmp_path)
    assert (tmp_path / "mygpt" / "__init__.py").is_file()
    assert all((tmp_path / e.file_name).is_file() for e in BUILD_A_GPT.values())
    assert len(created) == len(EXERCISES)


@pytest.mark.slow
async def test_a_learner_completes_the_track_then_trains_and_races_their_gpt(tmp_path):
    """The Pilot checks all sixteen steps in the exercise view with the references copied in, then trains the
    learner's model in the payoff lab and sees its live curve, a sample and the race table."""
    from textual.widgets import OptionList

    from tests.conftest import SIZE, plain_text
    from workbench.app import WorkbenchApp
    from workbench.labs.base import Lab
    from workbench.widgets.plots import Figure

    workspace = tmp_path / "ws"
    ensure_workspace(workspace)
    install(workspace)
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        app.open_exercises(workspace=workspace)
        await pilot.pause()
        screen = app.screen
        for exercise_id in STEPS:
            screen.query_one(OptionList).highlighted = screen._index_of(exercise_id)
            await pilot.pause()
            assert screen.selected.id == exercise_id
            screen.action_check()
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.store.exercise_state(exercise_id).status == "solved", screen.reports[exercise_id].first_failure
        app.open_lab("buildgpt.train_yours", {"steps": 20, "seed": 3})
        await pilot.pause()
        lab = app.screen.query_one(Lab)
        lab.focus()
        await pilot.pause()
        assert "Every step solved" in plain_text(lab.query_one(".lab-status").content)
        await pilot.press("r")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        readout = " ".join(plain_text(lab.query_one(".readout").content).split())
        assert "your GPT (NumPy, your autograd)" in readout and "engine GPT (PyTorch)" in readout, readout
        assert "237,888" in readout and "nats per token" in readout
        assert lab.query_one(Figure).drawn
        sample = " ".join(plain_text(lab.query_one(".gpt-sample").content).split())
        assert sample.startswith("Your model at step") and len(sample) > 60
        result = lab.result
        assert len(result.learner.losses) == len(result.engine.losses) == 20
        # Same batches, same schedule, nearly the same start: after 20 steps the two losses are close.
        assert abs(result.learner.val_loss - result.engine.val_loss) < 0.2
        assert result.learner.val_loss < result.first_loss - 0.5


async def test_the_payoff_lab_says_what_is_left_to_solve(open_lab):
    async with open_lab("buildgpt.train_yours", steps=10) as h:
        assert "16 of 16 steps still to solve (Scalar autograd" in h.status()
        await h.press("r")
        await h.settle()
        assert "16 of 16 steps still to solve" in h.status() and not h.lab.running


def test_a_failing_training_is_reported_with_the_learners_line(tmp_path):
    from workbench.exercises.buildgpt.payoff import PayoffError, Settings, train_learner
    from workbench_engines.models.experiments import lesson_data
    from workbench_engines.models.small_gpt import shipped_tokenizer

    workspace = install(tmp_path)
    path = workspace / "mygpt" / "train.py"
    path.write_text(path.read_text().replace("        losses.append(loss)\n",
                                             "        losses.append(loss)\n        if step == 2:\n"
                                             "            raise RuntimeError('diverged')\n"))
    seen = []
    with pytest.raises(PayoffError, match=r"RuntimeError: diverged \(train.py line \d+"):
        train_learner(workspace, Settings(steps=5), lesson_data(200_000), shipped_tokenizer(), seen.append)
    assert [s.step for s in seen] == [0, 1]


def test_a_zero_dimensional_array_crosses_the_wire_as_one():
    """A loss is a 0-d array; np.ascontiguousarray made it (1,), and every Build a GPT loss check failed on shape."""
    from workbench.exercises import wire

    for value in (np.array(2.5), np.array(3, dtype=np.int64), np.arange(6.0).reshape(2, 3).T):
        back = wire.decode(wire.encode(value))
        assert back.shape == value.shape and back.dtype == value.dtype and np.array_equal(back, value)


def test_progress_lines_arrive_whole_and_a_long_line_is_dropped():
    from workbench.exercises.supervise import ProgressLines

    seen: list[bytes] = []
    lines = ProgressLines(seen.append, limit=16)
    for chunk in (b'{"a"', b': 1}\n{"b": 2}\n', b"x" * 40, b"y" * 40, b"\n", b"ok\n", b"z" * 17 + b"\nend\n"):
        lines.add(chunk)
    assert seen == [b'{"a": 1}', b'{"b": 2}', b"ok", b"end"]


def test_a_forged_progress_line_is_ignored_not_shown():
    from workbench.exercises.buildgpt.payoff import parse_step

    assert parse_step(b'{"step": 3, "loss": 4.5, "lr": 0.001, "norm": 0.7, "seconds": 1.5}', str).loss == 4.5
    for forged in (b"not json", b'{"step": "x"}', b"[1, 2]", b'{"step": 1, "loss": 2}', b"[" * 60_000,
                   b'{"step": 1e999, "loss": 2, "lr": 0, "norm": 0, "seconds": 0}'):
        assert parse_step(forged, str) is None
    sample = parse_step(b'{"step": 1, "loss": 2, "lr": 0, "norm": 0, "seconds": 0, "sample": [1, -5, 99999, 2]}',
                        lambda ids: ",".join(map(str, ids)))
    assert sample.sample == "1,2"  # ids outside the vocabulary never reach the tokenizer


async def test_the_exercise_view_says_which_earlier_step_a_failure_may_come_from(tmp_path):
    from tests.conftest import SIZE, plain_text
    from workbench.app import WorkbenchApp

    workspace = tmp_path / "ws"
    ensure_workspace(workspace)
    install(workspace)
    (workspace / "mygpt" / "softmax.py").write_text(WRONG_SOFTMAX_BACKWARD)
    app = WorkbenchApp(store_path=tmp_path / "p.db")
    async with app.run_test(size=SIZE) as pilot:
        app.open_exercises("gpt_attention", workspace=workspace)
        await pilot.pause()
        app.screen.action_check()
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown = " ".join(plain_text(app.screen.query_one("#result").content).split())
        assert "Where it may come from: this step imports softmax.py (Softmax and its gradient)" in shown, shown


def test_a_patched_clock_cannot_win_the_race(tmp_path):
    """The learner's process could report any training time; one that does not fit its own life is refused."""
    from workbench.exercises.buildgpt.payoff import PayoffError, Settings, train_learner
    from workbench_engines.models.experiments import lesson_data
    from workbench_engines.models.small_gpt import shipped_tokenizer

    workspace = install(tmp_path)
    path = workspace / "mygpt" / "train.py"
    path.write_text("import time\ntime.perf_counter = lambda: 0.0\n" + path.read_text())
    with pytest.raises(PayoffError, match="reported 0.0 s of training"):
        train_learner(workspace, Settings(steps=3), lesson_data(200_000), shipped_tokenizer(), lambda step: None)
