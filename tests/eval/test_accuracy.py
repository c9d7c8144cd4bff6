"""accuracy.json: round trip through its loader; schema 1 still loads; wrong kind / version / values rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from us3l.errors import US3LError
from us3l.eval import accuracy_doc, best_top1, load_accuracy, save_accuracy


def _doc() -> dict:
    ci = [0.6, 0.8]
    return accuracy_doc(
        checkpoint={"path": "run/checkpoint.safetensors", "sha256": "ab" * 32, "method": "us3l", "epoch": 3},
        model="cifar_resnet18",
        model_kwargs={"base_channels": 8},
        data="builtin",
        num_classes=10,
        input_size=32,
        calibration={"batches": 20, "batch_size": 128, "momentum": None, "mode": "cumulative"},
        protocols={"knn": {"k": 5, "k_requested": 200, "temperature": 0.1, "max_train": None, "bank_size": 100,
                           "bank_seed": None}, "linear": None},
        num_test=50,
        baselines={"raw_pixels": {"knn_top1": 0.3, "knn_top1_ci": [0.2, 0.44], "k": 5}, "chance": 0.1,
                   "random_init_seed": 0},
        widths=[
            {"width": 1.0, "canonical_width": 1.0, "feature_dim": 64, "knn_top1": 0.9, "knn_top1_ci": [0.79, 0.96],
             "knn_top5": 1.0, "macs": 1000, "params": 10, "embedding_std": 0.5,
             "baseline_random_init": {"knn_top1": 0.2, "knn_top1_ci": [0.11, 0.33]}},
            {"width": 0.25, "canonical_width": 0.25, "feature_dim": 16, "knn_top1": 0.7, "knn_top1_ci": ci,
             "knn_top5": 0.95, "macs": 100, "params": 2, "embedding_std": 0.4, "baseline_random_init": None},
        ],
    )


def test_round_trip(tmp_path: Path) -> None:
    doc = _doc()
    assert [r["width"] for r in doc["widths"]] == [0.25, 1.0]  # sorted
    assert doc["widths"][0]["linear_top1"] is None  # absent protocol -> null
    assert doc["widths"][0]["linear_top1_ci"] is None
    assert doc["kind"] == "accuracy" and doc["schema_version"] == 2 and doc["tool"] == "us3l"
    path = save_accuracy(doc, tmp_path)
    assert path == tmp_path / "accuracy.json"
    back = load_accuracy(path)
    assert back == json.loads(json.dumps(doc))
    assert load_accuracy(tmp_path) == back
    assert best_top1(back["widths"][1]) == 0.9


def test_schema_1_file_still_loads(tmp_path: Path) -> None:
    """A file written before intervals and baselines existed loads, with the new fields as null."""
    doc = _doc()
    doc["schema_version"] = 1
    for key in ("num_test", "baselines"):
        del doc[key]
    for row in doc["widths"]:
        for key in ("knn_top1_ci", "linear_top1_ci", "baseline_random_init"):
            del row[key]
    (tmp_path / "accuracy.json").write_text(json.dumps(doc))
    back = load_accuracy(tmp_path)
    assert back["schema_version"] == 1 and back["num_test"] is None and back["baselines"] is None
    assert all(r["knn_top1_ci"] is None and r["baseline_random_init"] is None for r in back["widths"])
    assert best_top1(back["widths"][1]) == 0.9


def test_wrong_schema_version_rejected(tmp_path: Path) -> None:
    doc = _doc()
    doc["schema_version"] = 3
    (tmp_path / "accuracy.json").write_text(json.dumps(doc))
    with pytest.raises(US3LError, match="schema version 3"):
        load_accuracy(tmp_path / "accuracy.json")


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("knn_top1_ci", [0.8, 0.6]),
        ("knn_top1_ci", [0.5, 1.2]),
        ("knn_top1_ci", 0.5),
        ("baseline_random_init", {"knn_top1": 2.0, "knn_top1_ci": None}),
        ("baseline_random_init", {"knn_top1": 0.2, "knn_top1_ci": [0.3, float("nan")]}),
        # an interval that does not contain its accuracy (an edited file) loaded, and select's tie rule used it
        ("knn_top1_ci", [0.1, 0.2]),
        ("baseline_random_init", {"knn_top1": 0.2, "knn_top1_ci": [0.5, 0.6]}),
    ],
)
def test_bad_intervals_and_baselines_rejected(tmp_path: Path, where: str, value: object) -> None:
    doc = _doc()
    doc["widths"][0][where] = value
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(US3LError, match=where):
        load_accuracy(tmp_path / "a.json")


def test_wrong_kind_and_bad_values_rejected(tmp_path: Path) -> None:
    doc = _doc()
    doc["kind"] = "profile"
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(US3LError, match="not a us3l accuracy file"):
        load_accuracy(tmp_path / "a.json")
    doc = _doc()
    doc["widths"][0]["knn_top1"] = 93.0  # percent instead of a fraction
    (tmp_path / "b.json").write_text(json.dumps(doc))
    with pytest.raises(US3LError, match="fraction"):
        load_accuracy(tmp_path / "b.json")
    (tmp_path / "c.json").write_text("{broken")
    with pytest.raises(US3LError, match="not valid JSON"):
        load_accuracy(tmp_path / "c.json")


def test_a_width_recorded_twice_is_refused(tmp_path: Path) -> None:
    doc = _doc()
    doc["widths"].append({**doc["widths"][0], "knn_top1": 0.1})  # two answers for one width
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(US3LError, match=r"a.json: widths\[2\] repeats width 0.25 of widths\[0\]$"):
        load_accuracy(tmp_path / "a.json")
