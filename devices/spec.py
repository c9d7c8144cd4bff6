"""``DeviceSpec``: one declarative description of a profiling target, read from a small TOML file.

A device file looks like this (every key but ``name`` and ``backends`` is optional)::

    name = "raspberry-pi-5"
    description = "Raspberry Pi 5 (Cortex-A76), onnxruntime on ARM over SSH"
    backends = ["onnx"]            # preference order: onnx (onnxruntime), openvino, tensorrt, torch
    precision = "fp32"             # fp32 | fp16
    batch = 1
    input_size = 224               # optional: override the model's input side
    threads = 4                    # optional: pinned thread count (default: cores usable by the process)
    openvino_device = "CPU"        # OpenVINO device name (CPU, GPU, NPU)
    tensorrt_version = "8.5"       # optional: the board's TensorRT (8.5, 8.6, 10.x): ONNX for it is exported at
                                   # an opset its parser reads (8.5/8.6: 17)
    max_memory_mb = 2048           # optional: resident memory a profiling sweep may hold (sessions rotated in
                                   # and out to stay under it; default: half the memory available at start)

    [measure]                      # us3l.profiler.measure.MeasurementPolicy
    warmup = 10
    min_repeats = 30
    max_repeats = 3000
    target_rel_ci = 0.02
    max_seconds = 20.0             # per width
    chunk = 10
    tail_quantile = 0.9            # keep sampling until the upper 95 % CI bound of this quantile (the budget's
                                   # statistic) exists below the sample max: 70 samples for p90, 720 for p99;
                                   # 0 = off

    [reach]
    host = "ssh://pi@raspberrypi.local:22"   # or "local" (default)
    key = "~/.ssh/id_ed25519"                # optional (default: ssh agent / ~/.ssh keys)
    known_hosts = "~/.ssh/known_hosts"       # optional (default: the files ssh reads, user's and system-wide)
    python = "python3"                       # remote interpreter that has the runtime
    connect_timeout_s = 10
    command_timeout_s = 600

    [requires]
    cuda = false                   # a local run needs an NVIDIA GPU
    tegra = false                  # a local run needs an NVIDIA Jetson (/etc/nv_tegra_release)

    [precisions]                   # optional: what each listed backend runs on this device (profile and export
    onnx = ["fp32", "int8"]        # refuse anything else with one line); a backend left out runs everything
                                   # it can (BACKEND_PRECISIONS); the device's `precision` must be in its first
                                   # backend's list
"""

from __future__ import annotations

import ipaddress
import math
import re
import sys
import unicodedata
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from us3l.errors import US3LError
from us3l.io import read_input_text
from us3l.profiler.measure import MeasurementPolicy
from us3l.validate import MAX_BATCH, MAX_INPUT_SIZE, MAX_THREADS, memory_mb, safe_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the tomli backport
    try:
        import tomli as tomllib
    except ImportError:  # pragma: no cover
        tomllib = None  # type: ignore[assignment]

#: Backend names a device may list, and accepted aliases.
BACKENDS = ("onnx", "openvino", "tensorrt", "torch")
_ALIASES = {"onnxruntime": "onnx", "ort": "onnx", "ov": "openvino", "trt": "tensorrt", "trtexec": "tensorrt"}
PRECISIONS = ("fp32", "fp16")
#: What each backend can run at all: the precisions ``us3l export`` builds for it (``us3l.deploy.backends``) and
#: ``us3l profile`` times (torch: eager PyTorch; fp16 on CUDA only). A device's ``[precisions]`` narrows these.
BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {
    "onnx": ("fp32", "int8"),
    "openvino": ("fp32", "fp16", "int8"),
    "tensorrt": ("fp32", "fp16", "int8"),
    "torch": ("fp32", "fp16"),
}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def canonical_backend(name: str) -> str:
    """A backend name as us3l spells it: lowercase, an alias (``ort``, ``ov``, ``trtexec``, ...) resolved; the
    one reading for device files and ``--backend``. Not checked against ``BACKENDS``."""
    b = str(name).lower()
    return _ALIASES.get(b, b)


@dataclass(frozen=True)
class Reach:
    """How to reach a device: ``local`` or an SSH host, with the files SSH needs."""

    kind: str = "local"  # "local" | "ssh"
    user: str | None = None
    host: str | None = None
    port: int = 22
    key: str | None = None
    known_hosts: str | None = None
    python: str = "python3"
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 600.0

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    @property
    def url(self) -> str:
        if self.is_local:
            return "local"
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in str(self.host) else self.host  # IPv6, bracketed as parse_host reads it
        return f"ssh://{user}{host}:{self.port}"

    def with_host(self, url: str) -> Reach:
        """A copy reaching ``url`` (``local`` or ``ssh://user@host[:port]``), keeping key/python settings."""
        kind, user, host, port = parse_host(url)
        return replace(self, kind=kind, user=user, host=host, port=port)


@dataclass(frozen=True)
class DeviceSpec:
    """A profiling target. See the module docstring for the file format."""

    name: str
    backends: tuple[str, ...]
    description: str = ""
    precision: str = "fp32"
    batch: int = 1
    input_size: int | None = None
    threads: int | None = None
    openvino_device: str = "CPU"
    tensorrt_version: str | None = None
    max_memory_mb: float | None = None
    policy: MeasurementPolicy = field(default_factory=MeasurementPolicy)
    reach: Reach = field(default_factory=Reach)
    requires_cuda: bool = False
    requires_tegra: bool = False
    #: the file's ``[precisions]`` table as (backend, precisions) pairs; a backend not in it runs everything it can
    precisions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    source: str = "<built-in>"

    def with_host(self, url: str) -> DeviceSpec:
        return replace(self, reach=self.reach.with_host(url))

    def supported_precisions(self, backend: str) -> tuple[str, ...]:
        """The precisions ``backend`` runs on this device: the file's ``[precisions]`` entry, else everything
        the backend can run (``BACKEND_PRECISIONS``)."""
        return dict(self.precisions).get(backend, BACKEND_PRECISIONS.get(backend, ()))

    def check_precision(self, backend: str, precision: str) -> None:
        """Refuse (one line) ``precision`` on ``backend`` where this device does not run it."""
        allowed = self.supported_precisions(backend)
        if precision in allowed:
            return
        if backend in dict(self.precisions):
            why = f"its device file allows {', '.join(allowed)} ([precisions] {backend} in {self.source})"
        else:
            why = f"{backend} runs {', '.join(allowed)}"
        raise US3LError(f"device '{self.name}' does not run {precision} on {backend}: {why}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (used by ``us3l devices --json`` and recorded in profiles)."""
        return {
            "name": self.name,
            "description": self.description,
            "backends": list(self.backends),
            "precision": self.precision,
            "batch": self.batch,
            "input_size": self.input_size,
            "threads": self.threads,
            "openvino_device": self.openvino_device,
            "tensorrt_version": self.tensorrt_version,
            "max_memory_mb": self.max_memory_mb,
            "policy": self.policy.to_dict(),
            "reach": self.reach.url,
            "requires": {"cuda": self.requires_cuda, "tegra": self.requires_tegra},
            "precisions": {b: list(self.supported_precisions(b)) for b in self.backends},
            "source": self.source,
        }


#: Longest a timeout may be: more does not fit the platform's time_t once added to the clock (1e10 s raised
#: OverflowError out of the first remote command), and no SSH answer is worth waiting a day for.
MAX_TIMEOUT_S = 86400.0
#: A device file is a few hundred bytes; anything near this is not one (read_input_text would take 64 MiB).
MAX_DEVICE_FILE_BYTES = 1 << 20
MAX_DESCRIPTION = 500
_USER_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*[$]?$")


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text)


def _check_host_name(host: str, url: str) -> None:
    """``host`` (as ``urlsplit`` gives it: lowercase, IPv6 without brackets) is a host name or an IP address; a
    leading '-' would make the ``ssh-keyscan`` command us3l suggests read it as an option."""
    if ":" in host:  # IPv6 (urlsplit found it in brackets), an optional %zone after it
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"host in {url!r} is not an IPv6 address: {host!r}") from None
        return
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if len(host) > 253 or not all(
        label and not label.startswith("-") and all(c.isalnum() or c in "-_" for c in label) for label in labels
    ):
        raise ValueError(
            f"host in {url!r} must be a host name (dot-separated letters, digits, '-' and '_', no part starting "
            "with '-') or an IP address"
        )


def parse_host(url: str) -> tuple[str, str | None, str | None, int]:
    """``"local"`` or ``"ssh://[user@]host[:port]"`` -> ``(kind, user, host, port)``; ValueError otherwise."""
    url = url.strip()
    if url in ("", "local"):
        return "local", None, None, 22
    if not url.startswith("ssh://"):
        raise ValueError(f"host must be 'local' or 'ssh://user@host[:port]', got {url!r}")
    if _has_control(url) or any(c.isspace() for c in url):  # urlsplit drops tabs and newlines without a word
        raise ValueError(f"host must be 'ssh://user@host[:port]' without blanks or control characters, got {url!r}")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:  # "Invalid IPv6 URL"
        raise ValueError(f"host {url!r} is not a valid ssh:// URL ({exc})") from None
    if not hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"host must be 'ssh://user@host[:port]', got {url!r}")
    if parts.password is not None:
        raise ValueError(f"no passwords in host URLs (use a key file: [reach] key), got {parts.username}:***")
    if parts.username is not None and not _USER_RE.match(parts.username):
        raise ValueError(
            f"user in {url!r} must be a login name (letters, digits, '.', '_', '-', not first), got {parts.username!r}"
        )
    _check_host_name(hostname, url)
    try:
        port = 22 if parts.port is None else parts.port
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"bad port in {url!r}: must be 1 to 65535")
    return "ssh", parts.username, hostname, port


def _expect(d: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    value = d[key]
    # bool is an int subclass: refuse true/false where a number is expected
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise US3LError(f"{where}: '{key}' must be {_tname(types)}, got {value!r}")
    if not isinstance(value, types):
        raise US3LError(f"{where}: '{key}' must be {_tname(types)}, got {value!r}")
    return value


def _tname(types: type | tuple[type, ...]) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in ts)


def _check_keys(d: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise US3LError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


_TOP = {"name", "description", "backends", "precision", "batch", "input_size", "threads", "openvino_device",
        "tensorrt_version", "max_memory_mb", "measure", "reach", "requires", "precisions"}
_REACH = {"host", "key", "known_hosts", "python", "connect_timeout_s", "command_timeout_s"}
_REQUIRES = {"cuda", "tegra"}
_POLICY = {f.name for f in fields(MeasurementPolicy)}


def _openvino_device(given: str, where: str) -> str:
    """A device file's ``openvino_device``, upper-case, in one of the forms OpenVINO documents (whether this
    machine has it is checked where the profile runs: ``us3l.deploy.backends.openvino.require_device``)."""
    from us3l.deploy.backends.openvino_devices import FORMS, syntax_problem

    name = given.strip().upper()
    problem = "is empty" if not name else syntax_problem(name)
    if problem is not None:
        raise US3LError(f"{where}: 'openvino_device' must be an OpenVINO device name ({FORMS}); {given!r:.80} "
                        f"{problem}")
    return name


def spec_from_dict(d: dict[str, Any], source: str) -> DeviceSpec:
    """Validate a parsed device document; every problem is a one-line ``US3LError`` naming ``source``."""
    where = f"device file {source}"
    _check_keys(d, _TOP, where)
    if "name" not in d or "backends" not in d:
        missing = " and ".join(repr(k) for k in ("name", "backends") if k not in d)
        raise US3LError(f"{where}: 'name' and 'backends' are required (missing: {missing})")
    name = _expect(d, "name", str, where)
    if not _NAME_RE.match(name):
        raise US3LError(f"{where}: name {name!r:.80} must be lowercase letters, digits, '.', '_' or '-'")
    safe_name(name, f"{where}: name")  # it becomes a folder/file name: also at most 64 characters
    raw_backends = _expect(d, "backends", list, where)
    if not raw_backends:
        raise US3LError(f"{where}: 'backends' must list at least one of {', '.join(BACKENDS)}")
    backends = []
    for b in raw_backends:
        b = canonical_backend(b)
        if b not in BACKENDS:
            raise US3LError(f"{where}: unknown backend {b!r} (known: {', '.join(BACKENDS)})")
        if b not in backends:  # "onnx" and its alias "ort" name one backend
            backends.append(b)
    kw: dict[str, Any] = {"name": name, "backends": tuple(backends), "source": source}
    if "description" in d:
        kw["description"] = _expect(d, "description", str, where)
        if any(unicodedata.category(c) == "Cc" for c in kw["description"]):  # ESC sequences would reach terminals
            raise US3LError(f"{where}: 'description' must not contain control characters")
        if len(kw["description"]) > MAX_DESCRIPTION:  # it is copied into every profile and table row
            raise US3LError(f"{where}: 'description' must be at most {MAX_DESCRIPTION} characters, "
                            f"got {len(kw['description'])}")
    if "precision" in d:
        kw["precision"] = _expect(d, "precision", str, where)
        if kw["precision"] not in PRECISIONS:
            raise US3LError(f"{where}: precision must be one of {', '.join(PRECISIONS)}")
    for key, most in (("batch", MAX_BATCH), ("input_size", MAX_INPUT_SIZE), ("threads", MAX_THREADS)):
        if key in d:
            value = _expect(d, key, int, where)
            if not 1 <= value <= most:
                raise US3LError(f"{where}: '{key}' must be 1 to {most}, got {value}")
            kw[key] = value
    if "openvino_device" in d:
        kw["openvino_device"] = _openvino_device(_expect(d, "openvino_device", str, where), where)
    if "tensorrt_version" in d:
        from us3l.deploy.backends.tensorrt_versions import trt_release

        kw["tensorrt_version"] = _expect(d, "tensorrt_version", str, where).strip()
        try:
            trt_release(kw["tensorrt_version"])
        except US3LError as exc:
            raise US3LError(f"{where}: 'tensorrt_version': {exc}") from None
    if "max_memory_mb" in d:
        value = float(_expect(d, "max_memory_mb", (int, float), where))
        kw["max_memory_mb"] = memory_mb(value, f"{where}: 'max_memory_mb'")  # as --max-memory-mb and run_sweep
    if "measure" in d:
        m = _expect(d, "measure", dict, where)
        _check_keys(m, _POLICY, f"{where} [measure]")
        try:
            kw["policy"] = MeasurementPolicy(**m)
        except (TypeError, ValueError) as exc:
            raise US3LError(f"{where} [measure]: {exc}") from None
    if "reach" in d:
        kw["reach"] = _reach_from_dict(_expect(d, "reach", dict, where), f"{where} [reach]")
    if "requires" in d:
        r = _expect(d, "requires", dict, where)
        _check_keys(r, _REQUIRES, f"{where} [requires]")
        kw["requires_cuda"] = bool(_expect(r, "cuda", bool, where)) if "cuda" in r else False
        kw["requires_tegra"] = bool(_expect(r, "tegra", bool, where)) if "tegra" in r else False
    if "precisions" in d:
        table = _expect(d, "precisions", dict, where)
        kw["precisions"] = _precisions_from_dict(table, backends, f"{where} [precisions]")
    first = dict(kw.get("precisions", ())).get(backends[0])
    default = kw.get("precision", "fp32")
    if first is not None and default not in first:
        raise US3LError(
            f"{where}: precision {default!r} is not one its first backend {backends[0]} runs "
            f"([precisions] {backends[0]}: {', '.join(first)})"
        )
    if first is None and default not in BACKEND_PRECISIONS.get(backends[0], (default,)):
        raise US3LError(
            f"{where}: precision {default!r} is not one its first backend {backends[0]} runs "
            f"({backends[0]} runs {', '.join(BACKEND_PRECISIONS[backends[0]])})"
        )
    return DeviceSpec(**kw)


def _precisions_from_dict(
    p: dict[str, Any], backends: list[str], where: str
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{backend: [precision, ...]}``: keys among the device's backends (aliases accepted), each list non-empty,
    without repeats, of precisions that backend can run (``BACKEND_PRECISIONS``)."""
    out: dict[str, tuple[str, ...]] = {}
    for key in p:
        b = canonical_backend(key)
        if b not in backends:
            raise US3LError(f"{where}: {key!r} is not one of the device's backends ({', '.join(backends)})")
        if b in out:
            raise US3LError(f"{where}: backend {b} is listed twice")
        values = _expect(p, key, list, where)
        if not values:
            raise US3LError(f"{where}: '{key}' must list at least one precision")
        can = BACKEND_PRECISIONS[b]
        for v in values:
            if not isinstance(v, str) or v not in can:
                raise US3LError(f"{where}: {b} runs {', '.join(can)}, not {v!r}")
        if len(set(values)) != len(values):
            raise US3LError(f"{where}: '{key}' lists a precision twice")
        out[b] = tuple(values)
    return tuple(sorted(out.items()))


def _reach_from_dict(r: dict[str, Any], where: str) -> Reach:
    _check_keys(r, _REACH, where)
    reach = Reach()
    if "host" in r:
        try:
            reach = reach.with_host(_expect(r, "host", str, where))
        except ValueError as exc:
            raise US3LError(f"{where}: {exc}") from None
    changes: dict[str, Any] = {}
    for key in ("key", "known_hosts", "python"):
        if key in r:
            value = _expect(r, key, str, where)
            if not value.strip() or _has_control(value):  # "" read as "not set": the agent's keys, silently
                what = "program name or path" if key == "python" else "path"
                raise US3LError(f"{where}: '{key}' must be a {what} (not empty, no control characters), "
                                f"got {value!r:.80}")
            changes[key] = value
    for key in ("connect_timeout_s", "command_timeout_s"):
        if key in r:
            value = float(_expect(r, key, (int, float), where))
            if not (math.isfinite(value) and value > 0):  # nan/inf would make every network wait unbounded
                raise US3LError(f"{where}: '{key}' must be a finite number of seconds > 0, got {value!r}")
            if value > MAX_TIMEOUT_S:  # 1e10 s: OverflowError (a traceback) out of the first remote command
                raise US3LError(f"{where}: '{key}' must be at most {MAX_TIMEOUT_S:g} seconds (a day), got {value!r}")
            changes[key] = value
    return replace(reach, **changes)


def load_device_file(path: str | Path) -> DeviceSpec:
    """Read and validate one device TOML file."""
    path = Path(path).expanduser()
    text = read_input_text(path, "device file", MAX_DEVICE_FILE_BYTES)
    if tomllib is None:  # pragma: no cover
        raise US3LError("reading device files on Python 3.10 needs the 'tomli' package: pip install tomli")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise US3LError(f"device file {path} is not valid TOML: {exc}") from None
    except RecursionError:  # arrays or inline tables nested too deep for the parser
        raise US3LError(f"device file {path} is not valid TOML: nested too deep") from None
    return spec_from_dict(doc, str(path))
