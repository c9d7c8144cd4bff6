"""benchmarks/recipe_sweep.py: variant parsing, the runs per (variant, seed), pairing by seed, the docs section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.script_module import ROOT, load_script

rs = load_script("benchmarks/recipe_sweep.py", "recipe_sweep_bench")


def test_parse_variant_yaml_values_and_errors() -> None:
    from us3l.errors import US3LError

    assert rs.parse_variant("old temperature=0.5 ema_momentum=0.99") == ("old", {"temperature": 0.5,
                                                                               "ema_momentum": 0.99})
    assert rs.parse_variant("'narrow' 'model_kwargs={base_channels: 8}'") == (
        "narrow", {"model_kwargs": {"base_channels": 8}})
    with pytest.raises(US3LError, match="expects 'NAME key=value"):
        rs.parse_variant("lr=0.1")
    with pytest.raises(US3LError, match="expected key=value, got 'lr'"):
        rs.parse_variant("x lr")


def test_args_default_variants_docs_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    args = rs.parse_args([])
    assert [n for n, _ in args.variant_list] == ["reference_heads", "default"]
    assert args.seeds == [100, 1, 2] and Path(args.docs) == ROOT / "docs" / "training.md"
    assert rs.parse_args(["--quick"]).docs is None
    for bad, msg in ((["--seeds", "a,b"], "argument --seeds: expects a whole number, got 'a'"),
                     (["--seeds", "1,1"], "argument --seeds: lists 1 twice"),
                     (["--variant", "a", "--variant", "a"], "must differ")):
        with pytest.raises(SystemExit):
            rs.parse_args(bad)
        assert msg in capsys.readouterr().err


def test_run_tasks_every_variant_and_seed(tmp_path: Path) -> None:
    args = rs.parse_args(["--variant", "a temperature=0.5", "--variant", "b", "--seeds", "3,4", "--epochs", "8"])
    tasks = rs.run_tasks(args, tmp_path)
    assert [n for n, _ in tasks] == ["a_seed3", "b_seed3", "a_seed4", "b_seed4"]
    cfgs = dict(tasks)
    assert cfgs["a_seed3"].temperature == 0.5 and cfgs["b_seed3"].temperature != 0.5
    assert {c.seed for c in cfgs.values()} == {3, 4} and {c.epochs for c in cfgs.values()} == {8}
    assert all(c.method == "us3l" and Path(c.out) == tmp_path / n for n, c in tasks)


def _row(run: str, w: float, acc: float) -> dict[str, object]:
    return {"run": run, "width": w, "knn_top1": acc, "knn_top1_ci": [acc - 0.03, acc + 0.03]}


def test_summary_pairs_by_seed_and_renders() -> None:
    variants = [("a", {"temperature": 0.5}), ("b", {})]
    rows = [_row("a_seed1", 1.0, 0.40), _row("b_seed1", 1.0, 0.50), _row("a_seed2", 1.0, 0.36),
            _row("b_seed2", 1.0, 0.38)]
    s = rs.summarize(variants, [1, 2], rows)
    assert s["mean_knn_top1"]["b"]["1"] == pytest.approx(0.44)
    pairs = {d["seed"]: d for d in s["paired_vs_first"]}
    assert pairs[1]["diff_points"] == pytest.approx(10.0) and pairs[1]["intervals_overlap"] is False
    assert pairs[2]["diff_points"] == pytest.approx(2.0) and pairs[2]["intervals_overlap"] is True
    doc = {"command": "python benchmarks/recipe_sweep.py", "date": "2026-12-04 00:10 UTC",
           "git": {"commit": "abcdef0", "dirty": False}, "epochs": 12, "seconds": {"total": 420.0},
           "data": {"name": "builtin-shapes", "num_classes": 10, "num_train": 2000, "num_test": 1000,
                    "input_size": 16, "chance": 0.1},
           "variants": [{"name": n, "overrides": o} for n, o in variants], "seeds": [1, 2], "summary": s,
           "results": rows, "runs": {"a_seed1": {"train_cpu_seconds": 120.0}},
           "baselines": {"random_init": {"1": {"knn_top1": 0.2, "knn_top1_ci": [0.18, 0.23]}},
                         "raw_pixels": {"knn_top1": 0.535, "knn_top1_ci": [0.504, 0.566]}}}
    md = rs.render_markdown(json.loads(json.dumps(doc)), "docs/results/recipe_sweep.json")
    assert "| a | `temperature: 0.5` |" in md and "| b | none (the packaged default) |" in md
    assert "| a | 1 | 40.0 [37.0, 43.0] | 120 |" in md and "| b | mean | 44.0 | |" in md
    assert "b − a, points at widths 1: seed 1: +10.0 (1 of 1 apart); seed 2: +2.0 (0 of 1 apart)." in md
    assert "Raw pixels (same kNN): 53.5 [50.4, 56.6] %." in md
    assert "`--render docs/results/recipe_sweep.json`)" in md  # the default section: no --section
    doc["command"] = "python benchmarks/recipe_sweep.py --section recipe-sweep-epochs --no-docs"
    md = rs.render_markdown(json.loads(json.dumps(doc)), "docs/results/x.json")
    assert "`--render docs/results/x.json --section recipe-sweep-epochs`" in md
    # re-rendered into another section than its run wrote: the hint names the section it is in
    doc["command"] = "python benchmarks/recipe_sweep.py --no-docs"
    md = rs.render_markdown(json.loads(json.dumps(doc)), "docs/results/x.json", section="recipe-sweep-batch")
    assert "`--render docs/results/x.json --section recipe-sweep-batch`" in md
    assert "`--render docs/results/x.json`)" in rs.render_markdown(doc, "docs/results/x.json", section="recipe-sweep")


def test_rows_with_hits_are_compared_image_by_image() -> None:
    """Rows that recorded their per-image hits get the paired 95 % interval of each difference, and the docs line
    counts where it lies above or below 0 (two Wilson intervals that overlap can still hide a difference the
    paired test finds: 30 images won, 0 lost, over 1000)."""
    import numpy as np

    from us3l.eval.hits import encode_hits

    n = 1000
    a = np.zeros(n, dtype=bool)
    a[:500] = True
    b = a.copy()
    b[500:530] = True  # b gets 30 more images right, and none fewer
    c = a.copy()
    c[500:505] = True  # 5 more: inside the noise

    def row(run: str, hits: np.ndarray) -> dict[str, object]:
        acc = float(hits.mean())
        return {"run": run, "width": 1.0, "knn_top1": acc, "knn_top1_ci": [acc - 0.031, acc + 0.031],
                "knn_top1_hits": encode_hits(hits), "num_test": n}

    variants = [("a", {}), ("b", {"num_samples": 2})]
    rows = [row("a_seed1", a), row("b_seed1", b), row("a_seed2", a), row("b_seed2", c)]
    s = rs.summarize(variants, [1, 2], rows)
    pairs = {d["seed"]: d for d in s["paired_vs_first"]}
    assert pairs[1]["intervals_overlap"] is True and pairs[1]["paired"]["ci_points"][0] > 0
    assert pairs[2]["paired"]["ci_points"][0] < 0 < pairs[2]["paired"]["ci_points"][1]
    doc = {"command": "python benchmarks/recipe_sweep.py", "date": "2026-12-06 22:10 UTC",
           "git": {"commit": "abcdef0", "dirty": False}, "epochs": 48, "seconds": {"total": 1660.0},
           "data": {"name": "builtin-shapes", "num_classes": 10, "num_train": 2000, "num_test": n,
                    "input_size": 16, "chance": 0.1},
           "variants": [{"name": v, "overrides": o} for v, o in variants], "seeds": [1, 2], "summary": s,
           "results": rows, "runs": {}, "baselines": {"random_init": {}, "raw_pixels": None}}
    md = rs.render_markdown(json.loads(json.dumps(doc)), "docs/results/x.json")
    assert ("b − a, points at widths 1: seed 1: +3.0 (paired interval above 0 at 1 of 1, below 0 at 0); "
            "seed 2: +0.5 (paired interval above 0 at 0 of 1, below 0 at 0).") in md
