"""tests/script_runs.py: command lines run in one interpreter report what ``python SCRIPT ARGS`` would."""

from __future__ import annotations

from pathlib import Path

from tests.script_runs import ScriptRun, run_scripts

SCRIPT = '''import os, sys, warnings
warnings.warn("at import")
print("argv", sys.argv[1:], "path0", sys.path[0] == os.path.dirname(os.path.abspath(__file__)))
os.write(2, b"from C\\n")
what = sys.argv[1]
if what == "raise":
    raise ValueError("boom")
if what == "text":
    sys.exit("a message")
if __name__ == "__main__":
    sys.exit(int(what))
'''


def test_each_command_line_gets_its_status_and_its_own_output(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "s.py").write_text(SCRIPT)
    runs = run_scripts([["bin/s.py", "0"], ["bin/s.py", "3"], ["bin/s.py", "raise"], ["bin/s.py", "text"]],
                       cwd=tmp_path)
    assert [r.returncode for r in runs] == [0, 3, 1, 1]
    warning = 'bin/s.py:2: UserWarning: at import\n  warnings.warn("at import")\n'
    # stdout: its own line only, argv as typed, the script's folder first on sys.path; stderr: Python's and C's
    assert runs[0] == ScriptRun(0, "argv ['0'] path0 True\n", warning + "from C\n")
    assert runs[1] == ScriptRun(3, "argv ['3'] path0 True\n", warning + "from C\n")
    assert runs[2].stderr.startswith(warning + "from C\nTraceback (most recent call last):")
    assert runs[2].stderr.endswith("ValueError: boom\n")
    assert runs[3].stderr == warning + "from C\na message\n"
