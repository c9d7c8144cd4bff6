"""`us3l report`: one self-contained HTML page from a pipeline folder, robust to partial or broken inputs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from us3l import __version__
from us3l.cli import main
from us3l.errors import US3LError
from us3l.report import REPORT_FILE, render_report, write_report
from us3l.report.html import TITLES
from us3l.report.plots import pct

from .conftest import BUDGET_MS, KNN, make_accuracy, make_profile, make_run

IMG = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"')


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_full_folder_renders_every_section(pipeline: Path) -> None:
    path = write_report(pipeline)
    assert path == pipeline / REPORT_FILE
    page = _read(path)
    assert len(IMG.findall(page)) == 3  # accuracy/width, latency/width, accuracy/latency
    for text in ("us3l report · cifar_resnet18", pct(KNN[0.75]), pct(KNN[1.0]), "25.00M", "latency ≤ 3.5 ms",
                 "upper 95 % CI bound of p90", "Test CPU 9000", "<td>avx2 avx512_vnni</td>", "torch 2.13.0",
                 "onnxruntime 1.32.0", "2 min 3 s", "cifar_resnet18-w0.5-onnx-fp32", "calibrated",
                 f"w=0.75 ({pct(KNN[0.75])}"):
        assert text in page, text
    sel = json.loads(_read(pipeline / "selection.json"))
    chosen = sel["devices"][0]["chosen"]
    assert f"{chosen['latency_ms']:.3f}" in page and f"<td>{chosen['width']:g}</td>" in page
    manifest = json.loads(_read(next((pipeline / "artifacts").glob("*/*/manifest.json"))))
    assert manifest["artifact"]["sha256"] in page
    assert "<td>reused</td>" in page and "<td>budget_ms</td>" in page  # summary.json, steps as a table
    assert "missing:" not in page and 'class="error"' not in page and "could not render" not in page


@pytest.mark.slow  # 1.4 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_page_is_self_contained(pipeline: Path) -> None:
    page = _read(write_report(pipeline))
    assert "http://" not in page and "https://" not in page
    assert 'src="file' not in page and "<link" not in page and "<script" not in page
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', page))


def test_text_from_files_is_escaped(tmp_path: Path) -> None:
    root = tmp_path / "evil"
    make_run(root, model="<script>alert(1)</script>")
    page = render_report(root).html
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_partial_folder_names_what_is_missing(tmp_path: Path) -> None:
    root = tmp_path / "partial"
    make_accuracy(root)
    make_profile(root)
    rep = render_report(root)
    assert set(rep.missing()) == {"run", "selection", "artifacts", "summary"}
    assert {"accuracy", "latency", "tradeoff", "widths", "environment"} <= set(rep.rendered())
    assert rep.html.count('class="missing"') >= 4 and "missing: selection.json" in rep.html
    assert len(IMG.findall(rep.html)) == 3  # trade-off drawn from accuracy + p50 without a selection
    assert "without a selection" in rep.html


def test_broken_files_give_one_line_each(pipeline: Path) -> None:
    (pipeline / "accuracy.json").write_text("{not json", encoding="utf-8")
    (pipeline / "selection.json").write_text(json.dumps({"kind": "profile", "schema_version": 1}), encoding="utf-8")
    prof = next((pipeline / "profiles").glob("*onnx*.json"))
    doc = json.loads(_read(prof))
    del doc["records"][0]["latency"]
    prof.write_text(json.dumps(doc), encoding="utf-8")
    rep = render_report(pipeline)
    assert rep.files.accuracy.error and "not valid JSON" in rep.files.accuracy.error
    assert "not a us3l selection file" in rep.files.selection.error
    assert len(rep.errors()) == 3 and all("\n" not in e for e in rep.errors())
    assert {"accuracy", "selection"} <= set(rep.failed())
    assert "latency" in rep.rendered()  # the other profile still draws
    assert rep.html.count('class="error"') >= 3


def test_a_run_folder_is_a_pipeline_folder_of_its_own(tmp_path: Path) -> None:
    run = make_run(tmp_path)  # tmp_path/run: checkpoint.json, metrics.jsonl
    make_accuracy(run)  # where `us3l eval --ckpt run` writes it
    rep = render_report(run)
    assert rep.files.run == run and rep.files.checkpoint is not None and rep.files.checkpoint.ok
    assert "run" not in rep.missing() and rep.files.accuracy is not None and rep.files.accuracy.ok
    assert render_report(tmp_path).files.run == run  # the step-by-step folder above it: the same run


def test_an_error_naming_its_file_names_it_once(tmp_path: Path) -> None:
    from us3l.errors import US3LError

    (tmp_path / "accuracy.json").write_text(json.dumps({"kind": "accuracy"}), encoding="utf-8")
    expected = f"{tmp_path / 'accuracy.json'} has no schema_version; this us3l ({__version__}) reads accuracy version 2"
    # nothing readable: nothing to show (red-team 2026-12-05: a page of errors, exit 0)
    with pytest.raises(US3LError) as info:
        render_report(tmp_path)
    assert str(info.value) == f"{tmp_path} contains no readable us3l pipeline file: {expected}"
    (tmp_path / "summary.json").write_text(json.dumps({"kind": "quickstart"}), encoding="utf-8")
    (line,) = render_report(tmp_path).errors()
    assert line == expected


def test_a_folder_without_a_readable_us3l_file_is_an_error(tmp_path: Path, capsys) -> None:
    """Red-team 2026-12-05: any summary.json (a project's own) or any JSON in profiles/ made a folder a pipeline
    folder: report.html was written into it, and the command exited 0."""
    (tmp_path / "summary.json").write_text('{"loss": 1.2}', encoding="utf-8")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "notes.json").write_text("{}", encoding="utf-8")
    assert main(["report", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (f"error: {tmp_path} contains no readable us3l pipeline file: "
                                       f"{tmp_path / 'summary.json'} is not a us3l quickstart summary "
                                       "(and 1 more)\n")
    assert not (tmp_path / REPORT_FILE).exists()


@pytest.mark.slow  # 0.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_unexpected_shape_inside_a_valid_file_does_not_crash(pipeline: Path) -> None:
    sel = json.loads(_read(pipeline / "selection.json"))
    sel["devices"][0]["candidates"] = [{"width": "wide", "accuracy": "x", "latency_ms": None}]
    (pipeline / "selection.json").write_text(json.dumps(sel), encoding="utf-8")
    rep = render_report(pipeline)
    assert "could not render this section" in rep.html
    assert "artifacts" in rep.rendered()
    failed = [s for s in rep.sections if s.state == "error" and "could not render" in s.body]
    assert failed and all(s.title == TITLES[s.key] for s in failed)  # the nav showed "Tradeoff" / "Selection"
    assert ">Tradeoff<" not in rep.html and ">Selection<" not in rep.html


@pytest.mark.slow  # 3.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_cli_writes_default_path_and_json(pipeline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(pipeline)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(pipeline / REPORT_FILE) and Path(out).is_file()
    target = pipeline / "elsewhere" / "r.html"
    assert main(["report", str(pipeline), "--out", str(target), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["report"] == str(target) and target.is_file()
    assert doc["missing"] == [] and "selection" in doc["rendered"] and doc["errors"] == []
    assert not list(target.parent.glob(".*.tmp"))


def test_cli_json_lists_missing_sections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "only_run"
    make_run(root)
    assert main(["report", str(root), "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["rendered"] == ["run"] and "selection" in doc["missing"] and "profiles" in doc["missing_inputs"]
    assert "note: section 'selection' is missing its input" in err.splitlines()  # as without --json (not --quiet)


@pytest.mark.parametrize("kind", ["absent", "empty", "file"])
def test_bad_folder_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    target = tmp_path / "x"
    if kind == "empty":
        target.mkdir()
        (target / "notes.txt").write_text("hello", encoding="utf-8")
    elif kind == "file":
        target.write_text("x", encoding="utf-8")
    assert main(["report", str(target)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    with pytest.raises(US3LError):
        write_report(target)
    assert not (tmp_path / "x" / REPORT_FILE).exists()


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_moved_folder_renders_the_same(pipeline: Path, tmp_path: Path) -> None:
    """Paths recorded inside the files (e.g. selection inputs) are not needed to render."""
    moved = tmp_path / "moved"
    shutil.copytree(pipeline, moved)
    rep = render_report(moved)
    assert rep.missing() == [] and f"latency ≤ {BUDGET_MS:g} ms" in rep.html


@pytest.mark.slow  # a report per file kind
def test_report_out_never_replaces_a_file_that_is_not_a_report(pipeline: Path, tmp_path: Path, capsys) -> None:
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my notes</html>")
    assert main(["report", str(pipeline), "--out", str(mine)]) == 1
    err = capsys.readouterr().err
    assert f"error: refusing to replace {mine}: it is not a us3l report; choose another --out" in err
    assert mine.read_text() == "<html>my notes</html>"
    ours = tmp_path / "r.html"
    assert main(["report", str(pipeline), "--out", str(ours)]) == 0
    assert main(["report", str(pipeline), "--out", str(ours)]) == 0  # a previous report is replaced


@pytest.mark.slow  # 2.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_default_output_never_replaces_a_file_that_is_not_a_report(pipeline: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    mine = pipeline / REPORT_FILE
    mine.write_text("<html>my notes</html>", encoding="utf-8")
    assert main(["report", str(pipeline)]) == 1
    assert f"refusing to replace {mine}: it is not a us3l report" in capsys.readouterr().err
    assert mine.read_text(encoding="utf-8") == "<html>my notes</html>"
    mine.unlink()
    assert main(["report", str(pipeline)]) == 0
    assert main(["report", str(pipeline)]) == 0  # our own report is replaced


@pytest.mark.slow  # 2.3 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_write_report_never_replaces_a_file_that_is_not_a_report(pipeline: Path) -> None:
    """Red-team 2026-12-05: the Python API (what ``us3l quickstart`` calls) replaced a page of the user's."""
    from us3l.errors import US3LError
    from us3l.report import write_report

    mine = pipeline / REPORT_FILE
    mine.write_text("<html>my notes</html>", encoding="utf-8")
    with pytest.raises(US3LError, match=f"^refusing to replace {mine}: it is not a us3l report"):
        write_report(pipeline)
    assert mine.read_text(encoding="utf-8") == "<html>my notes</html>"
    mine.unlink()
    assert write_report(pipeline) == mine and write_report(pipeline) == mine  # our own page is replaced


def test_check_report_replaceable_takes_a_str_like_the_rest_of_the_api(pipeline: Path) -> None:
    # us3l.report exports it beside write_report/save_report, which take str | Path; a str was an AttributeError
    from us3l.report import check_report_replaceable

    mine = pipeline / REPORT_FILE
    mine.write_text("<html>my notes</html>", encoding="utf-8")
    with pytest.raises(US3LError, match=f"^refusing to replace {mine}: it is not a us3l report"):
        check_report_replaceable(str(mine))
    check_report_replaceable(str(pipeline / "new.html"))  # nothing there: fine


def test_sections_that_cannot_be_drawn_are_named_on_stderr(pipeline: Path, capsys, monkeypatch) -> None:
    """Red-team 2026-12-05: without matplotlib (the ``plot`` extra) the page had no figure and the command said
    nothing on the terminal."""
    from us3l.errors import MissingDependencyError
    from us3l.report import plots, render_report

    def missing() -> None:
        raise MissingDependencyError("matplotlib", "plot", "drawing the figures")

    monkeypatch.setattr(plots, "_matplotlib", missing)
    rep = render_report(pipeline)
    assert {"tradeoff", "accuracy", "latency"} <= set(rep.failed())
    assert main(["report", str(pipeline), "-q"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "not rendered" in ln]
    assert lines == ["warning: sections tradeoff, accuracy, latency not rendered: MissingDependencyError: drawing the "
                     "figures needs the 'matplotlib' package, which is not installed: pip install 'us3l[plot]'"]


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_folder_name_that_is_not_utf8_is_written_escaped(pipeline: Path, tmp_path: Path, capsys) -> None:
    """Red-team 2026-12-05: a pipeline folder whose name is not UTF-8 (a lone surrogate in Python) stopped the
    report with "error: 'utf-8' codec can't encode character '\\udcff' ... surrogates not allowed"."""
    import os

    odd = tmp_path / os.fsdecode(b"run-\xff")
    shutil.copytree(pipeline, odd)
    assert main(["report", str(odd), "-q"]) == 0
    page = (odd / REPORT_FILE).read_bytes().decode("utf-8")  # valid UTF-8
    assert "run-\\udcff" in page
