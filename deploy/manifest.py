"""``manifest.json``: what an exported artifact is, how it was made and checked, and how to feed it.

Written beside each artifact by ``deploy.export``; read and checked by ``deploy.load`` before a runtime
touches the file. Schema: kind "manifest", version 1 (see docs/deploy.md for every field).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploy.backends import get_backend
from deploy.backends.base import Artifact, Backend
from deploy.verify import Verification
from us3l.errors import US3LError
from us3l.io import atomic_write_json, check_schema, file_sha256, header, read_json

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
) -> dict[str, Any]:
    """Assemble the manifest document for ``artifact`` (paths are recorded relative to its directory)."""
    backend = get_backend(artifact.backend)
    root = artifact.path.parent
    extras = dict(artifact.extras)
    trt = extras.pop("tensorrt", None)
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
            "sha256": file_sha256(artifact.path),
            "files": {f.relative_to(root).as_posix(): file_sha256(f) for f in artifact.files},
        },
    )
    if trt is not None:
        doc["tensorrt"] = trt
    return doc


def _shape(shape: tuple[int, ...], dynamic_batch: bool) -> list[int | str]:
    return ["batch", *shape[1:]] if dynamic_batch else list(shape)


def write_manifest(directory: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``directory/manifest.json`` atomically."""
    return atomic_write_json(Path(directory) / MANIFEST_FILE, dict(doc))


def read_manifest(path: str | Path) -> tuple[dict[str, Any], Path]:
    """Read a manifest from an artifact directory or a ``manifest.json``; returns (document, directory)."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_FILE
    doc = read_json(p, "manifest")
    check_schema(doc, MANIFEST_KIND, MANIFEST_SCHEMA, p)
    return doc, p.parent


def check_manifest(doc: Mapping[str, Any], directory: Path) -> Backend:
    """Check a manifest against the files and this machine's runtime; return the backend to load with.

    Refuses (``US3LError``): an artifact that failed verification, an unknown or uninstalled backend, an
    incompatible runtime version, a missing file or one whose sha256 differs from the recorded one, a
    TensorRT engine from another TensorRT version or GPU architecture.
    """
    where = directory / MANIFEST_FILE
    if doc.get("valid") is not True:
        raise US3LError(f"{where}: this artifact did not pass verification (valid: false); re-export it")
    spec = doc.get("backend") or {}
    backend = get_backend(str(spec.get("name", "")))
    if backend.name != "tensorrt" and backend.runtime_version() is None:
        raise backend.missing()
    if backend.name == "tensorrt":
        from deploy.backends.tensorrt import check_engine_compat, current_compute_capability

        recorded = doc.get("tensorrt") or {}
        check_engine_compat(recorded, backend.runtime_version(), current_compute_capability())
    else:
        backend.check_runtime_compat(spec.get("runtime_version"))
    files = (doc.get("artifact") or {}).get("files") or {}
    if not files:
        raise US3LError(f"{where} lists no artifact files")
    for name, digest in files.items():
        f = directory / name
        if not f.is_file():
            raise US3LError(f"{where}: artifact file {name} is missing")
        if file_sha256(f) != digest:
            raise US3LError(
                f"{where}: {name} does not match its recorded sha256 (modified or corrupted); re-export it"
            )
    return backend
