"""How a command reports that it cannot write its outputs: one ``error:`` line naming the path in the system's
words (``<strerror>: <path>``, as every other OS error), exit 1, nothing of the user's lost and no temporary file
left. Destinations: a path under ``/proc`` (no file can be made there), a file where a folder is needed, a full
disk (simulated: a write that fails with ENOSPC names no file)."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path

import pytest

from tests.links import link_to_no_folder
from tests.report.conftest import make_accuracy, make_profile, make_run, make_selection
from us3l.cli import main
from us3l.deploy.export import artifact_name

EXPORT_NAME = artifact_name("cifar_resnet18", 0.25, "onnx", "fp32")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")


def _select(root: Path) -> list[str]:
    return ["select", "--profile", str(make_profile(root)), "--accuracy", str(make_accuracy(root)),
            "--latency-ms", "100", "--quiet"]


def _report(root: Path) -> list[str]:
    make_run(root)
    make_selection(root)
    return ["report", str(root), "--quiet"]


COMMANDS = {"select": _select, "report": _report}


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and err.endswith(lines[0] + "\n"), err
    assert "[Errno" not in err and "Traceback" not in err, err
    return lines[0]


@linux_only
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("out", "named"), [
    ("/proc", "/proc/{file}"),  # a folder that holds no new file: the file is named
    ("/proc/us3l-x", "/proc/us3l-x"),  # a folder that cannot be made there: that folder is named
    ("/proc/us3l-x/{file}", "/proc/us3l-x"),  # the file itself
])
def test_an_out_under_proc_is_the_system_s_words_and_the_path(
    command: str, out: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`us3l report DIR --out /proc` said `error: [Errno 2] No such file or directory: '/proc/report.html'`: a
    FileNotFoundError (or PermissionError) was printed as Python's text, unlike every other OS error."""
    file = {"select": "selection.json", "report": "report.html"}[command]
    argv = COMMANDS[command](tmp_path / "in")
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main([*argv, "--out", out.format(file=file)]) == 1
    assert _one_error_line(capsys) == f"error: No such file or directory: {named.format(file=file)}"
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing new, nothing lost


def _no_room(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")  # as write() and fsync() say it: no file named


def _export(root: Path) -> list[str]:
    return ["export", "--backend", "onnx", "--model", "cifar_resnet18", "--width", "0.25", "--quiet"]


@pytest.mark.parametrize(("command", "file"), [
    ("select", "selection.json"), ("report", "report.html"),
    ("export", f"local/{EXPORT_NAME}/manifest.json"),  # written in the staging folder: named where it was to go
])
def test_a_full_disk_names_the_file(command: str, file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A full disk said `error: No space left on device` and no more: which of the outputs, on which disk?"""
    argv = {**COMMANDS, "export": _export}[command](tmp_path / "in")
    out = tmp_path / "out"
    (out / "keep.txt").parent.mkdir()
    (out / "keep.txt").write_text("mine")
    monkeypatch.setattr(os, "fsync", _no_room)
    assert main([*argv, "--out", str(out)]) == 1
    assert _one_error_line(capsys) == f"error: No space left on device: {out / file}"
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name != ".us3l.lock")
    assert left == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_a_full_disk_while_exporting_names_the_artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The model file is written by the backend into the export's staging folder: no file named at all."""
    real = Path.write_bytes

    def write_bytes(self: Path, data: bytes) -> int:
        if self.name == "model.onnx":
            _no_room()
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    out = tmp_path / "out"
    assert main([*_export(tmp_path), "--out", str(out)]) == 1
    assert _one_error_line(capsys) == f"error: No space left on device: {out / 'local' / EXPORT_NAME}"
    assert not out.exists()  # the folder it made for the export removed again


def test_a_full_disk_while_saving_a_checkpoint_names_the_file(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.eval.conftest import make_run as make_run_folder

    run = make_run_folder(tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    monkeypatch.setattr(os, "fsync", _no_room)
    with pytest.raises(OSError) as info:
        make_run_folder(run)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(run / "checkpoint.safetensors"))
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # the old checkpoint whole, no temporary


def test_a_metrics_line_that_does_not_fit_is_named_and_leaves_no_part(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """On a full disk training said `error: No space left on device` (no file), and the part of the epoch's line
    that fit stayed at the end of metrics.jsonl."""
    from us3l.train.loop import METRICS_FILE, _append_metrics

    (tmp_path / METRICS_FILE).write_text('{"epoch": 1}\n')
    real, calls = os.write, []

    def half_then_full(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(data[: len(data) // 2]))  # a short write, then no room for the rest
        _no_room()
        return 0

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError) as info:
        _append_metrics(tmp_path, {"epoch": 2, "loss": 1.0})
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(tmp_path / METRICS_FILE))
    assert len(calls) == 2 and (tmp_path / METRICS_FILE).read_text() == '{"epoch": 1}\n'
    monkeypatch.undo()
    _append_metrics(tmp_path, {"epoch": 2})
    assert (tmp_path / METRICS_FILE).read_text() == '{"epoch": 1}\n{"epoch": 2}\n'


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_file_where_the_output_s_folder_goes_is_not_a_directory(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`us3l select --out FILE/s.json` (FILE a file of the user's) said `error: File exists: FILE`, as if a folder
    were there."""
    argv = COMMANDS[command](tmp_path / "in")
    mine = tmp_path / "mine"
    mine.write_text("mine")
    out = mine / {"select": "s.json", "report": "r.html"}[command]
    assert main([*argv, "--out", str(out)]) == 1
    assert _one_error_line(capsys) == f"error: Not a directory: {mine}"
    assert mine.read_text() == "mine"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_failed_write_leaves_no_folder_it_made(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """select and report (no folder lock) left the folders they made for a file they could not write."""
    argv = COMMANDS[command](tmp_path / "in")
    monkeypatch.setattr(os, "fsync", _no_room)
    assert main([*argv, "--out", str(tmp_path / "new" / "out")]) == 1
    assert _one_error_line(capsys).startswith(f"error: No space left on device: {tmp_path / 'new' / 'out'}/")
    assert not (tmp_path / "new").exists()


def _disk(free_blocks: int):
    def statvfs(path: object) -> os.statvfs_result:
        return os.statvfs_result((4096, 4096, 1 << 20, free_blocks, free_blocks, 1000, 900, 900, 0, 255))
    return statvfs


@pytest.mark.parametrize("full", [True, False])
def test_torch_save_on_a_full_disk_is_no_space_naming_the_file(full: bool, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save on a full disk raises RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos
    576 vs 534'): a training run ended in `error: RuntimeError: [enforce fail ...] (set US3L_DEBUG=1 ...)`. Only
    a disk that is (nearly) full makes it ENOSPC; elsewhere torch's error stays as it is."""
    import torch

    from us3l.checkpoint import save_checkpoint

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", fail)
    monkeypatch.setattr(os, "statvfs", _disk(0 if full else 10_000))
    with pytest.raises((OSError, RuntimeError)) as info:
        save_checkpoint(tmp_path, backbone_state={"w": torch.zeros(2)}, train_tensors={}, meta={"epoch": 1},
                        train_state={"step": 1})
    if full:
        assert type(info.value) is OSError
        assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(tmp_path / "train_state.pt"))
    else:
        assert type(info.value) is RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_a_runtime_s_writer_on_a_full_disk_names_the_artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """OpenVINO's save_model on a full disk: `error: RuntimeError: basic_ios::clear: iostream error (set
    US3L_DEBUG=1 for the traceback)` (here the model file's writer raises the same kind of error)."""
    real = Path.write_bytes

    def write_bytes(self: Path, data: bytes) -> int:
        if self.name == "model.onnx":
            raise RuntimeError("basic_ios::clear: iostream error")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    monkeypatch.setattr(os, "statvfs", _disk(3))
    out = tmp_path / "out"
    assert main([*_export(tmp_path), "--out", str(out)]) == 1
    assert _one_error_line(capsys) == f"error: No space left on device: {out / 'local' / EXPORT_NAME}"
    assert not out.exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("argv", [["models"], ["models", "--json"], ["version"], ["version", "--json"], ["--version"],
                                  ["devices"]], ids=" ".join)
def test_results_written_to_a_full_stdout_name_stdout(argv: list[str], capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit 2026-12-07: `us3l models > /dev/full` said `error: No space left on device` and not where: the results
    go to stdout, which the line now names as a file is named, in every command (us3l.cli.run_script)."""
    full = open("/dev/full", "w")  # noqa: SIM115 - closed below, its unwritten buffer discarded
    monkeypatch.setattr(sys, "stdout", full)
    assert main(argv) == 1
    assert sys.stdout is full  # the command's stdout wrapper is gone again
    monkeypatch.undo()
    with contextlib.suppress(OSError):  # the close flushes what could not be written: fails again
        full.close()
    assert _one_error_line(capsys) == "error: No space left on device: <stdout>"


def test_a_reader_gone_from_stdout_is_exit_1_without_a_word(capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken pipe (`us3l models | head -0`) stays what it was: exit 1, nothing on stderr (Click's convention)."""
    from us3l.cli import run_script

    r, w = os.pipe()
    os.close(r)
    pipe = os.fdopen(w, "w")
    monkeypatch.setattr(sys, "stdout", pipe)
    assert run_script(lambda: print("result") or 0) == 1
    monkeypatch.undo()
    with contextlib.suppress(OSError):
        pipe.close()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("where", ["--out", "--profile"])
def test_a_symbolic_link_loop_is_the_system_s_words_and_the_path(where: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`us3l select --out LOOP` and `--profile LOOP` (a link that leads back to itself) said `error: RuntimeError:
    Symlink loop from '...' (set US3L_DEBUG=1 for the traceback)`: pathlib's error before Python 3.13, shown as a
    failure of us3l's."""
    argv = _select(tmp_path / "in")
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(loop)
    before = sorted(tmp_path.rglob("*"))
    if where == "--profile":
        argv[argv.index("--profile") + 1] = str(loop)
    assert main([*argv, where, str(loop)] if where == "--out" else [*argv, "--out", str(tmp_path / "o")]) == 1
    assert _one_error_line(capsys) == f"error: Too many levels of symbolic links: {loop}"
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("link", ["loop", "dangling"])
def test_an_out_that_is_a_link_to_no_folder_is_what_following_it_gives(
    command: str, link: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`us3l report DIR --out LINK` (a link that leads back to itself, or to a missing target) said `error: Not a
    directory: LINK`: mkdir's `File exists` read as a file in the way."""
    argv = COMMANDS[command](tmp_path / "in")
    out = tmp_path / "out"
    why = link_to_no_folder(out, link)
    before = sorted(tmp_path.rglob("*"))
    assert main([*argv, "--out", str(out)]) == 1
    assert _one_error_line(capsys) == f"error: {why}"
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize(("argv", "name", "writes"), [
    (["profile", "--device", "cpu", "--model", "cifar_resnet18", "--widths", "1", "--max-seconds", "0.1"], "p.json",
     "MODEL-DEVICE-BACKEND-PRECISION.json and .csv"),
    (["profile", "--device", "cpu", "--model", "cifar_resnet18", "--widths", "1", "--max-seconds", "0.1"], "p.CSV",
     "MODEL-DEVICE-BACKEND-PRECISION.json and .csv"),
    (["export", "--model", "cifar_resnet18", "--width", "0.25", "--backend", "onnx"], "model.onnx",
     "DEVICE/MODEL-wW-BACKEND-PRECISION/ with the model file and manifest.json"),
    (["export", "--model", "cifar_resnet18", "--width", "0.25", "--backend", "openvino"], "model.xml",
     "DEVICE/MODEL-wW-BACKEND-PRECISION/ with the model file and manifest.json"),
], ids=["profile-json", "profile-csv", "export-onnx", "export-xml"])
def test_an_out_named_like_an_output_file_is_refused_naming_the_folder(
        argv: list[str], name: str, writes: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """2026-12-08: ``us3l profile --out p.json`` and ``us3l export --out model.onnx`` (a file name where the folder
    goes) made the folders p.json/ and model.onnx/local/... and wrote into them. A folder of that name that exists is
    used (a folder is a folder, whatever its name)."""
    out = tmp_path / "results" / name
    assert main([*argv, "--out", str(out)]) == 1
    assert capsys.readouterr().err == (f"error: --out must be a folder (the command writes {writes} in it), got the "
                                       f"file name {out}: give --out {out.parent}\n")
    assert not (tmp_path / "results").exists()
