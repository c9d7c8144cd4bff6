"""benchmarks/naive_long.py: reusing finished runs only when their config matches, the summary, the docs section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.script_module import ROOT, load_script

nl = load_script("benchmarks/naive_long.py", "naive_long_bench")


def _row(method: str, w: float, acc: float, ci: list[float], std: float = 0.5) -> dict[str, Any]:
    return {"method": method, "run": method, "width": w, "knn_top1": acc, "knn_top1_ci": ci, "knn_top5": None,
            "embedding_std": std, "projector_std": 0.9, "chance_in_ci": ci[0] <= 0.1 <= ci[1],
            "collapsed": ci[0] <= 0.1 <= ci[1] or std < 0.1, "macs": 1}


def _doc() -> dict[str, Any]:
    rows = [_row("naive_simsiam", 1.0, 0.30, [0.27, 0.33], 0.27), _row("naive_simsiam", 0.25, 0.11, [0.09, 0.13]),
            _row("naive_simsiam_one_width", 1.0, 0.575, [0.544, 0.605], 0.55)]
    random_init = {"1": {"knn_top1": 0.205, "knn_top1_ci": [0.181, 0.231]},
                   "0.25": {"knn_top1": 0.155, "knn_top1_ci": [0.134, 0.179]}}
    curve = [{"epoch": 20, "knn_top1": {"1": 0.26}, "backbone_std": {"1": 0.41}},
             {"epoch": 40, "knn_top1": {"1": 0.31}, "backbone_std": {"1": 0.33}}]
    runs = {"naive_simsiam": {"epochs_done": 300, "train_cpu_seconds": 2917.0, "status": "completed", "curve": curve},
            "naive_simsiam_one_width": {"epochs_done": 300, "train_cpu_seconds": 1147.0, "status": "reused",
                                        "curve": []}}
    return {"kind": nl.BENCH_KIND, "schema_version": nl.BENCH_SCHEMA,
            "command": "python benchmarks/naive_long.py", "date": "2026-12-03 07:28 UTC", "epochs": 300,
            "git": {"commit": "abcdef0123", "dirty": False},
            "data": {"name": "builtin-shapes", "num_classes": 10, "num_train": 2000, "num_test": 1000,
                     "input_size": 16, "chance": 0.1},
            "runs": runs, "results": rows,
            "baselines": {"random_init": random_init, "raw_pixels": {"knn_top1": 0.535, "knn_top1_ci": [0.504, 0.566]}},
            "summary": nl.summarize(rows, random_init)}


def test_summary_compares_with_the_control_and_random_init() -> None:
    s = _doc()["summary"]
    assert s["naive_vs_one_width"]["diff_points"] == pytest.approx(-27.5)
    assert s["naive_vs_one_width"]["intervals_overlap"] is False
    assert [(v["width"], v["intervals_overlap"]) for v in s["vs_random_init"]] == [(1.0, False), (0.25, False)]
    assert s["vs_random_init"][1]["diff_points"] == pytest.approx(-4.5)
    assert s["collapsed_widths"] == [0.25]  # its interval contains chance


def test_docs_section_comes_from_the_document(tmp_path: Path) -> None:
    md = nl.render_markdown(_doc(), "docs/results/naive_long.json")
    assert "| 1 | 30.0 [27.0, 33.0] | 57.5 [54.4, 60.5] | 20.5 [18.1, 23.1] | 0.27 / 0.55 |" in md
    assert "| 0.25 | 11.0 [9.0, 13.0] | – |" in md
    assert "at width 1: -27.5 points, intervals do not overlap (what slimming SimSiam naively costs after 300" in md
    assert "Collapsed (embedding std < 0.1 or kNN interval containing chance): 0.25." in md
    assert "| naive_simsiam_one_width | 300 | 1147 | reused |" in md and "| 40 | 31.0 |" in md
    assert "| 40 | 0.33 |" in md and "backbone std·√D" in md  # the monitor's backbone indicator, when recorded
    old_runs = {n: {**r, "curve": [{k: v for k, v in p.items() if k != "backbone_std"} for p in r["curve"]]}
                for n, r in _doc()["runs"].items()}
    assert "backbone std·√D" not in nl.render_markdown({**_doc(), "runs": old_runs}, "r.json")
    page = tmp_path / "e.md"
    page.write_text(f"intro\n{nl.BEGIN}\nold\n{nl.END}\nafter\n", encoding="utf-8")
    nl.cb.update_docs(page, md, nl.BEGIN, nl.END, nl.SECTION)  # collapse.py's, with this script's markers
    text = page.read_text(encoding="utf-8")
    assert "old" not in text and text.startswith("intro\n") and text.endswith(f"{nl.END}\nafter\n")


def test_missing_markers_are_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = tmp_path / "r.json"
    result.write_text(json.dumps(_doc()), encoding="utf-8")
    page = tmp_path / "e.md"
    page.write_text("no markers\n", encoding="utf-8")
    assert nl.main(["--render", str(result), "--docs", str(page)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {page} has no '{nl.BEGIN}' ... '{nl.END}' markers to regenerate\n"


def test_missing_markers_stop_a_run_before_it_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "e.md"
    page.write_text("no markers\n", encoding="utf-8")
    out = tmp_path / "runs"
    assert nl.main(["--out", str(out), "--docs", str(page)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {page} has no '{nl.BEGIN}' ... '{nl.END}' markers to regenerate\n"
    assert not out.exists()  # nothing trained, nothing written


def _finished_run(folder: Path, cfg: Any, epochs: int) -> None:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()), encoding="utf-8")
    (folder / "checkpoint.safetensors").write_bytes(b"")
    lines = [{"epoch": e + 1, "seconds": 2.0, "cpu_seconds": 1.5} for e in range(epochs)]
    lines[-1].update(knn_top1={"1": 0.4}, collapse_std={"1": 0.9})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")


def test_reuse_checks_config_and_epochs(tmp_path: Path) -> None:
    from us3l.errors import US3LError

    args = nl.parse_args(["--epochs", "3", "--out", str(tmp_path)])
    (name, cfg), (ctl_name, ctl_cfg) = nl.run_tasks(args, tmp_path)
    assert (name, ctl_name) == ("naive_simsiam", "naive_simsiam_one_width")
    assert ctl_cfg.num_samples == 1 and cfg.num_samples == 3 and cfg.schedule == "none"
    with pytest.raises(US3LError, match="has no finished run"):
        nl.reuse_run(cfg)
    _finished_run(tmp_path / name, cfg, 3)
    info = nl.reuse_run(cfg)
    assert (info["status"], info["epochs_done"], info["train_cpu_seconds"]) == ("reused", 3, 4.5)
    assert info["monitor_std"] == {"1": 0.9}
    # another seed, or the control's config, is another experiment
    other = nl.parse_args(["--epochs", "3", "--out", str(tmp_path), "--seed", "7"])
    with pytest.raises(US3LError, match=r"trained with other settings \(seed: "):
        nl.reuse_run(nl.run_tasks(other, tmp_path)[0][1])
    assert nl.config_mismatch(cfg.to_dict(), ctl_cfg.to_dict()) == ["knn_widths", "num_samples"]
    assert nl.config_mismatch({**cfg.to_dict(), "threads": 4, "save_every": 1}, cfg.to_dict()) == []
    _finished_run(tmp_path / "short" / name, cfg, 2)
    short = nl.run_tasks(nl.parse_args(["--epochs", "3", "--out", str(tmp_path / "short")]), tmp_path / "short")
    with pytest.raises(US3LError, match="recorded 2 of 3 epochs"):
        nl.reuse_run(short[0][1])


def test_the_evaluation_docs_hold_the_markers_once() -> None:
    text = (ROOT / "docs" / "evaluation.md").read_text(encoding="utf-8")
    for begin, end in (nl.markers(nl.SECTION), nl.markers("naive-constant"), nl.markers("naive-cosine1000")):
        assert text.count(begin) == 1 and text.count(end) == 1 and text.index(begin) < text.index(end)


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path: Path) -> None:
    assert nl.main(["--quick", "--out", str(tmp_path), "--no-docs"]) == 0
    doc = json.loads((tmp_path / "naive_long.json").read_text())
    assert doc["kind"] == "naive_long_benchmark" and doc["epochs"] == 2
    assert set(doc["runs"]) == {"naive_simsiam", "naive_simsiam_one_width"}
    assert all(r["status"] == "completed" and r["epochs_done"] == 2 for r in doc["runs"].values())
    assert [r["width"] for r in doc["results"] if r["method"] == "naive_simsiam_one_width"] == [1.0]
    assert doc["baselines"]["random_init"] and doc["summary"]["naive_vs_one_width"] is not None
    # the finished runs are evaluated again without training when asked to
    assert nl.main(["--quick", "--out", str(tmp_path), "--no-docs", "--reuse"]) == 0
    again = json.loads((tmp_path / "naive_long.json").read_text())
    assert {r["status"] for r in again["runs"].values()} == {"reused"}


def test_render_rejects_another_benchmarks_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = ROOT / "docs" / "results" / "collapse.json"
    page = tmp_path / "e.md"
    page.write_text(f"{nl.BEGIN}\n{nl.END}\n", encoding="utf-8")
    assert nl.main(["--render", str(other), "--docs", str(page)]) == 1
    assert capsys.readouterr().err == f"error: {other} is not a us3l naive_long_benchmark file\n"
    assert page.read_text(encoding="utf-8") == f"{nl.BEGIN}\n{nl.END}\n"


def test_us3l_column_schedule_line_and_its_collapse_summary() -> None:
    doc = _doc()
    rows = doc["results"] + [_row("us3l", 1.0, 0.52, [0.49, 0.55], 0.55), _row("us3l", 0.25, 0.50, [0.47, 0.53])]
    doc["results"], doc["summary"] = rows, nl.summarize(rows, doc["baselines"]["random_init"])
    doc["runs"] = {**doc["runs"], "us3l": {"epochs_done": 300, "train_cpu_seconds": 1650.0, "status": "completed",
                                           "curve": []}}
    doc["runs"]["naive_simsiam"]["config"] = {"lr_schedule": "constant"}
    assert doc["summary"]["us3l_collapsed_widths"] == [] and doc["summary"]["collapsed_widths"] == [0.25]
    md = nl.render_markdown(doc, "r.json")
    assert "| width | naive_simsiam | naive_simsiam_one_width | us3l | random init " \
           "| backbone std (naive / one width / us3l) |" in md
    assert "| 0.25 | 11.0 [9.0, 13.0] | – | 50.0 [47.0, 53.0] | 15.5 [13.4, 17.9] | 0.50 / – / 0.50 |" in md
    assert "lr schedule of every run: `constant` (the base lr throughout)." in md
    assert "- us3l collapsed: no width." in md
    assert "us3l collapsed" not in nl.render_markdown(_doc(), "r.json")  # only when us3l ran


def test_with_us3l_adds_its_recipe_under_the_same_schedule(tmp_path: Path) -> None:
    args = nl.parse_args(["--epochs", "8", "--out", str(tmp_path), "--with-us3l", "--lr-schedule", "constant"])
    tasks = dict(nl.run_tasks(args, tmp_path))
    assert list(tasks) == ["naive_simsiam", "naive_simsiam_one_width", "us3l"]
    assert {c.lr_schedule for c in tasks.values()} == {"constant"} and {c.epochs for c in tasks.values()} == {8}
    assert tasks["us3l"].method == "us3l" and tasks["us3l"].schedule == "A" and tasks["naive_simsiam"].lr == 0.05
    assert nl.parse_args(["--quick", "--with-us3l"]).epochs == 4 and nl.parse_args(["--quick"]).epochs == 2


def test_section_option_picks_the_markers(tmp_path: Path) -> None:
    result = tmp_path / "r.json"
    result.write_text(json.dumps(_doc()), encoding="utf-8")
    page = tmp_path / "e.md"
    begin, end = nl.markers("naive-constant")
    page.write_text(f"{nl.BEGIN}\nkeep\n{nl.END}\n{begin}\nold\n{end}\n", encoding="utf-8")
    assert nl.main(["--render", str(result), "--docs", str(page), "--section", "naive-constant"]) == 0
    text = page.read_text(encoding="utf-8")
    assert "keep" in text and "old" not in text and "| 1 | 30.0 [27.0, 33.0]" in text.split(begin)[1]
