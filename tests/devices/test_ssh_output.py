"""A remote command's standard error is read as it comes, whatever its size (real sshd on 127.0.0.1).

Unread, it filled the SSH channel's window (2 MiB, shared with standard output): the command blocked writing a
warning while the host waited for its answer, and a healthy runner was reported as "stopped answering"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.bounded_reads import check_bounded_reads
from us3l.cli import main
from us3l.devices.spec import load_device_file
from us3l.devices.ssh import SSHSession
from us3l.errors import US3LError

from .conftest import LoopbackSSH

_FLOOD = 'head -c 3000000 /dev/zero | tr "\\\\0" w >&2'  # 3 MB of warnings, more than the channel's window


def _device(ssh: LoopbackSSH, tmp_path: Path, python: str | None = None) -> Path:
    return ssh.device_file(tmp_path, python=python, command_timeout_s=20)


def _python(tmp_path: Path, body: str) -> str:
    """A device python (its path has a space) that runs ``body`` in sh first."""
    wrapper = tmp_path / "device python"
    wrapper.write_text(f"#!/bin/sh\n{body}\n")
    wrapper.chmod(0o755)
    return str(wrapper)


def test_a_command_writing_megabytes_to_stderr_is_not_stalled(loopback_ssh, tmp_path):
    spec = load_device_file(_device(loopback_ssh, tmp_path))
    with SSHSession(spec.reach) as s:
        res = s.run(["sh", "-c", f"{_FLOOD}; echo done"], timeout=10)  # a stalled command times out: an error
        assert (res.returncode, res.stdout, len(res.stderr)) == (0, "done\n", 3000000)


@pytest.mark.slow  # a remote profile that writes megabytes
def test_a_runner_that_warns_megabytes_still_profiles(loopback_ssh, shared_exports, tmp_path, capsys):
    python = _python(tmp_path, f'{_FLOOD}\nexec "{loopback_ssh.python}" "$@"')
    rc = main(["profile", "--device-file", str(_device(loopback_ssh, tmp_path, python)), "--model", "cifar_resnet18",
               "--widths", "0.25", "--backend", "onnx", "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 0, err  # a stalled runner was reported as "stopped answering": an error


@pytest.mark.slow  # a remote profile that writes megabytes
def test_a_runner_that_fails_after_megabytes_of_stderr_names_its_last_line(loopback_ssh, shared_exports, tmp_path,
                                                                          capsys):
    python = _python(tmp_path, f'{_FLOOD}\necho "the reason" >&2\nexit 1')
    before = set(os.listdir(loopback_ssh.remote_tmp))
    rc = main(["profile", "--device-file", str(_device(loopback_ssh, tmp_path, python)), "--model", "cifar_resnet18",
               "--widths", "0.25", "--backend", "onnx", "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("error: remote runner on ssh://") and err.endswith("wwwthe reason\n")
    assert err.count("\n") == 1 and len(err) < 400  # the end of a 3 MB last line, not all of it
    assert {n for n in os.listdir(loopback_ssh.remote_tmp) if n.startswith("us3l-profile.")} <= before


@pytest.mark.slow  # 2.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_runner_killed_by_a_signal_is_said_so(loopback_ssh, shared_exports, tmp_path, capsys):
    """sshd reports a command killed by a signal (the OOM killer) without an exit status: paramiko's -1 read as
    "exited with status -1: (no error output)"."""
    python = _python(tmp_path, "kill -9 $$")
    rc = main(["profile", "--device-file", str(_device(loopback_ssh, tmp_path, python)), "--model", "cifar_resnet18",
               "--widths", "0.25", "--backend", "onnx", "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert "was killed on the device (no exit status: a signal" in err and "status -1" not in err, err
    spec = load_device_file(_device(loopback_ssh, tmp_path))
    with SSHSession(spec.reach) as s, pytest.raises(US3LError, match=r"\(was killed on the device .*\): sh -c"):
        s.run(["sh", "-c", "kill -9 $$"], check=True)


@pytest.mark.slow  # 1.6 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_runner_whose_answer_is_cut_off_is_not_called_a_json_error(loopback_ssh, shared_exports, tmp_path,
                                                                     capsys):
    """An answer cut off by the runner's end (a crash in the middle of a write) was
    reported as "remote runner sent something that is not JSON: '{\\"ready\\": true, ..." without the reason."""
    python = _python(tmp_path, 'printf \'{"ready": true, "runtime": "onnx\'; echo "Segmentation fault" >&2; exit 139')
    rc = main(["profile", "--device-file", str(_device(loopback_ssh, tmp_path, python)), "--model", "cifar_resnet18",
               "--widths", "0.25", "--backend", "onnx", "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert err.endswith(" exited with status 139 in the middle of an answer (32 characters of it came): "
                        "Segmentation fault\n"), err


@pytest.mark.parametrize(("body", "message"), [
    # 5 MB of one answer line: read to its end, the host held all of it (a runaway device: without end)
    ("head -c 5000000 /dev/zero | tr '\\0' x; exit 0",
     "sent an answer longer than 4 MiB, which no runner answer is: 'xxxx"),
    # not UTF-8: paramiko's UnicodeDecodeError ended the profile as "error: 'utf-8' codec can't decode byte 0xff"
    ("printf '\\377\\376\\n'; exit 0", "sent bytes that are not UTF-8 text"),
])
@pytest.mark.slow  # 2 cases, 1.4 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_runner_answer_that_is_too_long_or_not_text_is_one_line(loopback_ssh, shared_exports, tmp_path, capsys,
                                                                  body, message):
    """Red-team 2026-12-07: the runner's answers were read with an unbounded readline, decoded strictly."""
    python = _python(tmp_path, body)
    before = set(os.listdir(loopback_ssh.remote_tmp))
    rc = main(["profile", "--device-file", str(_device(loopback_ssh, tmp_path, python)), "--model", "cifar_resnet18",
               "--widths", "0.25", "--backend", "onnx", "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and len(err) < 400, err[:400]
    assert err.startswith("error: remote runner on ssh://") and message in err, err[:400]
    assert {n for n in os.listdir(loopback_ssh.remote_tmp) if n.startswith("us3l-profile.")} <= before


@pytest.mark.slow  # 1.5 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_commands_output_and_a_remote_file_are_read_bounded(loopback_ssh, tmp_path, monkeypatch):
    """Red-team 2026-12-08: ``SSHSession.run`` read a command's standard output (and kept its standard error) and
    ``read_text`` a remote file (trtexec's --exportTimes) to its end, however large: a device printing without end
    filled the host's memory. Now each call reads at most MAX_OUTPUT_BYTES (here lowered to 1 MiB) and says so."""
    from us3l.devices import ssh

    assert ssh.MAX_OUTPUT_BYTES == 64 << 20  # the documented bound (docs/profiling.md)
    monkeypatch.setattr(ssh, "MAX_OUTPUT_BYTES", 1 << 20)
    spec = load_device_file(_device(loopback_ssh, tmp_path))
    with SSHSession(spec.reach) as s:
        check_bounded_reads(s, tmp_path, f"remote command on {loopback_ssh.url}", f"{loopback_ssh.url}:", timeout=20)
