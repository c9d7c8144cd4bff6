"""SSH transport (paramiko) with checked host keys, argv-built commands, timeouts and one-line errors.

* Host keys: the device's ``known_hosts`` file (default: the user's and system-wide files ssh reads) decides as
  it does for OpenSSH's ``ssh`` with strict host-key checking (``us3l.devices.known_hosts``: wildcards,
  negations, ``[host]:port``, hashed names, ``@revoked``); a host it does not vouch for is refused, and nothing
  is ever added to it.
* Commands are lists joined with ``shlex.join`` (every argument quoted), never formatted shell strings.
* Every connect and command has a timeout; failures become ``US3LError`` with what to do next.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from us3l.devices.known_hosts import Decision, KnownHosts, Verdict, load_known_hosts
from us3l.devices.spec import Reach
from us3l.errors import MissingDependencyError, US3LError
from us3l.io import read_at_most

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
#: What ssh reads when neither UserKnownHostsFile nor GlobalKnownHostsFile is set (a device file's
#: ``known_hosts`` replaces them all): a fleet's keys are often in the system-wide file only.
SSH_KNOWN_HOSTS_FILES = (DEFAULT_KNOWN_HOSTS, "~/.ssh/known_hosts2", "/etc/ssh/ssh_known_hosts",
                         "/etc/ssh/ssh_known_hosts2")
# Every remote command runs as ``sh -c 'echo us3l-pid:$$; exec "$@"' us3l ARGV``: the shell prints its pid, then
# becomes ARGV (same pid). Lines a login shell's start-up files print before it are skipped (at most 100).
_PID_MARK = "us3l-pid:"
_PID_THEN_EXEC = ("sh", "-c", f'echo "{_PID_MARK}$$"; exec "$@"', "us3l")
_MAX_NOISE_LINES = 100
#: Each such line is read at most this long at a time (a longer one counts as several): bounded, whatever prints.
_MAX_NOISE_LINE = 65536
#: The most of a remote command's standard output (``SSHSession.run``) or of a remote file (``read_text``) read into
#: this host's memory, per call; of its standard error the last this many bytes are kept. What us3l reads is far
#: less: mktemp's path, fingerprint.py's JSON (at most 64 KiB), trtexec's --help, build and timing output (tens to
#: hundreds of KiB; a few MiB even with --verbose, which us3l does not pass) and a --exportTimes file (about 350
#: bytes per inference: some 4 MiB for the 10 000 of the largest warm-up). A command printing without end (a
#: runaway device) or a huge file is refused at this size (``OutputTooLarge``), not read until memory runs out.
MAX_OUTPUT_BYTES = 64 << 20
# Kill a pid politely, then for sure: used on commands that stopped answering.
_KILL = ("sh", "-c", 'kill -TERM "$1" 2>/dev/null || exit 0; for _ in 1 2 3 4 5 6 7 8 9 10; do '
         'kill -0 "$1" 2>/dev/null || exit 0; sleep 0.2; done; kill -KILL "$1" 2>/dev/null; exit 0', "us3l")


#: paramiko's exit status of a command that ended without one: sshd reports a command killed by a signal with
#: ``exit-signal``, which paramiko ignores (it was reported as "exited with status -1").
NO_EXIT_STATUS = -1
ENDED_BY_SIGNAL = ("was killed on the device (no exit status: a signal, e.g. the out-of-memory killer's SIGKILL, "
                   "or its session was cut)")


class OutputTooLarge(US3LError):
    """A remote command's standard output or a remote file is larger than ``MAX_OUTPUT_BYTES``."""


@dataclass(frozen=True)
class CommandResult:
    """Exit status and decoded output of one remote command."""

    returncode: int
    stdout: str
    stderr: str


def _paramiko() -> Any:
    try:
        import paramiko
    except ImportError:
        raise MissingDependencyError("paramiko", "ssh", "profiling over SSH") from None
    # paramiko logs a failed handshake ("Exception (client): Error reading SSH protocol banner" and two
    # tracebacks) through logging, which an unconfigured program prints on stderr: the exception it raises
    # becomes our one error line instead. A program that configures its own handlers still gets the records.
    import logging

    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    return paramiko


def known_hosts_files(reach: Reach) -> tuple[str, ...]:
    """The known_hosts files that vouch for ``reach``'s host key: its own file if the device file names one, else
    the files ssh reads by default (the user's first)."""
    files = (reach.known_hosts,) if reach.known_hosts else SSH_KNOWN_HOSTS_FILES
    return tuple(str(Path(f).expanduser()) for f in files)


def keyscan_hint(reach: Reach, known_hosts: str) -> str:
    """The command that adds the host's key to ``known_hosts`` (after the user verified the host)."""
    scan = ["ssh-keyscan", "-p", str(reach.port), str(reach.host)]
    return f"{shlex.join(scan)} >> {shlex.quote(known_hosts)}"


class SSHSession:
    """An open SSH connection to one device. Use as a context manager."""

    def __init__(self, reach: Reach) -> None:
        if reach.is_local or not reach.host:
            raise ValueError("SSHSession needs an ssh:// reach")
        self.reach = reach
        self.client: Any = None
        self._sftp: Any = None

    # -- connection -------------------------------------------------------------------------------------
    def connect(self) -> SSHSession:
        paramiko = _paramiko()
        reach = self.reach
        known = load_known_hosts(known_hosts_files(reach))
        client = paramiko.SSHClient()
        # paramiko's own host keys stay empty: every server key goes to the policy, which decides as ssh does
        client.set_missing_host_key_policy(_HostKeyPolicy(known, reach))
        key = str(Path(reach.key).expanduser()) if reach.key else None
        if key is not None and not Path(key).is_file():
            raise US3LError(f"SSH key file not found: {key}")
        target = reach.url
        try:
            client.connect(
                hostname=reach.host,
                port=reach.port,
                username=reach.user,
                key_filename=key,
                look_for_keys=key is None,
                allow_agent=key is None,
                timeout=reach.connect_timeout_s,
                banner_timeout=reach.connect_timeout_s,
                auth_timeout=reach.connect_timeout_s,
                transport_factory=_preferring(paramiko, known.preferred_key_types(str(reach.host), reach.port)),
            )
        except US3LError:  # the policy refused the host key
            client.close()
            raise
        except paramiko.AuthenticationException as exc:
            client.close()
            how = f"key {key}" if key else "the ssh agent / default keys in ~/.ssh"
            raise US3LError(f"SSH authentication failed for {target} with {how}: {exc}") from None
        except paramiko.SSHException as exc:
            client.close()
            if str(exc) == "No existing session":  # paramiko's word for a handshake the server never answered
                raise US3LError(
                    f"SSH connection to {target} failed: the server sent its banner but did not finish the SSH "
                    f"handshake within {reach.connect_timeout_s:g} s (overloaded or hung sshd?)"
                ) from None
            raise US3LError(f"SSH connection to {target} failed: {exc}") from None
        except TimeoutError:
            client.close()
            raise US3LError(
                f"cannot reach {target}: no answer within {reach.connect_timeout_s:g} s (host down or firewalled?)"
            ) from None
        except OSError as exc:  # refused, no route, DNS failure, paramiko.NoValidConnectionsError
            client.close()
            raise US3LError(f"cannot reach {target}: {exc.strerror or exc}") from None
        self.client = client
        return self

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self.client is not None:
            self.client.close()
            self.client = None

    def __enter__(self) -> SSHSession:
        return self.connect() if self.client is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        if isinstance(exc, _paramiko().SSHException | EOFError):  # the connection dropped mid-session
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise US3LError(f"lost the SSH connection to {self.reach.url} ({why})") from None

    # -- commands ---------------------------------------------------------------------------------------
    def run(self, argv: list[str], timeout: float | None = None, check: bool = False) -> CommandResult:
        """Run ``argv`` (quoted with ``shlex.join``) and wait for it; ``check`` raises on non-zero exit. A command
        still running after ``timeout`` seconds without output is killed on the device, and so is one that writes
        more than ``MAX_OUTPUT_BYTES`` to its standard output (``OutputTooLarge``; of its standard error the last
        ``MAX_OUTPUT_BYTES`` are kept)."""
        timeout = self.reach.command_timeout_s if timeout is None else timeout
        limit = MAX_OUTPUT_BYTES
        cmd = shlex.join(argv)
        proc = self.start(argv, timeout, keep_stderr=limit)
        try:
            proc.stdin.close()
            raw = read_at_most(proc.stdout, limit)  # a command printing without end is not read to its end
            if raw is None:
                proc.kill()
                raise OutputTooLarge(f"remote command on {self.reach.url} wrote more than {limit >> 20} MiB to its "
                                     f"standard output, which no command us3l runs does: {cmd[:200]}")
            out = raw.decode("utf-8", errors="replace")
            rc = exit_status(proc.stdout.channel, timeout)
            err = proc.stderr_text(timeout)
        except TimeoutError:
            proc.kill()
            raise US3LError(f"remote command timed out after {timeout:g} s on {self.reach.url}: {cmd}") from None
        result = CommandResult(rc, out, err)
        if check and rc != 0:
            how = ENDED_BY_SIGNAL if rc == NO_EXIT_STATUS else f"exit {rc}"
            raise US3LError(f"remote command failed on {self.reach.url} ({how}): {cmd}: {_last_line(err)}")
        return result

    def start(self, argv: list[str], timeout: float | None = None, keep_stderr: int | None = None) -> RemoteProcess:
        """Start ``argv`` without waiting. It runs under ``sh``, which prints its process id and then execs
        ``argv`` (same process id), so that a command that stops answering can be killed on the device. Its
        standard error is read as it comes (``RemoteProcess.stderr_text``; the last ``keep_stderr`` bytes of it,
        all when None): unread, it filled the channel's window (2 MiB, shared with standard output) and the
        command blocked writing a warning while the host waited for its answer."""
        timeout = self.reach.command_timeout_s if timeout is None else timeout
        stdin, stdout, stderr = self.client.exec_command(shlex.join([*_PID_THEN_EXEC, *argv]), timeout=timeout)
        line = ""
        try:
            for _ in range(_MAX_NOISE_LINES):
                try:
                    line = stdout.readline(_MAX_NOISE_LINE)
                except UnicodeDecodeError:  # a greeting in Latin-1 (paramiko decodes strictly): chatter, skipped
                    line = ""
                    continue
                if not line or line.startswith(_PID_MARK):
                    break
        except TimeoutError:
            stdout.channel.close()
            raise US3LError(f"remote shell on {self.reach.url} did not start within {timeout:g} s") from None
        pid = line.strip().removeprefix(_PID_MARK)
        if not line.startswith(_PID_MARK) or not pid.isdigit() or int(pid) <= 1:
            stdout.channel.close()
            raise US3LError(f"remote shell on {self.reach.url} did not report its process id: {line[:80]!r}")
        reader = StderrTail(stderr.channel, keep_stderr) if hasattr(stderr, "channel") else None  # None: a stand-in
        return RemoteProcess(self, int(pid), stdin, stdout, stderr, reader)

    def kill(self, pid: int) -> None:
        """SIGTERM process ``pid`` on the device, SIGKILL if it is still there about 2 s later (best effort: a
        failure to reach the device is not reported here; the command that stopped answering is)."""
        try:
            stdin, stdout, _stderr = self.client.exec_command(shlex.join([*_KILL, str(pid)]), timeout=30)
            stdin.close()
            exit_status(stdout.channel, 30)
            stdout.channel.close()
        except (TimeoutError, OSError, EOFError, _paramiko().SSHException):
            pass

    # -- files ------------------------------------------------------------------------------------------
    @property
    def sftp(self) -> Any:
        if self._sftp is None:
            self._sftp = self._open_sftp()
            self._sftp.get_channel().settimeout(self.reach.command_timeout_s)
        return self._sftp

    def _open_sftp(self) -> Any:
        """paramiko's SFTP client (as ``SSHClient.open_sftp``). A server that refuses the ``sftp`` subsystem (no
        ``Subsystem sftp`` line in its sshd_config: paramiko's bare "Channel closed.") or whose subsystem does not
        start is named as such when the connection is still up: it read as a lost connection (``__exit__``)."""
        paramiko = _paramiko()
        transport = self.client.get_transport()
        channel = transport.open_session()  # a failure here is the connection's
        try:
            channel.invoke_subsystem("sftp")
            return paramiko.SFTPClient(channel)
        except (paramiko.SSHException, EOFError):
            channel.close()
            if not self._still_connected(transport):  # the connection itself went away: __exit__ says so
                raise
            raise US3LError(sftp_refused(self.reach.url)) from None

    def _still_connected(self, transport: Any) -> bool:
        """Whether ``transport`` still opens a channel (a refused subsystem leaves the connection up, a lost
        connection does not; its ``is_active`` turns False only after the channels learn of the loss)."""
        try:
            transport.open_session(timeout=self.reach.connect_timeout_s).close()
        except (_paramiko().SSHException, EOFError, OSError):
            return False
        return True

    def mkdtemp(self, prefix: str = "us3l") -> str:
        """A fresh private directory on the remote (``mktemp -d``); its absolute path."""
        res = self.run(["mktemp", "-d", "-t", f"{prefix}.XXXXXXXX"], timeout=30, check=True)
        path = res.stdout.strip()
        if not path.startswith("/"):
            raise US3LError(f"unexpected output of mktemp on {self.reach.url}: {path!r}")
        return path

    def rmtree(self, path: str) -> None:
        """``rm -rf -- path`` on the remote."""
        self.run(["rm", "-rf", "--", path], timeout=60, check=True)

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], timeout=30).returncode == 0

    @contextmanager
    def _file_op(self, what: str, remote: str) -> Iterator[None]:
        """An SFTP operation's failure (remote disk full, no such folder, permission, timeout) as one line naming
        the remote path, instead of paramiko's bare ``OSError: Failure``."""
        try:
            yield
        except (OSError, EOFError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                why = f"no answer within {self.reach.command_timeout_s:g} s"
            raise US3LError(f"{what} {self.reach.url}:{remote} failed: {' '.join(str(why).split())}") from None

    def mkdir(self, path: str) -> None:
        with self._file_op("creating the folder", path):
            self.sftp.mkdir(path)

    def put(self, local: str | Path, remote: str) -> None:
        with self._file_op(f"copying {local} to", remote):
            self.sftp.put(str(local), remote)

    def write_bytes(self, remote: str, data: bytes) -> None:
        with self._file_op("writing", remote), self.sftp.open(remote, "wb") as fh:
            fh.write(data)

    def get(self, remote: str, local: str | Path) -> None:
        with self._file_op(f"copying to {local} from", remote):
            self.sftp.get(remote, str(local))

    def read_text(self, remote: str) -> str:
        """The text of a remote file of at most ``MAX_OUTPUT_BYTES`` (a larger one: ``OutputTooLarge``, read no
        further)."""
        limit = MAX_OUTPUT_BYTES
        with self._file_op("reading", remote), self.sftp.open(remote, "r") as fh:
            data = read_at_most(fh, limit)
        if data is None:
            raise OutputTooLarge(f"reading {self.reach.url}:{remote} failed: the file is larger than {limit >> 20} "
                                 "MiB, which no file us3l reads back is")
        return data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class RemoteProcess:
    """A command started with ``SSHSession.start``: its process id on the device and paramiko's file objects."""

    session: SSHSession
    pid: int
    stdin: Any
    stdout: Any
    stderr: Any  # read by ``stderr_reader`` from the start (``SSHSession.start``): use ``stderr_text``
    stderr_reader: StderrTail | None = None

    def stderr_text(self, timeout: float) -> str:
        """What the command wrote to standard error (its tail, see ``SSHSession.start``), once it has closed it
        or ``timeout`` seconds have passed."""
        if self.stderr_reader is None:
            return self.stderr.read().decode("utf-8", errors="replace")
        return self.stderr_reader.text(timeout)

    def kill(self) -> None:
        """Kill the command on the device (SIGTERM, then SIGKILL) and close its channel."""
        self.session.kill(self.pid)
        self.stdout.channel.close()


class StderrTail:
    """Reads a command's standard error from its paramiko ``channel`` on a daemon thread until it ends, keeping
    its last ``keep`` bytes (all when None)."""

    def __init__(self, channel: Any, keep: int | None = None) -> None:
        import threading

        self.channel = channel
        self.keep = keep
        self.data = bytearray()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._pump, name="us3l-ssh-stderr", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = self.channel.recv_stderr(32768)  # what has come, at once (b"" once it is closed)
            except TimeoutError:  # nothing for the channel's timeout: the command may still write later
                if self.channel.closed:
                    return
                continue
            except (OSError, EOFError):  # the connection went away
                return
            if not chunk:
                return
            with self.lock:
                self.data += chunk
                if self.keep is not None and len(self.data) > self.keep:
                    del self.data[: len(self.data) - self.keep]

    def text(self, timeout: float) -> str:
        self.thread.join(timeout)
        with self.lock:
            return bytes(self.data).decode("utf-8", errors="replace")


def exit_status(channel: Any, timeout: float) -> int:
    """The exit status of a remote command, waiting at most ``timeout`` seconds (paramiko's
    ``recv_exit_status`` waits forever); ``TimeoutError`` when it does not come."""
    if not channel.status_event.wait(timeout):
        raise TimeoutError(f"no exit status within {timeout:g} s")
    return int(channel.recv_exit_status())


#: paramiko's host-key algorithms that are not named after their key type
_KEY_TYPE_OF_ALGORITHM = {"rsa-sha2-512": "ssh-rsa", "rsa-sha2-256": "ssh-rsa"}


def _preferring(paramiko: Any, key_types: tuple[str, ...]) -> Any:
    """A paramiko ``Transport`` factory that orders the host-key algorithms as ssh does by the keys it knows for the
    host: its own order when the first algorithm's type is among ``key_types``, else ``key_types``' algorithms
    first (each part in its own order)."""

    def make(sock: Any, **kwargs: Any) -> Any:
        transport = paramiko.Transport(sock, **kwargs)
        opts = transport.get_security_options()
        algorithms = list(opts.key_types)
        if key_types and algorithms and _KEY_TYPE_OF_ALGORITHM.get(algorithms[0], algorithms[0]) not in key_types:
            opts.key_types = sorted(algorithms, key=lambda a: _KEY_TYPE_OF_ALGORITHM.get(a, a) not in key_types)
        return transport

    return make


class _HostKeyPolicy:
    """paramiko's missing-host-key policy, asked about every server key (paramiko's own host keys are left empty):
    returns where ssh would accept the key, raises the one-line reason where it would refuse it."""

    def __init__(self, known: KnownHosts, reach: Reach) -> None:
        self.known = known
        self.reach = reach

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        decision = self.known.decide(str(self.reach.host), self.reach.port, key.asbytes())
        if decision.verdict is not Verdict.OK:
            raise US3LError(_refusal(decision, self.known, self.reach))


def _refusal(decision: Decision, known: KnownHosts, reach: Reach) -> str:
    """The error line for a refused host key."""
    target, name, lines = reach.url, decision.name, decision.lines
    if decision.verdict is Verdict.REVOKED:
        return f"host key of {target} is marked @revoked in {_places(lines)}: refusing to connect"
    if decision.verdict is Verdict.CHANGED:
        return (f"host key of {target} does NOT match the one in {_places(lines)} for {name}: refusing to connect "
                f"(if the device was reinstalled, correct that line; a line of its own goes with: "
                f"ssh-keygen -R {shlex.quote(name)} -f {shlex.quote(lines[0][0])})")
    read = known.found or known.paths[:1]
    if not known.found:  # a mistyped known_hosts path read as an empty file: say so
        read = (f"{read[0]}: {'it is not a file' if Path(read[0]).exists() else 'there is no such file'}",)
    unread = ""
    if known.skipped:
        which = (", ".join(str(n) for _, n in known.skipped[:5]) + " of it" if len(read) == 1
                 else ", ".join(f"{n} of {p}" for p, n in known.skipped[:5]))
        unread = f"; line(s) {which} could not be read and were skipped, as ssh skips them"
    ca = (f"; {_places(decision.ca_lines[:5])} name it only as @cert-authority, for host certificates, which us3l "
          "does not check" if decision.ca_lines else "")
    return (f"unknown SSH host key for {target} (not in {', '.join(read)}{unread}{ca}); verify the device, then "
            f"add its key: {keyscan_hint(reach, known.paths[0])}")


def _places(lines: tuple[tuple[str, int], ...]) -> str:
    """``F (line 2)``, ``F (lines 2, 5), G (line 1)``: the lines, by file."""
    by_file: dict[str, list[int]] = {}
    for path, n in lines:
        by_file.setdefault(path, []).append(n)
    return ", ".join(f"{path} (line{'s' if len(ns) > 1 else ''} {', '.join(map(str, ns))})"
                     for path, ns in by_file.items())


def sftp_refused(target: str) -> str:
    """The error line for a server that refuses the SFTP subsystem the file copies use."""
    return (f"the SSH server of {target} refused the SFTP subsystem, which us3l copies files with (SFTP disabled "
            "there?): enable it in the host's sshd_config (a 'Subsystem sftp' line, e.g. 'Subsystem sftp "
            "internal-sftp') and restart sshd")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no error output)"
