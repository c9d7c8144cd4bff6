"""benchmarks/naive_seeds.py: the runs per seed, the collapse rate over seeds, the docs section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.script_module import ROOT, load_script

ns = load_script("benchmarks/naive_seeds.py", "naive_seeds_bench")


def _row(run: str, w: float, acc: float, ci: list[float], std: float) -> dict[str, Any]:
    label = run.rsplit("_seed", 1)[0]
    collapsed = ci[0] <= 0.1 <= ci[1] or std < 0.1
    return {"method": label, "run": run, "width": w, "knn_top1": acc, "knn_top1_ci": ci, "knn_top5": None,
            "embedding_std": std, "projector_std": None, "chance_in_ci": ci[0] <= 0.1 <= ci[1],
            "collapsed": collapsed, "macs": 1}


def _curve(stds: list[float]) -> list[dict[str, Any]]:
    return [{"epoch": 20 * (i + 1), "knn_top1": {"1": 0.2}, "backbone_std": {"1": s, "0.25": s + 0.05}}
            for i, s in enumerate(stds)]


def _doc() -> dict[str, Any]:
    rows = [
        # seed 1: collapsed at both widths (std 0), control healthy
        _row("naive_simsiam_seed1", 1.0, 0.097, [0.080, 0.117], 0.0),
        _row("naive_simsiam_seed1", 0.25, 0.115, [0.097, 0.136], 0.0),
        _row("naive_simsiam_one_width_seed1", 1.0, 0.251, [0.225, 0.279], 0.59),
        # seed 2: healthy at width 1, its width 0.25 interval contains chance
        _row("naive_simsiam_seed2", 1.0, 0.30, [0.27, 0.33], 0.5),
        _row("naive_simsiam_seed2", 0.25, 0.11, [0.09, 0.13], 0.5),
        _row("naive_simsiam_one_width_seed2", 1.0, 0.31, [0.28, 0.34], 0.55),
    ]
    runs = {
        "naive_simsiam_seed1": {"epochs_done": 160, "train_cpu_seconds": 1677.0, "status": "completed",
                                "curve": _curve([0.5, 0.19, 0.07, 0.0]), "config": {"lr_schedule": "epoch",
                                                                                   "lr_schedule_epochs": 1000,
                                                                                   "epochs": 160, "lr": 0.05,
                                                                                   "weight_decay": 0.004,
                                                                                   "schedule": "none",
                                                                                   "regularizer": False},
                                "method": "naive_simsiam"},
        "naive_simsiam_seed2": {"epochs_done": 160, "train_cpu_seconds": 1690.0, "status": "completed",
                                "curve": _curve([0.5, 0.4, 0.45, 0.5])},
        "naive_simsiam_one_width_seed1": {"epochs_done": 160, "train_cpu_seconds": 635.0, "status": "completed",
                                          "curve": _curve([0.6, 0.6, 0.6, 0.59])},
        "naive_simsiam_one_width_seed2": {"epochs_done": 160, "train_cpu_seconds": 640.0, "status": "completed",
                                          "curve": []},
    }
    random_init = {"1": {"knn_top1": 0.205, "knn_top1_ci": [0.181, 0.231]},
                   "0.25": {"knn_top1": 0.155, "knn_top1_ci": [0.134, 0.179]}}
    return {"kind": ns.BENCH_KIND, "schema_version": ns.BENCH_SCHEMA, "seeds": [1, 2],
            "command": "python benchmarks/naive_seeds.py --seeds 1,2", "date": "2026-12-03 14:00 UTC",
            "epochs": 160, "git": {"commit": "abcdef0123", "dirty": False},
            "data": {"name": "builtin-shapes", "num_classes": 10, "num_train": 2000, "num_test": 1000,
                     "input_size": 16, "chance": 0.1},
            "runs": runs, "results": rows, "seconds": {"total": 3600.0},
            "baselines": {"random_init": random_init, "raw_pixels": {"knn_top1": 0.535, "knn_top1_ci": [0.5, 0.57]}},
            "summary": ns.summarize([1, 2], rows, runs)}


def test_seeds_must_be_distinct_non_negative_integers(capsys: pytest.CaptureFixture[str]) -> None:
    assert ns.parse_args(["--seeds", "101, 102,103"]).seeds == [101, 102, 103]
    for bad, msg in (("", "expects seeds (whole numbers >= 0), comma-separated, got ''"),
                     ("1,1", "lists 1 twice, got '1,1'"), ("a,2", "expects a whole number, got 'a' (in 'a,2')"),
                     ("-1", "must be >= 0, got '-1'")):
        with pytest.raises(SystemExit) as exc:
            ns.parse_args(["--seeds", bad])
        assert exc.value.code == 2 and f"error: argument --seeds: {msg} (see: " in capsys.readouterr().err


def test_resume_and_reuse_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        ns.parse_args(["--resume", "--reuse"])
    assert exc.value.code == 2 and "--resume trains what is missing, --reuse trains nothing" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--seed", "3"], ["--seed=3"]])
def test_a_single_seed_is_refused(flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        ns.parse_args(flag)
    assert exc.value.code == 2
    assert "--seed does not apply here" in capsys.readouterr().err


def test_with_us3l_trains_us3l_once_per_seed_under_the_same_schedule(tmp_path: Path) -> None:
    args = ns.parse_args(["--seeds", "7,8", "--epochs", "12", "--lr-schedule-epochs", "100", "--with-us3l",
                          "--out", str(tmp_path)])
    tasks = ns.run_tasks(args, tmp_path)
    assert [n for n, _ in tasks] == ["naive_simsiam_seed7", "naive_simsiam_seed8", "us3l_seed7", "us3l_seed8",
                                     "naive_simsiam_one_width_seed7", "naive_simsiam_one_width_seed8"]
    cfgs = dict(tasks)
    for seed in (7, 8):
        u, n = cfgs[f"us3l_seed{seed}"], cfgs[f"naive_simsiam_seed{seed}"]
        assert u.method == "us3l" and u.seed == seed and Path(u.out) == tmp_path / f"seed{seed}" / "us3l"
        assert (u.epochs, u.lr_schedule, u.lr_schedule_epochs) == (n.epochs, n.lr_schedule, n.lr_schedule_epochs)
        assert u.lr != n.lr  # its own recipe, not the naive one


def test_every_seed_trains_the_naive_recipe_and_its_control(tmp_path: Path) -> None:
    args = ns.parse_args(["--seeds", "7,8", "--epochs", "12", "--lr-schedule-epochs", "100", "--out", str(tmp_path)])
    assert args.section == "naive-seeds"
    tasks = ns.run_tasks(args, tmp_path)
    assert [n for n, _ in tasks] == ["naive_simsiam_seed7", "naive_simsiam_seed8",  # the long runs first
                                     "naive_simsiam_one_width_seed7", "naive_simsiam_one_width_seed8"]
    cfgs = dict(tasks)
    for name, cfg in cfgs.items():
        seed = int(name.rsplit("seed", 1)[1])
        assert cfg.seed == seed and cfg.epochs == 12 and cfg.lr_schedule_epochs == 100
        assert cfg.method == "naive_simsiam" and cfg.weight_decay == 5e-4 and cfg.schedule == "none"
        assert Path(cfg.out).parent == tmp_path / f"seed{seed}"
    assert cfgs["naive_simsiam_one_width_seed7"].num_samples == 1
    assert cfgs["naive_simsiam_seed7"].num_samples == 3


def test_collapse_epoch_is_the_first_monitored_epoch_below_the_threshold() -> None:
    assert ns.collapse_epoch(_curve([0.5, 0.19, 0.07, 0.0])) == 60
    assert ns.collapse_epoch(_curve([0.5, 0.4])) is None
    assert ns.collapse_epoch([{"epoch": 4, "knn_top1": {"1": 0.1}}]) is None  # older metrics: no backbone std


def test_summary_counts_the_collapsed_seeds_with_an_interval() -> None:
    s = _doc()["summary"]
    first, second = s["per_seed"]
    assert first["collapsed_widths"] == [1.0, 0.25] and first["collapse_epoch"] == 60
    assert first["naive_minus_control_w1"] == {"diff_points": pytest.approx(-15.4), "intervals_overlap": False}
    assert second["collapsed_widths"] == [0.25] and second["collapse_epoch"] is None
    assert (s["naive_collapsed_all_widths"]["count"], s["naive_collapsed_all_widths"]["of"]) == (1, 2)
    assert s["naive_collapsed_any_width"]["count"] == 2 and s["control_collapsed"]["count"] == 0
    lo, hi = s["naive_collapsed_all_widths"]["ci"]
    assert lo < 0.5 < hi and 0.0 <= lo and hi <= 1.0


def _doc_with_us3l() -> dict[str, Any]:
    doc = _doc()
    rows = doc["results"] + [
        _row("us3l_seed1", 1.0, 0.72, [0.69, 0.75], 0.68),
        _row("us3l_seed1", 0.25, 0.74, [0.71, 0.77], 0.67),
        _row("us3l_seed2", 1.0, 0.31, [0.28, 0.34], 0.6),
        _row("us3l_seed2", 0.25, 0.08, [0.06, 0.10], 0.6),  # interval contains chance: collapsed
    ]
    runs = {**doc["runs"],
            "us3l_seed1": {"epochs_done": 160, "train_cpu_seconds": 1245.0, "status": "completed",
                           "curve": _curve([0.55, 0.6, 0.65, 0.68])},
            "us3l_seed2": {"epochs_done": 160, "train_cpu_seconds": 1250.0, "status": "completed", "curve": []}}
    return {**doc, "results": rows, "runs": runs, "summary": ns.summarize([1, 2], rows, runs)}


def test_summary_with_us3l_pairs_it_with_the_naive_run_of_the_same_seed() -> None:
    s = _doc_with_us3l()["summary"]
    first, second = s["per_seed"]
    assert first["us3l_collapsed_widths"] == [] and first["us3l_collapse_epoch"] is None
    assert first["naive_minus_us3l"] == [
        {"width": 1.0, "diff_points": pytest.approx(-62.3), "intervals_overlap": False},
        {"width": 0.25, "diff_points": pytest.approx(-62.5), "intervals_overlap": False}]
    assert second["us3l_collapsed_widths"] == [0.25]
    assert second["naive_minus_us3l"][0] == {"width": 1.0, "diff_points": pytest.approx(-1.0),
                                             "intervals_overlap": True}
    assert (s["us3l_collapsed_any_width"]["count"], s["us3l_collapsed_any_width"]["of"]) == (1, 2)
    assert "us3l_collapsed_any_width" not in _doc()["summary"]  # without us3l runs, no us3l rate


def test_docs_section_shows_us3l_per_seed() -> None:
    md = ns.render_markdown(_doc_with_us3l(), "x.json")
    assert "- us3l collapsed at one width or more: 1 of 2 seeds (95 % interval of the rate" in md
    assert ("| 1 | 1: 72.0 [69.0, 75.0] / 0.25: 74.0 [71.0, 77.0] | 0.67-0.68 | no width | – "
            "| 1: -62.3 / 0.25: -62.5 |") in md
    assert "| 2 | 1: 31.0 [28.0, 34.0] / 0.25: 8.0 [6.0, 10.0] | 0.60-0.60 | 0.25 | – | 1: -1.0 (overlap)" in md
    assert "| epoch | naive_simsiam_seed1 | naive_simsiam_one_width_seed1 | us3l_seed1 | naive_simsiam_seed2 |" in md
    assert "us3l kNN % per width" not in ns.render_markdown(_doc(), "x.json")


def test_docs_section_comes_from_the_document() -> None:
    md = ns.render_markdown(_doc(), "docs/results/naive_seeds/naive_seeds.json")
    assert "Seeds 1, 2; 160 epochs per run; lr schedule `epoch` (per-epoch cosine over 1000 epochs" in md
    assert ("| 1 | 1: 9.7 [8.0, 11.7] / 0.25: 11.5 [9.7, 13.6] | 0.00-0.00 | 1, 0.25 | 60 | 25.1 [22.5, 27.9] "
            "| 0.59 | no | -15.4 (intervals apart) |") in md
    assert "| 2 | 1: 30.0 [27.0, 33.0] / 0.25: 11.0 [9.0, 13.0] | 0.50-0.50 | 0.25 | – |" in md
    assert "collapsed at every width: 1 of 2 seeds (95 % interval of the rate" in md
    assert "The width-1 control collapsed: 0 of 2 seeds" in md
    assert "| naive_simsiam_one_width_seed2 | 160 | 640 | completed |" in md
    # the recipe column is read from each run's recorded config (a --set of the command shows there)
    assert "| naive_simsiam_seed1 | 160 | 1677 | completed | lr 0.05, wd 0.004, schedule none, regularizer off |" in md
    assert "| 60 | 0.07 | 0.60 | 0.45 |" in md  # lowest std over widths; seed 2's control recorded no curve
    assert "Random-init network (same kNN, per width): 1: 20.5 [18.1, 23.1] / 0.25: 15.5 [13.4, 17.9]." in md


def test_render_round_trip_and_other_kinds_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = tmp_path / "naive_seeds.json"
    result.write_text(json.dumps(_doc()), encoding="utf-8")
    page = tmp_path / "page.md"
    begin, end = ns.nl.markers(ns.SECTION)
    page.write_text(f"intro\n{begin}\nold\n{end}\nafter\n", encoding="utf-8")
    assert ns.main(["--render", str(result), "--docs", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert "old" not in text and "| seed |" in text and text.endswith(f"{end}\nafter\n")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**_doc(), "kind": "naive_long_benchmark"}), encoding="utf-8")
    assert ns.main(["--render", str(other), "--docs", str(page)]) == 1
    assert capsys.readouterr().err == f"error: {other} is not a us3l naive_seeds_benchmark file\n"


def test_the_evaluation_docs_hold_the_markers_once() -> None:
    text = (ROOT / "docs" / "evaluation.md").read_text(encoding="utf-8")
    for marker in ns.nl.markers(ns.SECTION):
        assert text.count(marker) == 1


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ns.main(["--quick", "--seeds", "1,2", "--epochs", "4", "--out", str(tmp_path), "--no-docs"]) == 0
    doc = json.loads((tmp_path / "naive_seeds.json").read_text())
    assert doc["kind"] == "naive_seeds_benchmark" and doc["seeds"] == [1, 2]
    assert set(doc["runs"]) == {"naive_simsiam_seed1", "naive_simsiam_seed2",
                                "naive_simsiam_one_width_seed1", "naive_simsiam_one_width_seed2"}
    assert all(r["status"] == "completed" for r in doc["runs"].values())
    assert {r["seed"] for r in doc["runs"].values()} == {1, 2}
    assert [e["seed"] for e in doc["summary"]["per_seed"]] == [1, 2]
    assert doc["summary"]["naive_collapsed_any_width"]["of"] == 2
    assert len([r for r in doc["results"] if r["width"] == 1.0]) == 4
    # each seed trains its own network
    a, b = ((tmp_path / f"seed{s}" / "naive_simsiam" / "checkpoint.safetensors").read_bytes() for s in (1, 2))
    assert a != b
    # --resume --with-us3l: the two finished seeds are evaluated again, a third one and us3l for every seed are
    # trained, one section for all of them
    assert ns.main(["--quick", "--seeds", "1,2,3", "--epochs", "4", "--out", str(tmp_path), "--no-docs", "--resume",
                    "--with-us3l"]) == 0
    again = json.loads((tmp_path / "naive_seeds.json").read_text())
    status = {n: r["status"] for n, r in again["runs"].items()}
    assert status == {"naive_simsiam_seed1": "reused", "naive_simsiam_seed2": "reused",
                      "naive_simsiam_one_width_seed1": "reused", "naive_simsiam_one_width_seed2": "reused",
                      "naive_simsiam_seed3": "completed", "naive_simsiam_one_width_seed3": "completed",
                      "us3l_seed1": "completed", "us3l_seed2": "completed", "us3l_seed3": "completed"}
    assert again["summary"]["naive_collapsed_any_width"]["of"] == 3
    assert again["summary"]["us3l_collapsed_any_width"]["of"] == 3
    assert {r["run"] for r in again["results"] if r["method"] == "us3l"} == {"us3l_seed1", "us3l_seed2", "us3l_seed3"}
    assert all(len(e["naive_minus_us3l"]) == 4 for e in again["summary"]["per_seed"])
    # a finished run trained with other settings is not taken for this command's
    assert ns.main(["--quick", "--seeds", "1", "--epochs", "3", "--out", str(tmp_path), "--no-docs",
                    "--resume"]) == 1
    assert "was trained with other settings (epochs: 4 != 3" in capsys.readouterr().err
