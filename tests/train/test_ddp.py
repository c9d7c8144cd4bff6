"""2-process CPU DDP (gloo) through real torchrun: same widths on every rank, rank-0-only I/O."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from tests.train.conftest import TINY


@pytest.mark.slow
def test_torchrun_two_processes(tiny_folder: Path, tmp_path: Path) -> None:
    cfg = {
        **TINY,
        "knn_widths": list(TINY["knn_widths"]),
        "data": f"folder:{tiny_folder}",
        "epochs": 4,
        "batch_size": 2,
    }
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "us3l",
        "train",
        "--config",
        str(p),
        "--out",
        str(out),
        "--json",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)  # exactly one JSON document: only rank 0 prints
    assert doc["epochs"] == 4 and set(doc["knn_top1"]) == {"1", "0.25"}
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]  # written once, by rank 0
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["distributed"]["world_size"] == 2
    assert any(k.startswith("backbone.") for k in load_file(str(out / "checkpoint.safetensors")))
