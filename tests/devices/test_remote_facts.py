"""What a device's runner reports about itself (fingerprint, runtime version) is checked before it is recorded as
the device's environment in the profile (real sshd on 127.0.0.1; the device's python is a wrapper that changes
what the runner reports)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from us3l.cli import main

from .conftest import LoopbackSSH


def _profile(ssh: LoopbackSSH, tmp_path: Path, body: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``us3l profile`` of one width on the loopback device whose python runs ``body`` (sh) first."""
    wrapper = tmp_path / "device python"
    wrapper.write_text(f"#!/bin/sh\n{body}\nexec \"{ssh.python}\" \"$@\"\n")
    wrapper.chmod(0o755)
    device = ssh.device_file(tmp_path, python=str(wrapper), command_timeout_s=30)
    rc = main(["profile", "--device-file", str(device), "--model", "cifar_resnet18", "--widths", "0.25",
               "--backend", "onnx", "--out", str(tmp_path / "p")])
    return rc, capsys.readouterr().err


def _fingerprint_is(collect: str) -> str:
    """sh lines that replace the fingerprint.py shipped beside the runner ($1) with one whose collect() returns
    ``collect`` (Python, without single quotes)."""
    return f"printf '%s\\n' 'def collect():' '    return {collect}' > \"$(dirname \"$1\")/fingerprint.py\""


@pytest.mark.parametrize(("collect", "problem"), [
    ("{}", "an empty fingerprint"),  # was: the host's own fingerprint recorded as the device's
    ("None", "a fingerprint that is not an object: 'None'"),  # was: the host's own too
    ('{"cpu": {"cur_mhz": float("nan")}}', "a fingerprint whose cpu.cur_mhz is not a finite number"),  # was: the
    # whole sweep ran, then "the measured profile is not valid, not written"
    ('{"pad": "x" * 100000}', "a fingerprint of 100011 bytes (more than 64 KiB)"),  # was: recorded whole
])
@pytest.mark.slow  # 4 cases, 2.1 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_fingerprint_the_device_did_not_send_is_recorded_as_an_error_not_the_hosts(
        loopback_ssh, shared_exports, tmp_path, capsys, collect, problem):
    """Red-team 2026-12-07: an empty or missing remote fingerprint was replaced by the host's (sweep.py's
    ``facts.get("fingerprint") or fingerprint.collect()``), a NaN in it failed the profile after the sweep, and
    any size of it was recorded."""
    rc, err = _profile(loopback_ssh, tmp_path, _fingerprint_is(collect), capsys)
    assert rc == 0, err
    (path,) = (tmp_path / "p").glob("*.json")
    fp = json.loads(path.read_text())["fingerprint"]
    assert fp == {"error": f"remote runner on {loopback_ssh.url} sent {problem}; not recorded"}


@pytest.mark.parametrize("version", ["1.17\\x1b[2J", "1.17" + "0" * 300])
@pytest.mark.slow  # 2 cases, 1.8 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_runtime_version_that_is_not_one_is_refused_before_any_timing(loopback_ssh, shared_exports, tmp_path,
                                                                        capsys, version):
    """Red-team 2026-12-07: the runner's version was recorded as sent, a terminal escape (shown by the report and
    ``profile show``) or a screenful of text too."""
    shim = (f"import runpy, sys, onnxruntime; onnxruntime.__version__ = '{version}'; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    body = f"exec \"{loopback_ssh.python}\" -c \"{shim}\" \"$@\""
    rc, err = _profile(loopback_ssh, tmp_path, body, capsys)
    assert rc == 1 and err.count("\n") == 1, err
    assert err.startswith(f"error: remote runner on {loopback_ssh.url} sent a runtime version that is not a version "
                          "(printable text of at most 200 characters): '1.17"), err
    assert not list((tmp_path / "p").glob("*.json"))


@pytest.mark.parametrize(("edit", "fact"), [
    # the ready line's (memory_facts): was the window plan's baseline_bytes, written into the profile as -5
    ('s/return {"rss_bytes": proc_bytes("VmRSS"),/return {"rss_bytes": -5,/', "rss_bytes"),
    # the first stat answer's: was recorded as the profile's peak_rss_bytes
    ('s/facts\\["live"\\] = len(models.loaded)/facts["live"] = 0; facts["peak_rss_bytes"] = 10 ** 30/',
     "peak_rss_bytes"),
], ids=["ready-rss", "stat-peak"])
@pytest.mark.slow  # 2 cases, 1.7 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_memory_fact_out_of_bounds_ends_the_profile_when_it_arrives(loopback_ssh, shared_exports, tmp_path,
                                                                      capsys, edit, fact):
    """Red-team 2026-12-08: the runner's memory facts were only checked to be integers."""
    rc, err = _profile(loopback_ssh, tmp_path, f"sed -i '{edit}' \"$1\"", capsys)
    assert rc == 1 and err.count("\n") == 1, err
    assert err.startswith(f"error: remote runner on {loopback_ssh.url}: {fact} must be an integer from 1 to "
                          "1125899906842624 or null, got "), err
    assert not list((tmp_path / "p").glob("*.json"))


@pytest.mark.slow  # 1.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_timing_sample_beyond_an_hour_ends_the_profile_when_it_arrives(loopback_ssh, shared_exports, tmp_path,
                                                                         capsys):
    """Red-team 2026-12-08: samples had no upper bound; 1e300 s each was written into the profile as measured."""
    edit = 's/\\[model.time_once(x) for _ in range(n)\\]/[1e300 for _ in range(n)]/'
    rc, err = _profile(loopback_ssh, tmp_path, f"sed -i '{edit}' \"$1\"", capsys)
    assert rc == 1 and err.count("\n") == 1, err
    assert err.startswith(f"error: remote runner on {loopback_ssh.url}: samples[0] must be a finite positive number "
                          "<= 3600, got 1e+300"), err
    assert not list((tmp_path / "p").glob("*.json"))
