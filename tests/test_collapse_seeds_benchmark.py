"""benchmarks/collapse_seeds.py: per-seed inputs, comparability checks, the summary over seeds, the docs section."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from tests.script_module import ROOT, load_script
from us3l.errors import US3LError

cs = load_script("benchmarks/collapse_seeds.py", "collapse_seeds_bench")
RECORDED = ROOT / "docs" / "results" / "collapse.json"


def _seed_doc(seed: int, shift: float = 0.0) -> dict[str, Any]:
    """The recorded collapse result, relabelled as trained with ``seed``, us3l's kNN moved by ``shift``."""
    doc = json.loads(RECORDED.read_text())
    for run in doc["runs"].values():
        run["config"]["seed"] = seed
    for row in doc["results"]:
        if row["method"] == "us3l":
            row["knn_top1"] += shift
            row["knn_top1_ci"] = [row["knn_top1_ci"][0] + shift, row["knn_top1_ci"][1] + shift]
    for e in doc["verdict"]["us3l_vs_single"]:
        e["us3l"] += shift
        e["diff_points"] = round(e["diff_points"] + 100 * shift, 2)
    return doc


def _write(tmp_path: Path, seed: int, doc: dict[str, Any]) -> Path:
    path = tmp_path / f"seed{seed}.json"
    path.write_text(json.dumps(doc))
    return path


def test_args_defaults_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    args = cs.parse_args([])
    assert args.seeds == [100, 1, 2] and args.us3l_epochs == cs.DEFAULT_US3L_EPOCHS and args.docs is None
    assert cs.parse_args(["--quick"]).us3l_epochs == cs.QUICK_US3L_EPOCHS
    assert cs.parse_args(["--seeds", "1,2", "--result", "2=a.json"]).result_paths == {2: Path("a.json")}
    for bad, msg in ((["--seeds", "1,1"], "argument --seeds: lists 1 twice"),
                     (["--result", "a.json"], "--result expects SEED=JSON, got 'a.json'"),
                     (["--seeds", "1,2", "--result", "3=a.json"], "seed 3 is not in --seeds 1,2"),
                     (["--us3l-epochs", "0"], "argument --us3l-epochs: must be >= 1, got '0'")):
        with pytest.raises(SystemExit):
            cs.parse_args(bad)
        assert msg in capsys.readouterr().err


def test_collapse_command_line_keeps_only_the_claims_runs(tmp_path: Path) -> None:
    args = cs.parse_args(["--seeds", "1", "--set", "lr=0.1", "--jobs", "1", "--us3l-set", "num_samples=2"])
    argv = cs.collapse_argv(args, 1, tmp_path / "seed1")
    assert argv[:6] == ["--seed", "1", "--out", str(tmp_path / "seed1"), "--us3l-epochs", "32"]
    assert {"--no-same-epochs", "--no-split-budget", "--no-naive-control", "--no-docs"} <= set(argv)
    assert argv[argv.index("--set") + 1] == "lr=0.1" and argv[argv.index("--jobs") + 1] == "1"
    parsed = cs.cb.parse_args(argv)  # collapse.py accepts it
    assert parsed.us3l_epochs == 32 and parsed.seed == 1 and not parsed.same_epochs and parsed.no_docs
    assert parsed.us3l_sets == ["num_samples=2"] and parsed.sets == ["lr=0.1"]


def test_load_seed_rejects_another_seed_and_kind(tmp_path: Path) -> None:
    path = _write(tmp_path, 7, _seed_doc(7))
    assert cs.load_seed(path, 7)["runs"]["us3l"]["config"]["seed"] == 7
    with pytest.raises(US3LError, match=r"trained with seed\(s\) \[7\], not 8"):
        cs.load_seed(path, 8)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kind": "accuracy", "schema_version": 2}))
    with pytest.raises(US3LError, match="is not a us3l collapse_benchmark file"):
        cs.load_seed(other, 7)


def test_seeds_must_train_the_same_experiment() -> None:
    a, b = _seed_doc(1), _seed_doc(2)
    cs.check_comparable({1: a, 2: b})  # seeds, paths and epochs of the equal-time runs may differ
    b["runs"]["single_w0.5"]["epochs"] += 3
    cs.check_comparable({1: a, 2: b})
    c = copy.deepcopy(b)
    c["runs"]["us3l"]["epochs"] = 28
    with pytest.raises(US3LError, match="us3l trained 28 epochs in seed 2 and 32 in seed 1"):
        cs.check_comparable({1: a, 2: c})
    d = copy.deepcopy(b)
    d["runs"]["single_w0.75"]["config"]["lr"] = 0.1
    with pytest.raises(US3LError, match="seed 2 trained single_w0.75 with other settings than seed 1: lr"):
        cs.check_comparable({1: a, 2: d})
    f = copy.deepcopy(b)
    f["data"]["num_train"] = 1000
    with pytest.raises(US3LError, match="seed 2 trained on other data than seed 1: num_train"):
        cs.check_comparable({1: a, 2: f})
    g = copy.deepcopy(b)  # a subset's folder is written per seed: the path may differ, the data may not
    for run in g["runs"].values():
        run["config"]["data"] = "folder:/tmp/seed2/_subset"
    cs.check_comparable({1: a, 2: g})
    e = copy.deepcopy(b)
    del e["runs"]["single_w1"]
    with pytest.raises(US3LError, match="seed 2 has no single_w1 run"):
        cs.check_comparable({1: a, 2: e})
    h = copy.deepcopy(b)  # singles sized from the us3l run's measured time vs. the older prediction
    h["budget"]["single_target_cpu_seconds"] = 331.0
    with pytest.raises(US3LError, match="seed 2 sized its single runs from the us3l run's measured CPU time and "
                                        "seed 1 from its predicted one; re-run the older result"):
        cs.check_comparable({1: a, 2: h})


def test_summary_mean_t_interval_and_seeds_meeting_the_claim() -> None:
    docs = {100: _seed_doc(100), 1: _seed_doc(1, -0.05), 2: _seed_doc(2, +0.03)}
    s = cs.summarize([100, 1, 2], docs, 2.0)
    assert s["widths"] == [1.0, 0.75, 0.5, 0.25]
    row = next(r for r in s["us3l_vs_single"] if r["width"] == 0.25)
    base = next(e for e in docs[100]["verdict"]["us3l_vs_single"] if e["width"] == 0.25)["diff_points"]
    diffs = [base, round(base - 5, 2), round(base + 3, 2)]
    assert [row["diff_points"][k] for k in ("100", "1", "2")] == pytest.approx(diffs)
    assert row["mean_diff_points"] == pytest.approx(sum(diffs) / 3, abs=0.01)
    lo, hi = stats.t.interval(0.95, 2, loc=sum(diffs) / 3, scale=stats.sem(diffs))
    assert row["mean_diff_ci"] == pytest.approx([lo, hi], abs=0.01)
    assert row["seeds_met"] == sum(d >= -2.0 for d in diffs) and row["seeds"] == 3 and row["claimed"]
    assert not next(r for r in s["us3l_vs_single"] if r["width"] == 1.0)["claimed"]
    assert cs.t_interval([1.0]) is None
    assert s["naive_collapsed_widths"] == {"100": [], "1": [], "2": []}


def test_end_to_end_from_results_and_rendered_section(tmp_path: Path) -> None:
    paths = {seed: _write(tmp_path, seed, _seed_doc(seed, shift)) for seed, shift in ((100, 0.0), (1, -0.05))}
    dirty = json.loads(paths[1].read_text())
    dirty["git"] = {"commit": "0123456789abcdef", "dirty": True}
    entry = next(e for e in dirty["verdict"]["us3l_vs_single"] if e["width"] == 0.25)
    entry["paired"] = {"ci_points": [-9.25, -1.5], "p": 0.004, "discordant": 90, "images": 1000}
    paths[1].write_text(json.dumps(dirty))
    docs = tmp_path / "doc.md"
    docs.write_text("# x\n<!-- collapse-seeds:begin -->\nold\n<!-- collapse-seeds:end -->\ntail\n")
    out = tmp_path / "out"
    argv = ["--seeds", "100,1", "--out", str(out), "--docs", str(docs),
            *(x for seed, p in paths.items() for x in ("--result", f"{seed}={p}"))]
    assert cs.main(argv) == 0
    doc = json.loads((out / "collapse_seeds.json").read_text())
    assert doc["kind"] == cs.BENCH_KIND and doc["schema_version"] == cs.BENCH_SCHEMA and doc["us3l_epochs"] == 32
    assert doc["tool_version"] and doc["date"] and len(doc["git"]["commit"]) == 40 and doc["machine"]["cpu"]
    assert set(doc["per_seed"]) == {"100", "1"} and "config" not in doc["per_seed"]["1"]["runs"]["us3l"]
    text = docs.read_text()
    assert "old" not in text and text.endswith("tail\n")
    assert "| seed | run date | commit | us3l CPU s |" in text and "| 0.25 | us3l |" in text
    assert "mean [95 % t interval over seeds]" in text and "of 2 |" in text
    assert "1 (reference point, not claimed)" in text and "| `0123456` (uncommitted changes) |" in text
    # seed 1's paired interval in its cell; seed 100's result has no hits, so its cell has none
    row = next(ln for ln in text.splitlines() if ln.startswith("| 0.25 | ") and "single" not in ln and "us3l" not in ln)
    assert f"{entry['diff_points']:+.1f} [-9.2, -1.5] |" in row and row.count("[") == 2  # seed 1's and the mean's
    assert "In brackets: the seed's difference image by image" in text
    # a seed whose result trained another seed is refused before anything is written
    (out / "collapse_seeds.json").unlink()
    bad = argv[:-1] + [f"1={paths[100]}"]
    assert cs.main(bad) == 1 and not (out / "collapse_seeds.json").exists()


def test_render_into_a_named_section_leaves_the_default_one(tmp_path: Path) -> None:
    paths = {seed: _write(tmp_path, seed, _seed_doc(seed)) for seed in (100, 1)}
    out = tmp_path / "out"
    assert cs.main(["--seeds", "100,1", "--out", str(out), "--no-docs",
                    *(x for seed, p in paths.items() for x in ("--result", f"{seed}={p}"))]) == 0
    docs = tmp_path / "doc.md"
    docs.write_text("<!-- collapse-seeds:begin -->\nkept\n<!-- collapse-seeds:end -->\n"
                    "<!-- collapse-seeds-64:begin -->\nold\n<!-- collapse-seeds-64:end -->\n")
    argv = ["--render", str(out / "collapse_seeds.json"), "--docs", str(docs), "--section", "collapse-seeds-64"]
    assert cs.main(argv) == 0
    text = docs.read_text()
    assert "kept" in text and "old" not in text and "| seed | run date | commit | us3l CPU s |" in text
    assert "In brackets" not in text  # results without per-image hits: no paired intervals to explain


def test_against_compares_the_us3l_runs_of_two_results_seed_by_seed(tmp_path: Path) -> None:
    """--against: us3l here − us3l of another result (another recipe, same seeds and data), per seed and width,
    with the paired interval where both recorded per-image hits."""
    import numpy as np

    from us3l.eval.hits import encode_hits

    def result(folder: str, shift: float, hits_right: int, num_samples: int) -> Path:
        out = tmp_path / folder
        paths = {}
        for seed in (100, 1):
            doc = _seed_doc(seed, shift)
            doc["runs"]["us3l"]["config"]["num_samples"] = num_samples
            row = next(r for r in doc["results"] if r["method"] == "us3l" and r["width"] == 0.25)
            hits = np.zeros(1000, dtype=bool)
            hits[:hits_right] = True
            row.update(knn_top1=hits_right / 1000, knn_top1_hits=encode_hits(hits), num_test=1000)
            paths[seed] = _write(tmp_path, seed, doc)
        argv = ["--seeds", "100,1", "--out", str(out), "--no-docs",
                *(x for seed, p in paths.items() for x in ("--result", f"{seed}={p}"))]
        if folder == "here":
            argv += ["--against", str(tmp_path / "there" / "collapse_seeds.json")]
        assert cs.main(argv) == 0
        return out / "collapse_seeds.json"

    result("there", 0.0, 600, 3)
    doc = json.loads(result("here", 0.02, 610, 2).read_text())
    ag = doc["against"]
    assert ag["recipe"] == ["num_samples 2 vs 3"] and ag["us3l_epochs"] == [32, 32]
    rows = {r["width"]: r for r in ag["per_width"]}
    assert rows[0.25]["diff_points"] == {"100": pytest.approx(1.0), "1": pytest.approx(1.0)}
    assert rows[0.25]["paired_ci_points"]["100"] == [pytest.approx(0.38, abs=0.01), 1.0]
    assert rows[0.5]["diff_points"]["1"] == pytest.approx(2.0) and rows[0.5]["paired_ci_points"]["1"] is None
    text = cs.render_markdown(doc, "x.json")
    assert "the us3l recipes differ in: num_samples 2 vs 3" in text and "| 0.25 | +1.0 [+0.4, +1.0] |" in text
    other = tmp_path / "there" / "collapse_seeds.json"
    with pytest.raises(US3LError, match=r"has no seed 7: --against needs the same seeds"):
        cs.compare_against({**doc, "seeds": [7]}, other)


@pytest.mark.slow
def test_quick_run_trains_every_seed_with_fixed_us3l_epochs(tmp_path: Path) -> None:
    assert cs.main(["--quick", "--seeds", "1,2", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "collapse_seeds.json").read_text())
    for seed in ("1", "2"):
        runs = doc["per_seed"][seed]["runs"]
        assert runs["us3l"]["epochs"] == cs.QUICK_US3L_EPOCHS
        assert set(runs) == {"us3l", "naive_simsiam", "single_w0.25", "single_w0.5", "single_w0.75", "single_w1"}
        assert all(r["status"] == "completed" for r in runs.values())
    assert doc["per_seed"]["1"]["target_train_seconds"] > 0


def test_the_evaluation_docs_hold_the_markers_once() -> None:
    text = (ROOT / "docs" / "evaluation.md").read_text(encoding="utf-8")
    begin, end = cs.nl.markers(cs.SECTION)
    assert text.count(begin) == 1 and text.count(end) == 1 and text.index(begin) < text.index(end)
