"""A remote command that stops answering is killed on the device, not left running (real sshd on 127.0.0.1)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from us3l.cli import main
from us3l.devices.spec import load_device_file
from us3l.devices.ssh import SSHSession
from us3l.errors import US3LError


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, already dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _pid_from(path: Path, seconds: float = 10) -> int:
    deadline = time.monotonic() + seconds
    while not path.is_file() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.05)
    return int(path.read_text())


@pytest.mark.slow  # waits out a 5 s timeout, on a loaded machine more
def test_a_command_that_times_out_is_killed_on_the_device(loopback_ssh, tmp_path):
    """The timeout also covers the start: sshd's login shell, then ``sh`` printing its pid. 1 s was too little on
    a loaded machine ('remote shell ... did not start within 1 s', the command never killed); 5 s is not."""
    pidfile = tmp_path / "pid"
    spec = load_device_file(loopback_ssh.device_file(tmp_path))
    with SSHSession(spec.reach) as s:
        with pytest.raises(US3LError, match=r"remote command timed out after 5 s on ssh://.*sleep 300"):
            s.run(["sh", "-c", f'echo $$ > "{pidfile}"; exec sleep 300'], timeout=5)
        pid = _pid_from(pidfile)
        assert _gone_within(pid, 10), f"remote 'sleep 300' (pid {pid}) still running after the timeout"
        assert s.run(["echo", "still usable"]).stdout == "still usable\n"  # the session survives the kill


@pytest.mark.slow  # waits out a 5 s timeout, on a loaded machine more
def test_a_runner_that_stops_answering_is_killed_and_its_folder_removed(loopback_ssh, shared_exports, tmp_path,
                                                                        capsys):
    """The device's python hangs before the runner's first answer (an import that never returns): the profile
    fails with one line, the process is killed on the device and the remote temp folder is removed. The command
    timeout bounds every step before that too (each remote shell's start, each file copied): 5 s, not 2, so that
    only the hung runner can exceed it on a loaded machine."""
    pidfile = tmp_path / "pid"
    hung = tmp_path / "python-hangs"
    hung.write_text(f'#!/bin/sh\necho $$ > "{pidfile}"\nexec sleep 300\n')
    hung.chmod(hung.stat().st_mode | stat.S_IXUSR)
    dev = loopback_ssh.device_file(tmp_path, python=str(hung), command_timeout_s=5)
    before = set(os.listdir(loopback_ssh.remote_tmp))
    rc = main(["profile", "--device-file", str(dev), "--model", "cifar_resnet18", "--widths", "0.25",
               "--backend", "onnx", "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("error: remote runner on ssh://") and "stopped answering (timeout)" in err, err
    assert err.count("\n") == 1
    pid = _pid_from(pidfile)
    assert _gone_within(pid, 10), f"hung remote runner (pid {pid}) still running after the error"
    assert {n for n in os.listdir(loopback_ssh.remote_tmp) if n.startswith("us3l-profile.")} <= before


_UPLOAD = """
import sys
from pathlib import Path
from us3l.devices.spec import load_device_file
from us3l.devices.ssh import SSHSession
from us3l.profiler.remote import RemoteRunner

with SSHSession(load_device_file(sys.argv[1]).reach) as s, RemoteRunner(s, "onnx", {"w1": ([Path(sys.argv[2])], [1])},
                                                                        threads=1):
    pass
"""


@pytest.mark.slow  # 1.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_host_killed_during_the_uploads_leaves_no_folder_on_the_device(loopback_ssh, tmp_path):
    """Red-team 2026-12-06: the runner removes its folder when the host goes away, but before it starts nobody
    did: a host killed outright (SIGKILL, a crash) or cut off while uploading the models left them on the device
    for good. A guard started with the folder removes it unless the host says the runner is up."""
    import signal
    import subprocess
    import sys

    big = tmp_path / "big.onnx"
    with open(big, "wb") as fh:
        fh.truncate(400 * 2**20)  # an upload that takes a while
    script = tmp_path / "upload.py"
    script.write_text(_UPLOAD)
    proc = subprocess.Popen([sys.executable, str(script), str(loopback_ssh.device_file(tmp_path)), str(big)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ours = set()
    deadline = time.monotonic() + 60
    while not ours:  # the folder exists and the model is on its way
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the upload did not start"
        ours = {p for p in loopback_ssh.remote_tmp.glob("us3l-profile.*") if (p / "w1" / "big.onnx").is_file()}
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    deadline = time.monotonic() + 20
    while any(p.exists() for p in ours) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(p.exists() for p in ours), "the remote folder of a killed upload was left behind"


_TRT_SESSION = """
import sys, time
from us3l.devices.spec import load_device_file
from us3l.devices.ssh import SSHSession
from us3l.profiler import trt_timers

trt_timers.probe_trtexec = lambda ex: ("trtexec", None)  # no TensorRT here: the session's folder is what is checked
with SSHSession(load_device_file(sys.argv[1]).reach) as s:
    trt = trt_timers.TrtexecSession(s)
    print(trt.workdir, flush=True)
    if sys.argv[2] == "close":
        trt.close()
        print("closed", flush=True)
    time.sleep(300)
"""


@pytest.mark.slow  # waits for a killed SSH session
def test_a_host_killed_during_a_tensorrt_session_leaves_no_folder_on_the_device(loopback_ssh, tmp_path):
    """Red-team 2026-12-06: TrtexecSession's folder (ONNX files, engines) was removed only by close(): a host
    killed outright (SIGKILL, a crash) or cut off left it on the device for good."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "trt_session.py"
    script.write_text(_TRT_SESSION)
    for how in ("kill", "close"):
        proc = subprocess.Popen([sys.executable, str(script), str(loopback_ssh.device_file(tmp_path)), how],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        workdir = Path(proc.stdout.readline().strip())
        assert workdir.is_dir() and workdir.name.startswith("us3l-trt."), proc.stderr.read() if proc.stderr else ""
        if how == "close":
            assert proc.stdout.readline().strip() == "closed"
            assert not workdir.exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 20
        while workdir.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not workdir.exists(), f"the TensorRT folder was left behind ({how})"
