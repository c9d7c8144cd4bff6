"""Reproduction benchmark: naive SSL on a universally slimmable network collapses, US3L does not, and US3L's
sub-networks come close to networks trained alone at their width for the same training time.

Runs, on the configured data (``--data``, default the built-in set), with every other setting taken from the
packaged default config (model, image size, batch size, heads, augmentation; ``--set key=value`` changes one
for every run):

- ``us3l``: the US3L recipe as ``us3l train`` resolves it (EMA teacher, schedule A with two widths per step,
  auxiliary head, group reg.; ``--us3l-set num_samples=3`` for the reference's three);
- ``naive_simsiam``: SimSiam + US-Nets inplace distillation with the reference's naive recipe (no width
  schedule, no regularizer, wd 5e-4, lr 0.05, projector ending in BatchNorm1d(affine=False));
- ``single`` at each of ``--single-widths`` (0.25, 0.5, 0.75, 1): the individually trained baseline (the claim
  concerns 0.25-0.75; width 1 is the reference point of the us3l base network);
- beside the claim, ``single`` at the same widths for as many epochs as us3l (``*_same_epochs``, the paper's
  comparison; ``--no-same-epochs`` skips it) and for ``T / n`` each, n the number of single widths
  (``*_split_budget``: one run per width with the us3l run's time split over them, what getting these widths
  costs without a slimmable network; ``--no-split-budget`` skips it);
- beside the collapse check, ``naive_simsiam_one_width``: the same naive recipe at width 1 only (no sub-widths,
  no inplace distillation) for as many epochs as naive_simsiam, so that naive_simsiam's width-1 network minus it
  is what slimming SimSiam naively costs, apart from what SimSiam itself learns here (``--no-naive-control``
  skips it).

**Equal-time rule.** Every training run gets the same *CPU* time of training ``T`` (the sum of its epochs'
``cpu_seconds`` in ``metrics.jsonl``: process CPU time, one torch thread per process; monitors and checkpoint
writes excluded). Runs are separate ``us3l train`` processes, ``--jobs`` at a time (default 2 on 2 cores), so
CPU time rather than wall time is what is equal when other work shares the machine; the wall seconds are
reported beside it. Epoch counts are derived from probe runs, made in the pairs the runs train in (an epoch's
CPU cost moves with the process sharing the cores): one epoch of every single network, three of naive_simsiam
beside four of us3l under schedule A, one per stage, because its stages cost differently (stage 1 trains the
full width only; stages 2 and 3 train larger sub-networks than stage 4); ``schedule_a_seconds`` adds the stage
costs up over the epochs of each stage:

- the budget ``--minutes`` (total wall clock, probes and evaluation included) minus the probes and the
  evaluation reserve (``--eval-share`` of the budget) is split into shares: the runs, each one share long (the
  width-1 control and the same-epochs singles their predicted fraction of one, the split-budget singles one
  together), start in order on the first free one of ``--jobs`` slots, and the share is what makes the two
  phases (below) end within the budget (``makespan``);
- us3l gets the largest multiple of 4 epochs (schedule A) that fits one share (at least 4), and
  ``T`` = the predicted CPU seconds of those epochs;
- naive_simsiam, which trains beside us3l, gets ``round(T / t_epoch)`` epochs (at least 1), ``t_epoch`` the CPU
  seconds per epoch of its probe;
- every ``single`` starts after the us3l run and gets ``round(T' / t_epoch)`` epochs, ``T'`` the CPU seconds the
  us3l run actually trained (the probes' prediction T ran a few per cent under it); the measured CPU seconds of
  every run, and their ratio to the us3l run's, are reported.

Then every run is BN-recalibrated per width and evaluated with the library's kNN protocol (``us3l.eval``: k
capped by the data, 95 % Wilson intervals, random-init and raw-pixel baselines from the us3l run). Collapse
indicators per width: embedding std (sqrt(D) * mean std of the L2-normalised backbone features; ~1 spread,
0 collapsed), the training monitor's projector-output std, and whether the kNN interval contains chance.

Writes ``OUT/collapse.json`` (kind "collapse_benchmark", schema 2) and regenerates the section of
docs/evaluation.md between ``<!-- collapse:begin -->`` and ``<!-- collapse:end -->`` from it (full runs only;
``--docs PATH`` / ``--no-docs`` to choose, ``--section NAME`` for the markers of another section; ``--render
JSON`` re-renders from an existing result). ``--set KEY=VALUE`` changes a setting of every run (a
``weight_decay`` only of the runs without the group regularizer, which replaces it: ``resolve_run``),
``--naive-set KEY=VALUE`` one of the naive_simsiam runs only (e.g. a weight decay that makes its collapse fit
the budget, with us3l and the single runs on their own recipes), ``--us3l-set KEY=VALUE`` one of the us3l run
and its probe only (e.g. ``num_samples=3``, the reference's sandwich, where the default recipe trains two
widths per step).

Usage::

    python benchmarks/collapse.py                      # the benchmark: <= 30 min on 2 CPU cores
    python benchmarks/collapse.py --quick --out /tmp/c # smoke run (~1-2 min), does not touch the docs
    python benchmarks/collapse.py --naive-set weight_decay=0.004 --no-docs   # a setting of the naive runs only
    python benchmarks/collapse.py --us3l-set num_samples=3 --no-docs         # a setting of the us3l run only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from us3l import script_cli

ROOT = Path(__file__).resolve().parent.parent
BENCH_KIND = "collapse_benchmark"
BENCH_SCHEMA = 2
DOCS = ROOT / "docs" / "evaluation.md"
EVAL_WIDTHS = (1.0, 0.75, 0.5, 0.25)
SINGLE_WIDTHS = (0.25, 0.5, 0.75, 1.0)
CLAIM_WIDTHS = (0.25, 0.5, 0.75)  # issue 10 item 5: us3l within 2 points of single at these widths
COLLAPSE_STD = 0.1  # std·sqrt(D) below this = collapsed (the training monitor's collapse_warn default)
TIME_TOLERANCE = 0.05  # a single run whose CPU time is off the us3l run's by more is flagged in the docs
WITHIN_POINTS = 2.0  # issue 10 item 5: US3L within 2 kNN points of (or above) single
Log = Callable[[str], None]


def section_markers(name: str) -> tuple[str, str]:
    """The begin and end markers of the generated docs section ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


SECTION = "collapse"  # the default docs section (--section)
BEGIN, END = section_markers(SECTION)


#: A generated section's renderer: ``render(doc, json_path, section=None) -> markdown``.
Render = Callable[..., str]


def section_flag(command: str, default: str, section: str | None = None) -> str:
    """`` --section NAME`` when the section is another than ``default``: the re-render hint of a generated section
    must name the section it regenerates. ``section``: the one being rendered, when known (a result re-rendered
    into a section its run did not write); else the one the recorded ``command`` wrote."""
    if section is not None:
        return "" if section == default else f" --section {section}"
    try:
        words = shlex.split(command)
    except ValueError:
        return ""
    for i, w in enumerate(words):
        name = w.split("=", 1)[1] if w.startswith("--section=") else (
            words[i + 1] if w == "--section" and i + 1 < len(words) else None)
        if name and name != default:
            return f" --section {name}"
    return ""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = script_cli.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--out", default="runs/collapse", help="folder for the runs and collapse.json")
    p.add_argument("--data", default="builtin", help="data spec for every run (default: builtin)")
    p.add_argument("--minutes", type=script_cli.positive_float, default=None,
                   help="total wall-clock budget, probes and evaluation included (default 30; 1.5 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run (~1-2 min): --subset 20, small model, minimum epochs; does not touch the docs")
    p.add_argument("--subset", type=script_cli.positive_int, default=None, metavar="K",
                   help="train on K images per class of --data (test: K/2 per class), written as an ImageFolder")
    p.add_argument("--eval-share", type=float, default=0.1, help="fraction of the budget reserved for evaluation")
    p.add_argument("--jobs", type=script_cli.positive_int, default=None,
                   help="training processes at a time, one torch thread each (default: min(2, cores))")
    p.add_argument("--single-widths", type=script_cli.widths, default=",".join(f"{w:g}" for w in SINGLE_WIDTHS),
                   help="widths of the networks trained alone (default %(default)s)")
    p.add_argument("--eval-widths", type=script_cli.widths, default=",".join(f"{w:g}" for w in EVAL_WIDTHS),
                   help="widths of us3l/naive (default %(default)s)")
    p.add_argument("--curve-every", type=script_cli.nonnegative_int, default=4, metavar="K",
                   help="training-monitor kNN of us3l and naive_simsiam every K epochs (0: at the end only)")
    p.add_argument("--no-same-epochs", dest="same_epochs", action="store_false",
                   help="skip the singles trained for as many epochs as us3l (the paper-style comparison)")
    p.add_argument("--no-split-budget", dest="split_budget", action="store_false",
                   help="skip the singles that share the us3l run's time over the single widths (train once for "
                        "every width vs. one run per width with the same total time)")
    p.add_argument("--no-naive-control", dest="naive_control", action="store_false",
                   help="skip the naive recipe trained at width 1 only for as many epochs as naive_simsiam (what "
                        "SimSiam learns here without the slimmable network)")
    p.add_argument("--us3l-epochs", type=script_cli.positive_int, default=None,
                   help="fix the us3l epochs instead of the budget rule (the other runs still get their CPU time)")
    p.add_argument("--us3l-stage1", type=float, default=None, metavar="F",
                   help="share of the us3l run's epochs in schedule A's first stage, full width only (config key "
                        "schedule_stage1; default 0.25, the reference's four equal stages)")
    p.add_argument("--calib-batches", type=script_cli.positive_int, default=None,
                   help="BN calibration batches (library default)")
    p.add_argument("--knn-k", type=script_cli.positive_int, default=None,
                   help="requested kNN k (library default; capped by the data)")
    p.add_argument("--threads", type=script_cli.positive_int, default=None, help="torch threads per run (default 1)")
    p.add_argument("--seed", type=script_cli.nonnegative_int, default=None,
                   help="seed of every run (default: the config's)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run (YAML value), e.g. --set image_size=32; a weight_decay "
                        "skips the runs whose group regularizer replaces weight decay")
    p.add_argument("--naive-set", dest="naive_sets", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the naive_simsiam runs only (the slimmed run, its probe and its "
                        "width-1 control), applied after --set, e.g. --naive-set weight_decay=0.004")
    p.add_argument("--us3l-set", dest="us3l_sets", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the us3l run and its probe only, applied after --set, e.g. "
                        "--us3l-set num_samples=3")
    p.add_argument("--section", default=SECTION,
                   help="name of the docs section to regenerate (default collapse: the markers "
                        "<!-- NAME:begin --> and <!-- NAME:end -->)")
    p.add_argument("--docs", default=None, help=f"markdown file to update (default for full runs: {DOCS})")
    p.add_argument("--no-docs", action="store_true", help="do not update any markdown file")
    p.add_argument("--render", default=None, metavar="JSON", help="only re-render the docs from this result file")
    args = p.parse_args(argv)
    args.data_source = args.data
    if args.minutes is None:
        args.minutes = 1.5 if args.quick else 30.0
    if args.jobs is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        args.jobs = max(1, min(2, cores))
    if args.quick and args.subset is None:
        args.subset = 20
    if args.subset is not None and args.subset < 4:
        p.error("--subset must be >= 4 images per class")
    if not args.minutes > 0 or not 0.0 <= args.eval_share < 1.0:
        p.error("--minutes must be > 0 and --eval-share in [0, 1)")
    from us3l.errors import US3LError
    from us3l.train.sampling import REFERENCE_STAGE1, check_schedule, check_stage1

    if args.us3l_stage1 is None:
        args.us3l_stage1 = REFERENCE_STAGE1
    try:
        check_stage1(args.us3l_stage1)
        if args.us3l_epochs is not None:
            check_schedule("A", args.us3l_epochs, args.us3l_stage1)
    except US3LError as e:
        p.error(f"--us3l-epochs/--us3l-stage1: {e}")
    return args


# ------------------------------------------------------------------------------------------ budget rule


def _valid_epochs(epochs: int, stage1: float) -> bool:
    from us3l.errors import US3LError
    from us3l.train.sampling import check_schedule

    try:
        check_schedule("A", epochs, stage1)
    except US3LError:
        return False
    return True


def min_us3l_epochs(stage1: float) -> int:
    """The fewest epochs schedule A accepts with first-stage share ``stage1`` (4 for the reference's 0.25)."""
    return next(e for e in range(1, 10_000) if _valid_epochs(e, stage1))


def schedule_a_seconds(epochs: int, stage_s: Sequence[float], stage1: float) -> float:
    """Predicted training seconds of ``epochs`` epochs of schedule A, ``stage_s`` the seconds of one epoch in
    each of its 4 stages: the first (``stage1`` of the epochs) trains the full width only, stages 2-4 split
    the rest equally (``us3l.train.sampling.schedule_a_min_width``'s rule)."""
    from us3l.train.sampling import stage1_epochs

    first = stage1_epochs(epochs, stage1)
    rest = epochs - first
    return first * stage_s[0] + sum(stage_s[1 + (e * 3) // rest] for e in range(rest))


def us3l_epochs(share_s: float, stage_s: Sequence[float], stage1: float = 0.25) -> int:
    """The most epochs schedule A accepts (a multiple of 4 for the reference's ``stage1`` 0.25) whose predicted
    training time fits ``share_s`` seconds; at least :func:`min_us3l_epochs`."""
    best = min_us3l_epochs(stage1)
    e = best
    while schedule_a_seconds(e + 1, stage_s, stage1) <= share_s:
        e += 1
        if _valid_epochs(e, stage1):
            best = e
    return best


US3L_PROBE_EPOCHS = 4  # the us3l probe: schedule A with four equal stages, one epoch each
# naive_simsiam trains beside us3l, so it is probed beside the us3l probe for about as long (an epoch of it costs
# about as much as three of the probe's four); the single networks are probed in pairs afterwards
NAIVE_PROBE_EPOCHS = 3
SPLIT_SUFFIX = "_split_budget"
NAIVE_CONTROL = "naive_simsiam_one_width"  # run name and results label of the naive recipe at width 1 only


def run_label(name: str, method: str) -> str:
    """The results-table label of run ``name``: the two extra kinds of single runs get their own."""
    if name.endswith("_same_epochs"):
        return "single_same_epochs"
    if name.endswith(SPLIT_SUFFIX):
        return "single_split_budget"
    if name == NAIVE_CONTROL:
        return NAIVE_CONTROL
    return method


def single_time_rule(budget: dict[str, Any]) -> str:
    """How a result sized its equal-time single runs: ``"measured"`` (from the CPU seconds the us3l run trained,
    since 2026-12-04) or ``"predicted"`` (from the probes' prediction of them, the results before)."""
    return "measured" if budget.get("single_target_cpu_seconds") else "predicted"


def equal_time_epochs(target_s: float, t_epoch: float) -> int:
    """Epochs whose training time is closest to ``target_s`` at ``t_epoch`` seconds each; at least 1."""
    return max(1, round(target_s / max(t_epoch, 1e-9)))


def makespan(lengths: Sequence[float], jobs: int) -> tuple[float, int]:
    """How long runs of these ``lengths`` take, each started in the given order on the first free one of ``jobs``
    slots (``run_parallel``), and the most runs one slot trains one after the other (each pays the per-run
    overhead once). naive_simsiam's width-1 control trains after naive_simsiam in its slot, beside the us3l run:
    counted as spread over the slots, the plan of 2026-12-06 put that phase at 1.2 shares where it took 1.4, and
    the run took 30.6 of its 30 minutes."""
    ends = [0.0] * max(1, jobs)
    counts = [0] * max(1, jobs)
    for length in lengths:
        i = min(range(len(ends)), key=ends.__getitem__)
        ends[i] += length
        counts[i] += 1
    return max(ends), max(counts)


def per_run_share(budget_s: float, elapsed_s: float, eval_share: float, overhead_s: float, runs: int) -> float:
    """Training seconds per run: what is left of the budget after the probes (``elapsed_s``), the evaluation
    reserve and the per-run overheads (monitor, checkpoint), split evenly over ``runs``."""
    left = budget_s * (1.0 - eval_share) - elapsed_s - overhead_s
    return max(0.0, left / max(1, runs))


# ------------------------------------------------------------------------------------------ training


def write_subset(spec: str, per_class: int, root: Path, image_size: int | None) -> str:
    """The first ``per_class`` train (``per_class // 2`` test) images of every class of ``spec``, written as an
    ImageFolder (PNG) under ``root``; returns its ``folder:`` spec. For smoke runs only: a folder data set
    keeps the images but not the source's normalisation statistics."""
    from PIL import Image

    from us3l.data import iterate_batches, load_dataset

    if root.exists():
        import shutil

        shutil.rmtree(root)  # this benchmark's own folder: no stale images of an earlier subset
    for split, k in (("train", per_class), ("test", max(2, per_class // 2))):
        ds = load_dataset(spec, split, image_size=image_size)
        counts = [0] * len(ds.classes)
        for images, labels in iterate_batches(ds, 256):
            for img, y in zip(images, labels.tolist(), strict=True):
                if counts[y] >= k:
                    continue
                d = root / split / f"{y:03d}"
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img.permute(1, 2, 0).contiguous().numpy()).save(d / f"{counts[y]:05d}.png")
                counts[y] += 1
            if min(counts) >= k:
                break
    return f"folder:{root}"


def base_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings shared by every run (everything else comes from the packaged default config)."""
    # one torch thread per run unless --threads or --set says otherwise: runs share the cores (--jobs), so not
    # the config's `threads: auto`, which every run started at once would resolve to all of them
    over: dict[str, Any] = {"data": args.data, "quiet": True, "knn_every": 0, "threads": 1}
    over.update(parse_sets(args.sets, "--set"))
    if args.threads:
        over["threads"] = args.threads
    if args.seed is not None:
        over["seed"] = args.seed
    if args.quick:  # a smaller network of the same family, when the model has the knob
        kw = dict(resolve_run(over).model_kwargs)
        if "base_channels" in kw:
            over["model_kwargs"] = {**kw, "base_channels": 8}
        over.setdefault("proj_hidden", 64)
        over.setdefault("pred_hidden", 64)
    return over


def parse_sets(items: Sequence[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` items (YAML values) as a mapping; a one-line error naming ``flag`` for a malformed one."""
    import yaml

    from us3l.errors import US3LError

    over: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise US3LError(f"{flag} expects key=value, got {item!r}")
        over[key.strip()] = yaml.safe_load(value)
    return over


def resolve_run(over: dict[str, Any], own_weight_decay: bool = False) -> Any:
    """``resolve_config(None, over)`` without the shared ``--set weight_decay`` where the run's group regularizer
    replaces weight decay: `us3l train` refuses it there (the run would not use it), and ``--set`` is every run's,
    so the stress weight decay reaches the runs that have one (``recipe_text`` says the others have none). A
    ``weight_decay`` of the run's own (``own_weight_decay``: ``--naive-set``) is left to the refusal."""
    from us3l.train.config import resolve_config

    if "weight_decay" in over and not own_weight_decay:
        without = resolve_config(None, {k: v for k, v in over.items() if k != "weight_decay"})
        if without.regularizer:
            return without
    return resolve_config(None, over)


def make_config(args: argparse.Namespace, method: str, epochs: int, out: Path, single_width: float | None,
                probe: bool = False, extra: dict[str, Any] | None = None) -> Any:
    from us3l.train.sampling import REFERENCE_STAGE1

    over = {**base_overrides(args), "method": method, "epochs": epochs, "out": str(out), "save_every": epochs}
    own: dict[str, Any] = {}
    if method == "naive_simsiam":  # its probe and its width-1 control included
        own = parse_sets(args.naive_sets, "--naive-set")
    elif method == "us3l":  # its probe included
        own = parse_sets(args.us3l_sets, "--us3l-set")
    over.update(own)
    if single_width is not None:
        over["single_width"] = single_width
    if not probe and single_width is None and args.curve_every:
        over["knn_every"] = args.curve_every  # the learning curve of us3l and naive_simsiam (training monitor)
    if probe:
        over["knn_widths"] = [single_width if single_width is not None else 1.0]
        if method == "us3l":  # one epoch per stage of schedule A (US3L_PROBE_EPOCHS), whose costs differ
            over["schedule_stage1"] = REFERENCE_STAGE1
    elif method == "us3l":
        over["schedule_stage1"] = args.us3l_stage1
    over.update(extra or {})
    return resolve_run(over, own_weight_decay="weight_decay" in own or "weight_decay" in (extra or {}))


def monitor_curve(run_dir: Path) -> list[dict[str, Any]]:
    """The training monitor's kNN top-1 and projector std per width at each monitored epoch (metrics.jsonl)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"epoch": r["epoch"], "knn_top1": r["knn_top1"], "collapse_std": r.get("collapse_std", {}),
             "backbone_std": r.get("backbone_std", {}), "loss_base": (r.get("loss") or {}).get("base")}
            for r in recs if r.get("knn_top1")]


def epoch_seconds(run_dir: Path) -> tuple[float, float, list[float]]:
    """(wall, CPU, CPU per epoch) training seconds of a run: the sums of its epochs' ``seconds`` and
    ``cpu_seconds`` in ``metrics.jsonl`` (monitor and checkpoint writes excluded), and the latter per epoch."""
    wall = 0.0
    cpu: list[float] = []
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            wall += float(rec.get("seconds", 0.0))
            cpu.append(float(rec.get("cpu_seconds", rec.get("seconds", 0.0))))
    return wall, sum(cpu), cpu


def train(cfg: Any) -> dict[str, Any]:
    """One ``us3l train`` process for ``cfg`` (its resolved config written to ``OUT/config.input.yaml``),
    with the numbers the benchmark needs. A run that fails (a NaN loss, say) is recorded, not raised."""
    import yaml

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_file = out.parent / f"{out.name}.input.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    cmd = [sys.executable, "-m", "us3l", "train", "--config", str(cfg_file), "--overwrite", "--quiet", "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    train_s, cpu_s, per_epoch = epoch_seconds(out)
    info: dict[str, Any] = {"epochs": cfg.epochs, "train_seconds": round(train_s, 1),
                            "train_cpu_seconds": round(cpu_s, 1),
                            "epoch_cpu_seconds": [round(c, 2) for c in per_epoch], "wall_seconds": round(wall, 1),
                            "curve": monitor_curve(out) if cfg.knn_every else []}
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        info.update(status="failed", message=lines[-1] if lines else f"exit {proc.returncode}", epochs_done=0,
                    monitor_knn={}, monitor_std={})
        return info
    res = json.loads(proc.stdout)
    info.update(status=res["status"], message="", epochs_done=res["epochs"], monitor_knn=res["knn_top1"],
                monitor_std=res["collapse_std"])
    return info


def run_specs(args: argparse.Namespace) -> list[tuple[str, str, float | None]]:
    """(run name, method, single width) of every training run, us3l first."""
    specs: list[tuple[str, str, float | None]] = [("us3l", "us3l", None), ("naive_simsiam", "naive_simsiam", None)]
    specs += [(f"single_w{w:g}", "single", w) for w in args.single_widths]
    return specs


def run_parallel(jobs: int, tasks: list[tuple[str, Any]], log: Log) -> dict[str, dict[str, Any]]:
    """Train every ``(name, cfg)`` of ``tasks``, ``jobs`` processes at a time, in the given order."""
    from concurrent.futures import ThreadPoolExecutor

    def one(item: tuple[str, Any]) -> tuple[str, dict[str, Any]]:
        name, cfg = item
        log(f"[{name}] training {cfg.epochs} epoch(s) ...")
        info = train(cfg)
        log(f"[{name}] {info['status']}: {info['train_cpu_seconds']:.0f} CPU s of training "
            f"({info['train_seconds']:.0f} s wall in epochs, {info['wall_seconds']:.0f} s wall in all)")
        return name, info

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return dict(pool.map(one, tasks))


def train_all(args: argparse.Namespace, out: Path, log: Log, t_start: float) -> tuple[dict[str, Any], dict[str, Any]]:
    budget_s = args.minutes * 60.0
    if args.subset is not None:
        size = resolve_run(base_overrides(args)).image_size
        args.data = write_subset(args.data, args.subset, out / "_subset", size)
        log(f"subset of {args.data_source}: {args.subset} train images per class in {args.data}")
    specs = run_specs(args)
    # us3l is probed also when --us3l-epochs fixes its epochs: T (every other run's CPU time) follows from them
    probe_epochs = {"us3l": US3L_PROBE_EPOCHS, "naive_simsiam": NAIVE_PROBE_EPOCHS}
    probe_tasks = [(name, make_config(args, method, probe_epochs.get(name, 1), out / "_probe" / name, sw,
                                      probe=True)) for name, method, sw in specs]
    # probed in the pairs they train in: an epoch's CPU cost moves with the process sharing the cores (a single
    # network probed beside the us3l probe cost up to 15 % more per epoch than beside another single network)
    probed = run_parallel(args.jobs, [t for t in probe_tasks if not t[0].startswith("single")], log)
    probed.update(run_parallel(args.jobs, [t for t in probe_tasks if t[0].startswith("single")], log))
    probes = {}
    for name, info in probed.items():
        if info["status"] == "failed":
            from us3l.errors import US3LError

            raise US3LError(f"probe {name} failed: {info['message']}")
        n = max(1, len(info["epoch_cpu_seconds"]))
        probes[name] = {"epochs": n, "train_seconds": info["train_seconds"],
                        "epoch_seconds": round(info["train_seconds"] / n, 2),
                        "epoch_cpu_seconds": round(info["train_cpu_seconds"] / n, 2),
                        "wall_seconds": info["wall_seconds"]}
        if name == "us3l":  # one epoch per stage of schedule A
            probes[name]["stage_cpu_seconds"] = info["epoch_cpu_seconds"]
    probe_s = time.perf_counter() - t_start
    # a run's fixed cost (process start, data, monitor, checkpoint) is paid once per run
    overhead = max((max(0.0, p["wall_seconds"] - p["train_seconds"]) for p in probes.values()), default=0.0)
    from us3l.train.sampling import REFERENCE_STAGE1

    stage1 = args.us3l_stage1
    # schedule A's CPU seconds per epoch in each of its 4 stages (us3l is always probed, one epoch per stage)
    stage_s = probes["us3l"]["stage_cpu_seconds"]
    if len(stage_s) != US3L_PROBE_EPOCHS:
        from us3l.errors import US3LError

        raise US3LError(f"the us3l probe recorded {len(stage_s)} epoch(s), not {US3L_PROBE_EPOCHS}")
    # mean seconds per epoch, to size the same-epochs singles' share below
    t_us3l = stage1 * stage_s[0] + (1.0 - stage1) * sum(stage_s[1:]) / 3
    same_epochs = [w for w in args.single_widths if args.same_epochs and f"single_w{w:g}" in probes]
    split = [w for w in args.single_widths if args.split_budget and f"single_w{w:g}" in probes]
    control = args.naive_control and "naive_simsiam" in probes
    # every run's length in shares, in the order and phase it trains in (below): us3l and naive_simsiam one share
    # each, the naive recipe at width 1 only about a single_w1 epoch per naive_simsiam epoch, the same-epochs
    # singles their epoch time / us3l's, then the equal-time singles one share each and the split-budget singles
    # one share together
    phase1 = [1.0 for name, method, _ in specs if method != "single"]
    if control and t_us3l:
        one = probes.get("single_w1", probes["naive_simsiam"])["epoch_cpu_seconds"]
        phase1.append(one / max(probes["naive_simsiam"]["epoch_cpu_seconds"], 1e-9))
    if t_us3l:
        phase1 += [probes[f"single_w{w:g}"]["epoch_cpu_seconds"] / t_us3l for w in same_epochs]
    phase2 = [1.0 for name, method, _ in specs if method == "single"] + [1.0 / len(split) for _ in split]
    (len1, runs1), (len2, runs2) = makespan(phase1, args.jobs), makespan(phase2, args.jobs)
    rounds = runs1 + runs2  # the most runs one slot trains, each paying the per-run overhead
    share = per_run_share(budget_s, probe_s, args.eval_share, overhead * rounds, 1) / max(len1 + len2, 1e-9)
    e_us3l = args.us3l_epochs or us3l_epochs(share, stage_s, stage1)
    # T predicted from the probes sizes the budget and naive_simsiam (which trains beside us3l); the single runs
    # that the claim compares start after the us3l run and get its measured CPU time instead (below)
    target = schedule_a_seconds(e_us3l, stage_s, stage1)
    log(f"budget {args.minutes:g} min: probes took {probe_s:.0f}s; {len1 + len2:.2f} shares on {args.jobs} slots, "
        f"{share:.0f} CPU s of training per share; us3l gets {e_us3l} epochs")
    method_of = {name: (method, sw) for name, method, sw in specs}
    # phase 1: the runs whose epochs do not depend on the us3l run's time, us3l and naive_simsiam first
    first: list[tuple[str, Any]] = [
        ("us3l", make_config(args, "us3l", e_us3l, out / "us3l", None)),
        ("naive_simsiam", make_config(args, "naive_simsiam",
                                      equal_time_epochs(target, probes["naive_simsiam"]["epoch_cpu_seconds"]),
                                      out / "naive_simsiam", None)),
    ]
    # what SimSiam with the naive recipe learns here without the slimmable network: one width (1), no sub-width
    # distillation, as many epochs as naive_simsiam; naive_simsiam - this = what slimming it naively costs
    if control:
        method_of[NAIVE_CONTROL] = ("naive_simsiam", None)
        first.append((NAIVE_CONTROL, make_config(args, "naive_simsiam", first[1][1].epochs, out / NAIVE_CONTROL,
                                                 None, extra={"num_samples": 1, "knn_widths": [1.0]})))
    # the paper-style comparison beside the equal-time one: single trained for as many epochs as us3l
    for w in same_epochs:
        name = f"single_w{w:g}_same_epochs"
        method_of[name] = ("single", w)
        first.append((name, make_config(args, "single", e_us3l, out / name, w)))
    runs = run_parallel(args.jobs, first, log)
    # phase 2: every single run at equal time gets the CPU seconds the us3l run actually trained (the probes'
    # prediction ran a few per cent under them); only a failed us3l run falls back to the prediction
    measured = float(runs["us3l"]["train_cpu_seconds"]) if runs["us3l"]["status"] != "failed" else 0.0
    t_single = measured if measured > 0 else target
    log(f"single runs get T = {t_single:.0f} CPU s ("
        + ("the us3l run's measured time" if measured > 0 else "predicted: the us3l run failed")
        + f"; predicted {target:.0f})")
    second: list[tuple[str, Any]] = []
    for name, method, sw in specs:
        if method == "single":
            second.append((name, make_config(args, "single", equal_time_epochs(
                t_single, probes[name]["epoch_cpu_seconds"]), out / name, sw)))
    # what a user without US3L does for the same widths: one run per width, the us3l run's time split over them
    for w in split:
        name = f"single_w{w:g}{SPLIT_SUFFIX}"
        method_of[name] = ("single", w)
        epochs = equal_time_epochs(t_single / len(split), probes[f"single_w{w:g}"]["epoch_cpu_seconds"])
        second.append((name, make_config(args, "single", epochs, out / name, w)))
    runs.update(run_parallel(args.jobs, second, log))
    cfgs = dict(first + second)
    # the results in the order of the tables: the equal-time runs, then the comparisons beside the claim
    rank = {"single": 1, "single_same_epochs": 2, "single_split_budget": 3, NAIVE_CONTROL: 4}
    order = sorted(cfgs, key=lambda n: (rank.get(run_label(n, method_of[n][0]), 0), [*cfgs].index(n)))
    runs = {name: runs[name] for name in order}
    for name, info in runs.items():
        method, sw = method_of[name]
        info.update(method=method, single_width=sw, run_dir=str(out / name), config=cfgs[name].to_dict(),
                    label=run_label(name, method))
        if name == NAIVE_CONTROL:
            info["eval_widths"] = [1.0]
    actual = runs["us3l"]["train_cpu_seconds"]
    for info in runs.values():
        info["cpu_ratio_to_us3l"] = round(info["train_cpu_seconds"] / actual, 3) if actual else None
    budget = {
        "minutes": args.minutes,
        "eval_share": args.eval_share,
        "jobs": args.jobs,
        "rule": (
            f"every run trains for the same CPU time T (one torch thread per process, {args.jobs} processes at "
            "a time; the sum of the epochs' process CPU seconds, monitor and checkpoint writes excluded): us3l "
            + (f"gets {e_us3l} epochs (--us3l-epochs)" if args.us3l_epochs
               else ("gets the largest multiple of 4 epochs" if stage1 == REFERENCE_STAGE1 else "gets the most epochs")
               + " fitting an even share of the budget left after the probes and the evaluation reserve")
            + ", T = schedule A's CPU seconds for them predicted from the us3l probe's epoch in each stage "
            f"({stage1:g} of the epochs in stage 1); naive_simsiam, which trains beside us3l, gets "
            "round(T / its probe's CPU seconds per epoch) epochs; each single run starts after the us3l run and "
            "gets round(T' / its probe's CPU seconds per epoch) epochs, T' the CPU seconds the us3l run "
            "actually trained"
        ),
        "us3l_stage1": stage1,
        "probes": probes,
        "probe_seconds": round(probe_s, 1),
        "share_seconds": round(share, 1),
        "target_train_seconds": round(target, 1),
        "single_target_cpu_seconds": round(t_single, 1),
        "us3l_train_cpu_seconds": actual,
    }
    return runs, budget


# ------------------------------------------------------------------------------------------ evaluation


def eval_settings(args: argparse.Namespace, baselines: bool) -> Any:
    import dataclasses

    from us3l.eval.calibrate import CalibrationSettings
    from us3l.eval.runner import EvalSettings, KnnSettings

    calib = CalibrationSettings() if args.calib_batches is None else CalibrationSettings(batches=args.calib_batches)
    if args.quick and args.calib_batches is None:
        calib = CalibrationSettings(batches=2)
    kw: dict[str, Any] = {
        "protocol": "knn",
        "knn": KnnSettings() if args.knn_k is None else KnnSettings(k=args.knn_k),
        "calibration": calib,
        "recalibrate": True,
    }
    if "baselines" in {f.name for f in dataclasses.fields(EvalSettings)}:
        kw["baselines"] = baselines  # the random-init net is the same for every run: measure it once
    return EvalSettings(**kw)


def _interval(row: dict[str, Any], num_test: int | None) -> list[float] | None:
    if row.get("knn_top1_ci") is not None:
        return list(row["knn_top1_ci"])
    if num_test is None or row.get("knn_top1") is None:
        return None
    from us3l.eval.intervals import wilson_interval

    return wilson_interval(float(row["knn_top1"]), int(num_test))


def evaluate_all(args: argparse.Namespace, runs: dict[str, dict[str, Any]], log: Log,
                 baseline_run: str = "us3l") -> dict[str, Any]:
    """Evaluate every run (kNN per width, Wilson intervals, collapse indicators); the random-init and raw-pixel
    baselines are measured once, with ``baseline_run``'s architecture."""
    from us3l.errors import US3LError
    from us3l.eval.accuracy import ACCURACY_FILE, save_accuracy
    from us3l.eval.runner import evaluate_checkpoint, open_checkpoint

    widths = args.eval_widths
    rows: list[dict[str, Any]] = []
    data: dict[str, Any] = {"spec": args.data, "source": args.data_source, "subset_per_class": args.subset}
    baselines: dict[str, Any] = {"random_init": {}, "raw_pixels": None}
    for name, info in runs.items():
        t0 = time.perf_counter()
        try:
            loaded = open_checkpoint(info["run_dir"])
            ws = info.get("eval_widths") or ([info["single_width"]] if info["single_width"] is not None else widths)
            doc = evaluate_checkpoint(loaded, args.data, ws, eval_settings(args, baselines=name == baseline_run))
        except US3LError as exc:
            info["eval_error"] = str(exc)
            log(f"[{name}] not evaluated: {exc}")
            continue
        save_accuracy(doc, Path(info["run_dir"]) / ACCURACY_FILE)
        meta_data = loaded.meta.get("data") or {}
        num_test = doc.get("num_test") or meta_data.get("test_size")
        num_classes = int(doc["num_classes"])
        data.update(name=meta_data.get("name"), num_classes=num_classes, num_train=meta_data.get("train_size"),
                    num_test=num_test, chance=1.0 / num_classes, input_size=doc.get("input_size"))
        knn = (doc.get("protocols") or {}).get("knn") or {}
        data["knn"] = {k: knn.get(k) for k in ("k", "k_requested", "temperature", "bank_size") if k in knn}
        if doc.get("baselines"):
            baselines["raw_pixels"] = doc["baselines"].get("raw_pixels")
        for r in doc["widths"]:
            if r.get("baseline_random_init"):
                baselines["random_init"][f"{r['width']:g}"] = r["baseline_random_init"]
            ci = _interval(r, num_test)
            proj = (info.get("monitor_std") or {}).get(f"{r['width']:g}")
            emb = r.get("embedding_std")
            rows.append({
                "method": info.get("label", info["method"]),
                "run": name,
                "width": r["width"],
                "knn_top1": r.get("knn_top1"),
                "knn_top1_ci": ci,
                "knn_top5": r.get("knn_top5"),
                "embedding_std": emb,
                "projector_std": proj,
                "chance_in_ci": None if ci is None else bool(ci[0] <= 1.0 / num_classes <= ci[1]),
                "collapsed": is_collapsed(emb, proj, ci, 1.0 / num_classes),
                "macs": r.get("macs"),
                # which test images it got right (us3l.eval.hits): the paired comparisons of the verdict
                "knn_top1_hits": r.get("knn_top1_hits"),
                "num_test": num_test,
            })
        log(f"[{name}] evaluated in {time.perf_counter() - t0:.0f}s")
    return {"rows": rows, "data": data, "baselines": baselines}


def is_collapsed(emb_std: float | None, proj_std: float | None, ci: Sequence[float] | None, chance: float) -> bool:
    """Collapsed: an embedding std·sqrt(D) below COLLAPSE_STD (backbone or projector), or a kNN top-1 whose
    95 % interval contains chance."""
    low_std = any(s is not None and s < COLLAPSE_STD for s in (emb_std, proj_std))
    return bool(low_std or (ci is not None and ci[0] <= chance <= ci[1]))


def verdict(rows: list[dict[str, Any]], single_widths: Sequence[float],
            random_init: dict[str, Any] | None = None) -> dict[str, Any]:
    """The two claims of issue 10 item 5, computed from the rows (plus, beside the collapse criterion, the
    widths whose kNN interval overlaps the random-init network's: nothing learned that survives)."""
    naive = [r for r in rows if r["method"] == "naive_simsiam"]
    us3l = [r for r in rows if r["method"] == "us3l"]
    def compare(baseline: str) -> list[dict[str, Any]]:
        out = []
        for w in single_widths:
            u, s = find_row(rows, "us3l", w), find_row(rows, baseline, w)
            if u is None or s is None or u["knn_top1"] is None or s["knn_top1"] is None:
                continue
            diff = round(100.0 * (u["knn_top1"] - s["knn_top1"]), 6)
            overlap = intervals_overlap(u["knn_top1_ci"], s["knn_top1_ci"])
            out.append({"width": w, "us3l": u["knn_top1"], "single": s["knn_top1"], "diff_points": round(diff, 2),
                        "within": diff >= -WITHIN_POINTS, "intervals_overlap": overlap,
                        "claimed": any(abs(w - c) < 1e-9 for c in CLAIM_WIDTHS), "paired": paired(u, s)})
        return out

    return {
        "naive_vs_one_width": naive_vs_one_width(rows),
        "naive_collapsed_widths": [r["width"] for r in naive if r["collapsed"]],
        "naive_widths": [r["width"] for r in naive],
        "naive_at_random_init_widths": [r["width"] for r in naive if _overlaps(r["knn_top1_ci"], (random_init or {})
                                                                             .get(f"{r['width']:g}"))],
        "us3l_collapsed_widths": [r["width"] for r in us3l if r["collapsed"]],
        "us3l_vs_single": compare("single"),
        "us3l_vs_single_same_epochs": compare("single_same_epochs"),
        "us3l_vs_single_split_budget": compare("single_split_budget"),
        "within_points": WITHIN_POINTS,
    }


def paired(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """Row ``a`` − row ``b`` image by image (both evaluated on the same test images): the difference's exact
    conditional 95 % interval in points and the McNemar p-value (``us3l.deploy.tie_test.paired_difference``);
    None where either row has no per-image hits (a result from before they were recorded)."""
    from us3l.deploy.tie_test import paired_difference
    from us3l.eval.hits import decode_hits

    ta, tb, n = a.get("knn_top1_hits"), b.get("knn_top1_hits"), a.get("num_test")
    if not (isinstance(ta, str) and isinstance(tb, str)) or n != b.get("num_test"):
        return None
    ha = decode_hits(ta, n, f"{a.get('run', 'row')} knn_top1_hits")
    hb = decode_hits(tb, n, f"{b.get('run', 'row')} knn_top1_hits")
    d = paired_difference(ha, hb)
    return {"ci_points": [round(100.0 * d.ci[0], 2), round(100.0 * d.ci[1], 2)], "p": d.p,
            "discordant": d.discordant, "images": int(ha.size)}


def find_row(rows: list[dict[str, Any]], method: str, w: float) -> dict[str, Any] | None:
    """The result row of ``method`` at width ``w``, if any."""
    return next((r for r in rows if r["method"] == method and abs(r["width"] - w) < 1e-9), None)


def naive_vs_one_width(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """naive_simsiam against the same recipe trained at width 1 only, at width 1: what naive slimming costs."""
    plain, naive1 = find_row(rows, NAIVE_CONTROL, 1.0), find_row(rows, "naive_simsiam", 1.0)
    diff = knn_diff(naive1, plain)
    if diff is None:
        return None
    return {"width": 1.0, "naive_simsiam": naive1["knn_top1"], "one_width": plain["knn_top1"], **diff}


def knn_diff(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """Row ``a`` − row ``b`` in kNN top-1 points (2 decimals), whether their 95 % intervals overlap and, where both
    rows hold per-image hits, the paired comparison (``paired``); None when either row or its kNN is missing."""
    if not (a and b and a["knn_top1"] is not None and b["knn_top1"] is not None):
        return None
    out = {"diff_points": round(100.0 * (a["knn_top1"] - b["knn_top1"]), 2),
           "intervals_overlap": intervals_overlap(a["knn_top1_ci"], b["knn_top1_ci"])}
    pair = paired(a, b)
    return out if pair is None else {**out, "paired": pair}


# ------------------------------------------------------------------------------------------ provenance


def intervals_overlap(a: Sequence[float] | None, b: Sequence[float] | None) -> bool | None:
    """Whether two intervals share a point; None when either is missing."""
    return bool(a[0] <= b[1] and b[0] <= a[1]) if a and b else None


def _overlaps(ci: Sequence[float] | None, base: dict[str, Any] | None) -> bool:
    return bool(intervals_overlap(ci, (base or {}).get("knn_top1_ci")))


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores_available": cores, "torch_threads": torch.get_num_threads(),
            "load_average_at_end": load, "platform": platform.platform(), "torch": torch.__version__}


def git_commit() -> dict[str, Any]:
    """The commit of this checkout and whether tracked files changed (``us3l.profiler.provenance.git_commit``)."""
    from us3l.profiler.provenance import git_commit as commit_of

    return commit_of(ROOT)


# ------------------------------------------------------------------------------------------ markdown


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _ci(ci: Sequence[float] | None) -> str:
    return "" if not ci else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _std(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


CURVE_TITLE = ("Training monitor (kNN top-1 % during training, the monitor's own settings; a trend, not the "
               "evaluation above):")


def render_curves(runs: dict[str, Any], key: str = "knn_top1", title: str = CURVE_TITLE,
                  fmt: Callable[[float], str] = lambda v: f"{100 * v:.1f}") -> list[str]:
    """The training monitor's ``key`` per width and epoch (default: kNN top-1 %) of the runs that recorded a
    curve (batch-statistics BN, the monitor's quick bank: a trend, not the evaluation)."""
    curves = {name: r["curve"] for name, r in runs.items()
              if len(r.get("curve") or []) > 1 and (r["curve"][-1].get(key) or {})}
    if not curves:
        return []
    cols = [(name, w) for name, c in curves.items() for w in c[-1][key]]
    epochs = sorted({p["epoch"] for c in curves.values() for p in c})
    lines = ["", title, "",
             "| epoch | " + " | ".join(f"{n} w{w}" for n, w in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for e in epochs:
        cells = []
        for name, w in cols:
            p = next((p for p in curves[name] if p["epoch"] == e), None)
            v = None if p is None else (p.get(key) or {}).get(w)
            cells.append("" if v is None else fmt(v))
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    return lines


def _time_share(runs: dict[str, Any], w: float) -> str:
    """``; single had 1.21x us3l's CPU time`` when the equal-time rule missed by more than the tolerance."""
    ratio = (runs.get(f"single_w{w:g}") or {}).get("cpu_ratio_to_us3l")
    if ratio is None or abs(ratio - 1.0) <= TIME_TOLERANCE:
        return ""
    return f"; single had {ratio:.2f}x us3l's CPU time"


def _overlap(c: dict[str, Any]) -> str:
    """How the two accuracies of a comparison differ beyond the noise: image by image where both runs recorded
    their hits (the difference's paired 95 % interval and McNemar p), else whether their 95 % intervals overlap."""
    pair = c.get("paired")
    if pair:
        lo, hi = pair["ci_points"]
        return f" [paired 95 % CI {lo:+.1f}, {hi:+.1f}; McNemar p {_p_text(pair['p'])}]"
    if c.get("intervals_overlap") is None:
        return ""
    return ", intervals overlap" if c["intervals_overlap"] else ", intervals do not overlap"


def _p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def render_markdown(doc: dict[str, Any], json_path: str, section: str | None = None) -> str:
    """The docs section for one result document (everything in it comes from ``doc``)."""
    data, runs, budget, v = doc["data"], doc["runs"], doc["budget"], doc["verdict"]
    git, mach, secs = doc["git"], doc["machine"], doc["seconds"]
    commit = (git.get("commit") or "unknown")[:10] + (" (uncommitted changes)" if git.get("dirty") else "")
    chance = data.get("chance")
    knn = data.get("knn") or {}
    lines = [
        f"_Generated by `benchmarks/collapse.py` from `{json_path}`; do not edit by hand (re-run, or "
        f"`--render {json_path}{section_flag(doc['command'], SECTION, section)}`)._",
        "",
        f"- **Run**: {doc['date']}, commit `{commit}`, command `{doc['command']}`",
        f"- **Machine**: {mach.get('cpu')}, {mach.get('cores_available')} cores available, "
        f"{budget.get('jobs', 1)} run(s) at a time with {mach.get('torch_threads')} torch thread(s) each, "
        "load average at the end "
        f"{mach.get('load_average_at_end')}, torch {mach.get('torch')}",
        f"- **Data**: `{data.get('source')}`"
        + (f" (subset: {data['subset_per_class']} train images per class)" if data.get("subset_per_class") else "")
        + f" ({data.get('name')}: {data.get('num_classes')} classes, "
        f"{data.get('num_train')} train / {data.get('num_test')} test images, {data.get('input_size')} px); "
        f"chance {_pct(chance)} %; kNN k={knn.get('k')} (requested {knn.get('k_requested')}), "
        f"T={knn.get('temperature')}",
        f"- **Time**: {secs['total'] / 60:.1f} min in all (budget {budget['minutes']:g} min): probes "
        f"{secs['probe'] / 60:.1f}, training {secs['train'] / 60:.1f}, evaluation {secs['eval'] / 60:.1f}",
        f"- **Equal-time rule**: {budget['rule']}. T = {budget.get('target_train_seconds')} s"
        + (f", T' = {budget['single_target_cpu_seconds']} s." if budget.get("single_target_cpu_seconds") else "."),
        "",
        "| run | epochs | training CPU s (x us3l) | training wall s | recipe |",
        "|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        recipe = recipe_text(r)
        status = "" if r.get("status") == "completed" else f" ({r.get('status')})"
        cpu = r.get("train_cpu_seconds", r.get("train_seconds"))
        ratio = f" ({r['cpu_ratio_to_us3l']:.2f})" if r.get("cpu_ratio_to_us3l") is not None else ""
        lines.append(f"| {name}{status} | {r.get('epochs_done')} | {cpu}{ratio} | {r.get('train_seconds')} | "
                     f"{recipe} |")
    lines += [
        "",
        "kNN top-1 % with its 95 % Wilson interval; std = sqrt(D)·mean std of L2-normalised features (≈1 spread, "
        f"0 collapsed; backbone at evaluation, projector at the end of training); collapsed = a std below "
        f"{COLLAPSE_STD} or an interval containing chance.",
        "",
        "| method | width | kNN top-1 % [95 % CI] | backbone std | projector std | random init kNN % | collapsed |",
        "|---|---|---|---|---|---|---|",
    ]
    rand = (doc.get("baselines") or {}).get("random_init") or {}
    for r in sorted(doc["results"], key=lambda r: (r["method"] != "us3l", r["method"], -r["width"])):
        base = rand.get(f"{r['width']:g}") or {}
        lines.append(
            f"| {r['method']} | {r['width']:g} | {_pct(r['knn_top1'])}{_ci(r['knn_top1_ci'])} | "
            f"{_std(r['embedding_std'])} | {_std(r['projector_std'])} | "
            f"{_pct(base.get('knn_top1'))}{_ci(base.get('knn_top1_ci'))} | {'**yes**' if r['collapsed'] else 'no'} |"
        )
    lines += render_curves(runs)
    raw = (doc.get("baselines") or {}).get("raw_pixels")
    if raw:
        lines += ["", f"Raw-pixel kNN: {_pct(raw.get('knn_top1'))}{_ci(raw.get('knn_top1_ci'))} %."]
    nc, nw = v["naive_collapsed_widths"], v["naive_widths"]
    lines += [
        "",
        "**Checks** (issue 10, item 5):",
        f"- naive_simsiam collapsed at {len(nc)} of {len(nw)} widths"
        + (f" ({', '.join(f'{w:g}' for w in nc)})" if nc else "")
        + f"; us3l collapsed at {len(v['us3l_collapsed_widths'])}.",
    ]
    at_rand = v.get("naive_at_random_init_widths")
    if at_rand is not None:
        lines.append(f"- naive_simsiam's kNN interval overlaps the random-init network's at {len(at_rand)} of "
                     f"{len(nw)} widths" + (f" ({', '.join(f'{w:g}' for w in at_rand)})" if at_rand else "")
                     + " (not the collapse criterion: a network no better than untrained)")
    ctl = v.get("naive_vs_one_width")
    if ctl:
        lines.append(f"- naive_simsiam at width 1 against the same recipe trained at width 1 only, same epochs "
                     f"({NAIVE_CONTROL}): {ctl['diff_points']:+.1f} points{_overlap(ctl)} (what slimming SimSiam "
                     "naively costs its full-width network here)")
    for c in v["us3l_vs_single"]:
        ok = "yes" if c["within"] else "**no**"
        took = _time_share(runs, c["width"])
        if c.get("claimed", True):
            lines.append(f"- width {c['width']:g}, same training time: us3l − single = {c['diff_points']:+.1f} "
                         f"points (within {v['within_points']:g} points or above: {ok}{_overlap(c)}){took}")
        else:
            lines.append(f"- width {c['width']:g}, same training time (reference point, not part of the claim): "
                         f"us3l − single = {c['diff_points']:+.1f} points{_overlap(c)}{took}")
    singles = [r for n, r in runs.items() if r.get("method") == "single" and run_label(n, "single") == "single"]
    off = [r["cpu_ratio_to_us3l"] for r in singles
           if r.get("cpu_ratio_to_us3l") is not None and abs(r["cpu_ratio_to_us3l"] - 1.0) > TIME_TOLERANCE]
    if off:
        lo, hi = min(off), max(off)
        lines.append(f"- equal time missed by more than ±{TIME_TOLERANCE:.0%} for {len(off)} of {len(singles)} single "
                     f"runs: {lo:.2f}-{hi:.2f}x the us3l run's CPU time (epoch counts are fixed up front from "
                     "probe epochs, and an epoch's CPU cost moves with the run sharing the cores)")
    same = v.get("us3l_vs_single_same_epochs") or []
    if same:
        lines += ["", "Paper-style comparison (not the claim): single trained for as many epochs as us3l, i.e. "
                      "for less time:"]
        lines += [f"- width {c['width']:g}, same epochs: us3l − single = {c['diff_points']:+.1f} points{_overlap(c)}"
                  for c in same]
    split = v.get("us3l_vs_single_split_budget") or []
    if split:
        names = [n for n in runs if n.endswith(SPLIT_SUFFIX)]
        total = sum(runs[n].get("cpu_ratio_to_us3l") or 0.0 for n in names)
        lines += ["", f"Train once vs. one run per width (not the claim): each of the {len(names)} widths trained "
                      f"alone with 1/{len(names)} of the us3l run's time (together {total:.2f}x its CPU time), "
                      "what a user without a slimmable network would run to get these widths:"]
        lines += [f"- width {c['width']:g}, time split over the widths: us3l − single = {c['diff_points']:+.1f} "
                  f"points{_overlap(c)}" for c in split]
    return "\n".join(lines)


def recipe_text(run: dict[str, Any]) -> str:
    """What a run trained with, from its recorded config: lr, weight decay, widths and regularizer. With the group
    regularizer on, the optimizer's weight decay is 0 (the regularizer replaces it, as in the reference), whatever
    ``weight_decay`` the config records: the text gives the regularizer's lambda instead of that number."""
    from us3l.train.sampling import REFERENCE_STAGE1

    c = run.get("config") or {}
    schedule = "fixed width" if run.get("method") == "single" else f"schedule {c.get('schedule')}"
    if run.get("method") != "single" and c.get("num_samples") == 1:
        schedule = "width 1 only"
    elif run.get("method") != "single" and c.get("num_samples") not in (None, 3):
        schedule += f", {c['num_samples']} widths per step"  # the sandwich of the default recipe trains 3
    if c.get("schedule") == "A" and c.get("schedule_stage1", REFERENCE_STAGE1) != REFERENCE_STAGE1:
        schedule += f" (stage 1: {c['schedule_stage1']:g} of the epochs)"
    if c.get("regularizer"):
        lam = c.get("reg_lambda")
        return (f"lr {c.get('lr')}, no weight decay, {schedule}, regularizer on (lambda "
                f"{'?' if lam is None else format(lam, 'g')})")
    return f"lr {c.get('lr')}, wd {c.get('weight_decay')}, {schedule}, regularizer off"


def update_docs(path: Path, section: str, begin: str = BEGIN, end: str = END, name: str = "collapse") -> None:
    """Replace the text between the ``begin`` and ``end`` markers of ``path`` (this script's by default; another
    benchmark passes its own and its section's ``name``) with ``section`` (atomic write)."""
    from us3l.io import atomic_write_text

    text, i, j = docs_markers(path, begin, end, name)
    atomic_write_text(path, text[: i + len(begin)] + "\n" + section.rstrip() + "\n" + text[j:])


def docs_markers(path: Path, begin: str = BEGIN, end: str = END, name: str = "collapse") -> tuple[str, int, int]:
    """The text of ``path`` and the positions of its ``begin`` and ``end`` markers; a one-line error if the file or
    the markers are missing (checked before a long run as well as when it writes)."""
    from us3l.errors import US3LError

    if not path.is_file():
        raise US3LError(f"{path} is not a file: --docs names the markdown file whose {name} section to regenerate")
    text = path.read_text(encoding="utf-8")
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise US3LError(f"{path} has no '{begin}' ... '{end}' markers to regenerate")
    return text, i, j


def rerender(result: str, docs: Path | None, kind: str, schema: int, what: str,
             render: Render, begin: str = BEGIN, end: str = END,
             name: str = "collapse") -> int:
    """``--render``: regenerate the docs section from an existing result file of ``kind`` (``what`` names it
    in errors)."""
    from us3l.errors import US3LError
    from us3l.io import check_schema, read_json

    doc = read_json(result, what)
    check_schema(doc, kind, schema, result)
    if docs is None:
        raise US3LError("--render needs a markdown file to update (--docs PATH or the default)")
    update_docs(docs, render(doc, _display_path(Path(result)), section=name), begin, end, name)
    print(f"updated {docs}")
    return 0


def log(msg: str) -> None:
    """A timestamped progress line on stderr, written in one call (runs report from parallel threads)."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def _display_path(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


# ------------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main(argv, parse_args, _run, BENCH_KIND, BENCH_SCHEMA, "collapse result", render_markdown)


def bench_main(argv: Sequence[str] | None, parse: Callable[[list[str]], argparse.Namespace],
               run: Callable[[argparse.Namespace, list[str], Path | None], int], kind: str, schema: int, what: str,
               render: Render) -> int:
    """The command line of this script and of the benchmarks built on it: parse, pick the docs file (the default
    for full runs only), re-render (``--render``) or check the docs section's markers and run; a US3LError is a
    one-line error and exit 1."""
    from us3l.errors import US3LError
    from us3l.io import output_folder

    cli = list(sys.argv[1:] if argv is None else argv)
    args = parse(cli)
    docs = None if args.no_docs else Path(args.docs) if args.docs else (None if args.quick else DOCS)
    begin, end = section_markers(args.section)
    try:
        if args.render:
            return rerender(args.render, docs, kind, schema, what, render, begin, end, args.section)
        if docs is not None:  # fail before the runs, not after 30-60 minutes of them
            docs_markers(docs, begin, end, args.section)
        output_folder(Path(args.out))  # a file there was 'error: File exists: PATH'
        return run(args, cli, docs)
    except US3LError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, cli: list[str], docs: Path | None) -> int:
    from us3l.io import atomic_write_json, header

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    git = git_commit()  # the code that trains, recorded before a long run lets the tree move on
    t0 = time.perf_counter()
    runs, budget = train_all(args, out, log, t0)
    t_train = time.perf_counter()
    ev = evaluate_all(args, runs, log)
    t_end = time.perf_counter()
    probe_s = float(budget["probe_seconds"])
    doc = header(BENCH_KIND, BENCH_SCHEMA)
    doc.update(
        date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        command=f"python benchmarks/collapse.py {shlex.join(cli)}".strip(),
        git=git,
        machine={**machine(), "torch_threads": runs["us3l"]["config"].get("threads")},  # per training process
        settings={k: v for k, v in vars(args).items() if k != "render"},
        data=ev["data"],
        budget=budget,
        runs=runs,
        results=ev["rows"],
        baselines=ev["baselines"],
        verdict=verdict(ev["rows"], args.single_widths, ev["baselines"]["random_init"]),
        seconds={"probe": round(probe_s, 1), "train": round(t_train - t0 - probe_s, 1),
                 "eval": round(t_end - t_train, 1), "total": round(t_end - t0, 1)},
    )
    path = out / "collapse.json"
    atomic_write_json(path, doc)
    section = render_markdown(doc, _display_path(path), section=args.section)
    print(section)
    if docs is not None:
        update_docs(docs, section, *section_markers(args.section), args.section)
        log(f"updated {docs}")
    over = " (over budget)" if t_end - t0 > args.minutes * 60 else ""
    log(f"total {(t_end - t0) / 60:.1f} min{over}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    script_cli.run(main)
