"""A missing optional package is reported before the work that needs it, not after (red-team 2026-12-05: `eval
--plot`, `profile --plot` and `select --plot` without matplotlib ran the whole evaluation or sweep and wrote their
results, then failed; `quickstart` without openvino trained for minutes, then failed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from us3l.cli import main


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kw: object) -> object:
        return None if name == "matplotlib" else real(name, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


MESSAGE = "error: --plot needs the 'matplotlib' package, which is not installed: pip install 'us3l[plot]'\n"


@pytest.mark.parametrize("argv", [
    ["eval", "--ckpt", "RUN", "--plot"],
    ["profile", "--device", "cpu", "--model", "cifar_resnet18", "--widths", "1", "--plot"],
    ["select", "--device", "cpu", "--latency-ms", "5", "--plot"],
])
def test_plot_without_matplotlib_is_refused_before_any_work(no_matplotlib: None, tmp_path: Path, argv: list[str],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(tmp_path / "run") if a == "RUN" else a for a in argv]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == MESSAGE
    assert not (tmp_path / "out").exists()


def test_quickstart_checks_its_backends_runtimes_before_training(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from us3l.deploy.backends import get_backend

    backend = type(get_backend("openvino"))
    monkeypatch.setattr(backend, "available", lambda self: False)
    assert main(["quickstart", "--out", str(tmp_path / "qs")]) == 1
    assert capsys.readouterr().err == ("error: the 'openvino' deploy backend needs the 'openvino' package, which is "
                                       "not installed: pip install 'us3l[openvino]'\n")
    assert not (tmp_path / "qs").exists()
