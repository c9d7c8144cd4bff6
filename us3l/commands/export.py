"""``us3l export``: one width (or the widths a selection chose) to a backend, verified, with a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from us3l.cli_app import app, console, emit_json
from us3l.errors import US3LError
from us3l.locking import acquire, release
from us3l.validate import number, safe_name


def _jobs(
    width: float | None, selection: Path | None, device: str | None, backend: str | None = None
) -> list[tuple[float, str | None]]:
    """(width, device name) pairs to export.

    From a selection: every device's choice (or only ``device``'s). Where a device was profiled with several
    backends, the choice made on ``backend`` is the one exported; a device profiled only with other backends
    exports its choice with a note (the width was chosen on another runtime's latencies).
    """
    if (width is None) == (selection is None):
        raise US3LError("give exactly one of --width W or --selection selection.json")
    if device is not None:
        safe_name(device, "--device")  # a folder under --out: one safe name, checked before any work
    if width is not None:
        return [(number(width, "--width", positive=True), device)]  # the model checks its range
    from deploy.select import read_selection

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
                console.print(f"note: {name}: the width was chosen on {others} latencies, exported to {backend}")
            entries.extend(same or ds)
    jobs: list[tuple[float, str | None]] = []
    for d in entries:
        if d.get("chosen") is None:
            raise US3LError(
                f"{selection}: no width fits the budget on device '{d['device']}'; nothing to export"
            )
        job = (float(d["chosen"]["width"]), d["device"])
        if job not in jobs:
            jobs.append(job)
    return jobs


def _chosen_graphs(selection: Path, backend: str) -> dict[tuple[float, str], dict[str, Any]]:
    """(width, device) -> the profiled graph of that choice (``deploy.graph.profiled_graph``), preferring the
    choice made on ``backend``'s profile; an entry from a selection made before graphs were recorded is ``{}``
    plus the profile's backend."""
    from deploy.select import read_selection

    out: dict[tuple[float, str], dict[str, Any]] = {}
    for d in read_selection(selection)["devices"]:
        c = d.get("chosen")
        if c is None:
            continue
        key = (float(c["width"]), str(d["device"]))
        graph = {"backend": d.get("backend"), "precision": d.get("precision"), **(c.get("graph") or {})}
        if key not in out or d.get("backend") == backend:
            out[key] = graph
    return out


def _graph_warnings(selection: Path, backend: str, results: list[Any]) -> tuple[list[str], list[str]]:
    """(warnings, notes): each exported graph against the graph its width was profiled with."""
    from deploy.graph import compare_graphs

    graphs = _chosen_graphs(selection, backend)
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


def _source(ckpt: Path | None, model: str | None) -> tuple[Any, str | None]:
    if (ckpt is None) == (model is None):
        raise US3LError("give exactly one of --ckpt PATH or --model NAME")
    if ckpt is not None:
        from us3l.checkpoint import load_backbone

        return load_backbone(ckpt), None
    from deploy.graph import fresh_model

    return fresh_model(model), model  # seeded like `us3l profile --model`: the same weights, the same graph


def _row(table: Table, device: str, res: Any) -> None:
    v, m = res.verification, res.manifest
    table.add_row(
        device,
        f"{m['model']['width']:g}",
        f"{v.max_abs_error:.1e}",
        f"{v.mean_abs_error:.1e}",
        f"{v.min_cosine:.6f}",
        m["model"]["bn_stats"],
        "[green]valid[/green]" if res.valid else "[red]FAILED[/red]",
    )


@app.command("export")
def export_cmd(
    backend: str = typer.Option(..., "--backend", help="onnx | openvino | tensorrt"),
    width: float | None = typer.Option(None, "--width", help="Width ratio in the model's range."),
    selection: Path | None = typer.Option(None, "--selection", help="selection.json from `us3l select`."),
    device: str | None = typer.Option(
        None, "--device", help="Target device name (with --selection: only this device's choice)."
    ),
    ckpt: Path | None = typer.Option(None, "--ckpt", help="Run folder or checkpoint.safetensors."),
    model: str | None = typer.Option(None, "--model", help="A registered model, freshly initialised."),
    out: Path = typer.Option(
        ..., "--out", help="Output root: OUT/<device|local>/<model>-w<W>-<backend>-<prec>/"
    ),
    precision: str | None = typer.Option(
        None, "--precision", help="fp32 | fp16 (default fp32; tensorrt fp16)."
    ),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Symbolic batch axis."),
    batch: int = typer.Option(1, "--batch", help="Batch size of a fixed-batch artifact."),
    runtime_device: str | None = typer.Option(
        None, "--runtime-device", help="Runtime device used for verification (OpenVINO: CPU/GPU/NPU)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Export a width to ONNX / OpenVINO IR / a TensorRT engine, verified against PyTorch, with a manifest."""
    from deploy.backends import get_backend
    from deploy.export import VerificationFailed, export_width

    be = get_backend(backend)  # unknown backend: fail before loading anything
    prec = precision or ("fp16" if be.name == "tensorrt" else "fp32")
    be.check_precision(prec)
    if batch < 1:
        raise US3LError(f"--batch must be >= 1, got {batch}")
    jobs = _jobs(width, selection, device, be.name)
    src, model_name = _source(ckpt, model)
    out_lock = acquire(out, "export folder")  # a second export into the same --out fails at once
    table = Table(title=f"us3l export → {be.name} {prec} (errors on L2-normalised embeddings)")
    for col in ("device", "width", "max abs err", "mean abs err", "min cosine", "BN stats", "status"):
        table.add_column(col)
    results = []
    try:
        for w, dev in jobs:
            res = export_width(
                src,
                w,
                be.name,
                out,
                precision,
                dev,
                dynamic_batch,
                model_name=model_name,
                batch=batch,
                runtime_device=runtime_device,
            )
            results.append(res)
            _row(table, dev or "local", res)
    except VerificationFailed as exc:
        _row(table, exc.result.manifest["target"]["device"], exc.result)
        console.print(table)
        raise
    finally:
        release(out_lock)
    warnings, notes = _graph_warnings(selection, be.name, results) if selection is not None else ([], [])
    for warning in warnings:  # stderr, and "warnings" in the --json document
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if json_out:
        emit_json(
            {
                "warnings": warnings,
                "notes": notes,
                "exports": [
                    {
                        "directory": str(r.directory),
                        "manifest": str(r.manifest_path),
                        "valid": r.valid,
                        "graph": r.manifest["model"].get("graph"),
                        "verification": r.verification.to_dict(),
                    }
                    for r in results
                ]
            }
        )
    else:
        console.print(table)
        for note in notes:
            console.print(f"[dim]{note}[/dim]")
        for r in results:
            console.print(f"wrote {r.directory}")
    if any(r.manifest["model"]["bn_stats"] == "uncalibrated" for r in results):
        console.print(
            "[yellow]note:[/yellow] exported a fresh, uncalibrated model (placeholder BN statistics): "
            "the graph and latency are real, the embeddings are not meaningful"
        )
