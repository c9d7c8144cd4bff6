"""accuracy.json ``precisions``: artifact accuracies per width stored under precision/backend (issue 15), validated,
kept by ``us3l eval`` for the same checkpoint and protocol, dropped with a note otherwise."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from us3l.errors import US3LError
from us3l.eval.accuracy import (
    accuracy_doc,
    add_precision_entry,
    carry_precisions,
    load_accuracy,
    protocol_mismatch,
    save_accuracy,
)

KNN = {"k": 5, "k_requested": 20, "temperature": 0.1, "max_train": None, "bank_size": 100, "bank_seed": None}


def _doc(sha: str = "ab" * 32, knn: dict | None = None) -> dict:
    return accuracy_doc(
        checkpoint={"path": "run/checkpoint.safetensors", "sha256": sha, "method": "us3l", "epoch": 3},
        model="cifar_resnet18", model_kwargs={}, data="builtin", num_classes=10, input_size=16,
        calibration=None, protocols={"knn": dict(knn or KNN), "linear": None}, num_test=50, baselines=None,
        widths=[{"width": w, "canonical_width": w, "feature_dim": 16, "knn_top1": 0.7, "knn_top1_ci": [0.56, 0.81],
                 "knn_top5": 0.9, "embedding_std": 0.5} for w in (0.25, 1.0)],
    )


def _entry(top1: float = 0.68) -> dict:
    return {"knn_top1": top1, "knn_top1_ci": [0.54, 0.79], "knn_top5": 0.9, "linear_top1": None,
            "linear_top1_ci": None, "linear_top5": None, "fp32_knn_top1": 0.7, "knn_top1_drop": 0.7 - top1,
            "prediction_agreement": 0.95, "artifact": {"path": "a/cpu/x"}}


def test_entry_is_stored_under_precision_and_backend_and_round_trips(tmp_path: Path) -> None:
    doc = add_precision_entry(_doc(), 0.25, "int8", "onnx", _entry())
    add_precision_entry(doc, 0.25, "int8", "openvino", _entry(0.66))
    row = doc["widths"][0]
    assert row["width"] == 0.25 and row["knn_top1"] == 0.7  # the width's own fields stay FP32 PyTorch
    assert set(row["precisions"]["int8"]) == {"onnx", "openvino"}
    back = load_accuracy(save_accuracy(doc, tmp_path))
    assert back == json.loads(json.dumps(doc)) and back["schema_version"] == 2
    assert "precisions" not in back["widths"][1]  # rows without artifacts are unchanged


def test_a_width_missing_from_the_file_gets_the_fp32_row_measured_with_the_entry() -> None:
    fp32 = {"width": 0.5, "canonical_width": 0.5, "feature_dim": 16, "knn_top1": 0.71, "knn_top1_ci": [0.57, 0.82]}
    doc = add_precision_entry(_doc(), 0.5, "int8", "onnx", _entry(), fp32)
    assert [r["width"] for r in doc["widths"]] == [0.25, 0.5, 1.0]
    assert doc["widths"][1]["knn_top1"] == 0.71 and "onnx" in doc["widths"][1]["precisions"]["int8"]
    with pytest.raises(US3LError, match="width 0.75 has no row"):
        add_precision_entry(_doc(), 0.75, "int8", "onnx", _entry())


def test_an_artifact_width_written_with_more_decimals_is_stored_in_its_grid_row() -> None:
    """Red-team 2026-12-06 (rtL): `us3l eval --artifact` of an export at --width 0.78125 (25/32) added a second row
    0.78125 beside the accuracy file's grid row 0.7813 (rounded half to even it is 0.7812): one width, two rows."""
    doc = _doc()
    doc["widths"].insert(1, {**doc["widths"][0], "width": 0.7813, "canonical_width": 0.7813})
    fp32 = {"width": 0.78125, "canonical_width": 0.7813, "feature_dim": 16, "knn_top1": 0.7,
            "knn_top1_ci": [0.56, 0.81]}
    add_precision_entry(doc, 0.78125, "int8", "onnx", _entry(), fp32)
    assert [r["width"] for r in doc["widths"]] == [0.25, 0.7813, 1.0]
    assert "onnx" in doc["widths"][1]["precisions"]["int8"]


def test_bad_values_in_precisions_are_rejected(tmp_path: Path) -> None:
    doc = add_precision_entry(_doc(), 0.25, "int8", "onnx", _entry())
    doc["widths"][0]["precisions"]["int8"]["onnx"]["knn_top1"] = 1.5
    with pytest.raises(US3LError, match=r"widths\[0\]\.precisions\.int8\.onnx\.knn_top1 must be a fraction"):
        save_accuracy(doc, tmp_path)


def test_eval_rewrite_keeps_entries_for_the_same_checkpoint_and_protocol() -> None:
    old = add_precision_entry(_doc(), 0.25, "int8", "onnx", _entry())
    new = _doc()
    assert carry_precisions(old, new) == []
    assert new["widths"][0]["precisions"] == old["widths"][0]["precisions"]
    # a fresh result for the same precision/backend wins over the carried one
    fresh = add_precision_entry(_doc(), 0.25, "int8", "onnx", _entry(0.6))
    carry_precisions(old, fresh)
    assert fresh["widths"][0]["precisions"]["int8"]["onnx"]["knn_top1"] == 0.6


@pytest.mark.parametrize(("old_width", "new_width"), [(0.78125, 0.7813), (0.7813, 0.78125)])
def test_eval_rewrite_keeps_entries_of_a_width_written_with_more_decimals(old_width: float, new_width: float) -> None:
    """Red-team 2026-12-06 (rtO): carry_precisions matched widths by plain rounding (half to even: 0.78125 is 0.7812),
    so a re-run of `us3l eval` dropped the INT8 accuracy stored under 0.78125 ("not evaluated this time") when the new
    file's row was the grid width 0.7813, and the other way round; everywhere else they are one width."""

    def doc(w: float) -> dict:
        d = _doc()
        d["widths"].insert(1, {**d["widths"][0], "width": w, "canonical_width": 0.7813})
        return d

    old = doc(old_width)
    old["widths"][1]["precisions"] = {"int8": {"onnx": _entry()}}
    new = doc(new_width)
    assert carry_precisions(old, new) == []
    assert new["widths"][1]["width"] == new_width and new["widths"][1]["precisions"] == {"int8": {"onnx": _entry()}}


@pytest.mark.parametrize(
    ("new", "why"),
    [
        (_doc(sha="cd" * 32), "it is for another checkpoint"),
        (_doc(knn={**KNN, "k": 7}), "its kNN protocol differs (k 5 vs 7)"),
    ],
)
def test_entries_of_another_checkpoint_or_protocol_are_dropped_with_a_note(new: dict, why: str) -> None:
    old = add_precision_entry(_doc(), 0.25, "int8", "onnx", _entry())
    notes = carry_precisions(old, copy.deepcopy(new))
    assert notes == [f"dropped the artifact accuracies of the previous accuracy.json: {why}"]
    assert protocol_mismatch(old, new["checkpoint_sha256"], "builtin", 50, new["protocols"]) == why
