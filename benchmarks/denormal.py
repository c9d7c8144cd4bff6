"""Flushing denormal floats to zero during CPU training (``flush_denormal``): what it costs and what it changes.

Trains the same run twice, side by side (two ``us3l train`` processes of one thread each, started together on
a machine with at least two cores), once with ``flush_denormal: true`` (the default) and once with ``false``,
and prints per epoch the CPU seconds of both, their ratio (IEEE denormals / flushed) and the run's backbone
feature std from the training monitor; then whether the two final checkpoints hold bit-identical tensors
(every tensor of ``checkpoint.safetensors`` compared with ``torch.equal``; the files' bytes can differ in the
order of their header's metadata).

The default run is the naive SimSiam recipe under the collapse stress of docs/evaluation.md ("The collapse
within 30 minutes": weight decay 4e-3, lr 0.05 held constant), which collapses at about epoch 16-24 on the
built-in data: a collapsing network is where denormals appear (its features and gradients shrink towards
zero). ``--method``/``--set`` train another recipe, e.g. the default ``us3l`` one, to check that nothing
changes where nothing collapses. Writes ``OUT/denormal.json`` (kind "denormal_benchmark", schema 1: the tool
version, the git commit, the date and the machine beside the per-epoch results), atomically.

    python benchmarks/denormal.py                          # 48 epochs, ~13 min on 2 cores
    python benchmarks/denormal.py --epochs 4 --out /tmp/dn # smoke run
    python benchmarks/denormal.py --method us3l --no-stress --epochs 12
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from us3l import script_cli

# benchmarks/ is not a package: a sibling script is imported by name from this folder
sys.path.insert(0, str(Path(__file__).resolve().parent))
import collapse as cb  # noqa: E402

KIND = "denormal_benchmark"
SCHEMA = 1
STRESS = ("weight_decay=0.004", "lr=0.05", "lr_schedule=constant")
VARIANTS = {"flushed": "true", "ieee": "false"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = script_cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/denormal", help="folder for the two runs and denormal.json")
    p.add_argument("--method", default="naive_simsiam", help="training method of both runs (default naive_simsiam)")
    p.add_argument("--epochs", type=script_cli.positive_int, default=48, help="epochs of both runs (default 48)")
    p.add_argument("--seed", type=script_cli.nonnegative_int, default=100, help="seed of both runs (default 100)")
    p.add_argument("--knn-every", type=script_cli.nonnegative_int, default=4, metavar="K",
                   help="training monitor every K epochs")
    p.add_argument("--no-stress", dest="stress", action="store_false",
                   help=f"train the method's own recipe instead of the collapse stress ({', '.join(STRESS)})")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key for both runs, repeatable")
    return p.parse_args(argv)


def train_command(args: argparse.Namespace, run: Path, flush: str) -> list[str]:
    sets = [*(STRESS if args.stress else ()), *args.sets, f"flush_denormal={flush}"]
    cmd = [sys.executable, "-m", "us3l", "train", "--method", args.method, "--epochs", str(args.epochs),
           "--seed", str(args.seed), "--threads", "1", "--knn-every", str(args.knn_every), "--save-every", "0",
           "--out", str(run), "--overwrite", "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def epochs_of(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if "epoch" in r]


def same_tensors(a: Path, b: Path) -> tuple[bool, int]:
    """Whether two safetensors files hold the same names and bit-identical tensors, and how many."""
    import torch
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    same = ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    return same, len(ta)


def ratios_of(curves: dict[str, list[dict[str, Any]]]) -> list[float]:
    """Per epoch, the IEEE run's CPU seconds over the flushed run's."""
    return [b["cpu_seconds"] / a["cpu_seconds"] for a, b in zip(curves["flushed"], curves["ieee"], strict=True)]


def table(curves: dict[str, list[dict[str, Any]]], ratios: list[float]) -> list[str]:
    lines = [f"{'epoch':>5} {'flushed s':>10} {'ieee s':>8} {'ieee/flushed':>13}  backbone std (w=1)"]
    for a, b, r in zip(curves["flushed"], curves["ieee"], ratios, strict=True):
        std = a.get("backbone_std", {}).get("1")
        lines.append(f"{a['epoch']:>5} {a['cpu_seconds']:>10.2f} {b['cpu_seconds']:>8.2f} "
                     f"{r:>13.2f}  {'' if std is None else f'{std:.3f}'}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        print("error: the two runs train side by side and need at least 2 cores", file=sys.stderr)
        return 1
    from us3l.io import output_folder

    out = output_folder(Path(args.out))  # a file there was 'error: File exists: PATH'
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = dt.datetime.now(dt.timezone.utc)
    procs = {name: subprocess.Popen(train_command(args, out / name, flag), env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
             for name, flag in VARIANTS.items()}
    print(f"training {args.method} twice, side by side, {args.epochs} epochs (flush_denormal true / false)...",
          file=sys.stderr)
    for name, proc in procs.items():
        _, err = proc.communicate()
        if proc.returncode != 0:
            print(f"error: the {name} run failed: {script_cli.last_words(err, '(no output)')}", file=sys.stderr)
            return 1
    curves = {name: epochs_of(out / name) for name in VARIANTS}
    identical, n_tensors = same_tensors(*(out / name / "checkpoint.safetensors" for name in VARIANTS))
    ratios = ratios_of(curves)
    lines = table(curves, ratios)
    git, mach = cb.git_commit(), cb.machine()
    commit = (git["commit"] or "unknown")[:10] + (" (uncommitted changes)" if git["dirty"] else "")
    head = (f"# {args.method}, {args.epochs} epochs, seed {args.seed}"
            f"{', stress ' + ' '.join(STRESS) if args.stress else ''}{' ' + ' '.join(args.sets) if args.sets else ''};"
            f" {started:%Y-%m-%d %H:%M} UTC, commit {commit}, {mach['cpu']}, 1 thread per run, "
            f"the two runs side by side")
    foot = (f"# ieee/flushed: median {statistics.median(ratios):.2f}, max {max(ratios):.2f}; final weights "
            f"{'bit-identical' if identical else 'DIFFERENT'} ({n_tensors} tensors)")
    print("\n".join([head, *lines, foot]))
    from us3l.io import atomic_write_json, header

    atomic_write_json(out / "denormal.json", {
        **header(KIND, SCHEMA), "date": f"{started:%Y-%m-%dT%H:%M:%SZ}",
        "command": [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])],
        "git": git,
        "machine": {**mach, "torch_threads": 1, "processor": platform.processor(), "cores": os.cpu_count()},
        "settings": vars(args), "commands": {n: train_command(args, out / n, f) for n, f in VARIANTS.items()},
        "epochs": curves, "ratios": ratios, "tensors": n_tensors, "bit_identical": identical,
    })
    print(f"wrote {out / 'denormal.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    script_cli.run(main)
