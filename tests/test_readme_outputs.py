"""scripts/readme_outputs.py: marker substitution and stderr filtering (the script is imported by path)."""

import sys

import pytest

from tests.script_module import load_script


@pytest.fixture(scope="module")
def ro():
    yield load_script("scripts/readme_outputs.py", "readme_outputs")
    sys.modules.pop("readme_outputs", None)


def test_block_markers_replace_only_their_content(ro):
    text = ("intro\n<!-- readme:a:begin -->\nold a\nmore\n<!-- readme:a:end -->\nmiddle\n"
            "<!-- readme:b:begin -->\n<!-- readme:b:end -->\nend\n")
    new, missing = ro.substitute(text, {"a": "new a\n", "b": "```text\n$ us3l version\n```"})
    assert missing == []
    assert new == ("intro\n<!-- readme:a:begin -->\nnew a\n<!-- readme:a:end -->\nmiddle\n"
                   "<!-- readme:b:begin -->\n```text\n$ us3l version\n```\n<!-- readme:b:end -->\nend\n")
    again, _ = ro.substitute(new, {"a": "new a\n", "b": "```text\n$ us3l version\n```"})
    assert again == new  # idempotent


def test_inline_markers_stay_inline(ro):
    text = "quickstart took <!-- readme:t:begin -->~4 min<!-- readme:t:end --> here\n"
    new, _ = ro.substitute(text, {"t": "8 min 14 s (2026-12-01)"})
    assert new == "quickstart took <!-- readme:t:begin -->8 min 14 s (2026-12-01)<!-- readme:t:end --> here\n"
    with pytest.raises(ro.Fail):
        ro.substitute(text, {"t": "two\nlines"})


def test_missing_or_duplicate_markers_are_reported_and_untouched(ro):
    text = "<!-- readme:d:begin -->x<!-- readme:d:end --> <!-- readme:d:begin -->y<!-- readme:d:end -->\n"
    new, missing = ro.substitute(text, {"d": "z", "absent": "w"})
    assert new == text
    assert missing == ["d", "absent"]


def test_backslashes_and_group_references_in_content_are_literal(ro):
    text = "<!-- readme:p:begin -->\n<!-- readme:p:end -->\n"
    new, _ = ro.substitute(text, {"p": r"C:\path \1 \g<0>"})
    assert r"C:\path \1 \g<0>" in new


def test_stderr_filter_and_elisions(ro):
    step = ro.Step("s", "us3l x", keep=r"^epoch", head=1, tail=1)
    stream = [("e", "config"), ("e", "epoch 1"), ("e", "epoch 2"), ("e", "epoch 3"), ("o", "table"),
              ("e", "wrote x")]
    res = ro.Result(step, "us3l x", 0, 1.0, "2026-12-01 00:00", "0.1 0.2 0.3", stream)
    assert ro.render_lines(res) == ["$ us3l x", "...", "epoch 1", "...", "epoch 3", "table", "..."]
    step.rc = 3
    res.rc = 3
    assert ro.render_lines(res)[0] == "$ us3l x; echo $?"
    assert ro.render_lines(res)[-1] == "3"


def test_atomic_write_keeps_mode(ro, tmp_path):
    p = tmp_path / "README.md"
    p.write_text("a")
    p.chmod(0o644)
    ro.write_atomic(p, "b")
    assert p.read_text() == "b" and (p.stat().st_mode & 0o777) == 0o644
    assert [q.name for q in tmp_path.iterdir()] == ["README.md"]


def test_schedule_budgets_fall_between_profiled_latencies(ro):
    lat = [0.30, 0.34, 0.41, 0.47, 0.52, 0.60, 0.71, 0.80]
    budgets = ro.schedule_budgets(lat)
    assert budgets == sorted(set(budgets)) and len(budgets) == 4
    assert budgets[0] == 0.32 and budgets[-1] == 0.88  # above the fastest width, 10 % above the slowest
    assert all(b not in lat for b in budgets)
    assert ro.schedule_budgets([0.5]) == [0.55]
    with pytest.raises(ro.Fail, match="no width to schedule"):
        ro.schedule_budgets([])


def test_the_select_budget_keeps_the_digits_that_keep_it_between_widths(ro, monkeypatch):
    """The default budget is left unrounded in a gap narrower than 1 us (0.12035 between 0.1201 and 0.1206 ms);
    the script printed it to 3 decimals, 0.12, below both widths: the example's budget was not the rule's."""
    for printed, expected in (("0.12035", "0.12035"), ("0.218", "0.218"), ("0.2", "0.2")):
        monkeypatch.setattr(ro, "clone_python", lambda *a, printed=printed: printed)
        assert ro.budget_ms("python", None, {}) == expected


@pytest.mark.slow  # 2.4 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_timings_name_the_cpu_and_its_matmul_rate(ro):
    """A README time reads against the machine that took it: its CPU, ISA and one-core matmul rate (two of this
    project's 2-core machines differed 3x in that rate, and the README's times with it)."""
    import os
    import re

    from tests.script_module import ROOT

    line = ro.machine(sys.executable, ROOT, dict(os.environ))
    assert re.fullmatch(r".+ \(.*\), 1-core 512\^3 fp32 matmul \d+ GMAC/s", line), line
    res = ro.Result(ro.Step("tests", "./test.sh", kind="time"), "./test.sh", 0, 75.0, "2026-12-07 15:00", "1.5 1 1")
    ctx = {"commit": "abc", "nproc": 2, "machine": line}
    assert ro.render_time(res, ctx) == f"1 min 15 s (2026-12-07, commit abc, nproc 2, {line}, load 1.5 at start)"
