"""``threads: auto``: the idle cores of /proc/stat at the start of a run, resolved once and recorded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from us3l.commands.quickstart import _same_training
from us3l.errors import US3LError
from us3l.train import run_training, threads
from us3l.train.config import default_config_path, make_config, resolve_config

from .conftest import TINY


def test_proc_stat_parsing(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 50 800 40 0 5 0 0 0\ncpu0 50 2 25 400 20 0 2 0 0 0\n", encoding="ascii")
    assert threads._cpu_times(stat) == (1000, 840)  # idle = idle + iowait; guest is already in user
    for bad in ("", "intr 1 2\n", "cpu a b c d e\n"):
        stat.write_text(bad, encoding="ascii")
        assert threads._cpu_times(stat) is None
    assert threads._cpu_times(tmp_path / "missing") is None
    assert threads.idle_cores(0.0, tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("idle", "processes", "expected"),
    [(1.95, 1, 2), (1.8, 1, 2), (1.6, 1, 1), (0.9, 1, 1), (0.0, 1, 1), (4.0, 1, 2), (2.0, 2, 1), (None, 1, 2)],
)
def test_auto_threads(idle: float | None, processes: int, expected: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A core counts as free when at least 75 % idle; never above the usable cores (2 here), never below 1;
    shared among the node's training processes; all usable cores where /proc/stat cannot be read."""
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "idle_cores", lambda: None)
    assert threads.auto_threads(processes, idle=idle) == expected


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="Linux /proc/stat")
def test_idle_cores_is_measured_here() -> None:
    free = threads.idle_cores(0.1)
    assert free is not None and 0.0 <= free <= (os.cpu_count() or 1)
    assert 1 <= threads.auto_threads() <= threads.usable_cores()


def test_the_config_takes_auto_and_the_default_uses_it() -> None:
    assert make_config({"threads": "auto"}).threads == "auto"
    assert resolve_config(default_config_path(), {}).threads == "auto"
    with pytest.raises(US3LError, match=r"^config 'threads' must be a whole number \(or null\), got 'two'$"):
        make_config({"threads": "two"})


def test_a_run_records_the_resolved_count(tiny_folder: Path, tmp_path: Path) -> None:
    over = {**TINY, "method": "naive_simsiam", "epochs": 1, "data": f"folder:{tiny_folder}", "out": str(tmp_path / "r"),
            "threads": "auto", "quiet": True}
    res = run_training(resolve_config(None, over))
    saved = yaml.safe_load((res.run_dir / "config.yaml").read_text())
    assert isinstance(saved["threads"], int) and 1 <= saved["threads"] <= threads.usable_cores()


def test_quickstart_reuses_a_run_trained_with_auto() -> None:
    wanted = make_config({"threads": "auto"}).to_dict()
    assert _same_training({**wanted, "threads": 2}, wanted)  # auto matches whatever count it resolved to
    pinned = make_config({"threads": 1}).to_dict()
    assert not _same_training({**pinned, "threads": 2}, pinned)


def _applied_count(where: str, threads: int, monkeypatch: pytest.MonkeyPatch) -> object:
    """What each place that applies a thread count in this process passes on (torch's setter recorded, not called)."""
    import torch

    applied: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", applied.append)
    if where == "set_threads":
        from us3l.cli_output import set_threads

        set_threads(threads)
        return applied[-1]
    if where == "resolve_threads":
        from us3l.profiler.timers import resolve_threads

        return resolve_threads(threads)
    if where == "onnxruntime":
        from us3l.deploy.backends.onnx import session_options

        return session_options(threads).intra_op_num_threads
    from us3l.deploy.backends.openvino import compile_config

    return compile_config(threads, "CPU", "fp32")["INFERENCE_NUM_THREADS"]


@pytest.mark.parametrize("where", ["set_threads", "resolve_threads", "onnxruntime", "openvino"])
def test_a_thread_count_this_machine_cannot_start_is_one_line(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_THREADS (65536) bounds a count's value, a remote device's included; applied here, 65536 threads made
    libgomp fail to create them and the process segfault (2026-12-07). A count applied in this process is at most
    1024, or the usable cores where a machine has more."""
    from us3l.errors import US3LError
    from us3l.train import threads as th

    monkeypatch.setattr(th, "usable_cores", lambda: 2)
    assert _applied_count(where, 2, monkeypatch) == 2
    assert _applied_count(where, 1024, monkeypatch) == 1024
    with pytest.raises(US3LError) as exc:
        _applied_count(where, 65536, monkeypatch)
    assert str(exc.value) == ("--threads 65536 is more threads than this machine can start: at most 1024 here (1024, "
                              "or its usable cores where more; it has 2)")
    monkeypatch.setattr(th, "usable_cores", lambda: 4096)  # a machine with more cores than the bound
    assert _applied_count(where, 4096, monkeypatch) == 4096


def test_a_config_thread_count_this_machine_cannot_start_is_one_line(tiny_folder: Path, tmp_path: Path) -> None:
    """`us3l train --threads 65536` (or the config's threads) died in libgomp (a segfault) at its first parallel
    region: now one line, and the run folder it had begun is removed."""
    out = tmp_path / "r"
    over = {**TINY, "method": "naive_simsiam", "epochs": 1, "data": f"folder:{tiny_folder}", "out": str(out),
            "threads": 65536, "quiet": True}
    with pytest.raises(US3LError, match=r"^threads 65536 is more threads than this machine can start: at most "):
        run_training(resolve_config(None, over))
    assert not out.exists()
