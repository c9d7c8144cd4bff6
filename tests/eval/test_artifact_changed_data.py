"""Accuracies measured on an image folder before and after it changed are not comparable (red-team 2026-12-07):
``us3l eval --artifact`` compared only the data path and the test count of the accuracy.json it added to, so an
image added to the training side stored the artifact's accuracy beside numbers of the old folder; and ``us3l eval``
carried an artifact's accuracy of the old folder into the file it rewrote for the new one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.data.test_overlap import split_folder
from tests.eval.conftest import make_run
from us3l.cli import main


def _eval(run: Path, root: Path, out: Path, *extra: str, quiet: bool = True) -> int:
    """``--knn-max-train 4``: a kNN bank of 4 of the 6 or 7 training images, so one image more leaves the protocol
    (its bank size) as it was, and the data path and test count too: only the fingerprint tells."""
    widths = [] if "--artifact" in extra else ["--widths", "1"]
    return main(["eval", "--ckpt", str(run), "--data", f"folder:{root}", *widths, "--batches", "1", "--no-baselines",
                 "--knn-max-train", "4", *(["--quiet"] if quiet else []), "--out", str(out), *extra])


def _run_and_artifact(tmp_path: Path) -> tuple[Path, Path, Path]:
    from us3l.deploy.export import export_width

    root = split_folder(tmp_path / "imgs")
    run = make_run(tmp_path / "run", data=f"folder:{root}")
    assert main(["calibrate", "--ckpt", str(run), "--data", f"folder:{root}", "--widths", "1", "--batches", "1",
                 "--quiet"]) == 0
    return root, run, export_width(run, 1.0, "onnx", tmp_path / "art", device_name="cpu").directory


def _add_training_image(root: Path) -> None:
    """One more training image: the same path and test count, another fingerprint."""
    shutil.copy(root / "train" / "a" / "0.png", root / "train" / "a" / "9.png")


@pytest.mark.slow  # 2.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_eval_artifact_refuses_to_add_to_a_file_measured_before_the_folder_changed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, run, artifact = _run_and_artifact(tmp_path)
    out = tmp_path / "out"
    assert _eval(run, root, out) == 0
    path = out / "accuracy.json"
    before = path.read_bytes()
    _add_training_image(root)
    capsys.readouterr()
    assert _eval(run, root, out, "--artifact", str(artifact)) == 1
    assert capsys.readouterr().err == (
        f"error: {path}: cannot add the artifact accuracies, it was measured on folder:{root} as it was before it "
        "changed (another data fingerprint): write them to another --out, or re-run us3l eval on the data as it is "
        "first\n")
    assert path.read_bytes() == before
    assert _eval(run, root, out) == 0  # re-measured on the folder as it is: the artifact's accuracy joins it
    assert _eval(run, root, out, "--artifact", str(artifact)) == 0
    assert json.loads(path.read_text())["widths"][0]["precisions"]["fp32"]["onnx"]["knn_top1"] is not None


@pytest.mark.slow  # 1.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_eval_drops_artifact_accuracies_measured_before_the_folder_changed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, run, artifact = _run_and_artifact(tmp_path)
    out = tmp_path / "out"
    assert _eval(run, root, out, "--artifact", str(artifact)) == 0
    assert json.loads((out / "accuracy.json").read_text())["widths"][0].get("precisions")
    _add_training_image(root)
    capsys.readouterr()
    assert _eval(run, root, out, quiet=False) == 0
    assert (f"note: dropped the artifact accuracies of the previous accuracy.json: it was measured on folder:{root} as "
            "it was before it changed (another data fingerprint)\n") in capsys.readouterr().err
    assert "precisions" not in json.loads((out / "accuracy.json").read_text())["widths"][0]


@pytest.mark.parametrize("edit", ["no data_check", "no fingerprint", "another fingerprint version"])
@pytest.mark.slow  # 3 cases, 1.7 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_eval_artifact_does_not_stamp_the_datas_fingerprint_on_a_file_that_records_none(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str) -> None:
    """An accuracy.json written before fingerprints were records none: ``us3l eval --artifact`` adding to it filled
    the missing ``data_check.fingerprint`` (and the other fields) with the data's now, tying the file's earlier
    numbers, measured on data nobody recorded, to this data. The file's record stays as it was, with a note."""
    root, run, artifact = _run_and_artifact(tmp_path)
    out = tmp_path / "out"
    assert _eval(run, root, out) == 0
    path = out / "accuracy.json"
    doc = json.loads(path.read_text())
    if edit == "no data_check":
        del doc["data_check"]
    elif edit == "no fingerprint":
        del doc["data_check"]["fingerprint"], doc["data_check"]["train_test_overlaps"]
    else:
        doc["data_check"]["fingerprint"] = "v0:" + "0" * 64
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert _eval(run, root, out, "--artifact", str(artifact), quiet=False) == 0
    after = json.loads(path.read_text())
    assert after.get("data_check") == doc.get("data_check")
    assert after["widths"][0]["precisions"]["fp32"]["onnx"]["knn_top1"] is not None
    from us3l.train.data_identity import FINGERPRINT_VERSION

    what = (f"records a data fingerprint of another version (v0, this us3l writes v{FINGERPRINT_VERSION})"
            if edit.startswith("another")
            else "records no data fingerprint (written before us3l recorded one)")
    assert (f"note: {path} {what}: its earlier numbers cannot be tied to folder:{root} as it is now; its data_check "
            "is left as it was\n") in capsys.readouterr().err


@pytest.mark.parametrize("edit", ["no data_check", "no fingerprint", "another fingerprint version", "as written"])
@pytest.mark.slow  # 4 cases, 1.7 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_eval_drops_artifact_accuracies_of_a_file_that_records_no_fingerprint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str) -> None:
    """Plain ``us3l eval`` rewriting an accuracy.json that records no data fingerprint (written before us3l recorded
    one) carried its artifact accuracies, measured on data nobody recorded, into the new file, which records the
    data's fingerprint now: they were vouched for as of this data. Dropped with a note, as for a file of a changed
    folder; a file that records the data's fingerprint keeps them."""
    root, run, artifact = _run_and_artifact(tmp_path)
    out = tmp_path / "out"
    assert _eval(run, root, out, "--artifact", str(artifact)) == 0
    path = out / "accuracy.json"
    doc = json.loads(path.read_text())
    assert doc["widths"][0]["precisions"]["fp32"]["onnx"]["knn_top1"] is not None
    if edit == "no data_check":
        del doc["data_check"]
    elif edit == "no fingerprint":
        del doc["data_check"]["fingerprint"], doc["data_check"]["train_test_overlaps"]
    elif edit == "another fingerprint version":
        doc["data_check"]["fingerprint"] = "v0:" + "0" * 64
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert _eval(run, root, out, quiet=False) == 0
    after = json.loads(path.read_text())
    assert isinstance(after["data_check"]["fingerprint"], str)  # the data's now
    err = capsys.readouterr().err
    if edit == "as written":
        assert after["widths"][0]["precisions"] == doc["widths"][0]["precisions"] and "dropped" not in err
        return
    from us3l.train.data_identity import FINGERPRINT_VERSION

    what = (f"records a data fingerprint of another version (v0, this us3l writes v{FINGERPRINT_VERSION})"
            if edit.startswith("another")
            else "records no data fingerprint (written before us3l recorded one)")
    assert (f"note: dropped the artifact accuracies of the previous accuracy.json: it {what}; they cannot be tied to "
            f"folder:{root} as it is now\n") in err
    assert "precisions" not in after["widths"][0]
