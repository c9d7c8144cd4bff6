"""The command line of the repository's scripts (``benchmarks/``, ``scripts/``), which use argparse:
:class:`ArgumentParser`, whose usage error is one line like the ``us3l`` CLI's; argument types that refuse
nonsense with that usage error (exit 2) before anything runs, lists included (:func:`comma_list`: ``--widths``,
``--seeds``, names); and :func:`run`, the ``us3l`` CLI's error policy around a script's ``main`` (an error is one
``error:`` line and exit 1, ``US3L_DEBUG=1`` shows the traceback; Ctrl-C exits 130, SIGTERM 143).

A benchmark given ``--iters 0`` used to fail deep inside with a ``statistics`` traceback; one given
``--eval-widths abc`` only after its 30 minutes of training."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with the ``us3l`` CLI's usage error: one line on stderr naming the script's help, exit 2
    (``error: argument --threads: must be >= 1, got '-1' (see: python benchmarks/roofline.py --help)``), not
    argparse's usage block. ``prog`` defaults to the script's path as typed (relative to the current folder when
    inside it), so that the hint can be pasted; ``--help`` prints the full help as usual."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not args and "prog" not in kwargs:
            kwargs["prog"] = _script_prog()
        super().__init__(*args, **kwargs)
        for name, action in _SINGLE_ACTIONS.items():
            self.register("action", name, _given_once(action))
        self._given: dict[str, tuple[str, list[str]]] = {}  # per dest: its option's name, what each occurrence said
        self._text = ""  # the command-line text of the option being read

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        self._given = {}  # per parse: a parser may read several command lines
        return super().parse_known_args(*args, **kwargs)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        self._text = " ".join(arg_strings)  # as typed, for the message of an option given twice
        return super()._get_values(action, arg_strings)

    def given(self, action: argparse.Action, option_string: str) -> None:
        """An occurrence of the single-valued option ``action`` (spelled ``option_string``) on the command line: a
        second one is a usage error, as in the ``us3l`` commands (``us3l.cli_app.refuse_repeats``): argparse keeps the
        last one silently. Options of one ``dest`` are one option (``--quiet`` and ``--no-quiet``); a switch's values
        are its spellings, named when they differ."""
        switch = action.nargs == 0
        name = next((o for o in action.option_strings if o.startswith("--")), option_string)
        name, seen = self._given.setdefault(action.dest, (name, []))
        seen.append(option_string if switch else self._text)
        if len(seen) > 1:
            from us3l.validate import given_twice

            self.error(given_twice(name, seen, switch))

    def error(self, message: str) -> NoReturn:
        from us3l.cli import _one_line

        command = f"python {self.prog}" if self.prog.endswith(".py") else self.prog
        print(f"error: {_one_line(message)} (see: {command} --help)", file=sys.stderr)
        self.exit(2)


#: argparse's actions that keep one value (the last one given); list-valued ones (append, extend) and counters stay
#: repeatable.
_SINGLE_ACTIONS: dict[str | None, type[argparse.Action]] = {
    None: argparse._StoreAction, "store": argparse._StoreAction, "store_const": argparse._StoreConstAction,
    "store_true": argparse._StoreTrueAction, "store_false": argparse._StoreFalseAction,
}


def _given_once(action: type[argparse.Action]) -> type[argparse.Action]:
    """``action``, telling the parser of each occurrence of its option (``ArgumentParser.given``)."""
    class GivenOnce(action):  # type: ignore[valid-type,misc]
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: str | None = None) -> None:
            if option_string is not None and isinstance(parser, ArgumentParser):
                parser.given(self, option_string)
            super().__call__(parser, namespace, values, option_string)

    return GivenOnce


def _script_prog() -> str:
    path = sys.argv[0] if sys.argv and sys.argv[0] else "script"
    if not path.endswith(".py"):
        return os.path.basename(path)
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    from us3l.validate import plain_number_text

    try:
        if not plain_number_text(text):  # ASCII decimals, as the us3l flags take them
            raise ValueError(text)
        value = kind(text)
    except ValueError:
        kind_name = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expects {kind_name}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expects a finite number, got {text!r}")
    return value


def _bounded(kind: type[int] | type[float], ok: Callable[[float], bool], need: str, doc: str) -> Callable[[str], Any]:
    """An argparse type: ``text`` as ``kind``, refused with ``must be <need>`` unless ``ok(value)``."""
    def parse(text: str) -> Any:
        value = kind(_number(text, kind))
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {need}, got {text!r}")
        return value

    parse.__doc__ = doc
    return parse


positive_int = _bounded(int, lambda v: v >= 1, ">= 1", "A count: 1 or more.")
nonnegative_int = _bounded(int, lambda v: v >= 0, ">= 0", "A seed, or a count where 0 means none.")
positive_float = _bounded(float, lambda v: v > 0, "> 0", "A duration, size or budget: above 0.")
nonnegative_float = _bounded(float, lambda v: v >= 0, ">= 0", "A margin: 0 or more.")
width = _bounded(float, lambda v: 0 < v <= 1, "in (0, 1]", "A width multiplier in (0, 1].")


def comma_list(item: Callable[[str], T], what: str, *, empty_ok: bool = False) -> Callable[[str], list[T]]:
    """An argparse type: comma-separated values, each read by the argparse type ``item`` and given once, in the
    order given; at least one unless ``empty_ok`` (then ``''`` is none). ``what`` says what the list holds."""
    def parse(text: str) -> list[T]:
        parts = [part.strip() for part in text.split(",")]
        if parts == [""]:
            if empty_ok:
                return []
            raise argparse.ArgumentTypeError(f"expects {what}, comma-separated, got {text!r}")
        if "" in parts:  # "1,,0.5" or "1,": a typo
            raise argparse.ArgumentTypeError(f"has an empty entry, got {text!r} (expects {what}, comma-separated)")
        values: list[T] = []
        for part in parts:
            try:
                value = item(part)
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentTypeError(exc if len(parts) == 1 else f"{exc} (in {text!r})") from None
            if value in values:
                raise argparse.ArgumentTypeError(f"lists {part} twice, got {text!r}")
            values.append(value)
        return values

    parse.__doc__ = f"Comma-separated {what}, each once."
    return parse


def choice(what: str, choices: Callable[[], Sequence[str]]) -> Callable[[str], str]:
    """An argparse type: one of ``choices()`` (asked when an argument is read: a registry may be slow to import)."""
    def parse(text: str) -> str:
        known = choices()
        if text not in known:
            raise argparse.ArgumentTypeError(f"unknown {what} {text!r}; choose from {', '.join(known)}")
        return text

    parse.__doc__ = f"A {what} name."
    return parse


def _models() -> Sequence[str]:
    from us3l.models import list_models

    return list_models()


def _backends() -> Sequence[str]:
    from us3l.deploy.backends import list_backends

    return list_backends()


widths = comma_list(width, "widths in (0, 1]")
seeds = comma_list(nonnegative_int, "seeds (whole numbers >= 0)")
model = choice("model", _models)
models = comma_list(model, "registered model names")
backends = comma_list(choice("backend", _backends), "backend names")


def check_model_widths(model: Any, widths: Sequence[float], flag: str = "--widths") -> None:
    """Every width of ``flag`` in ``model``'s width range, checked before any work: one ``US3LError`` naming the
    flag (``--widths: width must be in [0.25, 1], got 0.1``), not the bare range error from deep inside an export
    or a timing loop, which did not say which input it was about."""
    from us3l.errors import US3LError

    for w in widths:
        try:
            model.width_range.check(w)
        except ValueError as exc:
            raise US3LError(f"{flag}: {exc}") from None


def last_words(stderr: str, silent: str = "no output on stderr") -> str:
    """What a failed child process said last, for the parent's one-line error: its last non-blank stderr line (the
    ``us3l`` CLI's one error line, or the end of a traceback) without the leading ``error:``; ``silent`` when it
    said nothing."""
    last = next((x for x in reversed(stderr.splitlines()) if x.strip()), None)
    return silent if last is None else last.removeprefix("error:").strip()


def run(main: Callable[[], int | None]) -> NoReturn:
    """Exit with ``main()``'s status under the CLI's error policy (``us3l.cli.run_script``)."""
    from us3l.cli import run_script

    sys.exit(run_script(main))
