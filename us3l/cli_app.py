"""The typer application object shared by every command module in ``us3l/commands``."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from us3l.validate import given_twice, plain_number_text

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

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            ascii_numbers(cmd)
            options_once(cmd)
        return cmd

    def make_parser(self, ctx: Any) -> Any:
        return refuse_repeats(super().make_parser(ctx), ctx)


def _is_number(param: Any) -> bool:
    """Whether ``param`` takes an int or a float: typer >= 0.26 coerces by the annotation (``int | None`` is
    ``int`` there), earlier releases by Click's INT / FLOAT types (and their ranges)."""
    desc = getattr(param, "type_descriptor", None)
    if desc is not None:
        return desc.annotation in (int, float)
    return getattr(getattr(param, "type", None), "name", None) in ("integer", "float", "integer range", "float range")


def ascii_numbers(cmd: Any) -> None:
    """Make every int and float option of ``cmd`` (and of its subcommands) refuse a number that is not written in
    ASCII: Click's and pydantic's parsing read ``1_0`` as 10, and Click's int() other scripts' digits (``٣`` as 3),
    where ``--widths`` and the config file (YAML 1.2) refuse both. A usage error, exit 2, as for ``abc``."""
    if getattr(cmd, "_us3l_ascii_numbers", False):
        return
    cmd._us3l_ascii_numbers = True
    for param in getattr(cmd, "params", ()):
        if _is_number(param):
            param.process_value = _ascii_checked(param, param.process_value)
    for sub in getattr(cmd, "commands", {}).values():
        ascii_numbers(sub)


def _ascii_checked(param: Any, process_value: Any) -> Any:
    def checked(ctx: Any, value: Any) -> Any:
        for text in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(text, str) and not plain_number_text(text):
                raise click_exceptions.BadParameter(
                    f"{text!r:.40} is not a number in ASCII digits (no '_' separators, no other scripts' digits)",
                    ctx=ctx, param=param)
        return process_value(ctx, value)

    return checked


def options_once(cmd: Any) -> None:
    """Make every single-valued option of ``cmd`` (and of its subcommands) a usage error when given twice
    (``refuse_repeats``)."""
    if getattr(cmd, "_us3l_options_once", False):
        return
    cmd._us3l_options_once = True
    make_parser = cmd.make_parser
    cmd.make_parser = lambda ctx: refuse_repeats(make_parser(ctx), ctx)
    for sub in getattr(cmd, "commands", {}).values():
        options_once(sub)


def refuse_repeats(parser: Any, ctx: Any) -> Any:
    """``parser`` (Click's option parser for ``ctx``), made to refuse an option that is not list-valued given a second
    time, in any spelling (``--ckpt a --ckpt=b``, ``-c a --config b``, ``--plot --no-plot``): Click keeps the last
    one silently, where a user who gives an option twice almost surely made a mistake (a pasted command line, an
    edited script). A usage error, exit 2, before any work: ``--ckpt given twice (a, b): give it once``. Switches
    too (``--quiet --quiet``: harmless, but one rule for every option is simpler to state and to trust), but not
    ``--help``, which asks for nothing to be done. List-valued options (``multiple``: ``--set``, ``--device`` of
    select, ``--backend``) and counters stay repeatable. Nothing is refused while Click only completes a command
    line (``resilient_parsing``)."""
    if ctx is None or ctx.resilient_parsing or not hasattr(parser, "_long_opt"):
        return parser  # (a Click whose parser keeps its options elsewhere: its own last-wins rule, not a crash)
    given: dict[int, list[str]] = {}
    helps = set(ctx.help_option_names)
    options = {id(o): o for o in (*parser._long_opt.values(), *parser._short_opt.values())}.values()
    for option in options:
        if option.action in ("store", "store_const") and not helps & set(option.obj.opts):
            option.process = _once(option, given, ctx)
    return parser


def _once(option: Any, given: dict[int, list[str]], ctx: Any) -> Any:
    process = option.process
    param = option.obj
    spelling = (option._long_opts or option._short_opts)[0]

    def once(value: Any, state: Any) -> None:
        # a switch's values are its spellings (--plot, --no-plot); an option's, what it was given
        said = spelling if option.action == "store_const" else " ".join(value) if isinstance(value, tuple) else value
        seen = given.setdefault(id(param), [])
        seen.append(str(said))
        if len(seen) > 1:
            name = next((o for o in param.opts if o.startswith("--")), param.opts[0])
            raise click_exceptions.BadOptionUsage(name, given_twice(name, seen, option.action == "store_const"),
                                                  ctx=ctx)
        process(value, state)

    return once


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
