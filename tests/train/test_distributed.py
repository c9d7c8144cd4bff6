"""The process group's life: a training run destroys the group it joined (a gloo group left to the interpreter's
finalisation can end the process in SIGABRT after the run's work is done) and leaves a caller's own group alone."""

from __future__ import annotations

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
