"""``us3l select`` over (width, precision) pairs (issue 15): INT8 profiles ranked with the INT8 artifacts' own
accuracy, several precisions of one device/backend pooled into one answer with the reason, and ``us3l export
--selection`` exporting the chosen precision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from us3l.cli import main
from us3l.deploy.select import Budget, select
from us3l.errors import US3LError
from us3l.io import header

from .conftest import latency

N = 1000  # test images behind every accuracy


def _ci(v: float) -> list[float]:
    from us3l.eval.intervals import wilson_interval

    return wilson_interval(v, N)


def _accuracy(tmp_path: Path, fp32: dict[float, float], int8: dict[float, float]) -> Path:
    """An accuracy.json (schema 2): FP32 rows, and int8/onnx artifact entries where ``int8`` has the width."""
    doc = header("accuracy", 2)
    rows = []
    for w, acc in sorted(fp32.items()):
        row = {"width": w, "knn_top1": acc, "knn_top1_ci": _ci(acc), "linear_top1": None, "knn_top5": None,
               "linear_top5": None, "macs": None, "params": None}
        if w in int8:
            row["precisions"] = {"int8": {"onnx": {"knn_top1": int8[w], "knn_top1_ci": _ci(int8[w]),
                                                   "fp32_knn_top1": acc, "knn_top1_drop": acc - int8[w]}}}
        rows.append(row)
    doc.update(checkpoint_sha256=None, model="tiny", data="builtin", num_test=N, protocols={}, widths=rows)
    path = tmp_path / "accuracy.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def profiles(write_profile) -> tuple[Path, Path]:
    """FP32 and INT8 onnx profiles of the same device: INT8 about 0.6x the FP32 latency at every width."""
    fp32 = write_profile([{"width": w, "latency": latency(ms, ms, ms)} for w, ms in ((0.25, 2.0), (0.5, 6.0),
                                                                                     (0.75, 12.0), (1.0, 20.0))])
    int8 = write_profile([{"width": w, "latency": latency(ms, ms, ms)} for w, ms in ((0.25, 1.2), (0.5, 3.6),
                                                                                     (0.75, 7.0), (1.0, 12.0))],
                         precision="int8")
    return fp32, int8


def test_int8_at_a_wider_width_beats_fp32_under_the_budget(profiles, tmp_path: Path) -> None:
    acc = _accuracy(tmp_path, {0.25: 0.30, 0.5: 0.36, 0.75: 0.45, 1.0: 0.47}, {0.25: 0.29, 0.5: 0.355, 0.75: 0.445})
    sel = select(list(profiles), Budget(latency_ms=10.0), acc)
    (d,) = sel.devices  # one pooled answer for cpu/onnx
    assert (d.precision, d.chosen.width, d.chosen.precision) == ("int8", 0.75, "int8")
    assert d.by_precision["fp32"]["width"] == 0.5 and d.by_precision["int8"]["width"] == 0.75
    assert d.reason == (
        "int8 at width 0.75 (44.5 % ±3.1, 7 ms) beats fp32 at width 0.5 (36.0 % ±3.0, 6 ms) under latency_ms <= 10: "
        "more accurate"
    )
    assert "int8: width 1 has no int8/onnx knn_top1 (us3l eval --artifact) accuracy: excluded" in d.notes
    doc = sel.to_document()["devices"][0]
    assert doc["precision"] == "int8" and doc["chosen"]["precision"] == "int8" and doc["reason"] == d.reason
    assert {(c["width"], c["precision"]) for c in doc["candidates"]} >= {(0.5, "fp32"), (0.5, "int8")}


def test_a_pooled_answer_where_nothing_fits_reads_back(profiles, tmp_path: Path) -> None:
    """Red-team 2026-12-05: ``select`` wrote precision "mixed" for pooled precisions where no pair fits, and
    ``read_selection`` (``us3l report``, ``export --selection``) refused the file it had just written."""
    from us3l.deploy.select import read_selection, write_selection

    acc = _accuracy(tmp_path, {0.25: 0.30, 0.5: 0.36}, {0.25: 0.29, 0.5: 0.355})
    sel = select(list(profiles), Budget(latency_ms=0.01), acc)
    assert sel.devices[0].chosen is None
    doc = read_selection(write_selection(tmp_path / "selection.json", sel))
    assert doc["devices"][0]["precision"] == "mixed" and set(doc["devices"][0]["by_precision"]) == {"fp32", "int8"}
    doc["devices"][0]["chosen"] = doc["devices"][0]["candidates"][0]  # "mixed" with a choice: still refused
    (tmp_path / "edited.json").write_text(json.dumps(doc))
    with pytest.raises(US3LError, match=r"devices\[0\]\.precision must be one of fp32, fp16, int8, got 'mixed'"):
        read_selection(tmp_path / "edited.json")


def test_tied_accuracy_goes_to_the_faster_pair(profiles, tmp_path: Path) -> None:
    # INT8 at 0.5 is inside FP32 0.5's interval and faster: the tie rule picks it
    acc = _accuracy(tmp_path, {0.25: 0.20, 0.5: 0.40, 0.75: 0.60, 1.0: 0.70}, {0.5: 0.39})
    (d,) = select(list(profiles), Budget(latency_ms=6.5), acc).devices
    assert (d.chosen.width, d.chosen.precision, d.decided_by) == (0.5, "int8", "tie->latency")
    assert d.reason.endswith("under latency_ms <= 6.5: tied accuracy, faster")


def test_the_reason_compares_the_two_pairs_it_names(write_profile, tmp_path: Path) -> None:
    """Red-team 2026-12-06: the reason's last words came from the pooled decision, not from the two pairs it names:
    "tied accuracy, faster" of an INT8 pair that was neither (it won a tie with another INT8 width, and was more
    accurate and slower than the FP32 pair named), and "more accurate" of a pair with the same accuracy."""
    fp32 = write_profile([{"width": w, "latency": latency(ms, ms, ms)} for w, ms in ((0.25, 2.0), (0.5, 6.0),
                                                                                     (0.75, 12.0), (1.0, 20.0))])
    int8 = write_profile([{"width": w, "latency": latency(ms, ms, ms)} for w, ms in ((0.25, 1.2), (0.5, 3.6),
                                                                                     (0.75, 7.0), (1.0, 9.0))],
                         precision="int8")
    acc = _accuracy(tmp_path, {0.25: 0.30, 0.5: 0.36, 0.75: 0.45, 1.0: 0.47}, {0.5: 0.30, 0.75: 0.445, 1.0: 0.45})
    (d,) = select([fp32, int8], Budget(latency_ms=10.0), acc).devices
    assert (d.chosen.width, d.chosen.precision, d.decided_by, d.tied_widths) == (0.75, "int8", "tie->latency",
                                                                                [0.75, 1.0])
    assert d.reason == ("int8 at width 0.75 (44.5 % ±3.1, 7 ms) beats fp32 at width 0.5 (36.0 % ±3.0, 6 ms) under "
                        "latency_ms <= 10: more accurate")
    same = _accuracy(tmp_path, {0.25: 0.30, 0.5: 0.36}, {0.25: 0.30, 0.5: 0.36})
    for strict in (True, False):
        (d,) = select([fp32, int8], Budget(latency_ms=10.0), same, strict_accuracy=strict).devices
        assert (d.chosen.width, d.chosen.precision) == (0.5, "int8")
        assert d.reason.endswith("beats fp32 at width 0.5 (36.0 % ±3.0, 6 ms) under latency_ms <= 10: same accuracy, "
                                 "faster")


def test_precisions_profiled_on_two_machines_are_pooled_with_a_warning(profiles, tmp_path: Path, capsys) -> None:
    """Red-team 2026-12-06: an FP32 profile of 'cpu' from one machine and an INT8 profile of 'cpu' from another were
    pooled into one answer without a word, their latencies compared as if measured on one device."""
    fp32, int8 = profiles
    acc = _accuracy(tmp_path, {0.25: 0.30, 0.5: 0.36, 0.75: 0.45, 1.0: 0.47}, {0.25: 0.29, 0.5: 0.355, 0.75: 0.445})
    for path, host in ((fp32, "box-a"), (int8, "box-a")):
        path.write_text(json.dumps({**json.loads(path.read_text()), "fingerprint": {"hostname": host}}))
    (d,) = select([fp32, int8], Budget(latency_ms=10.0), acc).devices
    assert not any("machines" in w for w in d.warnings)
    int8.write_text(json.dumps({**json.loads(int8.read_text()), "fingerprint": {"hostname": "box-b"}}))
    (d,) = select([fp32, int8], Budget(latency_ms=10.0), acc).devices
    assert d.chosen.precision == "int8" and d.warnings[0] == (
        "cpu/onnx: the pooled precisions were profiled on different machines (fp32 on host box-a, int8 on host "
        "box-b): their latencies do not compare; profile every precision on the device itself")
    # on stderr as written: a host name from the file is no rich markup ("[/]" was a MarkupError)
    int8.write_text(json.dumps({**json.loads(int8.read_text()), "fingerprint": {"hostname": "[/]b"}}))
    args = ["select", "--profile", str(fp32), "--profile", str(int8), "--accuracy", str(acc), "--latency-ms", "10",
            "--out", str(tmp_path / "s")]
    assert main(args) == 0
    assert "(fp32 on host box-a, int8 on host [/]b)" in capsys.readouterr().err


def test_an_int8_profile_needs_the_artifacts_accuracy(write_profile, tmp_path: Path) -> None:
    int8 = write_profile([{"width": 0.5, "latency": latency(1.0, 1.0, 1.0)}], precision="int8")
    acc = _accuracy(tmp_path, {0.5: 0.4}, {})
    with pytest.raises(US3LError, match="no width is usable.*int8/onnx knn_top1.*measure the INT8 artifacts' "
                                        "accuracy with us3l eval --artifact"):
        select([int8], Budget(latency_ms=5.0), acc)


def test_without_an_accuracy_file_precisions_are_not_pooled(profiles) -> None:
    sel = select(list(profiles), Budget(latency_ms=10.0))
    assert [d.precision for d in sel.devices] == ["fp32", "int8"] and all(d.reason is None for d in sel.devices)
    assert "by_precision" not in sel.to_document()["devices"][0]


def test_export_takes_the_precision_the_selection_chose(profiles, tmp_path: Path) -> None:
    from us3l.commands.export import _chosen_precisions
    from us3l.deploy.select import read_selection, write_selection

    acc = _accuracy(tmp_path, {0.25: 0.30, 0.5: 0.36, 0.75: 0.45, 1.0: 0.47}, {0.25: 0.29, 0.5: 0.355, 0.75: 0.445})
    path = write_selection(tmp_path / "selection.json", select(list(profiles), Budget(latency_ms=10.0), acc))
    assert _chosen_precisions(read_selection(path), "onnx") == {(0.75, "cpu"): "int8"}


def test_a_pooled_tie_names_each_width_and_precision(write_profile, tmp_path: Path, capsys) -> None:
    """Red-team 2026-12-06: a pooled tie between fp32 at 0.5 and int8 at 0.5 read "tied: 0.5" (tied_widths is a
    set of widths). Pooled answers now record and print the (width, precision) pairs; tied_widths stays as it was."""
    from us3l.deploy.select import read_selection
    from us3l.report.html import _decision

    fp32 = write_profile([{"width": 0.5, "latency": latency(6.0, 6.0, 6.0)}])
    int8 = write_profile([{"width": 0.5, "latency": latency(3.6, 3.6, 3.6)}], precision="int8")
    acc = _accuracy(tmp_path, {0.5: 0.36}, {0.5: 0.35})
    (d,) = select([fp32, int8], Budget(latency_ms=10.0), acc).devices
    assert (d.chosen.width, d.chosen.precision, d.decided_by) == (0.5, "int8", "tie->latency")
    assert d.tied_widths == [0.5] and d.tied_pairs == [(0.5, "fp32"), (0.5, "int8")]
    out = tmp_path / "sel"
    args = ["select", "--profile", str(fp32), "--profile", str(int8), "--accuracy", str(acc), "--latency-ms", "10",
            "--wide", "--out", str(out)]
    assert main(args) == 0
    assert "(tied: 0.5 fp32, 0.5 int8)" in capsys.readouterr().out
    dev = read_selection(out / "selection.json")["devices"][0]
    assert dev["tied_widths"] == [0.5]
    assert dev["tied_pairs"] == [{"width": 0.5, "precision": "fp32"}, {"width": 0.5, "precision": "int8"}]
    assert "with w=0.5 fp32;" in _decision(dev, "knn_top1")  # the report names the other pair, not "0.5"
    (one,) = select([fp32], Budget(latency_ms=10.0), acc).devices  # one precision: no pairs
    assert one.tied_pairs is None and "tied_pairs" not in one.to_dict()
    doc = json.loads((out / "selection.json").read_text())
    doc["devices"][0]["tied_pairs"] = [{"width": 0.5, "precision": "fp64"}]
    (out / "selection.json").write_text(json.dumps(doc))
    with pytest.raises(US3LError, match=r"devices\[0\].tied_pairs\[0\].precision must be one of"):
        read_selection(out / "selection.json")


def test_int8_accuracy_of_an_artifact_quantized_with_another_calibration_set_is_refused(
    write_profile, tmp_path: Path, capsys
) -> None:
    """Red-team 2026-12-08: an INT8 profile (``--calib-images 300``) was ranked with the accuracy of an INT8 artifact
    exported with another calibration set (``--calib-images 50``) without a word, though INT8 accuracy depends on
    the calibration: the selection's accuracy was another network's, and export --selection shipped the profiled
    one."""
    int8 = write_profile([{"width": w, "latency": latency(ms, ms, ms)} for w, ms in ((0.25, 1.2), (0.5, 3.6))],
                         precision="int8")
    prof = json.loads(int8.read_text())
    prof["extra"] = {"int8_calibration": {"size": 300, "sha256": "aa" * 32}}
    int8.write_text(json.dumps(prof))
    acc = _accuracy(tmp_path, {0.25: 0.30, 0.5: 0.36, 1.0: 0.47}, {0.25: 0.29, 0.5: 0.355, 1.0: 0.46})
    doc = json.loads(acc.read_text())

    def scored(width: float, sha: str) -> None:
        row = next(r for r in doc["widths"] if r["width"] == width)
        row["precisions"]["int8"]["onnx"]["artifact"] = {"calibration_sha256": sha}
        acc.write_text(json.dumps(doc))

    scored(0.25, "aa" * 32)
    scored(1.0, "bb" * 32)  # a width the profile does not time: not compared
    assert select([int8], Budget(latency_ms=5.0), acc).devices[0].chosen.width == 0.5
    scored(0.5, "bb" * 32)
    code = main(["select", "--profile", str(int8), "--accuracy", str(acc), "--latency-ms", "5", "--out",
                 str(tmp_path / "out")])
    assert code == 1 and not (tmp_path / "out").exists()
    assert capsys.readouterr().err == (
        f"error: {int8} times INT8 graphs quantized with calibration set {'a' * 12}…, but the int8/onnx accuracy of "
        f"width 0.5 in {acc} is of an artifact quantized with {'b' * 12}…: quantize both with the same "
        "--calib-images and --calib-data (re-run us3l profile, or us3l export and us3l eval --artifact)\n"
    )
