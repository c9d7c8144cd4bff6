"""Where the CLI's output goes, and how it looks.

* Results (tables, JSON, versions, lists, the path of a written report) go to **stdout**; progress, notes,
  warnings and errors go to **stderr**, so ``us3l select ... > choice.txt`` or ``| grep`` see only the answer.
* Tables never truncate their key columns: at the terminal's width secondary columns are dropped (a note on
  stderr names them; ``--wide`` shows every column); off a terminal the table gets its natural width.
* Long steps show a rich progress display (count, elapsed, ETA) on a terminal and plain lines off one.
* ``--quiet`` silences progress and notes (warnings and errors still print).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from us3l.errors import EXIT_INFEASIBLE as _EXIT_INFEASIBLE
from us3l.errors import EXIT_INTERRUPTED as _EXIT_INTERRUPTED
from us3l.errors import EXIT_TERMINATED as _EXIT_TERMINATED
from us3l.errors import US3LError, shown_on_one_line

T = TypeVar("T")

#: Exit codes (documented in docs/cli.md).
EXIT_OK = 0
EXIT_ERROR = 1  # bad input, missing file, failed verification, unreachable device, ...
EXIT_USAGE = 2  # Click/typer: unknown or mistyped option, missing required option
EXIT_INFEASIBLE = _EXIT_INFEASIBLE  # `select`, `quickstart`, `export --selection`: no width fits the budget
EXIT_INTERRUPTED = _EXIT_INTERRUPTED  # Ctrl-C
EXIT_TERMINATED = _EXIT_TERMINATED  # SIGTERM (128 + 15), after the same clean-up as Ctrl-C

_quiet = False


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress display and no notes for the rest of this command."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    return _quiet


def err_console() -> Console:
    """The stderr console (progress, notes, warnings)."""
    from us3l.cli_app import console

    return console


def set_threads(threads: int | None) -> None:
    """``--threads N``: PyTorch's intra-op CPU threads for this command (None: leave PyTorch's default)."""
    if threads is not None:
        import torch

        from us3l.train.threads import local_threads

        torch.set_num_threads(local_threads(threads))


def note(message: str, markup: bool = True) -> None:
    """A note on stderr (suppressed by ``--quiet``); ``markup=False``: ``message`` is plain text (it names a path
    or a device), shown on one line (``us3l.errors.shown_on_one_line``: a newline in ``--out`` is ``\\n``)."""
    if not _quiet:
        if not markup:
            message = shown_on_one_line(message)
        err_console().print(message, markup=markup, highlight=False, soft_wrap=True)


def note_switches(model: Any, what: str) -> None:
    """For an S-Nets model (switchable BN): say on stderr that ``what`` (a grid sweep) is restricted to its
    switches, the only widths it runs at (``us3l.slim.width_grid`` returns them)."""
    from us3l.slim import bn_switches

    switches = bn_switches(model)
    if switches is not None:
        note(f"S-Nets checkpoint (switchable BN): {what} restricted to its switches "
             f"{', '.join(f'{s:g}' for s in switches)}", markup=False)


def warn(message: str, markup: bool = True) -> None:
    """A warning on stderr (always printed); ``markup=False``: ``message`` is plain text (a path or a device name
    with ``[`` is not read as rich markup), as ``note`` takes it."""
    if not markup:
        message = escape(shown_on_one_line(message))
    err_console().print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


def deprecated(old: str, new: str, command: str) -> None:
    """One stderr line for an old option spelling that still works."""
    err_console().print(f"note: `us3l {command} {old}` is deprecated; use {new}", markup=False, highlight=False,
                        soft_wrap=True)


def renamed_option(value: T, old_value: T | None, old: str, new: str, command: str) -> T | None:
    """An option's value given by its current name ``new``, else by its deprecated name ``old`` (one note)."""
    if old_value is None:
        return value
    if value is not None and value != old_value:  # both spellings, two values: neither is silently dropped
        raise US3LError(f"{old} {old_value} and {new} {value} disagree: give {new} only ({old} is its old name)")
    deprecated(f"{old} {old_value}", f"{new} {old_value}", command)
    return value if value is not None else old_value


def result(text: str) -> None:
    """One plain result line on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def stdout_width() -> int | None:
    """The width tables must fit on stdout: ``$COLUMNS``, else the terminal's; ``None`` off a terminal."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def stdout_console(width: int | None = None) -> Console:
    return Console(file=sys.stdout, width=width or stdout_width() or 160, highlight=False, soft_wrap=False)


#: The narrowest a wrapping (``fold``) column is squeezed to before secondary columns are dropped instead.
FOLD_MIN = 24


@dataclass(frozen=True)
class Col:
    """A table column. ``key`` columns are never dropped; no column is ever truncated with "…". Columns that do
    not fit the terminal are dropped (secondary ones only: highest ``rank`` first, then right to left); a
    ``fold`` column (free text, paths) wraps instead, down to ``FOLD_MIN`` characters."""

    header: str
    key: bool = False
    justify: str = "left"
    rank: int = 0
    fold: bool = False


def _build(title: str | None, cols: Sequence[Col], rows: Sequence[Sequence[str]], keep: list[int],
           caption: str | None, cap_fold: bool = False) -> Table:
    t = Table(title=title, caption=caption)
    for i in keep:
        c = cols[i]
        if c.fold:
            t.add_column(c.header, justify=c.justify, overflow="fold",  # type: ignore[arg-type]
                         max_width=FOLD_MIN if cap_fold else None)
        else:
            t.add_column(c.header, justify=c.justify, no_wrap=True)  # type: ignore[arg-type]
    for r in rows:
        t.add_row(*[r[i] for i in keep])
    return t


def natural_width(renderable: Any) -> int:
    """Columns a renderable takes when nothing is wrapped."""
    con = Console(file=io.StringIO(), width=100_000)
    return Measurement.get(con, con.options, renderable).maximum


def fit_table(
    title: str | None,
    cols: Sequence[Col],
    rows: Sequence[Sequence[str]],
    *,
    wide: bool = False,
    width: int | None = None,
    caption: str | None = None,
) -> tuple[Table, int, list[str]]:
    """(table, width to render it at, headers of the columns dropped to fit ``width``).

    ``wide`` or no ``width``: every column at its natural width. Otherwise secondary columns are dropped until
    the table fits with its fold columns squeezed to ``FOLD_MIN``; if the key columns alone are wider than
    ``width``, the table is rendered wider than the terminal (the terminal wraps lines) rather than truncated.
    """
    keep = list(range(len(cols)))
    hidden: list[str] = []
    if wide or width is None:
        table = _build(title, cols, rows, keep, caption)
        return table, natural_width(table), hidden
    order = sorted((i for i, c in enumerate(cols) if not c.key), key=lambda i: (-cols[i].rank, -i))
    for i in order:
        if natural_width(_build(title, cols, rows, keep, caption, cap_fold=True)) <= width:
            break
        keep.remove(i)
        hidden.append(cols[i].header)
    squeezed = natural_width(_build(title, cols, rows, keep, caption, cap_fold=True))
    table = _build(title, cols, rows, keep, caption)
    return table, min(natural_width(table), max(width, squeezed)), hidden


def print_table(
    title: str | None,
    cols: Sequence[Col],
    rows: Sequence[Sequence[str]],
    *,
    wide: bool = False,
    caption: str | None = None,
) -> list[str]:
    """Print a result table on stdout without truncating a key column; returns the dropped headers."""
    limit = stdout_width()
    table, width, hidden = fit_table(title, cols, rows, wide=wide, width=limit, caption=caption)
    stdout_console(width).print(table)
    if hidden:
        note(f"[dim]({limit} columns: hid {', '.join(hidden)}; --wide shows every column)[/dim]")
    return hidden


def _fmt_s(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds:.0f}s" if seconds < 90 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class Progress:
    """Progress of ``total`` items: a rich bar with count, elapsed time and ETA on a terminal, plain stderr lines
    off one (at each finished item, and at most every 10 s otherwise), nothing when disabled or ``--quiet``."""

    def __init__(self, label: str, total: int, unit: str = "", enabled: bool = True) -> None:
        self.label, self.total, self.unit = label, max(0, int(total)), unit
        self.enabled = enabled and not _quiet
        self.done = 0
        self._t0 = time.perf_counter()
        self._last_line = 0.0
        self._rich: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        con = err_console()
        if con.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn(self.unit), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                TextColumn("[dim]{task.fields[detail]}"), console=con, transient=False,
            )
            self._rich.start()
            # label and details are text (a folder name such as "exports[/x]" would be a markup error): escaped
            self._task = self._rich.add_task(escape(self.label), total=self.total, detail="")
        else:
            self._last_line = time.perf_counter()  # off a terminal: a line per finished item, or every 10 s
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def _line(self, detail: str = "") -> None:
        elapsed = time.perf_counter() - self._t0
        text = f"{self.label}: {self.done}/{self.total}" + (f" {self.unit}" if self.unit else "")
        text += f" · {_fmt_s(elapsed)} elapsed"
        if 0 < self.done < self.total:
            text += f" · eta {_fmt_s(elapsed / self.done * (self.total - self.done))}"
        if detail:
            text += f" · {detail}"
        err_console().print(text, markup=False, highlight=False, soft_wrap=True)
        self._last_line = time.perf_counter()

    def update(self, completed: int | None = None, detail: str = "") -> None:
        """Set the count of finished items (and a short detail text)."""
        if not self.enabled:
            return
        changed = completed is not None and completed != self.done
        if completed is not None:
            self.done = min(max(0, completed), self.total)
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done, detail=escape(detail))
        elif changed or time.perf_counter() - self._last_line >= 10.0:
            self._line(detail)

    def advance(self, n: int = 1, detail: str = "") -> None:
        self.update(self.done + n, detail)
