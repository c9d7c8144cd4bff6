"""Two identical tiny training runs write byte-identical ``checkpoint.safetensors`` files (same sha256), so
``weights_sha256`` and every derived file's ``checkpoint_sha256`` agree between them."""

from __future__ import annotations

import json
from pathlib import Path

from us3l.io import file_sha256
from us3l.safetensors_io import canonical_header
from us3l.train import make_config, run_training

from .conftest import TINY


def test_identical_runs_give_identical_checkpoint_bytes(tiny_folder: Path, tmp_path: Path) -> None:
    digests, weights = [], []
    for name in ("a", "b"):
        cfg = make_config({**TINY, "data": f"folder:{tiny_folder}", "out": str(tmp_path / name), "epochs": 1,
                           "schedule": "none", "knn_widths": (1.0,), "threads": 1})
        assert run_training(cfg).status == "completed"
        blob = (tmp_path / name / "checkpoint.safetensors").read_bytes()
        assert canonical_header(blob) == blob  # written with the canonical (sorted) header
        weights.append(blob)
        digests.append(json.loads((tmp_path / name / "checkpoint.json").read_text())["weights_sha256"])
        assert digests[-1] == file_sha256(tmp_path / name / "checkpoint.safetensors")
    assert weights[0] == weights[1]
    assert digests[0] == digests[1]
