"""``us3l.devices.known_hosts`` without a server: OpenSSH's pattern rules, port 22, hashed names, unreadable lines.

The decisions against a real sshd (and against ``ssh`` itself) are in test_ssh_known_hosts.py."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from us3l.devices.known_hosts import (
    Verdict,
    lookup_name,
    parse_known_hosts,
    pattern_list_matches,
    wildcard_matches,
)


def _key(seed: int) -> tuple[str, bytes]:
    """An Ed25519 public key line part ("ssh-ed25519 base64") and its blob."""
    blob = (len(b"ssh-ed25519").to_bytes(4, "big") + b"ssh-ed25519" + (32).to_bytes(4, "big") + bytes([seed]) * 32)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()}", blob


ED, ED_BLOB = _key(1)
OTHER, _ = _key(2)


@pytest.mark.parametrize(("text", "pattern", "matches"), [
    ("pi.lab", "*.lab", True),
    ("lab", "*.lab", False),
    ("a.b.lab", "*.lab", True),  # '*' crosses dots
    ("10.0.0.7", "10.0.0.?", True),
    ("10.0.0.17", "10.0.0.?", False),  # '?' is exactly one character
    ("[10.0.0.7]:2222", "[10.0.0.?]:2222", True),  # brackets are literal characters, not a class
    ("[10.0.0.7]:2222", "10.0.0.?", False),
    ("", "*", True),
    ("", "?", False),
    ("abc", "a*b*c*", True),
    ("abcabd", "*abd", True),  # the star must give back what it took
    ("a" * 200, "*a*a*a*a*a*a*a*a*b", False),
])
def test_wildcards_follow_openssh(text, pattern, matches):
    assert wildcard_matches(text, pattern) is matches


def test_pattern_lists_negation_and_case():
    assert pattern_list_matches("pi.lab", "foo,*.lab")
    assert not pattern_list_matches("evil.lab", "*.lab,!evil.lab")  # negation wins, wherever it stands
    assert not pattern_list_matches("evil.lab", "!evil.lab,*.lab")
    assert not pattern_list_matches("pi.lab", "!evil.lab")  # a negation alone names nothing
    assert pattern_list_matches("Pi.LAB", "*.lab") and pattern_list_matches("pi.lab", "PI.*")
    assert not pattern_list_matches("pi.lab", ",")


def test_the_port_22_name_is_the_bare_host():
    assert lookup_name("Pi.Lab", 22) == "pi.lab"
    assert lookup_name("pi.lab", 2222) == "[pi.lab]:2222"
    known = parse_known_hosts(f"[pi.lab]:22 {ED}\n", "kh")
    assert known.decide("pi.lab", 22, ED_BLOB).verdict is Verdict.NEW  # ssh does not match "[pi.lab]:22" either
    assert parse_known_hosts(f"pi.lab {ED}\n", "kh").decide("pi.lab", 22, ED_BLOB).verdict is Verdict.OK


def test_hashed_names_and_the_retry_without_port():
    salt = bytes(range(20))
    name = "[pi.lab]:2222"
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    line = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()} {ED}\n"
    known = parse_known_hosts(line, "kh")
    assert known.decide("PI.lab", 2222, ED_BLOB).verdict is Verdict.OK
    assert known.decide("pi.lab", 22, ED_BLOB).verdict is Verdict.NEW
    retry = parse_known_hosts(f"pi.lab {ED}\n", "kh")
    decision = retry.decide("pi.lab", 2222, ED_BLOB)
    assert decision.verdict is Verdict.OK and decision.name == "pi.lab"
    # the retry is only for a [host]:port nobody names: a line naming it with another key refuses
    assert parse_known_hosts(f"[pi.lab]:2222 {OTHER}\npi.lab {ED}\n", "kh").decide(
        "pi.lab", 2222, ED_BLOB).verdict is Verdict.CHANGED


def test_unreadable_lines_are_skipped_and_counted():
    text = "\n".join([
        "# a comment", "", "   ",
        f"@trusted * {ED}",  # 4: unknown marker
        f"|1|bm90LWEtc2FsdA==|x {ED}",  # 5: malformed hash
        "pi.lab ssh-ed25519",  # 6: no key
        f"pi.lab ssh-rsa {ED.split()[1]}",  # 7: the type field does not match the key
        "pi.lab ssh-ed25519 AAAA@@@@",  # 8: not base64
        f"pi.lab {ED} a comment with  spaces",
        f"@revoked\tother.lab\t{OTHER}",
    ])
    known = parse_known_hosts(text, "kh")
    assert known.skipped == (("kh", 4), ("kh", 5), ("kh", 6), ("kh", 7), ("kh", 8))
    assert [(e.lineno, e.marker) for e in known.entries] == [(9, ""), (10, "@revoked")]


def test_preferred_key_types_come_from_plain_lines_naming_the_host():
    ecdsa_blob = (b"\x00\x00\x00\x13ecdsa-sha2-nistp256" + b"\x00\x00\x00\x08nistp256" + b"\x00\x00\x00\x41"
                  + b"\x04" + b"\x01" * 64)
    ecdsa = f"ecdsa-sha2-nistp256 {base64.b64encode(ecdsa_blob).decode()}"
    known = parse_known_hosts(f"*.lab {ecdsa}\n@revoked * {ED}\nother {ED}\n", "kh")
    assert known.preferred_key_types("pi.lab", 22) == ("ecdsa-sha2-nistp256",)
    assert known.preferred_key_types("other", 22) == ()  # its only key is revoked
    assert parse_known_hosts(f"other {ED}\n", "kh").preferred_key_types("other", 22) == ("ssh-ed25519",)


def test_a_revoked_key_type_is_not_asked_for_first():
    """As ssh orders its host-key algorithms: a type whose first key for the host is @revoked is not preferred."""
    ed_line, ed_blob = _key(1)
    known = parse_known_hosts(f"pi.lab {ed_line}\n*.lab ssh-rsa {_rsa()}\n@revoked * {ed_line}\n", "kh")
    assert known.preferred_key_types("pi.lab", 22) == ("ssh-rsa",)
    assert known.decide("pi.lab", 22, ed_blob).verdict is Verdict.REVOKED


def _rsa() -> str:
    blob = b"".join(len(f).to_bytes(4, "big") + f for f in (b"ssh-rsa", b"\x01\x00\x01", b"\x00" + b"\xc3" * 64))
    return base64.b64encode(blob).decode()
