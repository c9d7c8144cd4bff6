"""``us3l export``: one width (or the widths a selection chose) to a backend, verified, with a manifest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from us3l.cli_app import app, emit_json
from us3l.cli_output import Col, Progress, deprecated, note, print_table, set_quiet, set_threads, warn
from us3l.errors import InfeasibleError, US3LError
from us3l.locking import acquire, release
from us3l.validate import MAX_THREADS, number, safe_name
from us3l.validate import batch_size as check_batch_size

T = TypeVar("T")


def _jobs(
    width: float | None,
    selection: Path | None,
    device: str | None,
    backend: str | None = None,
    doc: dict[str, Any] | None = None,
) -> list[tuple[float, str | None]]:
    """(width, device name) pairs to export.

    From a selection: every device's choice (or only ``device``'s). Where a device was profiled with several
    backends, the choice made on ``backend`` is the one exported; a device profiled only with other backends
    exports its choice with a note (the width was chosen on another runtime's latencies). ``doc``: the selection
    as ``read_selection`` returned it (read here when not given).
    """
    if (width is None) == (selection is None):
        raise US3LError("give exactly one of --width W or --selection selection.json")
    if device is not None:
        safe_name(device, "--device")  # a folder under --out: one safe name, checked before any work
    if width is not None:
        return [(number(width, "--width", positive=True), device)]  # the model checks its range
    if doc is None:
        from us3l.deploy.select import read_selection

        doc = read_selection(selection)
    entries = [d for d in doc["devices"] if device is None or d["device"] == device]
    if not entries:
        names = ", ".join(sorted({d["device"] for d in doc["devices"]}))
        raise US3LError(f"{selection} has no device '{device}' (it has: {names})")
    if backend is not None:
        by_device: dict[str, list[dict[str, Any]]] = {}
        for d in entries:
            by_device.setdefault(d["device"], []).append(d)
        entries = []
        for name, ds in by_device.items():
            same = [d for d in ds if d.get("backend") == backend]
            if not same:
                others = ", ".join(sorted({str(d.get("backend")) for d in ds}))
                # a warning (printed under -q too): the budget was checked on another runtime's latencies
                warn(f"{name}: the width was chosen on {others} latencies, exported to {backend}: its "
                     f"latency on {backend} was not checked against the budget (profile {backend} and run "
                     "us3l select on it)", markup=False)
            entries.extend(same or ds)
    jobs: list[tuple[float, str | None]] = []
    for d in entries:
        if d.get("chosen") is None:
            raise InfeasibleError(
                f"{selection}: no width fits the budget on device '{d['device']}'; nothing to export"
            )
        job = (float(d["chosen"]["width"]), d["device"])
        if job not in jobs:
            jobs.append(job)
    return jobs


def _per_choice(
    doc: dict[str, Any], backend: str, value: Callable[[dict[str, Any], dict[str, Any]], T | None]
) -> dict[tuple[float, str], T]:
    """(width, device) -> ``value(device entry, its choice)`` for every device with a choice, preferring the
    choice made on ``backend``'s profile where a device was profiled with several; ``None`` values are left out."""
    out: dict[tuple[float, str], T] = {}
    for d in doc["devices"]:
        c = d.get("chosen")
        if c is None:
            continue
        key = (float(c["width"]), str(d["device"]))
        v = value(d, c)
        if v is not None and (key not in out or d.get("backend") == backend):
            out[key] = v
    return out


def _chosen_precisions(doc: dict[str, Any], backend: str) -> dict[tuple[float, str], str]:
    """(width, device) -> the precision the selection chose it at (``us3l select`` pools several precisions of a
    device into one (width, precision) answer), preferring the choice made on ``backend``'s profile."""

    def precision(d: dict[str, Any], c: dict[str, Any]) -> str | None:
        prec = c.get("precision") or d.get("precision")
        return str(prec) if prec else None

    return _per_choice(doc, backend, precision)


def _chosen_graphs(doc: dict[str, Any], backend: str) -> dict[tuple[float, str], dict[str, Any]]:
    """(width, device) -> the profiled graph of that choice (``us3l.deploy.graph.profiled_graph``), preferring the
    choice made on ``backend``'s profile; an entry from a selection made before graphs were recorded is ``{}``
    plus the profile's backend."""
    return _per_choice(
        doc, backend,
        lambda d, c: {"backend": d.get("backend"), "precision": d.get("precision"), **(c.get("graph") or {})},
    )


def _graph_warnings(doc: dict[str, Any], backend: str, results: list[Any]) -> tuple[list[str], list[str]]:
    """(warnings, notes): each exported graph against the graph its width was profiled with."""
    from us3l.deploy.graph import compare_graphs

    graphs = _chosen_graphs(doc, backend)
    warnings: list[str] = []
    notes: list[str] = []
    for r in results:
        m = r.manifest
        dev = str(m["target"]["device"])
        profiled = graphs.get((float(m["model"]["width"]), dev))
        if profiled is None:
            continue
        exported = {
            **(m["model"].get("graph") or {}),
            "backend": m["backend"]["name"],
            "precision": m["backend"]["precision"],
            "checkpoint_sha256": m["source"].get("checkpoint_sha256"),
            "init_seed": m["source"].get("init_seed"),
            "label": f"{dev} width {m['model']['width']:g}",
        }
        w, n = compare_graphs(profiled, exported)
        warnings += w
        notes += n
    return warnings, notes


def _check_selection_source(
    selection: Path, doc: dict[str, Any], src: Any, model_name: str, jobs: list[tuple[float, str | None]]
) -> None:
    """Refuse (one line) to export a selection's widths from another model or another checkpoint than the one
    they were chosen for: the selection's accuracies and latencies would not describe the shipped network."""
    wanted = {dev for _, dev in jobs}
    sha = getattr(src, "sha256", None)
    for d in doc["devices"]:
        if d["device"] not in wanted or d.get("chosen") is None:
            continue
        if d["model"] != model_name:
            raise US3LError(f"{selection} chose widths of model {d['model']} on '{d['device']}', not {model_name}")
        chosen_sha = (d["chosen"].get("graph") or {}).get("checkpoint_sha256")
        if isinstance(chosen_sha, str) and chosen_sha != sha:
            this = f"checkpoint {sha[:12]}…" if sha else "a fresh model"
            raise US3LError(
                f"{selection} was made for checkpoint {chosen_sha[:12]}… on '{d['device']}', this export is from "
                f"{this}; run us3l select on this checkpoint's profile and accuracy"
            )
        # a selection from a profile of a fresh model records no checkpoint: the same architecture (model options,
        # input size) is what makes its latencies this network's, and the chosen width's MACs show it
        chosen_macs = d["chosen"].get("macs")
        if isinstance(chosen_macs, int) and not isinstance(chosen_macs, bool):
            from us3l.deploy.export import width_macs

            w = float(d["chosen"]["width"])
            macs = width_macs(src, w, model_name)
            if macs is not None and macs != chosen_macs:
                raise US3LError(
                    f"{selection} chose width {w:g} on '{d['device']}' for a network of {chosen_macs} MACs there; "
                    f"this export's network has {macs} (other model options or input size?): run us3l select on "
                    "a profile of this network"
                )


def _one_backend(given: list[str]) -> str:
    """``--backend``: export writes one backend per run (unlike ``us3l profile``); a repeated flag (or a comma list)
    is a usage error, not a silent pick of the last one. Read as ``us3l profile`` reads it: blanks dropped, an alias
    such as ``onnxruntime`` / ``ort`` / ``ov`` / ``trt`` resolved (``us3l.devices.spec.canonical_backend``)."""
    from us3l.devices.spec import canonical_backend
    from us3l.validate import name_list

    backends = [canonical_backend(b) for b in name_list(given, "--backend")]
    if len(backends) != 1:
        raise US3LError(
            f"export takes one --backend, got {', '.join(backends)}: run us3l export once per backend", exit_code=2
        )
    return backends[0]


def _calibration_notes(results: list[Any]) -> list[str]:
    """The INT8 calibration sets' notes (``--calib-images`` capped), each once."""
    texts = [((r.manifest.get("quantization") or {}).get("calibration") or {}).get("note") for r in results]
    return list(dict.fromkeys(t for t in texts if t))


def _check_batch(batch_size: int, dynamic_batch: bool) -> None:
    check_batch_size(batch_size)
    if dynamic_batch and batch_size != 1:
        raise US3LError("--dynamic-batch makes the batch size symbolic: drop --batch-size")


def _source(ckpt: Path | None, model: str | None) -> tuple[Any, str | None]:
    if (ckpt is None) == (model is None):
        raise US3LError("give exactly one of --ckpt PATH or --model NAME")
    if ckpt is not None:
        from us3l.checkpoint import load_backbone

        return load_backbone(ckpt), None
    from us3l.deploy.graph import fresh_model

    return fresh_model(model), model  # seeded like `us3l profile --model`: the same weights, the same graph


def _note_cpu_verification(backend: str, dev: str) -> None:
    """A switchable OpenVINO export for a device whose plugin is not the CPU's (``intel-igpu``) is verified on the
    CPU plugin all the same: say so, as a one-width export does when the device is absent."""
    from us3l.devices.registry import find_device

    spec = find_device(dev) if backend == "openvino" else None
    if spec is not None and spec.openvino_device != "CPU":
        note(f"note: a switchable IR is verified on the CPU plugin, not on {spec.openvino_device} of '{spec.name}'; "
             f"`us3l profile --device {spec.name} --artifact ...` runs it there")


def _verify_device(backend: str, dev: str | None, runtime_device: str | None) -> str | None:
    """Where an OpenVINO export is verified: ``--runtime-device``; else the known device's OpenVINO device (GPU,
    NPU) when this machine has it; else the CPU, with a note that the target's plugin did not run (the IR is
    portable, so the export itself stands)."""
    if runtime_device is not None or backend != "openvino" or dev is None:
        return runtime_device
    from us3l.devices.check import openvino_device_present
    from us3l.devices.registry import find_device

    spec = find_device(dev)
    if spec is None or spec.openvino_device == "CPU":
        return None
    if openvino_device_present(spec.openvino_device):
        return spec.openvino_device
    note(
        f"note: OpenVINO device {spec.openvino_device} of '{spec.name}' is not present here: the IR is verified on the "
        "CPU plugin only (target.runtime_device in the manifest); --runtime-device picks another"
    )
    return None


#: The export table: device, width, worst errors and the verdict are never dropped.
EXPORT_COLS = [
    Col("device", key=True), Col("width", key=True, justify="right"), Col("max abs err", key=True, justify="right"),
    Col("mean abs err", justify="right", rank=2), Col("min cosine", key=True, justify="right"),
    Col("BN stats", rank=1), Col("status", key=True),
]


#: The INT8 export table: the quantization tolerance's quantities (us3l.deploy.verify) instead of abs errors.
INT8_COLS = [
    Col("device", key=True), Col("width", key=True, justify="right"), Col("mean cosine", key=True, justify="right"),
    Col("min cosine", key=True, justify="right"), Col("top-5 agree", key=True, justify="right"),
    Col("max abs err", justify="right", rank=2), Col("calib imgs", justify="right", rank=1),
    Col("BN stats", rank=1), Col("status", key=True),
]


def _row(device: str, res: Any) -> list[str]:
    v, m = res.verification, res.manifest
    if v.precision == "int8":
        calib = (m.get("quantization") or {}).get("calibration") or {}
        return [
            device,
            f"{m['model']['width']:g}",
            f"{v.mean_cosine:.5f}",
            f"{v.min_cosine:.5f}",
            "-" if v.topk_agreement is None else f"{v.topk_agreement:.3f}",
            f"{v.max_abs_error:.1e}",
            str(calib.get("size", "-")),
            m["model"]["bn_stats"],
            "[green]valid[/green]" if res.valid else "[red]FAILED[/red]",
        ]
    return [
        device,
        f"{m['model']['width']:g}",
        f"{v.max_abs_error:.1e}",
        f"{v.mean_abs_error:.1e}",
        f"{v.min_cosine:.6f}",
        m["model"]["bn_stats"],
        "[green]valid[/green]" if res.valid else "[red]FAILED[/red]",
    ]


def _exports_document(results: list[Any], warnings: list[str], notes: list[str]) -> dict[str, Any]:
    """The ``--json`` document of an export run: every export made (a failed one with ``"valid": false``)."""
    return {
        "warnings": warnings,
        "notes": notes,
        "exports": [
            {
                "directory": str(r.directory),
                "manifest": str(r.manifest_path),
                "valid": r.valid,
                "graph": r.manifest["model"].get("graph"),
                "verification": r.verification.to_dict(),
                **({"quantization": r.manifest["quantization"]} if "quantization" in r.manifest else {}),
            }
            for r in results
        ],
    }


def _print_tables(backend: str, tables: dict[str, list[list[str]]], wide: bool) -> None:
    for prec, rows in tables.items():
        what = "quantization tolerance" if prec == "int8" else "errors"
        title = f"us3l export → {backend} {prec} ({what} on L2-normalised embeddings)"
        print_table(title, INT8_COLS if prec == "int8" else EXPORT_COLS, rows, wide=wide)


@app.command("export")
def export_cmd(
    backends: list[str] = typer.Option(..., "--backend", metavar="<str>", help="onnx | openvino | tensorrt (one)"),
    width: float | None = typer.Option(None, "--width", help="Width ratio in the model's range."),
    selection: Path | None = typer.Option(None, "--selection", help="selection.json from `us3l select`."),
    device: str | None = typer.Option(
        None, "--device", "-d", help="Target device name (with --selection: only this device's choice)."
    ),
    ckpt: Path | None = typer.Option(None, "--ckpt", help="Run folder or checkpoint.safetensors."),
    model: str | None = typer.Option(None, "--model", help="A registered model, freshly initialised."),
    out: Path = typer.Option(
        ..., "--out", help="Output root: OUT/<device|local>/<model>-w<W>-<backend>-<prec>/"
    ),
    precision: str | None = typer.Option(
        None, "--precision",
        help="fp32 | fp16 | int8 (default: the precision --selection chose, else fp32; tensorrt fp16). int8: "
        "post-training quantization.",
    ),
    calib_images: int = typer.Option(
        300, "--calib-images", help="int8: calibration images (seeded, class-stratified subset of the training data)."
    ),
    calib_data: str | None = typer.Option(
        None, "--calib-data", help="int8: data spec of the calibration images (default: the checkpoint's data)."
    ),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Symbolic batch axis."),
    batch_size: int = typer.Option(1, "--batch-size", help="Batch size of a fixed-batch artifact."),
    batch_old: int | None = typer.Option(None, "--batch", hidden=True),  # deprecated spelling of --batch-size
    runtime_device: str | None = typer.Option(
        None, "--runtime-device",
        help="Runtime device used for verification (OpenVINO: CPU, GPU, NPU, AUTO, HETERO:...).",
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, max=MAX_THREADS, help="CPU threads (default: PyTorch's)."
    ),
    tensorrt_version: str | None = typer.Option(
        None, "--tensorrt-version",
        help="--backend onnx: the TensorRT (8.5, 8.6, 10.x) that builds the engine from the file: an ONNX opset "
        "its parser reads (default: the --device file's tensorrt_version, else opset 18).",
    ),
    switchable: bool = typer.Option(
        False, "--switchable",
        help="One file for every width of --widths (onnx | openvino): the width is chosen per call by the "
        "int64 input width_index.",
    ),
    widths: str | None = typer.Option(
        None, "--widths",
        help="--switchable: comma-separated widths, index i = i-th width (default: the checkpoint's calibrated "
        "widths, widest first; a fresh --model: 1,0.75,0.5,0.25).",
    ),
    wide: bool = typer.Option(False, "--wide", help="Show every table column, however wide."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display or notes."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Export a width to ONNX / OpenVINO IR / a TensorRT engine, verified against PyTorch, with a manifest."""
    from us3l.deploy.backends import get_backend
    from us3l.deploy.backends.base import precision_flag
    from us3l.deploy.export import VerificationFailed, check_export_targets, export_width

    set_quiet(quiet)
    from us3l.io import output_folder

    output_folder(out, writes="DEVICE/MODEL-wW-BACKEND-PRECISION/ with the model file and manifest.json",
                  suffixes=(".onnx", ".xml", ".bin", ".engine", ".plan", ".json"))
    backend = _one_backend(backends)
    if device is not None:  # -d CPU is cpu, as in profile and select: its folder, manifest and selection entry
        from us3l.devices.registry import device_name

        device = device_name(device)
    precision = precision_flag(precision) if precision is not None else None
    if runtime_device is not None and not runtime_device.strip():  # not "the default device"
        raise US3LError(f"--runtime-device names no device, got {runtime_device!r}")
    if tensorrt_version is not None:
        from us3l.deploy.backends.tensorrt_versions import trt_release

        trt_release(tensorrt_version)  # an unsupported or malformed version: one line before any work
        if switchable or backend != "onnx":
            raise US3LError("--tensorrt-version sets the opset of an ONNX file a TensorRT builds its engine from: "
                            "it needs --backend onnx without --switchable")
    if batch_old is not None:
        deprecated(f"--batch {batch_old}", f"--batch-size {batch_old}", "export")
        batch_size = batch_old
    from us3l.deploy.quantize import calib_flags_given, check_calib_images

    calib_flags = calib_flags_given(calib_images, calib_data)
    if switchable:
        unused = [*(["--runtime-device"] if runtime_device is not None else []), *calib_flags]
        _switchable(backend, widths, width, selection, precision, ckpt, model, out, device, dynamic_batch,
                    batch_size, threads, wide, json_out, unused)
        return
    if widths is not None:
        raise US3LError("--widths needs --switchable (one width: --width W)")
    be = get_backend(backend)  # unknown backend: fail before loading anything
    prec = precision or ("fp16" if be.name == "tensorrt" else "fp32")
    be.check_precision(prec)
    _check_batch(batch_size, dynamic_batch)
    set_threads(threads)
    sel_doc = None
    if selection is not None and width is None:  # read once; both given is refused by _jobs
        from us3l.deploy.select import read_selection

        sel_doc = read_selection(selection)
    jobs = _jobs(width, selection, device, be.name, sel_doc)
    chosen_prec = _chosen_precisions(sel_doc, be.name) if sel_doc is not None and precision is None else {}

    def job_precision(w: float, dev: str | None) -> str:
        """--precision, else the precision the selection chose for this width (when the backend exports it)."""
        if sel_doc is None or precision is not None:
            return prec
        picked = chosen_prec.get((w, str(dev)))
        return picked if picked in be.precisions else prec

    if calib_flags and not any(job_precision(w, dev) == "int8" for w, dev in jobs):
        # the user meant an INT8 export: say so rather than ignore the flags
        made = "/".join(sorted({job_precision(w, dev) for w, dev in jobs}))
        raise US3LError(f"this export is {made}: drop {', '.join(calib_flags)} (int8 calibration), or give "
                        "--precision int8")
    if any(job_precision(w, dev) == "int8" for w, dev in jobs):
        check_calib_images(calib_images)
    if sel_doc is not None and ckpt is None and model is None:
        raise US3LError("--selection picks the width, not the weights: give the checkpoint it was made for with "
                        "--ckpt RUN (or --model NAME for the fresh model it profiled)")
    src, model_name = _source(ckpt, model)
    if sel_doc is not None and selection is not None:
        _check_selection_source(selection, sel_doc, src, model_name or str(src.meta.get("model")), jobs)
    net = getattr(src, "model", src)
    from us3l.slim import check_width

    for w, _ in jobs:  # out-of-range widths (or, for S-Nets, not a switch): one line, before any work
        check_width(net, w, "--width" if width is not None else str(selection))
    from us3l.deploy.export import check_device_precision

    for w, dev in jobs:  # a known device's [precisions], for every job before the first export (and its notes)
        check_device_precision(dev, be.name, job_precision(w, dev))
    out_lock = acquire(out, "export folder")  # a second export into the same --out fails at once
    tables: dict[str, list[list[str]]] = {}  # one table per precision (INT8 shows other quantities)
    results = []
    try:
        # a file or folder of the user's at any artifact path: refused before the first export's work
        check_export_targets(src, [(w, dev, job_precision(w, dev)) for w, dev in jobs], be.name, out, model_name)
        with Progress(f"exporting to {be.name}", len(jobs), "artifacts", enabled=not json_out) as bar:
            for w, dev in jobs:
                bar.update(len(results), detail=f"{dev or 'local'} width {w:g}: export, build, verify")
                res = export_width(
                    src,
                    w,
                    be.name,
                    out,
                    job_precision(w, dev),
                    dev,
                    dynamic_batch,
                    model_name=model_name,
                    batch=batch_size,
                    runtime_device=_verify_device(be.name, dev, runtime_device),
                    calib_images=calib_images,
                    calib_data=calib_data,
                    tensorrt_version=tensorrt_version,
                )
                results.append(res)
                tables.setdefault(res.verification.precision, []).append(_row(dev or "local", res))
            bar.update(len(results), detail="done")
    except VerificationFailed as exc:
        if json_out:  # --json: the one document on stdout, the failed export in it with "valid": false
            emit_json(_exports_document([*results, exc.result], [], []))
        else:
            tables.setdefault(exc.result.verification.precision, []).append(
                _row(exc.result.manifest["target"]["device"], exc.result)
            )
            _print_tables(be.name, tables, wide)
        for text in _calibration_notes([*results, exc.result]):
            note(f"note: {text}", markup=False)
        raise
    finally:
        release(out_lock)
    warnings, notes = _graph_warnings(sel_doc, be.name, results) if sel_doc is not None else ([], [])
    for warning in warnings:  # stderr, and "warnings" in the --json document
        warn(warning)
    if json_out:
        emit_json(_exports_document(results, warnings, notes))
    else:
        _print_tables(be.name, tables, wide)
        for text in notes:
            note(f"[dim]{text}[/dim]")
        for r in results:
            note(f"wrote {r.directory}", markup=False)
    for text in _calibration_notes(results):
        note(f"note: {text}", markup=False)
    fresh = next((r.manifest for r in results if not (r.manifest.get("source") or {}).get("checkpoint")), None)
    if fresh is not None:
        _fresh_model_note(fresh, fresh["model"]["bn_stats"] == "uncalibrated")


#: The switchable export's table: one row per width of the grid, the worst of the runtime's modes.
SWITCHABLE_COLS = [
    Col("index", key=True, justify="right"), Col("width", key=True, justify="right"),
    Col("features", justify="right", rank=1), Col("MMACs", justify="right", rank=2),
    Col("max abs err", key=True, justify="right"), Col("min cosine", key=True, justify="right"),
    Col("BN stats", rank=1), Col("status", key=True),
]


def _switchable(
    backend: str, widths: str | None, width: float | None, selection: Path | None, precision: str | None,
    ckpt: Path | None, model: str | None, out: Path, device: str | None, dynamic_batch: bool, batch_size: int,
    threads: int | None, wide: bool, json_out: bool, unused: list[str] | None = None,
) -> None:
    """``us3l export --switchable``: the checks of its flags, the export, the table. ``unused``: the flags given
    that a switchable export does not use (refused, not silently ignored)."""
    from us3l.deploy.backends import get_backend
    from us3l.deploy.switchable_export import BACKENDS, SwitchableVerificationFailed, export_switchable
    from us3l.validate import width_list

    backend = get_backend(backend).name  # unknown backend (e.g. "onnxruntime": the backend is "onnx"): one line
    if backend not in BACKENDS:
        raise US3LError(f"--switchable exports to onnx or openvino, not '{backend}' (TensorRT: docs/deploy.md)")
    if width is not None or selection is not None:
        raise US3LError("--switchable exports a grid of widths: give --widths W1,W2,... instead of --width/--selection")
    if precision not in (None, "fp32"):
        raise US3LError(f"--switchable exports fp32 only, got --precision {precision}")
    if unused:  # e.g. --runtime-device NPU: the artifact is verified on the CPU, which must not go unsaid
        raise US3LError(f"--switchable exports fp32 and verifies on the CPU: drop {', '.join(unused)}")
    _check_batch(batch_size, dynamic_batch)
    if device is not None:
        from us3l.deploy.export import check_device_precision

        safe_name(device, "--device")
        check_device_precision(device, backend, "fp32")  # as a one-width export (intel-npu: fp16/int8 only)
        _note_cpu_verification(backend, device)
    grid = width_list(widths) if widths is not None else None
    set_threads(threads)
    src, model_name = _source(ckpt, model)
    if grid is not None:
        from us3l.slim import check_width

        for w in grid:  # out of range, or not a switch: worded with the flag, before the export checks the grid
            check_width(getattr(src, "model", src), w, "--widths")
    out_lock = acquire(out, "export folder")
    try:
        with Progress(f"exporting switchable {backend}", 1, "artifacts", enabled=not json_out) as bar:
            bar.update(0, detail="export every width, build, verify")
            try:
                res = export_switchable(src, backend, out, grid, device, dynamic_batch, model_name=model_name,
                                        batch=batch_size)
            except SwitchableVerificationFailed as exc:
                if json_out:  # --json: the one document on stdout, with "valid": false
                    emit_json(_switchable_document(exc.result))
                else:
                    _print_switchable(exc.result.manifest, wide)
                raise
            bar.update(1, detail="done")
    finally:
        release(out_lock)
    doc = res.manifest
    if json_out:
        emit_json(_switchable_document(res))
        return
    _print_switchable(doc, wide)
    sw = doc["switchable"]
    note(
        f"one file for {len(sw['widths'])} widths: {sw['artifact_bytes'] / 1e6:.1f} MB, "
        f"{sw['size_ratio_to_static_widest']:.3f}x the static widest export; per-width BN statistics "
        f"{sw['per_width_bytes_total'] / 1e3:.1f} kB; choose the width with input '{sw['index_input']}' "
        f"(0 = width {sw['widths'][0]:g})",
        markup=False,
    )
    note(f"wrote {res.directory}", markup=False)
    if not (doc.get("source") or {}).get("checkpoint"):
        _fresh_model_note(doc, any(p["bn_stats"] == "uncalibrated" for p in doc["model"]["per_width"]))


def _fresh_model_note(manifest: dict[str, Any], placeholder_bn: bool) -> None:
    """The note after exporting a fresh ``--model`` (no checkpoint): its weights are the seeded initial ones, with
    or without BatchNorm (a ViT has none, and was exported without a word)."""
    seed = (manifest.get("source") or {}).get("init_seed")
    what = f"random initial weights{f', init_seed {seed}' if seed is not None else ''}"
    what += "; placeholder BN statistics" if placeholder_bn else ""
    note(f"[yellow]note:[/yellow] exported a fresh model ({what}): the graph and latency are real, the embeddings "
         "are not meaningful")


def _switchable_document(res: Any) -> dict[str, Any]:
    """The ``--json`` document of a switchable export (failed or not)."""
    doc = res.manifest
    return {"directory": str(res.directory), "manifest": str(res.manifest_path), "valid": res.valid,
            "switchable": doc["switchable"], "per_width": doc["model"]["per_width"]}


def _worst(checks: list[dict[str, Any]], key: str, pick: Callable[..., float], fmt: str) -> str:
    """The worst ``key`` of a width's checks; "nan" where one is null (its outputs were not finite)."""
    values = [c[key] for c in checks]
    return "nan" if any(v is None for v in values) else format(pick(values), fmt)


def _print_switchable(doc: dict[str, Any], wide: bool) -> None:
    rows = []
    for p in doc["model"]["per_width"]:
        checks = list(p["verification"].values())
        ok = all(c["passed"] for c in checks)
        rows.append([
            str(p["index"]), f"{p['width']:g}", str(p["feature_dim"]),
            "-" if p.get("macs") is None else f"{p['macs'] / 1e6:.1f}",
            _worst(checks, "max_abs_error", max, ".1e"), _worst(checks, "min_cosine", min, ".6f"),
            p["bn_stats"], "[green]valid[/green]" if ok else "[red]FAILED[/red]",
        ])
    modes = ", ".join(doc["verification"]["modes"])
    title = f"us3l export --switchable → {doc['backend']['name']} fp32 (errors on L2-normalised embeddings; {modes})"
    print_table(title, SWITCHABLE_COLS, rows, wide=wide)
