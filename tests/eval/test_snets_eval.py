"""Evaluating an S-Nets checkpoint (switchable BN): its switches by default, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.eval.conftest import TINY, make_run, tiny_model
from us3l.cli import main
from us3l.errors import US3LError
from us3l.eval import open_checkpoint
from us3l.eval.runner import parse_widths
from us3l.slim import calibrated_widths


def snets_run(run_dir: Path, switches: list[float]) -> Path:
    """A run folder of the tiny S-Nets model with ``switches`` (switchable BN, tracked statistics)."""
    kw = {**TINY, "bn_switches": switches, "bn_track_stats": True}
    return make_run(run_dir, tiny_model(**{k: v for k, v in kw.items() if k != "base_channels"}), model_kwargs=kw)


@pytest.fixture
def snets_dir(tmp_path: Path) -> Path:
    return snets_run(tmp_path / "snets", [1.0, 0.75, 0.5, 0.25])


def test_default_widths_are_the_switches_and_others_are_refused(snets_dir: Path) -> None:
    model = open_checkpoint(snets_dir).model
    assert parse_widths(model, None, None) == [1.0, 0.75, 0.5, 0.25]
    assert parse_widths(model, "0.5,0.25", None) == [0.5, 0.25]
    assert parse_widths(model, None, 2) == [0.25, 1.0] and parse_widths(model, None, 9) == [0.25, 0.5, 0.75, 1.0]
    with pytest.raises(US3LError) as err:
        parse_widths(model, "1.0,0.6", None)
    assert str(err.value) == "--widths: S-Nets run only at widths 1, 0.75, 0.5, 0.25 (got 0.6)"
    us_nets = open_checkpoint(make_run(snets_dir.parent / "us")).model  # unchanged for US-Nets checkpoints
    assert parse_widths(us_nets, None, None) == [1.0, 0.75, 0.5, 0.25]
    assert parse_widths(us_nets, "0.6", None) == [0.6]


@pytest.mark.slow  # 3.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_calibrate_and_eval_cli_use_the_switches(snets_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--ckpt", str(snets_dir), "--batches", "1", "--json"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["calibrated"] == [0.25, 0.5, 0.75, 1.0] == doc["stored_widths"]
    assert "restricted to its switches 1, 0.75, 0.5, 0.25" in out.err
    assert calibrated_widths(open_checkpoint(snets_dir).model) == (0.25, 0.5, 0.75, 1.0)

    code = main(["eval", "--ckpt", str(snets_dir), "--no-baselines", "--batches", "1", "--json"])
    assert code == 0
    acc = json.loads(capsys.readouterr().out)
    assert sorted(r["width"] for r in acc["widths"]) == [0.25, 0.5, 0.75, 1.0]
    assert [r["canonical_width"] for r in acc["widths"]] == [r["width"] for r in acc["widths"]]

    code = main(["eval", "--ckpt", str(snets_dir), "--widths", "0.6", "--no-baselines"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err == "error: --widths: S-Nets run only at widths 1, 0.75, 0.5, 0.25 (got 0.6)"


@pytest.mark.parametrize(
    "args",
    [
        ["profile", "--device", "cpu", "--backend", "onnx", "--widths", "1.0,0.6"],
        ["export", "--backend", "onnx", "--width", "0.6"],
        ["export", "--backend", "onnx", "--switchable", "--widths", "1.0,0.6"],
    ],
)
def test_profile_and_export_refuse_other_widths_before_any_work(
    snets_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code = main([*args, "--ckpt", str(snets_dir), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err == f"error: {args[-2]}: S-Nets run only at widths 1, 0.75, 0.5, 0.25 (got 0.6)"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # five commands for one rounding case
def test_a_switch_of_five_decimals_round_trips_calibrate_export_eval_artifact_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """25/32 = 0.78125 was the switch 0.7812 (Python's round, half to even) in bn_stats.safetensors, the accuracy
    file and the profiles, while us3l select and the report keyed it half up (0.7813): two rules for one width. One
    rule now (us3l.width_key, half up as written): 0.7813 in every file, from calibrate through export, eval
    --artifact and the report, and a recalibration after the export is still caught at that width."""
    import shutil

    from safetensors.torch import load_file

    from us3l.report import render_report

    root = tmp_path / "qs"
    run = snets_run(root / "run", [1.0, 0.78125, 0.5, 0.25])
    assert main(["calibrate", "--ckpt", str(run), "--widths", "0.78125", "--batches", "1", "--batch-size", "16",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calibrated"] == [0.7813]
    assert {k.split("/")[0] for k in load_file(run / "bn_stats.safetensors")} == {"0.7813"}
    acc = root / "accuracy.json"
    eval_args = ["--ckpt", str(run), "--no-baselines", "--batches", "1", "--knn-max-train",
                 "200", "--out", str(root)]
    assert main(["eval", *eval_args, "--widths", "0.78125", "--quiet"]) == 0
    capsys.readouterr()
    assert [r["width"] for r in json.loads(acc.read_text())["widths"]] == [0.7813]
    assert main(["export", "--ckpt", str(run), "--width", "0.78125", "--backend", "onnx", "--device", "cpu",
                 "--out", str(root / "artifacts"), "--json"]) == 0
    directory = Path(json.loads(capsys.readouterr().out)["exports"][0]["directory"])
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["model"]["canonical_width"] == 0.7813 and manifest["source"]["bn_stats"]["width_sha256"]
    assert main(["eval", *eval_args, "--artifact", str(directory)]) == 0
    (row,) = json.loads(acc.read_text())["widths"]
    assert row["width"] == 0.7813 and row["precisions"]["fp32"]["onnx"]
    assert [e for e in render_report(root).errors() if "BN statistics" in e] == []
    capsys.readouterr()

    shutil.copy(run / "bn_stats.safetensors", tmp_path / "before.safetensors")
    assert main(["calibrate", "--ckpt", str(run), "--widths", "0.78125", "--batches", "1", "--batch-size", "8"]) == 0
    assert main(["eval", *eval_args, "--artifact", str(directory)]) == 1
    assert "the width was recalibrated since the export" in capsys.readouterr().err
    errors = render_report(root).errors()
    (line,) = [e for e in errors if "exported with other BN statistics" in e]
    assert "stale: exported with other BN statistics of width 0.7813 (" in line
    # the accuracy measured before the recalibration is stale too (measured with other BN statistics)
    (acc_line,) = [e for e in errors if "accuracy.json: stale: measured with other BN statistics" in e]
    assert acc_line.endswith("holds now (recalibrated since: batch_size 16 -> 8); re-run us3l eval")


def test_bn_statistics_stored_under_the_old_key_of_a_switch_still_load(tmp_path: Path) -> None:
    """A bn_stats.safetensors written before the one rule keyed the switch 25/32 as 0.7812: it loads into the switch
    (now 0.7813) instead of being refused as 'do not fit this model'."""
    from safetensors.torch import load_file, save_file

    from us3l.eval.calibrate import TENSORS_SHA_KEY, save_bn_stats, tensors_sha256
    from us3l.safetensors_io import read_header
    from us3l.slim import calibrating

    run = snets_run(tmp_path / "run", [1.0, 0.78125, 0.5, 0.25])
    ck = open_checkpoint(run)
    with torch.no_grad(), calibrating(ck.model, 0.78125):
        ck.model(torch.randn(8, 3, 16, 16))
    path = save_bn_stats(ck.model, run, checkpoint_sha256=ck.sha256)
    meta = read_header(path.read_bytes())["__metadata__"]
    old = {k.replace("0.7813/", "0.7812/"): t for k, t in load_file(path).items()}
    save_file(old, str(path), metadata={**meta, "widths": "0.7812", TENSORS_SHA_KEY: tensors_sha256(old)})
    assert calibrated_widths(open_checkpoint(run).model) == (0.7813,)
