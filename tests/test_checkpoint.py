"""The run-folder checkpoint: round trip, weights-only train state, load_backbone and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from us3l import checkpoint as ckpt
from us3l.errors import US3LError
from us3l.models import create_model

KW = {"base_channels": 8}


class _NotAllowed:
    """An arbitrary class: weights_only loading must refuse to unpickle it."""


def _save(run: Path, model: torch.nn.Module, epoch: int = 3, **meta_kw) -> None:
    meta = ckpt.checkpoint_meta(
        model="cifar_resnet18",
        model_kwargs=KW,
        width_range={"min": 0.25, "max": 1.0, "divisor": 8},
        method="us3l",
        normalization={"mean": [0.5] * 3, "std": [0.25] * 3},
        input_size=16,
        data={"spec": "builtin"},
        epoch=epoch,
        config={"method": "us3l"},
        **meta_kw,
    )
    state = {
        "optimizer": {"state": {0: {"momentum_buffer": torch.ones(2)}}, "param_groups": [{"lr": 0.1}]},
        "rng": {"torch": torch.arange(5, dtype=torch.uint8)},
        "sampler": {"version": 3, "gauss": None},
    }
    ckpt.save_checkpoint(
        run, backbone_state=model.state_dict(), train_tensors={"head.w": torch.zeros(3)}, meta=meta, train_state=state
    )


def test_round_trip_and_load_backbone(tmp_path: Path) -> None:
    model = create_model("cifar_resnet18", num_classes=0, **KW)
    _save(tmp_path, model)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.json",
        "checkpoint.safetensors",
        "train_state.pt",
    ]  # no temporary files left behind
    loaded = ckpt.load_backbone(tmp_path / "checkpoint.safetensors")
    assert not loaded.model.training and loaded.meta["epoch"] == 3 and loaded.meta["kind"] == "checkpoint"
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v)
    assert ckpt.load_backbone(tmp_path).sha256 == loaded.sha256
    assert ckpt.read_tensors(tmp_path, ckpt.TRAIN_PREFIX)["head.w"].shape == (3,)
    assert ckpt.read_weights_epoch(tmp_path) == 3
    state = ckpt.load_train_state(tmp_path)  # weights_only=True
    assert state["epoch"] == 3 and torch.equal(state["rng"]["torch"], torch.arange(5, dtype=torch.uint8))


def test_train_state_refuses_arbitrary_objects(tmp_path: Path) -> None:
    torch.save({"x": _NotAllowed()}, tmp_path / "train_state.pt")
    with pytest.raises(US3LError, match="cannot read"):
        ckpt.load_train_state(tmp_path)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(US3LError, match="no checkpoint found"):
        ckpt.load_backbone(tmp_path)
    model = create_model("cifar_resnet18", num_classes=0, base_channels=16)  # does not match KW
    _save(tmp_path, model)
    with pytest.raises(US3LError, match="does not match"):
        ckpt.load_backbone(tmp_path)


def test_bn_stats_are_loaded_when_present(tmp_path: Path) -> None:
    from us3l.eval.calibrate import save_bn_stats
    from us3l.slim import calibrated_widths, calibrating

    model = create_model("cifar_resnet18", num_classes=0, **KW)
    _save(tmp_path, model)
    with torch.no_grad(), calibrating(model, 0.5):
        model(torch.randn(4, 3, 16, 16))
    save_bn_stats(model, tmp_path)  # bound to the checkpoint's sha256
    assert calibrated_widths(ckpt.load_backbone(tmp_path).model) == calibrated_widths(model)


def test_load_backbone_restores_the_trained_width_range(tmp_path: Path) -> None:
    """A run trained with width_min 0.5 must come back with that range, not the architecture's default."""
    model = create_model("cifar_resnet18", num_classes=0, width_min=0.5, **KW)
    meta_kw = {"width_range": {"min": 0.5, "max": 1.0, "divisor": 8}}
    meta = ckpt.checkpoint_meta(
        model="cifar_resnet18",
        model_kwargs=KW,
        method="us3l",
        normalization={"mean": [0.5] * 3, "std": [0.25] * 3},
        input_size=16,
        data={"spec": "builtin"},
        epoch=1,
        config={"method": "us3l"},
        **meta_kw,
    )
    ckpt.save_checkpoint(tmp_path, backbone_state=model.state_dict(), train_tensors={}, meta=meta, train_state={})
    loaded = ckpt.load_backbone(tmp_path)
    assert (loaded.model.width_range.min, loaded.model.width_range.max) == (0.5, 1.0)
    with pytest.raises(ValueError, match="0.5"):
        loaded.model.width_range.check(0.25)
