"""Tiny data and configs for training tests: an 8-image ImageFolder of 16-px PNGs and a 8-channel ResNet."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from us3l.train import TrainConfig, make_config


def write_tiny_folder(root: Path, per_class_train: int = 4, per_class_test: int = 2, size: int = 16) -> Path:
    """Two classes (bright/dark noise) of ``size``-px RGB PNGs under ``root/{train,test}/{a,b}``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class_train), ("test", per_class_test)):
        for label, base in (("a", 40), ("b", 200)):
            d = root / split / label
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = np.clip(base + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(d / f"{i}.png")
    return root


def write_junk_folder(root: Path, per_class: int = 5) -> Path:
    """Two class folders of files named like images that hold other bytes (a failed download, a text export)."""
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            (root / cls / f"{i}.png").write_text("<html>not found</html>")
    return root


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_folder(tmp_path_factory.mktemp("tinydata"))


TINY: dict[str, Any] = {
    "model": "cifar_resnet18",
    "model_kwargs": {"base_channels": 8},
    "image_size": 16,
    "epochs": 4,
    "batch_size": 4,
    "lr": 0.05,
    "proj_hidden": 16,
    "pred_hidden": 16,
    "proj_dim": 8,
    "knn_widths": (1.0, 0.25),
    "knn_k": 3,
    "save_every": 1,
    "quiet": True,
    "device": "cpu",
}


def write_tiny_config(path: Path, tiny_folder: Path, **extra: Any) -> Path:
    """The tiny recipe on ``tiny_folder`` (``extra`` keys over it) as the YAML config file ``path``."""
    path.write_text(yaml.safe_dump({**TINY, "knn_widths": list(TINY["knn_widths"]), "data": f"folder:{tiny_folder}",
                                    **extra}))
    return path


@pytest.fixture
def tiny_cfg(tiny_folder: Path, tmp_path: Path) -> Callable[..., TrainConfig]:
    def make(**kw: Any) -> TrainConfig:
        values = {**TINY, "data": f"folder:{tiny_folder}", "out": str(tmp_path / "run"), **kw}
        return make_config(values)

    return make


def killed_overwrite(run: Path, tag: str = "999999-0") -> dict[str, bytes]:
    """What an --overwrite run killed (SIGKILL) before its first checkpoint leaves: the old run's files set aside
    in .replaced-TAG (PID-TOKEN; the PID alone before), the new run's config and first metrics line in their
    place. Returns the old files."""
    old = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and not p.name.startswith(".")}
    aside = run / f".replaced-{tag}"
    aside.mkdir()
    for name in old:
        os.replace(run / name, aside / name)
    (run / "config.yaml").write_text("epochs: 4\n")
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    return old
