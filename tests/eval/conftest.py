"""Tiny models and hand-made run folders for the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.run_folders import save_run
from us3l.models import create_model

TINY = {"base_channels": 8}
SIZE = 16


def tiny_model(seed: int = 0, **kw: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model("cifar_resnet18", num_classes=0, **{**TINY, **kw})
    # non-trivial affine BN parameters so that statistics matter
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bn1.weight") or name.endswith("bn2.weight"):
                p.uniform_(0.5, 1.5)
            elif name.endswith(".bias"):
                p.uniform_(-0.2, 0.2)
    return model.eval()


def make_run(run_dir: Path, model: torch.nn.Module | None = None, data: str = "builtin",
             model_name: str = "cifar_resnet18", model_kwargs: dict | None = None) -> Path:
    """A run folder as ``us3l train`` writes it (backbone weights + checkpoint.json)."""
    model = model if model is not None else tiny_model()
    return save_run(run_dir, model, model_name, TINY if model_kwargs is None else model_kwargs, input_size=SIZE,
                    mean=0.3055, std=0.3237, data={"spec": data, "name": "test"})


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")


def batches(n: int = 3, b: int = 6, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3, SIZE, SIZE, generator=g) * 1.5 + 0.3 for _ in range(n)]
