"""Console entry point: ``us3l``. Command modules in ``us3l/commands`` register themselves on ``app``.

Errors derived from ``US3LError`` (and ``ValueError`` from the library's argument checks) are printed as one
line on stderr with a non-zero exit; set ``US3L_DEBUG=1`` to see the traceback instead. Exit codes: 0 ok,
1 error, 2 usage error (typer/Click), 3 no width fits the budget, 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM) (docs/cli.md).
"""

from __future__ import annotations

import errno
import importlib
import os
import pkgutil
import re
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

from us3l.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    LAUNCHED_BY_ENV,
    US3LError,
    debug_enabled,
    shown_on_one_line,
)

_loaded = False

#: The module of ``us3l/commands`` that registers each command. ``main`` imports only the invoked command's
#: module (typer then builds one command, not twelve: ~0.5-1 s of every invocation went to importing and
#: building the others); ``us3l``, ``us3l --help`` and unknown names load every module.
#: tests/test_cli_conventions.py checks this table against what the modules register.
COMMAND_MODULES = {
    "train": "train", "calibrate": "eval", "eval": "eval", "profile": "profile", "select": "select",
    "export": "export", "report": "report", "quickstart": "quickstart", "models": "models", "info": "models",
    "devices": "devices", "version": "version",
}


def load_commands(argv: list[str] | None = None) -> None:
    """Register the commands: only the invoked one's module when ``argv`` names a known command, else all."""
    global _loaded
    if _loaded:
        return
    command = next((a for a in argv or () if not a.startswith("-")), None)
    if command in COMMAND_MODULES:
        importlib.import_module(f"us3l.commands.{COMMAND_MODULES[command]}")
        return  # a later call without argv still loads the rest
    import us3l.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"us3l.commands.{info.name}")
    _loaded = True


def legacy_argv(argv: list[str]) -> list[str]:
    """Old spellings that an option declaration cannot keep: ``us3l select --plot FILE`` (``--plot`` is now a
    switch, as in eval and profile) becomes the hidden ``--plot-file FILE`` (the command prints a deprecation
    note)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command != "select":
        return argv
    out = list(argv)
    for i, a in enumerate(out[:-1]):
        if a == "--plot" and not out[i + 1].startswith("-"):
            out[i] = "--plot-file"
    return [("--plot-file=" + a.split("=", 1)[1]) if a.startswith("--plot=") else a for a in out]


class _SigintWatch:
    """Remembers a Ctrl-C. Python raises KeyboardInterrupt where the signal lands, but an extension module
    whose initialisation it interrupts (onnxruntime's, OpenVINO's) turns it into ``ImportError: initialization
    failed``; with the flag, ``main`` still reports that run as interrupted (exit 130), not as an error."""

    received = False
    terminated = False  # the signal was SIGTERM (kill, timeout, a scheduler): exit 143 instead of 130
    redelivering = False  # a signal that arrived inside an import is to be delivered again (``_redeliver``)
    reported = False  # how the run ends is decided (an interrupt or an error said, or done): no signal raised now
    timer: Any = None  # the pending delivery again (``threading.Timer``), if any
    unraisable_hook: Any = None  # ``sys.unraisablehook`` before ``install``

    @classmethod
    def install(cls) -> Callable[[], None]:
        """Install the handlers; returns what restores the previous SIGTERM handler and unraisable hook
        (``main``'s finally)."""
        # per call of main: not an earlier call's signal
        cls.received = cls.terminated = cls.redelivering = cls.reported = False
        # only over Python's own handler: a process started with SIGINT ignored (a background job) keeps that
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, cls._handler)
        hook = sys.unraisablehook  # what ``restore`` puts back
        if hook != cls._unraisable:  # a run inside a run (a script's run_script under another) keeps the outer's
            cls.unraisable_hook = hook  # what ``_unraisable`` passes other exceptions to
        sys.unraisablehook = cls._unraisable
        # SIGTERM's default kills at once, skipping every cleanup (remote work folders, staged exports, temp
        # files): turn it into the same unwinding as Ctrl-C
        previous = signal.getsignal(signal.SIGTERM)
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, cls._handler)

        def restore() -> None:
            sys.unraisablehook = hook
            if previous == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, previous)

        return restore

    @classmethod
    def _handler(cls, signum: int, frame: FrameType | None) -> None:
        cls.received = True
        cls.terminated = cls.terminated or signum == signal.SIGTERM
        if cls.reported:
            # the run already ends (interrupted -- a delivery again after an import while it ended on another
            # path, or a second signal --, with its error, or done): raised in run_script's clean-up or while
            # the error's frames are freed, it was a traceback
            return
        if _importing(frame):
            # not inside an import: a KeyboardInterrupt raised in Python code that an extension module's
            # initialisation calls (torch's) can end in C++'s terminate() and SIGABRT with a stack dump; the
            # signal is delivered again, here, every 50 ms until the import is done (one chain however many
            # signals arrive meanwhile: a second one raised during the first's clean-up would be a traceback)
            cls._deliver_again(signum)
            return
        raise KeyboardInterrupt

    @classmethod
    def _deliver_again(cls, signum: int) -> None:
        """Deliver the signal again in 50 ms (``_redeliver``): one chain however many signals arrive meanwhile."""
        if not cls.redelivering:
            import threading

            cls.redelivering = True
            timer = threading.Timer(0.05, cls._redeliver, args=(signum,))
            timer.daemon = True  # never keeps the process alive at exit
            cls.timer = timer
            timer.start()

    @classmethod
    def _unraisable(cls, unraisable: Any) -> None:
        """``sys.unraisablehook`` during a run: the KeyboardInterrupt of ``_handler`` raised inside a finaliser (a
        ``__del__``, a weakref callback, run by the garbage collector wherever it ran), which Python prints as
        "Exception ignored in ..." and drops -- the command then ran to its end and exited 0 after a Ctrl-C
        (seen under load, in a fast-suite run) -- is delivered again outside it; anything else goes to the hook
        that was there before."""
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and cls.received and not cls.reported:
            cls._deliver_again(signal.SIGTERM if cls.terminated else signal.SIGINT)
            return
        (cls.unraisable_hook or sys.__unraisablehook__)(unraisable)

    @classmethod
    def _redeliver(cls, signum: int) -> None:
        import threading

        cls.redelivering = False
        if not cls.reported:
            # a real signal to the main thread: it also ends a blocking call there (a sleep, a wait), which
            # _thread.interrupt_main, a flag checked between bytecodes, left to run to its end first
            main = threading.main_thread().ident
            if main is not None:
                signal.pthread_kill(main, signum)

    @classmethod
    def settle(cls, restore: Callable[[], None]) -> None:
        """The end of ``run_script``, whose outcome is known: ``restore`` the SIGTERM handler, cancel a delivery
        again still to come (one under way is waited for), run the handlers of the signals already here (not
        raised), then raise the next one as usual again: a caller that goes on in this process keeps Ctrl-C."""
        cls.reported = True
        try:
            timer, cls.timer = cls.timer, None
            if timer is not None:
                timer.cancel()
                timer.join()
            restore()
            signal.pthread_sigmask(signal.SIG_BLOCK, ())  # a no-op that runs the pending Python handlers
        finally:
            cls.reported = False


def _importing(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside an import (a frame of importlib's bootstrap is on the stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib."):
            return True
        frame = frame.f_back
    return False


def _one_line(message: str) -> str:
    """An error re-raised by a DataLoader worker carries the worker's traceback ("Caught US3LError in DataLoader
    worker process 0. Original Traceback ..."): keep its own message, the text after the traceback's last frame
    without the exception's name (all of it: a file name with a newline split it over two lines, of which the last
    alone named no file)."""
    if "\nOriginal Traceback" in message:
        lines = message.rsplit("Traceback (most recent call last):\n", 1)[-1].split("\n")
        while lines and (lines[0].startswith(" ") or not lines[0].strip()):  # the frames, indented
            lines.pop(0)
        message = re.sub(r"^[A-Za-z_][\w.]*: ", "", "\n".join(lines).strip("\n"), count=1)
    # e.g. a file name with a newline: still one line; ESC or another control character: shown, not obeyed
    return shown_on_one_line(message)


def _interrupted() -> int:
    # CPython flags a KeyboardInterrupt that left code run by exec(<string>) (dataclasses and namedtuples build
    # their methods that way, e.g. during a lazy import) as unhandled even after it was caught; under
    # `python -m us3l` the process then kills itself with SIGINT at exit (-2) instead of exiting 130 / 143.
    # Every exec of a string clears that flag first, so an empty one does.
    exec("")  # noqa: S102 - a constant empty string
    _SigintWatch.reported = True
    # a training process says nothing: `us3l train --nproc` (its launcher) reports the interrupt once, and under
    # a plain torchrun only rank 0 prints (the other ranks would repeat it)
    silent = bool(os.environ.get(LAUNCHED_BY_ENV)) or os.environ.get("RANK", "0") != "0"
    if _SigintWatch.terminated:
        if not silent:
            print("us3l: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    if not silent:
        print("us3l: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    args = legacy_argv(list(sys.argv[1:] if argv is None else argv))
    problem = _check_streams()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") != "0":
        # only rank 0 prints (docs/training.md): PyTorch's C++ warnings too, e.g. DDP's note that it found no unused
        # parameters in the first step, once per rank; read when torch loads, which `import us3l.cli` does not do
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    # run_script installs the Ctrl-C handler before the command's module loads torch (1-2 s): Ctrl-C there exits 130
    code = run_script(lambda: _run_command(args))
    if os.environ.get("WORLD_SIZE", "1") != "1" and "torch.distributed" in sys.modules:
        exit_training_process(code)
    return code


def exit_training_process(code: int) -> NoReturn:
    """End a process of a distributed job (torchrun) with ``code`` now, without the interpreter's finalisation.

    gloo's worker threads free the tensors of the last collectives after the collective has returned; one that
    does so once the interpreter is finalising needs the GIL, cannot have it, and takes the process down with
    ``terminate called without an active exception`` (SIGABRT) after the run's work is done: 3 runs in 350 of
    the 2-process test on a loaded machine, and once in CI. Every file is written and closed by now; the
    streams are flushed here."""
    _flush_streams()
    os._exit(code)


def console_main() -> NoReturn:
    """The ``us3l`` command (pyproject's console script, ``python -m us3l``): :func:`main`, then
    :func:`end_process`. ``main`` itself returns (the tests call it in-process)."""
    end_process(main())


def end_process(code: int) -> NoReturn:
    """End this process with ``code`` once a command is done, skipping the interpreter's finalisation.

    With torch, OpenVINO and onnxruntime loaded, finalisation (freeing every module, the libraries' static
    destructors) takes 0.7-0.9 s on the 2-core EPYC (about 0.3 s of it torch's): a sixth to a seventh of a whole
    ``us3l export`` (docs/deploy.md, "Export time"), for nothing the command still needs. What the interpreter would
    do that matters still happens: the ``atexit`` functions run (the data loader's worker reaper, logging's flush, the
    removal of temporary folders left to ``weakref.finalize``) and every stream is flushed, Python's and C's (a
    library's message on stdout). A thread the interpreter would wait for (not a daemon) is waited for: then the
    exit is the ordinary one. Every result file is written and closed before a command returns (atomic writes).
    Ctrl-C from here on is ignored: the command's outcome is decided and printed."""
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    atexit._run_exitfuncs()  # what finalisation would call first (CPython's own hook for it)
    _flush_streams()
    os._exit(code)


def _flush_streams() -> None:
    """Flush stdout and stderr, Python's and the C library's (``os._exit`` flushes neither)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said there
            pass
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to ask (not a POSIX process): nothing buffered there
        pass


def _check_streams() -> str | None:
    """What stops results from being printed, before any work: a closed stdout (`us3l models >&-`). In a locale
    whose encoding lacks a character of a table (`LC_ALL=C.ISO-8859-1`: ±, →, ≤), the character is replaced,
    not an error raised after the work is done."""
    if sys.stderr is None:  # nowhere to say anything: errors are lost, like everything else
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the process's stderr from now on
    if sys.stdout is None:
        return "stdout is closed: results are printed there; redirect it (e.g. >/dev/null) instead of closing it"
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "strict") in ("strict", "surrogateescape"):
            reconfigure(errors="replace")
    return None


def _run_command(args: list[str]) -> int:
    """Run one ``us3l`` command line under typer, not standalone: a usage error comes back here and is printed as
    one line, not typer's box; ``SystemExit`` (a command's ``typer.Exit``) becomes the exit status."""
    try:
        from typer import Abort as typer_abort

        from us3l.cli_app import app, click_exceptions  # typer, rich: after the handler, like the command's imports

        load_commands(args)
        if empty_value(args) is not None:
            print(blank_value_error(app, args), file=sys.stderr)
            return 2
        try:
            code = app(args=args, prog_name="us3l", standalone_mode=False)
        except click_exceptions.NoArgsIsHelpError as exc:  # `us3l` alone: typer has printed the help
            return int(exc.exit_code)
        except click_exceptions.UsageError as exc:
            return usage_error(exc)
        except click_exceptions.ClickException as exc:  # e.g. a file argument that cannot be opened
            print(f"error: {_one_line(exc.format_message())}", file=sys.stderr)
            return exc.exit_code
        except typer_abort:  # end of input at a prompt
            print("error: aborted", file=sys.stderr)
            return 1
        code = code if isinstance(code, int) else 0  # a command's return value is not an exit status
        return _interrupted() if code == EXIT_INTERRUPTED and _SigintWatch.received else code
    except SystemExit as exc:
        code = exc.code
        code = code if isinstance(code, int) else (0 if code is None else 1)
        return _interrupted() if code and _SigintWatch.received else code


def empty_value(args: list[str], switches: frozenset[str] = frozenset()) -> str | None:
    """The option (or ``"an argument"``) of the first empty or blank value on the command line, else None. Typer
    reads ``--out ''`` as the current folder and ``--calib-data ''`` or ``--data ''`` as not given, so an unset shell
    variable (``--out "$DIR"``) silently wrote into the current folder or evaluated on the checkpoint's data.
    ``switches``: the command's options that take no value (``--json ''``: the blank is an argument)."""
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if arg.startswith("--") and eq and not value.strip():
            return name
        if not arg.strip():
            before = args[i - 1] if i else ""
            return before if before.startswith("-") and before not in switches else "an argument"
    return None


def blank_value_error(app: Any, args: list[str]) -> str:
    """The one-line usage error for the blank value ``empty_value(args)`` finds: the option given it (a blank after a
    switch, ``--json ''``, is named as an argument) and the help of the (sub)command ``args`` starts with (``us3l
    profile show``; only leading words that name a registered command count). It builds the Click command tree
    once, so it is called only when there is a blank."""
    import typer

    words: list[str] = []
    cmd: Any = typer.main.get_command(app)
    for arg in args:
        sub = getattr(cmd, "commands", {}).get(arg)
        if sub is None:
            break
        words.append(arg)
        cmd = sub
    switches = frozenset(o for p in getattr(cmd, "params", ()) if getattr(p, "is_flag", False)
                         for o in (*p.opts, *p.secondary_opts))
    return f"error: {empty_value(args, switches)} is given an empty value (see: {' '.join(['us3l', *words])} --help)"


def usage_error(exc: Any) -> int:
    """A Click usage error (``click.UsageError``: unknown or mistyped option, missing argument) as one line on
    stderr, naming the command's help; exit 2."""
    where = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
    print(f"error: {_one_line(exc.format_message())}{where}", file=sys.stderr)
    return int(exc.exit_code)


#: What gloo/NCCL raise in a training process whose peer died (killed, or failed with its own error line).
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "remote worker crashing")


#: pathlib's error for a symbolic link loop before Python 3.13 (``Path.resolve``: ``RuntimeError("Symlink loop from
#: '/abs/path'")``); 3.13 raises the system's ``OSError`` (ELOOP) instead.
_PATHLIB_LOOP = re.compile(r"Symlink loop from (?P<path>'.*'|\".*\")\Z", re.DOTALL)


def symlink_loop_error(exc: BaseException) -> OSError | None:
    """``exc`` as the ``OSError`` (ELOOP, naming the path) Python 3.13's pathlib raises where it is pathlib's older
    ``RuntimeError`` for a symbolic link loop; None for any other exception. ``--out LOOP`` or ``--profile LOOP``
    (a link that leads back to itself) said ``error: RuntimeError: Symlink loop from '...'`` with the traceback
    hint, as if us3l had failed."""
    found = _PATHLIB_LOOP.match(str(exc)) if type(exc) is RuntimeError else None
    if found is None:
        return None
    import ast

    return OSError(errno.ELOOP, os.strerror(errno.ELOOP), ast.literal_eval(found["path"]))


def report_error(exc: Exception) -> int:
    """Print ``exc`` as the one ``error:`` line on stderr and return its exit status (1, or a ``US3LError``'s)."""
    exc = symlink_loop_error(exc) or exc
    if os.environ.get("WORLD_SIZE", "1") != "1" and any(s in str(exc) for s in _PEER_GONE):
        # not gloo's multi-line text ("... GLHF!") ahead of the launcher's line about the process that died
        print(f"error: training process rank {os.environ.get('RANK', '?')} stopped: another training process is "
              "gone", file=sys.stderr)
        return 1
    if isinstance(exc, US3LError):
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, OSError) and exc.strerror:
        # the system's words and the path, e.g. --out /dev/null/x: "Not a directory: /dev/null/x"; also for the
        # subclasses (--out /proc: "No such file or directory: /proc/report.html", not "[Errno 2] ...: '...'")
        print(f"error: {_one_line(os_error_text(exc))}", file=sys.stderr)
    elif isinstance(exc, (ValueError, FileNotFoundError, PermissionError)):  # raised with a message of our own
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
    else:
        print(f"error: {type(exc).__name__}: {_one_line(str(exc))} (set US3L_DEBUG=1 for the traceback)",
              file=sys.stderr)
    return 1


def os_error_text(exc: OSError) -> str:
    """``exc`` (an ``OSError`` with the system's ``strerror``) as one error line's text: ``<strerror>: <path>``,
    ``<strerror>: <path> -> <path2>`` for a rename or link, or the bare ``strerror`` when it names no file."""
    names = [os.fsdecode(f) if isinstance(f, bytes) else str(f)
             for f in (exc.filename, exc.filename2) if f is not None]
    return ": ".join([str(exc.strerror), " -> ".join(names)]) if names else str(exc.strerror)


#: How an error writing the results names stdout, as the system names a file (``No space left on device: <stdout>``).
STDOUT_NAME = "<stdout>"


class _NamedStdout:
    """``sys.stdout`` while a command runs: an ``OSError`` writing or flushing it names it as a file is named
    (``us3l models > /dev/full`` said ``error: No space left on device``, not where). Everything else is the
    stream's own (its encoding, ``isatty``, ``buffer``)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _named(self, exc: OSError) -> OSError:
        if exc.filename is not None or not exc.errno:
            return exc
        return OSError(exc.errno, exc.strerror, STDOUT_NAME)  # the errno's subclass (BrokenPipeError, ...)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise self._named(exc) from None

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._named(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _flush_results() -> None:
    """Flush stdout at the end of a command, so that a result still buffered and not written (a full disk) is an
    error line and a non-zero exit, not the interpreter's "Exception ignored" after an exit 0."""
    if sys.stdout is not None:
        sys.stdout.flush()


def run_script(main: Callable[[], int | None]) -> int:
    """The exit status of ``main()`` (the ``us3l`` command line, or a script's in benchmarks/) under the CLI's error
    policy: an error is one ``error:`` line (``US3L_DEBUG=1``: the traceback), Ctrl-C exits 130, SIGTERM 143. A
    failure to write the results names stdout (``error: No space left on device: <stdout>``); a reader that went
    away (a broken pipe) exits 1 without a word, as Click has the commands do."""
    debug = debug_enabled()
    restore = _SigintWatch.install()
    real_stdout = sys.stdout
    if real_stdout is not None:
        sys.stdout = _NamedStdout(real_stdout)  # type: ignore[assignment]
    try:
        code = main() or 0
        _flush_results()
        _SigintWatch.reported = True  # how the run ends is known (see _SigintWatch.reported)
        return code
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as exc:
        # A signal that came while the error was raised in C (a collective failing because a peer stopped first,
        # both sent SIGTERM by torchrun) has its handler run at the first call here: still an interrupt
        try:
            if _SigintWatch.received:
                return _interrupted()
            if debug:
                raise
            code = 1 if _reader_gone(exc) else report_error(exc)
        except KeyboardInterrupt:
            return _interrupted()
        # said: torchrun's SIGTERM to this worker once a peer is gone is no news, also while the error's frames are
        # freed on the way out (a KeyboardInterrupt there came out of a weakref callback as a traceback)
        _SigintWatch.reported = True
        return code
    finally:
        _SigintWatch.settle(restore)
        if isinstance(sys.stdout, _NamedStdout):  # not Click's or _reader_gone's replacement
            sys.stdout = real_stdout


def _reader_gone(exc: Exception) -> bool:
    """Whether ``exc`` is stdout's broken pipe (its reader went away: ``us3l models | head -0``), which ends the
    command with exit 1 and no word, as Click has the commands do; nothing more is written there."""
    if not isinstance(exc, BrokenPipeError) or exc.filename != STDOUT_NAME:
        return False
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the process's stdout from now on
    return True


if __name__ == "__main__":  # pragma: no cover
    console_main()
