"""benchmarks/train_cost.py: a tiny end-to-end run (every ratio printed with its interval) and its input check."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.script_module import ROOT
from tests.script_runs import run_scripts

TINY = ["--iters", "2", "--batch-size", "8", "--hidden", "32", "--matmul-n", "64", "--memory-format",
        "channels_last", "--views", "both"]


@pytest.mark.slow  # times real training iterations
def test_every_measured_ratio_has_its_interval() -> None:
    """The stage ratios and the variant pairs were printed without any spread (8 iterations or 80 read alike)."""
    done = subprocess.run([sys.executable, "benchmarks/train_cost.py", *TINY], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    m = re.search(r"fp32 matmul: ([\d.]+) GMAC/s \(best of before the timing ([\d.]+) and after ([\d.]+)\)$",
                  done.stdout.splitlines()[1])
    assert m and float(m[1]) == max(float(m[2]), float(m[3])), done.stdout.splitlines()[1]
    stages = [ln.split() for ln in done.stdout.splitlines() if re.match(r"\s+[1-4] ", ln)]
    assert len(stages) == 8  # 4 stages x 2 variants (views separate, batched)
    for row in stages:  # stage, widths..., ms/iter, measured, CI, MAC model, over
        measured, (lo, hi) = float(row[-4]), (float(v) for v in row[-3].split("-"))
        assert 0 < lo <= measured <= hi, row
    (pair,) = [ln for ln in done.stdout.splitlines() if ln.startswith("[channels_last, views batched] / ")]
    cells = re.findall(r"(stage\d|single) (\d+\.\d+) \((\d+\.\d+)-(\d+\.\d+)\)", pair)
    assert [c[0] for c in cells] == ["single", "stage1", "stage2", "stage3", "stage4"], pair
    assert all(float(lo) <= float(r) <= float(hi) for _, r, lo, hi in cells), pair
    assert done.stdout.rstrip().endswith("fewer than 6 timed iterations: each median's interval is the range of its "
                                         "iterations, and the bounds hold with less than 90 %")  # --iters 2


@pytest.mark.slow  # a benchmark process that loads the data
def test_more_images_than_the_data_holds_is_one_line_before_anything_runs() -> None:
    """``--batch-size 300`` failed with torch's 'Expected non-zero, positive output size. Got [0, 3, 16, 16]'
    after the models were built; a batch that only partly fits (``--batch-size 230``) timed a short last batch."""
    batches = ("300", "230")  # both command lines in one fresh interpreter (tests/script_runs.py): one torch import
    runs = run_scripts([["benchmarks/train_cost.py", "--batch-size", batch] for batch in batches], cwd=ROOT)
    for batch, done in zip(batches, runs, strict=True):
        assert done.returncode == 1 and not done.stdout
        assert done.stderr == (f"error: --iters 8 and --batch-size {batch} need {9 * int(batch)} training images "
                               "((iters + 1) x batch); the built-in data has 2000\n")


def test_mac_model_and_labels_follow_the_widths_per_iteration(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage prediction counts N - 2 uniform draws besides the max and the min: the default recipe's two widths
    per step have none, the reference's three one (MACs proportional to the width squared here)."""
    from tests.script_module import load_script

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # its sibling module roofline, as when the script runs
    tc = load_script("benchmarks/train_cost.py", "train_cost_bench")

    def macs_of(w: float) -> float:
        return 100.0 * w * w

    assert tc.predicted_ratio(macs_of, None, 2) == 1.0
    assert tc.predicted_ratio(macs_of, 0.5, 2) == pytest.approx((800 + 6 * 25) / 800)
    mid = sum(macs_of(0.5 + 0.5 * i / 20) for i in range(21)) / 21
    assert tc.predicted_ratio(macs_of, 0.5, 3) == pytest.approx((800 + 6 * (25 + mid)) / 800)
    assert tc.predicted_ratio(macs_of, 0.5, 4) == pytest.approx((800 + 6 * (25 + 2 * mid)) / 800)
    assert [tc.stage_label(w, n) for w, n in ((None, 2), (0.75, 2), (0.75, 3), (0.25, 4))] == [
        "{1.0}", "{1.0, 0.75}", "{1.0, U(0.75,1), 0.75}", "{1.0, U(0.25,1)x2, 0.25}"]
