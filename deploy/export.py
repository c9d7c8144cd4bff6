"""The export pipeline: one width of the one weight copy -> a verified artifact with its manifest.

``export_width`` builds the width's deployable graph with ``us3l.deploy.graph.build_deployable_graph`` (static
standard layers, that width's BN statistics frozen and folded, exported with a backend) -- the function the
profiler times with, so the shipped graph is byte for byte the profiled one (``manifest.model.graph`` holds its
hashes) -- runs the artifact through its own runtime on a fixed input batch, compares with the same static
PyTorch module, and writes ``manifest.json``. Everything is written into a staging directory first and
renamed into place only after it passed verification, so ``OUT/<device>/<name>/`` always holds a complete,
verified artifact (or nothing). A failed verification keeps the files, with ``"valid": false``, in
``<name>.failed/`` for inspection and raises ``VerificationFailed``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from us3l.data.datasets import anchored_data_spec
from us3l.deploy.backends import get_backend
from us3l.deploy.backends.base import INPUT_NAME, Artifact
from us3l.deploy.graph import LEGACY_BN_STATS, build_deployable_graph
from us3l.deploy.manifest import MANIFEST_FILE, MANIFEST_KIND, build_manifest, read_written_files, write_manifest
from us3l.deploy.quantize import (
    CALIB_SEED,
    DEFAULT_CALIB_IMAGES,
    VERIFY_IMAGES,
    CalibrationSet,
    calibration_set,
    check_calibration,
)
from us3l.deploy.staging import clean_stale, staging_prefix
from us3l.deploy.timing import phase
from us3l.deploy.verify import MIN_TOPK_SAMPLES, Verification, batches, compare, seeded_inputs
from us3l.errors import US3LError
from us3l.io import named_write_error, read_json, temp_dir
from us3l.validate import safe_name

#: Normalisation recorded for a freshly initialised model (no checkpoint says otherwise).
CIFAR_NORM = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}
IMAGENET_NORM = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
VERIFY_SAMPLES = 8
VERIFY_SEED = 0


@dataclass(frozen=True)
class ExportResult:
    """A finished export: where it is, what it is, and how verification went."""

    directory: Path
    manifest_path: Path
    manifest: dict[str, Any]
    artifact: Artifact
    verification: Verification

    @property
    def valid(self) -> bool:
        return bool(self.manifest.get("valid"))


class VerificationFailed(US3LError):
    """The artifact's outputs differ from PyTorch beyond tolerance; ``result`` describes the failed export."""

    def __init__(self, result: ExportResult) -> None:
        super().__init__(
            f"verification {result.verification.summary()}; artifact NOT valid, kept for inspection in "
            f"{result.directory}{earlier_artifact_note(result.directory)}"
        )
        self.result = result


def earlier_artifact_note(failed: Path, kind: str = MANIFEST_KIND) -> str:
    """``"; the earlier artifact in <name> is left as it was (...)"`` when a failed export's ``<name>.failed``
    has a passed export of ours beside it (a re-run that failed keeps it), else ``""``: a user reading only "NOT
    valid" took the folder beside it for this export's output, or thought the good artifact lost."""
    good = failed.with_name(failed.name.removesuffix(".failed"))
    if good == failed or good.is_symlink() or not good.is_dir() or _manifest_kind(good) != kind:
        return ""
    return f"; the earlier artifact in {good} is left as it was (made by an earlier export, not this one)"


@dataclass(frozen=True)
class _Source:
    model: nn.Module
    name: str
    checkpoint: str | None
    checkpoint_sha256: str | None
    normalization: dict[str, Any]
    input_size: int
    from_checkpoint: bool
    init_seed: int | None = None
    data_spec: str | None = None  # the data the checkpoint was trained on (INT8 calibration images)
    trained_data: dict[str, Any] | None = None  # checkpoint.json's data record (its fingerprint: a changed folder)
    bn_stats_file: str | None = None  # the bn_stats.safetensors the checkpoint was loaded with, if any
    bn_stats_sha256: str | None = None  # its sha256 (of the bytes loaded)


def artifact_name(model: str, width: float, backend: str, precision: str) -> str:
    """Directory name of one export: ``<model>-w<width>-<backend>-<precision>`` (width as ``%g``)."""
    return f"{model}-w{width:g}-{backend}-{precision}"


def _resolve_source(model_or_ckpt: Any, model_name: str | None) -> _Source:
    if isinstance(model_or_ckpt, str | Path):
        from us3l.checkpoint import load_backbone

        model_or_ckpt = load_backbone(model_or_ckpt)
    if hasattr(model_or_ckpt, "meta") and hasattr(model_or_ckpt, "model"):  # a LoadedCheckpoint
        meta = model_or_ckpt.meta
        norm = dict(meta.get("normalization") or {})
        if norm.get("mean") is None or norm.get("std") is None:  # a checkpoint.json without it (edited, or older)
            raise US3LError(
                f"{Path(model_or_ckpt.path).with_name('checkpoint.json')} records no input normalization (mean and "
                "std), which an artifact's manifest must state for its users: restore the run's checkpoint.json or "
                "re-train"
            )
        return _Source(
            model=model_or_ckpt.model,
            name=str(meta.get("model", model_name)),
            checkpoint=str(model_or_ckpt.path),
            checkpoint_sha256=model_or_ckpt.sha256,
            normalization={"mean": norm.get("mean"), "std": norm.get("std"), "source": "checkpoint"},
            input_size=int(meta.get("input_size") or model_or_ckpt.model.input_size),
            from_checkpoint=True,
            data_spec=_data_spec(meta),
            trained_data=meta.get("data") if isinstance(meta.get("data"), dict) else None,
            bn_stats_file=None if getattr(model_or_ckpt, "bn_stats_path", None) is None
            else str(model_or_ckpt.bn_stats_path),
            bn_stats_sha256=getattr(model_or_ckpt, "bn_stats_sha256", None),
        )
    if not isinstance(model_or_ckpt, nn.Module):
        kind = type(model_or_ckpt).__name__
        raise TypeError(f"expected a model, a LoadedCheckpoint or a checkpoint path, got {kind}")
    size = int(getattr(model_or_ckpt, "input_size", 224))
    norm = CIFAR_NORM if size <= 64 else IMAGENET_NORM
    return _Source(
        model=model_or_ckpt,
        name=model_name or type(model_or_ckpt).__name__.lower(),
        checkpoint=None,
        checkpoint_sha256=None,
        normalization={**norm, "source": "default for the input size (no checkpoint)"},
        input_size=size,
        from_checkpoint=False,
        init_seed=getattr(model_or_ckpt, "init_seed", None),
    )


def bn_stats_record(src: _Source, w: float, bn: str) -> dict[str, Any] | None:
    """The manifest's ``source.bn_stats``: the calibrated BN statistics width ``w`` was materialized with -- the
    checkpoint's ``bn_stats.safetensors`` (path, sha256 of the bytes loaded; ``None`` for statistics calibrated in
    memory) and ``width_sha256`` (``us3l.eval.calibrate.width_bn_stats_sha256``: that width's statistics alone,
    what a consumer compares). ``None`` for a width without calibrated statistics (running, placeholder or no BN:
    the weights' digest covers them)."""
    if bn != "calibrated":
        return None
    from us3l.eval.calibrate import width_bn_stats_sha256

    return {"file": src.bn_stats_file, "sha256": src.bn_stats_sha256,
            "width_sha256": width_bn_stats_sha256(src.model, w)}


def _data_spec(meta: dict[str, Any]) -> str | None:
    data = meta.get("data")
    if isinstance(data, dict):
        data = data.get("spec") or data.get("name")
    return data if isinstance(data, str) and data else None


def int8_calibration(
    src: _Source, calib_images: int, calib_data: str | None, seed: int = CALIB_SEED,
    verify_images: int = VERIFY_IMAGES,
) -> CalibrationSet:
    """The INT8 calibration set of an export: ``calib_images`` seeded, stratified training images of the run's own
    data (``calib_data`` overrides the data spec; a fresh model has none and needs it), and ``verify_images``
    held-out ones."""
    spec = anchored_data_spec(calib_data) if calib_data else src.data_spec  # recorded in the manifest, as typed here
    if not spec:
        why = "a fresh --model has no training data" if not src.from_checkpoint else "the checkpoint records no data"
        raise US3LError(f"INT8 needs calibration images and {why}: pass --calib-data SPEC (e.g. builtin)")
    norm = src.normalization
    return calibration_set(spec, src.input_size, norm["mean"], norm["std"], calib_images, seed, verify_images,
                           src.trained_data)


def int8_calibration_for(
    model_or_ckpt: Any, calib_images: int = DEFAULT_CALIB_IMAGES, calib_data: str | None = None,
    model_name: str | None = None,
) -> CalibrationSet:
    """``int8_calibration`` of a checkpoint path, ``LoadedCheckpoint`` or fresh model: the calibration set an INT8
    export of it uses (``us3l profile --precision int8`` times the same quantized graphs)."""
    return int8_calibration(_resolve_source(model_or_ckpt, model_name), calib_images, calib_data)


def recorded_model_kwargs(model: Any, name: str, w: float, static: nn.Module) -> dict[str, Any] | None:
    """The manifest's ``model.model_kwargs``: the options ``us3l.models.create_model`` built ``model`` with (besides
    its width range), from which a reader rebuilds the architecture to check the graph's width
    (``us3l.deploy.manifest_claims.check_model``). ``None`` (unchecked) for a module not built by ``create_model``
    as ``name``, or one changed since: the rebuilt architecture at ``w`` must have the weight layers of ``static``
    (the module exported), so a record never makes a reader refuse a faithful export."""
    from us3l.deploy.manifest_claims import model_kwargs_ok, module_layers, recorded_network

    built = getattr(model, "registered_as", None)
    if not isinstance(built, tuple) or len(built) != 2 or built[0] != name or not model_kwargs_ok(built[1]):
        return None
    record = {"name": name, "width_range": dataclasses.asdict(model.width_range), "model_kwargs": dict(built[1])}
    try:
        from us3l.slim import materialize

        rebuilt = materialize(recorded_network({"model": record}, "model"), w)
    except (US3LError, ValueError, TypeError, RuntimeError):
        return None
    if module_layers(rebuilt) != module_layers(static) or rebuilt.channel_config != static.channel_config:
        return None
    return record["model_kwargs"]


def _costs(static: nn.Module, shape: tuple[int, ...]) -> dict[str, Any]:
    params = sum(p.numel() for p in static.parameters())
    try:
        from us3l.profiler.costs import count_costs
    except ImportError:  # profiler not installed: parameters only
        return {"macs": None, "params": params}
    with phase("costs (fvcore)"):
        costs = count_costs(static, (1, *shape[1:]))
    return {"macs": int(costs.macs), "params": int(costs.params)}


def _verify(
    artifact: Artifact,
    static: nn.Module,
    inputs: np.ndarray,
    runtime_device: str | None,
    data: dict[str, bytes],
) -> Verification:
    """Run every group of ``inputs`` through the artifact's runtime and compare with ``static`` (PyTorch).

    The runtime is built from ``data`` (the artifact's files, read once: ``read_written_files``), the bytes the
    manifest then hashes: what the manifest's hashes vouch for is what ran here, not a later read of the files.

    The reference is one PyTorch forward over all the inputs (frozen BN: each sample's output does not depend on
    the batch), sliced like the runtime's groups; the runtime runs each group the artifact accepts.
    """
    backend = get_backend(artifact.backend)
    groups = batches(inputs, None if artifact.dynamic_batch else artifact.input_shape[0])
    if artifact.dynamic_batch:  # the whole array, then its first sample alone
        used, take = inputs, [len(inputs), 1]
    else:
        take = [len(x) for x in groups]
        used = inputs[: sum(take)]
    with phase("verify: pytorch reference"), torch.no_grad():
        full = static(torch.from_numpy(np.ascontiguousarray(used))).numpy()
    refs = [full[:n] for n in take] if artifact.dynamic_batch else [full]
    outs = []
    with phase("verify: load runtime"):
        runner = backend.load(artifact.path, device=runtime_device, precision=artifact.precision, data=data)
    with runner, phase("verify: run runtime"):
        for x in groups:
            outs.append(runner.infer(x))
    distinct = len(inputs) if artifact.dynamic_batch else None  # the batch of one repeats the first image
    return compare(np.concatenate(refs), np.concatenate(outs), artifact.precision, distinct)


def _int8_inputs(
    src: _Source,
    w: float,
    backend: str,
    shape: tuple[int, ...],
    runtime_device: str | None,
    calibration: CalibrationSet | None,
    calib_images: int,
    calib_data: str | None,
    verify_inputs: np.ndarray | None,
) -> tuple[CalibrationSet, np.ndarray, str]:
    """(calibration set, verification images, their description) of an INT8 export, every input checked first:
    a device that cannot run the artifact, a checkpoint width without BN statistics (before any data is read),
    a calibration set that is too small or of another image size."""
    if backend == "tensorrt":
        get_backend("tensorrt")._require_here()  # type: ignore[attr-defined]  # before any data is read
    if backend == "onnx" and (runtime_device or "cpu").lower() == "tensorrt":
        raise US3LError(
            "INT8 ONNX artifacts have asymmetric uint8 activations, which onnxruntime's TensorRT provider cannot run: "
            "export with --backend tensorrt --precision int8 (symmetric), or verify on --runtime-device cpu"
        )
    if src.from_checkpoint:
        from us3l.deploy.graph import bn_kind, deployable_module

        if bn_kind(src.model, w) == "frozen-uncalibrated":
            deployable_module(src.model, w, require_bn_stats=True)  # raises: "width W has no calibrated BN ..."
    samples = verify_samples(shape[0], VERIFY_IMAGES)  # 64, or one whole batch of a larger batch size
    if calibration is None:
        calibration = int8_calibration(src, calib_images, calib_data, verify_images=samples)
    check_calibration(calibration, shape)
    if verify_inputs is not None:
        x = _given_inputs(verify_inputs, shape)
        return calibration, x, f"provided batch ({len(x)} samples)"
    holdout = calibration.holdout
    if holdout is not None and len(holdout) >= max(MIN_TOPK_SAMPLES, shape[0]):
        return calibration, holdout, str(calibration.holdout_note)
    norm = src.normalization
    x = seeded_inputs(shape, norm["mean"], norm["std"], samples, VERIFY_SEED)
    return calibration, x, (
        f"seeded batch (seed {VERIFY_SEED}, {samples} smooth random images, normalised): "
        f"{calibration.holdout_note or 'no held-out training images'}"
    )


def verify_samples(batch: int, least: int = VERIFY_SAMPLES) -> int:
    """How many images verify a batch-``batch`` artifact: ``least``, or one whole batch where that is larger
    (a fixed-batch artifact is run one whole batch at a time)."""
    return max(least, int(batch))


def whole_batches(x: np.ndarray, note: str, batch: int | None) -> tuple[np.ndarray, str]:
    """The verification images a fixed-batch artifact runs (whole batches only, ``us3l.deploy.verify.batches``)
    and their description saying so when some are left out (``None``: a dynamic batch runs them all)."""
    if batch is None or len(x) % batch == 0:
        return x, note
    kept = len(x) // batch * batch
    return x[:kept], f"{note}; the first {kept} of them were run (whole batches of {batch})"


def verification_inputs(
    shape: tuple[int, ...], norm: dict[str, Any], given: np.ndarray | None
) -> tuple[np.ndarray, str]:
    """(the FP32 verification images, their description for the manifest): ``given`` (N, C, H, W) normalised
    images, or a seeded batch of ``verify_samples(shape[0])`` smooth random images normalised with ``norm``
    (``VERIFY_SAMPLES``, or one whole batch of a larger batch size)."""
    if given is None:
        n = verify_samples(shape[0])
        x = seeded_inputs(shape, norm["mean"], norm["std"], n, VERIFY_SEED)
        return x, f"seeded batch (seed {VERIFY_SEED}, {n} smooth random images, normalised)"
    x = _given_inputs(given, shape)
    return x, f"provided batch ({len(x)} samples)"


def _given_inputs(given: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Caller-provided verification images as float32, refused (one line) unless (N, C, H, W) of the model's input:
    the first of them also traces the graph, so another image size would ship an artifact of that size."""
    x = np.ascontiguousarray(given, dtype=np.float32)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape[1:]) or len(x) == 0:
        want = "x".join(map(str, shape[1:]))
        raise US3LError(f"verify_inputs must be N x {want} normalised images (the model's input), got shape "
                        f"{'x'.join(map(str, x.shape))}")
    return x


def input_description(norm: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``input`` section without the shape: name, dtype, layout, normalization, value range."""
    mean, std = np.asarray(norm["mean"]), np.asarray(norm["std"])
    return {
        "name": INPUT_NAME,
        "dtype": "float32",
        "layout": "NCHW",
        "color": "RGB",
        "normalization": norm,
        "preprocessing": "x = (rgb / 255 - mean) / std, per channel",
        "value_range": [float(np.min(-mean / std)), float(np.max((1 - mean) / std))],
    }


def _onnx_opset(backend: str, device_name: str | None, tensorrt_version: str | None) -> int | None:
    """The opset of an ONNX export (``backend="onnx"``) whose engine a TensorRT builds on the board: for
    ``tensorrt_version`` if given, else for the one a known device's file declares (a device with the tensorrt
    backend); None (us3l's own) otherwise. A ``tensorrt_version`` for another backend is refused."""
    if backend != "onnx":
        if tensorrt_version is not None:  # the CLI refuses --tensorrt-version so; an API call was silently ignored
            raise US3LError(f"tensorrt_version sets the opset of an ONNX file a TensorRT builds its engine from: it "
                            f"needs backend 'onnx', got {backend!r}")
        return None
    from us3l.deploy.backends.tensorrt_versions import device_onnx_opset, export_opset

    if tensorrt_version is not None:
        return export_opset(tensorrt_version)
    if device_name is None:
        return None
    from us3l.devices.registry import find_device

    spec = find_device(device_name)
    return device_onnx_opset(spec) if spec is not None and "tensorrt" in spec.backends else None


def check_device_precision(device_name: str | None, backend: str, precision: str) -> None:
    """Refuse (one line) ``precision`` on ``backend`` for a known device (``us3l devices``) whose file lists that
    backend but not that precision (``[precisions]``). Another device name is a free target folder: unchecked."""
    if device_name is None:
        return
    from us3l.devices.registry import find_device

    spec = find_device(device_name)
    if spec is not None and backend in spec.backends:
        spec.check_precision(backend, precision)


def _our_manifest(folder: Path) -> dict[str, Any] | None:
    """The us3l manifest in ``folder`` (``manifest.json``, a regular file written by us3l, with a ``kind``), else
    ``None``: anything unreadable, not JSON, or not a us3l document."""
    path = folder / MANIFEST_FILE
    if path.is_symlink() or not path.is_file():
        return None
    try:
        doc = read_json(path, "manifest")  # bounded: a multi-GB file named manifest.json is not read whole
    except US3LError:
        return None
    ours = isinstance(doc, dict) and doc.get("tool") == "us3l" and isinstance(doc.get("kind"), str)
    return doc if ours else None


def _manifest_kind(folder: Path) -> str | None:
    """The ``kind`` of the us3l manifest in ``folder`` (``_our_manifest``), else ``None``."""
    doc = _our_manifest(folder)
    return None if doc is None else doc["kind"]


def _unlisted_entries(folder: Path, doc: dict[str, Any]) -> list[str]:
    """Names in ``folder`` (a previous us3l export, ``doc`` its manifest) that are neither its manifest nor one of the
    files the manifest lists (``artifact.files``): a user's file put there (a selection, notes) that replacing the
    folder would delete."""
    art = doc.get("artifact")
    files = art.get("files") if isinstance(art, dict) else None
    listed = {MANIFEST_FILE}
    if isinstance(files, dict):
        listed |= {str(n).split("/", 1)[0] for n in files}  # a file in a subfolder lists its top folder
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return []
    return [n for n in names if n not in listed]


def check_replaceable_artifact(path: Path, kind: str = MANIFEST_KIND) -> None:
    """Refuse (one line) to replace ``path`` unless it is absent, a symbolic link (the link is replaced, its target
    kept) or a previous us3l export: a folder whose ``manifest.json`` is a us3l manifest of ``kind``. A file or a
    folder of the user's at an artifact path is never deleted."""
    if path.is_symlink() or not path.exists():
        return
    doc = _our_manifest(path) if path.is_dir() else None
    if doc is not None and doc["kind"] == kind:
        extra = _unlisted_entries(path, doc)
        if extra:
            shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
            raise US3LError(
                f"refusing to replace {path}: besides the previous us3l export it holds {shown}, which its "
                f"{MANIFEST_FILE} does not list; move {'it' if len(extra) == 1 else 'them'} away or choose "
                "another --out"
            )
        return
    what = f"a folder without a us3l {MANIFEST_FILE} of kind '{kind}'" if path.is_dir() else "a file"
    raise US3LError(
        f"refusing to replace {path}: it is {what}, not a previous us3l export; move it away or choose another --out"
    )


def artifact_dir(out_dir: str | Path, device_name: str | None, name: str) -> Path:
    """``out_dir/<device_name or "local">/<name>``, both names checked as one safe folder name each."""
    device = safe_name(device_name or "local", "device name")
    return Path(out_dir) / device / safe_name(name, "artifact name")


def check_artifact_paths(directory: Path, kind: str = MANIFEST_KIND) -> None:
    """``check_replaceable_artifact`` for both places an export of ``directory`` may end in: the folder itself
    (verification passed) and ``<name>.failed`` (it failed); and their device folder, which must be a folder."""
    parent = directory.parent
    if os.path.lexists(parent) and not parent.is_dir():  # was 'error: File exists: OUT/local' at its mkdir
        what = "a link to nothing" if parent.is_symlink() and not parent.exists() else "a file"
        raise US3LError(f"refusing to export into {parent}: it is {what}, not a folder; move it away or choose "
                        "another --out or --device")
    for path in (directory, directory.with_name(f"{directory.name}.failed")):
        check_replaceable_artifact(path, kind)


def check_export_targets(
    model_or_ckpt: Any,
    jobs: Sequence[tuple[float, str | None, str]],
    backend: str,
    out_dir: str | Path,
    model_name: str | None = None,
) -> None:
    """Before any export work: refuse (one line) when a (width, device name, precision) of ``jobs`` would replace a
    file or a folder at ``out_dir`` that is not a previous us3l export (``check_artifact_paths``)."""
    src = _resolve_source(model_or_ckpt, model_name)
    be = get_backend(backend)
    for width, device_name, precision in jobs:
        w = src.model.width_range.check(float(width))
        check_artifact_paths(artifact_dir(out_dir, device_name, artifact_name(src.name, w, be.name, precision)))


def width_macs(model_or_ckpt: Any, width: float, model_name: str | None = None) -> int | None:
    """MACs per image of the static network that exporting ``width`` of ``model_or_ckpt`` builds (at its input
    size; ``us3l.eval.runner.width_costs``): what a profile and a selection record for the width, so a choice made
    on another network shows. None without the profiler package."""
    from us3l.eval.runner import width_costs

    src = _resolve_source(model_or_ckpt, model_name)
    return width_costs(src.model, float(width), src.input_size)[0]


def place_artifact(staging: Path, device_dir: Path, name: str, valid: bool, kind: str = MANIFEST_KIND) -> Path:
    """Move ``staging`` to ``device_dir/<name>`` (verification passed) or ``<name>.failed`` (it failed) and return
    that folder. A passed export also removes an older ``<name>.failed`` of ours: left beside the good artifact it
    read as this export's failure. A failed one leaves an older good ``<name>`` alone (nothing good is lost)."""
    final = device_dir / (name if valid else f"{name}.failed")
    check_replaceable_artifact(final, kind)  # again, right before the rename: nothing of the user's appeared there
    _move_into_place(staging, final)
    failed = device_dir / f"{name}.failed"
    if valid and failed.is_dir() and not failed.is_symlink() and _manifest_kind(failed) == kind:
        _discard(failed)
    return final


def _discard(folder: Path) -> None:
    """Remove ``folder``, renamed into a hidden staging folder first (``clean_stale`` removes what is left once this
    process is gone). Removed in place, a removal that stopped half-way (a file still open on NFS leaves a
    ``.nfs*`` file behind; a subfolder without write permission) left ``<name>.failed`` without its manifest,
    which refused every later export of the name: "refusing to replace ...failed: it is a folder without a us3l
    manifest.json"."""
    try:
        aside = temp_dir(folder.parent, prefix=staging_prefix(folder.name))
    except OSError:  # never fail an export that is in place already: left whole, the next passed export retries
        return
    with contextlib.suppress(OSError):  # not moved: left whole, a complete export of ours the next one replaces
        os.replace(folder, aside / folder.name)
    shutil.rmtree(aside, ignore_errors=True)


def _move_into_place(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` (old one renamed aside first, then removed). Interrupted or failed between
    the two renames, the old artifact is put back before the error goes on: ``final`` is never lost. Callers check
    ``final`` with ``check_replaceable_artifact`` first (a user's file or folder there is never replaced)."""
    old = None
    try:
        if os.path.lexists(final):
            old = temp_dir(final.parent, prefix=staging_prefix(final.name, "old"))
            os.replace(final, old / final.name)
        os.replace(staging, final)
    except BaseException:
        if old is not None and os.path.lexists(old / final.name) and not os.path.lexists(final):
            os.replace(old / final.name, final)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_width(
    model_or_ckpt: Any,
    width: float,
    backend: str,
    out_dir: str | Path,
    precision: str | None = None,
    device_name: str | None = None,
    dynamic_batch: bool = False,
    verify_inputs: np.ndarray | None = None,
    *,
    model_name: str | None = None,
    batch: int = 1,
    runtime_device: str | None = None,
    calibration: CalibrationSet | None = None,
    calib_images: int = DEFAULT_CALIB_IMAGES,
    calib_data: str | None = None,
    tensorrt_version: str | None = None,
) -> ExportResult:
    """Export width ``width`` of a slimmable model and verify it; returns the ``ExportResult``.

    ``model_or_ckpt``: a checkpoint path (run folder or ``checkpoint.safetensors``), a ``LoadedCheckpoint``,
    or a registered model instance (fresh: pass ``model_name``). From a checkpoint the width must have BN
    statistics (calibrated or running); a fresh model is exported with initial statistics and the manifest
    says ``"bn_stats": "uncalibrated"``. Files go to ``out_dir/<device_name or "local">/<name>/`` (see
    ``artifact_name``); a file or a folder there that is not a previous us3l export is refused before any work
    (``check_artifact_paths``). ``verify_inputs`` (N, C, H, W) normalised images; default a seeded batch of 8 (one
    whole batch of a ``batch`` above 8).
    ``precision`` defaults to the backend's first precision (fp32; fp16 for TensorRT); on a known device
    (``device_name`` in ``us3l devices``) it must be one its device file's ``[precisions]`` allows for the backend.

    ``precision="int8"``: post-training quantization calibrated on ``calibration``, by default
    ``calib_images`` seeded, class-stratified training images of the run's data (``calib_data`` overrides the
    data spec) through the evaluation transform (``us3l.deploy.quantize.calibration_set``); it is verified on
    held-out training images against PyTorch FP32 with the quantization tolerance (``us3l.deploy.verify``), and
    the manifest's ``quantization`` section records the quantizer, its version, the scheme and the calibration
    set (size, sha256, seed, per class).
    Raises ``VerificationFailed`` when the artifact's outputs are outside tolerance.
    """
    be = get_backend(backend)
    be.require_runtime()  # before any folder is made
    safe_name(device_name or "local", "device name")  # one folder inside out_dir, checked first
    precision = precision or ("fp16" if be.name == "tensorrt" else "fp32")
    be.check_precision(precision)
    check_device_precision(device_name, be.name, precision)
    onnx_opset = _onnx_opset(be.name, device_name, tensorrt_version)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    src = _resolve_source(model_or_ckpt, model_name)
    w = src.model.width_range.check(float(width))
    dest = artifact_dir(out_dir, device_name, artifact_name(src.name, w, be.name, precision))
    check_artifact_paths(dest)  # a file or folder of the user's there: refused before any work
    shape = (batch, 3, src.input_size, src.input_size)
    norm = src.normalization
    if precision == "int8":
        calibration, verify_inputs, inputs_note = _int8_inputs(
            src, w, be.name, shape, runtime_device, calibration, calib_images, calib_data, verify_inputs
        )
    else:
        verify_inputs, inputs_note = verification_inputs(shape, norm, verify_inputs)
    verify_inputs, inputs_note = whole_batches(verify_inputs, inputs_note, None if dynamic_batch else batch)

    device_dir, name = dest.parent, dest.name
    new_device_dir = not device_dir.is_dir()
    device_dir.mkdir(parents=True, exist_ok=True)
    clean_stale(out_dir)  # staging folders of killed exports (dead PID) and stale $TMPDIR/us3l-* folders
    try:
        staging = temp_dir(device_dir, prefix=staging_prefix(name))  # the umask's usual mode, not mkdtemp's 0700
    except OSError as exc:  # the artifact named, not a staging folder never made
        raise OSError(exc.errno, exc.strerror, str(dest)) from None
    try:
        example = torch.from_numpy(verify_inputs[:batch].copy()) if len(verify_inputs) >= batch else None
        example = example if example is not None else torch.zeros(shape)
        graph = build_deployable_graph(
            src.model, w, be.name, staging, shape, precision=precision, dynamic_batch=dynamic_batch,
            require_bn_stats=src.from_checkpoint, example=example, calibration=calibration,
            onnx_opset=onnx_opset,
        )  # the same function ``us3l profile`` times with: the shipped graph is the profiled graph
        static, artifact = graph.module, graph.artifact
        # one read: these bytes are verified, then hashed for the manifest
        data = read_written_files(artifact.path, artifact.files)
        verification = _verify(artifact, static, verify_inputs, runtime_device, data)
        model_doc = {
            "name": src.name,
            "width": w,
            "canonical_width": getattr(static, "canonical_width", w),
            "width_range": dataclasses.asdict(src.model.width_range),
            "model_kwargs": recorded_model_kwargs(src.model, src.name, w, static),
            "channel_config": [list(c) for c in getattr(static, "channel_config", ())],
            "feature_dim": int(artifact.output_shape[-1]),
            **_costs(static, shape),
            "macs_unit": "multiply-accumulates per image (fvcore 'flops')",
            "bn_stats": LEGACY_BN_STATS.get(graph.bn, graph.bn),
            "graph": graph.facts(),
        }
        input_spec = input_description(norm)
        default_rt = {"onnx": "cpu", "openvino": "CPU", "tensorrt": "cuda"}[be.name]
        target = {"device": device_name or "local", "runtime_device": runtime_device or default_rt}
        source = {"checkpoint": src.checkpoint, "checkpoint_sha256": src.checkpoint_sha256,
                  "bn_stats": bn_stats_record(src, w, graph.bn)}
        if src.init_seed is not None:
            source["init_seed"] = src.init_seed
        manifest = build_manifest(
            artifact=artifact,
            model=model_doc,
            source=source,
            input_spec=input_spec,
            target=target,
            verification=verification,
            verification_inputs=inputs_note,
            calibration=None if calibration is None else calibration.describe(),
            data=data,
        )
        with phase("manifest + move into place"):
            write_manifest(staging, manifest)
            final = place_artifact(staging, device_dir, name, bool(verification))
    except BaseException as exc:
        # a full disk: the artifact named (not the staging folder, gone by now, nor no path at all); told before
        # the staging folder is removed, which frees the space
        named = named_write_error(exc, dest, staged=staging)
        shutil.rmtree(staging, ignore_errors=True)
        if new_device_dir:  # a refused export leaves no empty OUT/<device>/ behind (one with files stays)
            with contextlib.suppress(OSError):
                device_dir.rmdir()
        if named is not None:
            raise named from exc
        raise
    moved = dataclasses.replace(
        artifact, path=final / artifact.path.name, files=tuple(final / f.name for f in artifact.files)
    )
    result = ExportResult(final, final / MANIFEST_FILE, manifest, moved, verification)
    if not verification:
        raise VerificationFailed(result)
    return result
