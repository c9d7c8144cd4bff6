"""The README walkthrough run in the repository root leaves nothing for ``git status`` to list."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.script_module import ROOT


def _walkthrough_outputs() -> list[str]:
    """What the README's ``$ us3l ...`` sample commands write in the folder they run in: every ``--out`` (a
    folder), ``selection.json`` (+ ``selection.png`` with ``--plot``) of a select without ``--out``, and the
    ``report.html`` of ``us3l report .`` (eval writes into the run folder, train's ``--out``)."""
    outputs: set[str] = set()
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("$ us3l "):
            continue
        argv = line.split(";")[0].split()
        if "--out" in argv:
            outputs.add(argv[argv.index("--out") + 1].rstrip("/") + "/")
        elif argv[2] == "select":
            outputs.update(["selection.json", *(["selection.png"] if "--plot" in argv else [])])
        elif argv[2:4] == ["report", "."]:
            outputs.add("report.html")
    return sorted(outputs)


def test_the_readme_walkthrough_outputs_are_ignored_by_git() -> None:
    """.gitignore listed quickstart/, profiles/ and artifacts/ but not run/, selection.json, strict/, schedule/,
    report.html, ...: following the README from the repository root left a checkpoint and a dozen results
    untracked, one `git add -A` away from a commit."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    outputs = _walkthrough_outputs()
    assert {"run/", "selection.json", "report.html", "quickstart/"} <= set(outputs)
    res = subprocess.run(["git", "check-ignore", "--stdin", "--verbose", "--non-matching"], cwd=ROOT,
                         input="\n".join(outputs) + "\n", capture_output=True, text=True, check=False)
    not_ignored = [line.split("\t", 1)[1] for line in res.stdout.splitlines() if line.startswith("::")]
    assert not_ignored == []
