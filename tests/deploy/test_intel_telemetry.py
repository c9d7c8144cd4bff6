"""OpenVINO's converter and NNCF run with Intel's usage telemetry off (us3l.deploy.backends.intel_telemetry),
unless the user opted in with Intel's own tool."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from us3l.deploy.backends.intel_telemetry import CI_VARIABLE, telemetry_off, user_opted_in

pytest.importorskip("openvino_telemetry")


def _consent(home: Path, value: str | None) -> None:
    if value is not None:
        (home / "intel").mkdir(exist_ok=True)
        (home / "intel" / "openvino_telemetry").write_text(value)


@pytest.mark.parametrize(("consent", "before", "inside"), [
    (None, None, "true"),  # no consent file: the libraries would send; declined
    ("0", "false", "true"),  # opted out: declined all the same; the user's CI=false is back afterwards
    ("1", None, None),  # opted in with Intel's opt_in_out: left as the user chose
])
def test_the_ci_variable_inside_and_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, consent: str | None,
                                          before: str | None, inside: str | None) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    _consent(tmp_path, consent)
    if before is None:
        monkeypatch.delenv(CI_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(CI_VARIABLE, before)
    assert user_opted_in() is (consent == "1")
    with telemetry_off():
        assert os.environ.get(CI_VARIABLE) == inside
    assert os.environ.get(CI_VARIABLE) == before
    with pytest.raises(ValueError, match="boom"), telemetry_off():
        raise ValueError("boom")
    assert os.environ.get(CI_VARIABLE) == before


#: A real OpenVINO export (convert_model + save_model) and NNCF's import, in a fresh process whose home is empty
EXPORT = """
import sys, torch
from torch import nn
from us3l.deploy.backends.openvino import BACKEND
net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
BACKEND.export(net, torch.zeros(1, 3, 8, 8), sys.argv[1])
try:
    from us3l.deploy.quantize import import_nncf
    import_nncf()
except Exception:
    pass
"""


@pytest.mark.slow  # 4.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_an_openvino_export_leaves_no_telemetry_files_in_the_users_home(tmp_path: Path) -> None:
    """Without the guard, this export generated a client id (~/intel/openvino_ga_cid) and a usage counter
    (~/intel/stats) and submitted ~20 sends to Google Analytics per conversion."""
    pytest.importorskip("openvino")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (CI_VARIABLE, "TF_BUILD", "JENKINS_URL")}
    env["HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-c", EXPORT, str(tmp_path / "out")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "model.xml").is_file()
    assert sorted(p.name for p in home.rglob("*")) == []
