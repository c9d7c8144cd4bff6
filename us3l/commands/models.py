"""``us3l models`` and ``us3l info``: the registered architectures and a per-layer view at one width."""

from __future__ import annotations

import typer

from us3l.cli_app import app, emit_json
from us3l.cli_output import Col, Progress, note, print_table, result, set_quiet
from us3l.errors import US3LError
from us3l.validate import input_size as check_input_size
from us3l.validate import number
from us3l.width_key import width_key


def _fmt_count(n: int) -> str:
    """``n`` in 3 significant digits with a K/M/G suffix (999,500 is ``1M``: it was ``1e+03K``)."""
    if n < 1000:
        return str(n)
    for unit, scale in (("K", 1e3), ("M", 1e6)):
        if float(f"{n / scale:.3g}") < 1000:  # rounded to 3 digits: 999.5K reads as the next unit's 1
            return f"{n / scale:.3g}{unit}"
    return f"{n / 1e9:.3g}G" if n < 999.5e9 else f"{round(n / 1e9)}G"


def _input_shape(model: object, input_size: int | None) -> tuple[int, int, int, int]:
    s = check_input_size(model.input_size if input_size is None else input_size, "--input-size")  # type: ignore[attr-defined]
    return (1, 3, s, s)


def _default_width_range() -> tuple[float, float]:
    """``create_model``'s default width range (read from its signature: no model is built)."""
    import inspect

    from us3l.models.registry import create_model

    params = inspect.signature(create_model).parameters
    return float(params["width_min"].default), float(params["width_max"].default)


@app.command("models")
def models_cmd(
    costs: bool = typer.Option(
        False, "--costs", help="Also build each model and count distinct widths, params and MACs (slow: minutes)."
    ),
    wide: bool = typer.Option(False, "--wide", help="Show every table column, however wide."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """List the registered models (with --costs: distinct widths, params and MACs at the min and max width)."""
    from us3l.models import list_models, model_entry

    set_quiet(quiet)
    w_min, w_max = _default_width_range()
    rows: list[dict[str, object]] = []
    names = list_models()
    with Progress("counting costs", len(names), "models", enabled=costs and not json_out) as bar:
        for name in names:
            entry = model_entry(name)
            row: dict[str, object] = {
                "name": name,
                "description": entry.description,
                "input_size": entry.input_size,
                "width_min": w_min,
                "width_max": w_max,
            }
            if costs:
                row.update(_costs(name))
                bar.advance(detail=name)
            rows.append(row)
    if json_out:
        doc: dict[str, object] = {"models": rows}
        if costs:
            doc["macs_unit"] = "multiply-accumulates (fvcore: one per multiply-add)"
        emit_json(doc)
        return
    cols = [Col("model", key=True), Col("input", key=True, justify="right"), Col("widths", key=True)]
    if costs:
        cols += [Col("distinct", justify="right", rank=1), Col("params min→max", key=True),
                 Col("MACs min→max", key=True)]
    cols += [Col("description", rank=2, fold=True)]
    table_rows = []
    for r in rows:
        cells = [str(r["name"]), f"{r['input_size']}²", f"{r['width_min']:g}–{r['width_max']:g}"]
        if costs:
            cells += [
                str(r["distinct_widths"]),
                f"{_fmt_count(r['params_min'])} → {_fmt_count(r['params_max'])}",  # type: ignore[arg-type]
                f"{_fmt_count(r['macs_min'])} → {_fmt_count(r['macs_max'])}",  # type: ignore[arg-type]
            ]
        table_rows.append([*cells, str(r["description"])])
    title = "Registered slimmable models" + (" (MACs: one per multiply-add)" if costs else "")
    print_table(title, cols, table_rows, wide=wide)
    if not costs:
        note("[dim]us3l models --costs adds distinct widths, params and MACs (builds every model); "
             "us3l info --model NAME shows one model per layer[/dim]")


def _costs(name: str) -> dict[str, object]:
    """Distinct widths, params and MACs at the min and max width of one registered model (builds it)."""
    from us3l.models import create_model
    from us3l.profiler.costs import count_costs
    from us3l.slim import materialize

    model = create_model(name)
    shape = _input_shape(model, None)
    row: dict[str, object] = {"distinct_widths": len(model.width_grid())}
    for tag, w in (("min", model.width_range.min), ("max", model.width_range.max)):
        c = count_costs(materialize(model, w), shape)
        row[f"params_{tag}"], row[f"macs_{tag}"] = c.params, c.macs
    return row


@app.command("info")
def info_cmd(
    model_name: str = typer.Option(..., "--model", help="Registered model name (see `us3l models`)."),
    width: float = typer.Option(1.0, "--width", help="Width ratio in the model's range."),
    input_size: int = typer.Option(None, "--input-size", help="Square input side (default: the model's)."),
    wide: bool = typer.Option(False, "--wide", help="Show every table column, however wide."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Per-layer channels, params and MACs of one model at one width."""
    from us3l.models import create_model
    from us3l.models.registry import size_kwargs
    from us3l.profiler.layers import layer_table, rows_as_dicts
    from us3l.slim import canonical_width, check_width, materialize

    number(width, "--width", positive=True)  # nan: worded as export words it; the model checks its range
    if input_size is not None:
        check_input_size(input_size, "--input-size")
    # a ViT is built for its input side (its position embedding fixes the number of patches)
    model = create_model(model_name, **size_kwargs(model_name, input_size))
    w = check_width(model, width, "--width")
    shape = _input_shape(model, input_size)
    try:
        rows, costs = layer_table(materialize(model, w), shape)
    except RuntimeError as exc:  # e.g. a ViT's position embedding fixes its input size
        why = " ".join(str(exc).split())[:160]
        raise US3LError(f"{model_name} does not run at input size {shape[-1]} ({why})") from None
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
    cols = [Col("layer", key=True), Col("type", rank=1), Col("in", justify="right", rank=2),
            Col("out", key=True, justify="right"), Col("params", key=True, justify="right"),
            Col("MACs", key=True, justify="right")]
    table_rows = [[r.name, r.type, "-" if r.in_channels is None else str(r.in_channels),
                   "-" if r.out_channels is None else str(r.out_channels), _fmt_count(r.params),
                   _fmt_count(r.macs)] for r in rows]
    c = doc["canonical_width"]
    same = f" = grid width {c:g} (the same channels)" if c != width_key(w) else ""  # calibrate's note says the same
    print_table(f"{model_name} at width {w:g}{same} (input {shape[2]}×{shape[3]})", cols, table_rows, wide=wide)
    result(
        f"total: {_fmt_count(costs.macs)} MACs, {_fmt_count(costs.params)} params, "
        f"embedding {model.feature_dim(w)}; not counted as MACs: "
        f"{', '.join(sorted({*costs.skipped_ops, *costs.elementwise_ops})) or 'none'}"
    )
