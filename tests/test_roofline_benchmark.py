"""benchmarks/roofline.py: a tiny run; the matmul reference is probed on both sides of the sweep."""

from __future__ import annotations

import re
import sys

import pytest

from tests.script_module import ROOT, load_script


@pytest.mark.slow  # a benchmark run
def test_the_reference_is_probed_before_and_after_and_the_best_is_used(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The reference was probed once, before the sweep: a probe taken at a slow moment (docs/profiling.md (c):
    59.3 against 194.8 GMAC/s the day before) went unnoticed and put widths above 100 % of 'peak'. Run in this
    process (``main`` with its command line): a fresh interpreter paid torch's and the runtimes' imports again."""
    mod = load_script("benchmarks/roofline.py", "roofline_bench")
    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "roofline.py"), "--points", "2", "--max-seconds",
                                      "0.1", "--n", "64", "--threads", "1"])
    mod.main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# ") and " UTC, commit " in lines[0]
    m = re.fullmatch(r"# dense 64x64 fp32 matmul, 1 threads: best ([\d.]+) GMAC/s \(before the sweep ([\d.]+), "
                     r"after ([\d.]+)\)", lines[1])
    assert m, lines[1]
    best, before, after = (float(v) for v in m.groups())
    assert best == max(before, after)
    rows = [ln.split() for ln in lines if ln.strip().startswith(("0.25", "1 "))]
    assert len(rows) == 2 and all(r[-1].endswith("%") for r in rows)
