"""us3l.profiler.provenance: the line every benchmark prints first (when, which commit, which machine)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from us3l.profiler.provenance import SOURCE, git_commit, provenance_line


def test_the_commit_of_this_checkout_and_none_outside_one(tmp_path: Path) -> None:
    here = git_commit(SOURCE)
    assert re.fullmatch(r"[0-9a-f]{40}", here["commit"] or "") and isinstance(here["dirty"], bool)
    assert git_commit(tmp_path) == {"commit": None, "dirty": None}


def test_the_line_names_the_time_commit_cpu_cores_and_load(tmp_path: Path) -> None:
    now = dt.datetime(2026, 12, 6, 2, 40, tzinfo=dt.timezone.utc)
    line = provenance_line(now)
    commit = git_commit()["commit"]
    assert line.startswith(f"# 2026-12-06 02:40 UTC, commit {commit[:10]}")
    assert re.search(r", \d+ CPUs, load \d+\.\d\d \d+\.\d\d \d+\.\d\d$", line), line
    assert provenance_line(now, tmp_path).startswith("# 2026-12-06 02:40 UTC, commit unknown, ")
