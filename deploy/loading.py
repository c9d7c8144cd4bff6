"""``deploy.load(path)``: open an exported artifact after checking its manifest against this machine."""

from __future__ import annotations

from pathlib import Path

from deploy.backends.base import Runner
from deploy.manifest import check_manifest, read_manifest


def load(path: str | Path, threads: int | None = None, device: str | None = None) -> Runner:
    """Return a ``Runner`` for the artifact at ``path`` (its directory or its ``manifest.json``).

    The manifest is checked first (verification passed, backend installed, runtime version compatible, file
    hashes, TensorRT version and GPU); a mismatch raises ``US3LError`` and nothing is loaded. ``device`` is
    the runtime's device name (default: the one recorded at export, else CPU). The runner's ``manifest``
    attribute holds the manifest document.
    """
    doc, directory = read_manifest(path)
    backend = check_manifest(doc, directory)
    runtime_device = device or (doc.get("target") or {}).get("runtime_device")
    runner = backend.load(
        directory / doc["artifact"]["file"],
        threads=threads,
        device=runtime_device,
        precision=(doc.get("backend") or {}).get("precision"),
    )
    runner.manifest = doc
    return runner
