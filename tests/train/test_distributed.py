"""The process group's life: a training run destroys the group it joined (a gloo group left to the interpreter's
finalisation can end the process in SIGABRT after the run's work is done) and leaves a caller's own group alone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch.distributed as dist

from us3l.errors import US3LError
from us3l.train import loop
from us3l.train.config import TrainConfig
from us3l.train.distributed import DistInfo, init_distributed, owned_process_group


def _join_alone(tmp_path: Path) -> None:
    """A real one-process gloo group (a file store: no port)."""
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)


@pytest.fixture
def joins_a_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``init_distributed`` as under torchrun: it joins a group (here of one process)."""

    def init(requested: str = "auto") -> DistInfo:
        if not dist.is_initialized():
            _join_alone(tmp_path)
        return init_distributed("cpu")

    monkeypatch.setattr(loop, "init_distributed", init)
    yield
    if dist.is_initialized():  # never leak a group into the next test
        dist.destroy_process_group()


def test_a_run_destroys_the_group_it_joined(joins_a_group: None, tiny_cfg: Callable[..., TrainConfig]) -> None:
    result = loop.run_training(tiny_cfg(epochs=1, schedule="none", knn_widths=()))
    assert result.status == "completed"
    assert not dist.is_initialized()


def test_a_failed_run_destroys_the_group_it_joined(joins_a_group: None, tiny_cfg: Callable[..., TrainConfig]) -> None:
    with pytest.raises(US3LError, match="multiple of 4"):  # refused after joining the group
        loop.run_training(tiny_cfg(epochs=1, knn_widths=()))
    assert not dist.is_initialized()


def test_a_callers_own_group_is_left_alone(tmp_path: Path) -> None:
    _join_alone(tmp_path)
    try:
        with owned_process_group():
            assert dist.is_initialized()
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()
    (tmp_path / "again").mkdir()
    with owned_process_group():
        _join_alone(tmp_path / "again")  # joined inside: destroyed on the way out
    assert not dist.is_initialized()


_WORKER = """
import atexit, sys
import torch.distributed  # a training process has it loaded
from us3l.cli import main
atexit.register(lambda: print("finalised", file=sys.stderr))
main(sys.argv[1:])
print("main returned", file=sys.stderr)
"""


@pytest.mark.parametrize(("world", "args", "rc"), [("2", ["version"], 0), ("2", ["models", "--nope"], 2)])
@pytest.mark.slow  # 2 cases, 2.6 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_process_of_a_distributed_job_ends_without_finalisation(world: str, args: list[str], rc: int) -> None:
    """gloo's threads free the last collectives' tensors after the collective returned; in the interpreter's
    finalisation that aborted a finished training process (SIGABRT, "terminate called without an active
    exception", once in CI). Such a process now exits at once with the command's status, its output flushed."""
    env = {**os.environ, "WORLD_SIZE": world, "RANK": "1"}
    proc = subprocess.run([sys.executable, "-c", _WORKER, *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == rc, proc.stderr[-2000:]
    assert "finalised" not in proc.stderr and "main returned" not in proc.stderr
    if rc == 0:
        assert proc.stdout.strip()  # the version, flushed before the exit (a pipe is block-buffered)
    else:
        assert proc.stderr.startswith("error: ")


@pytest.mark.slow  # 3.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_single_process_finalises_as_usual() -> None:
    env = {**os.environ, "WORLD_SIZE": "1"}
    proc = subprocess.run([sys.executable, "-c", _WORKER, "version"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "main returned" in proc.stderr and "finalised" in proc.stderr


@pytest.mark.parametrize(("raw", "seconds"), [(None, 600.0), ("", 600.0), ("2.5", 2.5), ("45", 45.0)])
def test_the_join_timeout_comes_from_the_environment(raw: str | None, seconds: float,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from us3l.train.distributed import JOIN_TIMEOUT_ENV, join_timeout

    if raw is None:
        monkeypatch.delenv(JOIN_TIMEOUT_ENV, raising=False)
    else:
        monkeypatch.setenv(JOIN_TIMEOUT_ENV, raw)
    assert join_timeout() == seconds


@pytest.mark.parametrize("raw", ["0", "-5", "ten", "nan", "inf"])
def test_a_bad_join_timeout_is_one_line(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from us3l.train.distributed import JOIN_TIMEOUT_ENV, join_timeout

    monkeypatch.setenv(JOIN_TIMEOUT_ENV, raw)
    with pytest.raises(US3LError, match=f"^environment variable US3L_DIST_JOIN_TIMEOUT='{raw}': the seconds"):
        join_timeout()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_a_process_whose_peers_never_join_fails_in_one_line(tiny_folder: Path, tmp_path: Path) -> None:
    """``WORLD_SIZE=2 RANK=0 us3l train`` without a second process waited torch's collective timeout (30 minutes)
    before a rendezvous traceback; now one line after US3L_DIST_JOIN_TIMEOUT seconds, nothing written."""
    out = tmp_path / "run"
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "US3L_DIST_JOIN_TIMEOUT": "2", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "us3l", "train", "--data", f"folder:{tiny_folder}", "--out", str(out), "--epochs",
           "4", "--batch-size", "2", "--set", "model_kwargs.base_channels=8", "--set", "image_size=16", "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training process rank 0 of 2: the job's processes did "
                                                   "not all join within 2 s ("), proc.stderr[-2000:]
    assert lines[0].endswith("or wait longer with US3L_DIST_JOIN_TIMEOUT=SECONDS")
    assert not (out / "metrics.jsonl").exists() and not (out / "config.yaml").exists()


@pytest.mark.slow
@pytest.mark.parametrize("debug", [False, True])
def test_a_rank_started_alone_prints_only_the_one_line(debug: bool, tiny_folder: Path, tmp_path: Path) -> None:
    """Last session's notes: rank 1 of 2 without a rank 0 printed torch's C++ store logs (each failed connection
    try, with a C++ backtrace) on stderr before the one error line; US3L_DEBUG=1 still shows them."""
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "US3L_DIST_JOIN_TIMEOUT": "2", "OMP_NUM_THREADS": "1",
           "US3L_DEBUG": "1" if debug else "0"}
    cmd = [sys.executable, "-m", "us3l", "train", "--data", f"folder:{tiny_folder}", "--out", str(tmp_path / "run"),
           "--epochs", "4", "--batch-size", "2", "--set", "model_kwargs.base_channels=8", "--set", "image_size=16",
           "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    if debug:
        assert "[c10d]" in proc.stderr and "Traceback" in proc.stderr
        return
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training process rank 1 of 2: the job's processes did "
                                                   "not all join within 2 s ("), proc.stderr[-2000:]


_LATE_COLLECTIVE = """
import sys, time
import torch
from us3l.train.distributed import init_distributed, shutdown_distributed
info = init_distributed("cpu")
if info.rank == 1:
    time.sleep(2 * float(sys.argv[1]))  # a slow epoch, or rank 0's kNN monitor: longer than the join timeout
t = torch.ones(1)
torch.distributed.all_reduce(t)
print(int(t.item()))
shutdown_distributed()
"""


@pytest.mark.slow
def test_the_join_timeout_does_not_bound_the_collectives_of_training(tmp_path: Path) -> None:
    """Only the joining waits US3L_DIST_JOIN_TIMEOUT: a collective that one rank reaches later than that (a slow
    epoch) still completes (torch's default timeout, 30 minutes on gloo)."""
    port, join = str(_free_port()), "5"
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "RANK": str(rank), "WORLD_SIZE": "2",
               "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1", "US3L_DIST_JOIN_TIMEOUT": join}
        procs.append(subprocess.Popen([sys.executable, "-c", _LATE_COLLECTIVE, join], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["2", "2"]
