"""The default recipe's settings against alternatives, over several seeds, on the default data.

Each variant is the packaged default ``us3l train`` recipe with some config keys changed. Every (variant, seed)
pair is one ``us3l train`` process for the default number of epochs (or the variant's ``epochs``), ``--jobs`` at a
time; every run is then
BN-recalibrated and evaluated like ``us3l eval`` (kNN, k capped by the data, 95 % Wilson intervals, random-init
and raw-pixel baselines measured once). The report pairs every variant with the first one seed by seed, because
two seeds of one recipe differ by several points here and an interval over test images does not cover that.

Writes ``OUT/recipe_sweep.json`` (kind "recipe_sweep_benchmark", schema 1) and regenerates the section of
docs/training.md between ``<!-- recipe-sweep:begin -->`` and ``<!-- recipe-sweep:end -->`` (``--docs PATH``,
``--no-docs``, ``--section NAME`` for another section's markers; ``--render JSON`` re-renders from a result).

Usage::

    python benchmarks/recipe_sweep.py                  # ~10 min on 2 cores: the default against the reference's
                                                       # SimCLR temperature and EMA momentum, seeds 100, 1, 2
    python benchmarks/recipe_sweep.py --variant 'default' --variant 'lr0.1 lr=0.1' --seeds 100,1
    python benchmarks/recipe_sweep.py --variant 'epochs12 epochs=12' --variant 'epochs24 epochs=24' \
        --section recipe-sweep-epochs        # the default run length (docs/training.md)
    python benchmarks/recipe_sweep.py --quick --out /tmp/rs   # smoke run (~1 min), does not touch the docs
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from us3l import script_cli

ROOT = Path(__file__).resolve().parent.parent
BENCH_KIND = "recipe_sweep_benchmark"
BENCH_SCHEMA = 1
SECTION = "recipe-sweep"
DOCS = ROOT / "docs" / "training.md"
DEFAULT_VARIANTS = ("reference_heads temperature=0.5 ema_momentum=0.99", "default")
DEFAULT_SEEDS = "100,1,2"


# benchmarks/ is not a package: a sibling script is imported by name from this folder
sys.path.insert(0, str(Path(__file__).resolve().parent))
import naive_seeds as ns  # noqa: E402

nl = ns.nl
cb = nl.cb


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``'NAME key=value ...'`` (shell-style words, YAML values) -> (NAME, overrides)."""
    import yaml

    from us3l.errors import US3LError

    words = shlex.split(text)
    if not words or "=" in words[0]:
        raise US3LError(f"--variant expects 'NAME key=value ...', got {text!r}")
    over: dict[str, Any] = {}
    for item in words[1:]:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise US3LError(f"--variant {words[0]}: expected key=value, got {item!r}")
        over[key] = yaml.safe_load(value)
    return words[0], over


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = script_cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", dest="variants", action="append", default=None, metavar="'NAME key=value ...'",
                   help="a recipe: the default config with these keys changed (repeatable; the first is the one "
                        "the others are paired with; default: the reference's temperature 0.5 and EMA momentum "
                        "0.99, then the default)")
    p.add_argument("--seeds", type=script_cli.seeds, default=DEFAULT_SEEDS,
                   help="comma-separated seeds (default %(default)s)")
    p.add_argument("--epochs", type=script_cli.positive_int, default=None,
                   help="epochs of every run (default: the config's)")
    p.add_argument("--out", default="runs/recipe_sweep", help="folder for the runs and recipe_sweep.json")
    p.add_argument("--data", default="builtin", help="data spec of every run (default: builtin)")
    p.add_argument("--jobs", type=script_cli.positive_int, default=None,
                   help="training processes at a time (default: min(2, cores))")
    p.add_argument("--threads", type=script_cli.positive_int, default=None, help="torch threads per run (default 1)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key for every run (YAML value), repeatable")
    p.add_argument("--quick", action="store_true", help="smoke run: 4 epochs on 20 images per class, small heads")
    p.add_argument("--docs", default=None, help=f"markdown file to update (default for full runs: {DOCS})")
    p.add_argument("--no-docs", action="store_true", help="do not update any markdown file")
    p.add_argument("--render", default=None, metavar="JSON", help="only re-render the docs from this result file")
    p.add_argument("--section", default=SECTION, help=f"name of the docs section to regenerate (default {SECTION})")
    args = p.parse_args(argv)
    if args.docs is None and not args.quick:
        args.docs = str(DOCS)  # the shared command line would pick docs/evaluation.md
    from us3l.errors import US3LError

    try:
        args.variant_list = [parse_variant(v) for v in (args.variants or DEFAULT_VARIANTS)]
    except US3LError as exc:
        p.error(str(exc))
    names = [n for n, _ in args.variant_list]
    if len(set(names)) != len(names):
        p.error(f"--variant names must differ, got {', '.join(names)}")
    shared = ["--data", args.data, "--curve-every", "0", "--out", args.out]
    for flag, value in (("--jobs", args.jobs), ("--threads", args.threads)):
        if value is not None:
            shared += [flag, str(value)]
    shared += [x for s in args.sets for x in ("--set", s)]
    args.collapse = cb.parse_args(shared + (["--quick"] if args.quick else []))
    if args.epochs is None and args.quick:
        args.epochs = 4
    return args


def run_name(variant: str, seed: int) -> str:
    return f"{variant}_seed{seed}"


def run_tasks(args: argparse.Namespace, out: Path) -> list[tuple[str, Any]]:
    """(run name, resolved config) of every (variant, seed), seed-major so that a partial sweep is paired."""
    epochs = args.epochs or cb.resolve_run(cb.base_overrides(args.collapse)).epochs
    return [(run_name(v, seed), cb.make_config(args.collapse, "us3l", epochs, out / run_name(v, seed), None,
                                              extra={**over, "seed": seed}))
            for seed in args.seeds for v, over in args.variant_list]


def summarize(args_variants: list[tuple[str, dict[str, Any]]], seeds: Sequence[int],
              rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per variant: the mean kNN per width over the seeds; per later variant and seed: its difference from the
    first variant at each width, whether the two intervals overlap and, where the rows hold their per-image hits,
    the paired comparison (``cb.knn_diff``)."""
    widths = sorted({r["width"] for r in rows}, reverse=True)
    by_run = {(r["run"], r["width"]): r for r in rows}
    first = args_variants[0][0]
    means: dict[str, dict[str, float]] = {}
    paired: list[dict[str, Any]] = []
    for v, _ in args_variants:
        means[v] = {}
        for w in widths:
            vals = [by_run[(run_name(v, s), w)]["knn_top1"] for s in seeds if (run_name(v, s), w) in by_run]
            vals = [x for x in vals if x is not None]
            if vals:
                means[v][f"{w:g}"] = sum(vals) / len(vals)
        if v == first:
            continue
        for s in seeds:
            for w in widths:
                a, b = by_run.get((run_name(v, s), w)), by_run.get((run_name(first, s), w))
                d = cb.knn_diff(a, b)
                if d is not None:
                    paired.append({"variant": v, "seed": s, "width": w, **d})
    return {"widths": widths, "mean_knn_top1": means, "paired_vs_first": paired, "first": first}


def _epochs_note(variants: list[dict[str, Any]]) -> str:
    """`` unless its variant sets `epochs` `` when a variant does (its row then trained that many)."""
    return " unless its variant sets `epochs`" if any("epochs" in v["overrides"] for v in variants) else ""


def _beyond_noise(ds: list[dict[str, Any]]) -> str:
    """How many of one seed's differences are beyond the noise of the test images: image by image where every row
    recorded its hits (the paired 95 % interval above or below 0, ``cb.paired``), else whether the two Wilson
    intervals are apart (results from before the hits were recorded render as they did)."""
    if all(d.get("paired") for d in ds):
        above = sum(1 for d in ds if d["paired"]["ci_points"][0] > 0)
        below = sum(1 for d in ds if d["paired"]["ci_points"][1] < 0)
        return f"paired interval above 0 at {above} of {len(ds)}, below 0 at {below}"
    apart = sum(1 for d in ds if not d["intervals_overlap"])
    return f"{apart} of {len(ds)} apart"


def render_markdown(doc: dict[str, Any], json_path: str, section: str | None = None) -> str:
    """The docs section for one result document (everything in it comes from ``doc``)."""
    data, s, git = doc["data"], doc["summary"], doc["git"]
    ri, raw = doc["baselines"]["random_init"], doc["baselines"].get("raw_pixels")
    dirty = " (uncommitted changes)" if git.get("dirty") else ""
    variants = doc["variants"]
    seeds = doc["seeds"]
    widths = s["widths"]
    lines = [
        f"Generated by `{doc['command']}` on {doc['date']}, commit `{(git.get('commit') or '?')[:7]}`{dirty}; "
        f"raw output `{json_path}` (do not edit this section by hand: re-run, or "
        f"`--render {json_path}{cb.section_flag(doc['command'], SECTION, section)}`). "
        f"Data: {data.get('name')} ({data.get('num_classes')} classes, {data.get('num_train')} training / "
        f"{data.get('num_test')} test images, {data.get('input_size')} px); chance {cb._pct(data.get('chance'))} %; "
        f"{doc['epochs']} epochs per run{_epochs_note(variants)}; {doc['seconds']['total'] / 60:.0f} min in all.",
        "",
        "| variant | changed keys |",
        "|---|---|",
    ]
    for v in variants:
        keys = ", ".join(f"`{k}: {val}`" for k, val in v["overrides"].items()) or "none (the packaged default)"
        lines.append(f"| {v['name']} | {keys} |")
    lines += ["", "kNN top-1 % [95 % Wilson interval over the test images] per width:", "",
              "| variant | seed | " + " | ".join(f"w {w:g}" for w in widths) + " | training CPU s |",
              "|---|---|" + "---|" * len(widths) + "---|"]
    rows = doc["results"]
    for v in variants:
        for seed in seeds:
            name = run_name(v["name"], seed)
            cells = []
            for w in widths:
                r = next((x for x in rows if x["run"] == name and x["width"] == w), None)
                cells.append("–" if r is None else f"{cb._pct(r['knn_top1'])}{cb._ci(r['knn_top1_ci'])}")
            cpu = doc["runs"].get(name, {}).get("train_cpu_seconds")
            lines.append(f"| {v['name']} | {seed} | {' | '.join(cells)} | {'–' if cpu is None else f'{cpu:.0f}'} |")
        mean = s["mean_knn_top1"].get(v["name"], {})
        lines.append(f"| {v['name']} | mean | " + " | ".join(cb._pct(mean.get(f'{w:g}')) for w in widths) + " | |")
    base = " | ".join(f"{cb._pct((ri.get(f'{w:g}') or {}).get('knn_top1'))}"
                      f"{cb._ci((ri.get(f'{w:g}') or {}).get('knn_top1_ci'))}" for w in widths)
    lines.append(f"| random init | – | {base} | |")
    if raw:
        lines += ["", f"Raw pixels (same kNN): {cb._pct(raw.get('knn_top1'))}{cb._ci(raw.get('knn_top1_ci'))} %."]
    lines.append("")
    for v in variants[1:]:
        parts = []
        for seed in seeds:
            ds = [d for d in s["paired_vs_first"] if d["variant"] == v["name"] and d["seed"] == seed]
            if ds:
                parts.append(f"seed {seed}: " + " / ".join(f"{d['diff_points']:+.1f}" for d in ds)
                             + f" ({_beyond_noise(ds)})")
        lines.append(f"- {v['name']} − {s['first']}, points at widths {' / '.join(f'{w:g}' for w in widths)}: "
                     + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    return cb.bench_main(argv, parse_args, _run, BENCH_KIND, BENCH_SCHEMA, "recipe-sweep result", render_markdown)


def _run(args: argparse.Namespace, cli: list[str], docs: Path | None) -> int:
    ca = args.collapse
    git = cb.git_commit()
    t0 = time.perf_counter()
    out = nl.prepare_out(args)
    tasks = run_tasks(args, out)
    runs = cb.run_parallel(ca.jobs, tasks, cb.log)
    for name, cfg in tasks:
        runs[name].update(method="us3l", single_width=None, run_dir=str(out / name), config=cfg.to_dict(),
                          label=name, eval_widths=None)
    t_train = time.perf_counter()
    ev = cb.evaluate_all(ca, runs, cb.log, baseline_run=tasks[0][0])
    fields = dict(git=git, machine={**cb.machine(), "torch_threads": runs[tasks[0][0]]["config"].get("threads")},
                  epochs=tasks[0][1].epochs, seeds=args.seeds,
                  variants=[{"name": n, "overrides": o} for n, o in args.variant_list],
                  data=ev["data"], runs=runs, results=ev["rows"], baselines=ev["baselines"],
                  summary=summarize(args.variant_list, args.seeds, ev["rows"]))
    return nl.write_result(args, cli, docs, out, "recipe_sweep.py", BENCH_KIND, BENCH_SCHEMA, fields,
                           (t0, t_train, time.perf_counter()), render_markdown)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    script_cli.run(main)
