"""How often naive SimSiam collapses: the naive recipe and its width-1 control (and US3L), trained once per seed.

``benchmarks/naive_long.py`` trains one seed, so a collapse there is one trajectory, not a rate. This script
trains, for every seed of ``--seeds`` (default 101,102,103), the same two runs as naive_long.py with that
seed: ``naive_simsiam`` (the reference's naive recipe on the slimmable network, sandwich rule with inplace
distillation) and ``naive_simsiam_one_width`` (the same recipe at width 1 only), under the same epochs and lr
schedule. Every run is then BN-recalibrated and evaluated like ``us3l eval`` (kNN with 95 % Wilson intervals,
random-init and raw-pixel baselines), a width counts as collapsed by the collapse benchmark's criterion
(embedding std below 0.1, or a kNN interval containing chance), and the script reports per seed which widths
collapsed and from which monitored epoch, and over the seeds how many collapsed, with a 95 % Wilson interval
on that rate (with a handful of seeds it is wide: it bounds the rate, it does not pin it). ``--with-us3l``
adds a third run per seed, ``us3l`` with its own recipe under the same epochs and lr schedule, and reports its
collapse rate over the same seeds and, per seed, naive_simsiam − us3l at every width (a paired comparison: same
seed, data order and schedule).

Every other option is naive_long.py's (``--epochs``, ``--lr-schedule``, ``--lr-schedule-epochs``, ``--jobs``,
``--threads``, ``--set``, ``--out``, ``--quick``, ``--reuse``, ``--docs``, ``--no-docs``, ``--render``,
``--section``, default section ``naive-seeds``); ``--seed`` does not apply. ``--resume``
evaluates the runs already finished in OUT with the config this command would train (an error if one was
trained otherwise) and trains the rest, so a sweep can be extended by seeds or finished after a stop. Writes
``OUT/naive_seeds.json`` (kind "naive_seeds_benchmark", schema 1) and the docs section from it.

Usage::

    python benchmarks/naive_seeds.py --seeds 101,102,103 --epochs 160 --lr-schedule-epochs 1000 --out runs/seeds
    python benchmarks/naive_seeds.py --seeds 101,102,103,104,105 --epochs 160 --lr-schedule-epochs 1000 \
        --out runs/seeds --resume                                            # two more seeds, one section
    python benchmarks/naive_seeds.py --seeds 101,102,103,104 --epochs 160 --lr-schedule-epochs 1000 \
        --out runs/seeds --resume --with-us3l                         # US3L over the same seeds, one section
    python benchmarks/naive_seeds.py --quick --seeds 1,2 --out /tmp/ns     # smoke run (~1 min), no docs
    python benchmarks/naive_seeds.py --render docs/results/naive_seeds/naive_seeds.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from us3l import script_cli

ROOT = Path(__file__).resolve().parent.parent
BENCH_KIND = "naive_seeds_benchmark"
BENCH_SCHEMA = 1
SECTION = "naive-seeds"
DEFAULT_SEEDS = "101,102,103"


# benchmarks/ is not a package: a sibling script is imported by name from this folder
sys.path.insert(0, str(Path(__file__).resolve().parent))
import naive_long as nl  # noqa: E402

cb = nl.cb
NAIVE, CONTROL, US3L = nl.NAIVE, cb.NAIVE_CONTROL, nl.US3L


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = script_cli.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False, allow_abbrev=False)
    p.add_argument("--seeds", type=script_cli.seeds, default=DEFAULT_SEEDS,
                   help="seeds, comma-separated (default %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the finished runs in OUT whose config matches, train the missing ones")
    p.add_argument("-h", "--help", action="store_true")
    own, rest = p.parse_known_args(argv)
    if own.help:
        p.print_help()
        print("\nEvery other option is benchmarks/naive_long.py's (see its --help) except --seed; --with-us3l "
              "trains us3l once per seed too.")
        raise SystemExit(0)
    if any(a == "--seed" or a.startswith("--seed=") for a in rest):
        p.error("--seed does not apply here: every seed of --seeds trains the naive recipe and its control")
    if "--section" not in rest:
        rest = [*rest, "--section", SECTION]
    args = nl.parse_args(rest)
    if own.resume and args.reuse:
        p.error("--resume trains what is missing, --reuse trains nothing: give one of them")
    args.seeds, args.resume = own.seeds, own.resume
    return args


def run_name(base: str, seed: int) -> str:
    return f"{base}_seed{seed}"


def run_tasks(args: argparse.Namespace, out: Path) -> list[tuple[str, Any]]:
    """(run name, resolved config) of every run, longest first so that ``--jobs`` processes finish close
    together: all the slimmed naive runs, then with ``--with-us3l`` the us3l runs, then the width-1 controls."""
    ca, tasks = args.collapse, []
    kinds = [(NAIVE, NAIVE, {})] + ([(US3L, US3L, {})] if args.with_us3l else [])
    for base, method, extra in kinds + [(CONTROL, NAIVE, {"num_samples": 1, "knn_widths": [1.0]})]:
        for s in args.seeds:
            cfg = cb.make_config(ca, method, args.epochs, out / f"seed{s}" / base, None, extra={**extra, "seed": s})
            tasks.append((run_name(base, s), cfg))
    return tasks


def collapse_epoch(curve: list[dict[str, Any]]) -> int | None:
    """The first monitored epoch at which the backbone std of some width fell below the collapse threshold."""
    for p in curve:
        stds = [v for v in (p.get("backbone_std") or {}).values() if v is not None]
        if stds and min(stds) < cb.COLLAPSE_STD:
            return int(p["epoch"])
    return None


def rate(k: int, n: int) -> dict[str, Any]:
    """``k`` of ``n`` seeds, with the 95 % Wilson interval of the rate."""
    from us3l.eval.intervals import wilson_interval

    return {"count": k, "of": n, "ci": wilson_interval(k / n, n) if n else None}


def paired(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``a`` − ``b`` in kNN points at every width both evaluated, widest first, with whether the intervals overlap."""
    out = []
    for ra in sorted(a, key=lambda r: -r["width"]):
        diff = cb.knn_diff(ra, next((r for r in b if abs(r["width"] - ra["width"]) < 1e-9), None))
        if diff is not None:
            out.append({"width": ra["width"], **diff})
    return out


def summarize(seeds: Sequence[int], rows: list[dict[str, Any]], runs: dict[str, Any]) -> dict[str, Any]:
    """Per seed: the collapsed widths of the naive run and of its control, the first collapsed monitor epoch,
    naive − control at width 1 (and, where us3l ran, its collapsed widths and naive − us3l per width); over the
    seeds: how many collapsed at every width, at some width, and how many controls (and us3l runs) collapsed."""
    per_seed = []
    for s in seeds:
        naive = [r for r in rows if r["run"] == run_name(NAIVE, s)]
        ctrl = [r for r in rows if r["run"] == run_name(CONTROL, s)]
        n1 = next((r for r in naive if abs(r["width"] - 1.0) < 1e-9), None)
        c1 = ctrl[0] if ctrl else None
        entry: dict[str, Any] = {
            "seed": s, "evaluated": bool(naive),
            "collapsed_widths": sorted((r["width"] for r in naive if r["collapsed"]), reverse=True),
            "widths": sorted((r["width"] for r in naive), reverse=True),
            "collapse_epoch": collapse_epoch((runs.get(run_name(NAIVE, s)) or {}).get("curve") or []),
            "control_evaluated": c1 is not None, "control_collapsed": bool(c1 and c1["collapsed"]),
            "control_collapse_epoch": collapse_epoch((runs.get(run_name(CONTROL, s)) or {}).get("curve") or []),
        }
        diff = cb.knn_diff(n1, c1)
        if diff is not None:
            entry["naive_minus_control_w1"] = diff
        us3l = [r for r in rows if r["run"] == run_name(US3L, s)]
        if run_name(US3L, s) in runs:
            entry.update(
                us3l_evaluated=bool(us3l),
                us3l_collapsed_widths=sorted((r["width"] for r in us3l if r["collapsed"]), reverse=True),
                us3l_collapse_epoch=collapse_epoch((runs.get(run_name(US3L, s)) or {}).get("curve") or []),
                naive_minus_us3l=paired(naive, us3l))
        per_seed.append(entry)
    done = [e for e in per_seed if e["evaluated"]]
    ctrls = [e for e in per_seed if e["control_evaluated"]]
    out = {
        "per_seed": per_seed,
        "naive_collapsed_all_widths": rate(sum(1 for e in done if e["widths"]
                                               and e["collapsed_widths"] == e["widths"]), len(done)),
        "naive_collapsed_any_width": rate(sum(1 for e in done if e["collapsed_widths"]), len(done)),
        "control_collapsed": rate(sum(1 for e in ctrls if e["control_collapsed"]), len(ctrls)),
    }
    if any("us3l_evaluated" in e for e in per_seed):
        us3l_done = [e for e in per_seed if e.get("us3l_evaluated")]
        out["us3l_collapsed_any_width"] = rate(sum(1 for e in us3l_done if e["us3l_collapsed_widths"]),
                                               len(us3l_done))
    return out


def _rate_text(r: dict[str, Any]) -> str:
    if not r["of"]:
        return "no evaluated seed"
    lo, hi = r["ci"]
    return f"{r['count']} of {r['of']} seeds (95 % interval of the rate {100 * lo:.0f}-{100 * hi:.0f} %)"


def render_markdown(doc: dict[str, Any], json_path: str, section: str | None = None) -> str:
    """The docs section for one result document (everything in it comes from ``doc``)."""
    data, runs, s, git, rows = doc["data"], doc["runs"], doc["summary"], doc["git"], doc["results"]
    ri, raw = doc["baselines"]["random_init"], doc["baselines"].get("raw_pixels")
    dirty = " (uncommitted changes)" if git.get("dirty") else ""
    seeds = doc["seeds"]
    cfg = (runs.get(run_name(NAIVE, seeds[0])) or {}).get("config") or {}
    schedule, length = cfg.get("lr_schedule"), cfg.get("lr_schedule_epochs")
    what = "the base lr throughout" if schedule == "constant" else "per-epoch cosine"
    if length and schedule != "constant":
        what += f" over {length} epochs, of which the runs train the first {cfg.get('epochs')}"
    lines = [
        f"Generated by `{doc['command']}` on {doc['date']}, commit `{(git.get('commit') or '?')[:7]}`{dirty}; "
        f"raw output `{json_path}` (do not edit this section by hand: re-run, or "
        f"`--render {json_path}{cb.section_flag(doc['command'], SECTION, section)}`). "
        f"Data: {data.get('name')} ({data.get('num_classes')} classes, {data.get('num_train')} training / "
        f"{data.get('num_test')} test images, {data.get('input_size')} px); chance {cb._pct(data.get('chance'))} %. "
        f"Seeds {', '.join(str(x) for x in seeds)}; {doc['epochs']} epochs per run; lr schedule `{schedule}` "
        f"({what}); {doc['seconds']['total'] / 60:.0f} min in all.",
        "",
        "| seed | naive_simsiam kNN % per width | naive backbone std | naive collapsed at | first monitored epoch "
        "with a std < 0.1 | one width kNN % (w1) | one width std | one width collapsed | naive − one width at w1 |",
        "|---" * 9 + "|",
    ]
    for e in s["per_seed"]:
        sd = e["seed"]
        ctrl = next((r for r in rows if r["run"] == run_name(CONTROL, sd)), None)
        naive = run_cells(rows, run_name(NAIVE, sd), e["evaluated"], e["collapsed_widths"], e["collapse_epoch"])
        diff = e.get("naive_minus_control_w1")
        diff_text = "–" if not diff else f"{diff['diff_points']:+.1f}" + {
            True: " (intervals overlap)", False: " (intervals apart)"}.get(diff.get("intervals_overlap"), "")
        cacc = "–" if ctrl is None else f"{cb._pct(ctrl['knn_top1'])}{cb._ci(ctrl['knn_top1_ci'])}"
        cstd = "–" if ctrl is None else cb._std(ctrl["embedding_std"])
        ccol = "–" if ctrl is None else ("yes" if ctrl["collapsed"] else "no")
        lines.append(f"| {sd} | {naive} | {cacc} | {cstd} | {ccol} | {diff_text} |")
    base = " / ".join(f"{w}: {cb._pct(b.get('knn_top1'))}{cb._ci(b.get('knn_top1_ci'))}"
                      for w, b in sorted(ri.items(), key=lambda kv: -float(kv[0])))
    lines += ["", f"Random-init network (same kNN, per width): {base or '–'}."]
    if raw:
        lines.append(f"Raw pixels: {cb._pct(raw.get('knn_top1'))}{cb._ci(raw.get('knn_top1_ci'))} %.")
    lines += [
        "",
        f"- naive_simsiam collapsed at every width: {_rate_text(s['naive_collapsed_all_widths'])}.",
        f"- naive_simsiam collapsed at one width or more: {_rate_text(s['naive_collapsed_any_width'])}.",
        f"- The width-1 control collapsed: {_rate_text(s['control_collapsed'])}.",
    ]
    if "us3l_collapsed_any_width" in s:
        lines.append(f"- us3l collapsed at one width or more: {_rate_text(s['us3l_collapsed_any_width'])}.")
    lines += us3l_table(s, rows)
    lines += [
        "",
        "| run | epochs | CPU s of training | status | recipe |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {r['epochs_done']} | {r['train_cpu_seconds']:.0f} | {r['status']} | {cb.recipe_text(r)} |"
              for n, r in runs.items()]
    lines += std_curves(runs, seeds)
    return "\n".join(lines) + "\n"


def run_cells(rows: list[dict[str, Any]], run: str, evaluated: bool, collapsed: list[float],
              epoch: int | None) -> str:
    """A slimmed run's table cells: kNN per width (widest first), backbone std range, collapsed widths, first
    monitored epoch with a std below the threshold."""
    mine = sorted((r for r in rows if r["run"] == run), key=lambda r: -r["width"])
    accs = " / ".join(f"{r['width']:g}: {cb._pct(r['knn_top1'])}{cb._ci(r['knn_top1_ci'])}" for r in mine)
    stds = [r["embedding_std"] for r in mine if r["embedding_std"] is not None]
    std_text = "–" if not stds else f"{min(stds):.2f}-{max(stds):.2f}"
    where = "–" if not evaluated else (", ".join(f"{w:g}" for w in collapsed) or "no width")
    return f"{accs or '–'} | {std_text} | {where} | {epoch if epoch is not None else '–'}"


def us3l_table(s: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Per seed, where us3l ran: its kNN per width, std range and collapsed widths, and naive − us3l per width."""
    entries = [e for e in s["per_seed"] if "us3l_evaluated" in e]
    if not entries:
        return []
    lines = ["", "US3L (its recipe, with the command's `--set` overrides: the runs table below) with the same "
             "seed, epochs and lr schedule; naive − us3l is paired by seed:",
             "", "| seed | us3l kNN % per width | us3l backbone std | us3l collapsed at | first monitored epoch "
             "with a std < 0.1 | naive − us3l, points per width |", "|---" * 6 + "|"]
    for e in entries:
        cells = run_cells(rows, run_name(US3L, e["seed"]), e["us3l_evaluated"], e["us3l_collapsed_widths"],
                          e["us3l_collapse_epoch"])
        diffs = " / ".join(f"{d['width']:g}: {d['diff_points']:+.1f}" + (" (overlap)" if d["intervals_overlap"] else "")
                           for d in e["naive_minus_us3l"])
        lines.append(f"| {e['seed']} | {cells} | {diffs or '–'} |")
    return lines


def std_curves(runs: dict[str, Any], seeds: Sequence[int]) -> list[str]:
    """The training monitor's lowest backbone std over the widths, per run and monitored epoch."""
    names = [run_name(b, s) for s in seeds for b in (NAIVE, CONTROL, US3L)
             if (runs.get(run_name(b, s)) or {}).get("curve")]
    if not names:
        return []
    epochs = sorted({p["epoch"] for n in names for p in runs[n]["curve"]})
    lines = ["", "Training monitor: the lowest backbone std·√D over the monitored widths (≈1 spread, 0 collapsed; "
                 "batch-statistics BN):", "", "| epoch | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for ep in epochs:
        cells = []
        for n in names:
            p = next((p for p in runs[n]["curve"] if p["epoch"] == ep), None)
            stds = [v for v in ((p or {}).get("backbone_std") or {}).values() if v is not None]
            cells.append(f"{min(stds):.2f}" if stds else "")
        lines.append(f"| {ep} | " + " | ".join(cells) + " |")
    return lines


def finished(cfg: Any) -> bool:
    """Whether ``cfg``'s run folder holds a finished run (its config and checkpoint)."""
    out = Path(cfg.out)
    return (out / "config.yaml").is_file() and (out / "checkpoint.safetensors").is_file()


def train_or_reuse(args: argparse.Namespace, tasks: list[tuple[str, Any]]) -> dict[str, dict[str, Any]]:
    """``--reuse``: every run from its folder; ``--resume``: the finished ones from their folders (checked like
    ``--reuse``), the others trained; otherwise every run trained. In the order of ``tasks``."""
    reuse = [(n, c) for n, c in tasks if args.reuse or (args.resume and finished(c))]
    runs = {name: nl.reuse_run(cfg) for name, cfg in reuse}
    if runs:
        cb.log(f"reusing {len(runs)} finished run(s): {', '.join(runs)}")
    runs.update(cb.run_parallel(args.collapse.jobs, [t for t in tasks if t[0] not in runs], cb.log))
    return {name: runs[name] for name, _ in tasks}


def main(argv: Sequence[str] | None = None) -> int:
    return cb.bench_main(argv, parse_args, _run, BENCH_KIND, BENCH_SCHEMA, "naive-seeds result", render_markdown)


def _run(args: argparse.Namespace, cli: list[str], docs: Path | None) -> int:
    git = cb.git_commit()  # the code that trains, recorded before a long run lets the tree move on
    t0 = time.perf_counter()
    out = nl.prepare_out(args)
    tasks = run_tasks(args, out)
    runs = train_or_reuse(args, tasks)
    for name, cfg in tasks:
        control, us3l = name.startswith(CONTROL), name.startswith(US3L + "_seed")
        runs[name].update(method=US3L if us3l else NAIVE, single_width=None, run_dir=str(cfg.out),
                          config=cfg.to_dict(), seed=cfg.seed, label=CONTROL if control else US3L if us3l else NAIVE,
                          eval_widths=[1.0] if control else None)
    t_train = time.perf_counter()
    ev = cb.evaluate_all(args.collapse, runs, cb.log, baseline_run=run_name(NAIVE, args.seeds[0]))
    fields = dict(git=git, machine={**cb.machine(), "torch_threads": runs[tasks[0][0]]["config"].get("threads")},
                  seeds=args.seeds, epochs=args.epochs, data=ev["data"], runs=runs, results=ev["rows"],
                  baselines=ev["baselines"], summary=summarize(args.seeds, ev["rows"], runs))
    return nl.write_result(args, cli, docs, out, "naive_seeds.py", BENCH_KIND, BENCH_SCHEMA, fields,
                           (t0, t_train, time.perf_counter()), render_markdown)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    script_cli.run(main)
