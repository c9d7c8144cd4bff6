"""Console entry point: ``us3l``. Command modules in ``us3l/commands`` register themselves on ``app``.

Errors derived from ``US3LError`` (and ``ValueError`` from the library's argument checks) are printed as one
line on stderr with a non-zero exit; set ``US3L_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

from us3l.cli_app import app
from us3l.errors import US3LError

_loaded = False


def load_commands() -> None:
    global _loaded
    if _loaded:
        return
    import us3l.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"us3l.commands.{info.name}")
    _loaded = True


def main(argv: list[str] | None = None) -> int:
    load_commands()
    debug = os.environ.get("US3L_DEBUG") not in (None, "", "0")
    try:
        app(args=argv, prog_name="us3l")  # standalone: typer reports usage errors itself (exit 2)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        print("us3l: interrupted", file=sys.stderr)
        return 130
    except US3LError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (set US3L_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
