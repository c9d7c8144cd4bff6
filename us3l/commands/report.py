"""``us3l report``: one self-contained HTML page (plots, tables, fingerprints, manifests) for a pipeline folder."""

from __future__ import annotations

from pathlib import Path

import typer

from us3l.cli_app import app, console, emit_json


@app.command("report")
def report_cmd(
    directory: Path = typer.Argument(..., metavar="DIR", help="Pipeline folder (as written by us3l quickstart)."),
    out: Path | None = typer.Option(None, "--out", help="Where to write the page (default: DIR/report.html)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document: sections rendered and missing."),
) -> None:
    """Write DIR/report.html: accuracy, latency and trade-off plots, tables, environment and artifacts."""
    from us3l.report import render_report, save_report

    report = render_report(directory)
    path = save_report(report, out)
    if json_out:
        emit_json(report.to_dict(path))
        return
    for key in report.missing():
        console.print(f"note: section '{key}' is missing its input", highlight=False)
    for line in report.errors():
        console.print(f"warning: {line}", highlight=False, markup=False)
    typer.echo(str(path))
