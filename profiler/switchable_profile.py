"""``us3l profile --artifact DIR``: every width of a switchable artifact timed through that one file.

The artifact's manifest (kind "switchable_manifest") is read and checked first
(``us3l.deploy.switchable_runtime.read_switchable``). Then one runtime object holds the file: onnxruntime, one
session fed ``width_index``; OpenVINO, the file compiled once per width with ``width_index`` bound, the mode that
runs at static speed. The widths of the grid take turns in one ``measure_interleaved`` loop under the device's
measurement policy. The result is an ordinary profile (kind "profile"), one record per grid width with the sizes
and costs the export recorded, so ``us3l select`` reads it like any other; ``extra.switchable`` names the
artifact, its sha256, the grid and the mode, and the model is ``<model>-switchable`` (its own profile file beside
the static sweep's). Runs on this machine only: OpenVINO on the device's ``openvino_device`` (GPU, NPU: refused
when OpenVINO does not see it here), and only on a device that runs fp32 on the artifact's backend.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from us3l.devices.spec import DeviceSpec
from us3l.errors import US3LError
from us3l.profiler.measure import MeasurementPolicy, measure_interleaved
from us3l.profiler.profile_file import SWITCHABLE_SUFFIX, Profile, ProfileRecord

#: How each backend's runtime holds the file while it is profiled (recorded as ``extra.switchable.mode``).
MODES = {"onnx": "onnxruntime, width_index fed per call", "openvino": "openvino, width_index bound per width"}


#: The precision a switchable artifact is profiled at (the export writes fp32 graphs).
PRECISION = "fp32"


def profiled_model_name(doc: dict[str, Any]) -> str:
    """The ``model`` of a switchable artifact's profile (``doc``: its manifest): its own profile file beside the
    static sweep's."""
    return f"{doc['model']['name']}{SWITCHABLE_SUFFIX}"


ARTIFACT_RELATIVE_TO = "profile"  # extra.switchable.relative_to: the artifact path starts at the profile's folder


def placed_artifact(folder: str | Path, profile_path: str | Path) -> dict[str, str]:
    """``extra.switchable``'s ``artifact`` and ``relative_to`` for a profile written to ``profile_path``: the
    artifact folder relative to the profile's own folder, so that a pipeline folder moved or read from elsewhere
    still names it (a profile written before 2026-12-06 recorded the folder as given, relative to wherever
    ``us3l profile`` ran)."""
    rel = os.path.relpath(Path(folder).resolve(), Path(profile_path).resolve().parent)
    return {"artifact": Path(rel).as_posix(), "relative_to": ARTIFACT_RELATIVE_TO}


def recorded_artifact(profile_path: str | Path, switchable: dict[str, Any]) -> Path:
    """The artifact folder a profile's ``extra.switchable`` names: from the profile's folder where it says so,
    else as recorded (an older profile)."""
    recorded = Path(switchable["artifact"])
    if switchable.get("relative_to") == ARTIFACT_RELATIVE_TO:
        return Path(profile_path).parent / recorded
    return recorded


def recorded_switchable(extra: object) -> dict[str, Any] | None:
    """A profile's ``extra.switchable`` where it names the artifact folder and sha256 it was measured through."""
    sw = extra.get("switchable") if isinstance(extra, dict) else None
    if not isinstance(sw, dict) or not isinstance(sw.get("artifact"), str) or not isinstance(sw.get("sha256"), str):
        return None
    return sw


def manifest_artifact_sha256(doc: object) -> str | None:
    """The artifact sha256 a switchable export's manifest records (None where it records none)."""
    art = doc.get("artifact") if isinstance(doc, dict) else None
    now = art.get("sha256") if isinstance(art, dict) else None
    return now if isinstance(now, str) else None


def reexported_text(folder: str, measured: str, now: object) -> str:
    """How select and report say a switchable profile's artifact folder was re-exported since it was measured."""
    return (f"measured through another version of {folder} (sha256 {measured[:12]}…, the folder holds "
            f"{str(now)[:12]}…: re-exported since")


def profile_switchable(
    folder: str | Path,
    spec: DeviceSpec,
    *,
    threads: int | None = None,
    policy: MeasurementPolicy | None = None,
    on_round: Callable[[int, dict[Any, int]], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Profile:
    """Profile every width of the switchable artifact in ``folder`` on ``spec`` (this machine).

    The profile's ``checkpoint_sha256`` is the manifest's ``source.checkpoint_sha256`` checked against the
    checkpoint it names where that file is here, and its ``model`` the manifest's ``model.name`` checked against that
    checkpoint's (``us3l.deploy.manifest.checked_source_checkpoint``: another digest or model is refused before any
    width is timed); where the checkpoint is not here, or a file at its recorded relative path holds other weights,
    ``extra.switchable.checkpoint_checked`` is false, and ``on_note`` (``on_warning``, for the other weights) gets
    one line for what was not checked."""
    import numpy as np

    from us3l.deploy.backends import get_backend
    from us3l.deploy.switchable_runtime import open_switchable, read_switchable_files
    from us3l.profiler import fingerprint
    from us3l.profiler.timers import example_input, resolve_threads

    doc, path, files = read_switchable_files(folder)  # the runtime is opened on these hash-checked bytes
    from us3l.deploy.graph import bn_kind_named
    from us3l.deploy.manifest import checked_source_checkpoint
    from us3l.validate import safe_name

    # the profile's file is named after it: an edited name is refused before any width is timed, not after
    safe_name(doc["model"]["name"], f"{Path(folder) / 'manifest.json'}: model.name")
    backend = doc["backend"]["name"]
    if not spec.reach.is_local:
        raise US3LError("a switchable artifact is profiled on this machine only (device reached over SSH: export "
                        "the grid's widths as static artifacts, or run us3l on the device)")
    if backend not in spec.backends:
        raise US3LError(f"device '{spec.name}' has no {backend} backend (it has: {', '.join(spec.backends)})")
    spec.check_precision(backend, PRECISION)  # an NPU runs fp16/int8: an fp32 file would be timed as another model
    # the profile ties its latencies to this checkpoint (us3l select, the report): hashed where it is here
    source_check = checked_source_checkpoint(doc, Path(folder) / "manifest.json")
    tell = on_warning if source_check.warning else on_note
    if source_check.note is not None and tell is not None:  # said before timing: also when a width then fails
        tell(source_check.note)
    # the installed runtime must be able to run what the manifest records, as deploy.load_switchable checks
    get_backend(backend).check_runtime_compat(doc["backend"].get("runtime_version"))
    from us3l.profiler.sweep import check_local_requirements, check_timed_device

    check_timed_device(spec, [backend])
    check_local_requirements(spec, [backend])  # the OpenVINO device is here: one line naming the device file
    t0 = time.perf_counter()
    per_width = doc["model"]["per_width"]
    batch = doc["input"]["shape"][0]
    shape = (spec.batch if isinstance(batch, str) else int(batch), *(int(v) for v in doc["input"]["shape"][1:]))
    pinned = resolve_threads(threads or spec.threads)
    # OpenVINO: the device's own plugin (GPU, NPU), refused when absent; it was the CPU whatever the device
    ov_device = spec.openvino_device if backend == "openvino" else "CPU"
    runner = open_switchable(backend, path, len(per_width), pinned, bound=True, data=files, device=ov_device)
    x = np.ascontiguousarray(example_input(shape).numpy())

    def timer_of(k: int) -> Callable[[int], list[float]]:
        return lambda n: [runner.time_once(x, k) for _ in range(n)]

    policy = policy or spec.policy
    res = measure_interleaved({p["index"]: timer_of(p["index"]) for p in per_width}, policy, on_round=on_round)
    sha = doc["artifact"]["sha256"]
    records = tuple(
        ProfileRecord(
            width=float(p["width"]), channels=int(p["channels"]), macs=int(p["macs"]), params=int(p["params"]),
            weight_bytes=int(p["weight_bytes"]), activation_bytes=int(p["activation_bytes"]),
            latency=res[p["index"]].stats, stop_reason=res[p["index"]].stop_reason, bn=bn_kind_named(p["bn_stats"]),
            graph_sha256=sha, timing_s=res[p["index"]].elapsed_s,
        )
        for p in per_width
    )
    wall = time.perf_counter() - t0
    source = doc.get("source") or {}
    return Profile(
        model=profiled_model_name(doc),
        device=spec.name,
        backend=backend,
        precision=PRECISION,
        input_shape=shape,
        threads=pinned,
        policy=policy.to_dict(),
        fingerprint=fingerprint.collect(),
        records=records,
        checkpoint_sha256=source_check.checkpoint_sha256,
        init_seed=source.get("init_seed"),
        reach=spec.reach.url,
        runtime_version=doc["backend"].get("runtime_version"),
        extra={
            **({"openvino_device": ov_device} if backend == "openvino" else {}),  # as a static sweep records it
            "switchable": {
                "artifact": str(Path(folder)), "sha256": sha, "widths": doc["model"]["widths"],
                "index_input": doc["width_input"]["name"], "mode": MODES[backend],
                **({} if source_check.checkpoint_sha256 is None
                   else {"checkpoint_checked": source_check.checkpoint_checked}),
            },
        },
        time_budget={
            "max_total_seconds": None, "wall_s": wall, "prepare_s": 0.0, "measure_s": wall,
            "stable_widths": sum(1 for r in records if r.latency.stable),
            "unstable_widths": sum(1 for r in records if not r.latency.stable),
            "budget_stopped": 0, "requested_widths": len(records), "prepared_widths": len(records),
        },
    )
