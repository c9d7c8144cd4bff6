"""``us3l train`` flag combinations a red-team pass (2026-12-05) found accepted or mishandled."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from us3l.cli import main

from .conftest import TINY


def _config(tmp_path: Path, tiny_folder: Path, **extra: object) -> Path:
    cfg = {**TINY, "knn_widths": list(TINY["knn_widths"]), "data": f"folder:{tiny_folder}", "epochs": 4, **extra}
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resume", "--overwrite"], "error: give --resume (continue the run in --out) or --overwrite (start it "
                                      "over), not both"),
        (["--nproc", "0"], "error: --nproc must be >= 1, got 0"),
        (["--nproc", "-1"], "error: --nproc must be >= 1, got -1"),
    ],
)
def test_contradictory_or_impossible_flags_are_one_line(tmp_path: Path, argv: list[str], message: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path / "run"), *argv]) == 1
    assert capsys.readouterr().err == message + "\n"
    assert not (tmp_path / "run").exists()


def test_resume_checks_only_what_it_uses_and_says_when_there_is_nothing_to_resume(
        tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run), "--resume"]) == 0
    assert f"note: {run} holds no checkpoint to --resume: starting a new run" in capsys.readouterr().err
    # --epochs 3 is invalid under default.yaml's schedule A, but the saved run has none and ignores it anyway
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3"]) == 0
    err = capsys.readouterr().err
    assert "ignored: epochs=3" in err and "error" not in err
