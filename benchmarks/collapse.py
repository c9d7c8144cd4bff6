"""Reproduction benchmark: naive SSL on a universally slimmable network collapses, US3L does not.

Trains, on the built-in data and under one fixed compute budget (the same model, image size, batch size,
epochs, lr schedule and seed for every run):

- ``us3l``: the US3L recipe (EMA teacher, sandwich rule with schedule A, auxiliary head, group reg.);
- ``naive_simsiam``: SimSiam + US-Nets (online target, inplace distillation through the same predictor);
- ``single``: the individually trained baseline, one run per width (1.0, 0.75, 0.5, 0.25).

Then every run is BN-recalibrated per width and evaluated with the weighted kNN protocol (k=200, T=0.1) on
the held-out split; the embedding std (sqrt(D) * mean std of L2-normalised backbone features; ~1 spread,
0 collapsed) and the training monitor's projector-output std are reported next to it. Prints one table
(method x width) and writes ``collapse.json`` (kind "collapse_benchmark", schema 1).

Usage::

    python benchmarks/collapse.py --out runs/collapse          # ~25 min on 2 CPU cores
    python benchmarks/collapse.py --epochs 2 --out /tmp/smoke  # a quick smoke run

Runs whose checkpoint already exists with the same settings are reused (``--fresh`` retrains everything).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

WIDTHS = (1.0, 0.75, 0.5, 0.25)
METHODS = ("us3l", "naive_simsiam", "single")
# The reference lr of each method's base loss (method.md §1.6): 0.5 for SimCLR-type (us3l = SimCLR_Momentum,
# single = SimCLR_Momentum at one width), 0.05 for SimSiam/BYOL-type.
METHOD_LR = {"us3l": 0.5, "naive_simsiam": 0.05, "single": 0.5}
BENCH_KIND = "collapse_benchmark"
BENCH_SCHEMA = 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/collapse", help="folder for the runs and collapse.json")
    p.add_argument("--epochs", type=int, default=16, help="epochs per run (the fixed budget); multiple of 4")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--model", default="cifar_resnet18")
    p.add_argument("--base-channels", type=int, default=32, help="ResNet stage-1 channels (64 = full size)")
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=None, help="one lr for all (default: each method's reference lr)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--widths", default=",".join(f"{w:g}" for w in WIDTHS))
    p.add_argument("--calib-batches", type=int, default=10, help="BN calibration batches per width")
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--fresh", action="store_true", help="retrain runs that already exist")
    p.add_argument("--json", dest="json_out", default=None, help="result path (default OUT/collapse.json)")
    return p.parse_args(argv)


def run_specs(args: argparse.Namespace) -> list[tuple[str, float | None, str]]:
    """(method, single width or None, run name) for every training run."""
    specs: list[tuple[str, float | None, str]] = []
    widths = [float(w) for w in args.widths.split(",")]
    for m in args.methods.split(","):
        if m == "single":
            specs += [("single", w, f"single_w{w:g}") for w in widths]
        else:
            specs.append((m, None, m))
    return specs


def train_config(args: argparse.Namespace, method: str, single_width: float | None, run_dir: Path) -> Any:
    from us3l.train.config import resolve_config

    overrides: dict[str, Any] = {
        "method": method,
        "model": args.model,
        "model_kwargs": {"base_channels": args.base_channels},
        "data": "builtin",
        "image_size": args.image_size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "out": str(run_dir),
        "quiet": True,
        "save_every": args.epochs,
        "knn_every": 0,
    }
    overrides["lr"] = args.lr if args.lr is not None else METHOD_LR.get(method, 0.5)
    if args.threads:
        overrides["threads"] = args.threads
    if single_width is not None:
        overrides["single_width"] = single_width
    return resolve_config(None, overrides)


def _same_finished_run(run_dir: Path, cfg: Any) -> bool:
    meta = run_dir / "checkpoint.json"
    if not meta.is_file():
        return False
    doc = json.loads(meta.read_text())
    saved = dict(doc.get("config") or {})
    want = cfg.to_dict()
    ignore = ("quiet", "threads")  # settings that do not change what is trained
    return doc.get("epoch") == cfg.epochs and all(saved.get(k) == v for k, v in want.items() if k not in ignore)


def _finished_run_info(run_dir: Path) -> dict[str, Any]:
    """Training time and final monitor values of a finished run, from its metrics.jsonl."""
    seconds, last = 0.0, {}
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            seconds += float(rec.get("seconds", 0.0))
            if "knn_top1" in rec:
                last = rec
    return {"train_seconds": round(seconds, 1), "monitor_knn": last.get("knn_top1"),
            "monitor_std": last.get("collapse_std")}


def train_all(args: argparse.Namespace, out: Path, log: Any) -> dict[str, dict[str, Any]]:
    from us3l.train.loop import run_training

    runs: dict[str, dict[str, Any]] = {}
    for method, sw, name in run_specs(args):
        run_dir = out / name
        cfg = train_config(args, method, sw, run_dir)
        info: dict[str, Any] = {"method": method, "single_width": sw, "run_dir": str(run_dir)}
        if not args.fresh and _same_finished_run(run_dir, cfg):
            log(f"[{name}] reusing the finished run in {run_dir}")
            info.update(status="reused", **_finished_run_info(run_dir))
        else:
            log(f"[{name}] training {cfg.epochs} epochs ...")
            t0 = time.perf_counter()
            res = run_training(cfg, overwrite=True)
            dt = time.perf_counter() - t0
            log(f"[{name}] {res.status} in {dt:.0f}s; monitor kNN "
                + " ".join(f"{w:g}:{100 * a:.1f}" for w, a in sorted(res.final_knn.items(), reverse=True)))
            info.update(
                status=res.status,
                train_seconds=round(dt, 1),
                monitor_knn={f"{w:g}": a for w, a in res.final_knn.items()},
                monitor_std={f"{w:g}": s for w, s in res.collapse_std.items()},
            )
        runs[name] = info
    return runs


def evaluate_all(args: argparse.Namespace, runs: dict[str, dict[str, Any]], log: Any) -> list[dict[str, Any]]:
    from us3l.eval.calibrate import CalibrationSettings
    from us3l.eval.runner import EvalSettings, KnnSettings, evaluate_checkpoint, open_checkpoint

    settings = EvalSettings(
        protocol="knn",
        knn=KnnSettings(k=200, temperature=0.1),
        calibration=CalibrationSettings(batches=args.calib_batches, batch_size=args.batch_size),
        recalibrate=True,
    )
    widths = [float(w) for w in args.widths.split(",")]
    rows: list[dict[str, Any]] = []
    for name, info in runs.items():
        t0 = time.perf_counter()
        loaded = open_checkpoint(info["run_dir"])
        ws = [info["single_width"]] if info["single_width"] is not None else widths
        doc = evaluate_checkpoint(loaded, "builtin", ws, settings)
        from us3l.eval.accuracy import save_accuracy

        save_accuracy(doc, info["run_dir"])
        for r in doc["widths"]:
            mon = (info.get("monitor_std") or {}).get(f"{r['width']:g}")
            rows.append({
                "method": info["method"],
                "run": name,
                "width": r["width"],
                "knn_top1": r["knn_top1"],
                "knn_top5": r["knn_top5"],
                "embedding_std": r["embedding_std"],
                "projector_std": mon,
                "macs": r["macs"],
            })
        log(f"[{name}] evaluated in {time.perf_counter() - t0:.0f}s")
    return rows


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
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores_available": affinity, "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "torch": torch.__version__}


def table_text(rows: list[dict[str, Any]], widths: list[float]) -> str:
    """Markdown table: one line per method, kNN top-1 % / embedding std per width."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    head = "| method | " + " | ".join(f"w={w:g} kNN% / emb std / proj std" for w in widths) + " |"
    lines = [head, "|---" * (len(widths) + 1) + "|"]
    for m in methods:
        cells = []
        for w in widths:
            r = next((r for r in rows if r["method"] == m and abs(r["width"] - w) < 1e-9), None)
            if r is None:
                cells.append("-")
            else:
                ps = "-" if r["projector_std"] is None else f"{r['projector_std']:.2f}"
                cells.append(f"{100 * r['knn_top1']:.1f} / {r['embedding_std']:.2f} / {ps}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from us3l.io import atomic_write_json, header

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    runs = train_all(args, out, log)
    t_train = time.perf_counter() - t0
    rows = evaluate_all(args, runs, log)
    total = time.perf_counter() - t0
    widths = [float(w) for w in args.widths.split(",")]
    doc = header(BENCH_KIND, BENCH_SCHEMA)
    doc.update(
        settings={k: v for k, v in vars(args).items() if k not in ("json_out",)},
        machine=machine(),
        budget=("same model, image size, batch size, epochs, lr schedule and seed for every run; "
                "single = one run per width"),
        runs=runs,
        results=rows,
        seconds={"train": round(t_train, 1), "total": round(total, 1)},
        table_markdown=table_text(rows, widths),
    )
    path = Path(args.json_out) if args.json_out else out / "collapse.json"
    atomic_write_json(path, doc)
    print(doc["table_markdown"])
    print(f"\ntotal {total / 60:.1f} min (training {t_train / 60:.1f} min); wrote {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
