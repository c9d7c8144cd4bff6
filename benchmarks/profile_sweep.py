"""Peak memory and wall time of a full profiling sweep, per model and backend, beside the number of stable widths
(issue 17: a sweep must fit on the board it measures).

Each sweep is one ``us3l profile --json`` child process; its peak resident memory comes from the kernel
(``os.wait4``'s ``ru_maxrss``: the whole process, model creation and exports included), next to the peak the
profile records (``peak_rss_bytes``: the sweep itself) and the window it chose.

    python benchmarks/profile_sweep.py [--models cifar_resnet18,resnet50] [--backends onnx,openvino]
        [--points N] [--max-total-seconds S] [--max-memory-mb M] [--threads T] [--adaptive]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from us3l import script_cli
from us3l.errors import US3LError
from us3l.profiler.provenance import provenance_line


def sweep(model: str, backend: str, args: argparse.Namespace, out: str) -> dict:
    argv = [sys.executable, "-m", "us3l.cli", "profile", "--device", "cpu", "--model", model, "--backend", backend,
            "--out", out, "--json", "--quiet"]
    for flag, value in (("--points", args.points), ("--max-total-seconds", args.max_total_seconds),
                        ("--max-memory-mb", args.max_memory_mb), ("--threads", args.threads)):
        if value is not None:
            argv += [flag, str(value)]
    if args.adaptive:
        argv.append("--adaptive")
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            return {"model": model, "backend": backend, "error": failure(err.read().decode(errors="replace"), code)}
    doc = json.loads(stdout)
    tb, win = doc.get("time_budget") or {}, doc.get("window") or {}
    return {
        "model": model, "backend": backend, "widths": len(doc["records"]), "stable": tb.get("stable_widths"),
        "measured": sum(1 for r in doc["records"] if not r.get("interpolated")),
        "budget_stopped": tb.get("budget_stopped"), "wall_s": wall, "sweep_s": tb.get("wall_s"),
        "export_s": tb.get("prepare_s"), "process_peak_mib": usage.ru_maxrss / 1024,
        "sweep_peak_mib": (doc.get("peak_rss_bytes") or 0) / 2**20, "window": win.get("size"),
        "session_mib": (win.get("session_bytes") or 0) / 2**20,
    }


def failure(stderr: str, code: int) -> str:
    """What a failed sweep's row says: the child's last stderr line without its own ``error:`` (the row adds one),
    or its exit status."""
    return script_cli.last_words(stderr, f"exit status {code}")


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=script_cli.models, default="cifar_resnet18,resnet50")
    ap.add_argument("--backends", type=script_cli.backends, default="onnx,openvino")
    ap.add_argument("--points", type=script_cli.positive_int, default=None,
                    help="widths per sweep (default: the full grid)")
    ap.add_argument("--max-total-seconds", type=script_cli.positive_float, default=None)
    ap.add_argument("--max-memory-mb", type=script_cli.positive_float, default=None)
    ap.add_argument("--threads", type=script_cli.positive_int, default=None)
    ap.add_argument("--adaptive", action="store_true",
                    help="us3l profile --adaptive: time a covering subset, interpolate the rest")
    args = ap.parse_args()
    print(provenance_line())
    print(f"# points={args.points or 'grid'}  budget={args.max_total_seconds} s  "
          f"max_memory_mb={args.max_memory_mb}  adaptive={args.adaptive}")
    print("# timed: widths measured (the rest interpolated with --adaptive); export s: the sweep's preparation "
          "(exports, or only sizes and costs with --adaptive, which exports as it times)")
    head = (f"{'model':<15} {'backend':<9} {'widths':>6} {'timed':>6} {'stable':>6} {'budget':>6} {'wall s':>7} "
            f"{'export s':>8} "
            f"{'peak MiB':>8} {'sweep MiB':>9} {'window':>6} {'session MiB':>11}")
    print(head)
    failed = []
    with tempfile.TemporaryDirectory(prefix="us3l-bench-") as out:
        for model in args.models:
            for backend in args.backends:
                r = sweep(model, backend, args, out)
                if "error" in r:
                    print(f"{model:<15} {backend:<9} error: {r['error']}", flush=True)
                    failed.append(f"{model}/{backend}")
                    continue
                print(f"{model:<15} {backend:<9} {r['widths']:>6} {r['measured']:>6} {r['stable']:>6} "
                      f"{r['budget_stopped']:>6} "
                      f"{r['wall_s']:>7.1f} {r['export_s']:>8.1f} {r['process_peak_mib']:>8.0f} "
                      f"{r['sweep_peak_mib']:>9.0f} {r['window']:>6} {r['session_mib']:>11.1f}", flush=True)

    if failed:  # the table is printed in full; the exit status says that it has holes
        n = len(args.models) * len(args.backends)
        raise US3LError(f"{len(failed)} of {n} sweeps failed ({', '.join(failed)}): see their rows")


if __name__ == "__main__":
    script_cli.run(main)
