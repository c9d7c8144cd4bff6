"""What ending the process costs after a command: the interpreter's finalisation against ``us3l.cli.end_process``.

Each round runs the same ``us3l export`` twice in fresh processes, interleaved (so both see the same load): one
ends as a plain Python program does (``sys.exit``: the interpreter frees every module and the libraries run their
static destructors), the other as the ``us3l`` command now does (``us3l.cli.end_process``: ``atexit`` functions,
flushed streams, ``os._exit``). Printed per ending: the median time from the command's return to the process's
end (the child prints ``time.monotonic()``, the system-wide clock, as the command returns; the parent reads it again
once the child is reaped), the median whole-process wall time, and the difference and ratio of the medians.

    python benchmarks/exit_cost.py [--model cifar_resnet18] [--width 1.0] [--backend openvino] [--rounds 5]

Its result is quoted in docs/deploy.md ("Export time").
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

from us3l import script_cli

ROOT = Path(__file__).resolve().parents[1]
ENDINGS = ("finalise", "end_process")


def _child(args: argparse.Namespace) -> NoReturn:
    """One export, then the process ends the way ``args.ending`` names."""
    sys.path.insert(0, str(ROOT))
    import us3l.cli as cli

    rc = cli.main(["export", "--model", args.model, "--width", str(args.width), "--backend", args.backend,
                   "--out", args.out, "--quiet"])
    print(f"RETURNED {time.monotonic()!r}", flush=True)
    if args.ending == "end_process":
        cli.end_process(rc)
    sys.exit(rc)


def _one(args: argparse.Namespace, ending: str) -> tuple[float, float]:
    """(seconds from the command's return to the process's end, whole-process wall seconds) of one child."""
    from us3l.errors import US3LError

    with tempfile.TemporaryDirectory(prefix="us3l-exit-cost-") as out:
        cmd = [sys.executable, __file__, "--child", ending, "--model", args.model, "--width", str(args.width),
               "--backend", args.backend, "--out", out]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        t1 = time.monotonic()
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RETURNED ")), None)
    if proc.returncode != 0 or line is None:
        raise US3LError(f"the export failed ({ending}, exit {proc.returncode}): {script_cli.last_words(proc.stderr)}")
    return t1 - float(line.split()[1]), t1 - t0


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=script_cli.model, default="cifar_resnet18")
    ap.add_argument("--width", type=script_cli.width, default=1.0)
    ap.add_argument("--backend", choices=("onnx", "openvino"), default="openvino")
    ap.add_argument("--rounds", type=script_cli.positive_int, default=5)
    ap.add_argument("--child", choices=ENDINGS, dest="ending", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ending:
        _child(args)
    from us3l.profiler.provenance import provenance_line

    runs: dict[str, list[tuple[float, float]]] = {e: [] for e in ENDINGS}
    for _ in range(args.rounds):
        for ending in ENDINGS:
            runs[ending].append(_one(args, ending))
    print(provenance_line())
    print(f"# us3l export --model {args.model} --width {args.width:g} --backend {args.backend}, {args.rounds} "
          f"interleaved rounds, medians")
    print(f"{'ending':<12} {'return -> end s':>15} {'process wall s':>15}")
    med = {}
    for ending, pairs in runs.items():
        med[ending] = (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs))
        print(f"{ending:<12} {med[ending][0]:15.2f} {med[ending][1]:15.2f}")
    saved = med["finalise"][0] - med["end_process"][0]
    print(f"end_process saves {saved:.2f} s per command; process wall end_process/finalise "
          f"{med['end_process'][1] / med['finalise'][1]:.3f}")


if __name__ == "__main__":
    script_cli.run(main)
