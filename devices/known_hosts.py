"""The host-key decision OpenSSH's ``ssh`` makes from a ``known_hosts`` file, for ``us3l.devices.ssh``.

paramiko's ``HostKeys`` knows exact and hashed names only, keeps one key per name and type, and has no markers.
This module reads the file the way ``ssh`` does (``sshd(8)``, "SSH_KNOWN_HOSTS FILE FORMAT"):

* a line is ``[marker] hostnames keytype base64-key [comment]``; blank lines and ``#`` lines are skipped, and so
  is a line that cannot be read (an unknown marker, a damaged key, a malformed hash): it names no host;
* ``hostnames`` is a comma-separated list of patterns, ``*`` matching any run of characters and ``?`` one,
  compared without regard to case; a host matching a ``!``-negated pattern is not named by the line, whatever
  else on it matches; a hashed field (``|1|salt|hash``) names exactly one host;
* the name looked up is the host itself on port 22, ``[host]:port`` on any other port; when no plain line names
  ``[host]:port`` at all, ``ssh`` looks the plain host up instead ("checking without port identifier");
* among the lines naming the host: a ``@revoked`` line with the server's key refuses it, whatever else accepts it;
  a plain line with the server's key accepts it; a plain line with another key (of any type) means the key
  changed; ``@cert-authority`` lines vouch only for host certificates, never for a plain key;
* several files (the user's and the system-wide ones) are one set of lines;
* ``ssh`` asks the server first for the key types it knows for the host (``preferred_key_types``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from us3l.errors import US3LError

SSH_DEFAULT_PORT = 22
REVOKED = "@revoked"
CERT_AUTHORITY = "@cert-authority"
_MARKERS = (REVOKED, CERT_AUTHORITY)
_HASH_MAGIC = "|1|"
_SHA1_BYTES = 20
#: Fields of each key type's public blob after its type name (strings and mpints are both length-prefixed).
_BLOB_FIELDS = {"ssh-ed25519": 1, "ssh-rsa": 2, "ssh-dss": 4}


class Verdict(Enum):
    """What the lines naming a host say about the server's key."""

    OK = "ok"  # a plain line holds it
    NEW = "new"  # no plain line names the host
    CHANGED = "changed"  # plain lines name the host, none with this key
    REVOKED = "revoked"  # a @revoked line naming the host holds it


#: A line of a file: (path, line number).
LineRef = tuple[str, int]


@dataclass(frozen=True)
class Entry:
    """One readable line: its file and number, its marker ("" for none), its hostnames field as written and its
    public key blob."""

    path: str
    lineno: int
    marker: str
    hosts: str
    key_type: str
    blob: bytes

    @property
    def ref(self) -> LineRef:
        return (self.path, self.lineno)

    def names(self, name: str) -> bool:
        """Whether this line names ``name`` (a host, or ``[host]:port``)."""
        if self.hosts.startswith(_HASH_MAGIC):
            return _hash_matches(self.hosts, name)
        return pattern_list_matches(name, self.hosts)


@dataclass(frozen=True)
class Decision:
    """The verdict, the name it was reached for, and the lines that decided it."""

    verdict: Verdict
    name: str
    lines: tuple[LineRef, ...] = ()
    #: ``@cert-authority`` lines naming the host: only a host certificate could use them, and us3l asks for none
    ca_lines: tuple[LineRef, ...] = ()


@dataclass(frozen=True)
class KnownHosts:
    """The readable lines of the files ``ssh`` would read (in order; as one set, as ``ssh`` takes them), the lines
    skipped as unreadable, and which of the files exist."""

    paths: tuple[str, ...]
    entries: tuple[Entry, ...] = ()
    skipped: tuple[LineRef, ...] = ()
    found: tuple[str, ...] = ()

    def decide(self, host: str, port: int, blob: bytes) -> Decision:
        """Whether ``ssh`` would accept the server key ``blob`` (its public-key encoding) of ``host:port``."""
        name = lookup_name(host, port)
        decision = self._decide_for(name, blob)
        if decision.verdict is Verdict.NEW and port != SSH_DEFAULT_PORT:
            fallback = self._decide_for(host.lower(), blob)
            if fallback.verdict is not Verdict.NEW:
                return fallback
            return Decision(Verdict.NEW, name, ca_lines=tuple(dict.fromkeys(decision.ca_lines + fallback.ca_lines)))
        return decision

    def preferred_key_types(self, host: str, port: int) -> tuple[str, ...]:
        """The key types ``ssh`` asks the server for first, so that a host known by its RSA key is not refused for
        offering Ed25519: those of the plain lines naming the host (as ``[host]:port`` off port 22), in file
        order, except a type whose first such line holds a key a ``@revoked`` line names for the host."""
        name = lookup_name(host, port)
        naming = [e for e in self.entries if e.names(name)]
        revoked = {e.blob for e in naming if e.marker == REVOKED}
        first: dict[str, Entry] = {}
        for e in naming:
            if not e.marker:
                first.setdefault(e.key_type, e)
        return tuple(t for t, e in first.items() if e.blob not in revoked)

    def _decide_for(self, name: str, blob: bytes) -> Decision:
        naming = [e for e in self.entries if e.names(name)]
        ca = tuple(e.ref for e in naming if e.marker == CERT_AUTHORITY)
        revoked = tuple(e.ref for e in naming if e.marker == REVOKED and e.blob == blob)
        if revoked:
            return Decision(Verdict.REVOKED, name, revoked, ca)
        plain = [e for e in naming if not e.marker]
        accepted = tuple(e.ref for e in plain if e.blob == blob)
        if accepted:
            return Decision(Verdict.OK, name, accepted, ca)
        if plain:
            return Decision(Verdict.CHANGED, name, tuple(e.ref for e in plain), ca)
        return Decision(Verdict.NEW, name, (), ca)


def lookup_name(host: str, port: int) -> str:
    """The name ``ssh`` looks a host up by: ``host`` on port 22, ``[host]:port`` on any other (lowercase)."""
    host = host.lower()
    return host if port == SSH_DEFAULT_PORT else f"[{host}]:{port}"


def wildcard_matches(text: str, pattern: str) -> bool:
    """``pattern`` matches all of ``text``: ``*`` stands for any run of characters (none too), ``?`` for exactly
    one, every other character for itself (``[`` and ``]`` included). Linear backtracking to the last ``*``."""
    t = p = 0
    star, resume = -1, 0  # the last '*' seen in the pattern, and where in text its run currently ends
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, t
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", text[t]):
            t += 1
            p += 1
        elif star >= 0:  # let the last '*' swallow one more character and retry after it
            resume += 1
            t, p = resume, star + 1
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def pattern_list_matches(name: str, patterns: str) -> bool:
    """Whether the comma-separated ``patterns`` name ``name``: some pattern matches it and no ``!``-negated one
    does (case is ignored)."""
    name = name.lower()
    positive = False
    for pattern in patterns.lower().split(","):
        if pattern.startswith("!"):
            if wildcard_matches(name, pattern[1:]):
                return False
        elif wildcard_matches(name, pattern):
            positive = True
    return positive


def _hash_parts(field: str) -> tuple[bytes, bytes] | None:
    """The salt and digest of a ``|1|salt|hash`` field, None when it is malformed."""
    parts = field.split("|")
    if len(parts) != 4 or parts[0] or parts[1] != "1":
        return None
    try:
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        return None
    return (salt, digest) if len(salt) == _SHA1_BYTES and len(digest) == _SHA1_BYTES else None


def _hash_matches(field: str, name: str) -> bool:
    parts = _hash_parts(field)
    if parts is None:
        return False
    salt, digest = parts
    return hmac.compare_digest(hmac.new(salt, name.lower().encode(), hashlib.sha1).digest(), digest)


def _ssh_strings(blob: bytes) -> list[bytes] | None:
    """``blob`` split into its length-prefixed fields, None when the lengths do not add up to it exactly."""
    out, i = [], 0
    while i < len(blob):
        if i + 4 > len(blob):
            return None
        n = int.from_bytes(blob[i:i + 4], "big")
        if i + 4 + n > len(blob):
            return None
        out.append(blob[i + 4:i + 4 + n])
        i += 4 + n
    return out


def _read_key(key_type: str, b64: str) -> bytes | None:
    """The public key blob of ``key_type b64``, None when it cannot be a key of that type."""
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    fields = _ssh_strings(blob)
    if not fields or fields[0] != key_type.encode():
        return None
    rest = fields[1:]
    if key_type.startswith("ecdsa-sha2-"):  # the curve's name, then the point
        curve = key_type.removeprefix("ecdsa-sha2-").encode()
        return blob if len(rest) == 2 and rest[0] == curve else None
    want = _BLOB_FIELDS.get(key_type)
    if want is not None and len(rest) != want:
        return None
    if key_type == "ssh-ed25519" and len(rest[0]) != 32:
        return None
    return blob if rest else None


def _read_line(raw: str, path: str, lineno: int) -> Entry | None | bool:
    """The entry of one line; None for a blank or comment line; False for a line that cannot be read."""
    fields = raw.replace("\t", " ").strip(" \r").split(" ")
    fields = [f for f in fields if f]
    if not fields or fields[0].startswith("#"):
        return None
    marker = ""
    if fields[0].startswith("@"):
        if fields[0] not in _MARKERS:
            return False
        marker, fields = fields[0], fields[1:]
    if len(fields) < 3:
        return False
    hosts, key_type, b64 = fields[:3]
    if hosts.startswith(_HASH_MAGIC) and _hash_parts(hosts) is None:
        return False
    blob = _read_key(key_type, b64)
    if blob is None:
        return False
    return Entry(path, lineno, marker, hosts, key_type, blob)


def parse_known_hosts(text: str, path: str) -> KnownHosts:
    """The readable lines of ``text`` (a known_hosts file's content) and the unreadable ones."""
    entries: list[Entry] = []
    skipped: list[LineRef] = []
    for lineno, raw in enumerate(text.split("\n"), 1):  # ssh ends lines at newlines only
        entry = _read_line(raw, path, lineno)
        if entry is False:
            skipped.append((path, lineno))
        elif isinstance(entry, Entry):
            entries.append(entry)
    return KnownHosts((path,), tuple(entries), tuple(skipped), (path,))


def load_known_hosts(paths: Sequence[str]) -> KnownHosts:
    """The files at ``paths`` read as ``ssh`` reads them, as one set; a missing file is an empty one."""
    entries: list[Entry] = []
    skipped: list[LineRef] = []
    found: list[str] = []
    for path in paths:
        p = Path(path)
        if not p.is_file():
            continue
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise US3LError(f"cannot read the known_hosts file {path}: {exc.strerror or exc}") from None
        # a byte that is not UTF-8 (a comment in Latin-1) cannot make a host name match: it is kept, escaped
        one = parse_known_hosts(data.decode("utf-8", errors="surrogateescape"), path)
        entries += one.entries
        skipped += one.skipped
        found.append(path)
    return KnownHosts(tuple(paths), tuple(entries), tuple(skipped), tuple(found))
