"""``us3l report``: one self-contained HTML page (plots, tables, fingerprints, manifests) for a pipeline folder."""

from __future__ import annotations

from pathlib import Path

import typer

from us3l.cli_app import app, emit_json
from us3l.cli_output import deprecated, note, result, set_quiet, warn


@app.command("report")
def report_cmd(
    directory: Path = typer.Argument(..., metavar="DIR", help="Pipeline folder (as written by us3l quickstart)."),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder: writes OUT/report.html (default: DIR; a path ending in .html: that file)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No notes about missing sections."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document: sections rendered and missing."),
) -> None:
    """Write DIR/report.html: accuracy, latency and trade-off plots, tables, environment and artifacts.

    Prints the page's path on stdout. DIR is the folder of `us3l quickstart --out`, or the folder the step-by-step
    commands ran in (run/, run/accuracy.json or accuracy.json, profiles/, selection.json, artifacts/)."""

    from us3l.io import output_folder
    from us3l.report import REPORT_FILE, check_report_replaceable, render_report, save_report

    set_quiet(quiet)
    target = directory / REPORT_FILE  # the default DIR/report.html is checked like an --out target
    if out is not None:
        if out.suffix.lower() in (".html", ".htm") and not out.is_dir():
            deprecated(f"--out {out}", f"--out {out.parent} (the folder; the file is always {REPORT_FILE})",
                       "report")
            target = out
        else:
            target = output_folder(out) / REPORT_FILE
    check_report_replaceable(target)
    report = render_report(directory)
    path = save_report(report, target)
    # on stderr with --json too (the document carries them as well): --json turns progress off, not notes and warnings
    for key in report.missing():
        note(f"note: section '{key}' is missing its input", markup=False)
    for line in report.warnings():
        warn(line, markup=False)
    if json_out:
        emit_json(report.to_dict(path))
    else:
        result(str(path))
