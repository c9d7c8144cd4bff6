"""``us3l export``: one width (or the widths a selection chose) to a backend, verified, with a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from us3l.cli_app import app, console, emit_json
from us3l.errors import US3LError


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
    if width is not None:
        return [(width, device)]
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


def _source(ckpt: Path | None, model: str | None) -> tuple[Any, str | None]:
    if (ckpt is None) == (model is None):
        raise US3LError("give exactly one of --ckpt PATH or --model NAME")
    if ckpt is not None:
        from us3l.checkpoint import load_backbone

        return load_backbone(ckpt), None
    from us3l.models import create_model

    return create_model(model, num_classes=0), model


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
    jobs = _jobs(width, selection, device, be.name)
    src, model_name = _source(ckpt, model)
    prec = precision or ("fp16" if be.name == "tensorrt" else "fp32")
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
    if json_out:
        emit_json(
            {
                "exports": [
                    {
                        "directory": str(r.directory),
                        "manifest": str(r.manifest_path),
                        "valid": r.valid,
                        "verification": r.verification.to_dict(),
                    }
                    for r in results
                ]
            }
        )
    else:
        console.print(table)
        for r in results:
            console.print(f"wrote {r.directory}")
    if any(r.manifest["model"]["bn_stats"] == "uncalibrated" for r in results):
        console.print(
            "[yellow]note:[/yellow] exported a fresh, uncalibrated model (BN statistics 0/1): "
            "the graph and latency are real, the embeddings are not meaningful"
        )
