"""``./quickstart.sh``: the caller's folder is where its paths are read (a stand-in environment: the real one
installs torch)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_sh_reads_paths_from_the_callers_folder(tmp_path: Path) -> None:
    """Red-team 2026-12-05: the script changed into the repository before running, so `--out results` or
    `--config mine.yaml` given from another folder were read relative to the repository (the output landed
    there, the config was not found)."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "quickstart.sh", repo / "quickstart.sh")
    (repo / "scripts" / "setup-env.sh").write_text("#!/usr/bin/env bash\ntrue\n")
    (repo / "scripts" / "setup-env.sh").chmod(0o755)
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "activate").write_text(f'PATH="{bin_dir}:$PATH"\n')
    (bin_dir / "us3l").write_text('#!/usr/bin/env bash\necho "cwd=$PWD args=$*"\n')
    (bin_dir / "us3l").chmod(0o755)
    caller = tmp_path / "work"
    caller.mkdir()
    out = subprocess.run(["bash", str(repo / "quickstart.sh"), "--out", "results"], cwd=caller, capture_output=True,
                         text=True, check=True).stdout
    assert out == f"cwd={caller} args=quickstart --out results\n"
