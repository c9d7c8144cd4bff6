"""The training monitor takes kNN like ``us3l eval``: capped k, seeded stratified bank, recorded per epoch."""

from __future__ import annotations

import json
from pathlib import Path

from us3l.train import run_training


def test_monitor_uses_a_stratified_bank_and_a_capped_k(tiny_cfg) -> None:
    # 2 classes x 4 train images, sorted by class: the first 4 rows would be class "a" only
    cfg = tiny_cfg(epochs=4, knn_max_train=4, knn_k=3)
    res = run_training(cfg)
    assert res.status == "completed"
    last = [json.loads(x) for x in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()][-1]
    # bank: 2 + 2 images (stratified), k = min(3, 2 // 2) = 1
    assert last["knn"] == {"k": 1, "k_requested": 3, "bank_size": 4, "bank_seed": 0}
    assert all(0.0 <= v <= 1.0 for v in last["knn_top1"].values())
