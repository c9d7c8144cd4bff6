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


def test_a_single_process_finalises_as_usual() -> None:
    env = {**os.environ, "WORLD_SIZE": "1"}
    proc = subprocess.run([sys.executable, "-c", _WORKER, "version"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "main returned" in proc.stderr and "finalised" in proc.stderr
