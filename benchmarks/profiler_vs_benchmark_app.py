"""Cross-check ``us3l profile`` against OpenVINO's ``benchmark_app`` and a lone onnxruntime session.

The same artifacts: ``us3l export`` writes the OpenVINO IR and the ONNX file of each width (fresh seeded model),
and the profile must have timed byte-identical graphs (its records' ``graph_sha256`` = the manifests'; checked
and printed). Per round, interleaved: ``us3l profile`` of all widths on openvino, then ``benchmark_app`` on each
width's IR (sync API, one stream, f32, same thread count), then ``us3l profile`` on onnx, then a lone
onnxruntime session per width opened with the profiler's own session options (``OnnxRunner``: full graph
optimisation, sequential, 1 inter-op thread, N intra-op threads, no spin-wait). Prints each median and the
ratios profile / reference per width (goal: within +-10 %).

    python benchmarks/profiler_vs_benchmark_app.py [--model cifar_resnet18] [--widths 1.0,0.5,0.25]
        [--rounds 2] [--seconds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def us3l_profile(model: str, widths: str, backend: str, threads: int, seconds: float, out: Path) -> dict:
    cmd = [sys.executable, "-m", "us3l", "profile", "--device", "cpu", "--model", model, "--widths", widths,
           "--backend", backend, "--threads", str(threads), "--max-seconds", str(seconds), "--target-ci", "0.005",
           "--out", str(out), "--json"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def benchmark_app(xml: Path, threads: int, seconds: float) -> float:
    """Median latency (ms) reported by OpenVINO's benchmark_app, sync API, one stream and request, f32."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    # -nthreads needs -hint none (a benchmark_app rule); one stream is what the latency hint gives
    cmd = [exe, "-m", str(xml), "-d", "CPU", "-hint", "none", "-nstreams", "1", "-api", "sync",
           "-nthreads", str(threads), "-infer_precision", "f32", "-t", str(max(1, round(seconds)))]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    m = re.search(r"Median:\s*([0-9.]+)\s*(ms|us)", res.stdout)  # microseconds below 1 ms
    if m is None:
        raise RuntimeError(f"no median in benchmark_app output:\n{res.stdout[-2000:]}")
    return float(m.group(1)) / (1000.0 if m.group(2) == "us" else 1.0)


def lone_ort(onnx_path: Path, threads: int, seconds: float, shape: tuple[int, ...]) -> float:
    """Median latency (ms) of one onnxruntime session with the profiler's session options, alone."""
    from us3l.deploy.backends.onnx import OnnxRunner

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    runner = OnnxRunner(onnx_path, threads, "cpu", spin=False)
    try:
        for _ in range(20):
            runner.time_once(x)
        samples: list[float] = []
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            samples.append(runner.time_once(x) * 1e3)
        return statistics.median(samples)
    finally:
        runner.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cifar_resnet18")
    ap.add_argument("--widths", default="1.0,0.5,0.25")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=2, help="per width per tool per round (whole seconds)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from us3l.deploy.export import export_width
    from us3l.deploy.graph import fresh_model

    widths = [float(w) for w in args.widths.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="us3l-xcheck-"))
    net = fresh_model(args.model)
    arts: dict[tuple[str, float], tuple[Path, str]] = {}
    for backend in ("openvino", "onnx"):
        for w in widths:
            res = export_width(net, w, backend, tmp / "export", model_name=args.model)
            arts[(backend, w)] = (res.artifact.path, res.manifest["model"]["graph"]["graph_sha256"])
    shape = (1, 3, net.input_size, net.input_size)

    med: dict[tuple[str, float], list[float]] = {}
    same: dict[tuple[str, float], bool] = {}
    for rnd in range(args.rounds):
        for backend in ("openvino", "onnx"):
            prof = us3l_profile(args.model, args.widths, backend, args.threads, args.seconds * len(widths),
                                tmp / f"p{rnd}")
            for r in prof["records"]:
                w = float(r["width"])
                med.setdefault((f"profile-{backend}", w), []).append(r["latency"]["p50_ms"])
                same[(backend, w)] = same.get((backend, w), True) and r["graph_sha256"] == arts[(backend, w)][1]
            for w in widths:
                if backend == "openvino":
                    med.setdefault(("benchmark_app", w), []).append(benchmark_app(arts[(backend, w)][0],
                                                                                   args.threads, args.seconds))
                else:
                    med.setdefault(("ort-lone", w), []).append(lone_ort(arts[(backend, w)][0], args.threads,
                                                                        args.seconds, shape))
        print(f"# round {rnd + 1}/{args.rounds} done", file=sys.stderr)

    def m(key: str, w: float) -> float:
        return statistics.median(med[(key, w)])

    print(f"# {args.model}, batch 1, {args.threads} thread(s), {args.rounds} interleaved rounds, "
          f"~{args.seconds:g} s per width per tool per round; medians of the per-round p50 (ms)")
    print(f"{'width':>6} {'profile ov':>10} {'bench_app':>10} {'ratio':>6} {'profile ort':>11} {'ort lone':>9} "
          f"{'ratio':>6}  same graph (ov/ort)")
    for w in widths:
        pov, bap, port, lone = m("profile-openvino", w), m("benchmark_app", w), m("profile-onnx", w), m("ort-lone", w)
        print(f"{w:6.3g} {pov:10.3f} {bap:10.3f} {pov / bap:6.2f} {port:11.3f} {lone:9.3f} {port / lone:6.2f}  "
              f"{'yes' if same[('openvino', w)] else 'NO'}/{'yes' if same[('onnx', w)] else 'NO'}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
