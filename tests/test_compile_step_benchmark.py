"""benchmarks/compile_step.py: a tiny end-to-end run (torch.compile takes seconds per width even for a tiny
network, hence slow); the command line and error policy are tested in tests/test_script_cli.py."""

from __future__ import annotations

import sys

import pytest
import torch

from tests.onednn_6035 import Strided1x1NHWCTraining
from tests.script_module import ROOT, load_script


@pytest.mark.slow
def test_compile_step_reports_each_width_with_its_interval(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    mod = load_script("benchmarks/compile_step.py", "compile_step_bench")
    monkeypatch.setattr(sys, "argv", [
        str(ROOT / "benchmarks" / "compile_step.py"), "--base-channels", "8", "--image-size", "8",
        "--batch-size", "4", "--widths", "0.5", "--rounds", "2"])
    mod.main()
    out = capsys.readouterr().out
    rows = [ln.split() for ln in out.splitlines() if ln.split() and ln.split()[0] == "0.5"]
    assert len(rows) == 1, out
    ratio, ci, compile_s = float(rows[0][3]), rows[0][4], float(rows[0][5])
    lo, hi = (float(v) for v in ci.split("-"))
    assert 0 < lo <= ratio <= hi and compile_s > 0
    assert "fewer than 6 rounds: each median's interval is the range of its rounds" in out


def test_the_static_networks_train_around_onednn_issue_6035(capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Both sides step the static network in NHWC; none of its training convolutions takes oneDNN's strided 1x1
    kernel for fewer than 16 input channels (a heap corruption at some thread counts). Eager only: compiling is
    stubbed out (the guard watches Python-level calls, and compiled code makes none)."""
    mod = load_script("benchmarks/compile_step.py", "compile_step_bench")
    monkeypatch.setattr(torch, "compile", lambda net: net)
    monkeypatch.setattr(sys, "argv", [
        str(ROOT / "benchmarks" / "compile_step.py"), "--base-channels", "8", "--image-size", "8",
        "--batch-size", "4", "--widths", "1,0.5", "--rounds", "1"])
    with Strided1x1NHWCTraining() as guard:
        mod.main()
    assert guard.hits == []
    assert [ln.split()[0] for ln in capsys.readouterr().out.splitlines() if ln.split()[:1] in (["1"], ["0.5"])] == [
        "1", "0.5"]
