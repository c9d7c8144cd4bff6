"""Naive SimSiam on a universally slimmable network, trained far beyond the collapse benchmark's budget.

``benchmarks/collapse.py`` fits every run into 30 minutes, so naive SimSiam gets about 40-70 epochs there. This
script asks what happens with several times that: it trains, with the same library code and the packaged
default config (``--set key=value`` changes a setting for both runs),

- ``naive_simsiam``: SimSiam + US-Nets inplace distillation with the reference's naive recipe (sandwich rule,
  3 widths per batch, no schedule, no regularizer, wd 5e-4, lr 0.05);
- ``naive_simsiam_one_width``: the same recipe at width 1 only (no sub-widths, no distillation),

for the same number of epochs (``--epochs``, default 300; about 50 and 20 CPU minutes on this 2-core machine,
run side by side), with the training monitor every ``--curve-every`` epochs. ``--lr-schedule constant`` holds
the base lr instead of the reference's per-epoch cosine (the first epochs of a much longer run, which is where
the naive recipe collapses on the built-in data), and ``--lr-schedule-epochs L`` trains the first ``--epochs``
epochs of an L-epoch cosine; ``--with-us3l`` adds a third run, ``us3l`` with its own
recipe, under the same epochs and schedule. Both are then BN-recalibrated and
evaluated like ``us3l eval`` (kNN, k capped by the data, 95 % Wilson intervals, random-init and raw-pixel
baselines). The difference at width 1 is what naive slimming costs SimSiam; a width counts as collapsed by the
collapse benchmark's criterion (an embedding std below 0.1, or a kNN interval containing chance).

Writes ``OUT/naive_long.json`` (kind "naive_long_benchmark", schema 1) and regenerates the section of
docs/evaluation.md between ``<!-- SECTION:begin -->`` and ``<!-- SECTION:end -->`` (``--section``, default
``naive-long``; ``--docs PATH``, ``--no-docs``; ``--render JSON`` re-renders from a result). ``--reuse``
evaluates run folders already in OUT instead of training them again, after checking that their recorded config
is the one this command would train.

Usage::

    python benchmarks/naive_long.py                          # ~50 min on 2 cores; updates docs/evaluation.md
    python benchmarks/naive_long.py --quick --out /tmp/nl    # smoke run (~1 min), does not touch the docs
    python benchmarks/naive_long.py --epochs 152 --lr-schedule constant --with-us3l --section naive-constant
    python benchmarks/naive_long.py --epochs 160 --lr-schedule-epochs 1000 --with-us3l --section naive-cosine1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from us3l import script_cli

ROOT = Path(__file__).resolve().parent.parent
BENCH_KIND = "naive_long_benchmark"
BENCH_SCHEMA = 1
SECTION = "naive-long"  # the default docs section (--section)
DOCS = ROOT / "docs" / "evaluation.md"
NAIVE = "naive_simsiam"
US3L = "us3l"
# config keys that do not change what a run trains (where it writes, how it reports, how often it saves)
NOT_TRAINING = frozenset({"out", "quiet", "json", "save_every", "knn_every", "threads", "num_workers"})


# benchmarks/ is not a package: a sibling script is imported by name from this folder
sys.path.insert(0, str(Path(__file__).resolve().parent))
import collapse as cb  # noqa: E402

markers = cb.section_markers  # the begin and end markers of a generated docs section
BEGIN, END = markers(SECTION)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = script_cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=script_cli.positive_int, default=None,
                   help="epochs of every run (default 300; --quick: 2, or 4 with --with-us3l)")
    p.add_argument("--curve-every", type=script_cli.nonnegative_int, default=None, metavar="K",
                   help="training-monitor kNN every K epochs (default 20; --quick: 1)")
    p.add_argument("--out", default="runs/naive_long", help="folder for the runs and naive_long.json")
    p.add_argument("--data", default="builtin", help="data spec of both runs (default: builtin)")
    p.add_argument("--jobs", type=script_cli.positive_int, default=None,
                   help="training processes at a time (default: min(2, cores))")
    p.add_argument("--threads", type=script_cli.positive_int, default=None, help="torch threads per run (default 1)")
    p.add_argument("--seed", type=script_cli.nonnegative_int, default=None,
                   help="seed of both runs (default: the config's)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key for both runs (YAML value), repeatable")
    p.add_argument("--lr-schedule", choices=("epoch", "constant"), default=None,
                   help="lr schedule of every run (default: the config's, the reference's per-epoch cosine)")
    p.add_argument("--lr-schedule-epochs", type=script_cli.positive_int, default=None, metavar="L",
                   help="train the first --epochs epochs of an L-epoch schedule (default: L = --epochs)")
    p.add_argument("--with-us3l", action="store_true",
                   help="also train us3l (its own recipe) for the same epochs under the same schedule")
    p.add_argument("--section", default=SECTION, help=f"name of the docs section to regenerate (default {SECTION})")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 epochs on 20 images per class, small heads")
    p.add_argument("--reuse", action="store_true",
                   help="evaluate the finished runs already in OUT (their config must match) instead of training")
    p.add_argument("--docs", default=None, help=f"markdown file to update (default for full runs: {DOCS})")
    p.add_argument("--no-docs", action="store_true", help="do not update any markdown file")
    p.add_argument("--render", default=None, metavar="JSON", help="only re-render the docs from this result file")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = (4 if args.with_us3l else 2) if args.quick else 300  # us3l's schedule A: a multiple of 4
    if args.curve_every is None:
        args.curve_every = 1 if args.quick else 20
    # the collapse benchmark's settings object, for its config, evaluation and subset helpers
    shared = ["--data", args.data, "--curve-every", str(args.curve_every), "--out", args.out]
    for flag, value in (("--jobs", args.jobs), ("--threads", args.threads), ("--seed", args.seed)):
        if value is not None:
            shared += [flag, str(value)]
    sets = args.sets + ([f"lr_schedule={args.lr_schedule}"] if args.lr_schedule else [])
    sets += [f"lr_schedule_epochs={args.lr_schedule_epochs}"] if args.lr_schedule_epochs else []
    shared += [x for s in sets for x in ("--set", s)]
    args.collapse = cb.parse_args(shared + (["--quick"] if args.quick else []))
    return args


def run_tasks(args: argparse.Namespace, out: Path) -> list[tuple[str, Any]]:
    """(run name, resolved config) of the runs: the slimmed naive recipe, its width-1-only control, and with
    ``--with-us3l`` the us3l recipe."""
    ca = args.collapse
    tasks = [
        (NAIVE, cb.make_config(ca, NAIVE, args.epochs, out / NAIVE, None)),
        (cb.NAIVE_CONTROL, cb.make_config(ca, NAIVE, args.epochs, out / cb.NAIVE_CONTROL, None,
                                          extra={"num_samples": 1, "knn_widths": [1.0]})),
    ]
    if args.with_us3l:
        tasks.append((US3L, cb.make_config(ca, US3L, args.epochs, out / US3L, None)))
    return tasks


def config_mismatch(recorded: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The training settings in which a finished run's recorded config differs from the wanted one (``auto``
    settings match whatever they resolved to)."""
    from us3l.train.config import as_recorded

    wanted = as_recorded(wanted, recorded)
    keys = (set(recorded) | set(wanted)) - NOT_TRAINING
    return sorted(k for k in keys if recorded.get(k) != wanted.get(k))


def reuse_run(cfg: Any) -> dict[str, Any]:
    """The numbers ``collapse.train`` reports, read from a finished run folder whose config matches ``cfg``."""
    import yaml

    from us3l.errors import US3LError

    out = Path(cfg.out)
    cfg_path, ckpt = out / "config.yaml", out / "checkpoint.safetensors"
    if not (cfg_path.is_file() and ckpt.is_file()):
        raise US3LError(f"--reuse: {out} has no finished run (config.yaml and checkpoint.safetensors)")
    recorded = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    wanted = cfg.to_dict()
    diff = config_mismatch(recorded, wanted)
    if diff:
        shown = ", ".join(f"{k}: {recorded.get(k)!r} != {wanted.get(k)!r}" for k in diff[:4])
        raise US3LError(f"--reuse: {out} was trained with other settings ({shown})")
    curve = cb.monitor_curve(out)
    done = sum(1 for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line.strip())
    if done != cfg.epochs:
        raise US3LError(f"--reuse: {out} recorded {done} of {cfg.epochs} epochs")
    train_s, cpu_s, _ = cb.epoch_seconds(out)
    last = curve[-1] if curve else {}
    return {"epochs": cfg.epochs, "train_seconds": round(train_s, 1), "train_cpu_seconds": round(cpu_s, 1),
            "wall_seconds": None, "curve": curve if cfg.knn_every else [], "status": "reused", "message": "",
            "epochs_done": done, "monitor_knn": last.get("knn_top1", {}), "monitor_std": last.get("collapse_std", {})}


def summarize(rows: list[dict[str, Any]], random_init: dict[str, Any]) -> dict[str, Any]:
    """naive_simsiam against its one-width control at width 1 and against the random-init network per width
    (and which us3l widths collapsed, when it ran)."""
    out: dict[str, Any] = {"collapsed_widths": [r["width"] for r in rows if r["method"] == NAIVE and r["collapsed"]],
                           "vs_random_init": []}
    if any(r["method"] == US3L for r in rows):
        out["us3l_collapsed_widths"] = [r["width"] for r in rows if r["method"] == US3L and r["collapsed"]]
    control = cb.naive_vs_one_width(rows)
    if control:
        out["naive_vs_one_width"] = control
    for r in sorted(rows, key=lambda r: -r["width"]):
        base = random_init.get(f"{r['width']:g}")
        if r["method"] != NAIVE or not base or r["knn_top1"] is None:
            continue
        out["vs_random_init"].append({
            "width": r["width"], "diff_points": round(100.0 * (r["knn_top1"] - base["knn_top1"]), 2),
            "intervals_overlap": cb.intervals_overlap(r["knn_top1_ci"], base.get("knn_top1_ci"))})
    return out


def render_markdown(doc: dict[str, Any], json_path: str, section: str | None = None) -> str:
    """The docs section for one result document (everything in it comes from ``doc``)."""
    data, runs, s, git = doc["data"], doc["runs"], doc["summary"], doc["git"]
    ri, raw = doc["baselines"]["random_init"], doc["baselines"].get("raw_pixels")
    dirty = " (uncommitted changes)" if git.get("dirty") else ""
    lines = [
        f"Generated by `{doc['command']}` on {doc['date']}, commit `{(git.get('commit') or '?')[:7]}`{dirty}; "
        f"raw output `{json_path}` (do not edit this section by hand: re-run, or "
        f"`--render {json_path}{cb.section_flag(doc['command'], SECTION, section)}`). "
        f"Data: {data.get('name')} "
        f"({data.get('num_classes')} classes, {data.get('num_train')} training / {data.get('num_test')} test "
        f"images, {data.get('input_size')} px); chance {cb._pct(data.get('chance'))} %.",
        "",
        "| run | epochs | CPU s of training | status |",
        "|---|---|---|---|",
    ]
    for name, r in runs.items():
        lines.append(f"| {name} | {r['epochs_done']} | {r['train_cpu_seconds']:.0f} | {r['status']} |")
    ncfg = runs.get(NAIVE, {}).get("config") or {}
    schedule, length = ncfg.get("lr_schedule"), ncfg.get("lr_schedule_epochs")
    if schedule:
        what = "the base lr throughout" if schedule == "constant" else "per-epoch cosine"
        if length and schedule != "constant":
            what += f" over {length} epochs, of which the runs train the first {ncfg.get('epochs')}"
        lines += ["", f"lr schedule of every run: `{schedule}` ({what})."]
    names = [n for n in (NAIVE, cb.NAIVE_CONTROL, US3L) if n in runs]
    short = {NAIVE: "naive", cb.NAIVE_CONTROL: "one width", US3L: "us3l"}
    lines += ["", f"| width | {' | '.join(names)} | random init "
                  f"| backbone std ({' / '.join(short[n] for n in names)}) |", "|---" * (len(names) + 3) + "|"]
    rows = doc["results"]

    def cell(r: dict[str, Any] | None) -> str:
        return "–" if r is None else f"{cb._pct(r['knn_top1'])}{cb._ci(r['knn_top1_ci'])}"

    for w in sorted({r["width"] for r in rows}, reverse=True):
        found = [cb.find_row(rows, n, w) for n in names]
        base = ri.get(f"{w:g}") or {}
        stds = " / ".join(cb._std(None if r is None else r["embedding_std"]) for r in found)
        lines.append(f"| {w:g} | {' | '.join(cell(r) for r in found)} | {cb._pct(base.get('knn_top1'))}"
                     f"{cb._ci(base.get('knn_top1_ci'))} | {stds} |")
    if raw:
        lines += ["", f"Raw pixels (same kNN): {cb._pct(raw.get('knn_top1'))}{cb._ci(raw.get('knn_top1_ci'))} %."]
    lines.append("")
    ctl = s.get("naive_vs_one_width")
    if ctl:
        lines.append(f"- naive_simsiam − naive_simsiam_one_width at width 1: {ctl['diff_points']:+.1f} points"
                     f"{cb._overlap(ctl)} (what slimming SimSiam naively costs after {doc['epochs']} epochs).")
    vs = s.get("vs_random_init") or []
    if vs:
        parts = ", ".join(f"{v['width']:g}: {v['diff_points']:+.1f}" + (" (overlap)" if v["intervals_overlap"] else "")
                          for v in vs)
        lines.append(f"- naive_simsiam − random init, points per width: {parts}.")
    def listed(ws: list[float]) -> str:
        return ", ".join(f"{w:g}" for w in ws) if ws else "no width"

    lines.append("- Collapsed (embedding std < 0.1 or kNN interval containing chance): "
                 f"{listed(s.get('collapsed_widths') or [])}.")
    if "us3l_collapsed_widths" in s:
        lines.append(f"- us3l collapsed: {listed(s['us3l_collapsed_widths'])}.")
    lines += cb.render_curves(runs)
    lines += cb.render_curves(runs, "backbone_std", "Training monitor, backbone std·√D of the L2-normalised features "
                              "(≈1 spread, 0 collapsed; batch-statistics BN):", lambda v: f"{v:.2f}")
    return "\n".join(lines) + "\n"


def prepare_out(args: argparse.Namespace) -> Path:
    """The output folder, created; with ``--subset`` (quick runs) the subset data written into it."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ca = args.collapse
    if ca.subset is not None:
        size = cb.resolve_run(cb.base_overrides(ca)).image_size
        ca.data = cb.write_subset(ca.data, ca.subset, out / "_subset", size)
    return out


def write_result(args: argparse.Namespace, cli: list[str], docs: Path | None, out: Path, script: str, kind: str,
                 schema: int, fields: dict[str, Any], times: tuple[float, float, float],
                 render: cb.Render) -> int:
    """Write ``OUT/<script stem>.json`` (header, date, command, ``fields``, seconds), print its docs section and
    regenerate it in ``docs``."""
    from us3l.io import atomic_write_json, header

    t0, t_train, t_end = times
    doc = header(kind, schema)
    doc.update(
        date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        command=f"python benchmarks/{script} {shlex.join(cli)}".strip(),
        **fields,
        seconds={"train": round(t_train - t0, 1), "eval": round(t_end - t_train, 1), "total": round(t_end - t0, 1)},
    )
    path = out / f"{Path(script).stem}.json"
    atomic_write_json(path, doc)
    section = render(doc, cb._display_path(path), section=args.section)
    print(section)
    if docs is not None:
        cb.update_docs(docs, section, *markers(args.section), args.section)
        cb.log(f"updated {docs}")
    cb.log(f"total {(t_end - t0) / 60:.1f} min; wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cb.bench_main(argv, parse_args, _run, BENCH_KIND, BENCH_SCHEMA, "naive-long result", render_markdown)


def _run(args: argparse.Namespace, cli: list[str], docs: Path | None) -> int:
    ca = args.collapse
    git = cb.git_commit()  # the code that trains, recorded before a long run lets the tree move on
    t0 = time.perf_counter()
    out = prepare_out(args)
    tasks = run_tasks(args, out)
    runs = {name: reuse_run(cfg) for name, cfg in tasks} if args.reuse else cb.run_parallel(ca.jobs, tasks, cb.log)
    for name, cfg in tasks:
        method = US3L if name == US3L else NAIVE
        runs[name].update(method=method, single_width=None, run_dir=str(out / name), config=cfg.to_dict(),
                          label=cb.run_label(name, method), eval_widths=[1.0] if name == cb.NAIVE_CONTROL else None)
    t_train = time.perf_counter()
    ev = cb.evaluate_all(ca, runs, cb.log, baseline_run=NAIVE)
    fields = dict(git=git, machine={**cb.machine(), "torch_threads": runs[NAIVE]["config"].get("threads")},
                  epochs=args.epochs, data=ev["data"], runs=runs, results=ev["rows"], baselines=ev["baselines"],
                  summary=summarize(ev["rows"], ev["baselines"]["random_init"]))
    return write_result(args, cli, docs, out, "naive_long.py", BENCH_KIND, BENCH_SCHEMA, fields,
                        (t0, t_train, time.perf_counter()), render_markdown)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    script_cli.run(main)
