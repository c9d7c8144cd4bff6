"""benchmarks/switchable.py end to end on a two-width grid: it exports, checks outputs, times and prints every
ratio the docs report (slow: real exports of cifar_resnet18)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.script_module import ROOT, load_script
from us3l.errors import US3LError


def test_a_width_outside_the_models_range_names_the_flag() -> None:
    """``--widths 0.1`` failed with 'error: width must be in [0.25, 1], got 0.1': which of the inputs?"""
    from us3l.deploy.graph import fresh_model

    sw = load_script("benchmarks/switchable.py", "switchable_bench")
    net = fresh_model("cifar_resnet18")
    assert sw.check_grid(net, [1.0, 0.25]) == (1.0, 0.25)
    with pytest.raises(US3LError, match=r"^--widths: width must be in \[0.25, 1\], got 0.1$"):
        sw.check_grid(net, [1.0, 0.1])
    with pytest.raises(US3LError, match=r"^--widths: a switchable artifact needs at least 2 widths, got 1$"):
        sw.check_grid(net, [1.0])


@pytest.mark.slow
def test_switchable_benchmark_prints_every_ratio() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/switchable.py", "--size", "16", "--widths", "1,0.25", "--max-seconds", "0.05"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "max |switchable - static| over all outputs 0.0e+00" in done.stdout  # same graph, same numbers
    rows = [ln for ln in lines if ln.split() and ln.split()[0] in ("1", "0.25")]
    assert len(rows) == 6  # 2 widths x 3 modes
    for row in rows:  # each ratio with its bounds: "1.02 (0.98-1.05)"
        ratios = re.findall(r"(\d+\.\d+) \((\d+\.\d+)-(\d+\.\d+|inf)\)", row)
        assert len(ratios) == 3, row
        assert all(0 < float(lo) <= float(r) <= float(hi) for r, lo, hi in ratios), row
    sizes = [ln for ln in lines if ln.startswith("size ")]
    assert len(sizes) == 2 and all(float(ln.split(" = ")[1].split()[0]) <= 1.1 for ln in sizes)
