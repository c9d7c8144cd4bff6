"""benchmarks/compile_step.py: a tiny end-to-end run (torch.compile takes seconds per width even for a tiny
network, hence slow); the command line and error policy are tested in tests/test_script_cli.py."""

from __future__ import annotations

import sys

import pytest

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
