"""benchmarks/switchable.py end to end on a two-width grid: it exports, checks outputs, times and prints every
ratio the docs report (slow: real exports of cifar_resnet18)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.script_module import ROOT


@pytest.mark.slow
def test_switchable_benchmark_prints_every_ratio() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/switchable.py", "--size", "16", "--widths", "1,0.25", "--max-seconds", "0.05"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "max |switchable - static| over all outputs 0.0e+00" in done.stdout  # same graph, same numbers
    rows = [ln.split() for ln in lines if ln.split() and ln.split()[0] in ("1", "0.25")]
    assert len(rows) == 6  # 2 widths x 3 modes
    for row in rows:
        ratios = [float(v) for v in row[-3:]]
        assert all(r > 0 for r in ratios)
    sizes = [ln for ln in lines if ln.startswith("size ")]
    assert len(sizes) == 2 and all(float(ln.split(" = ")[1].split()[0]) <= 1.1 for ln in sizes)
