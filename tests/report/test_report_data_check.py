"""Accuracies measured on data changed since training, or on a test split holding copies of training images
(accuracy.json's ``data_check``, red-team 2026-12-08): the page showed them like any other; now the accuracy section
notes each, ``--json`` carries the fields, and ``us3l report`` warns once per such file on stderr."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.data.test_overlap import split_folder
from tests.eval.conftest import make_run as make_eval_run
from us3l.cli import main
from us3l.eval.accuracy import save_accuracy
from us3l.report import render_report
from us3l.report.data_check import CHANGED_NOTE

OVERLAP_NOTE = ("1 of 3 test images is identical to a training image: the kNN bank, the linear probe and a network "
                "trained on this data have seen them, so the accuracies overstate")


def _accuracy_section(page: str) -> str:
    return html.unescape(re.search(r'<section id="accuracy">(.*?)</section>', page, re.S).group(1))


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_run_evaluated_on_a_test_split_with_a_copied_training_image_is_flagged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = split_folder(tmp_path / "imgs")
    shutil.copy(root / "train" / "b" / "2.png", root / "test" / "b" / "z.png")
    run = make_eval_run(tmp_path / "run", data=f"folder:{root}")
    assert main(["eval", "--ckpt", str(run), "--data", f"folder:{root}", "--widths", "1", "--batches", "1",
                 "--no-baselines", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(run), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{run / 'report.html'}\n"
    assert err == f"warning: {run / 'accuracy.json'}: {OVERLAP_NOTE}\n"
    assert f"⚠ accuracy.json: {OVERLAP_NOTE}" in _accuracy_section((run / "report.html").read_text())
    assert main(["report", str(run), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["data_checks"] == [
        {"path": str(run / "accuracy.json"), "changed_since_training": False, "train_test_overlaps": 1,
         "notes": [OVERLAP_NOTE]}]
    # --json warned only inside the document, while the page's mode warns on stderr: now both (stdout stays JSON)
    assert f"warning: {run / 'accuracy.json'}: {OVERLAP_NOTE}\n" in err
    assert main(["report", str(run), "--json", "--quiet"]) == 0  # a warning is not a note: --quiet keeps it
    out, err = capsys.readouterr()
    assert json.loads(out)["report"] == str(run / "report.html")
    assert err == f"warning: {run / 'accuracy.json'}: {OVERLAP_NOTE}\n"


@pytest.mark.slow  # 3.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_accuracies_measured_on_a_folder_changed_since_training_are_flagged(
        pipeline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = pipeline / "accuracy.json"
    doc = json.loads(path.read_text())
    doc["data_check"] = {"fingerprint": "v1:" + "0" * 64, "changed_since_training": False, "train_test_overlaps": 0}
    save_accuracy(doc, path)
    report = render_report(pipeline)
    assert report.data_warnings() == [] and "⚠" not in _accuracy_section(report.html)
    assert report.data_checks() == [{"path": str(path), "changed_since_training": False, "train_test_overlaps": 0,
                                     "notes": []}]
    doc["data_check"] = {**doc["data_check"], "changed_since_training": True, "train_test_overlaps": 2}
    save_accuracy(doc, path)
    two = ("2 of 400 test images are identical to training images: the kNN bank, the linear probe and a network "
           "trained on this data have seen them, so the accuracies overstate")
    report = render_report(pipeline)
    assert report.data_warnings() == [f"{path}: {CHANGED_NOTE}; {two}"]  # one line for the file
    section = _accuracy_section(report.html)
    assert f"⚠ accuracy.json: {CHANGED_NOTE}" in section and f"⚠ accuracy.json: {two}" in section
    assert report.to_dict()["data_checks"][0]["changed_since_training"] is True
    del doc["data_check"]  # written before the record: nothing to say, fields null
    save_accuracy(doc, path)
    assert render_report(pipeline).data_checks() == [
        {"path": str(path), "changed_since_training": None, "train_test_overlaps": None, "notes": []}]
