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
    strict_accuracy: bool = typer.Option(
        False,
        "--strict-accuracy",
        help="Highest accuracy wins even inside the noise (default: widths whose 95% intervals overlap the best "
        "one's are tied and the fastest of them wins).",
    ),
    out: Path = typer.Option(Path("selection.json"), "--out", help="Where to write selection.json."),
    plot: Path | None = typer.Option(None, "--plot", help="Write accuracy-vs-latency PNG here."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Pick, per device, the most accurate width that fits every budget (exit 2 when none fits).

    Accuracies within each other's 95 % intervals count as a tie that the fastest width wins, unless
    --strict-accuracy. Unstable latencies of the chosen or tied widths are warned about.
    """
    from deploy.select import Budget, LatencyRule, find_profiles, select, write_selection

    budget = Budget(latency_ms=latency_ms, macs=macs, params=params, memory_mb=memory_mb)
    rule = LatencyRule(statistic=statistic, conservative=not point, margin=margin)
    files = list(profile) + (find_profiles(device, profiles_dir) if device else [])
    result = select(files, budget, accuracy, rule, metric, strict_accuracy=strict_accuracy)
    write_selection(out, result)
    for warning in result.warnings:  # stderr, and the selection's "warnings" list
        console.print(f"[yellow]warning:[/yellow] {warning}")
    for d in result.devices:  # unstable latencies: stderr, and each device's "warnings" list
        for warning in d.warnings:
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
            "decided by",
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
                    "—",
                )
                continue
            ru = d.runner_up
            acc = f"{c.accuracy:.4g}" if c.accuracy is not None else "—"
            if c.accuracy_ci is not None and c.accuracy is not None:
                half = max(c.accuracy - c.accuracy_ci[0], c.accuracy_ci[1] - c.accuracy)
                acc = f"{100 * c.accuracy:.1f} % ±{100 * half:.1f}"
            decided = d.decided_by or "—"
            if d.decided_by == "tie->latency":
                decided += " (tied: " + ", ".join(f"{w:g}" for w in d.tied_widths) + ")"
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
                decided,
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
