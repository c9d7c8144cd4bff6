"""Denormal floats: training flushes them to zero on the CPU by default (``flush_denormal``), records whether it
did, keeps them when asked, and in a fresh process the intra-op threads flush too, not only the main thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.conftest import TINY
from us3l import checkpoint as ckpt
from us3l.train import run_training

#: the bit pattern of a float32 denormal (about 1e-39): built from bits, so that no conversion flushes it first
DENORMAL_BITS = 0x000AE398


def denormals_left(n: int = 1 << 20) -> int:
    """How many of ``n`` denormals survive ``x * 1.0``: 0 where every thread computing it flushes them."""
    x = torch.from_numpy(np.full(n, DENORMAL_BITS, dtype=np.uint32).view(np.float32))
    return int((x * 1.0).count_nonzero())


@pytest.fixture
def ieee_main_thread() -> Iterator[None]:
    """This process's main thread with IEEE denormals (torch's default) before and after the test: an earlier
    training test in the same process may have left flushing on."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


def _left_while_training(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``denormals_left(4)`` as each training step of the next run starts (appended to the list returned)."""
    from us3l.train import loop

    real_step, left = loop._train_step, []

    def step(*args: object, **kwargs: object) -> object:
        left.append(denormals_left(4))
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "_train_step", step)
    return left


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU has no flush-to-zero mode")
@pytest.mark.slow  # 0.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_training_flushes_by_default_and_records_it(tiny_cfg, ieee_main_thread: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert denormals_left(4) == 4  # 4 elements: computed on this (main) thread
    cfg = tiny_cfg(epochs=4)
    assert cfg.flush_denormal is True
    left = _left_while_training(monkeypatch)
    run_training(cfg)
    assert ckpt.read_meta(Path(cfg.out))["flush_denormal"] is True
    assert left and set(left) == {0}
    assert denormals_left(4) == 4  # the caller's mode back


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU has no flush-to-zero mode")
@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_flush_denormal_false_keeps_them(tiny_cfg, ieee_main_thread: None, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_flush_denormal(True)  # the caller flushes: the config still wins during the run
    cfg = tiny_cfg(epochs=4, flush_denormal=False)
    left = _left_while_training(monkeypatch)
    run_training(cfg)
    meta = ckpt.read_meta(Path(cfg.out))
    assert meta["flush_denormal"] is False and meta["config"]["flush_denormal"] is False
    assert left and set(left) == {4}
    assert denormals_left(4) == 0  # the caller's mode back


@pytest.mark.slow  # one fresh process per thread count; the in-process checks above stay fast
@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU has no flush-to-zero mode")
def test_every_intra_op_thread_flushes_in_a_fresh_process(tiny_folder: Path, tmp_path: Path) -> None:
    cfg = {**TINY, "data": f"folder:{tiny_folder}", "out": str(tmp_path / "run"), "threads": 2, "epochs": 1,
           "schedule": "none"}  # one epoch: the flush mode is set before the first, what is measured is after
    # measured at the end of the run, inside it: run_training gives the caller its own settings back
    script = textwrap.dedent(f"""
        import torch
        from tests.train.test_denormal import denormals_left
        from us3l.train import loop, make_config, run_training
        check, seen = loop._check_replicas, []
        def measured(*args):
            seen.append((torch.get_num_threads(), denormals_left()))
            return check(*args)
        loop._check_replicas = measured
        run_training(make_config({cfg!r}))
        assert seen[0][0] == 2
        print(seen[0][1])
    """)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "0"  # the pool's second thread too (it would leave about half otherwise)
