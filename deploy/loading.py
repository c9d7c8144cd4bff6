"""``us3l.deploy.load(path)``: open an exported artifact after checking its manifest against this machine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from us3l.deploy.backends.base import Runner
from us3l.deploy.manifest import read_manifest, verify_manifest


def load(
    path: str | Path,
    threads: int | None = None,
    device: str | None = None,
    *,
    model: str | None = None,
    width: float | None = None,
    input_shape: Sequence[int | None] | None = None,
    checkpoint_sha256: str | None = None,
    bn_stats_sha256: str | None = None,
    network: Any = None,
) -> Runner:
    """Return a ``Runner`` for the artifact at ``path`` (its directory or its ``manifest.json``).

    The manifest is checked first (verification passed, backend installed, runtime version compatible, TensorRT
    version and GPU; the file to load is a plain name in the artifact folder listed in the manifest's hashed
    files, and every listed file has its recorded sha256); a mismatch raises ``US3LError`` and nothing is
    loaded. The runtime is given the bytes that were hashed (each file is read once), not the paths, so a file
    replaced after the check is never what runs. Optional expectations: ``model`` name, ``width`` (to 4
    decimals, as ``us3l select`` matches widths: 0.78125 is 0.7813),
    ``input_shape`` (``None`` for a dimension of any size; a dynamic batch axis accepts any batch) and the source
    ``checkpoint_sha256``, and ``bn_stats_sha256``: the calibrated BN statistics of its width the caller runs
    PyTorch with (``us3l.eval.calibrate.width_bn_stats_sha256``). ``model`` and ``width`` are confirmed by the
    graph: its weight layers and output size must be the network's at that width, ``network``'s (a slimmable model,
    e.g. the checkpoint's) where given, else the one the manifest records (``model.model_kwargs``; a manifest
    without it, exported before 2026-12-07, is refused then). ``device`` is the
    runtime's device name (default: the one recorded at export, else CPU). The runner's ``manifest``
    attribute holds the manifest document.
    """
    doc, directory = read_manifest(path)
    backend, data = verify_manifest(
        doc, directory, model=model, width=width, input_shape=input_shape, checkpoint_sha256=checkpoint_sha256,
        bn_stats_sha256=bn_stats_sha256, network=network,
    )
    runtime_device = device or (doc.get("target") or {}).get("runtime_device")
    file = directory / doc["artifact"]["file"]  # a plain name listed and hashed in the manifest (checked above)
    runner = backend.load(
        file,
        threads=threads,
        device=runtime_device,
        precision=(doc.get("backend") or {}).get("precision"),
        data=data,  # the bytes that were hashed: the runtime never opens the files again
    )
    runner.manifest = doc
    return runner
