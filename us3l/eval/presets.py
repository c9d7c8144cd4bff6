"""Evaluation presets (``us3l eval --preset``): ``fast`` (today's protocol, the default for the built-in data) and
``reference`` (the reference's protocol for the checkpoint's data and model, method.md §4 and §7).

``reference`` per recipe:

- **CIFAR-like data** (in-memory sets): BN calibration as the reference's linear worker does it (momentum 0.1
  running average over 3 epochs of the linear-probe augmentation, batches of 128), then the augmented linear
  probe: 100 epochs, SGD lr 30, x0.1 at epochs 60 and 80, batch 512, RandomResizedCrop(scale 0.8-1, bicubic)
  + flip.
- **folder (ImageNet) data**: the reference's ``calibrate`` worker (501 batches of 128 of the SSL augmentation,
  momentum 0.1), then its linear probe: LARS (LARC trust 0.001) on SGD lr 0.8, wd 0, per-epoch cosine, 60
  epochs, batch 1024 (4 x 256), RandomResizedCrop(224) + flip / Resize(256) + CenterCrop(224).
- **ViT models**: MoCo v3's ``main_lincls``: SGD lr 0.1 (0.1 x 256/256), wd 0, cosine, 90 epochs, batch 256,
  RandomResizedCrop(224) + flip; BN calibration as above for the data (a ViT backbone has no BN to calibrate).

Explicit calibration/probe flags are replaced by the preset's values; the preset is recorded in
``accuracy.json`` (``protocols.preset``) with the settings it produced.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from us3l.errors import US3LError
from us3l.eval.calibrate import CalibrationSettings
from us3l.eval.linear import LinearProbeSettings

PRESETS = ("fast", "reference")


def recipe_kind(spec: str, model: str) -> str:
    """``"vit"``, ``"imagenet"`` (folder data) or ``"cifar"`` (in-memory data): which reference protocol applies."""
    if model.startswith("vit"):
        return "vit"
    from us3l.data.datasets import data_spec_kind

    return "imagenet" if data_spec_kind(spec) == "folder" else "cifar"


def reference_settings(kind: str) -> tuple[CalibrationSettings, LinearProbeSettings]:
    """The reference's calibration and linear-probe settings for a recipe kind (see the module docstring)."""
    if kind == "imagenet":
        return (
            CalibrationSettings(batches=501, batch_size=128, momentum=0.1, augment="ssl"),
            LinearProbeSettings(epochs=60, lr=0.8, batch_size=1024, weight_decay=0.0, augment=True,
                                optimizer="lars", schedule="cosine", crop_min=0.08, interpolation="bilinear"),
        )
    calibration = CalibrationSettings(batch_size=128, momentum=0.1, augment="linear", epochs=3)
    if kind == "vit":
        return calibration, LinearProbeSettings(epochs=90, lr=0.1, batch_size=256, weight_decay=0.0, augment=True,
                                                schedule="cosine", crop_min=0.08, interpolation="bilinear")
    if kind == "cifar":
        return calibration, LinearProbeSettings(augment=True)
    raise US3LError(f"unknown recipe kind {kind!r}")


def apply_preset(settings: Any, spec: str, model: str) -> Any:
    """``settings`` (an ``EvalSettings``) with its preset applied: unchanged for ``fast``; the reference's
    calibration and linear-probe settings for ``reference`` (recalibrating every width)."""
    if settings.preset not in PRESETS:
        raise US3LError(f"unknown evaluation preset {settings.preset!r}; choose one of {', '.join(PRESETS)}")
    if settings.preset == "fast":
        return settings
    calibration, linear = reference_settings(recipe_kind(spec, model))
    return replace(settings, calibration=calibration, linear=replace(linear, seed=settings.linear.seed),
                   recalibrate=True)
