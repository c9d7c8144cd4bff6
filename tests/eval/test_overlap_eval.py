"""``us3l eval`` on an image folder whose test split holds copies of training images: one warning line, and
accuracy.json's ``data_check.train_test_overlaps`` counts them (0 without any)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.data.test_overlap import split_folder
from tests.eval.conftest import make_run
from us3l.cli import main
from us3l.errors import US3LError
from us3l.eval.accuracy import validate_accuracy


def _eval(run: Path, root: Path, out: Path, *extra: str) -> int:
    widths = [] if "--artifact" in extra else ["--widths", "1"]
    return main(["eval", "--ckpt", str(run), "--data", f"folder:{root}", *widths, "--batches", "1", "--no-baselines",
                 "--quiet", "--out", str(out), *extra])


def test_eval_warns_of_test_images_identical_to_training_images_and_records_their_count(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = split_folder(tmp_path / "imgs")
    run = make_run(tmp_path / "run", data=f"folder:{root}")
    out = tmp_path / "out"
    assert _eval(run, root, out) == 0
    assert "warning" not in capsys.readouterr().err
    assert json.loads((out / "accuracy.json").read_text())["data_check"]["train_test_overlaps"] == 0
    shutil.copy(root / "train" / "b" / "2.png", root / "test" / "b" / "z.png")
    os.link(root / "train" / "a" / "1.png", root / "test" / "a" / "x.png")
    assert _eval(run, root, out) == 0
    assert capsys.readouterr().err == (
        f"warning: 2 test images of {root} are identical to training images (first: test/a/x.png = train/a/1.png); "
        "their accuracy counts images that the kNN bank, the linear probe and a network trained on this data have "
        "seen\n")
    doc = json.loads((out / "accuracy.json").read_text())
    assert doc["num_test"] == 4 and doc["data_check"]["train_test_overlaps"] == 2


@pytest.mark.parametrize("bad", [-1, True, 1.0, 5])
def test_a_train_test_overlaps_that_is_no_count_of_test_images_is_refused(bad: object) -> None:
    doc = {"kind": "accuracy", "schema_version": 2, "checkpoint_sha256": None, "model": "m", "data": "d",
           "protocols": {}, "num_test": 4, "widths": [{"width": 1.0}],
           "data_check": {"fingerprint": None, "changed_since_training": False, "train_test_overlaps": bad}}
    with pytest.raises(US3LError, match="data_check.train_test_overlaps must be a count of test images"):
        validate_accuracy(doc, "accuracy.json")
    validate_accuracy({**doc, "data_check": {**doc["data_check"], "train_test_overlaps": 4}}, "accuracy.json")


@pytest.mark.slow  # 1.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_eval_artifact_records_the_count_in_the_accuracy_file_it_writes_or_adds_to(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``us3l eval --artifact`` reads the same splits: the same warning, and the count in the accuracy.json it
    creates; one written before the count existed gains it, and an eval's record is kept."""
    from us3l.deploy.export import export_width

    root = split_folder(tmp_path / "imgs")
    shutil.copy(root / "train" / "b" / "2.png", root / "test" / "b" / "z.png")
    run = make_run(tmp_path / "run", data=f"folder:{root}")
    assert main(["calibrate", "--ckpt", str(run), "--data", f"folder:{root}", "--widths", "1", "--batches", "1",
                 "--quiet"]) == 0
    artifact = export_width(run, 1.0, "onnx", tmp_path / "art", device_name="cpu").directory
    out = tmp_path / "out"
    capsys.readouterr()
    assert _eval(run, root, out, "--artifact", str(artifact)) == 0
    assert capsys.readouterr().err.startswith(f"warning: 1 test image of {root} is identical to a training image "
                                              "(first: test/b/z.png = train/b/2.png);")
    path = out / "accuracy.json"
    assert json.loads(path.read_text())["data_check"]["train_test_overlaps"] == 1
    doc = json.loads(path.read_text())
    fingerprint = doc["data_check"]["fingerprint"]
    del doc["data_check"]["train_test_overlaps"]  # as written before the count was recorded
    doc["data_check"]["changed_since_training"] = None  # a value of the file's own (this one measures False)
    path.write_text(json.dumps(doc))
    assert _eval(run, root, out, "--artifact", str(artifact)) == 0
    check = json.loads(path.read_text())["data_check"]
    assert check == {"fingerprint": fingerprint, "changed_since_training": None, "train_test_overlaps": 1}
