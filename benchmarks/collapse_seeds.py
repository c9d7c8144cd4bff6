"""US3L against networks trained alone for the same time, over several seeds (issue 10 item 5).

``benchmarks/collapse.py`` trains every run with one seed, and two seeds of one recipe differ here by more than
the Wilson intervals over test images show (a single network at width 0.5 has beaten one at width 0.75 by 9
points). This script asks the benchmark's question once per seed: for every seed of ``--seeds`` it runs
collapse.py with that seed and only the runs the claim needs (us3l, naive_simsiam and ``single`` at each width,
all for the same CPU time; ``--no-same-epochs --no-split-budget --no-naive-control``), with us3l's epochs fixed
by ``--us3l-epochs`` (default 32) so that every seed trains the same schedule. ``--result SEED=JSON`` takes a
finished collapse.json for a seed instead (it must have been run with that seed and the same us3l recipe and
epochs), and ``--reuse`` takes ``OUT/seed<S>/collapse.json`` where it exists.

Per width it reports us3l − single for every seed, the mean over seeds with a 95 % Student-t interval (a handful
of seeds: the interval is wide, and it is the honest width of the answer), and in how many seeds us3l is within
2 points of single or above; and per seed which widths of naive SimSiam collapsed. ``--against JSON`` (another
result of the same seeds and data, e.g. another us3l recipe) adds us3l here minus us3l there per seed and width,
image by image. Writes
``OUT/collapse_seeds.json`` (kind "collapse_seeds_benchmark", schema 1: each seed's results and verdict as the
benchmark wrote them, and the summary) and regenerates the section of docs/evaluation.md between
``<!-- collapse-seeds:begin -->`` and ``<!-- collapse-seeds:end -->`` (``--docs PATH``, ``--no-docs``;
``--render JSON`` re-renders from a result).

Usage::

    python benchmarks/collapse_seeds.py --seeds 100,1,2                # ~20 min per seed on 2 cores
    python benchmarks/collapse_seeds.py --seeds 100,1,2 --result 100=runs/collapse/collapse.json --reuse
    python benchmarks/collapse_seeds.py --quick --seeds 1,2 --out /tmp/cs    # smoke run, does not touch the docs
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from us3l import script_cli

ROOT = Path(__file__).resolve().parent.parent
BENCH_KIND = "collapse_seeds_benchmark"
BENCH_SCHEMA = 1
SECTION = "collapse-seeds"
DEFAULT_SEEDS = "100,1,2"
DEFAULT_US3L_EPOCHS = 32
QUICK_US3L_EPOCHS = 4
# run keys that may differ between the seeds of one comparison ("data": a --subset run's folder is per seed;
# the data themselves are compared through the result's data record, DATA_KEYS)
PER_RUN_KEYS = frozenset({"seed", "out", "epochs", "save_every", "data"})
DATA_KEYS = ("source", "subset_per_class", "name", "num_classes", "num_train", "num_test", "input_size")


# benchmarks/ is not a package: a sibling script is imported by name from this folder
sys.path.insert(0, str(Path(__file__).resolve().parent))
import naive_seeds as ns  # noqa: E402

nl = ns.nl
cb = nl.cb


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = script_cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=script_cli.seeds, default=DEFAULT_SEEDS,
                   help="comma-separated seeds (default %(default)s)")
    p.add_argument("--us3l-epochs", type=script_cli.positive_int, default=None,
                   help=f"us3l's epochs in every seed (default {DEFAULT_US3L_EPOCHS}; {QUICK_US3L_EPOCHS} with "
                        "--quick); every other run gets the same CPU time")
    p.add_argument("--result", dest="results", action="append", default=[], metavar="SEED=JSON",
                   help="a finished collapse.json for SEED instead of a new run (repeatable)")
    p.add_argument("--reuse", action="store_true", help="take OUT/seed<S>/collapse.json where it exists")
    p.add_argument("--out", default="runs/collapse_seeds", help="folder for the per-seed runs and the result")
    p.add_argument("--data", default="builtin", help="data spec of every run (default: builtin)")
    p.add_argument("--jobs", type=script_cli.positive_int, default=None,
                   help="training processes at a time (default: min(2, cores))")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key for every run (YAML value), repeatable")
    p.add_argument("--us3l-set", dest="us3l_sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key for the us3l run only (YAML value), repeatable, e.g. num_samples=2")
    p.add_argument("--against", default=None, metavar="JSON",
                   help="another collapse_seeds.json of the same seeds and data (e.g. another us3l recipe): adds us3l "
                        "here minus us3l there per seed and width, image by image")
    p.add_argument("--quick", action="store_true", help="smoke run: collapse.py --quick per seed")
    p.add_argument("--docs", default=None, help="markdown file to update (default for full runs: "
                                                "docs/evaluation.md)")
    p.add_argument("--no-docs", action="store_true", help="do not update any markdown file")
    p.add_argument("--section", default=SECTION, help=f"name of the docs section to regenerate (default {SECTION})")
    p.add_argument("--render", default=None, metavar="JSON", help="only re-render the docs from this result file")
    args = p.parse_args(argv)
    if args.us3l_epochs is None:
        args.us3l_epochs = QUICK_US3L_EPOCHS if args.quick else DEFAULT_US3L_EPOCHS
    args.result_paths = {}
    for item in args.results:
        seed, sep, path = item.partition("=")
        if not sep or not seed.strip().isdigit() or not path:
            p.error(f"--result expects SEED=JSON, got {item!r}")
        if int(seed) not in args.seeds:
            p.error(f"--result {item}: seed {int(seed)} is not in --seeds {','.join(map(str, args.seeds))}")
        args.result_paths[int(seed)] = Path(path)
    return args


def collapse_argv(args: argparse.Namespace, seed: int, out: Path) -> list[str]:
    """collapse.py's command line for one seed: the claim's runs only, us3l's epochs fixed, no docs."""
    argv = ["--seed", str(seed), "--out", str(out), "--us3l-epochs", str(args.us3l_epochs), "--data", args.data,
            "--no-same-epochs", "--no-split-budget", "--no-naive-control", "--no-docs"]
    if args.jobs is not None:
        argv += ["--jobs", str(args.jobs)]
    argv += [x for s in args.sets for x in ("--set", s)]
    argv += [x for s in args.us3l_sets for x in ("--us3l-set", s)]
    return argv + (["--quick"] if args.quick else [])


def load_seed(path: Path, seed: int) -> dict[str, Any]:
    """A collapse.json, checked to be one (kind and schema) and to have trained every run with ``seed``."""
    from us3l.errors import US3LError
    from us3l.io import check_schema, read_json

    doc = read_json(path, "collapse result")
    check_schema(doc, cb.BENCH_KIND, cb.BENCH_SCHEMA, str(path))
    seeds = {r["config"].get("seed") for r in doc["runs"].values()}
    if seeds != {seed}:
        raise US3LError(f"{path}: trained with seed(s) {sorted(seeds, key=str)}, not {seed}")
    return doc


def check_comparable(docs: dict[int, dict[str, Any]]) -> None:
    """Every seed must train the same us3l and single recipes (keys other than seed and paths), the same us3l
    epochs and the same data; otherwise a mean over seeds mixes experiments."""
    from us3l.errors import US3LError

    def recipe(doc: dict[str, Any], run: str) -> dict[str, Any]:
        return {k: v for k, v in doc["runs"][run]["config"].items() if k not in PER_RUN_KEYS}

    (s0, d0), *rest = docs.items()
    for s, d in rest:
        for run in ("us3l", *(name for name, r in d0["runs"].items() if r.get("label") == "single")):
            if run not in d["runs"]:
                raise US3LError(f"seed {s} has no {run} run (seed {s0} has)")
            a, b = recipe(d0, run), recipe(d, run)
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            if diff:
                raise US3LError(f"seed {s} trained {run} with other settings than seed {s0}: {', '.join(diff)}")
        e0, e = d0["runs"]["us3l"]["epochs"], d["runs"]["us3l"]["epochs"]
        if e0 != e:
            raise US3LError(f"us3l trained {e} epochs in seed {s} and {e0} in seed {s0}; use one --us3l-epochs")
        diff = [k for k in DATA_KEYS if d0["data"].get(k) != d["data"].get(k)]
        if diff:
            raise US3LError(f"seed {s} trained on other data than seed {s0}: {', '.join(diff)}")
        r0, r = cb.single_time_rule(d0["budget"]), cb.single_time_rule(d["budget"])
        if r0 != r:
            raise US3LError(f"seed {s} sized its single runs from the us3l run's {r} CPU time and seed {s0} from "
                            f"its {r0} one; re-run the older result")


def t_interval(values: Sequence[float], level: float = 0.95) -> list[float] | None:
    """The Student-t interval of the mean of ``values`` (None for fewer than two)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return [round(mean - half, 2), round(mean + half, 2)]


def summarize(seeds: Sequence[int], docs: dict[int, dict[str, Any]], within: float) -> dict[str, Any]:
    """Per claimed width: us3l − single per seed, their mean with a 95 % t interval, and how many seeds meet the
    claim (within ``within`` points or above); per seed: naive SimSiam's collapsed widths."""
    widths = sorted({e["width"] for d in docs.values() for e in d["verdict"]["us3l_vs_single"]}, reverse=True)
    per_width = []
    for w in widths:
        cells = {s: next((e for e in docs[s]["verdict"]["us3l_vs_single"] if e["width"] == w), None) for s in seeds}
        diffs = [c["diff_points"] for c in cells.values() if c is not None]
        claimed = any(c["claimed"] for c in cells.values() if c is not None)
        per_width.append({
            "width": w, "claimed": claimed,
            "diff_points": {str(s): None if c is None else c["diff_points"] for s, c in cells.items()},
            # the seed's difference image by image (collapse.py's verdict; None in a result without hits)
            "paired_ci_points": {str(s): None if c is None or not c.get("paired") else c["paired"]["ci_points"]
                                 for s, c in cells.items()},
            "us3l": {str(s): None if c is None else c["us3l"] for s, c in cells.items()},
            "single": {str(s): None if c is None else c["single"] for s, c in cells.items()},
            "mean_diff_points": round(sum(diffs) / len(diffs), 2) if diffs else None,
            "mean_diff_ci": t_interval(diffs),
            "seeds_met": sum(1 for d in diffs if d >= -within), "seeds": len(diffs),
        })
    naive = {str(s): docs[s]["verdict"]["naive_collapsed_widths"] for s in seeds}
    return {"widths": widths, "within_points": within, "us3l_vs_single": per_width, "naive_collapsed_widths": naive,
            "us3l_collapsed_widths": {str(s): docs[s]["verdict"]["us3l_collapsed_widths"] for s in seeds}}


def compare_against(fields: dict[str, Any], path: Path) -> dict[str, Any]:
    """us3l of this result minus us3l of ``path`` (another collapse_seeds result of the same seeds and data) per
    seed and width: the difference, its paired 95 % interval over the same test images (collapse.py's ``paired``)
    and the mean over seeds with its t interval; and what the two us3l recipes differ in."""
    from us3l.errors import US3LError
    from us3l.io import check_schema, read_json

    other = read_json(path, "collapse-seeds result")
    check_schema(other, BENCH_KIND, BENCH_SCHEMA, str(path))
    seeds = fields["seeds"]
    missing = [s for s in seeds if str(s) not in other["per_seed"]]
    if missing:
        raise US3LError(f"{path} has no seed {', '.join(map(str, missing))}: --against needs the same seeds")
    diff = [k for k in DATA_KEYS if fields["data"].get(k) != other["data"].get(k)]
    if diff:
        raise US3LError(f"{path} trained on other data: {', '.join(diff)}")
    here_cfg = fields["per_seed"][str(seeds[0])]["configs"]["us3l"]
    there_cfg = other["per_seed"][str(seeds[0])]["configs"]["us3l"]
    recipe = [f"{k} {here_cfg.get(k)!r} vs {there_cfg.get(k)!r}" for k in sorted(set(here_cfg) | set(there_cfg))
              if k not in PER_RUN_KEYS and here_cfg.get(k) != there_cfg.get(k)]
    per_width = []
    for w in fields["summary"]["widths"]:
        diffs: dict[str, float | None] = {}
        cis: dict[str, list[float] | None] = {}
        for s in seeds:
            a = cb.find_row(fields["per_seed"][str(s)]["results"], "us3l", w)
            b = cb.find_row(other["per_seed"][str(s)]["results"], "us3l", w)
            d = cb.knn_diff(a, b)
            diffs[str(s)] = None if d is None else d["diff_points"]
            cis[str(s)] = None if d is None or not d.get("paired") else d["paired"]["ci_points"]
        values = [d for d in diffs.values() if d is not None]
        per_width.append({"width": w, "diff_points": diffs, "paired_ci_points": cis,
                          "mean_diff_points": round(sum(values) / len(values), 2) if values else None,
                          "mean_diff_ci": t_interval(values)})
    cpu = {str(s): [fields["per_seed"][str(s)]["runs"]["us3l"]["train_cpu_seconds"],
                    other["per_seed"][str(s)]["runs"]["us3l"]["train_cpu_seconds"]] for s in seeds}
    return {"source": cb._display_path(path), "us3l_epochs": [fields["us3l_epochs"], other["us3l_epochs"]],
            "recipe": recipe, "us3l_cpu_seconds": cpu, "per_width": per_width}


def _seed_record(doc: dict[str, Any], source: str) -> dict[str, Any]:
    """What the result keeps of one seed's collapse.json: provenance, budget, runs without their resolved
    configs (one us3l and one single config are kept), results, baselines and verdict."""
    runs = {name: {k: v for k, v in r.items() if k not in ("config", "curve")} for name, r in doc["runs"].items()}
    configs = {name: doc["runs"][name]["config"] for name in ("us3l", "naive_simsiam", "single_w1")
               if name in doc["runs"]}
    return {"source": source, "date": doc["date"], "command": doc["command"], "git": doc["git"],
            "machine": doc["machine"], "seconds": doc["seconds"], "target_train_seconds":
            doc["budget"].get("target_train_seconds"), "runs": runs, "configs": configs,
            "results": doc["results"], "baselines": doc["baselines"], "verdict": doc["verdict"]}


def render_markdown(doc: dict[str, Any], json_path: str, section: str | None = None) -> str:
    """The docs section for one result document (everything in it comes from ``doc``)."""
    s, seeds, per = doc["summary"], doc["seeds"], doc["per_seed"]
    data, git = doc["data"], doc["git"]
    dirty = " (uncommitted changes)" if git.get("dirty") else ""
    first = per[str(seeds[0])]
    lines = [
        f"Generated by `{doc['command']}` on {doc['date']}, commit `{(git.get('commit') or '?')[:7]}`{dirty}; "
        f"raw output `{json_path}` (do not edit this section by hand: re-run, or "
        f"`--render {json_path}{cb.section_flag(doc['command'], SECTION, section)}`). "
        f"Data: {data.get('name')} ({data.get('num_classes')} classes, {data.get('num_test')} test images); "
        f"chance {cb._pct(data.get('chance'))} %. us3l trained {doc['us3l_epochs']} epochs in every seed; every "
        "other run the same CPU time (collapse.py's equal-time rule).",
        "",
        "| seed | run date | commit | us3l CPU s | single epochs (x us3l's CPU time) at widths "
        + " / ".join(f"{w:g}" for w in s["widths"]) + " | naive_simsiam epochs | naive collapsed widths |",
        "|---|---|---|---|---|---|---|",
    ]
    for seed in seeds:
        p = per[str(seed)]
        runs = p["runs"]
        singles = " / ".join(
            f"{runs[f'single_w{w:g}']['epochs']} ({runs[f'single_w{w:g}']['cpu_ratio_to_us3l']:.2f})"
            if f"single_w{w:g}" in runs else "–" for w in s["widths"])
        naive = s["naive_collapsed_widths"][str(seed)]
        lines.append(
            f"| {seed} | {p['date']} | `{(p['git'].get('commit') or '?')[:7]}`"
            f"{' (uncommitted changes)' if p['git'].get('dirty') else ''} | "
            f"{runs['us3l']['train_cpu_seconds']:.0f} | {singles} | {runs['naive_simsiam']['epochs']} | "
            f"{', '.join(f'{w:g}' for w in naive) if naive else 'none'} of "
            f"{len(p['verdict']['naive_widths'])} |")
    lines += ["", "kNN top-1 % [95 % Wilson interval over the test images]:", "",
              "| width | run | " + " | ".join(f"seed {x}" for x in seeds) + " | mean |",
              "|---|---|" + "---|" * len(seeds) + "---|"]
    for row in s["us3l_vs_single"]:
        w = row["width"]
        for method in ("us3l", "single"):
            cells, vals = [], []
            for seed in seeds:
                r = next((x for x in per[str(seed)]["results"]
                          if x["method"] == method and x["width"] == w), None)
                cells.append("–" if r is None else f"{cb._pct(r['knn_top1'])}{cb._ci(r['knn_top1_ci'])}")
                if r is not None and r["knn_top1"] is not None:
                    vals.append(r["knn_top1"])
            mean = cb._pct(sum(vals) / len(vals)) if vals else "–"
            lines.append(f"| {w:g} | {method} | {' | '.join(cells)} | {mean} |")
    raw = first["baselines"].get("raw_pixels") or {}
    lines += ["", f"Raw pixels (same kNN): {cb._pct(raw.get('knn_top1'))}{cb._ci(raw.get('knn_top1_ci'))} %.", "",
              f"us3l − single, kNN points (the claim: within {s['within_points']:g} points or above at the claimed "
              "widths):", "",
              "| width | " + " | ".join(f"seed {x}" for x in seeds) + " | mean [95 % t interval over seeds] | "
              "seeds meeting it |",
              "|---|" + "---|" * len(seeds) + "---|---|"]
    paired = any(ci for row in s["us3l_vs_single"] for ci in (row.get("paired_ci_points") or {}).values())
    for row in s["us3l_vs_single"]:
        cells = [("–" if (d := row["diff_points"][str(x)]) is None else f"{d:+.1f}" + _paired_cell(row, x))
                 for x in seeds]
        ci = row["mean_diff_ci"]
        mean = "–" if row["mean_diff_points"] is None else f"{row['mean_diff_points']:+.1f}"
        if ci:
            mean += f" [{ci[0]:+.1f}, {ci[1]:+.1f}]"
        label = f"{row['width']:g}" + ("" if row["claimed"] else " (reference point, not claimed)")
        lines.append(f"| {label} | {' | '.join(cells)} | {mean} | {row['seeds_met']} of {row['seeds']} |")
    if paired:
        lines += ["", "In brackets: the seed's difference image by image over the same test images (exact conditional "
                  "95 % interval, collapse.py's paired comparison); the mean's interval is over the seeds."]
    if doc.get("against"):
        lines += render_against(doc["against"], seeds)
    return "\n".join(lines) + "\n"


def render_against(ag: dict[str, Any], seeds: Sequence[int]) -> list[str]:
    """The ``--against`` table: us3l here minus us3l there, per seed (paired interval) and over the seeds."""
    here, there = ag["us3l_epochs"]
    cpu = ", ".join(f"seed {s}: {ag['us3l_cpu_seconds'][str(s)][0]:.0f} / {ag['us3l_cpu_seconds'][str(s)][1]:.0f}"
                    for s in seeds)
    lines = ["", f"us3l here ({here} epochs) − us3l of `{ag['source']}` ({there} epochs), kNN points, same seeds and "
             f"test images (in brackets: the seed's paired 95 % interval); the us3l recipes differ in: "
             f"{'; '.join(ag['recipe']) or 'nothing'}. us3l training CPU seconds here / there: {cpu}.", "",
             "| width | " + " | ".join(f"seed {x}" for x in seeds) + " | mean [95 % t interval over seeds] |",
             "|---|" + "---|" * len(seeds) + "---|"]
    for row in ag["per_width"]:
        cells = [("–" if (d := row["diff_points"][str(x)]) is None else f"{d:+.1f}") + _paired_cell(row, x)
                 for x in seeds]
        ci = row["mean_diff_ci"]
        mean = "–" if row["mean_diff_points"] is None else f"{row['mean_diff_points']:+.1f}"
        if ci:
            mean += f" [{ci[0]:+.1f}, {ci[1]:+.1f}]"
        lines.append(f"| {row['width']:g} | {' | '.join(cells)} | {mean} |")
    return lines


def _paired_cell(row: dict[str, Any], seed: int) -> str:
    ci = (row.get("paired_ci_points") or {}).get(str(seed))
    return "" if not ci else f" [{ci[0]:+.1f}, {ci[1]:+.1f}]"


def main(argv: Sequence[str] | None = None) -> int:
    return cb.bench_main(argv, parse_args, _run, BENCH_KIND, BENCH_SCHEMA, "collapse-seeds result", render_markdown)


def _run(args: argparse.Namespace, cli: list[str], docs: Path | None) -> int:
    from us3l.errors import US3LError

    git = cb.git_commit()
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    docs_by_seed: dict[int, dict[str, Any]] = {}
    sources: dict[int, str] = {}
    for seed in args.seeds:
        path = args.result_paths.get(seed)
        if path is None:
            path = out / f"seed{seed}" / "collapse.json"
            if not (args.reuse and path.is_file()):
                cb.log(f"seed {seed}: benchmarks/collapse.py {' '.join(collapse_argv(args, seed, path.parent))}")
                if cb.main(collapse_argv(args, seed, path.parent)) != 0:
                    raise US3LError(f"collapse.py failed for seed {seed}")
        docs_by_seed[seed] = load_seed(path, seed)
        sources[seed] = cb._display_path(path)
    check_comparable(docs_by_seed)
    t_train = time.perf_counter()
    first = docs_by_seed[args.seeds[0]]
    within = float(first["verdict"].get("within_points", 2.0))
    # machine: where this summary was made; each seed's own run keeps the machine it trained on (per_seed)
    fields = dict(git=git, machine=cb.machine(), seeds=args.seeds, us3l_epochs=first["runs"]["us3l"]["epochs"],
                  data=first["data"],
                  per_seed={str(s): _seed_record(docs_by_seed[s], sources[s]) for s in args.seeds},
                  summary=summarize(args.seeds, docs_by_seed, within))
    if args.against:
        fields["against"] = compare_against(fields, Path(args.against))
    return nl.write_result(args, cli, docs, out, "collapse_seeds.py", BENCH_KIND, BENCH_SCHEMA, fields,
                           (t0, t_train, time.perf_counter()), render_markdown)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    script_cli.run(main)
