"""User-facing errors: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations

import os
import re


class US3LError(Exception):
    """An error caused by user input or environment, reported without a traceback.

    ``exit_code`` is the process exit status the CLI uses: 1, or ``InfeasibleError``'s 3 (2 is Click's usage
    error; see docs/cli.md).
    """

    exit_code: int = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


#: Exit status of "no width fits the budget" (select, quickstart, export --selection); 2 stays Click's usage error.
EXIT_INFEASIBLE = 3
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_TERMINATED = 143  # SIGTERM (128 + 15), after the same clean-up as Ctrl-C
#: Set by ``us3l train --nproc`` in the processes it launches: they leave reporting an interrupt to it.
LAUNCHED_BY_ENV = "US3L_LAUNCHED_BY"


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # control characters but the tab
_ESCAPES = {"\r": "\\r", "\n": "\\n"}


def shown_on_one_line(text: str) -> str:
    """``text`` for one line of a terminal: a newline (e.g. in a file name) shown as ``\\n``, ESC (whose escape
    sequences could erase the line or move the cursor over the lines before it) and every other control character
    but the tab shown as ``\\xNN``, not obeyed. Error lines and the CLI's plain-text notes and warnings go
    through it."""
    return _CONTROL.sub(lambda m: _ESCAPES.get(m[0], f"\\x{ord(m[0]):02x}"), text)


def debug_enabled() -> bool:
    """Whether ``US3L_DEBUG`` asks for tracebacks instead of one-line errors (set, and neither empty nor ``0``)."""
    return os.environ.get("US3L_DEBUG") not in (None, "", "0")


class InfeasibleError(US3LError):
    """No width fits the budget (exit status ``EXIT_INFEASIBLE``)."""

    exit_code = EXIT_INFEASIBLE


class MissingDependencyError(US3LError):
    """A backend or feature needs an optional package that is not installed."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed: "
            f"pip install 'us3l[{extra}]'"
        )


def require_package(package: str, extra: str, feature: str) -> None:
    """Raise ``MissingDependencyError`` now, before any work, when ``package`` cannot be imported (``--plot``
    without matplotlib used to fail after the whole evaluation or sweep)."""
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise MissingDependencyError(package, extra, feature)
