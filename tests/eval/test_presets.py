"""``--preset reference``: the reference's calibration and linear probe per recipe, recorded in accuracy.json."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.eval.conftest import make_run
from tests.eval.test_folder_eval import _folder
from us3l.data import ImageDataset
from us3l.errors import US3LError
from us3l.eval import open_checkpoint
from us3l.eval.calibrate import CalibrationSettings, calibration_source
from us3l.eval.linear import LARSSGD, LinearProbeSettings
from us3l.eval.presets import recipe_kind, reference_settings
from us3l.eval.runner import EvalSettings, evaluate_checkpoint


def test_reference_settings_per_recipe(tmp_path: Path) -> None:
    assert recipe_kind("cifar100:/x", "cifar_resnet18") == "cifar" and recipe_kind("builtin", "resnet18") == "cifar"
    assert recipe_kind("folder:/x", "resnet50") == "imagenet" and recipe_kind(str(tmp_path), "resnet18") == "imagenet"
    assert recipe_kind("cifar10:/x", "vit_tiny") == "vit"
    # Red-team 2026-12-07: a bare folder path with a colon in it was taken for CIFAR-like data (the reference
    # protocol of another data set), where --data reads it as the image folder it is
    (tmp_path / "run:2").mkdir()
    assert recipe_kind(str(tmp_path / "run:2"), "resnet18") == "imagenet"
    cal, lin = reference_settings("cifar")
    assert (cal.momentum, cal.epochs, cal.augment, cal.batch_size) == (0.1, 3, "linear", 128)
    assert (lin.epochs, lin.lr, lin.batch_size, lin.milestone_epochs(), lin.augment) == (100, 30.0, 512, [60, 80], True)
    cal, lin = reference_settings("imagenet")
    assert (cal.batches, cal.batch_size, cal.momentum, cal.augment) == (501, 128, 0.1, "ssl")
    assert (lin.optimizer, lin.schedule, lin.lr, lin.epochs, lin.batch_size) == ("lars", "cosine", 0.8, 60, 1024)
    _, lin = reference_settings("vit")
    assert (lin.optimizer, lin.schedule, lin.lr, lin.epochs, lin.batch_size) == ("sgd", "cosine", 0.1, 90, 256)
    with pytest.raises(US3LError, match="preset"):
        EvalSettings(preset="slow")


def test_augmented_calibration_batches_cover_epochs_and_repeat() -> None:
    g = torch.Generator().manual_seed(0)
    ds = ImageDataset(torch.randint(0, 256, (10, 3, 12, 12), dtype=torch.uint8, generator=g),
                      torch.arange(10) % 2, ["a", "b"], "cifar10", (0.5,) * 3, (0.25,) * 3)
    s = CalibrationSettings(batch_size=4, momentum=0.1, augment="linear", epochs=3)
    src = calibration_source(ds, s, lambda x: x.float(), 8, ds.mean, ds.std)
    first, second = list(src()), list(src())  # type: ignore[operator]
    assert len(first) == 3 * 3 and [b.shape[0] for b in first[:3]] == [4, 4, 2]
    assert first[0].shape[1:] == (3, 8, 8) and first[0].dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))  # every width sees the same batches
    assert not torch.equal(first[0], first[3])  # fresh augmentation every epoch


def test_lars_step_is_larc_without_clipping() -> None:
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5, 3))
    grad = torch.randn(5, 3)
    expected = p.detach() - 0.8 * (0.001 * p.detach().norm() / (grad.norm() + 1e-8)) * grad
    opt = LARSSGD([p], lr=0.8, momentum=0.9, weight_decay=0.0)
    p.grad = grad.clone()
    opt.step()
    torch.testing.assert_close(p.detach(), expected)


@pytest.mark.slow
def test_reference_preset_on_folder_data_is_recorded(tmp_path: Path) -> None:
    data = f"folder:{_folder(tmp_path / 'data')}"
    run = make_run(tmp_path / "run", data=data)
    settings = EvalSettings(protocol="both", preset="reference", costs=False, baselines=False,
                            linear=LinearProbeSettings(epochs=1))  # replaced by the preset
    doc = evaluate_checkpoint(open_checkpoint(run), data, [1.0], settings)
    assert doc["protocols"]["preset"] == "reference"
    assert doc["protocols"]["linear"]["optimizer"] == "lars" and doc["protocols"]["linear"]["epochs"] == 60
    assert doc["calibration"]["augment"] == "ssl" and doc["calibration"]["batches"] == 501
    assert doc["calibration"]["momentum"] == 0.1
    assert 0.0 <= doc["widths"][0]["linear_top1"] <= 1.0
