"""A real OpenSSH server on 127.0.0.1 for the SSH end-to-end tests (skipped when /usr/sbin/sshd is absent).

The fixture generates two host keys (Ed25519 and ECDSA) and a client key in ``tmp_path``, writes an
``sshd_config`` (free port, ``ListenAddress 127.0.0.1``, ``AuthorizedKeysFile`` and ``PidFile`` in ``tmp_path``,
``StrictModes no``, ``UsePAM no``, ``Subsystem sftp internal-sftp``, ``SetEnv TMPDIR`` to a private folder), starts
``/usr/sbin/sshd -D -e -f CONFIG`` and stops it at teardown. ``loopback_ssh_no_sftp`` is the same server without the
``Subsystem sftp`` line (SFTP disabled).
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.shared_exports import Prepared, prepare_once, reuse_prepared

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class LoopbackSSH:
    """A running sshd and what a device file needs to reach it."""

    port: int
    user: str
    key: Path
    known_hosts: Path
    host_pubkey: str
    python: str
    tmp: Path
    host_ecdsa_pubkey: str = ""  # the server's second host key ("type base64")

    @property
    def remote_tmp(self) -> Path:
        """``$TMPDIR`` of the remote sessions (sshd's ``SetEnv``): private to this sshd, so that a test can see
        what the remote side left there while other test processes use the machine's own temp folder."""
        return self.tmp / "remote-tmp"

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def device_toml(self, name: str = "loopback", python: str | None = None, known_hosts: Path | None = None,
                    port: int | None = None, backends: str = '["onnx", "openvino"]',
                    command_timeout_s: float = 120) -> str:
        return f"""
name = "{name}"
description = "sshd on 127.0.0.1 (tests)"
backends = {backends}
precision = "fp32"
threads = 1

[measure]
warmup = 2
min_repeats = 10
max_repeats = 40
target_rel_ci = 0.5
max_seconds = 1.0
chunk = 5

[reach]
host = "ssh://{self.user}@127.0.0.1:{port or self.port}"
key = "{self.key}"
known_hosts = "{known_hosts or self.known_hosts}"
python = "{python or self.python}"
connect_timeout_s = 5
command_timeout_s = {command_timeout_s}
"""

    def device_file(self, folder: Path, **kw: Any) -> Path:
        """``folder/dev.toml`` holding ``device_toml(**kw)``."""
        path = folder / "dev.toml"
        path.write_text(self.device_toml(**kw))
        return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def loopback_ssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSSH]:
    yield from _run_sshd(tmp_path_factory)


@pytest.fixture(scope="module")
def loopback_ssh_no_sftp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSSH]:
    """As ``loopback_ssh``, but the sshd has no ``Subsystem sftp`` line: it refuses SFTP (commands still run)."""
    yield from _run_sshd(tmp_path_factory, sftp=False)


def _run_sshd(tmp_path_factory: pytest.TempPathFactory, sftp: bool = True) -> Iterator[LoopbackSSH]:
    """Start an sshd (with ``Subsystem sftp internal-sftp`` when ``sftp``), yield it, stop it."""
    if not Path(SSHD).is_file() or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH server not installed (/usr/sbin/sshd): apt-get install -y openssh-server")
    try:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation directory sshd insists on
    except OSError:
        if not Path("/run/sshd").is_dir():
            pytest.skip("sshd needs /run/sshd and it cannot be created here (run: mkdir -p /run/sshd)")
    tmp = tmp_path_factory.mktemp("sshd")
    host_key, host_ecdsa, client_key = tmp / "host_ed25519", tmp / "host_ecdsa", tmp / "id_ed25519"
    _keygen(host_key)
    _keygen(host_ecdsa, "ecdsa")  # a second host key: the server offers Ed25519 first, ECDSA when asked for it
    _keygen(client_key)
    (tmp / "authorized_keys").write_text((tmp / "id_ed25519.pub").read_text())
    port = free_port()
    config = tmp / "sshd_config"
    subsystem = "Subsystem sftp internal-sftp\n" if sftp else ""  # without it, sshd refuses the SFTP subsystem
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nHostKey {host_ecdsa}\n"
        f"AuthorizedKeysFile {tmp}/authorized_keys\n"
        f"PidFile {tmp}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"{subsystem}LogLevel ERROR\n"
        f"SetEnv TMPDIR={tmp / 'remote-tmp'}\n"
    )
    (tmp / "remote-tmp").mkdir()
    host_pub = (tmp / "host_ed25519.pub").read_text().split()
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    log = open(tmp / "sshd.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.skip(f"sshd exited at start: {(tmp / 'sshd.log').read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("sshd did not open its port within 15 s")
                time.sleep(0.1)
        ecdsa_pub = (tmp / "host_ecdsa.pub").read_text().split()
        yield LoopbackSSH(port, getpass.getuser(), client_key, known_hosts, f"{host_pub[0]} {host_pub[1]}",
                          sys.executable, tmp, f"{ecdsa_pub[0]} {ecdsa_pub[1]}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def profile_exports(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """Widths 0.25 and 0.5 of the fresh seeded cifar_resnet18 (``us3l profile --model cifar_resnet18``) exported to
    ONNX once for the SSH profiles: they check the transport, the remote runner and the errors, not the export."""
    from us3l.deploy.graph import fresh_model

    return prepare_once(fresh_model("cifar_resnet18"), [0.25, 0.5], (1, 3, 32, 32), "onnx",
                        tmp_path_factory.mktemp("profile-exports"))


@pytest.fixture()
def shared_exports(monkeypatch: pytest.MonkeyPatch, profile_exports: Prepared) -> list[list[float]]:
    """``us3l profile`` takes its widths from ``profile_exports``; the width lists it asked for, one per sweep."""
    return reuse_prepared(monkeypatch, profile_exports)
