"""The typer application object shared by every command module in ``us3l/commands``."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

try:  # Click's exceptions: typer >= 0.26 vendors Click as typer._click, earlier releases use Click itself
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_exceptions  # type: ignore[no-redef]  # noqa: F401

#: ``us3l --help`` lists the commands in pipeline order, then the utilities.
COMMAND_ORDER = (
    "train", "calibrate", "eval", "profile", "select", "export", "report", "quickstart",
    "models", "info", "devices", "version",
)


class PipelineOrderGroup(TyperGroup):
    """The root command group: subcommands listed in ``COMMAND_ORDER`` (unknown ones last, as registered)."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {n: i for i, n in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))


app = typer.Typer(
    name="us3l",
    cls=PipelineOrderGroup,
    help="Train a universally slimmable network once (US3L), then profile, select and deploy any width.",
    epilog="Results go to stdout; progress, notes and errors to stderr. Exit codes: 0 ok, 1 error, 2 usage error, "
    "3 no width fits the budget, 130 interrupted, 143 terminated (docs/cli.md).",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
)


#: Progress, notes, warnings and errors go to stderr; results (tables, JSON) go to stdout (us3l.cli_output).
def make_console() -> Console:
    """A stderr console; when stderr is not a terminal (logs, CI, pipes) tables get 160 columns, not 80."""
    con = Console(stderr=True)
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con = Console(stderr=True, width=160)
    return con


console = make_console()


def emit_json(doc: Any) -> None:
    """Print exactly one JSON document to stdout (the ``--json`` contract)."""
    from us3l.io import json_text

    sys.stdout.write(json_text(doc, "the --json document", default=str))
    sys.stdout.flush()


def _print_version(value: bool) -> None:
    if value:
        from us3l.version import __version__

        sys.stdout.write(f"us3l {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """us3l: universally slimmable self-supervised learning, from training to deployment."""
