"""The training monitor takes kNN like ``us3l eval``: capped k, seeded stratified bank, recorded per epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from us3l.train import run_training


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_monitor_uses_a_stratified_bank_and_a_capped_k(tiny_cfg) -> None:
    # 2 classes x 4 train images, sorted by class: the first 4 rows would be class "a" only
    cfg = tiny_cfg(epochs=4, knn_max_train=4, knn_k=3)
    res = run_training(cfg)
    assert res.status == "completed"
    last = [json.loads(x) for x in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()][-1]
    # bank: 2 + 2 images (stratified), k = min(3, 2 // 2) = 1
    assert last["knn"] == {"k": 1, "k_requested": 3, "bank_size": 4, "bank_seed": 0}
    assert all(0.0 <= v <= 1.0 for v in last["knn_top1"].values())
    # both collapse indicators, per width: the projector output's and the backbone features'
    assert set(last["backbone_std"]) == set(last["collapse_std"]) == set(last["knn_top1"])
    assert all(0.0 < v < 2.0 for v in last["backbone_std"].values())
    assert res.backbone_std == {float(w): v for w, v in last["backbone_std"].items()}
    from us3l.train.loop import format_knn_table

    table = format_knn_table(res).splitlines()
    assert table[0] == "width  knn_top1  collapse_std  backbone_std" and len(table) == 1 + len(res.final_knn)
    assert table[1].endswith(f"{res.backbone_std[max(res.final_knn)]:12.3f}")


def test_collapse_warning_reads_the_lower_indicator() -> None:
    from us3l.train.loop import _epoch_line
    from us3l.train.monitor import WidthReport, collapse_std

    assert WidthReport(1.0, 0.5, collapse_std=0.98, backbone_std=0.05).lowest_std == 0.05
    assert WidthReport(1.0, 0.5, collapse_std=0.03).lowest_std == 0.03  # no backbone reading
    rec = {"epoch": 2, "lr": 0.1, "min_width": 0.25, "loss": {"base": -0.5}, "img_per_s": 10.0, "seconds": 1.0,
           "knn_top1": {"1": 0.5}, "collapse_std": {"1": 0.98}, "backbone_std": {"1": 0.27}}
    assert _epoch_line(rec).endswith("| knn 1:50.0 | std 1:0.98 | backbone std 1:0.27")
    # the indicator: ~1 for spread rows, 0 for identical rows
    import torch

    assert collapse_std(torch.ones(8, 4)) == 0.0
    assert 0.5 < collapse_std(torch.eye(16)) <= 1.0


def test_monitor_batches_are_a_seeded_shuffle_of_class_sorted_folder_data(tiny_folder: Path) -> None:
    """Batch-statistics BN in the monitor: a class-sorted folder must not be embedded one class per batch."""
    import torch
    from torch import nn

    from us3l.data import load_dataset
    from us3l.data.folder import eval_transform_for
    from us3l.models import create_model
    from us3l.train.knn import bank_dataset
    from us3l.train.monitor import MONITOR_SEED, embed

    ds = load_dataset(f"folder:{tiny_folder}", "train", image_size=16)
    assert ds.labels.tolist() == sorted(ds.labels.tolist())  # class-sorted on disk
    enc = nn.Module()
    enc.backbone = create_model("cifar_resnet18", num_classes=0, base_channels=8)
    enc.projector = nn.Identity()
    method = nn.Module()
    method.encoder_q = enc
    tf = eval_transform_for(ds, 16, ds.mean, ds.std)
    _, _, labels = embed(method, ds, 1.0, tf, torch.device("cpu"), batch=4)  # type: ignore[arg-type]
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(MONITOR_SEED))
    assert torch.equal(labels, ds.labels[order])
    assert all(len(set(labels[i : i + 4].tolist())) == 2 for i in range(0, len(ds), 4))  # mixed batches
    again = embed(method, ds, 1.0, tf, torch.device("cpu"), batch=4)  # type: ignore[arg-type]
    assert torch.equal(again[2], labels)
    # a capped folder bank is the stratified subset, never the first rows (one class)
    bank = bank_dataset(ds, 4)
    assert sorted(bank.labels.tolist()) == [0, 0, 1, 1]
