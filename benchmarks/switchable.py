"""The switchable-width artifact against the static artifact of each width, side by side in one run (issue 16).

Exports, with the library's own functions, one switchable artifact (``us3l export --switchable``) per backend
and the static artifact of every measured width (``us3l export --width``), then times them in one interleaved
loop (``measure_interleaved``: every timer takes turns, in rotating order, so all see the same machine):

* ``static``: the static artifact of the width (``Runner.time_once``: input bound once);
* ``steady``: the switchable artifact at that width, called at that width every time;
* ``switch``: the same, but every timed call comes right after an untimed call at another width of the grid
  (the next one), so each timed call is the first after a width change;
* ``static switch``: the control for ``switch``: the static artifact of the width, each timed call right after
  an untimed call of the other width's static artifact (what switching between two loaded static files costs:
  the other network has evicted this one's weights from the caches).

Modes: onnxruntime (``width_index`` fed each call); OpenVINO with ``width_index`` as an input; OpenVINO bound per
width (one compiled model per width from the one file, ``bind_width``). Ratios: steady / static (target
<= 1.15) and switch / steady (target <= 2), p50 each, with their bounds from the medians' intervals
(``us3l.profiler.stats.ratio_interval``); file size of the switchable artifact / the static widest one (target
<= 1.1). The outputs of every mode are compared with the static artifact's first.

    python benchmarks/switchable.py [--model cifar_resnet18] [--size 32] [--widths 1,0.75,0.5,0.25]
        [--max-seconds 1.5] [--threads 1] [--ckpt RUN]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from us3l import script_cli
from us3l.deploy.graph import fresh_model
from us3l.deploy.switchable_runtime import OrtSwitchable, OvSwitchable
from us3l.errors import US3LError
from us3l.profiler.measure import MeasurementPolicy, measure_interleaved
from us3l.profiler.provenance import provenance_line
from us3l.profiler.stats import LatencyStats, ratio_interval

MODES = ("onnxruntime", "openvino input", "openvino bound")
STATIC_OF = {"onnxruntime": "onnx", "openvino input": "openvino", "openvino bound": "openvino"}


def ratio_cell(num: LatencyStats, den: LatencyStats) -> str:
    """``p50(num) / p50(den)`` and its bounds: ``1.02 (0.98-1.05)``."""
    lo, hi = ratio_interval(num, den)
    return f"{num.p50_ms / den.p50_ms:.2f} ({lo:.2f}-{hi:.2f})"


def static_switch_timer(runner: object, other: object, x: np.ndarray):
    """``timer(n)``: n timed calls of ``runner``, each after one untimed call of ``other``."""

    def timer(n: int) -> list[float]:
        out = []
        for _ in range(n):
            other.time_once(x)  # type: ignore[attr-defined]
            out.append(runner.time_once(x))  # type: ignore[attr-defined]
        return out

    return timer


def switch_timer(runner: object, x: np.ndarray, k: int, other: int, switch: bool):
    """``timer(n)``: n timed calls at index ``k``; with ``switch`` each after one untimed call at ``other``."""

    def timer(n: int) -> list[float]:
        out = []
        for _ in range(n):
            if switch:
                runner.time_once(x, other)  # type: ignore[attr-defined]
            out.append(runner.time_once(x, k))  # type: ignore[attr-defined]
        return out

    return timer


def resident_mib(mode: str, paths: list[Path], n: int, threads: int, size: int) -> tuple[float, float]:
    """Resident MiB that holding ``paths`` in ``mode`` and running every width once adds to a fresh interpreter
    (after the runtimes are imported), measured in a child process (``--resident``): as the process has it, and
    after glibc's ``malloc_trim(0)`` returned the heap freed while loading (what the sessions hold)."""
    argv = [sys.executable, __file__, "--resident", mode, str(n), str(threads), str(size), *map(str, paths)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    return float(out[-2]), float(out[-1])


def _resident(mode: str, n: int, threads: int, size: int, paths: list[str]) -> None:
    import psutil

    from us3l.deploy.backends import get_backend
    from us3l.profiler.timers import example_input

    proc = psutil.Process(os.getpid())
    x = example_input((1, 3, size, size)).numpy()
    import onnxruntime  # noqa: F401 - both runtimes imported before the baseline
    import openvino  # noqa: F401

    before = proc.memory_info().rss
    if mode.startswith("static-"):
        runners = [get_backend(mode[len("static-"):]).load(p, threads=threads) for p in paths]
        outs = [r.infer(x) for r in runners]
    else:
        runner = (OrtSwitchable(paths[0], n, threads) if mode == "onnxruntime"
                  else OvSwitchable(paths[0], n, threads, bound=mode == "openvino bound"))
        outs = [runner.infer(x, k) for k in range(n)]
    added = (proc.memory_info().rss - before) / 2**20
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc: give the heap freed while loading back to the system
    except (OSError, AttributeError):
        pass
    print(len(outs), added, (proc.memory_info().rss - before) / 2**20)


def check_grid(net: object, widths: list[float]) -> tuple[float, ...]:
    """``--widths`` checked against the model (its width range; two widths of one network): what the export would
    refuse, refused first in one line that names the flag."""
    from us3l.deploy.switchable_export import check_widths

    try:
        return check_widths(net, widths)
    except US3LError as exc:
        raise US3LError(f"--widths: {exc}") from None


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--resident":  # the child of resident_mib
        mode, n, threads, size, *paths = sys.argv[2:]
        _resident(mode, int(n), int(threads), int(size), paths)
        return
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=script_cli.model, default="cifar_resnet18")
    ap.add_argument("--size", type=script_cli.positive_int, default=None, help="input side (default: the model's)")
    ap.add_argument("--widths", type=script_cli.widths, default="1,0.75,0.5,0.25",
                    help="the grid (index i = i-th width)")
    ap.add_argument("--max-seconds", type=script_cli.positive_float, default=1.5, help="timing time per timer")
    ap.add_argument("--threads", type=script_cli.positive_int, default=1)
    ap.add_argument("--ckpt", default=None, help="a run folder (default: the seeded fresh model)")
    args = ap.parse_args()
    if args.ckpt and args.size:
        ap.error("--size applies to a fresh --model; a checkpoint has its own input size")
    # after the arguments: a usage error or --help does not wait for torch's import
    from us3l.deploy.export import export_width
    from us3l.deploy.switchable_export import export_switchable
    from us3l.profiler.timers import example_input, load_interleaved, runner_timer

    if args.ckpt:
        from us3l.checkpoint import load_backbone

        source, name = load_backbone(args.ckpt), None
        net = source.model
    else:
        net = source = fresh_model(args.model)
        if args.size:
            net.input_size = args.size  # the side every export traces and verifies with
        name = args.model
    size = args.size or int(net.input_size)
    grid = check_grid(net, args.widths)
    x = example_input((1, 3, size, size)).numpy()
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="us3l-switchable-")))
        t0 = time.perf_counter()
        sw = {b: export_switchable(source, b, root / "sw", grid, model_name=name) for b in ("onnx", "openvino")}
        sw_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        static = {(b, w): export_width(source, w, b, root / "static", model_name=name)
                  for b in ("onnx", "openvino") for w in grid}
        static_s = time.perf_counter() - t0
        widest = max(grid)
        n = len(grid)
        runners = {
            "onnxruntime": OrtSwitchable(sw["onnx"].directory / "model.onnx", n, args.threads, spin=False),
            "openvino input": OvSwitchable(sw["openvino"].directory / "model.xml", n, args.threads, bound=False),
            "openvino bound": OvSwitchable(sw["openvino"].directory / "model.xml", n, args.threads, bound=True),
        }
        compile_s = []
        for k in range(n):  # bound: one compiled model per width, compiled on first use; time it here
            t0 = time.perf_counter()
            runners["openvino bound"].request(k)
            compile_s.append(time.perf_counter() - t0)
        statics = {key: stack.enter_context(load_interleaved(key[0], res.artifact.path, args.threads))
                   for key, res in static.items()}
        worst = 0.0
        for (b, w), r in statics.items():  # same numbers first
            ref = r.infer(x)
            for mode in MODES:
                if STATIC_OF[mode] == b:
                    worst = max(worst, float(np.max(np.abs(runners[mode].infer(x, grid.index(w)) - ref))))
        timers = {}
        for k, w in enumerate(grid):
            other = (k + 1) % n
            for b in ("onnx", "openvino"):
                timers[("static", b, w)] = runner_timer(statics[(b, w)], x)
                timers[("static switch", b, w)] = static_switch_timer(statics[(b, w)], statics[(b, grid[other])], x)
            for mode in MODES:
                timers[("steady", mode, w)] = switch_timer(runners[mode], x, k, other, False)
                timers[("switch", mode, w)] = switch_timer(runners[mode], x, k, other, True)
        res = measure_interleaved(timers, MeasurementPolicy(warmup=20, max_seconds=args.max_seconds, tail_quantile=0))
        static_bytes = {b: sum(f.stat().st_size for f in static[(b, widest)].artifact.files)
                        for b in ("onnx", "openvino")}
        sw_path = {"onnxruntime": sw["onnx"].directory / "model.onnx",
                   "openvino input": sw["openvino"].directory / "model.xml",
                   "openvino bound": sw["openvino"].directory / "model.xml"}
        mem = {mode: resident_mib(mode, [sw_path[mode]], n, args.threads, size) for mode in MODES}
        for b in ("onnx", "openvino"):
            mem[f"static-{b}"] = resident_mib(f"static-{b}", [static[(b, w)].artifact.path for w in grid], n,
                                              args.threads, size)
            mem[f"static-{b}-widest"] = resident_mib(f"static-{b}", [static[(b, widest)].artifact.path], n,
                                                     args.threads, size)
    print(provenance_line())
    print(f"# {net.__class__.__name__ if name is None else name}, input {size}px, batch 1, {args.threads} thread(s), "
          f"grid {','.join(f'{w:g}' for w in grid)}; {len(timers)} timers interleaved, "
          f"<= {args.max_seconds:g} s each; p50 in ms")
    print(f"# export: switchable onnx + openvino {sw_s:.1f} s (both verified at every width), static "
          f"{len(static)} artifacts {static_s:.1f} s; max |switchable - static| over all outputs {worst:.1e}")
    print("# each ratio of two p50s with its bounds from the two medians' 95 % intervals (at least 90 %, "
          "us3l.profiler.stats.ratio_interval)")
    print(f"{'width':>6} {'mode':<15} {'static':>8} {'steady':>8} {'switch':>8} {'steady/static':>20} "
          f"{'switch/steady':>20} {'static switch/static':>20}")
    for w in grid:
        for mode in MODES:
            b = STATIC_OF[mode]
            st, sd, sc = (res[(kind, key, w)].stats for kind, key in (("static", b), ("steady", mode),
                                                                       ("switch", mode)))
            ss = res[("static switch", b, w)].stats
            cells = " ".join(f"{ratio_cell(a, z):>20}" for a, z in ((sd, st), (sc, sd), (ss, st)))
            print(f"{w:6g} {mode:<15} {st.p50_ms:8.3f} {sd.p50_ms:8.3f} {sc.p50_ms:8.3f} {cells}")
    for b in ("onnx", "openvino"):
        s = sw[b].manifest["switchable"]
        print(f"size {b}: switchable {s['artifact_bytes'] / 1e6:.2f} MB / static width {widest:g} "
              f"{static_bytes[b] / 1e6:.2f} MB = {s['artifact_bytes'] / static_bytes[b]:.3f} "
              f"(per-width BN statistics {s['per_width_bytes_total'] / 1e3:.1f} kB)")
    print("resident MiB added by loading and running every width once: as loaded / held (after malloc_trim)")
    for mode in MODES:
        b = STATIC_OF[mode]
        row = [mem[mode], mem[f"static-{b}"], mem[f"static-{b}-widest"]]
        print(f"  {mode:<15} switchable {row[0][0]:.1f} / {row[0][1]:.1f}, static artifacts of all {n} widths "
              f"{row[1][0]:.1f} / {row[1][1]:.1f}, static widest alone {row[2][0]:.1f} / {row[2][1]:.1f}")
    print("openvino bound: compile per width on first use " + ", ".join(
        f"{w:g} {t * 1e3:.0f} ms" for w, t in zip(grid, compile_s, strict=True)))


if __name__ == "__main__":
    script_cli.run(main)
