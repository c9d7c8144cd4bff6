"""``us3l models`` and ``us3l info``: the registered architectures and a per-layer view at one width."""

from __future__ import annotations

import typer
from rich.table import Table

from us3l.cli_app import app, console, emit_json
from us3l.errors import US3LError


def _fmt_count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def _input_shape(model: object, input_size: int | None) -> tuple[int, int, int, int]:
    s = input_size or model.input_size  # type: ignore[attr-defined]
    if s < 8:
        raise US3LError(f"input size must be at least 8 pixels, got {s}")
    return (1, 3, s, s)


@app.command("models")
def models_cmd(json_out: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """List the registered models with params and MACs at the min and max width."""
    from profiler.costs import count_costs
    from us3l.models import create_model, list_models, model_entry
    from us3l.slim import materialize

    rows = []
    for name in list_models():
        entry = model_entry(name)
        model = create_model(name)
        shape = _input_shape(model, None)
        row: dict[str, object] = {
            "name": name,
            "description": entry.description,
            "input_size": entry.input_size,
            "width_min": model.width_range.min,
            "width_max": model.width_range.max,
            "distinct_widths": len(model.width_grid()),
        }
        for tag, w in (("min", model.width_range.min), ("max", model.width_range.max)):
            c = count_costs(materialize(model, w), shape)
            row[f"params_{tag}"], row[f"macs_{tag}"] = c.params, c.macs
        rows.append(row)
    if json_out:
        emit_json({"models": rows, "macs_unit": "multiply-accumulates (fvcore: one per multiply-add)"})
        return
    t = Table(title="Registered slimmable models (MACs: one per multiply-add)")
    for col in ("model", "input", "widths", "distinct", "params min→max", "MACs min→max"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            str(r["name"]),
            f"{r['input_size']}²",
            f"{r['width_min']:g}–{r['width_max']:g}",
            str(r["distinct_widths"]),
            f"{_fmt_count(r['params_min'])} → {_fmt_count(r['params_max'])}",  # type: ignore[arg-type]
            f"{_fmt_count(r['macs_min'])} → {_fmt_count(r['macs_max'])}",  # type: ignore[arg-type]
        )
    console.print(t)


@app.command("info")
def info_cmd(
    model_name: str = typer.Option(..., "--model", help="Registered model name (see `us3l models`)."),
    width: float = typer.Option(1.0, "--width", help="Width ratio in the model's range."),
    input_size: int = typer.Option(None, "--input-size", help="Square input side (default: the model's)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Per-layer channels, params and MACs of one model at one width."""
    from profiler.layers import layer_table, rows_as_dicts
    from us3l.models import create_model
    from us3l.slim import canonical_width, materialize

    model = create_model(model_name)
    w = model.width_range.check(width)
    shape = _input_shape(model, input_size)
    rows, costs = layer_table(materialize(model, w), shape)
    doc = {
        "model": model_name,
        "width": w,
        "canonical_width": canonical_width(model, w),
        "input_shape": list(shape),
        "feature_dim": model.feature_dim(w),
        "macs": costs.macs,
        "params": costs.params,
        "skipped_ops": costs.skipped_ops,
        "elementwise_ops": costs.elementwise_ops,
        "layers": rows_as_dicts(rows),
    }
    if json_out:
        emit_json(doc)
        return
    t = Table(title=f"{model_name} at width {w:g} (input {shape[2]}×{shape[3]})")
    for col in ("layer", "type", "in", "out", "params", "MACs"):
        t.add_column(col, justify="right" if col in ("in", "out", "params", "MACs") else "left")
    for r in rows:
        t.add_row(r.name, r.type, str(r.in_channels), str(r.out_channels), _fmt_count(r.params), _fmt_count(r.macs))
    console.print(t)
    console.print(
        f"total: {_fmt_count(costs.macs)} MACs, {_fmt_count(costs.params)} params, "
        f"embedding {model.feature_dim(w)}; not counted as MACs: "
        f"{', '.join(sorted({*costs.skipped_ops, *costs.elementwise_ops})) or 'none'}"
    )
