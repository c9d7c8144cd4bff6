"""``us3l eval`` schema 2: intervals, capped k, stratified bank and the random-init / raw-pixel baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.eval.conftest import TINY, make_run
from us3l.cli import main
from us3l.data import load_dataset
from us3l.eval import EvalSettings, KnnSettings, evaluate_checkpoint, load_accuracy, open_checkpoint
from us3l.eval.calibrate import CalibrationSettings
from us3l.eval.hits import decode_hits
from us3l.models import create_model
from us3l.train.knn import effective_k, stratified_indices


def test_eval_reports_intervals_baselines_and_capped_k(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["eval", "--ckpt", str(run_dir), "--widths", "0.25", "--batches", "2", "--knn-k", "500",
                 "--knn-max-train", "200", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    assert "kNN@1" in printed.out and "random-init" in printed.out and "raw pixels" in printed.out
    assert "±" in printed.out and "wrote" in printed.err  # the table on stdout, notes on stderr

    doc = load_accuracy(out)
    train, test = load_dataset("builtin", "train"), load_dataset("builtin", "test")
    bank_y = train.labels[stratified_indices(train.labels, 200, seed=0)]
    assert doc["schema_version"] == 2 and doc["num_test"] == len(test)
    knn = doc["protocols"]["knn"]
    assert knn["k_requested"] == 500 and knn["k"] == effective_k(500, bank_y) < 500
    assert knn["bank_size"] == 200 and knn["bank_seed"] == 0
    (row,) = doc["widths"]
    lo, hi = row["knn_top1_ci"]
    assert lo <= row["knn_top1"] <= hi and row["linear_top1_ci"] is None
    hits = decode_hits(row["knn_top1_hits"], doc["num_test"], "hits")  # which test images kNN got right
    assert hits.shape == (len(test),) and hits.sum() == round(row["knn_top1"] * len(test))
    base = row["baseline_random_init"]
    assert 0 <= base["knn_top1"] <= 1 and base["knn_top1_ci"][0] <= base["knn_top1"] <= base["knn_top1_ci"][1]
    b = doc["baselines"]
    assert b["chance"] == pytest.approx(1 / doc["num_classes"]) and b["random_init_seed"] == 0
    assert 0 <= b["raw_pixels"]["knn_top1"] <= 1 and b["raw_pixels"]["k"] == knn["k"]

    code = main(["eval", "--ckpt", str(run_dir), "--widths", "0.25", "--no-baselines", "--out", str(out), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["baselines"] is None and doc["widths"][0]["baseline_random_init"] is None


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_random_init_baseline_differs_from_the_trained_network_in_weights_only(tmp_path: Path) -> None:
    """A 'trained' network that *is* the seed-0 initialisation scores exactly its random-init baseline."""
    torch.manual_seed(0)
    run = make_run(tmp_path / "run", create_model("cifar_resnet18", num_classes=0, **TINY).eval())
    settings = EvalSettings(knn=KnnSettings(k=20, max_train=300), calibration=CalibrationSettings(batches=2))
    doc = evaluate_checkpoint(open_checkpoint(run), None, [0.5], settings)
    row = doc["widths"][0]
    assert row["baseline_random_init"]["knn_top1"] == row["knn_top1"]
    assert row["baseline_random_init"]["knn_top1_ci"] == row["knn_top1_ci"]


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_random_init_baseline_follows_the_stored_statistics_settings(tmp_path: Path) -> None:
    """Every width came calibrated (`us3l calibrate --bn-momentum 0.1 --batches 2`), and the eval's own flags differ:
    the baseline was calibrated with the eval's flags (cumulative, 20 batches), not like the trained network, while
    the table's caption said "BN calibrated like the trained one"."""
    from us3l.eval import calibrate_checkpoint

    torch.manual_seed(0)
    run = make_run(tmp_path / "run", create_model("cifar_resnet18", num_classes=0, **TINY).eval())
    calibrate_checkpoint(open_checkpoint(run), None, [0.5], CalibrationSettings(batches=2, momentum=0.1))
    settings = EvalSettings(knn=KnnSettings(k=20, max_train=300))  # cumulative average, 20 batches
    doc = evaluate_checkpoint(open_checkpoint(run), None, [0.5], settings)
    assert doc["calibration"]["momentum"] == 0.1 and doc["calibration"]["batches"] == 2
    row = doc["widths"][0]
    assert row["baseline_random_init"]["knn_top1"] == row["knn_top1"]
