"""A checkpoint without BatchNorm (a ViT: LayerNorm only) has nothing to calibrate: calibrate says so and writes
nothing, eval runs every width as trained (it failed with "the model has no calibrated BN statistics to save")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.eval.conftest import SIZE, make_run
from us3l.cli import main
from us3l.models import create_model


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    vit = create_model("vit_tiny", num_classes=0, img_size=SIZE)
    return make_run(tmp_path_factory.mktemp("vit") / "run", vit, model_name="vit_tiny",
                    model_kwargs={"img_size": SIZE})


def test_calibrate_has_nothing_to_do(vit_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--ckpt", str(vit_run)]) == 0
    out = capsys.readouterr().out
    assert out == "nothing to calibrate: vit_tiny has no BatchNorm layers (its widths need no statistics)\n"
    assert not (vit_run / "bn_stats.safetensors").exists()
    assert main(["calibrate", "--ckpt", str(vit_run), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["calibrated"] == [] and doc["bn_stats"] is None


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--widths", "5"], "error: --widths: width must be in [0.25, 1], got 5.0"),
        (["--points", "0"], "error: --points must be >= 1 (0 is not allowed), got 0"),
        (["--data", "bultin"], "error: unknown data spec 'bultin'"),
    ],
)
def test_calibrate_still_checks_what_was_typed(vit_run: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                               match: str) -> None:
    # they said "nothing to calibrate" with exit 0; the same options are one-line errors for a BN network
    assert main(["calibrate", "--ckpt", str(vit_run), *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(match) and captured.err.count("\n") == 1, captured.err
    assert main(["calibrate", "--ckpt", str(vit_run), "--widths", "1,0.25", "--quiet"]) == 0  # valid: as before


@pytest.mark.slow  # 4.7 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_eval_runs_every_width_as_trained(vit_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--ckpt", str(vit_run), "--widths", "1,0.25", "--knn-max-train", "200",
                 "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "BN calibrated like the trained one" not in err
    doc = json.loads((tmp_path / "accuracy.json").read_text())
    assert doc["calibration"] is None and sorted(r["width"] for r in doc["widths"]) == [0.25, 1.0]
    assert all(0 <= r["knn_top1"] <= 1 for r in doc["widths"])
    assert not (vit_run / "bn_stats.safetensors").exists()
