"""Atomic writes and temporary folders follow the process umask (0644/0755 under 022, 0600/0700 under 077)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from us3l.errors import US3LError
from us3l.io import (
    atomic_write,
    atomic_write_all,
    atomic_write_json,
    atomic_write_text,
    check_png_replaceable,
    is_us3l_png,
    process_umask,
    read_input_text,
    read_json,
    temp_dir,
    temp_file,
)


@pytest.fixture(params=[(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)])
def umask(request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    mask, fmode, dmode = request.param
    old = os.umask(mask)
    try:
        yield fmode, dmode
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def test_process_umask_reads_without_changing(umask: tuple[int, int]) -> None:
    fmode, _ = umask
    assert 0o666 & ~process_umask() == fmode
    assert 0o666 & ~process_umask() == fmode  # unchanged by reading it


def test_atomic_writes_follow_the_umask(tmp_path: Path, umask: tuple[int, int]) -> None:
    fmode, dmode = umask
    a = atomic_write_json(tmp_path / "a.json", {"x": 1})
    b = atomic_write_text(tmp_path / "sub" / "b.txt", "hi")

    def replace_by_rename(p: Path) -> None:  # a writer that creates its own file and renames it over p
        other = p.with_name(p.name + ".other")
        fd = os.open(other, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.replace(other, p)

    c = atomic_write(tmp_path / "c.bin", replace_by_rename)
    for p in (a, b, c):
        assert _mode(p) == fmode, p
    assert _mode(tmp_path / "sub") == dmode
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.json", "c.bin", "sub"]  # no temporary left


def test_temp_file_and_dir_follow_the_umask(tmp_path: Path, umask: tuple[int, int]) -> None:
    fmode, dmode = umask
    assert _mode(temp_file(tmp_path, ".x.")) == fmode
    assert _mode(temp_dir(tmp_path, ".staging-")) == dmode


def test_input_files_that_cannot_be_read_are_one_line_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"a": 1}', encoding="utf-8")
    assert read_input_text(good, "accuracy file") == '{"a": 1}' and read_json(good) == {"a": 1}
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe{}")
    cases = {
        tmp_path / "missing.json": f"accuracy file not found: {tmp_path / 'missing.json'}",
        tmp_path: f"accuracy file {tmp_path} is not a regular file",
        Path("/dev/null"): "accuracy file /dev/null is not a regular file",
        bad: f"accuracy file {bad} is not UTF-8 text: 'utf-8' codec can't decode byte 0xff in position 0",
    }
    for path, message in cases.items():
        for read in (read_input_text, read_json):
            with pytest.raises(US3LError) as err:
                read(path, "accuracy file")
            assert str(err.value).startswith(message) and "\n" not in str(err.value)
    (tmp_path / "text.json").write_text("not json", encoding="utf-8")
    with pytest.raises(US3LError, match=r"^accuracy file .*text.json is not valid JSON: Expecting value"):
        read_json(tmp_path / "text.json", "accuracy file")
    (tmp_path / "p.csv").write_text("width,p50_ms\n0.5,1.0\n", encoding="utf-8")
    with pytest.raises(US3LError, match=r"^profile .*p.csv is not valid JSON: Expecting value"):
        read_json(tmp_path / "p.csv", "profile")  # no JSON beside it: nothing to point to
    (tmp_path / "p.json").write_text("{}", encoding="utf-8")
    with pytest.raises(US3LError, match=r"^profile .*p\.csv is the CSV table of .*p\.json: pass the \.json$"):
        read_json(tmp_path / "p.csv", "profile")


@pytest.mark.parametrize(("text", "why"), [
    ('{"threads": ' + "9" * 5000 + "}", "Exceeds the limit"),  # json raises a plain ValueError
    ("[" * 100_000 + "]" * 100_000, "maximum recursion depth"),  # RecursionError
])
def test_json_that_python_refuses_to_decode_is_not_valid_json(tmp_path: Path, text: str, why: str) -> None:
    """A corrupt file whose decoding fails outside ``JSONDecodeError`` is the same one line naming the file
    (``error: Exceeds the limit (4300 digits) ...`` and ``error: RecursionError: ...`` named no file)."""
    path = tmp_path / "p.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(US3LError, match=rf"^profile file .*p\.json is not valid JSON: {why}") as err:
        read_json(path, "profile file")
    assert "\n" not in str(err.value)


def test_an_input_file_too_large_to_be_ours_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "profile.json"
    big.write_bytes(b'{"a": "' + b"x" * 100 + b'"}')
    assert read_json(big, "profile file") == {"a": "x" * 100}
    with pytest.raises(US3LError) as err:
        read_input_text(big, "profile file", max_bytes=64)
    assert str(err.value) == f"profile file {big} is larger than 0 MiB; it is not a us3l profile file"
    sparse = tmp_path / "huge.json"  # 8 GiB on paper, no disk used: refused from its size, never read
    with open(sparse, "wb") as fh:
        fh.truncate(8 << 30)
    with pytest.raises(US3LError, match=r"^selection .*huge.json is larger than 64 MiB; it is not a us3l selection$"):
        read_json(sparse, "selection")


def test_line_ends_read_as_text_mode_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "device.toml"
    path.write_bytes(b'name = "a"\r\nx = 1\rtail = 2\n')
    assert read_input_text(path) == 'name = "a"\nx = 1\ntail = 2\n'


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_input_file(tmp_path: Path) -> None:
    locked = tmp_path / "locked.toml"
    locked.write_text("x = 1", encoding="utf-8")
    locked.chmod(0)
    with pytest.raises(US3LError, match=r"^cannot read device file .*locked.toml: Permission denied$"):
        read_input_text(locked, "device file")


def test_files_written_together_are_replaced_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile's JSON and CSV: an interrupt between the two renames left a new JSON beside an old CSV."""
    import signal

    import us3l.io

    a, b = tmp_path / "p.json", tmp_path / "p.csv"
    a.write_text("old a")
    b.write_text("old b")

    def fail(p: Path) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):  # the second file cannot be written: neither is replaced
        atomic_write_all([(a, lambda p: p.write_text("new a")), (b, fail)])
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["p.csv", "p.json"]

    real_replace = os.replace

    def replace_then_ctrl_c(src: Path, dst: Path) -> None:  # Ctrl-C lands right after the first rename
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(us3l.io.os, "replace", replace_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):  # delivered, once both are renamed
        atomic_write_all([(a, lambda p: p.write_text("new a")), (b, lambda p: p.write_text("new b"))])
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["p.csv", "p.json"]


def test_a_folder_in_the_place_of_the_file_is_named_not_the_temporary(tmp_path: Path) -> None:
    """Red-team 2026-12-05: `us3l report DIR` with a folder DIR/report.html said `Is a directory:
    DIR/.report.html.ckpsig7h.tmp`, a temporary file that no longer existed."""
    (tmp_path / "report.html").mkdir()
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "report.html", "x")
    assert info.value.filename == str(tmp_path / "report.html")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["report.html"]


def test_a_folder_that_refuses_the_temporary_is_named_by_the_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`us3l select --out READ_ONLY_DIR` said `error: [Errno 13] Permission denied: 'DIR/.selection.json.x1y2.tmp'`,
    a temporary file that was never created; the error now names the file asked for (root ignores a folder's
    mode, so the refusal is simulated where mkstemp makes the temporary)."""
    import errno
    import tempfile

    def refuse(*args: object, dir: str = "", prefix: str = "", **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}x1y2.tmp")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as info:
        atomic_write_text(tmp_path / "selection.json", "x")
    assert info.value.filename == str(tmp_path / "selection.json")
    assert list(tmp_path.iterdir()) == []


def test_a_byte_order_mark_is_not_part_of_the_text(tmp_path: Path) -> None:
    """A profile, selection or device file saved by an editor that writes a UTF-8 BOM first was refused:
    `is not valid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig)`, `is not valid TOML: Invalid statement
    (at line 1, column 1)`."""
    from us3l.devices.spec import load_device_file

    path = tmp_path / "p.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"a": 1}')
    assert read_input_text(path) == '{"a": 1}' and read_json(path) == {"a": 1}
    dev = tmp_path / "dev.toml"
    dev.write_bytes(b"\xef\xbb\xbf" + b'name = "bomdev"\nbackends = ["onnx"]\n')
    assert load_device_file(dev).name == "bomdev"


def test_a_document_holding_nan_is_refused_and_the_old_file_kept(tmp_path: Path) -> None:
    """`json.dumps` writes NaN/Infinity tokens, which are not JSON (jq and JavaScript refuse the file): a result
    document holding one is refused in one line naming the file and the place, and nothing is replaced."""
    from us3l.errors import US3LError
    from us3l.io import atomic_write_json, json_text

    path = tmp_path / "accuracy.json"
    path.write_text("{}\n")
    doc = {"widths": [{"width": 1.0, "knn_top1": 0.5}, {"width": 0.5, "embedding_std": float("nan")}]}
    with pytest.raises(US3LError) as info:
        atomic_write_json(path, doc)
    assert str(info.value) == (f"not writing {path}: widths[1].embedding_std is not a finite number, which JSON "
                               "cannot hold")
    assert path.read_text() == "{}\n" and [p.name for p in tmp_path.iterdir()] == ["accuracy.json"]
    with pytest.raises(US3LError, match=r"^not writing the JSON document: the value is not a finite number"):
        json_text(float("-inf"))
    assert json_text({"a": [1.5, None]}) == '{\n  "a": [\n    1.5,\n    null\n  ]\n}\n'



def _figure() -> object:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    return fig


def _png(software: str | None) -> bytes:
    """A PNG drawn with matplotlib directly: ``software`` its Software text (None: none, as PIL writes; "default":
    matplotlib's own ``Matplotlib version…``, what us3l wrote before it marked its plots)."""
    import io

    buf = io.BytesIO()
    _figure().savefig(buf, format="png", **({} if software == "default" else {"metadata": {"Software": software}}))
    return buf.getvalue()


def test_only_a_png_us3l_wrote_is_replaced_by_a_plot(tmp_path: Path) -> None:
    """Red-team 2026-12-05: --plot replaced any file at its PNG's path; us3l's PNGs now carry Software=us3l."""
    from us3l.report.plots import png_bytes, save_png

    ours = png_bytes(_figure())
    assert is_us3l_png(ours) and is_us3l_png(ours[:100]) and ours == png_bytes(_figure())  # reproducible
    for other in (_png(None), _png("default"), _png("us3l 1.0"), b"us3l", b"", ours[8:], ours[:40]):
        assert not is_us3l_png(other)
    path = tmp_path / "plot.png"
    for mine in (_png(None), _png("default"), b"my notes\n"):  # no tag, matplotlib's own, not a PNG at all
        path.write_bytes(mine)
        with pytest.raises(US3LError) as info:
            check_png_replaceable(path)
        assert str(info.value) == f"refusing to replace {path}: it is not a us3l plot; choose another --out"
        assert path.read_bytes() == mine
    # an old us3l plot (matplotlib's tag, or none: select and eval wrote none before plots were marked) is replaced
    # only beside the output it was drawn from; a file that is not a PNG never
    for old in (_png("default"), _png(None)):
        path.write_bytes(old)
        check_png_replaceable(path, beside_ours=True)
    path.write_bytes(b"my notes\n")
    with pytest.raises(US3LError):
        check_png_replaceable(path, beside_ours=True)
    save_png(_figure(), path)
    check_png_replaceable(path)
    check_png_replaceable(tmp_path / "absent.png")


def test_a_write_removes_the_temporaries_a_killed_writer_left(tmp_path: Path) -> None:
    """A writer SIGKILLed between its temporary and its rename left `.accuracy.json.<random>.tmp` beside the file
    for good (no `finally` runs); the temporaries carry the writer's PID now, and the next write of that file
    removes the ones whose writer is gone, and nothing else."""
    import subprocess
    import sys

    from us3l.io import atomic_write_json

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    left = tmp_path / f".accuracy.json.{dead}-k1ll3d.tmp"
    keep = [tmp_path / f".accuracy.json.{os.getpid()}-l1ve.tmp",  # a live writer's (this process)
            tmp_path / ".accuracy.json.n0p1d.tmp",  # an older name without a PID: whose it is, unknown
            tmp_path / f".profile.json.{dead}-0th3r.tmp"]  # another file's
    for p in (left, *keep):
        p.write_text("{partial")
    link = tmp_path / f".accuracy.json.{dead}-l1nk.tmp"
    link.symlink_to(keep[0])  # not a file a writer made
    atomic_write_json(tmp_path / "accuracy.json", {"a": 1})
    assert not left.exists() and all(p.exists() for p in keep) and link.is_symlink()
    atomic_write_json(tmp_path / "accuracy.json", {"a": 2})  # its own temporary: renamed, none left
    assert sorted(p.name for p in tmp_path.glob(".accuracy.json.*.tmp")) == sorted(
        [keep[0].name, keep[1].name, link.name])


def test_a_signal_just_after_the_temporary_is_made_leaves_no_temporary(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """CI 2026-12-06: `us3l train` SIGTERMed while it wrote config.yaml left `.config.yaml.<pid>-<random>.tmp`: the
    signal landed after mkstemp made the file and before the writer listed it for removal. Both are one step now:
    the signal is held until the file is listed, then raised, and the file removed. (The signal is raised by hand
    the moment the temporary exists; the handler is this test's, as the CLI's turns SIGTERM into an exception.)"""
    import us3l.io as io
    from tests.signals import sigterm_once_a_temporary_exists

    with sigterm_once_a_temporary_exists(io, monkeypatch):
        atomic_write_text(tmp_path / "config.yaml", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["a" * 250 + ".json", "é" * 120 + ".json"])  # 255 bytes at most, as on ext4
def test_a_file_name_near_the_length_limit_is_written_and_its_dead_temporaries_removed(tmp_path: Path,
                                                                                       name: str) -> None:
    """Red-team 2026-12-07: `select --out <245 characters>.json` did all its work, then failed with "File name too
    long": the temporary's name added about 20 characters to the file's. A long name's temporary is named after
    its first bytes and a digest of the whole (``temp_stem``), within the limit, and found again for clean-up."""
    import subprocess
    import sys

    from us3l.io import TEMP_STEM_MAX, atomic_write_json, temp_stem

    assert len(os.fsencode(name)) <= 255
    stem = temp_stem(name)
    assert len(os.fsencode(stem)) <= TEMP_STEM_MAX and stem != name and temp_stem("a.json") == "a.json"
    assert temp_stem(name[:-1] + "x") != stem  # another file's temporaries are told apart by the digest
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    left = tmp_path / f".{stem}.{dead}-k1ll3d.tmp"
    left.write_text("{partial")
    atomic_write_json(tmp_path / name, {"a": 1})
    assert (tmp_path / name).is_file() and not left.exists()
    assert [p.name for p in tmp_path.iterdir()] == [name]
