"""``us3l select``: the most accurate width per device under latency / MACs / params / memory budgets."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from us3l.cli_app import app, console, emit_json


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


@app.command("select")
def select_cmd(
    profile: list[Path] = typer.Option([], "--profile", help="Profile file(s) (repeat for many devices)."),
    device: list[str] = typer.Option(
        [], "--device", help="Device name(s): finds PROFILES_DIR/*-<device>-*.json."
    ),
    profiles_dir: Path = typer.Option(Path("profiles"), "--profiles-dir", help="Where --device looks."),
    accuracy: Path | None = typer.Option(None, "--accuracy", help="accuracy.json (else MACs are the proxy)."),
    metric: str = typer.Option("auto", "--metric", help="auto (linear, else knn) | linear | knn"),
    latency_ms: float | None = typer.Option(None, "--latency-ms", help="Latency budget in ms."),
    macs: float | None = typer.Option(None, "--macs", help="MACs budget (multiply-adds per image)."),
    params: float | None = typer.Option(None, "--params", help="Parameter-count budget."),
    memory_mb: float | None = typer.Option(None, "--memory-mb", help="Weights + activations budget, 10^6 B."),
    statistic: str = typer.Option("p90", "--statistic", help="p50 | p90 | p99 | mean"),
    point: bool = typer.Option(
        False, "--point", help="Use the statistic itself, not its upper 95% CI bound."
    ),
    margin: float = typer.Option(0.0, "--margin", help="Fraction added to the latency, e.g. 0.1."),
    out: Path = typer.Option(Path("selection.json"), "--out", help="Where to write selection.json."),
    plot: Path | None = typer.Option(None, "--plot", help="Write accuracy-vs-latency PNG here."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Pick, per device, the most accurate width that fits every budget (exit 2 when none fits)."""
    from deploy.select import Budget, LatencyRule, find_profiles, select, write_selection

    budget = Budget(latency_ms=latency_ms, macs=macs, params=params, memory_mb=memory_mb)
    rule = LatencyRule(statistic=statistic, conservative=not point, margin=margin)
    files = list(profile) + (find_profiles(device, profiles_dir) if device else [])
    result = select(files, budget, accuracy, rule, metric)
    write_selection(out, result)
    for warning in result.warnings:  # stderr, and the selection's "warnings" list
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if plot is not None:
        from deploy.selection_plot import plot_selection

        plot_selection(result, plot)
    if json_out:
        emit_json(result.to_document())
    else:
        acc_head = "MACs (proxy)" if result.metric == "macs" else result.metric
        t = Table(
            title=f"us3l select · latency = {rule.describe()} · budget "
            + ", ".join(f"{k} ≤ {v:g}" for k, v in budget.active().items())
        )
        for col in (
            "device",
            "model",
            "backend",
            "width",
            acc_head,
            "latency ms",
            "p50",
            "p90",
            "p99",
            "slack ms",
            "runner-up",
        ):
            t.add_column(col)
        for d in result.devices:
            c = d.chosen
            if c is None:
                t.add_row(
                    d.device,
                    d.model,
                    f"{d.backend}/{d.precision}",
                    "[red]none[/red]",
                    "—",
                    f"min {d.minimum['latency_ms']:.3f}",
                    "—",
                    "—",
                    "—",
                    "—",
                    "—",
                )
                continue
            ru = d.runner_up
            acc = f"{c.accuracy:.4g}" if c.accuracy is not None else "—"
            t.add_row(
                d.device,
                d.model,
                f"{d.backend}/{d.precision}",
                f"{c.width:g}",
                acc,
                f"{c.latency_ms:.3f}",
                _fmt(c.latency.get("p50_ms")),
                _fmt(c.latency.get("p90_ms")),
                _fmt(c.latency.get("p99_ms")),
                _fmt(d.slack.get("latency_ms")),
                f"w={ru.width:g} ({ru.accuracy:.4g}, {ru.latency_ms:.3f} ms)" if ru else "—",
            )
        console.print(t)
        if result.metric == "macs":
            console.print(
                "[yellow]note:[/yellow] no --accuracy file: MACs stand in for accuracy "
                "(the widest width that fits wins)"
            )
        for d in result.devices:
            for n in d.notes:
                console.print(f"[dim]{d.device}: {n}[/dim]")
        console.print(f"wrote {out}" + (f" and {plot}" if plot else ""))
    result.raise_if_infeasible()
