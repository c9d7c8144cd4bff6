"""The typer application object shared by every command module in ``us3l/commands``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(
    name="us3l",
    help="Train a universally slimmable network once (US3L), then profile, select and deploy any width.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Human-facing output (tables, progress) goes to stderr so that ``--json`` keeps stdout one JSON document.
def make_console() -> Console:
    """A stderr console; when stderr is not a terminal (logs, CI, pipes) tables get 160 columns, not 80."""
    con = Console(stderr=True)
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con = Console(stderr=True, width=160)
    return con


console = make_console()


def emit_json(doc: Any) -> None:
    """Print exactly one JSON document to stdout (the ``--json`` contract)."""
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    sys.stdout.flush()


@app.callback()
def _root() -> None:
    """us3l: universally slimmable self-supervised learning, from training to deployment."""
