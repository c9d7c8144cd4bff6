"""Evaluating an S-Nets checkpoint (switchable BN): its switches by default, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.eval.conftest import TINY, make_run, tiny_model
from us3l.cli import main
from us3l.errors import US3LError
from us3l.eval import open_checkpoint
from us3l.eval.runner import parse_widths
from us3l.slim import calibrated_widths

SNETS = {**TINY, "bn_switches": [1.0, 0.75, 0.5, 0.25], "bn_track_stats": True}


@pytest.fixture
def snets_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "snets", tiny_model(**{k: v for k, v in SNETS.items() if k != "base_channels"}),
                    model_kwargs=SNETS)


def test_default_widths_are_the_switches_and_others_are_refused(snets_dir: Path) -> None:
    model = open_checkpoint(snets_dir).model
    assert parse_widths(model, None, None) == [1.0, 0.75, 0.5, 0.25]
    assert parse_widths(model, "0.5,0.25", None) == [0.5, 0.25]
    assert parse_widths(model, None, 2) == [0.25, 1.0] and parse_widths(model, None, 9) == [0.25, 0.5, 0.75, 1.0]
    with pytest.raises(US3LError) as err:
        parse_widths(model, "1.0,0.6", None)
    assert str(err.value) == "S-Nets run only at widths 1, 0.75, 0.5, 0.25 (got 0.6)"
    us_nets = open_checkpoint(make_run(snets_dir.parent / "us")).model  # unchanged for US-Nets checkpoints
    assert parse_widths(us_nets, None, None) == [1.0, 0.75, 0.5, 0.25]
    assert parse_widths(us_nets, "0.6", None) == [0.6]


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
    assert code != 0 and err == "error: S-Nets run only at widths 1, 0.75, 0.5, 0.25 (got 0.6)"


@pytest.mark.parametrize(
    "args",
    [
        ["profile", "--device", "cpu", "--backend", "onnx", "--widths", "1.0,0.6"],
        ["export", "--backend", "onnx", "--width", "0.6"],
    ],
)
def test_profile_and_export_refuse_other_widths_before_any_work(
    snets_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code = main([*args, "--ckpt", str(snets_dir), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err == "error: S-Nets run only at widths 1, 0.75, 0.5, 0.25 (got 0.6)"
    assert not (tmp_path / "out").exists()
