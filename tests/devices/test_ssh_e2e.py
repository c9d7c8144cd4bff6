"""End to end over a real sshd on 127.0.0.1: profile with onnxruntime, host keys, unreachable, missing runtime.

The profiles here take their exported widths from one export per session (``shared_exports`` in conftest.py: the
graphs ``us3l profile`` would export, checked against its arguments); the export itself is local and is run by
``us3l profile`` in tests/profiler/test_graph_parity.py and test_sweep_local.py."""

from __future__ import annotations

import glob
import json
import os
import stat
from pathlib import Path

import pytest

from us3l.cli import main
from us3l.devices.spec import load_device_file
from us3l.devices.ssh import SSHSession
from us3l.errors import US3LError

from .conftest import LoopbackSSH


def _tmp_profile_dirs(ssh: LoopbackSSH) -> set[str]:
    return set(glob.glob(os.path.join(ssh.remote_tmp, "us3l-profile.*")))


@pytest.mark.slow  # 3.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_profile_over_ssh_onnx_end_to_end(loopback_ssh, shared_exports, tmp_path, capsys):
    dev = loopback_ssh.device_file(tmp_path)
    with SSHSession(load_device_file(dev).reach).connect() as ssh:  # remote temp folders land where we look
        probe = ssh.mkdtemp("us3l-probe")
        assert os.path.dirname(probe) == str(loopback_ssh.remote_tmp)
        ssh.rmtree(probe)
    before = _tmp_profile_dirs(loopback_ssh)
    out = tmp_path / "profiles"
    rc = main(["profile", "--device-file", str(dev), "--model", "cifar_resnet18", "--widths", "0.25,0.5",
               "--backend", "onnx", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads(captured.out)
    assert doc["kind"] == "profile" and doc["device"] == "loopback" and doc["backend"] == "onnx"
    assert doc["reach"] == loopback_ssh.url
    assert doc["threads"] == 1
    assert [r["width"] for r in doc["records"]] == [0.25, 0.5] and shared_exports == [[0.25, 0.5]]
    for r in doc["records"]:
        assert r["latency"]["n"] >= 10 and len(r["latency"]["samples_ms"]) == r["latency"]["n"]
        assert r["macs"] > 0 and r["latency"]["p50_ms"] > 0
    assert doc["fingerprint"]["cpu"]["logical_cores"] >= 1  # measured by the remote side
    assert "onnxruntime" in doc["fingerprint"]["packages"]
    assert (out / "cifar_resnet18-loopback-onnx-fp32.json").is_file()
    assert (out / "cifar_resnet18-loopback-onnx-fp32.csv").is_file()
    assert _tmp_profile_dirs(loopback_ssh) == before, "remote temp folder was not removed"


@pytest.mark.slow  # 1.3 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_devices_check_over_ssh(loopback_ssh, tmp_path, capsys):
    dev = loopback_ssh.device_file(tmp_path)
    assert main(["devices", "--device-file", str(dev), "--device", "loopback", "--check", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["devices"]
    assert entry["check"]["reachable"] and entry["check"]["runtimes"] == {"onnx": True, "openvino": True}


def test_unknown_host_key_is_refused(loopback_ssh, tmp_path):
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    spec = load_device_file(loopback_ssh.device_file(tmp_path, known_hosts=empty))
    with pytest.raises(US3LError, match="unknown SSH host key.*ssh-keyscan -p"):
        SSHSession(spec.reach).connect()


def test_wrong_host_key_is_refused(loopback_ssh, tmp_path):
    other = tmp_path / "other_key"
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kh = tmp_path / "known_hosts_wrong"
    kh.write_text(f"[127.0.0.1]:{loopback_ssh.port} {' '.join(Path(f'{other}.pub').read_text().split()[:2])}\n")
    spec = load_device_file(loopback_ssh.device_file(tmp_path, known_hosts=kh))
    with pytest.raises(US3LError, match="does NOT match"):
        SSHSession(spec.reach).connect()


def test_unreachable_port_is_a_clear_error(loopback_ssh, shared_exports, tmp_path, capsys):
    from tests.devices.conftest import free_port

    dev = loopback_ssh.device_file(tmp_path, port=free_port())
    rc = main(["profile", "--device-file", str(dev), "--model", "cifar_resnet18", "--widths", "0.25"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("error: cannot reach ssh://") and err.count("\n") == 1


@pytest.mark.slow  # 1.3 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_missing_runtime_is_a_clear_error(loopback_ssh, shared_exports, tmp_path, capsys):
    # a real interpreter without onnxruntime: the venv's python with site-packages disabled (-S)
    wrapper = tmp_path / "python-no-runtime"
    wrapper.write_text(f'#!/bin/sh\nexec "{loopback_ssh.python}" -S "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    dev = loopback_ssh.device_file(tmp_path, python=str(wrapper))
    before = _tmp_profile_dirs(loopback_ssh)
    rc = main(["profile", "--device-file", str(dev), "--model", "cifar_resnet18", "--widths", "0.25",
               "--backend", "onnx", "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "runtime missing on ssh://" in err and "onnxruntime is not installed" in err
    assert _tmp_profile_dirs(loopback_ssh) == before


def test_marker_lines_in_known_hosts_are_read_as_openssh_reads_them(loopback_ssh, tmp_path):
    """A ``@cert-authority`` line for another domain must not break every connection (paramiko's loader stops
    there); a ``@revoked`` line for the device's own key refuses it, as OpenSSH does."""
    good = loopback_ssh.known_hosts.read_text()
    other = tmp_path / "ca"
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    ca = f"@cert-authority *.example.com {' '.join(Path(f'{other}.pub').read_text().split()[:2])}\n"
    kh = tmp_path / "known_hosts_ca"
    kh.write_text(ca + good)
    spec = load_device_file(loopback_ssh.device_file(tmp_path, known_hosts=kh))
    with SSHSession(spec.reach) as session:
        assert session.client is not None
    revoked = tmp_path / "known_hosts_revoked"
    revoked.write_text(good + f"@revoked * {loopback_ssh.host_pubkey}\n")
    spec = load_device_file(loopback_ssh.device_file(tmp_path, known_hosts=revoked))
    with pytest.raises(US3LError, match=r"host key of .* is marked @revoked in .*known_hosts_revoked"):
        SSHSession(spec.reach).connect()


def test_a_damaged_known_hosts_line_is_skipped_as_openssh_skips_it(loopback_ssh, tmp_path):
    """Red-team 2026-12-06: one damaged line for another host (bad base64) refused every device ("cannot read the
    known_hosts file ...: line 1"), while ssh with the same file connected. It is skipped; when the device's own
    line is the damaged one, the unknown-key error names the skipped line."""
    damaged = "otherhost ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI@@broken\n"
    kh = tmp_path / "known_hosts_damaged"
    kh.write_text(damaged + loopback_ssh.known_hosts.read_text())
    spec = load_device_file(loopback_ssh.device_file(tmp_path, known_hosts=kh))
    with SSHSession(spec.reach) as session:
        assert session.run(["echo", "hi"]).stdout == "hi\n"
    kh.write_text(damaged + f"[127.0.0.1]:{loopback_ssh.port} {loopback_ssh.host_pubkey[:-6]}@@@@@@\n")
    with pytest.raises(US3LError, match=r"unknown SSH host key .*; line\(s\) 1, 2 of it could not be read and were "
                                        r"skipped, as ssh skips them\); verify the device"):
        SSHSession(spec.reach).connect()


def test_file_transfer_failures_are_one_line_naming_the_remote_path(loopback_ssh, tmp_path):
    local = tmp_path / "model.onnx"
    local.write_bytes(b"x")
    missing = str(tmp_path / "no-such-folder" / "model.onnx")
    spec = load_device_file(loopback_ssh.device_file(tmp_path))
    with SSHSession(spec.reach) as s:
        with pytest.raises(US3LError) as info:
            s.put(local, missing)
        assert str(info.value) == f"copying {local} to {loopback_ssh.url}:{missing} failed: No such file"
        with pytest.raises(US3LError, match=rf"^reading {loopback_ssh.url}:{missing} failed: No such file$"):
            s.read_text(missing)
        with pytest.raises(US3LError, match=r"^creating the folder .* failed: "):
            s.mkdir(missing + "/deeper")
        s.write_bytes(str(tmp_path / "ok.json"), b"{}")
        assert s.read_text(str(tmp_path / "ok.json")) == "{}"


def test_devices_check_names_a_missing_remote_python_and_how_to_add_a_runtime(loopback_ssh, tmp_path, capsys):
    """Red-team 2026-12-05: both said only 'missing runtime: onnx', where us3l profile names the interpreter."""
    dev = loopback_ssh.device_file(tmp_path, python="/nonexistent/python", backends='["onnx"]')
    assert main(["devices", "--device-file", str(dev), "--device", "loopback", "--check"]) == 1
    out = capsys.readouterr().out
    assert "remote python '/nonexistent/python' not found: set [reach] python in the device file" in out, out
    wrapper = tmp_path / "python-no-runtime"
    wrapper.write_text(f'#!/bin/sh\nexec "{loopback_ssh.python}" -S "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    dev = loopback_ssh.device_file(tmp_path, python=str(wrapper), backends='["onnx"]')
    assert main(["devices", "--device-file", str(dev), "--device", "loopback", "--check", "--json"]) == 1
    (entry,) = json.loads(capsys.readouterr().out)["devices"]
    assert entry["check"]["message"].endswith(f"missing runtime: onnx (for {wrapper}: pip install onnxruntime)")


@pytest.mark.slow  # 1.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_host_without_the_sftp_subsystem_is_named_not_a_lost_connection(loopback_ssh_no_sftp, shared_exports,
                                                                          tmp_path, capsys):
    """An sshd with no ``Subsystem sftp`` line refuses the SFTP channel the uploads use; that read as "lost the
    SSH connection", which sent users after network problems."""
    ssh = loopback_ssh_no_sftp
    before = _tmp_profile_dirs(ssh)
    rc = main(["profile", "--device-file", str(ssh.device_file(tmp_path)), "--model", "cifar_resnet18",
               "--widths", "0.25", "--backend", "onnx", "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err == (f"error: the SSH server of {ssh.url} refused the SFTP subsystem, which us3l copies files with "
                   "(SFTP disabled there?): enable it in the host's sshd_config (a 'Subsystem sftp' line, e.g. "
                   "'Subsystem sftp internal-sftp') and restart sshd\n")
    assert _tmp_profile_dirs(ssh) == before, "remote temp folder was not removed"


@pytest.mark.slow  # 2.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_an_openvino_device_the_remote_runtime_lacks_is_one_line(loopback_ssh, tmp_path, capsys):
    """Red-team: `openvino_device = "CPU.1"` passed the device-file check and the remote runner died in
    compile_model with a traceback; the host now refuses it from the runner's device list, naming the file."""
    pytest.importorskip("openvino")
    from us3l.deploy.backends.openvino import shared_core

    dev = tmp_path / "dev.toml"
    dev.write_text(loopback_ssh.device_toml().replace("threads = 1\n", 'threads = 1\ninput_size = 8\n'
                                                                        'openvino_device = "CPU.1"\n'))
    before = _tmp_profile_dirs(loopback_ssh)
    rc = main(["profile", "--device-file", str(dev), "--model", "cifar_resnet18", "--widths", "0.25",
               "--backend", "openvino", "--out", str(tmp_path / "p")])
    assert rc == 1
    assert capsys.readouterr().err == (
        f"error: device file {dev}: remote runner on {loopback_ssh.url}: OpenVINO device 'CPU.1' is not present "
        f"(available: {', '.join(shared_core().available_devices)}; or AUTO, HETERO:<list>, MULTI:<list>, "
        "BATCH:<device> over those)\n")
    assert _tmp_profile_dirs(loopback_ssh) == before
