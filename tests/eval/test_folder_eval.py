"""``us3l eval`` on folder data: per-image Resize+CenterCrop features, per-image crops in the augmented probe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.eval.conftest import make_run
from us3l.eval import CalibrationSettings, open_checkpoint
from us3l.eval.linear import LinearProbeSettings
from us3l.eval.runner import EvalSettings, evaluate_checkpoint


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        for c, base in (("a", 50), ("b", 200)):
            for i in range(n):
                (root / split / c).mkdir(parents=True, exist_ok=True)
                arr = np.clip(base + rng.normal(0, 30, (18, 26, 3)), 0, 255).astype(np.uint8)  # non-square
                Image.fromarray(arr).save(root / split / c / f"{i}.png")
    return root


def test_folder_eval_with_the_augmented_probe(tmp_path: Path) -> None:
    data = f"folder:{_folder(tmp_path / 'data')}"
    run = make_run(tmp_path / "run", data=data)
    settings = EvalSettings(
        protocol="both",
        linear=LinearProbeSettings(epochs=2, lr=0.1, batch_size=4, augment=True),
        calibration=CalibrationSettings(batches=2, batch_size=4),
        costs=False,
        baselines=False,
    )
    doc = evaluate_checkpoint(open_checkpoint(run), data, [1.0, 0.5], settings)
    assert "FolderEvalTransform" in doc["protocols"]["feature_transform"]
    assert "Resize(18," in doc["protocols"]["feature_transform"]  # round(16 * 256 / 224)
    for row in doc["widths"]:
        assert 0.0 <= row["knn_top1"] <= 1.0 and 0.0 <= row["linear_top1"] <= 1.0
