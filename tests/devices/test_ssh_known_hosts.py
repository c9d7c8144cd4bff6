"""Host-key checking against a real sshd on 127.0.0.1: every known_hosts form decides as OpenSSH's ``ssh`` does.

Red-team 2026-12-06: paramiko's ``HostKeys`` (what us3l used) matched exact and hashed names only and kept one key
per name and type. A key vouched for by ``*`` or ``[10.0.0.?]:2222``, by a plain ``host`` line on another port, or
by the second of two lines was refused while ``ssh`` connected; a ``@revoked`` line for another host refused the
device; and ``host,!host`` was accepted where ``ssh`` refuses. Each case below is checked against the expected
outcome and, where the ``ssh`` client is installed, against ``ssh`` itself with the same file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from us3l.devices.spec import load_device_file
from us3l.devices.ssh import SSHSession
from us3l.errors import US3LError

from .conftest import LoopbackSSH

H = "127.0.0.1"


def _other_key(tmp_path: Path) -> str:
    """The public half ("type base64") of a fresh Ed25519 key that is not the server's."""
    path = tmp_path / "not_the_host_key"
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(Path(f"{path}.pub").read_text().split()[:2])


def _hashed(name: str) -> str:
    """``name`` hashed as ``ssh-keygen -H`` writes it (``|1|salt|HMAC-SHA1(salt, name)``)."""
    salt = hashlib.sha1(name.encode()).digest()  # any 20 bytes
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


# (case, known_hosts lines, the refusal's message or None where the key is accepted). In the lines: {port} is the
# sshd's port, {ed} its Ed25519 key, {ecdsa} its ECDSA key, {other} a key that is not the server's.
CASES = [
    ("exact [host]:port", ["[{h}]:{port} {ed}"], None),
    ("wildcard *", ["* {ed}"], None),
    ("wildcard ? in [host]:port", ["[127.0.0.?]:{port} {ed}"], None),
    ("wildcard in the port", ["[{h}]:*  {ed}"], None),
    ("comma list", ["pi.lab,[{h}]:{port},10.0.0.1 {ed}"], None),
    ("hashed [host]:port", ["{hashed_port} {ed}"], None),
    ("plain host, ssh's retry without the port", ["{h} {ed}"], None),
    ("hashed plain host, ssh's retry without the port", ["{hashed_host} {ed}"], None),
    ("the second of two keys for the host", ["[{h}]:{port} {other}", "[{h}]:{port} {ed}"], None),
    ("the first of two keys for the host", ["[{h}]:{port} {ed}", "[{h}]:{port} {other}"], None),
    ("known by its ECDSA key only, through a wildcard", ["[127.0.0.*]:{port} {ecdsa}"], None),
    # ssh does not ask first for a key type whose known key is revoked: the server then offers its ECDSA key
    ("its Ed25519 key revoked, its ECDSA key known", ["[{h}]:{port} {ed}", "* {ecdsa}", "@revoked * {ed}"], None),
    ("@revoked for another host", ["[{h}]:{port} {ed}", "@revoked pi.lab {ed}"], None),
    ("@revoked for the plain host, accepted for [host]:port", ["[{h}]:{port} {ed}", "@revoked {h} {ed}"], None),
    ("@revoked negated for this host", ["* {ed}", "@revoked *,!{h},![{h}]:{port} {ed}"], None),
    ("another key type @revoked", ["* {ed}", "@revoked * {ecdsa}"], None),
    ("@cert-authority for other hosts, the key on its own line", ["@cert-authority *.lab {other}", "* {ed}"], None),
    ("a negated name is not matched", ["[{h}]:{port},![{h}]:{port} {ed}"], "unknown SSH host key"),
    ("negated among wildcards", ["*,![{h}]:*,!{h} {ed}"], "unknown SSH host key"),
    ("another port only", ["[{h}]:2222 {ed}", "[{h}]:{port}0 {ed}"], "unknown SSH host key"),
    ("another host only", ["127.0.0.2 {ed}", "[127.0.0.1?]:{port} {ed}"], "unknown SSH host key"),
    ("revoked even though a wildcard line accepts it", ["[127.*]:{port} {ed}", "@revoked * {ed}"],
     r"is marked @revoked in .* \(line 2\)"),
    ("revoked for the plain host, found by the retry", ["{h} {ed}", "@revoked {h} {ed}"], "is marked @revoked"),
    ("[host]:port names another key: no retry with the plain host", ["[{h}]:{port} {other}", "{h} {ed}"],
     r"does NOT match the one in .*known_hosts \(line 1\) for \[127\.0\.0\.1\]:\d+: refusing"),
    ("a wildcard line with another key", ["[127.0.0.?]:* {other}"], "does NOT match"),
    ("only a @cert-authority for the host", ["@cert-authority * {ed}"],
     r"known_hosts \(line 1\) name it only as @cert-authority, for host certificates, which us3l does not check"),
    ("an unknown marker", ["@trusted * {ed}"], r"line\(s\) 1 of it could not be read"),
    ("a key whose type field lies", ["* ssh-rsa {ed_blob}"], r"line\(s\) 1 of it could not be read"),
]


def _known_hosts(ssh: LoopbackSSH, tmp_path: Path, lines: list[str]) -> Path:
    values = {
        "h": H, "port": ssh.port, "ed": ssh.host_pubkey, "ecdsa": ssh.host_ecdsa_pubkey,
        "other": _other_key(tmp_path), "ed_blob": ssh.host_pubkey.split()[1],
        "hashed_port": _hashed(f"[{H}]:{ssh.port}"), "hashed_host": _hashed(H),
    }
    path = tmp_path / "known_hosts"
    path.write_text("".join(line.format(**values) + "\n" for line in lines))
    return path


def _openssh_accepts(ssh: LoopbackSSH, known_hosts: Path) -> bool:
    """Whether OpenSSH's ``ssh`` (strict host-key checking, this file only) connects."""
    argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "-i", str(ssh.key), "-p", str(ssh.port),
            f"{ssh.user}@{H}", "true"]
    return subprocess.run(argv, capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def openssh_accepts(loopback_ssh, tmp_path_factory) -> dict[str, bool]:
    """For each case, whether ``ssh`` connects with its file; empty where the client is not installed. The cases'
    connections are made a few at a time, in threads (each mostly waits for the server; sshd drops unauthenticated
    connections beyond its ``MaxStartups``, 10)."""
    if shutil.which("ssh") is None:
        return {}
    root = tmp_path_factory.mktemp("openssh")
    files = {}
    for i, (case, lines, _) in enumerate(CASES):
        (root / str(i)).mkdir()
        files[case] = _known_hosts(loopback_ssh, root / str(i), lines)
    with ThreadPoolExecutor(max_workers=4) as pool:
        decided = pool.map(lambda kh: _openssh_accepts(loopback_ssh, kh), files.values())
        return dict(zip(files, decided, strict=True))


@pytest.mark.parametrize(("case", "lines", "refusal"), CASES, ids=[c[0] for c in CASES])
def test_known_hosts_forms_decide_as_openssh_does(loopback_ssh, openssh_accepts, tmp_path, case, lines, refusal):
    kh = _known_hosts(loopback_ssh, tmp_path, lines)
    dev = tmp_path / "dev.toml"
    dev.write_text(loopback_ssh.device_toml(known_hosts=kh))
    reach = load_device_file(dev).reach
    if refusal is None:
        with SSHSession(reach) as session:
            assert session.run(["echo", "hi"]).stdout == "hi\n"
    else:
        with pytest.raises(US3LError, match=refusal) as info:
            SSHSession(reach).connect()
        assert "\n" not in str(info.value)
    if openssh_accepts:
        assert openssh_accepts[case] == (refusal is None), f"ssh decides otherwise: {case}"


def test_without_a_known_hosts_in_the_device_file_the_files_ssh_reads_vouch(loopback_ssh, tmp_path, monkeypatch):
    """Red-team 2026-12-06: only ~/.ssh/known_hosts was read, so a device whose key is in the system-wide
    /etc/ssh/ssh_known_hosts (where a lab keeps its fleet's keys) or in ~/.ssh/known_hosts2 was refused while ssh
    connected. They are read as one set, as ssh reads them: a @revoked line in one refuses a key another accepts."""
    import us3l.devices.ssh as ssh_mod

    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    system = tmp_path / "etc" / "ssh_known_hosts"
    system.parent.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(ssh_mod, "SSH_KNOWN_HOSTS_FILES", ("~/.ssh/known_hosts", "~/.ssh/known_hosts2", str(system)))
    dev = tmp_path / "dev.toml"
    dev.write_text(loopback_ssh.device_toml().replace(f'known_hosts = "{loopback_ssh.known_hosts}"\n', ""))
    reach = load_device_file(dev).reach
    assert reach.known_hosts is None
    line = f"[{H}]:{loopback_ssh.port} {loopback_ssh.host_pubkey}\n"
    with pytest.raises(US3LError) as info:  # in none of them
        SSHSession(reach).connect()
    user_file = home / ".ssh" / "known_hosts"
    assert str(info.value).startswith(
        f"unknown SSH host key for {loopback_ssh.url} (not in {user_file}: there is no such file); verify")
    assert str(info.value).endswith(f">> {user_file}")  # the keyscan hint adds to the user's own file
    for where in (system, home / ".ssh" / "known_hosts2"):
        where.write_text(line)
        with SSHSession(reach) as session:
            assert session.run(["echo", "hi"]).stdout == "hi\n"
        where.unlink()
    user_file.write_text(line)
    system.write_text(f"@revoked * {loopback_ssh.host_pubkey}\n")
    with pytest.raises(US3LError, match=rf"is marked @revoked in {system} \(line 1\)"):
        SSHSession(reach).connect()


def test_host_key_algorithms_are_ordered_as_ssh_orders_them():
    """ssh keeps its own order when the type of its first algorithm (Ed25519) is known for the host, and otherwise
    moves the known types' algorithms first: with Ed25519 and RSA known, a server without Ed25519 is asked for
    ECDSA (an unknown key: refused as changed) before RSA, by ssh and us3l alike."""
    import socket

    import paramiko

    from us3l.devices.ssh import _preferring

    def order(known: tuple[str, ...]) -> list[str]:
        with socket.socket() as sock:
            transport = _preferring(paramiko, known)(sock)
            return list(transport.get_security_options().key_types)

    default = order(())
    assert default[0] == "ssh-ed25519"
    assert order(("ssh-rsa", "ssh-ed25519")) == default
    assert order(("ssh-rsa",)) == ["rsa-sha2-512", "rsa-sha2-256"] + [a for a in default if not a.startswith("rsa")]
    assert order(("ecdsa-sha2-nistp384", "ssh-rsa"))[:3] == ["ecdsa-sha2-nistp384", "rsa-sha2-512", "rsa-sha2-256"]


def test_a_known_hosts_path_that_is_no_file_says_so(loopback_ssh, tmp_path):
    """A mistyped `known_hosts` path was read as an empty file: "unknown SSH host key ... (not in PATH)" sent the
    user to verify the device and run ssh-keyscan, not to fix the path."""
    for path, why in ((tmp_path / "no_such_known_hosts", "there is no such file"), (tmp_path, "it is not a file")):
        dev = tmp_path / "dev.toml"
        dev.write_text(loopback_ssh.device_toml(known_hosts=path))
        with pytest.raises(US3LError, match=rf"^unknown SSH host key for .* \(not in {path}: {why}\); verify"):
            SSHSession(load_device_file(dev).reach).connect()
