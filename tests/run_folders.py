"""Checkpoint run folders as ``us3l train`` leaves them (backbone weights and checkpoint.json), for tests that need
a run without training one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from us3l.checkpoint import checkpoint_meta, save_checkpoint


def save_run(folder: Path, model: Any, model_name: str = "cifar_resnet18", model_kwargs: dict[str, Any] | None = None,
             *, input_size: int, method: str = "us3l", mean: float = 0.5, std: float = 0.25, data: Any = None,
             single_width: float | None = None, config: dict[str, Any] | None = None, epoch: int = 1) -> Path:
    """Save ``model`` (a ``SlimNet`` built as ``create_model(model_name, num_classes=0, **model_kwargs)``) in
    ``folder`` as epoch 1 of a run of ``method`` on ``data``, trained at ``input_size`` px with per-channel
    normalization ``mean`` and ``std``; its width range is the model's own."""
    wr = model.width_range
    meta = checkpoint_meta(
        model=model_name,
        model_kwargs=dict(model_kwargs or {}),
        width_range={"min": wr.min, "max": wr.max, "divisor": wr.divisor},
        method=method,
        normalization={"mean": [mean] * 3, "std": [std] * 3},
        input_size=input_size,
        data={} if data is None else data,
        epoch=epoch,
        config=dict(config or {}),
    )
    if single_width is not None:  # a `single` run's one trained width, as us3l train records it
        meta["single_width"] = single_width
    save_checkpoint(folder, backbone_state=model.state_dict(), train_tensors={}, meta=meta, train_state=None)
    return folder
