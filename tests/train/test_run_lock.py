"""Two `us3l train` processes into the same --out: the second fails at once, naming the folder and the holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.train.conftest import write_tiny_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.mark.slow
def test_second_training_into_the_same_folder_fails(tiny_folder: Path, tmp_path: Path) -> None:
    cfg = write_tiny_config(tmp_path / "tiny.yaml", tiny_folder, epochs=400)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "us3l", "train", "--config", str(cfg), "--out", str(run), "--quiet"]
    first = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not ((run / ".us3l.lock").is_file() and (run / ".us3l.lock").read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.time() < deadline, "first training did not start"
            time.sleep(0.05)
        second = subprocess.run([*cmd, "--overwrite"], env=ENV, capture_output=True, text=True, timeout=120)
        assert second.returncode == 1
        assert second.stderr == (
            f"error: run folder {run} is in use by another us3l process (pid {first.pid}); wait for it to finish "
            "or choose another folder\n"
        )
        assert first.poll() is None  # the first one runs on, its files untouched
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
