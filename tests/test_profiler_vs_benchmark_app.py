"""benchmarks/profiler_vs_benchmark_app.py: the profile command it runs and how a failing tool is reported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.script_module import load_script
from us3l.errors import US3LError

xb = load_script("benchmarks/profiler_vs_benchmark_app.py", "profiler_vs_benchmark_app_bench")


def test_the_profile_command_gives_the_widths_as_the_cli_reads_them(tmp_path: Path) -> None:
    """--widths became a list of floats (script_cli.widths) and the list itself was put into the command:
    'error: TypeError: expected str, bytes or os.PathLike object, not list' after every export had run."""
    cmd = xb.profile_command("cifar_resnet18", [1.0, 0.25], "onnx", 1, 2.0, tmp_path)
    assert all(isinstance(x, str) for x in cmd)
    assert cmd[cmd.index("--widths") + 1] == "1.0,0.25" and cmd[cmd.index("--backend") + 1] == "onnx"


def test_a_failing_tool_is_one_line_with_its_own_message() -> None:
    """A failed profile or benchmark_app was a CalledProcessError naming only the command."""
    with pytest.raises(US3LError) as err:
        xb.run_tool([sys.executable, "-c", "import sys; print('error: no such width 2', file=sys.stderr); "
                     "sys.exit(3)"], "us3l profile (onnx)")
    assert str(err.value) == "us3l profile (onnx) failed (exit 3): no such width 2"
    assert xb.run_tool([sys.executable, "-c", "print('ok')"], "x") == "ok\n"


@pytest.mark.slow
def test_a_short_run_compares_every_width() -> None:
    import subprocess

    from tests.script_module import ROOT

    done = subprocess.run([sys.executable, "benchmarks/profiler_vs_benchmark_app.py", "--widths", "1,0.25",
                           "--rounds", "1", "--seconds", "1"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    verdicts = [ln for ln in done.stdout.splitlines() if ln.startswith("width ")]
    assert [v.split(":")[0] for v in verdicts] == ["width 1", "width 0.25"]
    assert all("openvino profile/benchmark_app" in v and "onnx profile/lone session" in v for v in verdicts)
