"""``us3l version``: print the tool version and its environment (Python, platform, machine, torch), the header every
result file records; ``us3l devices --check`` checks the deployment runtimes."""

from __future__ import annotations

import typer

from us3l.cli_app import app, emit_json
from us3l.cli_output import result
from us3l.io import basic_environment
from us3l.version import __version__


@app.command("version")
def version_cmd(json_out: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """Show the us3l version and its environment."""
    doc = {"us3l": __version__, **basic_environment()}
    if json_out:
        emit_json(doc)
        return
    for k, v in doc.items():
        result(f"{k}: {v}")
