"""benchmarks/exit_cost.py: both endings of the same export, interleaved, and what the difference is."""

from __future__ import annotations

import argparse

import pytest

from tests.script_module import load_script

ec = load_script("benchmarks/exit_cost.py", "exit_cost_bench")


def test_the_endings_alternate_and_the_saving_is_the_difference_of_medians(monkeypatch, capsys) -> None:
    calls: list[str] = []
    times = {"finalise": iter([(0.9, 5.5), (0.7, 5.3), (0.8, 5.4)]),
             "end_process": iter([(0.1, 4.7), (0.05, 4.6), (0.06, 4.5)])}

    def one(args: argparse.Namespace, ending: str) -> tuple[float, float]:
        calls.append(ending)
        return next(times[ending])

    monkeypatch.setattr(ec, "_one", one)
    monkeypatch.setattr(ec.sys, "argv", ["exit_cost.py", "--rounds", "3"])
    ec.main()
    out = capsys.readouterr().out.splitlines()
    assert calls == ["finalise", "end_process"] * 3
    assert out[-3].split() == ["finalise", "0.80", "5.40"] and out[-2].split() == ["end_process", "0.06", "4.60"]
    assert out[-1] == "end_process saves 0.74 s per command; process wall end_process/finalise 0.852"


@pytest.mark.slow  # two export processes (~10 s on the 2-core EPYC): CI runs it (./test.sh -m slow)
def test_a_real_export_ends_sooner_through_end_process() -> None:
    """Both children export for real and report when their command returned; the times are positive and the
    process's wall time holds the time after the return (not a timing threshold: no ratio is asserted)."""
    args = argparse.Namespace(model="cifar_resnet18", width=0.25, backend="onnx")
    for ending in ec.ENDINGS:
        after_return, wall = ec._one(args, ending)
        assert 0 < after_return < wall
