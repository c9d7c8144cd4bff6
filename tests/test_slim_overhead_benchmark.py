"""benchmarks/slim_overhead.py: its timing order (ABBA per pair) and a tiny end-to-end run (which trains no convolution
through oneDNN's strided 1x1 NHWC kernel, issue 6035)."""

from __future__ import annotations

import sys

import pytest

from tests.onednn_6035 import Strided1x1NHWCTraining
from tests.script_module import ROOT, load_script


def test_round_order_alternates_each_pair_and_times_every_timer_once() -> None:
    mod = load_script("benchmarks/slim_overhead.py", "slim_overhead_bench")
    widths = [1.0, 0.25]
    for r in range(4):
        order = mod.round_order(r, widths)
        assert len(order) == len(set(order)) == 8  # 2 modes x 2 widths x 2 variants
        for mode in ("infer", "train"):
            for w in widths:
                first = min(i for i, k in enumerate(order) if k[:2] == (mode, w))
                assert order[first][2] == ("eager" if r % 2 else "static")
                assert order[first + 1] == (mode, w, "static" if r % 2 else "eager")  # the pair runs back to back


@pytest.mark.slow  # 1.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_slim_overhead_runs_and_reports_every_width(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process (a fresh interpreter spent two of its three CPU seconds importing torch and scipy); the
    script's command line and error policy are tested in tests/test_script_cli.py."""
    mod = load_script("benchmarks/slim_overhead.py", "slim_overhead_bench")
    monkeypatch.setattr(sys, "argv", [
        str(ROOT / "benchmarks" / "slim_overhead.py"), "--base-channels", "8", "--image-size", "8",
        "--batch-size", "4", "--widths", "1,0.25", "--rounds", "2", "--calls", "1"])
    with Strided1x1NHWCTraining() as guard:
        mod.main()
    # the static NHWC side trains too (layer2's downsample reads 8 channels), around oneDNN issue 6035 as the slim one
    assert guard.hits == []
    out = capsys.readouterr().out
    rows = [ln.split() for ln in out.splitlines() if ln.split() and ln.split()[0] in ("1", "0.25")]
    assert [r[0] for r in rows] == ["1", "0.25"]
    assert "train NCHW eager" in out and "train NHWC eager" in out  # --memory-format both, the default
    for row in rows:  # inference and training-step ratios (NCHW, NHWC), each with its interval
        assert len(row) == 13, row
        for ratio, ci in ((row[3], row[4]), (row[7], row[8]), (row[11], row[12])):
            lo, hi = (float(v) for v in ci.split("-"))
            assert 0 < lo <= float(ratio) <= hi, row
    assert "fewer than 6 rounds: each median's interval is the range of its rounds" in out  # --rounds 2
