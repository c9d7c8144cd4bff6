"""Exclusive folder locks between real processes: the second fails at once naming the holder; a crash frees."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.links import link_to_no_folder
from us3l.errors import US3LError
from us3l.locking import LOCK_FILE, acquire, folder_lock, release

HOLD = """
import sys, time
from us3l.locking import folder_lock
with folder_lock(sys.argv[1], "run folder"):
    print("locked", flush=True)
    time.sleep(120)
"""


def _holder(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_fails_then_succeeds_after_a_crash(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    proc = _holder(folder)
    try:
        with pytest.raises(US3LError) as info:
            with folder_lock(folder, "run folder"):
                pass
        assert str(info.value) == (
            f"run folder {folder} is in use by another us3l process (pid {proc.pid}); wait for it to finish "
            "or choose another folder"
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no clean-up runs: the kernel releases the lock
        proc.wait()
    with folder_lock(folder) as key:
        assert key == folder.resolve() and (folder / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_reentrant_within_one_process(tmp_path: Path) -> None:
    with folder_lock(tmp_path / "out"):
        with folder_lock(tmp_path / "out"):
            pass
        proc = subprocess.run(
            [sys.executable, "-c", HOLD, str(tmp_path / "out")], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 1 and "is in use by another us3l process" in proc.stderr  # still held here
    holder = _holder(tmp_path / "out")  # released by the outermost exit: another process takes it now
    holder.kill()
    holder.wait()


@pytest.mark.parametrize("link", ["symlink", "hardlink", "fifo"])
def test_a_planted_lock_file_is_refused_and_its_target_untouched(link: str, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("IMPORTANT\n")
    run = tmp_path / "run"
    run.mkdir()
    lock = run / LOCK_FILE
    if link == "symlink":
        lock.symlink_to(victim)
    elif link == "hardlink":
        os.link(victim, lock)
    else:
        os.mkfifo(lock)
    with pytest.raises(US3LError, match=r"cannot use the lock file .*\.us3l\.lock: .*; remove it and retry"):
        acquire(run)
    assert victim.read_text() == "IMPORTANT\n"


def test_a_folder_the_lock_created_goes_again_when_nothing_was_written(tmp_path: Path) -> None:
    new = tmp_path / "a" / "b" / "run"
    with folder_lock(new):
        assert (new / ".us3l.lock").is_file()
    assert not (tmp_path / "a").exists()  # the run folder and the parents the lock made are gone
    with folder_lock(new):
        (new / "result.json").write_text("{}")
    assert sorted(p.name for p in new.iterdir()) == [".us3l.lock", "result.json"]  # written to: kept
    mine = tmp_path / "mine"
    mine.mkdir()
    with folder_lock(mine):
        pass
    assert mine.is_dir()  # a folder that existed before stays


def test_a_failed_start_leaves_no_empty_run_folder(tmp_path: Path, capsys) -> None:
    from us3l.cli import main

    (tmp_path / "data" / "train" / "a").mkdir(parents=True)  # a folder data set without images
    (tmp_path / "data" / "test" / "a").mkdir(parents=True)
    rc = main(["train", "--data", f"folder:{tmp_path / 'data'}", "--out", str(tmp_path / "runs" / "r"), "--quiet"])
    assert rc == 1 and "error: no images found under" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_folder_that_cannot_be_created_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(US3LError, match=r"^cannot create run folder .*/file/run: Not a directory$"):
        acquire(tmp_path / "file" / "run", "run folder")
    with pytest.raises(US3LError, match=r"^cannot create run folder /proc/us3l-no/run: No such file or directory$"):
        acquire("/proc/us3l-no/run", "run folder")


@pytest.mark.parametrize(
    ("code", "strerror"), [(errno.EROFS, "Read-only file system"), (errno.EACCES, "Permission denied"),
                           (errno.ENOENT, "No such file or directory"),  # a folder of /proc: no file can be made
                           (errno.ENOSPC, "No space left on device")]  # no inode left
)
def test_a_folder_that_cannot_be_written_is_named_as_such(
    code: int, strerror: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red-team: a read-only --out said "remove the lock file and retry", which cannot help."""
    import us3l.locking as locking

    def refuse(*args: object, **kwargs: object) -> int:
        raise OSError(code, strerror)

    folder = tmp_path / "ro"
    folder.mkdir()
    monkeypatch.setattr(locking.os, "open", refuse)
    with pytest.raises(US3LError) as err:
        acquire(folder, "export folder")
    assert str(err.value) == f"export folder {folder} is not writable ({strerror}): choose a folder you can write to"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_proc_as_the_folder_is_named_not_writable() -> None:
    """`us3l eval ... --out /proc` (any locking command) said `cannot use the lock file /proc/.us3l.lock: No such
    file or directory; remove it and retry`: there is no such file to remove."""
    with pytest.raises(US3LError) as err:
        acquire("/proc", "output folder")
    assert str(err.value) == ("output folder /proc is not writable (No such file or directory): choose a folder you "
                              "can write to")


def test_a_full_disk_where_the_pid_does_not_fit_leaves_nothing(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk: the lock file could be made, its PID not written; the error named no file, and the folder the
    lock made stayed, with the empty lock file, held open by the failed process."""
    import us3l.locking as locking

    def no_room(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    folder = tmp_path / "new" / "out"
    monkeypatch.setattr(locking.os, "write", no_room)
    with pytest.raises(US3LError) as err:
        acquire(folder, "profile folder")
    assert str(err.value) == (f"profile folder {folder} is not writable (No space left on device): choose a folder "
                              "you can write to")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    release(acquire(folder))  # nothing held: the folder can be locked again
    assert not (tmp_path / "new").exists()


def test_an_existing_lock_file_that_cannot_be_opened_says_remove_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import us3l.locking as locking

    def refuse(*args: object, **kwargs: object) -> int:
        raise OSError(errno.EACCES, "Permission denied")

    (tmp_path / LOCK_FILE).write_text("1\n")  # e.g. another user's lock file in a shared, writable folder
    monkeypatch.setattr(locking.os, "open", refuse)
    with pytest.raises(US3LError, match=r"^cannot use the lock file .*: Permission denied; remove it and retry$"):
        acquire(tmp_path)


def test_a_lock_file_removed_between_open_and_lock_is_not_the_lock_held(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process that wrote nothing releases the folder it created: it removes the lock file and the folder,
    then unlocks. Opened just before and locked just after, that removed file was the 'lock' this process held,
    for a folder that was gone: the command then failed writing into it, and a third process could lock the
    folder again at the same time. The removal happens here between the open and the lock."""
    import us3l.locking as locking

    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text("12345\n")  # the other process's lock file (it is done with it)
    original = locking._open_lock_file
    opened: list[int] = []

    def open_then_other_process_releases(lock_path: Path, what: str = "folder") -> int:
        fd = original(lock_path, what)
        if not opened:  # the other process's release, just after our open
            lock_path.unlink()
            lock_path.parent.rmdir()
        opened.append(fd)
        return fd

    monkeypatch.setattr(locking, "_open_lock_file", open_then_other_process_releases)
    with folder_lock(run, "run folder") as key:
        assert key == run.resolve() and run.is_dir() and len(opened) == 2
        assert (run / LOCK_FILE).read_text().strip() == str(os.getpid())
        (run / "result.json").write_text("{}")  # the command's files land in the folder it locked
        proc = subprocess.run([sys.executable, "-c", HOLD, str(run)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "is in use by another us3l process" in proc.stderr


@pytest.mark.parametrize("link", ["loop", "dangling"])
def test_a_link_to_no_folder_is_named_by_what_following_it_gives(link: str, tmp_path: Path) -> None:
    """`us3l eval --out LINK` (a link that leads back to itself, or to a missing target) said `cannot create output
    folder LINK: File exists`, as if a folder were there."""
    path = tmp_path / "out"
    why = link_to_no_folder(path, link)
    with pytest.raises(US3LError) as info:
        acquire(path, "output folder")
    assert str(info.value) == f"cannot create output folder {path}: {why}"
    assert not (tmp_path / "missing").exists()
