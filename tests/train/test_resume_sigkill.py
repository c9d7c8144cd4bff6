"""A real `us3l train` process killed with SIGKILL mid-run and resumed ends with bit-identical weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.train.conftest import write_tiny_config


def _cmd(cfg: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "us3l", "train", "--config", str(cfg), "--out", str(out), *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tiny_folder: Path, tmp_path: Path) -> None:
    cfg = write_tiny_config(tmp_path / "tiny.yaml", tiny_folder, epochs=8)
    subprocess.run(_cmd(cfg, tmp_path / "full"), check=True, env=ENV, capture_output=True)

    run = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(cfg, run), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        if proc.poll() is not None:
            pytest.fail("training finished before it could be killed")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = len(metrics.read_text().splitlines())
    assert done_before < 8

    subprocess.run(_cmd(cfg, run, "--resume"), check=True, env=ENV, capture_output=True)
    a = load_file(str(tmp_path / "full" / "checkpoint.safetensors"))
    b = load_file(str(run / "checkpoint.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(metrics.read_text().splitlines()) == 8
