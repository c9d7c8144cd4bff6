"""CLI conventions of issue 13: stdout for results, stderr for the rest; --version; pipeline order; lazy models;
tables that never truncate key columns; progress lines off a terminal; deprecated spellings; --set a.b=c."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from us3l.cli import main
from us3l.cli_output import Col, Progress, fit_table, natural_width
from us3l.version import __version__


def test_version_flag_and_command_print_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    cap = capsys.readouterr()
    assert cap.out == f"us3l {__version__}\n" and cap.err == ""
    assert main(["version"]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith(f"us3l: {__version__}\n") and cap.err == ""


def test_version_names_the_installed_runtimes(capsys: pytest.CaptureFixture[str]) -> None:
    """A bug report needs the runtimes' versions; `us3l version` printed us3l, Python and torch only."""
    from importlib import metadata

    assert main(["version", "--json"]) == 0
    packages = json.loads(capsys.readouterr().out)["packages"]
    assert packages["onnxruntime"] == metadata.version("onnxruntime")
    assert packages["openvino"] == metadata.version("openvino")
    try:
        trt = metadata.version("tensorrt")
    except metadata.PackageNotFoundError:
        trt = None
    assert packages["tensorrt"] == trt
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert f"onnxruntime: {packages['onnxruntime']}\n" in out
    assert f"tensorrt: {trt or 'not installed'}\n" in out


def test_help_lists_commands_in_pipeline_order_with_completion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    order = ["train", "calibrate", "eval", "profile", "select", "export", "report", "quickstart", "models", "info",
             "devices", "version"]
    positions = [out.index(f"│ {name} ") for name in order]
    assert positions == sorted(positions)
    assert "--install-completion" in out and "--version" in out


def test_each_command_is_registered_by_the_module_the_lazy_loader_imports() -> None:
    """``main`` imports only the invoked command's module (us3l.cli.COMMAND_MODULES): a command missing from the
    table, or registered by another module, would be unknown or slow to start."""
    from us3l.cli import COMMAND_MODULES, load_commands
    from us3l.cli_app import COMMAND_ORDER, app

    load_commands()
    owners = {c.name: c.callback.__module__ for c in app.registered_commands if c.callback}
    owners |= {
        g.name: g.typer_instance.registered_callback.callback.__module__  # sub-apps (profile, profile show)
        for g in app.registered_groups
        if g.typer_instance and g.typer_instance.registered_callback and g.typer_instance.registered_callback.callback
    }
    assert set(owners) == set(COMMAND_MODULES) == set(COMMAND_ORDER)
    assert owners == {name: f"us3l.commands.{module}" for name, module in COMMAND_MODULES.items()}


@pytest.mark.slow  # a process per command; the torch-free CLI import stays fast
def test_a_command_starts_without_importing_the_others() -> None:
    code = (
        "import sys; from us3l.cli import main; rc = main(['version']); "
        "print(sorted(m for m in sys.modules if m.startswith('us3l.commands.')), file=sys.stderr); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "['us3l.commands.version']"


def test_models_answers_without_building_a_model(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    import us3l.models

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("us3l models built a model without --costs")

    monkeypatch.setattr(us3l.models, "create_model", refuse)
    assert main(["models", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in doc["models"]]
    assert "cifar_resnet18" in names and "macs_min" not in doc["models"][0]
    assert main(["models"]) == 0
    cap = capsys.readouterr()
    assert "cifar_resnet18" in cap.out and "--costs" in cap.err


def test_models_costs_are_counted_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    from us3l.commands.models import _costs

    row = _costs("cifar_resnet18")
    assert row["distinct_widths"] == 90 and row["macs_max"] > row["macs_min"] > 0


def test_fit_table_drops_secondary_columns_never_truncates_key_ones() -> None:
    cols = [Col("width", key=True), Col("p50 ms", key=True), Col("95% CI", key=True), Col("detail", rank=1),
            Col("notes", fold=True)]
    rows = [["0.8125", "0.123456789", "0.120000000-0.130000000", "x" * 30, "a long free text " * 4]]
    table, width, hidden = fit_table("t", cols, rows, width=80)
    assert hidden == ["detail"] and width <= 80  # notes fold (wraps), detail is dropped
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    Console(file=buf, width=width).print(table)
    text = buf.getvalue()
    assert "…" not in text and "0.120000000-0.130000000" in text and "0.123456789" in text
    table, width, hidden = fit_table("t", cols, rows, width=80, wide=True)
    assert hidden == [] and width == natural_width(table) > 80
    table, width, hidden = fit_table("t", cols[:3], rows, width=20)  # key columns alone too wide: wider, whole
    assert hidden == [] and width == natural_width(table) > 20


def test_progress_off_a_terminal_prints_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress("calibrating", 2, "widths") as bar:
        bar.advance()
        bar.advance()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("calibrating: 1/2 widths · 0s elapsed · eta ")
    assert lines[1] == "calibrating: 2/2 widths · 0s elapsed"


@pytest.mark.parametrize("label", ["profiling exports[/x] on cpu", "profiling exports[v2] on cpu"])
def test_progress_on_a_terminal_shows_its_label_as_text(label: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`us3l profile --artifact DIR` puts the folder's name in the bar's label: on a terminal `[/x]` in it was a
    MarkupError (the command died mid-run) and `[v2]` vanished."""
    from io import StringIO

    from rich.console import Console

    import us3l.cli_output as co

    console = Console(file=StringIO(), force_terminal=True, width=200)
    monkeypatch.setattr(co, "err_console", lambda: console)
    with Progress(label, 2, "widths") as bar:
        bar.update(1, detail="[/y] detail")
    shown = console.file.getvalue()
    assert label in shown and "[/y] detail" in shown


def test_quiet_silences_progress(capsys: pytest.CaptureFixture[str]) -> None:
    from us3l.cli_output import set_quiet

    set_quiet(True)
    try:
        with Progress("x", 3) as bar:
            bar.advance()
    finally:
        set_quiet(False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("args", "note", "error"),
    [
        (["eval", "--ckpt", "/nonexistent", "--grid", "4"], "note: `us3l eval --grid 4` is deprecated; use --points 4",
         "error: "),
        (["calibrate", "--ckpt", "/nonexistent", "--grid", "4"],
         "note: `us3l calibrate --grid 4` is deprecated; use --points 4", "error: "),
        (["eval", "--ckpt", "/nonexistent", "--k", "5", "--temperature", "0.2"],
         "note: `us3l eval --k 5` is deprecated; use --knn-k 5", "error: no checkpoint found at /nonexistent"),
        (["profile", "--model", "cifar_resnet18", "--batch", "2", "--widths", "7"],
         "note: `us3l profile --batch 2` is deprecated; use --batch-size 2", "error: "),
        (["train", "--device", "cpu", "--method", "nope"],
         "note: `us3l train --device cpu` is deprecated; use --torch-device cpu", "error: unknown method 'nope'"),
        (["quickstart", "--backends", "tflite"], "note: `us3l quickstart --backends tflite` is deprecated; use "
         "--backend tflite", "error: quickstart profiles and exports with onnx and/or openvino, not 'tflite'"),
        (["export", "--backend", "onnx", "--model", "cifar_resnet18", "--width", "1.5", "--batch", "2", "--out",
          "/nonexistent/x"], "note: `us3l export --batch 2` is deprecated; use --batch-size 2",
         "error: --width: width must be in [0.25, 1], got 1.5"),
    ],
)
def test_old_spellings_work_with_a_note(args: list[str], note: str, error: str, capsys) -> None:
    assert main(args) == 1
    cap = capsys.readouterr()
    lines = cap.err.splitlines()
    assert lines[0].startswith(note) and lines[-1].startswith(error) and cap.out == ""


@pytest.mark.parametrize(("args", "message"), [
    (["profile", "--model", "cifar_resnet18", "--batch", "2", "--batch-size", "3"],
     "error: --batch 2 and --batch-size 3 disagree: give --batch-size only (--batch is its old name)"),
    (["eval", "--ckpt", "/nonexistent", "--k", "5", "--knn-k", "7"],
     "error: --k 5 and --knn-k 7 disagree: give --knn-k only (--k is its old name)"),
])
def test_an_old_and_a_new_spelling_with_two_values_are_refused(args: list[str], message: str, capsys) -> None:
    """Red-team 2026-12-07: `profile --batch 2 --batch-size 3` noted the old spelling as "use --batch-size 2" and
    then used 3, silently."""
    assert main(args) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == message


def test_set_dotted_keys_and_unknown_keys_name_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    from us3l.errors import US3LError
    from us3l.train.config import resolve_config

    cfg = resolve_config(None, {"model_kwargs.base_channels": 8, "model_kwargs.stem.kind": "cifar"})
    assert cfg.model_kwargs["base_channels"] == 8 and cfg.model_kwargs["stem"] == {"kind": "cifar"}
    with pytest.raises(US3LError, match=r"^config key 'epochs.x': only model_kwargs take dotted sub-keys"):
        resolve_config(None, {"epochs.x": 1})
    assert main(["train", "--set", "methd=us3l"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key(s): methd (did you mean method?); valid keys: ")
    assert "batch_size" in err and "model_kwargs" in err and err.count("\n") == 1
    assert main(["train", "--set", "model_kwargz.base_channels=8"]) == 1
    assert capsys.readouterr().err.startswith("error: unknown config key(s): model_kwargz (did you mean model_kwargs?)")
    assert main(["train", "--out", "runs/y", "--set", "out=runs/x"]) == 1  # never silently the --set one
    err = capsys.readouterr().err
    assert err == "error: --set out=runs/x contradicts the flag that set out to 'runs/y'; give one\n"


def test_train_checks_paths_before_printing_its_config(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope"
    assert main(["train", "--data", f"cifar10:{missing}", "--out", str(tmp_path / "run")]) == 1
    cap = capsys.readouterr()
    assert cap.err == f"error: data path not found: {missing}\n" and cap.out == ""
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.safetensors").write_bytes(b"x")
    assert main(["train", "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run} already holds a checkpoint") and err.count("\n") == 1
    # red-team 2026-12-06: an --out that is a file was found by the folder lock, after 76 lines of config
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for extra in ([], ["--overwrite"], ["--resume"]):
        assert main(["train", "--out", str(afile), *extra]) == 1
        cap = capsys.readouterr()
        assert (cap.out, cap.err) == ("", f"error: run folder {afile} is a file, not a folder; choose another --out\n")
    assert afile.read_text() == "mine"


@pytest.mark.slow  # 1.4 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_report_finds_the_step_by_step_accuracy_file(tmp_path: Path, capsys) -> None:
    from tests.report.conftest import accuracy_v2, make_run
    from us3l.io import atomic_write_json

    make_run(tmp_path)
    atomic_write_json(tmp_path / "run" / "accuracy.json", accuracy_v2())  # where `us3l eval --ckpt run` writes it
    assert main(["report", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "accuracy" in doc["rendered"] and "accuracy" not in doc["missing"]
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "site")]) == 0
    cap = capsys.readouterr()
    assert cap.out == f"{tmp_path / 'site' / 'report.html'}\n" and (tmp_path / "site" / "report.html").is_file()


@pytest.mark.slow  # 4.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_pipe_gets_the_results_and_only_them(tmp_path: Path) -> None:
    """Through a real pipe (not a terminal): the table on stdout, whole; nothing else there."""
    proc = subprocess.run([sys.executable, "-m", "us3l", "info", "--model", "cifar_resnet18", "--width", "0.25"],
                          capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "US3L_DEBUG": ""})
    assert proc.returncode == 0, proc.stderr
    assert "layer4.1.conv2" in proc.stdout and "total: " in proc.stdout and "…" not in proc.stdout


def test_ctrl_c_inside_an_extension_import_still_exits_as_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SIGINT that lands while an extension module initialises reaches the CLI as ``ImportError:
    initialization failed`` (pybind11 modules); it is still a Ctrl-C: exit 130, not an error."""
    import os
    import signal
    import time

    import us3l.cli as cli

    def app(args: list[str], prog_name: str, **_: object) -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises KeyboardInterrupt here
        except KeyboardInterrupt:
            raise ImportError("initialization failed") from None  # what the extension's init turns it into

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import us3l.cli_app as cli_app

    cli.load_commands(["version"])  # registered on the real app first: main then runs the stand-in
    monkeypatch.setattr(cli_app, "app", app)
    monkeypatch.setattr(cli._SigintWatch, "received", False)
    try:
        assert cli.main(["version"]) == 130
        assert capsys.readouterr().err == "us3l: interrupted\n"
        # an ImportError without a Ctrl-C stays an error
        monkeypatch.setattr(cli._SigintWatch, "received", False)
        monkeypatch.setattr(cli_app, "app",
                            lambda args, prog_name, **_: (_ for _ in ()).throw(ImportError("no module x")))
        assert cli.main(["version"]) == 1
        assert "error: ImportError: no module x" in capsys.readouterr().err
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow  # waits for a command to be mid-run; Ctrl-C's unwinding stays fast
def test_sigterm_unwinds_like_ctrl_c_and_exits_143(tmp_path: Path) -> None:
    """``kill`` or a job scheduler's timeout sends SIGTERM, whose default skips every clean-up; the CLI turns it
    into the same unwinding as Ctrl-C (temporary files removed, locks released) and exits 128 + 15."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "us3l", "train", "--epochs", "400", "--out", str(out),
           "--set", "model_kwargs.base_channels=8", "--knn-every", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (out / ".us3l.lock").exists():  # training has started (the run folder is locked)
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.rstrip().endswith("us3l: terminated") and "Traceback" not in err
    assert [p for p in out.rglob("*") if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_pending_when_an_error_comes_is_still_an_interrupt(signum: int,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A SIGTERM that torchrun sends every worker reaches one while it waits in a collective (C++, where Python
    runs no handler); the peer that stopped first makes that collective fail ("Connection reset by peer"), and
    the handler ran at the first call in the CLI's error handling, raising KeyboardInterrupt out of it: a
    traceback and exit -2 instead of a silent 143. Here a socket's peer resets the connection just after another
    thread took the signal, so the error comes with the interrupt pending."""
    import socket
    import struct
    import threading

    from us3l.cli import _SigintWatch, run_script

    server = socket.create_server(("127.0.0.1", 0))
    mine = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    server.close()

    def signal_then_reset() -> None:
        time.sleep(0.2)  # main is waiting in recv by now (if not, the handler runs before the error: no failure)
        signal.raise_signal(signum)  # its C handler runs in this thread; Python's is pending in the main one
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # a reset, as from a peer gone mid-collective

    def job() -> None:  # no with-block or finally: the error reaches run_script without a call on the way
        threading.Thread(target=signal_then_reset).start()
        mine.recv(1)  # ConnectionResetError, raised in C: no handler has run yet

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # what run_script turns into its own handler
    try:
        try:
            code: object = run_script(job)
        except KeyboardInterrupt:
            code = "KeyboardInterrupt escaped run_script"
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        mine.close()
    terminated = signum == signal.SIGTERM
    assert code == (143 if terminated else 130)
    assert capsys.readouterr().err == ("us3l: terminated\n" if terminated else "us3l: interrupted\n")
    assert _SigintWatch.received


def test_an_interrupt_already_reported_is_not_raised_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A signal that lands inside an import is delivered again 50 ms later. When the run ended first on another
    path -- the torchrun SIGTERM test: the peer worker stopped at once and this one's collective failed, which
    run_script reports as interrupted -- that second delivery raised KeyboardInterrupt in run_script's clean-up
    (restoring SIGTERM) or after it: a traceback from a worker that had already exited 143 (a flaky CI failure of
    test_sigterm_to_us3l_train_nproc_stops_its_workers[0]). Once reported, an interrupt is not raised again."""
    import time

    from us3l.cli import run_script

    (tmp_path / "interrupted_import.py").write_text(
        "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\nfor _ in range(1000):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def job() -> None:
        import interrupted_import  # noqa: F401 - the signal lands in here: delivered again in 50 ms
        raise RuntimeError("Connection closed by peer")  # the run ends first, another way

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    raised = []
    try:
        try:
            assert run_script(job) == 130
            time.sleep(0.5)  # the second delivery comes meanwhile
        except KeyboardInterrupt:
            raised.append(True)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert raised == [] and capsys.readouterr().err == "us3l: interrupted\n"


class _SignalledOnRelease:
    """Sends this process SIGINT from its ``__del__`` and runs bytecode there: the handler runs in a finaliser."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # bytecode: the handler runs here
            pass


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """What Python drops as "Exception ignored in ..." (``sys.unraisablehook``) during the test, which runs with
    Python's own SIGINT handler, as a fresh process does."""
    dropped: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(u.exc_value))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield dropped
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_signal_after_the_error_line_is_no_traceback(unraisable: list[object],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The DDP worker that lost its peer (killed by SIGKILL) printed its one line; torchrun then stopped it with
    SIGTERM while its exception was being freed, and the KeyboardInterrupt came out of a weakref callback there:
    "Exception ignored in: <function WeakKeyDictionary...> ... KeyboardInterrupt" (a flaky failure of
    test_a_worker_killed_by_a_signal_ends_us3l_train_nproc_in_one_line). Once the error is reported, a signal
    is no news: the run ends with its error."""
    from us3l.cli import run_script

    def job() -> None:
        held = _SignalledOnRelease()  # noqa: F841 - freed with the traceback, after the error line
        raise RuntimeError("Connection closed by peer")

    assert run_script(job) == 1
    assert unraisable == []
    assert capsys.readouterr().err == ("error: RuntimeError: Connection closed by peer (set US3L_DEBUG=1 for the "
                                       "traceback)\n")


def test_ctrl_c_inside_a_finaliser_still_interrupts_the_run(unraisable: list[object],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """SIGINT handled while the garbage collector ran a ``__del__``: Python printed "Exception ignored in ...
    KeyboardInterrupt" and dropped it, and ``us3l export`` ran to its end and exited 0 (a fast-suite run on a
    loaded machine, test_ctrl_c_while_the_command_loads_exits_130_without_a_traceback). It is delivered again
    outside the finaliser: exit 130, one line, nothing printed as ignored."""
    from us3l.cli import run_script

    def job() -> int:
        _SignalledOnRelease()  # freed at once: its __del__ takes the signal
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the command's work goes on
            time.sleep(0.01)
        return 0

    assert run_script(job) == 130
    assert unraisable == []
    assert capsys.readouterr().err == "us3l: interrupted\n"
    assert sys.unraisablehook is not None and sys.unraisablehook.__name__ == "<lambda>"  # the hook given back


class _FailsOnRelease:
    """Raises from its ``__del__``: Python drops the error to ``sys.unraisablehook``."""

    def __del__(self) -> None:
        raise ValueError("dropped in a finaliser")


def test_a_run_inside_a_run_passes_other_dropped_errors_to_the_first_hook(unraisable: list[object]) -> None:
    """A script's ``run_script`` under another's (a benchmark calling a CLI entry point): a finaliser's error that
    is not an interrupt still reaches the hook from before both runs (the inner one must not take the outer's
    hook for the previous one: its own, calling itself), and each run gives back the hook it found."""
    from us3l.cli import run_script

    hooks = []

    def inner() -> int:
        _FailsOnRelease()
        return 0

    def outer() -> int:
        hooks.append(sys.unraisablehook)
        code = run_script(inner)
        hooks.append(sys.unraisablehook)
        return code

    assert run_script(outer) == 0
    assert [type(e).__name__ for e in unraisable] == ["ValueError"]
    assert hooks[0] == hooks[1] and getattr(hooks[0], "__name__", "") == "_unraisable"
    assert sys.unraisablehook.__name__ == "<lambda>"


def test_an_error_from_a_data_loader_worker_is_still_one_line() -> None:
    from us3l.cli import _one_line

    wrapped = ("Caught US3LError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "loader.py", line 1, in fetch\nus3l.errors.US3LError: cannot read image a.png: truncated\n')
    assert _one_line(wrapped) == "cannot read image a.png: truncated"
    assert _one_line("plain message") == "plain message"


def test_a_worker_error_keeps_a_file_name_with_a_newline_whole() -> None:
    """Red-team 2026-12-06: only the traceback's last line was kept, so a file name with a newline (class folder
    'b\\nc') left 'error: c/5.png: ...', naming no file; a SyntaxError also said its name twice."""
    from us3l.cli import _one_line

    frames = ('Original Traceback (most recent call last):\n  File "folder.py", line 73, in open_rgb\n'
              "    return _as_rgb(im, path)\n           ^^^^^^^^^^^^^^^^^\n")
    wrapped = (f"Caught US3LError in DataLoader worker process 1.\n{frames}"
               "us3l.errors.US3LError: cannot read image /data/b\nc/5.png: damaged\n")
    assert _one_line(wrapped) == "cannot read image /data/b\\nc/5.png: damaged"
    other = f"Caught SyntaxError in DataLoader worker process 0.\n{frames}SyntaxError: broken PNG file\n"
    assert _one_line(other) == "broken PNG file"


def test_a_newline_in_a_message_cannot_start_a_fake_error_line() -> None:
    from us3l.cli import _one_line

    assert _one_line("cannot read image x\nerror: fake.png: y") == "cannot read image x\\nerror: fake.png: y"


def test_a_control_character_in_a_message_is_shown_not_obeyed() -> None:
    """Red-team 2026-12-06: a file named with a terminal escape sequence (ESC [1A ESC [2K: cursor up, erase the
    line) reached the terminal raw in 'error: cannot read image ...', which could erase or overwrite the lines."""
    from us3l.cli import _one_line

    assert _one_line("cannot read image /d/\x1b[1A\x1b[2Kok\x07\x9b.png: damaged\tx") == (
        "cannot read image /d/\\x1b[1A\\x1b[2Kok\\x07\\x9b.png: damaged\tx")


def test_a_path_with_a_newline_or_escape_stays_on_one_note_or_warning_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``us3l export --out $'a\\nb'`` printed ``wrote a`` and ``b/...`` on two lines, the second naming no file;
    plain-text notes and warnings (paths, device names) now show control characters as error lines do."""
    from us3l.cli_output import note, warn

    note("wrote runs/a\nb/cpu\x1b[2K", markup=False)
    warn("cannot read runs/a\nb [x]", markup=False)
    note("[bold]kept[/bold]")  # markup notes are ours, not a user's text: unchanged
    assert capsys.readouterr().err == ("wrote runs/a\\nb/cpu\\x1b[2K\n"
                                       "warning: cannot read runs/a\\nb [x]\n"
                                       "kept\n")


def test_an_interrupt_raised_inside_exec_still_exits_with_our_code(tmp_path: Path) -> None:
    """A Ctrl-C or SIGTERM that lands while exec(<string>) runs (dataclasses build their methods so, e.g. in a
    lazy import) left CPython's "unhandled KeyboardInterrupt" flag set: under ``python -m`` the process killed
    itself with SIGINT (-2) after main had returned 143 (a flaky SIGTERM test showed it)."""
    (tmp_path / "interrupted_main.py").write_text(
        "import sys\nfrom us3l import cli, cli_app\ncli.load_commands(['version'])\n"
        "cli_app.app = lambda args, prog_name, **_: exec('raise KeyboardInterrupt')\n"
        "sys.exit(cli.main(['version']))\n"
    )
    proc = subprocess.run([sys.executable, "-m", "interrupted_main"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert (proc.returncode, proc.stderr) == (130, "us3l: interrupted\n")


@pytest.mark.slow  # 2.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_importing_the_cli_does_not_load_torch() -> None:
    """The handler for Ctrl-C is installed in ``main``; whatever ``import us3l.cli`` loads runs before it. A Ctrl-C
    during the 1-2 s torch import used to print a KeyboardInterrupt traceback, or end in an unrelated error from
    a half-imported numpy (red-team 2026-12-05). The public API still works, loaded on first use."""
    code = ("import sys, us3l.cli; assert 'torch' not in sys.modules and 'typer' not in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'typer'))[:5]\n"
            "import us3l; assert callable(us3l.create_model) and 'torch' in sys.modules\n"
            "from us3l import materialize, width; assert {'materialize', 'width'} <= set(dir(us3l))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (the kernel's SigCgt mask in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


@pytest.mark.slow  # 3.5 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_ctrl_c_while_the_command_loads_exits_130_without_a_traceback(tmp_path: Path) -> None:
    """SIGINT as soon as the CLI's handlers are in place, while ``us3l export`` imports torch and its command
    module. (It was sent 0.5 s after the start: on a loaded machine the interpreter could still be starting,
    before any handler of ours -- a KeyboardInterrupt traceback and exit -2 that no code of ours could prevent.)"""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "us3l", "export", "--model", "cifar_resnet18", "--width", "1",
                             "--backend", "onnx", "--out", str(tmp_path / "out")], stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not _catches(proc.pid, signal.SIGTERM):  # Python handles SIGINT from its start, SIGTERM only once we do
        assert proc.poll() is None and time.monotonic() < deadline, "the CLI never installed its handlers"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (130, "us3l: interrupted\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["train", "--epochs", "abc"], "error: Invalid value for '--epochs': Input should be a valid integer, unable "
                                       "to parse string as an integer (see: us3l train --help)"),
        (["eval"], "error: Missing option '--ckpt'. (see: us3l eval --help)"),
        # one bad --threads, one exit status in every command (train and quickstart used to exit 1)
        *[([cmd, *extra, "--threads", "0"], "error: Invalid value for '--threads': Input should be greater than or "
           f"equal to 1 (see: us3l {cmd} --help)")
          for cmd, extra in (("train", []), ("quickstart", []), ("eval", ["--ckpt", "x"]), ("export", []),
                             ("profile", []), ("calibrate", ["x"]))],
        (["bogus"], "error: No such command 'bogus'. (see: us3l --help)"),
        (["version", "extra"], "error: Got unexpected extra argument(s) (extra) (see: us3l version --help)"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(argv: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: typer printed a usage line, a hint and a 3-5 line box for every usage error."""
    from us3l.cli import main

    assert main(argv) == 2
    cap = capsys.readouterr()
    assert (cap.out, cap.err) == ("", line + "\n")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["eval", "--ckpt", "a", "--ckpt", "b"],
         "error: --ckpt given twice (a, b): give it once (see: us3l eval --help)"),
        (["train", "--lr", "0.1", "--lr=0.2"],
         "error: --lr given twice (0.1, 0.2): give it once (see: us3l train --help)"),
        # a short alias is the same option
        (["train", "-c", "a.yaml", "--config", "b.yaml"],
         "error: --config given twice (a.yaml, b.yaml): give it once (see: us3l train --help)"),
        # select's old `--plot FILE` spelling is --plot-file
        (["select", "--plot", "a.png", "--plot", "b.png"],
         "error: --plot-file given twice (a.png, b.png): give it once (see: us3l select --help)"),
        # switches: one rule for every option; a switch and its negation name both spellings
        (["eval", "--ckpt", "x", "--quiet", "-q"], "error: --quiet given twice: give it once (see: us3l eval --help)"),
        (["eval", "--ckpt", "x", "--baselines", "--no-baselines"],
         "error: --baselines given twice (--baselines, --no-baselines): give it once (see: us3l eval --help)"),
        (["profile", "show", "a.json", "--json", "--json"],
         "error: --json given twice: give it once (see: us3l profile show --help)"),
        (["--version", "-V"], "error: --version given twice: give it once (see: us3l --help)"),
    ],
)
def test_an_option_given_twice_is_a_usage_error(argv: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Click kept the last of an option given twice, silently: `eval --ckpt a --ckpt b` evaluated b, `train --lr 0.1
    --lr 0.2` trained with 0.2. Refused before any work (train's config files do not exist: no run starts)."""
    assert main(argv) == 2
    cap = capsys.readouterr()
    assert (cap.out, cap.err) == ("", line + "\n")


def test_a_list_option_is_still_repeatable(capsys: pytest.CaptureFixture[str]) -> None:
    # --set and select --device take several values: the commands' own checks answer, not the repeat rule
    assert main(["train", "--config", "/nonexistent.yaml", "--set", "lr=0.1", "--set", "epochs=4"]) == 1
    assert capsys.readouterr().err == "error: config file not found: /nonexistent.yaml\n"
    assert main(["select", "-d", "cpu", "--device", "gpu", "--profile", "/nonexistent.json", "--latency-ms", "3"]) == 1
    assert "given twice" not in capsys.readouterr().err
    # --help twice still prints the help
    assert main(["version", "--help", "--help"]) == 0
    assert "Usage: us3l version" in capsys.readouterr().out


_NOT_ASCII = "is not a number in ASCII digits (no '_' separators, no other scripts' digits)"


@pytest.mark.parametrize(
    ("argv", "code", "line"),
    [
        # '_' separators and other scripts' digits: a usage error, as --widths and the config file refuse them
        *[([cmd, *extra, flag, text], 2, f"error: Invalid value for '{flag}': {text!r} {_NOT_ASCII} (see: us3l {cmd} "
           "--help)")
          # train: a missing config, so that no run starts should the check fail
          for cmd, extra, flag in (("select", [], "--latency-ms"),
                                   ("train", ["--config", "/nonexistent.yaml"], "--batch-size"),
                                   ("eval", ["--ckpt", "x"], "--knn-k"), ("profile", [], "--threads"),
                                   ("info", [], "--width"))
          for text in ("1_0", "\u0663")],  # ٣ (Arabic-Indic 3): Click's int() reads it as 3
        (["select", "--latency-ms", "0.\u0665"], 2,
         f"error: Invalid value for '--latency-ms': '0.\u0665' {_NOT_ASCII} (see: us3l select --help)"),
        # ASCII spellings (a sign, scientific notation) still pass the parsing: the command's own check answers
        *[(["select", flag, text], 1, "error: no profile given (use --profile FILE or --device NAME)")
          for flag, text in (("--latency-ms", "10"), ("--latency-ms", "1e-3"), ("--latency-ms", "0.5"),
                             ("--latency-ms", "+2"), ("--macs", "1E3"))],
        (["select", "--latency-ms", "-0.5"], 1, "error: --latency-ms must be a finite positive number, got -0.5"),
        (["eval", "--ckpt", "/nonexistent", "--knn-k", "10"], 1,
         "error: no checkpoint found at /nonexistent (expected a run folder or checkpoint.safetensors)"),
        (["profile", "--threads", "+10"], 1,
         "error: give a device: --device NAME or --device-file PATH (list them with: us3l devices)"),
    ],
)
def test_a_number_option_takes_ascii_digits_only(argv: list[str], code: int, line: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``select --latency-ms 1_0`` was read as 10 (Click's and pydantic's number parsing take Python's digit
    separators, Click's int() other scripts' digits), where --widths and the YAML 1.2 config refuse both."""
    from us3l.cli import main

    assert main(argv) == code
    cap = capsys.readouterr()
    assert (cap.out, cap.err) == ("", line + "\n")


@pytest.mark.parametrize(("env", "printed"), [({}, True), ({"RANK": "0"}, True), ({"RANK": "1"}, False),
                                              ({"RANK": "0", "US3L_LAUNCHED_BY": "123"}, False)])
def test_an_interrupt_is_reported_once_per_job(env: dict[str, str], printed: bool, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: Ctrl-C to ``us3l train --nproc 2`` printed 'us3l: terminated' from each worker (sent
    SIGTERM by the launcher) before the launcher's 'us3l: interrupted'."""
    from us3l import cli

    for key in ("RANK", "US3L_LAUNCHED_BY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cli._SigintWatch, "terminated", True)
    monkeypatch.setattr(cli._SigintWatch, "reported", False)  # _interrupted sets it: not left to other tests
    assert cli._interrupted() == 143
    assert capsys.readouterr().err == ("us3l: terminated\n" if printed else "")


def test_ctrl_c_inside_an_import_is_delivered_once_the_import_is_done(tmp_path: Path) -> None:
    """A KeyboardInterrupt raised in Python code that torch's C++ initialisation calls ended in terminate() and
    SIGABRT (exit -6, a C++ stack dump) in 6 of 250 Ctrl-Cs timed into `us3l export`'s start-up under load.
    The handler now lets an import finish and delivers the interrupt right after it."""
    marker = tmp_path / "import-finished"
    (tmp_path / "slow_mod.py").write_text(
        "import os, pathlib, signal, time\n"
        "for _ in range(3):  # Ctrl-C pressed three times: still one interrupt, after the import\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.1)\n"
        "deadline = time.time() + 0.3\n"
        "while time.time() < deadline:\n"
        "    pass\n"
        f"pathlib.Path({str(marker)!r}).touch()\n"
    )
    code = ("import sys, time\n"
            "from us3l.cli import run_script\n"
            "def job():\n"
            "    import slow_mod\n"
            "    time.sleep(600)  # a blocking call right after the import: the interrupt ends it\n"
            "    print('not interrupted', flush=True)\n"
            "sys.exit(run_script(job))\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # delivered with _thread.interrupt_main (a flag between bytecodes), it waited for the sleep to end
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert marker.exists()  # the import ran to its end
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", "us3l: interrupted\n")


def test_a_closed_stdout_is_one_line_before_any_work() -> None:
    """Red-team 2026-12-05: `us3l train ... >&-` trained, saved, then failed with `AttributeError: 'NoneType'
    object has no attribute 'write'`."""
    proc = subprocess.run([sys.executable, "-m", "us3l", "version"], stderr=subprocess.PIPE, text=True, timeout=120,
                          preexec_fn=lambda: os.close(1))
    assert (proc.returncode, proc.stderr) == (1, "error: stdout is closed: results are printed there; redirect it "
                                                 "(e.g. >/dev/null) instead of closing it\n")


@pytest.mark.slow  # a CLI process per locale
def test_a_locale_without_the_tables_characters_replaces_them() -> None:
    """Red-team 2026-12-05: in an ASCII or Latin-1 locale, commands did their work (an export, a selection) and
    then exited 1 with a codec error on a table character (→, ±, ≤, ×)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONIOENCODING"))}
    env.update(LC_ALL="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0")
    proc = subprocess.run([sys.executable, "-m", "us3l", "info", "--model", "cifar_resnet18", "--width", "0.5"],
                          capture_output=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"?" in proc.stdout and b"total:" in proc.stdout  # x (U+00D7) in the shapes, shown as ?


@pytest.mark.parametrize("spelling", ["--batch-size", "--batch"])
@pytest.mark.parametrize("value", ["0", "4097"])
def test_a_batch_size_out_of_range_is_the_same_error_in_profile_and_export(spelling: str, value: str, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-06: `profile --batch-size 0` was a usage error (exit 2, typer's 'Invalid value ... greater
    than or equal to 1') while `export --batch-size 0` (and train's, calibrate's) was bad input, exit 1: one flag,
    two exit statuses. Now both say `--batch-size must be 1 to 4096` and exit 1, before any model is built."""
    from us3l.cli import main

    lines = []
    for argv in (["profile", "-d", "cpu", "--model", "cifar_resnet18", "--out", str(tmp_path / "p")],
                 ["export", "--model", "cifar_resnet18", "--width", "1", "--backend", "onnx", "--out", str(tmp_path)]):
        assert main([*argv, spelling, value]) == 1
        err = capsys.readouterr().err.splitlines()
        lines.append(err[-1])
    assert lines == [f"error: --batch-size must be 1 to 4096, got {value}"] * 2
    assert list(tmp_path.iterdir()) == []


#: Per shared flag and bad value: every command that takes the flag, with the other arguments that get it as far as
#: the check (nothing is built or measured before it). Red-team 2026-12-06 (rtF): --max-seconds 0 said "must be > 0"
#: in profile and "a finite positive number" in quickstart; --latency-ms nan "a positive number" in select;
#: info --width nan "width must be in [0.25, 1]" without the flag, export "--width must be a finite positive number".
_MODEL = ["--model", "cifar_resnet18"]
_EXPORT = ["export", *_MODEL, "--backend", "onnx", "--device", "cpu"]
SHARED_BAD_VALUES: list[tuple[str, str, str, list[list[str]]]] = [
    ("--max-seconds", "0", "a finite positive number, got 0.0",
     [["profile", "--device", "cpu", *_MODEL], ["quickstart"]]),
    ("--max-seconds", "nan", "a finite positive number, got nan",
     [["profile", "--device", "cpu", *_MODEL], ["quickstart"]]),
    ("--latency-ms", "nan", "a finite positive number, got nan", [["select", "--profile", "p.json"], ["quickstart"]]),
    ("--latency-ms", "-1", "a finite positive number, got -1.0", [["select", "--profile", "p.json"], ["quickstart"]]),
    ("--width", "nan", "a finite positive number, got nan", [_EXPORT, ["info", *_MODEL]]),
    ("--widths", "1,nan", "a finite positive number, got nan",
     [[*_EXPORT, "--switchable"], ["profile", "--device", "cpu", *_MODEL]]),
    # train said 'epochs must be >= 1' (the config key), quickstart '--epochs must be >= 1'
    ("--epochs", "0", "a finite positive integer, got 0", [["train"], ["quickstart"]]),
    # calibrate and eval said 'the number of calibration batches must be >= 1', naming no flag
    ("--batches", "0", "a finite positive integer, got 0",
     [["calibrate", "--ckpt", "nope"], ["eval", "--ckpt", "nope"]]),
    # calibrate and eval checked --points only after loading the checkpoint: 'no checkpoint found' came first
    ("--points", "0", ">= 1 (0 is not allowed), got 0",
     [["calibrate", "--ckpt", "nope"], ["eval", "--ckpt", "nope"], ["profile", "--device", "cpu", *_MODEL],
      ["quickstart"]]),
    ("--batch-size", "0", "1 to 4096, got 0", [["profile", "--device", "cpu", *_MODEL], [*_EXPORT, "--width", "0.5"]]),
    # train's flags were checked as config keys: '--knn-every -1' said 'num_samples and reg_bins must be >= 1;
    # save_every and knn_every >= 0', naming neither the flag nor which value was wrong
    ("--knn-every", "-1", "a finite non-negative integer, got -1", [["train"]]),
    ("--save-every", "-1", "a finite non-negative integer, got -1", [["train"]]),
    ("--lr", "0", "a finite positive number, got 0.0", [["train"]]),
]


@pytest.mark.parametrize(("flag", "value", "need", "commands"), SHARED_BAD_VALUES,
                         ids=[f"{f} {v}" for f, v, _, _ in SHARED_BAD_VALUES])
def test_a_bad_value_is_worded_the_same_by_every_command(
    flag: str, value: str, need: str, commands: list[list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for args in commands:
        out = ["--out", str(tmp_path / "out")] if args[0] in ("export", "quickstart", "train", "eval") else []
        assert main([*args, *out, flag, value]) == 1, args
        assert capsys.readouterr().err == f"error: {flag} must be {need}\n", args


def _visible_options() -> dict[str, list[tuple[str, str, tuple[str, ...]]]]:
    """Per command path (``profile show``), its visible options as (long name, short names)."""
    import typer.main

    from us3l.cli import load_commands
    from us3l.cli_app import app

    load_commands()
    found: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {}

    def walk(cmd: Any, path: str) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())
        for p in cmd.params:
            opts = [o for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", []) if o.startswith("-")]
            longs = [o for o in opts if o.startswith("--")]
            if not longs or getattr(p, "hidden", False):
                continue
            shorts = tuple(sorted(o for o in opts if not o.startswith("--")))
            found.setdefault(path, []).extend((path, long, shorts) for long in longs)

    walk(typer.main.get_command(app), "")
    return found


def test_a_short_option_means_one_long_option_in_every_command() -> None:
    """Red-team 2026-12-06 (rtF): `train -c FILE` worked, `quickstart -c FILE` was 'No such option' although
    `quickstart --config` is the same training config. A long option has the same short form in every command that
    has it, and a short form stands for one long option."""
    by_long: dict[str, set[tuple[str, ...]]] = {}
    by_short: dict[str, set[str]] = {}
    for options in _visible_options().values():
        for _, long, shorts in options:
            by_long.setdefault(long, set()).add(shorts)
            for s in shorts:
                by_short.setdefault(s, set()).add(long)
    assert {long: forms for long, forms in by_long.items() if len(forms) > 1} == {}
    assert {s: longs for s, longs in by_short.items() if len(longs) > 1} == {}
    assert ("-c",) in by_long["--config"] and ("-q",) in by_long["--quiet"] and ("-d",) in by_long["--device"]


def test_us3l_alone_prints_the_help_and_exits_2_as_documented(capsys: pytest.CaptureFixture[str]) -> None:
    """`us3l` with no command prints the help and exits 2 (Click's no_args_is_help: a usage error), which the
    exit-code table of docs/cli.md (and the README's copy) did not say: a script's `us3l || ...` took it for a
    failed command."""
    assert main([]) == 2
    cap = capsys.readouterr()
    assert "Usage: us3l [OPTIONS] COMMAND [ARGS]..." in cap.out and "train" in cap.out
    root = Path(__file__).resolve().parents[1]
    for doc in ("docs/cli.md", "README.md"):
        row = next(line for line in (root / doc).read_text(encoding="utf-8").splitlines() if line.startswith("| 2 |"))
        assert "`us3l` alone, no command given, which prints the help on stdout" in row, doc


def _ended_by_end_process(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    head = "import atexit, ctypes, sys, threading, time\nfrom us3l.cli import end_process\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # the streams buffer, as for a user
    return subprocess.run([sys.executable, "-c", head + code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=env)


def test_end_process_runs_atexit_and_flushes_python_and_c_output(tmp_path: Path) -> None:
    """`us3l` ends without the interpreter's finalisation (0.7-0.9 s with torch, OpenVINO and onnxruntime loaded:
    benchmarks/exit_cost.py); what finalisation did that matters still happens. Through pipes, so every stream is
    block-buffered: a result not flushed, a C library's line on stdout, the atexit functions and the exit status."""
    proc = _ended_by_end_process(
        "atexit.register(lambda: sys.stdout.write('atexit ran\\n'))\n"
        "sys.stdout.write('result\\n')\n"
        "sys.stderr.write('note\\n')\n"
        "ctypes.CDLL(None).printf(b'from C\\n')\n"
        "end_process(3)\n", tmp_path)
    assert proc.returncode == 3
    assert sorted(proc.stdout.splitlines()) == ["atexit ran", "from C", "result"] and proc.stderr == "note\n"


def test_end_process_waits_for_a_thread_the_interpreter_would_wait_for(tmp_path: Path) -> None:
    """A non-daemon thread still running is joined, as a plain exit joins it: its work is not cut short."""
    proc = _ended_by_end_process(
        "def work():\n    time.sleep(0.3)\n    open('done', 'w').write('yes')\n"
        "threading.Thread(target=work).start()\n"
        "end_process(0)\n", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "done").read_text() == "yes"


@pytest.mark.parametrize(("argv", "code", "out"), [(["version"], 0, f"us3l: {__version__}"), (["bogus"], 2, "")])
def test_python_m_us3l_ends_with_the_commands_status(argv: list[str], code: int, out: str) -> None:
    """`python -m us3l` (and the console script: pyproject's `us3l.cli:console_main`) ends through end_process."""
    proc = subprocess.run([sys.executable, "-m", "us3l", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout.splitlines()[:1] == ([out] if out else [])


def test_ctrl_c_once_the_status_is_decided_is_ignored(tmp_path: Path) -> None:
    """A Ctrl-C after the command returned (here: during an atexit function) neither kills the process by the
    signal without a word (exit -2, as during the interpreter's finalisation before) nor changes its status."""
    proc = _ended_by_end_process(
        "import os, signal\n"
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2), print('after')))\n"
        "end_process(0)\n", tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "after\n", "")
