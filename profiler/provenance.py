"""Where and when a benchmark ran: the git commit of the us3l code that ran, the machine and the UTC time.

Every script in ``benchmarks/`` prints :func:`provenance_line` before its results (and the ones that write a
result file store :func:`git_commit` in it), so a recorded output names the code, the machine and the moment it
came from; README.md's benchmark table says the scripts do.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path
from typing import Any

from us3l.profiler.fingerprint import cpu_info

#: The checkout this us3l was imported from (``git`` finds the repository from here; an installed us3l has none).
SOURCE = Path(__file__).resolve().parent


def git_commit(where: Path = SOURCE) -> dict[str, Any]:
    """``{"commit": full hash or None, "dirty": tracked files changed (None when unknown)}`` of the repository
    holding ``where``; both None outside a git checkout or without git."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def provenance_line(now: dt.datetime | None = None, where: Path = SOURCE) -> str:
    """``# 2026-12-06 02:40 UTC, commit 62d0777a15 (uncommitted changes), Intel(R) Xeon(R) Processor, 2 CPUs,
    load 1.20 1.05 0.98``: the first line of a benchmark's output."""
    now = now or dt.datetime.now(dt.timezone.utc)
    git = git_commit(where)
    commit = (git["commit"] or "unknown")[:10] + (" (uncommitted changes)" if git["dirty"] else "")
    cpu = cpu_info()
    cores = cpu.get("usable_cores") or cpu.get("logical_cores")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"# {now:%Y-%m-%d %H:%M} UTC, commit {commit}, {cpu['model']}, {cores} CPUs, load {load}"


#: The instruction-set flags that decide INT8 and bfloat16 speed on x86 (``cpu_isa``)
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_tile")


def cpu_isa() -> str:
    """The INT8-relevant instruction-set flags of this CPU (``/proc/cpuinfo``), and its model name: the line an INT8
    benchmark prints (``AMD EPYC; avx2; int8 dot-product instructions (VNNI/AMX): no``)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    have = [f for f in ISA_FLAGS if f in flags]
    vnni = any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
    return f"{name}; {' '.join(have) or 'no AVX2'}; int8 dot-product instructions (VNNI/AMX): {'yes' if vnni else 'no'}"
