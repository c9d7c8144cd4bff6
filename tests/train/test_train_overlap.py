"""``us3l train`` on an image folder whose test split holds copies of training images (red-team 2026-12-08): the kNN
monitor scored them without a word, as ``us3l eval`` no longer does; now one warning line at the start of training,
and checkpoint.json's ``data.train_test_overlaps`` counts them (0 without any)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.train.conftest import write_tiny_config, write_tiny_folder
from us3l.cli import main


def _train(tmp_path: Path, folder: Path, name: str) -> Path:
    config = write_tiny_config(tmp_path / f"{name}.yaml", folder, epochs=1, schedule="none", knn_widths=[1.0])
    run = tmp_path / name
    assert main(["train", "--config", str(config), "--out", str(run)]) == 0
    return run


def test_training_warns_once_of_test_images_identical_to_training_images_and_records_their_count(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_tiny_folder(tmp_path / "imgs")
    run = _train(tmp_path, folder, "clean")
    assert "warning" not in capsys.readouterr().err
    assert json.loads((run / "checkpoint.json").read_text())["data"]["train_test_overlaps"] == 0
    shutil.copy(folder / "train" / "b" / "3.png", folder / "test" / "b" / "z.png")
    run = _train(tmp_path, folder, "copied")
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert (f"warning: 1 test image of {folder} is identical to a training image (first: test/b/z.png = "
            "train/b/3.png); their accuracy counts images that the kNN bank, the linear probe and a network trained "
            "on this data have seen\n") in err
    data = json.loads((run / "checkpoint.json").read_text())["data"]
    assert data["test_size"] == 5 and data["train_test_overlaps"] == 1
