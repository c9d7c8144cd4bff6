"""benchmarks/collapse.py: the equal-time budget rule, the collapse criteria, and the generated docs section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.script_module import ROOT, load_script
from us3l.errors import US3LError

cb = load_script("benchmarks/collapse.py", "collapse_bench")


def test_width_lists_are_read_with_the_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """--eval-widths used to be read after all the training (30 minutes), a typo failing there with exit 1."""
    args = cb.parse_args([])
    assert args.single_widths == list(cb.SINGLE_WIDTHS) and args.eval_widths == list(cb.EVAL_WIDTHS)
    assert cb.parse_args(["--eval-widths", "1,0.5"]).eval_widths == [1.0, 0.5]
    assert [s for s, _, _ in cb.run_specs(cb.parse_args(["--single-widths", "0.5"]))][2:] == ["single_w0.5"]
    for flag, bad, msg in (("--eval-widths", "abc", "expects a number, got 'abc'"),
                           ("--single-widths", "1,x", "expects a number, got 'x' (in '1,x')"),
                           ("--single-widths", "0", "must be in (0, 1], got '0'")):
        with pytest.raises(SystemExit) as exc:
            cb.parse_args([flag, bad])
        assert exc.value.code == 2 and capsys.readouterr().err.startswith(f"error: argument {flag}: {msg} (see: ")


def test_budget_rule() -> None:
    # us3l: the largest multiple of 4 epochs that fits (schedule A), never fewer than 4
    flat = [20.0] * 4
    assert cb.us3l_epochs(300.0, flat) == 12
    assert cb.us3l_epochs(319.0, flat) == 12 and cb.us3l_epochs(320.0, flat) == 16
    assert cb.us3l_epochs(10.0, flat) == 4
    # one epoch per stage: stage 1 (full width only) 10 s, stages 2 / 3 / 4 at 24 / 22 / 20 s (larger
    # sub-networks early); 4 epochs cost their sum, 8 epochs twice it
    stages = [10.0, 24.0, 22.0, 20.0]
    assert cb.schedule_a_seconds(4, stages, 0.25) == 76.0 and cb.schedule_a_seconds(8, stages, 0.25) == 152.0
    assert cb.us3l_epochs(151.0, stages) == 4 and cb.us3l_epochs(152.0, stages) == 8
    # another first-stage share: 0.75 of 12 = 9 epochs of stage 1, then one epoch in each of stages 2-4;
    # 0.5 of 10 = 5, then stages 2 / 3 / 4 get 2 / 2 / 1 of the other 5 (sampling.schedule_a_min_width's rule)
    assert cb.schedule_a_seconds(12, stages, 0.75) == 9 * 10.0 + 24.0 + 22.0 + 20.0
    assert cb.schedule_a_seconds(10, stages, 0.5) == 5 * 10.0 + 2 * 24.0 + 2 * 22.0 + 20.0
    assert cb.us3l_epochs(156.0, stages, 0.75) == 12 and cb.us3l_epochs(155.0, stages, 0.75) == 11
    assert cb.min_us3l_epochs(0.25) == 4 and cb.min_us3l_epochs(0.75) == 11  # 0.75 of 11 rounds to 8
    # the others: the epoch count whose time is closest to the us3l run's, at least 1
    assert cb.equal_time_epochs(300.0, 40.0) == 8  # 7.5 -> 8
    assert cb.equal_time_epochs(300.0, 70.0) == 4
    assert cb.equal_time_epochs(1.0, 70.0) == 1
    # per-run share: budget minus probes, eval reserve and overheads, split evenly; never negative
    assert cb.per_run_share(1800.0, 200.0, 0.2, 40.0, 5) == pytest.approx((1440.0 - 240.0) / 5)
    assert cb.per_run_share(100.0, 200.0, 0.2, 0.0, 5) == 0.0


def test_schedule_a_seconds_follows_the_training_schedule() -> None:
    from us3l.train.sampling import schedule_a_min_width

    stages = [1.0, 1000.0, 100.0, 10.0]  # stage costs that a sum can be decoded from
    cost_of_min_width = {1.0: stages[0], 0.75: stages[1], 0.5: stages[2], 0.25: stages[3]}
    for epochs, stage1 in ((4, 0.25), (32, 0.25), (10, 0.5), (13, 0.3), (12, 0.75)):
        expected = sum(cost_of_min_width[schedule_a_min_width(e, epochs, 0.25, 1.0, stage1)] for e in range(epochs))
        assert cb.schedule_a_seconds(epochs, stages, stage1) == pytest.approx(expected), (epochs, stage1)


def test_collapse_criterion() -> None:
    chance = 0.1
    assert cb.is_collapsed(0.05, 0.9, [0.6, 0.7], chance)  # backbone std ~ 0
    assert cb.is_collapsed(0.6, 0.02, [0.6, 0.7], chance)  # projector std ~ 0
    assert cb.is_collapsed(0.6, 0.9, [0.08, 0.14], chance)  # kNN indistinguishable from chance
    assert not cb.is_collapsed(0.6, 0.9, [0.12, 0.2], chance)
    assert not cb.is_collapsed(0.6, None, None, chance)


def _row(method: str, w: float, acc: float, ci: list[float], collapsed: bool) -> dict[str, Any]:
    return {"method": method, "run": method, "width": w, "knn_top1": acc, "knn_top1_ci": ci, "knn_top5": None,
            "embedding_std": 0.5, "projector_std": 0.9, "chance_in_ci": False, "collapsed": collapsed, "macs": 1}


def _doc() -> dict[str, Any]:
    rows = [
        _row("us3l", 1.0, 0.62, [0.59, 0.65], False),
        _row("us3l", 0.5, 0.60, [0.57, 0.63], False),
        _row("us3l", 0.25, 0.55, [0.52, 0.58], False),
        _row("naive_simsiam", 1.0, 0.11, [0.09, 0.13], True),
        _row("naive_simsiam", 0.5, 0.10, [0.08, 0.12], True),
        _row("single", 0.5, 0.61, [0.58, 0.64], False),
        _row("single", 0.25, 0.63, [0.60, 0.66], False),
        _row("single_split_budget", 0.5, 0.50, [0.47, 0.53], False),
        _row(cb.NAIVE_CONTROL, 1.0, 0.30, [0.27, 0.33], False),
    ]
    cfg = {"lr": 0.05, "weight_decay": 5e-4, "schedule": "none", "regularizer": False}
    return {
        "date": "2026-12-01 12:00 UTC",
        "command": "python benchmarks/collapse.py",
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "machine": {"cpu": "cpu", "cores_available": 2, "torch_threads": 1, "load_average_at_end": [1.0, 1.0, 1.0],
                    "torch": "2"},
        "data": {"spec": "builtin", "source": "builtin", "subset_per_class": None, "name": "shapes",
                 "num_classes": 10, "num_train": 5000, "num_test": 1000, "chance": 0.1, "input_size": 32,
                 "knn": {"k": 20, "k_requested": 200, "temperature": 0.1}},
        "budget": {"minutes": 30, "rule": "equal time", "target_train_seconds": 250.0},
        "runs": {"us3l": {"method": "us3l", "epochs_done": 12, "train_seconds": 250.0, "status": "completed",
                          "config": cfg},
                 "naive_simsiam": {"method": "naive_simsiam", "epochs_done": 9, "train_seconds": 240.0,
                                   "status": "completed", "config": cfg},
                 "single_w0.5_split_budget": {"method": "single", "label": "single_split_budget", "epochs_done": 5,
                                              "train_seconds": 60.0, "status": "completed", "config": cfg,
                                              "cpu_ratio_to_us3l": 0.26},
                 cb.NAIVE_CONTROL: {"method": "naive_simsiam", "label": cb.NAIVE_CONTROL, "epochs_done": 9,
                                    "train_seconds": 90.0, "status": "completed",
                                    "config": {**cfg, "num_samples": 1}}},
        "results": rows,
        "baselines": {"random_init": {"1": {"knn_top1": 0.2, "knn_top1_ci": [0.18, 0.23]}},
                      "raw_pixels": {"knn_top1": 0.25, "knn_top1_ci": [0.22, 0.28]}},
        "verdict": cb.verdict(rows, [0.25, 0.5, 0.75]),
        "seconds": {"probe": 120.0, "train": 1200.0, "eval": 240.0, "total": 1560.0},
    }


def test_verdict_reads_the_rows() -> None:
    v = _doc()["verdict"]
    assert v["naive_collapsed_widths"] == [1.0, 0.5] and v["us3l_collapsed_widths"] == []
    by_w = {c["width"]: c for c in v["us3l_vs_single"]}
    assert set(by_w) == {0.25, 0.5}  # no single run at 0.75 in this document
    assert by_w[0.5]["diff_points"] == pytest.approx(-1.0) and by_w[0.5]["within"]
    assert by_w[0.25]["diff_points"] == pytest.approx(-8.0) and not by_w[0.25]["within"]
    assert by_w[0.25]["intervals_overlap"] is False and by_w[0.5]["intervals_overlap"] is True
    # train once vs one run per width with the time split: compared only where such a run exists
    split = v["us3l_vs_single_split_budget"]
    assert [c["width"] for c in split] == [0.5] and split[0]["diff_points"] == pytest.approx(10.0)
    assert cb.run_label("single_w0.5_split_budget", "single") == "single_split_budget"
    assert cb.run_label("single_w1_same_epochs", "single") == "single_same_epochs"
    assert cb.run_label("single_w1", "single") == "single"
    # the naive recipe at width 1 only: naive_simsiam's width-1 network against it, same epochs
    ctl = v["naive_vs_one_width"]
    assert ctl["diff_points"] == pytest.approx(-19.0) and ctl["intervals_overlap"] is False
    assert cb.run_label(cb.NAIVE_CONTROL, "naive_simsiam") == cb.NAIVE_CONTROL
    assert v["naive_widths"] == [1.0, 0.5]  # the control is not one of naive_simsiam's widths
    assert cb.verdict([r for r in _doc()["results"] if r["method"] != cb.NAIVE_CONTROL], [0.5])[
        "naive_vs_one_width"] is None


def test_us3l_and_single_are_compared_image_by_image_where_both_recorded_hits() -> None:
    """A result with per-image hits (us3l eval's knn_top1_hits): us3l − single gets its paired 95 % interval and
    McNemar p, and the docs line says so instead of whether the two Wilson intervals overlap."""
    from us3l.eval.hits import encode_hits

    n = 1000
    u, s = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    u[:600], s[:590] = True, True  # single's hits are a subset of us3l's: +1.0 point, 10 images one way
    rows = _doc()["results"]
    for r in rows:
        if r["width"] == 0.5 and r["method"] in ("us3l", "single"):
            hits = u if r["method"] == "us3l" else s
            r.update(knn_top1=float(hits.mean()), knn_top1_hits=encode_hits(hits), num_test=n)
    by_w = {c["width"]: c for c in cb.verdict(rows, [0.25, 0.5])["us3l_vs_single"]}
    assert by_w[0.25]["paired"] is None  # no hits: the intervals only
    pair = by_w[0.5]["paired"]
    assert pair["discordant"] == 10 and pair["images"] == n and pair["p"] == pytest.approx(2 * 0.5**10)
    assert pair["ci_points"] == [pytest.approx(0.38, abs=0.01), 1.0]
    assert cb._overlap(by_w[0.5]) == " [paired 95 % CI +0.4, +1.0; McNemar p 0.002]"
    assert cb._overlap(by_w[0.25]) == ", intervals do not overlap"


def test_docs_section_is_generated_between_markers(tmp_path: Path) -> None:
    md = tmp_path / "evaluation.md"
    md.write_text(f"# Eval\n\nbefore\n\n{cb.BEGIN}\nold numbers\n{cb.END}\n\nafter\n", encoding="utf-8")
    res = tmp_path / "collapse.json"
    res.write_text(json.dumps({**_doc(), "kind": cb.BENCH_KIND, "schema_version": cb.BENCH_SCHEMA}), encoding="utf-8")
    assert cb.main(["--render", str(res), "--docs", str(md)]) == 0
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Eval\n\nbefore\n\n" + cb.BEGIN) and text.endswith(cb.END + "\n\nafter\n")
    assert "old numbers" not in text
    body = text[text.index(cb.BEGIN) : text.index(cb.END)]
    assert "| us3l | 0.5 | 60.0 [57.0, 63.0] |" in body
    assert "| naive_simsiam | 1 | 11.0 [9.0, 13.0] |" in body and "**yes**" in body
    assert "commit `0123456789`" in body and "2 cores available" in body and "2026-12-01" in body
    assert "python benchmarks/collapse.py" in body and "chance 10.0 %" in body
    assert "same training time: us3l − single = -8.0 points" in body and "Raw-pixel kNN: 25.0 [22.0, 28.0] %" in body
    assert "each of the 1 widths trained alone with 1/1 of the us3l run's time (together 0.26x" in body
    assert "- width 0.5, time split over the widths: us3l − single = +10.0 points, intervals do not overlap" in body
    assert (f"- naive_simsiam at width 1 against the same recipe trained at width 1 only, same epochs "
            f"({cb.NAIVE_CONTROL}): -19.0 points, intervals do not overlap") in body
    assert f"| {cb.NAIVE_CONTROL} | 9 | 90.0 | 90.0 | lr 0.05, wd 0.0005, width 1 only, regularizer off |" in body
    # idempotent: rendering again gives the same file
    assert cb.main(["--render", str(res), "--docs", str(md)]) == 0
    assert md.read_text(encoding="utf-8") == text


def test_missing_markers_are_a_one_line_error(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(US3LError, match="markers") as exc:
        cb.update_docs(md, "section")
    assert "\n" not in str(exc.value)
    assert md.read_text(encoding="utf-8") == "no markers\n"
    with pytest.raises(US3LError, match="is not a file: --docs names the markdown file"):
        cb.update_docs(tmp_path / "missing.md", "section")
    assert not (tmp_path / "missing.md").exists()


def test_docs_flag_runs_whose_time_missed_the_equal_time_rule() -> None:
    runs = {"us3l": {"method": "us3l", "cpu_ratio_to_us3l": 1.0},
            "single_w0.5": {"method": "single", "cpu_ratio_to_us3l": 1.21},
            "single_w1": {"method": "single", "cpu_ratio_to_us3l": 0.97},
            "single_w0.5_same_epochs": {"method": "single", "cpu_ratio_to_us3l": 0.5}}
    assert cb._time_share(runs, 0.5) == "; single had 1.21x us3l's CPU time"
    assert cb._time_share(runs, 1.0) == ""  # within the tolerance
    assert cb._time_share(runs, 0.25) == ""  # no such run


def test_the_evaluation_docs_hold_the_markers_once() -> None:
    text = (ROOT / "docs" / "evaluation.md").read_text(encoding="utf-8")
    assert text.count(cb.BEGIN) == 1 and text.count(cb.END) == 1 and text.index(cb.BEGIN) < text.index(cb.END)


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path: Path) -> None:
    assert cb.main(["--quick", "--out", str(tmp_path), "--no-docs", "--naive-set", "weight_decay=0.004"]) == 0
    doc = json.loads((tmp_path / "collapse.json").read_text())
    assert doc["kind"] == "collapse_benchmark"
    singles = {f"single_w{w}" for w in ("0.25", "0.5", "0.75", "1")}
    extra = {f"{s}{suffix}" for s in singles for suffix in ("_same_epochs", "_split_budget")}
    assert set(doc["runs"]) == {"us3l", "naive_simsiam", *singles, *extra, cb.NAIVE_CONTROL}
    control = doc["runs"][cb.NAIVE_CONTROL]
    assert control["epochs"] == doc["runs"]["naive_simsiam"]["epochs"] and control["config"]["num_samples"] == 1
    assert [r["width"] for r in doc["results"] if r["method"] == cb.NAIVE_CONTROL] == [1.0]
    assert doc["verdict"]["naive_vs_one_width"] is not None
    assert all(doc["runs"][f"{s}_same_epochs"]["epochs"] == doc["runs"]["us3l"]["epochs"] for s in singles)
    assert all(doc["runs"][f"{s}_split_budget"]["epochs"] <= doc["runs"][s]["epochs"] for s in singles)
    assert {r["method"] for r in doc["results"]} >= {"single_split_budget", "single_same_epochs"}
    assert all(r["train_cpu_seconds"] > 0 and r["status"] == "completed" for r in doc["runs"].values())
    naive = doc["runs"]["naive_simsiam"]["config"]
    assert (naive["schedule"], naive["regularizer"], naive["lr"]) == ("none", False, 0.05)  # the naive recipe
    # --naive-set reached the naive run and its control, and no other run
    assert naive["weight_decay"] == control["config"]["weight_decay"] == 0.004
    assert all(r["config"]["weight_decay"] == 1e-4 for n, r in doc["runs"].items() if "naive" not in n)
    assert doc["budget"]["probes"]["naive_simsiam"]["epoch_cpu_seconds"] > 0
    assert doc["runs"]["us3l"]["epochs_done"] % 4 == 0
    assert all(r["knn_top1_ci"] is not None for r in doc["results"])
    assert doc["data"]["chance"] == pytest.approx(1 / doc["data"]["num_classes"])
    # the equal-time singles are sized from the CPU seconds the us3l run measured, not from the prediction
    budget = doc["budget"]
    assert budget["single_target_cpu_seconds"] == doc["runs"]["us3l"]["train_cpu_seconds"]
    for s in singles:
        probe = budget["probes"][s]["epoch_cpu_seconds"]
        assert doc["runs"][s]["epochs"] == cb.equal_time_epochs(budget["single_target_cpu_seconds"], probe)
    order = ["us3l", "naive_simsiam", *(f"single_w{w}" for w in ("0.25", "0.5", "0.75", "1"))]
    assert list(doc["runs"])[:6] == order and list(doc["runs"])[-1] == cb.NAIVE_CONTROL


def test_naive_at_random_init_and_monitor_curves() -> None:
    rows = _doc()["results"]
    v = cb.verdict(rows, [0.5], {"1": {"knn_top1_ci": [0.12, 0.16]}, "0.5": {"knn_top1_ci": [0.3, 0.4]}})
    assert v["naive_at_random_init_widths"] == [1.0]  # [0.09, 0.13] meets [0.12, 0.16]; 0.5 does not
    curve = [{"epoch": 4, "knn_top1": {"1": 0.3, "0.25": 0.2}}, {"epoch": 8, "knn_top1": {"1": 0.2, "0.25": 0.15}}]
    lines = cb.render_curves({"naive_simsiam": {"curve": curve}, "single_w1": {"curve": []}})
    assert "| epoch | naive_simsiam w1 | naive_simsiam w0.25 |" in lines
    assert "| 4 | 30.0 | 20.0 |" in lines and "| 8 | 20.0 | 15.0 |" in lines
    assert cb.render_curves({"us3l": {"curve": curve[:1]}}) == []  # one point is not a curve


def test_naive_set_reaches_the_naive_runs_only(tmp_path: Path) -> None:
    args = cb.parse_args(["--quick", "--out", str(tmp_path), "--set", "lr=0.1",
                          "--naive-set", "weight_decay=0.004", "--naive-set", "lr=0.05"])
    naive = cb.make_config(args, "naive_simsiam", 4, tmp_path / "n", None)
    control = cb.make_config(args, "naive_simsiam", 4, tmp_path / "c", None, extra={"num_samples": 1})
    probe = cb.make_config(args, "naive_simsiam", 1, tmp_path / "p", None, probe=True)
    for cfg in (naive, control, probe):
        assert (cfg.weight_decay, cfg.lr) == (0.004, 0.05)  # --naive-set wins over --set
    us3l = cb.make_config(args, "us3l", 4, tmp_path / "u", None)
    single = cb.make_config(args, "single", 4, tmp_path / "s", 0.5)
    for cfg in (us3l, single):
        assert cfg.lr == 0.1 and cfg.weight_decay == 1e-4  # --set only; the us3l recipe's weight decay
    with pytest.raises(US3LError, match=r"^--naive-set expects key=value, got 'weight_decay'$"):
        cb.make_config(cb.parse_args(["--quick", "--naive-set", "weight_decay"]), "naive_simsiam", 4, tmp_path, None)


def test_us3l_set_reaches_the_us3l_run_and_its_probe_only(tmp_path: Path) -> None:
    args = cb.parse_args(["--quick", "--out", str(tmp_path), "--set", "lr=0.1", "--us3l-set", "num_samples=4",
                          "--us3l-set", "lr=0.3"])
    for cfg in (cb.make_config(args, "us3l", 4, tmp_path / "u", None),
                cb.make_config(args, "us3l", 4, tmp_path / "p", None, probe=True)):
        assert (cfg.num_samples, cfg.lr) == (4, 0.3)  # --us3l-set wins over --set
    # the others keep their own: the naive recipe's three widths (the reference's), the default file's for single
    assert (cb.make_config(args, "naive_simsiam", 4, tmp_path / "n", None).num_samples,
            cb.make_config(args, "naive_simsiam", 4, tmp_path / "n", None).lr) == (3, 0.1)
    assert (cb.make_config(args, "single", 4, tmp_path / "s", 0.5).num_samples,
            cb.make_config(args, "single", 4, tmp_path / "s", 0.5).lr) == (2, 0.1)
    run = {"method": "us3l", "config": {"schedule": "A", "num_samples": 2, "regularizer": True, "reg_lambda": 5e-5,
                                        "lr": 0.3}}
    text = "lr 0.3, no weight decay, schedule A, 2 widths per step, regularizer on (lambda 5e-05)"
    assert cb.recipe_text(run) == text
    with pytest.raises(US3LError, match=r"^--us3l-set expects key=value, got 'num_samples'$"):
        cb.make_config(cb.parse_args(["--quick", "--us3l-set", "num_samples"]), "us3l", 4, tmp_path, None)


def test_a_shared_weight_decay_reaches_the_runs_without_the_regularizer(tmp_path: Path) -> None:
    """The documented stress (`collapse_seeds.py --set weight_decay=0.004 ...`, `naive_seeds.py ... --with-us3l`):
    `us3l train` refuses a weight decay beside the group regularizer, which replaces it, so the regularized runs
    (us3l, single) get their recipe's instead of a refusal; the naive runs train with it."""
    args = cb.parse_args(["--quick", "--out", str(tmp_path), "--set", "weight_decay=0.004", "--set", "lr=0.05",
                          "--set", "lr_schedule=constant"])
    naive = cb.make_config(args, "naive_simsiam", 4, tmp_path / "n", None)
    control = cb.make_config(args, "naive_simsiam", 4, tmp_path / "c", None, extra={"num_samples": 1})
    assert naive.weight_decay == control.weight_decay == 0.004 and not naive.regularizer
    for cfg in (cb.make_config(args, "us3l", 4, tmp_path / "u", None),
                cb.make_config(args, "single", 4, tmp_path / "s", 0.5)):
        assert (cfg.regularizer, cfg.weight_decay, cfg.lr) == (True, 1e-4, 0.05)
    own = cb.parse_args(["--quick", "--naive-set", "regularizer=true", "--naive-set", "weight_decay=0.004"])
    with pytest.raises(US3LError, match=r"^weight_decay 0.004 has no effect while the group regularizer is on"):
        cb.make_config(own, "naive_simsiam", 4, tmp_path / "o", None)  # a run's own setting is not dropped


def test_section_option_regenerates_that_section_only(tmp_path: Path) -> None:
    md = tmp_path / "evaluation.md"
    begin, end = cb.section_markers("collapse-x")
    md.write_text(f"{cb.BEGIN}\nmain\n{cb.END}\n{begin}\nold\n{end}\n", encoding="utf-8")
    res = tmp_path / "collapse.json"
    res.write_text(json.dumps({**_doc(), "kind": cb.BENCH_KIND, "schema_version": cb.BENCH_SCHEMA}), encoding="utf-8")
    assert cb.main(["--render", str(res), "--docs", str(md), "--section", "collapse-x"]) == 0
    text = md.read_text(encoding="utf-8")
    assert text.startswith(f"{cb.BEGIN}\nmain\n{cb.END}\n{begin}\n_Generated by") and "old" not in text
    assert cb.main(["--render", str(res), "--docs", str(md), "--section", "nowhere"]) == 1


def test_missing_section_fails_before_any_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "evaluation.md"
    md.write_text(f"{cb.BEGIN}\n{cb.END}\n", encoding="utf-8")
    out = tmp_path / "runs"
    assert cb.main(["--out", str(out), "--docs", str(md), "--section", "nowhere"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {md} has no '<!-- nowhere:begin -->' ... '<!-- nowhere:end -->' markers to regenerate\n"
    assert not out.exists()  # nothing trained, nothing written


def test_the_recipe_of_a_regularized_run_says_it_had_no_weight_decay() -> None:
    """The group regularizer replaces weight decay (the optimizer's is 0), so a us3l run given `--set
    weight_decay=0.004` trained without it; the runs tables said "wd 0.004, ..., regularizer on", and the docs
    read that as US3L trained under the naive run's optimizer."""
    on = {"method": "us3l", "config": {"lr": 0.05, "weight_decay": 0.004, "schedule": "A", "regularizer": True,
                                        "reg_lambda": 5e-05}}
    assert cb.recipe_text(on) == "lr 0.05, no weight decay, schedule A, regularizer on (lambda 5e-05)"
    off = {"method": "naive_simsiam", "config": {"lr": 0.05, "weight_decay": 0.004, "schedule": "none",
                                                 "regularizer": False}}
    assert cb.recipe_text(off) == "lr 0.05, wd 0.004, schedule none, regularizer off"


def test_the_plan_counts_runs_that_train_one_after_the_other_in_a_slot() -> None:
    """2026-12-06: naive_simsiam's width-1 control (0.4 of a share) trains after naive_simsiam in its slot, beside
    the us3l run; the plan spread it over the slots (3.2 shares where the run took 3.4) and the benchmark took
    30.6 of its 30 minutes. The runs start in order on the first free slot, as run_parallel starts them."""
    assert cb.makespan([1.0, 1.0, 0.4], 2) == (pytest.approx(1.4), 2)  # us3l | naive_simsiam, then the control
    assert cb.makespan([1.0, 1.0, 1.0, 1.0], 2) == (2.0, 2)  # the four equal-time singles
    assert cb.makespan([1.0, 0.25, 0.25, 0.25, 0.25], 2) == (1.0, 4)  # split-budget quarters fill the other slot
    assert cb.makespan([0.5, 0.5], 1) == (1.0, 2)
    assert cb.makespan([], 2) == (0.0, 0)


@pytest.mark.parametrize("flags", [["--no-same-epochs", "--no-split-budget"], [], ["--no-naive-control"]])
def test_the_plan_sizes_every_run_without_training(flags: list[str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """train_all's plan with every combination of the optional runs (``--no-split-budget`` divided by zero in the
    first version of makespan's plan), the training replaced by runs that report fixed CPU seconds per epoch."""
    per_epoch = {"us3l": 5.0, "naive_simsiam": 9.0}

    def fake_train(cfg: Any) -> dict[str, Any]:
        name = Path(cfg.out).name
        t = per_epoch.get(name, per_epoch.get(cfg.method, 2.0 + float(cfg.single_width)))
        return {"status": "completed", "message": "", "epoch_cpu_seconds": [t] * cfg.epochs,
                "train_seconds": t * cfg.epochs, "train_cpu_seconds": t * cfg.epochs,
                "wall_seconds": t * cfg.epochs + 3.0, "epochs": cfg.epochs, "knn_top1": None}

    monkeypatch.setattr(cb, "train", fake_train)
    args = cb.parse_args(["--out", str(tmp_path), "--no-docs", *flags])
    logged: list[str] = []
    runs, budget = cb.train_all(args, tmp_path, logged.append, __import__("time").perf_counter())
    assert runs["us3l"]["epochs"] % 4 == 0 and runs["us3l"]["epochs"] >= 4
    share = budget["share_seconds"]
    assert 0 < share and budget["target_train_seconds"] <= share
    assert any("shares on 2 slots" in line for line in logged)
    assert ("naive_simsiam_one_width" in runs) is ("--no-naive-control" not in flags)
    assert any(n.endswith("_split_budget") for n in runs) is ("--no-split-budget" not in flags)
