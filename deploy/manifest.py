"""``manifest.json``: what an exported artifact is, how it was made and checked, and how to feed it.

Written beside each artifact by ``us3l.deploy.export``; read and checked by ``us3l.deploy.load`` before a runtime
touches the file. Schema: kind "manifest", version 1 (see docs/deploy.md for every field).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from us3l.deploy.backends import get_backend
from us3l.deploy.backends.base import Artifact, Backend
from us3l.deploy.bn_stats_record import expected_bn_stats_differ
from us3l.deploy.manifest_claims import (
    check_graph,
    check_network,
    check_verification,
    model_kwargs_ok,
    parsed_once,
)
from us3l.deploy.verify import Verification
from us3l.errors import US3LError
from us3l.io import atomic_write_json, check_schema, header, read_json_sha256

MANIFEST_KIND = "manifest"
MANIFEST_SCHEMA = 1
MANIFEST_FILE = "manifest.json"


def build_manifest(
    *,
    artifact: Artifact,
    model: Mapping[str, Any],
    source: Mapping[str, Any],
    input_spec: Mapping[str, Any],
    target: Mapping[str, Any],
    verification: Verification,
    verification_inputs: str,
    calibration: Mapping[str, Any] | None = None,
    data: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """Assemble the manifest document for ``artifact`` (paths are recorded relative to its directory).

    ``data``: the artifact's files as they were verified (``read_written_files``); the hashes recorded are of these
    bytes, not of a later read of the files (which may hold other bytes by then). Without it the files are read.
    An INT8 artifact's quantizer facts (``artifact.extras["quantization"]``) and its ``calibration`` set's
    description become the top-level ``quantization`` section."""
    backend = get_backend(artifact.backend)
    if data is None:
        data = read_written_files(artifact.path, artifact.files)
    hashes = sha256_of(data)
    extras = dict(artifact.extras)
    trt = extras.pop("tensorrt", None)
    quant = extras.pop("quantization", None)
    doc = header(MANIFEST_KIND, MANIFEST_SCHEMA)
    doc.update(
        valid=bool(verification),
        model=dict(model),
        source=dict(source),
        backend={
            "name": artifact.backend,
            "runtime": backend.package,
            "runtime_version": artifact.runtime_version,
            "precision": artifact.precision,
            "dynamic_batch": artifact.dynamic_batch,
            **extras,
        },
        input={
            **dict(input_spec),
            "shape": _shape(artifact.input_shape, artifact.dynamic_batch),
        },
        output={
            "name": "embedding",
            "shape": _shape(artifact.output_shape, artifact.dynamic_batch),
            "dtype": "float32",
            "l2_normalized": False,
        },
        target=dict(target),
        verification={**verification.to_dict(), "inputs": verification_inputs},
        artifact={
            "file": artifact.path.name,
            "sha256": hashes[artifact.path.name],
            "files": hashes,
        },
    )
    if quant is not None or calibration is not None:
        doc["quantization"] = {**(quant or {}), "calibration": None if calibration is None else dict(calibration)}
    if trt is not None:
        doc["tensorrt"] = trt
    return doc


def read_written_files(path: Path, files: Sequence[Path]) -> dict[str, bytes]:
    """The files an export just wrote (``files``, beside its primary file ``path``: an ``Artifact``'s ``path`` and
    ``files``, or a switchable export's), each read once: name relative to ``path``'s folder -> bytes. The export
    verifies these bytes (``Backend.load(data=...)``, ``open_switchable(data=...)``) and hashes the same bytes for
    its manifest (``build_manifest``, the switchable manifest), so the recorded hashes are of what was verified
    (``read_artifact_files`` is the reader's side: bytes checked against those hashes)."""
    root = Path(path).parent
    return {Path(f).relative_to(root).as_posix(): Path(f).read_bytes() for f in files}


def sha256_of(data: Mapping[str, bytes]) -> dict[str, str]:
    """The sha256 of each of ``data``'s files (``read_written_files``: name -> bytes), as a manifest records them."""
    return {name: hashlib.sha256(b).hexdigest() for name, b in data.items()}


def _shape(shape: tuple[int, ...], dynamic_batch: bool) -> list[int | str]:
    return ["batch", *shape[1:]] if dynamic_batch else list(shape)


def write_manifest(directory: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``directory/manifest.json`` atomically."""
    return atomic_write_json(Path(directory) / MANIFEST_FILE, dict(doc))


def read_manifest(path: str | Path) -> tuple[dict[str, Any], Path]:
    """Read a manifest from an artifact directory or a ``manifest.json``; returns (document, directory)."""
    doc, directory, _ = read_manifest_sha256(path)
    return doc, directory


def read_manifest_sha256(path: str | Path) -> tuple[dict[str, Any], Path, str]:
    """``read_manifest`` and the sha256 of the manifest bytes it parsed (one read)."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_FILE
    else:
        check_not_a_member(p)
    doc, sha = read_json_sha256(p, "manifest")
    if isinstance(doc, dict) and doc.get("kind") == "switchable_manifest":
        raise US3LError(
            f"{p.parent} is a switchable artifact (every width in one file): open it with "
            "us3l.deploy.load_switchable, profile it with us3l profile --artifact; this takes a one-width export"
        )
    check_schema(doc, MANIFEST_KIND, MANIFEST_SCHEMA, p)
    validate_manifest(doc, p)
    return doc, p.parent, sha


def check_not_a_member(path: Path) -> None:
    """Refuse (one line) a file of an export folder given instead of the folder (``model.onnx``: read as a manifest
    it was 'is not UTF-8 text')."""
    if path.name != MANIFEST_FILE and path.is_file() and (path.parent / MANIFEST_FILE).is_file():
        raise US3LError(f"{path} is a file of the export folder {path.parent}: pass the folder (or its "
                        f"{MANIFEST_FILE})")


#: The manifest's sections: each an object where present (``model``, ``backend``, ``input`` and ``artifact`` always
#: are).
_SECTIONS = ("environment", "model", "source", "backend", "input", "output", "target", "verification", "artifact",
             "tensorrt", "quantization")
_REQUIRED = ("model", "backend", "input", "artifact")


#: A runtime version as the runtimes spell it: ``1.19.2``, ``2024.4.0-16579-c3152d32c9c-releases/2024/4``.
VERSION_RE = re.compile(r"\d+(\.\d+)+([-+.].*)?")


def validate_manifest(doc: Mapping[str, Any], path: str | Path) -> None:
    """The shape every reader relies on, one line naming the file and field: ``valid`` a boolean, each section an
    object, and every field the loaders use of the type they use it as (``_validate_fields``). A hand-edited
    ``"verification": "x"`` used to surface as an ``AttributeError`` in the report, ``"runtime_device": 5`` as one
    in ``us3l.deploy.load``."""
    if not isinstance(doc.get("valid"), bool):
        raise US3LError(f"{path}: valid must be true or false, got {doc.get('valid')!r:.80}")
    for key in _SECTIONS:
        value = doc.get(key)
        if (value is not None or key in _REQUIRED) and not isinstance(value, dict):
            raise US3LError(f"{path}: {key} must be an object, got {value!r:.80}")
    _validate_fields(doc, path)
    check_verification(doc, path)  # passed / valid against the recorded numbers and the precision's tolerance


def _validate_fields(doc: Mapping[str, Any], path: str | Path) -> None:
    """The fields ``verify_manifest``, ``us3l.deploy.load``, ``us3l eval --artifact`` and the report read: the
    backend a known one (its ``tensorrt`` section present for an engine), its precision one it exports, the
    runtime versions version strings, the runtime device a name, the width a number, the input shape a list."""
    from us3l.deploy.backends import list_backends

    def bad(field: str, want: str, got: object) -> US3LError:
        return US3LError(f"{path}: {field} must be {want}, got {got!r:.80}; re-export the artifact")

    backend = doc["backend"]
    name = backend.get("name")
    if name not in list_backends():
        raise US3LError(f"{path}: unknown backend {name!r:.80} in backend.name (choose from "
                        f"{', '.join(list_backends())}); re-export the artifact")
    precision = backend.get("precision")
    if precision not in get_backend(name).precisions:
        raise bad("backend.precision", f"one of {', '.join(get_backend(name).precisions)}", precision)
    _check_version(backend.get("runtime_version"), "backend.runtime_version", bad)
    if not isinstance(backend.get("dynamic_batch", False), bool):
        raise bad("backend.dynamic_batch", "true or false", backend.get("dynamic_batch"))
    if name == "tensorrt":
        trt = doc.get("tensorrt")
        if trt is None:
            raise bad("tensorrt", "an object (the TensorRT version and GPU an engine was built for)", trt)
        _check_version(trt.get("version"), "tensorrt.version", bad, required=True)
        if not isinstance(trt.get("compute_capability"), str) or not VERSION_RE.fullmatch(trt["compute_capability"]):
            raise bad("tensorrt.compute_capability", 'a string like "8.7"', trt.get("compute_capability"))
    device = (doc.get("target") or {}).get("runtime_device")
    if device is not None and (not isinstance(device, str) or not device.strip()):
        raise bad("target.runtime_device", "a device name (a string)", device)
    calibration = (doc.get("quantization") or {}).get("calibration")  # read by eval --artifact, quickstart, export
    if calibration is not None and not isinstance(calibration, dict):
        raise bad("quantization.calibration", "an object (the INT8 calibration set) or null", calibration)
    bn_stats = (doc.get("source") or {}).get("bn_stats")  # absent before 2026-12-06; null: no calibrated stats
    if bn_stats is not None and (not isinstance(bn_stats, dict) or not all(
            v is None or isinstance(v, str) for v in (bn_stats.get(k) for k in ("file", "sha256", "width_sha256")))):
        raise bad("source.bn_stats", 'null or {"file", "sha256", "width_sha256"} (strings or null)', bn_stats)
    _check_bn_kind(doc, path, bad)
    # width: required, every reader (eval --artifact, report, export --json) uses it; canonical_width: optional,
    # where the report looks up the width's BN statistics
    for key, required in (("width", True), ("canonical_width", False)):
        value = doc["model"].get(key)
        if (required or value is not None) and (
                isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf):
            raise bad(f"model.{key}", "a finite number > 0", value)
    if not model_kwargs_ok(doc["model"].get("model_kwargs")):  # rebuilds the architecture (check_model)
        raise bad("model.model_kwargs", "null or an object of the model's options", doc["model"].get("model_kwargs"))
    shape = doc["input"].get("shape")  # required: us3l eval --artifact feeds the artifact by it
    if not shape_ok(shape):
        raise bad("input.shape", 'a list of positive integers N, C, H, W (N may be "batch")', shape)
    norm = doc["input"].get("normalization")  # us3l eval --artifact compares it with the checkpoint's
    if norm is not None and not _normalization_ok(norm, shape[1]):
        raise bad("input.normalization", f'{{"mean": [{shape[1]} numbers], "std": [{shape[1]} numbers > 0]}}', norm)


def _check_bn_kind(doc: Mapping[str, Any], path: str | Path, bad: Any) -> None:
    """``model.bn_stats`` (how the width's BatchNorm was frozen; nothing in the graph records it) one of the kinds
    it names (``us3l.deploy.graph.LEGACY_BN_STATS``), the kind ``model.graph.bn`` records, and "calibrated" exactly
    where ``source.bn_stats`` records calibrated statistics (``width_sha256``, which the readers that hold the run's
    ``bn_stats.safetensors`` compare with it; a manifest without the record, written before 2026-12-06, is not held
    to it). The BatchNorm the network's architecture has is checked with the network (``manifest_claims
    .check_network``). An edited kind was shown by the report as the artifact's."""
    from us3l.deploy.graph import LEGACY_BN_STATS, bn_kind_named

    label = doc["model"].get("bn_stats")
    if label is None:  # not recorded: nothing to check, and nothing reads it
        return
    kind = bn_kind_named(label)
    if kind is None:
        spelled = ", ".join(f'"{LEGACY_BN_STATS.get(k, k)}"' for k in ("calibrated", "running", "frozen-uncalibrated",
                                                                         "none"))
        raise bad("model.bn_stats", f"one of {spelled}", label)
    graph = doc["model"].get("graph")
    recorded = graph.get("bn") if isinstance(graph, dict) else None
    if recorded is not None and recorded != kind:
        raise US3LError(f"{path}: model.bn_stats {label!r:.40} is not the BN kind model.graph.bn records "
                        f"({recorded!r:.40}) (the manifest was edited); re-export the artifact")
    source = doc.get("source") or {}
    if "bn_stats" in source:
        record = source["bn_stats"]
        calibrated = isinstance(record, dict) and isinstance(record.get("width_sha256"), str)
        if calibrated != (kind == "calibrated"):
            has = "records calibrated statistics" if calibrated else "records no calibrated statistics"
            raise US3LError(f"{path}: model.bn_stats {label!r:.40} but source.bn_stats {has} (the manifest was "
                            "edited); re-export the artifact")


def _normalization_ok(norm: object, channels: int) -> bool:
    """``input.normalization``: an object whose ``mean`` and ``std`` (each may be null) are one finite number per
    input channel, ``std`` > 0. An edited ``5`` or ``{"mean": "x"}`` was a numpy traceback in ``us3l eval
    --artifact``."""
    if not isinstance(norm, dict):
        return False
    for key in ("mean", "std"):
        v = norm.get(key)
        if v is None:
            continue
        if not isinstance(v, list) or len(v) != channels or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v):
            return False
        if key == "std" and not all(x > 0 for x in v):
            return False
    return True


def is_version(value: object) -> bool:
    """Whether ``value`` is a runtime version string as the runtimes spell it (``VERSION_RE``)."""
    return isinstance(value, str) and VERSION_RE.fullmatch(value) is not None


def _check_version(value: object, field: str, bad: Any, required: bool = False) -> None:
    if value is None and not required:
        return
    if not is_version(value):
        raise bad(field, 'a version string like "1.2.3"', value)


def shape_ok(shape: object) -> bool:
    """A manifest's ``input.shape``: N, C, H, W as positive integers, N possibly ``"batch"``."""
    if not isinstance(shape, list) or len(shape) != 4:
        return False
    dims = shape[1:] if shape[0] == "batch" else shape
    return all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims)


def verify_manifest(
    doc: Mapping[str, Any],
    directory: Path,
    *,
    model: str | None = None,
    width: float | None = None,
    input_shape: Sequence[int | None] | None = None,
    checkpoint_sha256: str | None = None,
    backend: str | None = None,
    precision: str | None = None,
    bn_stats_sha256: str | None = None,
    network: Any = None,
) -> tuple[Backend, dict[str, bytes]]:
    """Check a manifest against the files and this machine's runtime, and its precision, input and output shape
    against the graph (``us3l.deploy.manifest_claims.check_graph``); return the backend to load with and the bytes
    of every listed file (name -> bytes, each read once and hashed: ``read_artifact_files``). Load from these
    bytes, not from the paths: a file opened again after its hash was checked may have been replaced in between.

    Refuses (``US3LError``): an artifact that failed verification, an unknown or uninstalled backend, an
    incompatible runtime version, an ``artifact.file`` that is not a plain file name listed (with the same
    sha256) in ``artifact.files``, a listed path outside the artifact folder or a link, a missing file or one
    whose sha256 differs from the recorded one, a TensorRT engine from another TensorRT version or GPU
    architecture; and, when given, another model name, width, input shape (``None`` for any size, a dynamic
    batch axis accepts any batch), source checkpoint sha256, backend or precision than expected, or other
    calibrated BN statistics of its width (``bn_stats_sha256``: ``us3l.eval.calibrate.width_bn_stats_sha256`` of
    the model the caller loaded; unchecked for a manifest from before they were recorded).

    ``model.width`` and ``model.name`` are confirmed by the graph itself: its weight layers and output size must be
    those of the network at that width (``manifest_claims.check_network``), the network the manifest records
    (``model.model_kwargs``, on every read: ``check_graph``) and, when given, ``network`` (the slimmable model the
    artifact should be a width of, e.g. the checkpoint's). A ``model`` or ``width`` expectation needs one of the two:
    a manifest without ``model.model_kwargs`` (exported before 2026-12-07, or from a module not built by
    ``us3l.create_model``) is refused then, unless ``network`` is given.
    """
    where = directory / MANIFEST_FILE
    if doc.get("valid") is not True:
        raise US3LError(f"{where}: this artifact did not pass verification (valid: false); re-export it")
    spec = doc.get("backend") or {}
    be = get_backend(str(spec.get("name", "")))
    if be.name != "tensorrt" and be.runtime_version() is None:
        raise be.missing()
    if be.name == "tensorrt":
        from us3l.deploy.backends.tensorrt import check_engine_compat, current_compute_capability

        recorded = doc.get("tensorrt") or {}
        check_engine_compat(recorded, be.runtime_version(), current_compute_capability())
    data = read_artifact_files(doc, directory)
    # backend.precision, runtime_version, input and output.shape against the (hash-checked) files
    with parsed_once():  # the graph parsed once for both checks
        check_graph(doc, where, data)
        if be.name != "tensorrt":
            be.check_runtime_compat(spec.get("runtime_version"))  # checked above (OpenVINO: the IR's own record)
        if network is not None:  # model.width and model.name against the graph, as widths of this network
            built = getattr(network, "registered_as", None)
            label = built[0] if isinstance(built, tuple) and built else type(network).__name__
            check_network(doc, where, data, network, f"the given {label} network")
    check_expected(
        doc,
        where,
        model=model,
        width=width,
        input_shape=input_shape,
        checkpoint_sha256=checkpoint_sha256,
        backend=backend,
        precision=precision,
        bn_stats_sha256=bn_stats_sha256,
    )
    if network is None and (model is not None or width is not None) and doc["model"].get("model_kwargs") is None:
        asked = " and ".join(f"{k} {v!r}" for k, v in (("model", model), ("width", width)) if v is not None)
        raise US3LError(f"{where}: cannot confirm that the artifact is {asked}: the manifest records no "
                        "model.model_kwargs to rebuild the network and check its graph against (exported before "
                        "2026-12-07, or not from a us3l.create_model network); re-export it, or pass the network")
    return be, data


def _safe_relative(name: object, where: Path, what: str) -> str:
    """``name`` as a relative POSIX path that stays inside the artifact folder, else a one-line error."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        raise US3LError(f"{where}: {what} {name!r} is not a file name; re-export the artifact")
    parts = PurePosixPath(name).parts
    if PurePosixPath(name).is_absolute() or any(p in ("", ".", "..") for p in parts) or name != "/".join(parts):
        raise US3LError(f"{where}: {what} {name!r} points outside the artifact folder; re-export the artifact")
    return name


def check_artifact_files(doc: Mapping[str, Any], directory: Path) -> Path:
    """Verify every file the manifest lists (inside the folder, no links, sha256 as recorded) and that the
    file to load (``artifact.file``: a plain name) is one of them; return its path."""
    read_artifact_files(doc, directory)
    return directory / str((doc.get("artifact") or {}).get("file"))


def read_artifact_files(doc: Mapping[str, Any], directory: Path) -> dict[str, bytes]:
    """``check_artifact_files``, returning the bytes of every listed file (name as listed -> bytes). Each file is
    read once and those bytes are hashed, so a runtime fed these bytes runs exactly what was checked (artifacts
    are MBs: held in memory)."""
    where = directory / MANIFEST_FILE
    art = doc.get("artifact") or {}
    files = art.get("files") or {}
    if not isinstance(files, Mapping) or not files:
        raise US3LError(f"{where} lists no artifact files; re-export the artifact")
    main = _safe_relative(art.get("file"), where, "artifact.file")
    if "/" in main:
        raise US3LError(f"{where}: artifact.file {main!r} is not a plain file name; re-export the artifact")
    if main not in files:
        raise US3LError(
            f"{where}: artifact.file {main!r} is not among the hashed artifact files ({', '.join(sorted(files))}); "
            "re-export the artifact"
        )
    if art.get("sha256") is not None and art.get("sha256") != files[main]:
        raise US3LError(f"{where}: artifact.sha256 differs from the hash listed for {main}; re-export the artifact")
    root = directory.resolve()
    out: dict[str, bytes] = {}
    for name, digest in files.items():
        _safe_relative(name, where, "artifact file")
        f = directory / name
        if f.is_symlink() or (f.exists() and not f.resolve().is_relative_to(root)):
            raise US3LError(f"{where}: artifact file {name} is a link; re-export the artifact")
        if not f.is_file():
            _check_not_replaced(doc, where)
            raise US3LError(f"{where}: artifact file {name} is missing")
        try:
            out[name] = f.read_bytes()
        except OSError as exc:
            _check_not_replaced(doc, where)
            raise US3LError(f"{where}: cannot read artifact file {name}: {exc.strerror or exc}") from None
        if not isinstance(digest, str) or hashlib.sha256(out[name]).hexdigest() != digest:
            _check_not_replaced(doc, where)
            raise US3LError(
                f"{where}: {name} does not match its recorded sha256 (modified or corrupted); re-export it"
            )
    return out


def _check_not_replaced(doc: Mapping[str, Any], where: Path) -> None:
    """A listed file is missing or differs from its hash: when ``where`` (the manifest) no longer holds ``doc``, the
    folder was replaced after the manifest was read (``us3l export`` swapped a new export in), which is what to
    say, rather than "modified or corrupted; re-export it"."""
    from us3l.io import read_json

    try:
        now = read_json(where, "manifest")
    except US3LError:  # gone or unreadable mid-swap: replaced as well
        now = None
    if now != doc:
        raise US3LError(f"{where}: the artifact was replaced while it was being read (re-exported by another "
                        "process?); open it again")


def check_expected(
    doc: Mapping[str, Any],
    where: Path,
    *,
    model: str | None = None,
    width: float | None = None,
    input_shape: Sequence[int | None] | None = None,
    checkpoint_sha256: str | None = None,
    backend: str | None = None,
    precision: str | None = None,
    bn_stats_sha256: str | Mapping[float, str | None] | None = None,
) -> None:
    """Refuse (one line) an artifact that is not what the caller expects; ``None`` means "any". ``bn_stats_sha256``:
    the width's calibrated BN statistics, or a switchable artifact's per width
    (``us3l.deploy.bn_stats_record.expected_bn_stats_differ``)."""
    m = doc.get("model") or {}
    b = doc.get("backend") or {}
    wrong: list[str] = []
    if model is not None and m.get("name") != model:
        wrong.append(f"model {m.get('name')!r}, expected {model!r}")
    if width is not None:
        from us3l.width_key import same_width  # 0.78125 is the grid width 0.7813, as us3l select matches them

        got = m.get("width")
        if not same_width(got, float(width)):
            wrong.append(f"width {got!r}, expected {float(width):g}")
    if input_shape is not None:
        shape = (doc.get("input") or {}).get("shape")
        if not _shape_matches(shape, input_shape):
            wrong.append(f"input shape {shape!r}, expected {list(input_shape)!r}")
    if checkpoint_sha256 is not None:
        got_sha = (doc.get("source") or {}).get("checkpoint_sha256")
        if got_sha is None and (doc.get("source") or {}).get("init_seed") is not None:  # us3l export --model
            wrong.append(f"exported from a freshly initialised {m.get('name')!r} (no checkpoint), expected the "
                         f"checkpoint {checkpoint_sha256[:12]}…")
        elif got_sha != checkpoint_sha256:
            shown = f"{got_sha[:12]}…" if isinstance(got_sha, str) else repr(got_sha)
            wrong.append(f"checkpoint sha256 {shown}, expected {checkpoint_sha256[:12]}…")
    if backend is not None and b.get("name") != backend:
        wrong.append(f"backend {b.get('name')!r}, expected {backend!r}")
    if precision is not None and b.get("precision") != precision:
        wrong.append(f"precision {b.get('precision')!r}, expected {precision!r}")
    if bn_stats_sha256 is not None:
        wrong.extend(expected_bn_stats_differ(doc, bn_stats_sha256))
    if wrong:
        raise US3LError(f"{where}: not the expected artifact ({'; '.join(wrong)}); re-export it")


def _shape_matches(shape: object, expected: Sequence[int | None]) -> bool:
    if not isinstance(shape, list) or len(shape) != len(expected):
        return False
    for i, (got, want) in enumerate(zip(shape, expected, strict=True)):
        if want is None or (i == 0 and got == "batch"):
            continue
        if isinstance(got, bool) or not isinstance(got, int) or got != int(want):
            return False
    return True


class SourceCheck(NamedTuple):
    """What ``checked_source_checkpoint`` found: the manifest's checkpoint digest (``None``: it records none),
    whether the checkpoint's bytes were hashed and found to be that digest, the one line (else ``None``) that says
    what stays the manifest's word, not checked, and whether that line is a warning (a file at the recorded
    relative path holds other weights) rather than a note."""

    checkpoint_sha256: str | None
    checkpoint_checked: bool
    note: str | None
    warning: bool = False


def checked_source_checkpoint(doc: Mapping[str, Any], where: str | Path) -> SourceCheck:
    """A manifest's ``source.checkpoint_sha256`` (the checkpoint its artifact was exported from), checked where the
    checkpoint it names (``source.checkpoint``) is a file here: its bytes are hashed, and another digest is refused
    (one line: the manifest edited, or the checkpoint replaced since the export); so is a ``model.name`` other than
    the model the ``checkpoint.json`` of those weights names (a switchable graph records no name of its own). Where
    the checkpoint is absent, or its ``checkpoint.json`` does not describe it, ``note`` says what is unchecked; a
    relative ``source.checkpoint`` (as given to the export, from the folder it ran in) that holds other weights here
    may be another run's, so it is a warning, not a refusal. A manifest that records no checkpoint (an export of a
    fresh model) gives ``SourceCheck(None, False, None)``."""
    from us3l.checkpoint import read_meta
    from us3l.io import file_sha256

    source = doc.get("source")
    source = source if isinstance(source, Mapping) else {}
    claimed, named = source.get("checkpoint_sha256"), source.get("checkpoint")
    if not isinstance(claimed, str):
        return SourceCheck(None, False, None)
    name = (doc.get("model") or {}).get("name")
    path = Path(named) if isinstance(named, str) and named else None
    unchecked = (f"{where}: source.checkpoint_sha256 {claimed[:12]}… and model.name {name!r:.60} are the manifest's "
                 "word, not checked")
    if path is None or not path.is_file():
        shown = "it names none" if path is None else f"{path} is absent"
        return SourceCheck(claimed, False, f"{unchecked} ({shown} here to hash)")
    actual = file_sha256(path)
    if actual != claimed and not path.is_absolute():  # relative to the folder the export ran in, maybe not this one
        return SourceCheck(claimed, False, f"{unchecked}: {path} (relative to the folder the export ran in) has sha256 "
                                           f"{actual[:12]}… here", True)
    if actual != claimed:
        raise US3LError(f"{where}: source.checkpoint_sha256 is {claimed[:12]}… but {path} has sha256 "
                        f"{actual[:12]}… (the manifest was edited, or the checkpoint replaced since the export); "
                        f"re-export the artifact")
    try:
        meta = read_meta(path)
        if meta.get("weights_sha256") not in (None, actual):
            raise US3LError("it describes other weights")
    except US3LError as exc:
        why = " ".join(str(exc).split())[:160]
        return SourceCheck(claimed, True, f"{where}: model.name {name!r:.60} is the manifest's word, not checked "
                                          f"(the checkpoint.json beside {path}: {why})")
    if meta.get("model") != name:
        raise US3LError(f"{where}: model.name {name!r:.60} is not the model of {path} ({meta.get('model')}) (the "
                        f"manifest was edited); re-export the artifact")
    return SourceCheck(claimed, True, None)
