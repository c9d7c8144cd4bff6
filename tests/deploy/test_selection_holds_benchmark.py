"""benchmarks/selection_holds.py: what it says when the budget cannot be met, and its --statistic."""

from __future__ import annotations

import sys

import pytest

from tests.deploy.conftest import latency
from tests.script_module import load_script
from us3l.errors import US3LError

sh = load_script("benchmarks/selection_holds.py", "selection_holds_bench")


def test_an_infeasible_budget_is_one_error_line(write_profile, monkeypatch: pytest.MonkeyPatch) -> None:
    """It raised SystemExit('infeasible: smallest achievable latency 4.583 ms'): no 'error:', no flag, no rule."""
    path = write_profile([{"width": w, "latency": latency(4 * w, 5 * w, 6 * w)} for w in (0.5, 1.0)])
    monkeypatch.setattr(sys, "argv", ["selection_holds.py", "--profile", str(path), "--latency-ms", "1"])
    with pytest.raises(US3LError) as err:
        sh.main()
    assert str(err.value) == ("--latency-ms 1 is infeasible on this profile: the smallest achievable latency is "
                              "2.500 ms (upper 95% CI bound of p90)")


def test_an_unknown_statistic_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """It was refused only after the profile was read (exit 1), by the solver."""
    monkeypatch.setattr(sys, "argv", ["selection_holds.py", "--statistic", "p95"])
    with pytest.raises(SystemExit) as exc:
        sh.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --statistic: unknown latency statistic 'p95'; choose from p50, p90, p99, "
                          "mean (see: ") and err.count("\n") == 1
