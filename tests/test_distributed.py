"""Training across processes (issue 23): real gloo ranks on 127.0.0.1, data parallelism, ZeRO, and no orphans.

Starting two ranks costs a few seconds (each imports torch), so the parity checks share one launch: it runs the
gradient check and four 3-step trainings (plain data parallel, ZeRO 1, 2, 3) in one process group. The cleanup
tests each need a launch of their own and are marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import asdict

import numpy as np
import pytest

from workbench_engines.distributed import comm, ddp, launch, zero
from workbench_engines.errors import Cancelled, EngineError

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

pytestmark = [
    pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                       reason="torch.distributed with the gloo backend is not in this torch build"),
    pytest.mark.no_c_path,  # torch and processes only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged
]

from workbench_engines.models.data import TokenData  # noqa: E402 - after the skip: these import torch
from workbench_engines.models.gpt import GPT, GPTConfig  # noqa: E402
from workbench_engines.models.train import TrainConfig, train  # noqa: E402

MODEL = GPTConfig(vocab_size=64, context=32, d_model=32, n_layers=4, n_heads=2)
TRAIN = TrainConfig(steps=3, batch_size=2, seq_len=16, warmup=1, eval_every=100, checkpoint_every=100,
                    parts="hand", seed=3)
PROCS = 2


def tolerance(reference: np.ndarray) -> np.ndarray:
    """float32 agreement between sums taken in different orders: atol + rtol·|ref|."""
    return 1e-6 + 1e-5 * np.abs(reference)


@pytest.fixture(scope="module")
def inputs():
    """Fresh random windows and token streams (from the run's WB_SEED, so a failure replays)."""
    rng = np.random.default_rng([int(os.environ.get("WB_SEED", "0")), zlib.crc32(b"test_distributed")])
    windows = rng.integers(0, MODEL.vocab_size, size=(2 * PROCS, 17))
    data = TokenData(rng.integers(0, MODEL.vocab_size, 4000).astype(np.int32),
                     rng.integers(0, MODEL.vocab_size, 400).astype(np.int32))
    return windows, data


@pytest.fixture(scope="module")
def parity(inputs):
    """One 2-rank launch: the gradient check, then 3 steps of stage 0 (plain data parallel), ZeRO 1, 2 and 3."""
    windows, data = inputs
    jobs = [("workbench_engines.distributed.ddp:gradient_check_rank",
             {"model_config": MODEL.as_dict(), "windows": windows, "seed": 5})]
    for stage in range(4):
        jobs.append(("workbench_engines.distributed.ddp:train_rank",
                     {"model_config": MODEL.as_dict(), "train_config": asdict(TRAIN), "train_tokens": data.train,
                      "val_tokens": data.val, "stage": stage}))
    results = launch.launch("workbench_engines.distributed.rank:sequence", {"jobs": jobs}, procs=PROCS)
    return {"check": [r[0] for r in results], "stages": [[r[stage + 1] for r in results] for stage in range(4)]}


def test_two_ranks_gradients_equal_one_process_with_twice_the_batch_and_accumulation(parity, inputs):
    windows, _ = inputs
    one_batch = ddp.single_process_gradients(MODEL, windows, seed=5)
    accumulated = ddp.single_process_gradients(MODEL, windows, seed=5, micro_batches=PROCS)
    assert np.all(np.abs(accumulated - one_batch) <= tolerance(one_batch))
    for rank in parity["check"]:
        assert np.all(np.abs(rank["grads"] - one_batch) <= tolerance(one_batch))
        # torch's DistributedDataParallel (buckets, overlapped with backward) gives the same gradients.
        assert np.all(np.abs(rank["ddp_grads"] - one_batch) <= tolerance(one_batch))
    assert np.abs(one_batch).max() > 1e-3  # a real gradient, not zeros agreeing with zeros


def test_all_reduce_bytes_follow_the_ring_formula(parity):
    parameters = sum(p.numel() for p in GPT(MODEL).parameters())
    for rank in parity["check"]:
        transfer = rank["transfer"]
        assert transfer.buffer_bytes == 4 * (parameters + parameters % PROCS)
        assert transfer.formula_sent == comm.ring_allreduce_bytes(transfer.buffer_bytes, PROCS) == transfer.buffer_bytes
        if transfer.measured_sent is not None:  # the kernel's count: the payload plus gloo's headers
            assert transfer.formula_sent <= transfer.measured_sent <= transfer.formula_sent + 4096


def test_ranks_meet_and_listen_on_loopback_only(parity):
    for rank in parity["check"]:
        assert rank["master_addr"] == launch.MASTER_ADDR == "127.0.0.1"
        assert rank["listening"], "a rank of a gloo group listens for its peers"
        assert all(a.startswith(("127.0.0.1:", "::ffff:127.0.0.1:")) for a in rank["listening"]), rank["listening"]


def test_two_ranks_take_the_steps_of_one_process_with_accumulation_two(parity, inputs):
    _, data = inputs
    torch.manual_seed(TRAIN.seed)
    model = GPT(MODEL)
    initial = torch.cat([p.detach().reshape(-1) for p in ddp.Replicated.layout(model)]).numpy()
    train(model, data, ddp.equivalent_config(TRAIN, PROCS))
    single = torch.cat([p.detach().reshape(-1) for p in ddp.Replicated.layout(model)]).numpy()
    stage0 = parity["stages"][0][0]["final_parameters"]
    assert np.all(np.abs(stage0 - single) <= tolerance(single))
    assert np.abs(stage0 - initial).max() > 1e-3  # three steps moved the weights


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_zero_stages_end_with_the_unsharded_parameters(parity, stage):
    unsharded = parity["stages"][0][0]["final_parameters"]
    sharded = parity["stages"][stage][0]["final_parameters"]
    assert np.all(np.abs(sharded - unsharded) <= tolerance(unsharded))


def test_zero_memory_held_per_rank_follows_the_formula_for_two_ranks(parity):
    parameters = parity["stages"][0][0]["parameters"]
    padded = parameters + parameters % PROCS
    slack = 4 * PROCS * (MODEL.n_layers + 1)  # stage 3 pads each unit (the root, each block) to N shards
    for stage in range(4):
        expected = zero.zero_memory_by_kind(padded, PROCS, stage)
        for rank in parity["stages"][stage]:
            held = rank["held"]
            assert abs(held["params"] - expected["params"]) <= slack
            assert abs(held["grads"] - expected["grads"]) <= slack
            # AdamW's m and v, plus a 4-byte step counter per tensor it steps (stage 0: one per parameter tensor;
            # a shard: one per param group its slice falls in).
            assert abs(held["optimizer"] - expected["optimizer"]) <= 4 * 64
    model = GPT(MODEL)
    root = model.embed.weight.numel() + model.norm.weight.numel()
    block = sum(p.numel() for p in model.blocks[0].parameters())
    peaks = [[rank["peak"] for rank in parity["stages"][stage]] for stage in range(4)]
    for rank in range(PROCS):
        assert peaks[1][rank]["optimizer"] < peaks[0][rank]["optimizer"] / 1.9
        assert peaks[2][rank]["grads"] < peaks[1][rank]["grads"]
        assert peaks[3][rank]["grads"] < peaks[1][rank]["grads"]
        # Stage 3 gathers layer by layer: at its peak a rank holds its shards, the root (the tied embedding, the
        # final norm) and one block whole, never the whole model.
        assert peaks[3][rank]["params"] <= 4 * (padded // PROCS + root + block) + slack
        assert peaks[3][rank]["params"] < peaks[2][rank]["params"]


def test_paper_figure_1_for_7_5_billion_parameters_on_64_devices():
    gigabytes = [zero.zero_memory_per_device(7.5e9, 64, stage) / 1e9 for stage in range(4)]
    assert [round(g, 1) for g in gigabytes] == [120.0, 31.4, 16.6, 1.9]
    assert zero.zero_memory_per_device(7.5e9, 1, 3) == zero.zero_memory_per_device(7.5e9, 1, 0)
    with pytest.raises(EngineError):
        zero.zero_memory_per_device(1e9, 8, 4)


def test_launch_refuses_no_ranks():
    with pytest.raises(EngineError):
        launch.launch("workbench_engines.distributed.drills:spin", procs=0)


# --- no orphans ---------------------------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (read from /proc; os.kill(pid, 0) where /proc is absent)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def all_gone(pids: list[int], within_s: float = 15.0) -> bool:
    """Whether every pid has ended, polling up to ``within_s`` (a bound on waiting, not a timing check)."""
    deadline = time.monotonic() + within_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(pid) for pid in pids)


@pytest.mark.slow
def test_cancel_terminates_every_rank():
    cancel = threading.Event()
    pids: list[int] = []

    def on_report(rank, payload):
        if payload["round"] >= 3:
            cancel.set()

    with pytest.raises(Cancelled):
        launch.launch("workbench_engines.distributed.drills:spin", procs=PROCS, on_start=pids.extend,
                      on_report=on_report, cancel=cancel)
    assert len(pids) == PROCS and all_gone(pids)


@pytest.mark.slow
def test_a_rank_raising_stops_the_others_and_brings_its_traceback():
    pids: list[int] = []
    with pytest.raises(launch.RankFailed) as failed:
        launch.launch("workbench_engines.distributed.drills:fail_on_rank", {"message": "boom at rank 1"},
                      procs=PROCS, on_start=pids.extend)
    assert failed.value.rank == 1
    assert "ValueError: boom at rank 1" in failed.value.traceback and "fail_on_rank" in str(failed.value)
    assert all_gone(pids)


@pytest.mark.slow
def test_stop_request_ends_every_rank_at_the_same_round():
    stop = threading.Event()
    results = launch.launch("workbench_engines.distributed.drills:spin", procs=PROCS,
                            on_report=lambda rank, payload: stop.set() if payload["round"] >= 2 else None, stop=stop)
    assert len(set(results)) == 1 and results[0] >= 2


PARENT = """
import json, signal, sys
from workbench_engines.distributed.launch import launch
signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell may start a background job with SIGINT ignored
seen = set()
def on_report(rank, payload):
    seen.add(rank)
    if len(seen) == {procs} and payload["round"] == 2:
        print("running", flush=True)
launch("workbench_engines.distributed.drills:spin", procs={procs},
       on_start=lambda pids: print(json.dumps(pids), flush=True), on_report=on_report)
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_no_rank_outlives_a_parent_interrupted_or_killed(signum):
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(procs=PROCS)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        pids = json.loads(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "running"  # both ranks are inside their all-reduce loop
        assert all(alive(pid) for pid in pids)
        parent.send_signal(signum)
        parent.wait(30)
        assert parent.returncode != 0
        assert all_gone(pids)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.slow
def test_a_stopped_run_resumes_into_the_unbroken_runs_steps(parity, inputs, tmp_path):
    _, data = inputs
    checkpoint = tmp_path / "run.ckpt"
    stop = threading.Event()
    first = ddp.data_parallel_run(MODEL, TRAIN, data, procs=PROCS, checkpoint=checkpoint, stop=stop,
                                  on_step=lambda step: stop.set())
    assert first.stopped and len(first.steps) < TRAIN.steps
    rest = ddp.data_parallel_run(MODEL, TRAIN, data, procs=PROCS, checkpoint=checkpoint, resume=True)
    assert rest.resumed_from == len(first.steps) and not rest.stopped
    unbroken = parity["stages"][0][0]["final_parameters"]
    assert np.all(np.abs(rest.final_parameters - unbroken) <= tolerance(unbroken))
    with pytest.raises(EngineError, match="accumulation"):  # refused, before any rank starts, on another N
        ddp.data_parallel_run(MODEL, TRAIN, data, procs=1, checkpoint=checkpoint, resume=True)
