"""Inputs that do not fit together, text that is not what the plots expect, and pages wider than the screen."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from us3l.cli import main
from us3l.report import render_report
from us3l.report.plots import (
    accuracy_figure,
    panels_from_profiles,
    panels_from_selection,
    png_bytes,
    tradeoff_figure,
)

from .conftest import accuracy_v2, make_accuracy, make_profile, make_selection, selection_v2

OTHER = "cifar_mobilenetv2"


def _section(page: str, key: str) -> str:
    m = re.search(rf'<section id="{key}">(.*?)</section>', page, re.S)
    assert m, key
    return m.group(1)


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def _edit(path: Path, change: Any) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


# ------------------------------------------------------------------------ 1: profiles of another model


@pytest.mark.slow  # 2.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_profiles_of_another_model_are_left_out_with_a_warning(pipeline: Path, capsys: pytest.CaptureFixture[str]) \
        -> None:
    foreign = make_profile(pipeline, "onnx", scale=3.0, model=OTHER)  # `us3l profile --model` into the folder
    rep = render_report(pipeline)
    assert rep.files.foreign == [foreign]
    assert [p.model for p in rep.files.usable_profiles()] == ["cifar_resnet18"] * 2
    for key in ("latency", "widths", "environment"):
        body = _text(_section(rep.html, key))
        assert f"left out: profiles/{foreign.name}" in body, key
    widths = _section(rep.html, "widths")
    assert widths.count("<th>cpu onnx/fp32 p50 ms</th>") == 1 and OTHER not in _text(widths).replace(foreign.name, "")
    assert any(e.startswith(f"{foreign}: left out: profile of {OTHER}") for e in rep.errors())
    assert main(["report", str(pipeline)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"warning: {foreign}: left out" in err


@pytest.mark.slow  # 1.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_switchable_artifacts_profile_of_the_runs_model_is_the_runs(pipeline: Path) -> None:
    """Red-team 2026-12-07: `us3l profile --artifact` of a switchable export names its model
    ``cifar_resnet18-switchable``; the page left it out as "a profile of another model", and its selection's answer
    as "for another model", dropping the latencies and the accuracy intervals."""
    import dataclasses

    from us3l.profiler.profile_file import load_profile, write_profile

    static = pipeline / "profiles" / "cifar_resnet18-cpu-onnx-fp32.json"
    prof = load_profile(static)
    sw = {"artifact": "../artifacts/cpu/cifar_resnet18-switchable-onnx-fp32", "relative_to": "profile",
          "sha256": "0" * 64, "widths": [r.width for r in prof.records]}
    (written,) = write_profile(dataclasses.replace(prof, model="cifar_resnet18-switchable",
                                                   extra={**(prof.extra or {}), "switchable": sw}),
                               pipeline / "profiles")[:1]
    static.unlink()

    def switchable_answer(doc: dict) -> None:
        doc["devices"][0]["model"] = "cifar_resnet18-switchable"
        doc["devices"][0]["profile"] = f"profiles/{written.name}"

    _edit(pipeline / "selection.json", switchable_answer)
    rep = render_report(pipeline)
    assert rep.files.foreign == []
    assert not [e for e in rep.errors() if "another model" in e or "left out" in e], rep.errors()
    assert "this answer is for" not in _text(_section(rep.html, "selection"))


@pytest.mark.slow  # 1.6 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_an_answer_for_another_model_is_warned_about_and_left_out_of_the_panels(pipeline: Path) -> None:
    """Red-team 2026-12-05: ``us3l select --device cpu`` over a profiles/ folder that also holds a ``profile --model``
    of another network gives an answer for that network; the page showed it at the top like the run's own, with
    the intervals of the run's accuracy.json, and drew its panel."""
    def other_model(doc: dict) -> None:
        doc["devices"][1]["model"] = OTHER

    _edit(pipeline / "selection.json", other_model)
    rep = render_report(pipeline)
    answer = _text(_section(rep.html, "selection"))
    assert answer.count(f"this answer is for {OTHER}, not for the run's model cifar_resnet18") == 1
    tradeoff = _text(_section(rep.html, "tradeoff"))
    assert f"left out: cpu/openvino ({OTHER}): selected for another model than the run's" in tradeoff
    assert any(e.startswith(f"{pipeline / 'selection.json'}: cpu/openvino: this answer is for {OTHER}")
               for e in rep.errors())
    assert "these numbers come from old files" not in answer  # not a stale selection
    from us3l.report.plots import panels_from_selection

    assert len(panels_from_selection(json.loads((pipeline / "selection.json").read_text()))) == 2

    def all_other(doc: dict) -> None:
        doc["devices"][0]["model"] = OTHER

    _edit(pipeline / "selection.json", all_other)
    tradeoff = _text(_section(render_report(pipeline).html, "tradeoff"))
    assert "no answer in selection.json is for the run's model; drawn from accuracy.json and the profiles" in tradeoff


@pytest.mark.slow  # 1.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_an_answer_from_a_profile_of_other_model_kwargs_is_warned_about(pipeline: Path) -> None:
    """The same model name with other model kwargs (``profile --model cifar_resnet18`` beside a run trained with
    ``base_channels`` set): the profile is left out, and so is the answer selected from it."""
    import dataclasses

    from us3l.profiler.profile_file import load_profile, write_profile

    path = pipeline / "profiles" / "cifar_resnet18-cpu-onnx-fp32.json"
    prof = load_profile(path)
    write_profile(dataclasses.replace(prof, extra={**(prof.extra or {}), "model_kwargs": {"base_channels": 8}}),
                  pipeline / "profiles")
    rep = render_report(pipeline)
    assert rep.files.foreign == [path]
    answer = _text(_section(rep.html, "selection"))
    assert answer.count(f"this answer comes from profiles/{path.name}, a profile of cifar_resnet18 with model kwargs "
                        "{'base_channels': 8}, not the run's {}") == 1
    assert "left out: cpu/onnx (cifar_resnet18)" in _text(_section(rep.html, "tradeoff"))


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_without_a_selection_no_panel_mixes_two_models(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_accuracy(root)
    make_profile(root, "onnx")
    make_profile(root, "onnx", model=OTHER)
    rep = render_report(root)
    assert len(rep.files.usable_profiles()) == 1
    panels = panels_from_profiles([p.doc for p in rep.files.profiles], accuracy_v2())
    assert [p.title for p in panels] == ["cpu onnx/fp32 · cifar_resnet18"]


def test_profiles_sharing_a_label_get_distinct_labels() -> None:
    from us3l.report.plots import profile_labels

    a, b, c = (SimpleNamespace(device="cpu", backend="onnx", precision="fp32", model=m)
               for m in ("m1", "m1", "m2"))
    assert profile_labels([a, b]) == ["cpu onnx/fp32 #1", "cpu onnx/fp32 #2"]
    assert profile_labels([a, c]) == ["cpu onnx/fp32 · m1", "cpu onnx/fp32 · m2"]
    assert profile_labels([a]) == ["cpu onnx/fp32"]


# ------------------------------------------------------------------------ 2: trade-off panel titles


def test_tradeoff_titles_are_short_and_stay_inside_their_panel() -> None:
    sel = selection_v2()
    for d in sel["devices"]:
        d["device"] = ("d" * 60) + d["backend"][:4]  # 64 characters, the longest device name allowed
        d["tied_widths"] = [0.25, 0.3438, 0.4063, 0.5, 0.5938, 0.6563, 0.75, 0.7813, 0.9063, 1.0]
        d["decided_by"] = "tie->latency"
    fig = tradeoff_figure(panels_from_selection(sel, accuracy_v2()))
    fig.canvas.draw()
    box = fig.bbox
    titles = [ax.title for ax in fig.axes if ax.get_title()]
    extents = [t.get_window_extent() for t in titles]
    assert len(extents) == 2 and not extents[0].overlaps(extents[1])
    assert all(box.x0 <= e.x0 and e.x1 <= box.x1 for e in extents)
    for t, d in zip(titles, sel["devices"], strict=True):
        assert d["device"] in t.get_text().replace("\n", "") and "0.3438" not in t.get_text()


# ------------------------------------------------------------------------ 5: `$` in texts from the files


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_dollar_signs_from_the_files_are_drawn_literally(pipeline: Path) -> None:
    _edit(pipeline / "accuracy.json", lambda d: d.update(data="folder:/srv/c$/data/imgs_$v2"))
    _edit(pipeline / "selection.json", lambda d: d["latency_rule"].update(describe="p90 in $ms$ of $x^"))
    rep = render_report(pipeline)
    assert {"accuracy", "tradeoff"} <= set(rep.rendered())
    fig = accuracy_figure({**accuracy_v2(model="net_$a$_$b"), "data": "c$/x_$y"})
    png_bytes(fig)
    assert "net_$a$_$b on c$/x_$y" in fig.axes[0].get_title()


@pytest.mark.slow  # 1.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_data_name_that_is_not_utf8_is_drawn_escaped(pipeline: Path) -> None:
    """Red-team 2026-12-05: a data folder named with a byte that is not UTF-8 (a lone surrogate in Python) made
    matplotlib fail (TypeError from FT2Font): no accuracy figure in the page, and ``eval --plot`` failed."""
    _edit(pipeline / "accuracy.json", lambda d: d.update(data="folder:/srv/caf\udce9"))
    assert "accuracy" in render_report(pipeline).rendered()
    fig = accuracy_figure({**accuracy_v2(), "data": "folder:caf\udce9"})
    png_bytes(fig)
    assert "cifar_resnet18 on folder:caf\\udce9 · 400 test images" in fig.axes[0].get_title()


# ------------------------------------------------------------------------ 6: a stale selection


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_stale_selection_is_warned_about_in_the_answer(pipeline: Path) -> None:
    _edit(pipeline / "selection.json",
          lambda d: d.update(inputs={"profiles": [], "accuracy": {"path": "accuracy.json", "sha256": "cd" * 32}}))
    page = render_report(pipeline).html
    cards = re.findall(r'<div class="answer">.*?</div>', _section(page, "selection"), re.S)
    assert cards and all("these numbers come from old files: selection.json was made from other versions of "
                         "accuracy.json; re-run us3l select" in html.unescape(c) for c in cards)
    assert "these numbers come from old files" in _section(page, "tradeoff")


@pytest.mark.slow  # 2.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_selection_made_from_files_the_folder_no_longer_holds_is_stale(pipeline: Path) -> None:
    """Red-team 2026-12-05: a profile re-written under another name (or deleted) after ``select`` was not
    flagged: the answer came from a file the page no longer shows."""
    from us3l.io import file_sha256

    prof = pipeline / "profiles" / "cifar_resnet18-cpu-onnx-fp32.json"
    inputs = {"profiles": [{"path": f"somewhere/profiles/{prof.name}", "sha256": file_sha256(prof)}],
              "accuracy": {"path": "accuracy.json", "sha256": file_sha256(pipeline / "accuracy.json")}}
    _edit(pipeline / "selection.json", lambda d: d.update(inputs=inputs))
    assert render_report(pipeline).errors() == []  # the same files (recorded elsewhere): nothing to say
    prof.rename(prof.with_name("renamed.json"))
    (pipeline / "accuracy.json").unlink()
    rep = render_report(pipeline)
    assert rep.errors() == [f"{pipeline / 'selection.json'}: stale: made from accuracy.json, "
                            f"somewhere/profiles/{prof.name}, which this folder no longer holds; re-run us3l select"]
    assert "these numbers come from old files: selection.json was made from accuracy.json, " \
        f"somewhere/profiles/{prof.name}" \
        in _text(_section(rep.html, "selection"))


# ------------------------------------------------------------------------ 7: a selection with nothing to draw


def _no_candidates(doc: dict[str, Any]) -> None:
    for d in doc["devices"]:
        d.pop("candidates")


def test_a_selection_without_candidates_says_why_nothing_is_drawn(tmp_path: Path) -> None:
    root = tmp_path / "sel"
    sel = selection_v2()
    _no_candidates(sel)
    make_selection(root, sel)
    rep = render_report(root)
    body = _text(_section(rep.html, "tradeoff"))
    assert "nothing drawn: selection.json lists no candidate width with an accuracy and a latency" in body
    assert "tradeoff" not in rep.failed()
    make_accuracy(root)
    make_profile(root)
    body = _text(_section(render_report(root).html, "tradeoff"))
    assert "without a selection" not in body and "drawn from accuracy.json and the profiles instead" in body


# ------------------------------------------------------------------------ 8: an error names its file once


@pytest.mark.slow  # 0.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_section_error_names_its_file_once(pipeline: Path) -> None:
    prof = next((pipeline / "profiles").glob("*onnx*.json"))
    prof.write_text("{not json", encoding="utf-8")
    body = _text(_section(render_report(pipeline).html, "latency"))
    assert body.count(str(prof)) == 1


# ------------------------------------------------------------------------ 9: one percent format, no self-tie


@pytest.mark.slow  # 1.3 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_percentages_from_the_selection_in_the_page_format_and_no_width_tied_with_itself(pipeline: Path) -> None:
    sel = selection_v2()
    sel["tie_rule"] = "95% accuracy interval"
    sel["devices"][0]["warnings"] = ["relative CI half-width 1.9% of p90"]
    sel["devices"][0]["tied_widths"] = [0.5, 0.75]  # the whole tie group, chosen width 0.5 included
    make_selection(pipeline, sel)
    answer = _text(_section(render_report(pipeline).html, "selection"))
    assert "95 % accuracy interval" in answer and "relative CI half-width 1.9 % of p90" in answer
    assert not re.search(r"\d%", answer)
    assert "with w=0.75;" in " ".join(answer.split())


# ------------------------------------------------------------------------ 10: wide tables


@pytest.mark.slow  # 1.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_tables_scroll_in_their_own_box_and_figures_fit(pipeline: Path) -> None:
    page = render_report(pipeline).html
    assert page.count("<table>") == page.count('<div class="scroll"><table>') > 0
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)  # type: ignore[union-attr]
    assert ".scroll{overflow-x:auto" in css and "img{max-width:100%" in css and "overflow-wrap:anywhere" in css


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_metrics_line_nested_too_deep_is_an_error_of_that_file_only(pipeline: Path) -> None:
    """A metrics line of arrays nested 10^5 deep raised RecursionError out of the collection and the whole
    report failed; it is one unreadable file like any other (red-team)."""
    from us3l.report.collect import collect_pipeline

    metrics = pipeline / "run" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + "[" * 100_000 + "\n")
    files = collect_pipeline(pipeline)
    assert files.metrics is not None and files.metrics.error is not None
    assert "is not valid JSON (nested too deep)" in files.metrics.error
    render_report(pipeline)
