"""benchmarks/profiler_repro.py: its summary line."""

from __future__ import annotations

from tests.script_module import load_script

pr = load_script("benchmarks/profiler_repro.py", "profiler_repro_bench")


def test_the_median_of_an_even_number_of_widths_is_the_mean_of_the_middle_two() -> None:
    """``sorted(diffs)[n // 2]`` printed the upper middle value as the median: docs/profiling.md (a)'s
    'median |rel diff| 7.6 %' for the differences 7.0 / 7.6 / 11.3 / 3.4 % (median 7.3 %)."""
    assert pr.summary([0.070, 0.076, 0.113, 0.034]) == "median |rel diff| 7.3 %, max 11.3 %"
    assert pr.summary([0.05, 0.01, 0.02]) == "median |rel diff| 2.0 %, max 5.0 %"
