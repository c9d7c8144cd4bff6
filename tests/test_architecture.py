"""docs/architecture.md's package rule: importing the core (``us3l/`` minus ``commands`` and ``report``) loads
nothing from ``profiler/``, ``devices/``, ``deploy/`` or ``us3l/report``; the core functions that use them
import them when called."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.script_module import ROOT

OUTSIDE_THE_CORE = ("us3l.profiler", "us3l.devices", "us3l.deploy", "us3l.report", "us3l.commands")


def _core_modules() -> list[str]:
    core = []
    for path in sorted((ROOT / "us3l").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[1] in ("commands", "report", "__main__", "cli", "cli_app", "cli_output"):
            continue
        core.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return core


@pytest.mark.slow  # 2.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_importing_the_core_loads_no_deployment_package() -> None:
    modules = _core_modules()
    assert "us3l.eval.runner" in modules and "us3l.train.loop" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({OUTSIDE_THE_CORE!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    ).stdout
    assert out.strip() == "[]", f"the core imports {out.strip()} at import time (docs/architecture.md)"
