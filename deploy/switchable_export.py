"""``us3l export --switchable``: one verified file that runs every width of a grid, with its manifest.

The graph is ``us3l.deploy.switchable.build_switchable``'s (one copy of the weights, ``width_index`` picks the
width). For ``--backend openvino`` it is converted to OpenVINO IR (the ``If`` tree and the shared weights are
kept: the IR is the size of the ONNX file). Every width of the grid is run through the runtime and compared with
PyTorch's static network of that width (``deployable_module``, the module a static export starts from) under the
static exports' tolerance; OpenVINO is checked both ways it runs the file (``width_index`` as an input, and
bound per width). Files are written into a staging folder and renamed into place only when every width passed,
like ``us3l.deploy.export``; a failure keeps them in ``<name>.failed/`` and raises ``VerificationFailed``.
Manifest: kind "switchable_manifest", schema 1 (docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from us3l.deploy.backends import get_backend
from us3l.deploy.backends.base import OUTPUT_NAME
from us3l.deploy.export import (
    _costs,
    _resolve_source,
    artifact_dir,
    check_artifact_paths,
    earlier_artifact_note,
    input_description,
    place_artifact,
    verification_inputs,
    whole_batches,
)
from us3l.deploy.graph import LEGACY_BN_STATS
from us3l.deploy.manifest import MANIFEST_FILE, read_written_files, sha256_of
from us3l.deploy.staging import clean_stale, staging_prefix
from us3l.deploy.switchable import INDEX_NAME, META_PER_WIDTH, OPSET, build_switchable, record_metadata
from us3l.deploy.switchable_runtime import open_switchable
from us3l.deploy.timing import phase
from us3l.deploy.verify import TOLERANCES, Verification, compare
from us3l.errors import US3LError
from us3l.io import atomic_write_json, header, named_write_error, temp_dir
from us3l.validate import safe_name

SWITCHABLE_KIND = "switchable_manifest"
SWITCHABLE_SCHEMA = 1
BACKENDS = ("onnx", "openvino")
#: The grid of a fresh model (no calibrated widths to take it from).
DEFAULT_GRID = (1.0, 0.75, 0.5, 0.25)


@dataclass(frozen=True)
class SwitchableResult:
    """A finished switchable export: where, the manifest, and each width's verification (per runtime mode)."""

    directory: Path
    manifest_path: Path
    manifest: dict[str, Any]
    checks: dict[str, list[Verification]]  # mode -> one Verification per grid index

    @property
    def valid(self) -> bool:
        return bool(self.manifest.get("valid"))


class SwitchableVerificationFailed(US3LError):
    def __init__(self, result: SwitchableResult) -> None:
        bad = [
            f"{mode} width {w:g}: {v.summary()}"
            for mode, vs in result.checks.items()
            for w, v in zip(result.manifest["model"]["widths"], vs, strict=True)
            if not v
        ]
        super().__init__(
            f"verification failed ({bad[0]}); artifact NOT valid, kept for inspection in {result.directory}"
            f"{earlier_artifact_note(result.directory, SWITCHABLE_KIND)}"
        )
        self.result = result


def artifact_name(model: str, backend: str) -> str:
    """Directory name of a switchable export: ``<model>-switchable-<backend>-fp32``."""
    return f"{model}-switchable-{backend}-fp32"


def default_grid(model: Any) -> tuple[float, ...]:
    """The widths a checkpoint has calibrated BN statistics for, widest first; a model without any gets
    ``DEFAULT_GRID`` clipped to its range (its BN statistics are then placeholders: graph and speed are real,
    embeddings are not)."""
    from us3l.slim import calibrated_widths, width_range_of

    got = tuple(sorted(calibrated_widths(model), reverse=True))
    if got:
        return got
    wr = width_range_of(model)
    return tuple(sorted({min(max(w, wr.min), wr.max) for w in DEFAULT_GRID}, reverse=True))


def check_widths(model: Any, widths: Any) -> tuple[float, ...]:
    """Each width checked against the model (range, S-Nets switches); two widths with the same channels refused."""
    from us3l.slim import canonical_width, check_width

    grid = tuple(check_width(model, w) for w in widths)
    seen: dict[float, float] = {}
    for w in grid:
        c = canonical_width(model, w)
        if c in seen:
            raise US3LError(f"widths {seen[c]:g} and {w:g} give the same network (channels of width {c:g})")
        seen[c] = w
    if len(grid) < 2:
        raise US3LError(f"a switchable artifact needs at least 2 widths, got {len(grid)}")
    return grid


def _widths(
    model: Any, grid: tuple[float, ...], shape: tuple[int, ...], inputs: np.ndarray, require_bn_stats: bool
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """One pass over the grid, each width materialized once: PyTorch's output on ``inputs`` (the verification
    reference) and the manifest's facts of that width (BN kind, MACs, params, channels, weight and activation
    bytes). A width without BN statistics (``require_bn_stats``) is refused here, before any export."""
    from us3l.deploy.graph import deployable_module
    from us3l.eval.calibrate import width_bn_stats_sha256
    from us3l.profiler.memory import activation_bytes, weight_bytes
    from us3l.profiler.sweep import channels_of
    from us3l.slim import canonical_width

    refs, facts = [], []
    x = torch.zeros(shape)  # as the profiler counts a static width's activations
    with phase("pytorch reference and costs per width"), torch.no_grad():
        for w in grid:
            static, kind = deployable_module(model, w, require_bn_stats)
            refs.append(static(torch.from_numpy(np.ascontiguousarray(inputs))).numpy())
            facts.append({
                "bn_stats": LEGACY_BN_STATS.get(kind, kind),
                # the statistics this width was materialized with (us3l.deploy.export.bn_stats_record)
                "bn_stats_sha256": width_bn_stats_sha256(model, w) if kind == "calibrated" else None,
                "canonical_width": canonical_width(model, w),  # the width its statistics are stored under
                **_costs(static, shape),
                "channels": channels_of(static),
                "weight_bytes": weight_bytes(static, "fp32"),
                "activation_bytes": activation_bytes(static, x),
            })
    return refs, facts


def _verify(
    backend: str, path: Path, refs: list[np.ndarray], inputs: np.ndarray, batch: int | None, data: dict[str, bytes]
) -> dict[str, list[Verification]]:
    """Every width through the runtime (OpenVINO: as an input and bound) against its PyTorch output ``refs``.

    The runtime is built from ``data`` (the artifact's files, read once: ``read_written_files``), the bytes the
    manifest then hashes: what the manifest's hashes vouch for is what ran here, not a later read of the files."""
    from us3l.deploy.manifest_claims import SWITCHABLE_MODES  # the modes a valid manifest must record

    modes = {mode: mode.endswith("(bound per width)") for mode in SWITCHABLE_MODES[backend]}  # bound: per width
    groups = [inputs] if batch is None else [inputs[i : i + batch] for i in range(0, len(inputs) - batch + 1, batch)]
    used = sum(len(g) for g in groups)
    out: dict[str, list[Verification]] = {}
    for mode, bound in modes.items():
        with phase(f"verify: {mode}"):
            runner = open_switchable(backend, path, len(refs), bound=bound, data=data)
            out[mode] = [
                compare(ref[:used], np.concatenate([runner.infer(g, k) for g in groups]), "fp32")
                for k, ref in enumerate(refs)
            ]
            del runner
    return out


def _write_graph(backend: str, graph: Any, staging: Path) -> tuple[Path, tuple[Path, ...], dict[str, Any]]:
    """The artifact's file(s) in ``staging``: ``model.onnx``, or OpenVINO IR ``model.xml`` + ``model.bin`` (the
    static exports' names)."""
    import onnx

    onnx_path = staging / "model.onnx"
    with phase("write onnx"):
        onnx.save(graph.model, str(onnx_path))
    facts: dict[str, Any] = {"opset": OPSET, "exporter": "torchscript (per width, BN kept) + us3l If tree"}
    if backend == "onnx":
        import onnxruntime as ort

        return onnx_path, (onnx_path,), {**facts, "runtime_version": ort.__version__}
    from us3l.deploy.backends.intel_telemetry import import_openvino
    from us3l.deploy.backends.openvino import shared_core, sigint_deferred

    ov = import_openvino()

    xml = staging / "model.xml"
    # read_model, not convert_model: convert_model's transformations fold each branch's weight slices into
    # constants of their own (the IR then holds every width's weights: 1.88x the static widest file for the
    # grid 1 / 0.75 / 0.5 / 0.25 of cifar_resnet18); read_model keeps the one shared copy (1.00x)
    with phase("openvino read + save"), sigint_deferred():
        ov.save_model(shared_core().read_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    onnx_path.unlink()
    return xml, (xml, xml.with_suffix(".bin")), {**facts, "converted_from": "onnx (openvino.Core.read_model)",
                                                  "runtime_version": ov.__version__}


def _static_size(model: Any, w: float, shape: tuple[int, ...], where: Path) -> int:
    """Bytes of the static ONNX export of width ``w`` (the default exporter's file: BN folded), written into a
    scratch folder in ``where`` and removed: the size the switchable file is compared with."""
    from us3l.deploy.backends.onnx import export_onnx
    from us3l.deploy.graph import deployable_module

    static, _ = deployable_module(model, w)
    tmp = temp_dir(where, prefix=".static-size-")
    try:
        with phase("static width-1 export (size reference)"):
            export_onnx(static, torch.zeros(shape), tmp / "static.onnx")
        return (tmp / "static.onnx").stat().st_size
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_switchable(
    model_or_ckpt: Any,
    backend: str,
    out_dir: str | Path,
    widths: Any = None,
    device_name: str | None = None,
    dynamic_batch: bool = False,
    verify_inputs: np.ndarray | None = None,
    *,
    model_name: str | None = None,
    batch: int = 1,
) -> SwitchableResult:
    """Export the switchable artifact of ``widths`` (default: ``default_grid``) and verify every width.

    Files go to ``out_dir/<device_name or "local">/<model>-switchable-<backend>-fp32/``. Raises
    ``SwitchableVerificationFailed`` when a width is outside the FP32 tolerance.
    """
    if backend not in BACKENDS:
        raise US3LError(f"--switchable exports to {' or '.join(BACKENDS)}, not '{backend}' (TensorRT: docs/deploy.md)")
    be = get_backend(backend)
    be.require_runtime()
    safe_name(device_name or "local", "device name")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    src = _resolve_source(model_or_ckpt, model_name)
    grid = check_widths(src.model, default_grid(src.model) if widths is None else widths)
    dest = artifact_dir(out_dir, device_name, artifact_name(src.name, be.name))
    check_artifact_paths(dest, SWITCHABLE_KIND)  # a file or folder of the user's there: refused before any work
    shape = (batch, 3, src.input_size, src.input_size)
    verify_inputs, inputs_note = whole_batches(*verification_inputs(shape, src.normalization, verify_inputs),
                                               None if dynamic_batch else batch)
    refs, width_facts = _widths(src.model, grid, shape, verify_inputs, src.from_checkpoint)
    device_dir, name = dest.parent, dest.name
    new_device_dir = not device_dir.is_dir()
    device_dir.mkdir(parents=True, exist_ok=True)
    clean_stale(out_dir)
    try:
        staging = temp_dir(device_dir, prefix=staging_prefix(name))
    except OSError as exc:  # the artifact named, not a staging folder never made
        raise OSError(exc.errno, exc.strerror, str(dest)) from None
    try:
        with phase("build switchable graph"):
            graph = build_switchable(
                src.model, grid, shape, dynamic_batch=dynamic_batch, require_bn_stats=src.from_checkpoint
            )
        # each width's facts, as the manifest lists them, recorded in the file too: read back, they are checked there
        per_width = [{**f, "own_bytes": n} for f, n in zip(width_facts, graph.per_width_bytes, strict=True)]
        record_metadata(graph.model, META_PER_WIDTH, per_width)
        path, files, facts = _write_graph(be.name, graph, staging)
        data = read_written_files(path, files)  # one read: these bytes are verified, then hashed for the manifest
        checks = _verify(be.name, path, refs, verify_inputs, None if dynamic_batch else batch, data)
        valid = all(all(vs) for vs in checks.values())
        static_bytes = _static_size(src.model, max(grid), shape, staging)
        manifest = _manifest(src, be.name, grid, graph, per_width, path, data, facts, checks, valid, inputs_note,
                             shape, dynamic_batch, device_name, static_bytes)
        with phase("manifest + move into place"):
            atomic_write_json(staging / MANIFEST_FILE, manifest)
            final = place_artifact(staging, device_dir, name, valid, SWITCHABLE_KIND)
    except BaseException as exc:
        # a full disk: the artifact named (not the staging folder, gone by now, nor no path at all); told before
        # the staging folder is removed, which frees the space
        named = named_write_error(exc, dest, staged=staging)
        shutil.rmtree(staging, ignore_errors=True)
        if new_device_dir:  # a failed export leaves no empty OUT/<device>/ behind (one with files stays)
            with contextlib.suppress(OSError):
                device_dir.rmdir()
        if named is not None:
            raise named from exc
        raise
    result = SwitchableResult(final, final / MANIFEST_FILE, manifest, checks)
    if not valid:
        raise SwitchableVerificationFailed(result)
    return result


def _manifest(
    src: Any, backend: str, grid: tuple[float, ...], graph: Any, width_facts: list[dict[str, Any]], path: Path,
    data: dict[str, bytes], facts: dict[str, Any], checks: dict[str, list[Verification]], valid: bool,
    inputs_note: str, shape: tuple[int, ...], dynamic_batch: bool, device_name: str | None, static_bytes: int,
) -> dict[str, Any]:
    """The switchable manifest; ``data``: the artifact's files as verified (name -> bytes), whose sizes and sha256
    it records (not a later read of the files)."""
    batch: int | str = "batch" if dynamic_batch else shape[0]
    hashes = sha256_of(data)
    artifact_bytes = sum(len(b) for b in data.values())
    per_width = [
        {
            "index": k,
            "width": w,
            "feature_dim": graph.feature_dims[k],
            **width_facts[k],
            "verification": {mode: vs[k].to_dict() for mode, vs in checks.items()},
        }
        for k, w in enumerate(grid)
    ]
    doc = header(SWITCHABLE_KIND, SWITCHABLE_SCHEMA)
    doc.update(
        valid=valid,
        model={
            "name": src.name,
            "widths": list(grid),
            "width_range": dataclasses.asdict(src.model.width_range),
            "per_width": per_width,
            "macs_unit": "multiply-accumulates per image (fvcore 'flops')",
        },
        source={"checkpoint": src.checkpoint, "checkpoint_sha256": src.checkpoint_sha256,
                # the checkpoint's bn_stats.safetensors the calibrated widths come from (per width: bn_stats_sha256)
                "bn_stats": None if src.bn_stats_sha256 is None else {"file": src.bn_stats_file,
                                                                      "sha256": src.bn_stats_sha256},
                **({"init_seed": src.init_seed} if src.init_seed is not None else {})},
        backend={"name": backend, "runtime": get_backend(backend).package, "precision": "fp32",
                 "dynamic_batch": dynamic_batch, **facts},
        input={**input_description(src.normalization), "shape": [batch, *shape[1:]]},
        width_input={
            "name": INDEX_NAME, "dtype": "int64", "shape": [],
            "meaning": "index into model.widths (negative counts from the end); onnxruntime refuses one outside "
                       "[-n, n); OpenVINO does not check it (bind a width with bind_width, or check before feeding)",
        },
        output={"name": OUTPUT_NAME, "dtype": "float32", "shape": [batch, "features"],
                "features": "model.per_width[index].feature_dim (a dynamic axis)", "l2_normalized": False},
        switchable={
            **graph.facts(),
            "artifact_bytes": artifact_bytes,
            "static_widest_bytes": static_bytes,
            "size_ratio_to_static_widest": artifact_bytes / static_bytes,
            "per_width_bytes_share": sum(graph.per_width_bytes) / artifact_bytes,
        },
        target={"device": device_name or "local", "runtime_device": "cpu" if backend == "onnx" else "CPU"},
        verification={
            "rule": TOLERANCES["fp32"].describe(),
            "reference": "PyTorch static network of each width (deployable_module), on the same inputs",
            "inputs": inputs_note,
            "modes": list(checks),
            "passed": valid,
        },
        artifact={
            "file": path.name,
            "sha256": hashes[path.name],
            "files": hashes,
        },
    )
    return doc
