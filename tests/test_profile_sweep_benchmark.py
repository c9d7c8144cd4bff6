"""benchmarks/profile_sweep.py: model names checked before any sweep, a failed sweep's row and exit status."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from tests.script_module import load_script
from us3l.errors import US3LError

ps = load_script("benchmarks/profile_sweep.py", "profile_sweep_bench")


def test_an_unknown_model_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["profile_sweep.py", "--models", "cifar_resnet18,foo"])
    monkeypatch.setattr(ps, "sweep", lambda *a: pytest.fail("a sweep ran"))
    with pytest.raises(SystemExit) as exc:
        ps.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: argument --models: unknown model 'foo'; choose from ")
    assert "cifar_resnet18, " in err and len(err.splitlines()) == 1


def test_a_failed_sweep_says_error_once_and_fails_the_run(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The row said 'error: error: ...' and the script exited 0 after every sweep had failed."""
    assert ps.failure("note: x\nerror: no such device 'y'\n", 1) == "no such device 'y'"
    assert ps.failure("", -9) == "exit status -9"

    def sweep(model: str, backend: str, args: Any, out: str) -> dict[str, Any]:
        if backend == "openvino":
            return {"model": model, "backend": backend, "error": ps.failure("error: openvino is not installed", 1)}
        return {"model": model, "backend": backend, "widths": 4, "measured": 4, "stable": 4, "budget_stopped": False,
                "wall_s": 1.0, "export_s": 0.5, "process_peak_mib": 100.0, "sweep_peak_mib": 50.0, "window": 8,
                "session_mib": 1.0}

    monkeypatch.setattr(sys, "argv", ["profile_sweep.py", "--models", "cifar_resnet18", "--backends", "onnx,openvino"])
    monkeypatch.setattr(ps, "sweep", sweep)
    with pytest.raises(US3LError, match=r"^1 of 2 sweeps failed \(cifar_resnet18/openvino\): see their rows$"):
        ps.main()
    rows = capsys.readouterr().out.splitlines()[-2:]
    assert rows[0].split()[:3] == ["cifar_resnet18", "onnx", "4"]  # the other rows are still printed
    assert rows[1].split() == ["cifar_resnet18", "openvino", "error:", "openvino", "is", "not", "installed"]
