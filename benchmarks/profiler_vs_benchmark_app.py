"""Cross-check ``us3l profile`` against OpenVINO's ``benchmark_app`` and a lone onnxruntime session.

The same artifacts: ``us3l export`` writes the OpenVINO IR and the ONNX file of each width (fresh seeded model),
and the profile must have timed byte-identical graphs (its records' ``graph_sha256`` = the manifests'; checked
and printed). Per round, interleaved: ``us3l profile`` of all widths on openvino, then ``benchmark_app`` on each
width's IR (sync API, one stream, f32, same thread count), then ``us3l profile`` on onnx, then a lone
onnxruntime session per width opened with the profiler's own session options (``OnnxRunner``: full graph
optimisation, sequential, 1 inter-op thread, N intra-op threads, no spin-wait) and timed by this script on an
input and output bound once. Prints each median, the ratios profile / reference per width, the per-round values
(their spread is the noise floor), the per-call ratio of the profiler's timed call to OpenVINO's own latency of
the same call (load-robust), and one summary line per width saying whether each ratio is within the +-10 % goal,
with the load average at the start and end.

    python benchmarks/profiler_vs_benchmark_app.py [--model cifar_resnet18] [--widths 1.0,0.5,0.25]
        [--rounds 2] [--seconds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from us3l import script_cli
from us3l.errors import US3LError
from us3l.profiler.provenance import provenance_line

#: Accepted |profile / reference - 1| at every width (issue 18 item 4).
GOAL = 0.10


def run_tool(cmd: list[str], what: str) -> str:
    """``cmd``'s stdout; a failure is one line with the tool's own last words (a CalledProcessError named only
    the command)."""
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise US3LError(f"{what} failed (exit {res.returncode}): "
                        f"{script_cli.last_words(res.stderr + res.stdout, 'no output')}")
    return res.stdout


def profile_command(model: str, widths: list[float], backend: str, threads: int, seconds: float,
                    out: Path) -> list[str]:
    """The ``us3l profile`` command of one round: ``--widths`` as the comma list the CLI reads."""
    return [sys.executable, "-m", "us3l", "profile", "--device", "cpu", "--model", model,
            "--widths", ",".join(map(str, widths)), "--backend", backend, "--threads", str(threads),
            "--max-seconds", str(seconds), "--target-ci", "0.005", "--out", str(out), "--json"]


def us3l_profile(model: str, widths: list[float], backend: str, threads: int, seconds: float, out: Path) -> dict:
    cmd = profile_command(model, widths, backend, threads, seconds, out)
    return json.loads(run_tool(cmd, f"us3l profile ({backend})"))


def benchmark_app(xml: Path, threads: int, seconds: float) -> float:
    """Median latency (ms) reported by OpenVINO's benchmark_app, sync API, one stream and request, f32."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    # -nthreads needs -hint none (a benchmark_app rule); one stream is what the latency hint gives
    cmd = [exe, "-m", str(xml), "-d", "CPU", "-hint", "none", "-nstreams", "1", "-api", "sync",
           "-nthreads", str(threads), "-infer_precision", "f32", "-t", str(max(1, round(seconds)))]
    stdout = run_tool(cmd, "benchmark_app")
    m = re.search(r"Median:\s*([0-9.]+)\s*(ms|us)", stdout)  # microseconds below 1 ms
    if m is None:
        raise US3LError(f"no 'Median:' line in benchmark_app's output ({exe} -m {xml})")
    return float(m.group(1)) / (1000.0 if m.group(2) == "us" else 1.0)


def lone_ort(onnx_path: Path, threads: int, seconds: float, shape: tuple[int, ...]) -> float:
    """Median latency (ms) of one onnxruntime session with the profiler's session options, alone.

    The session is ``OnnxRunner``'s (the same options by construction); the timed call is this script's own: the
    C++ ``Run`` through ``run_with_iobinding`` on an input and an output bound once, as a C++ deployment or
    ``onnxruntime_perf_test`` would call it (the reference does not go through ``OnnxRunner.time_once``)."""
    from us3l.deploy.backends.onnx import OnnxRunner

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    runner = OnnxRunner(onnx_path, threads, "cpu", spin=False)
    try:
        sess = runner.session
        inp, outp = sess.get_inputs()[0].name, sess.get_outputs()[0].name
        out = np.empty(sess.run([outp], {inp: x})[0].shape, dtype=np.float32)
        binding = sess.io_binding()
        binding.bind_cpu_input(inp, x)
        binding.bind_output(outp, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        for _ in range(20):
            sess.run_with_iobinding(binding)
        samples: list[float] = []
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            sess.run_with_iobinding(binding)
            samples.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(samples)
    finally:
        runner.close()


def call_overhead(xml: Path, threads: int, seconds: float, shape: tuple[int, ...]) -> tuple[float, float]:
    """Median over calls of ``OpenVinoRunner.time_once`` (wall) / the same call's ``InferRequest.latency`` (the
    runtime's own C++ measurement, what benchmark_app reports), and the median latency (ms). Both come from one
    call, so the ratio is the per-call cost of the profiler's timed region and barely moves with the load."""
    from us3l.deploy.backends.openvino import OpenVinoRunner

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    runner = OpenVinoRunner(xml, threads, "CPU", "fp32")
    try:
        for _ in range(20):
            runner.time_once(x)
        ratios, lat = [], []
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            wall = runner.time_once(x) * 1e3
            lat.append(runner.request.latency)  # ms
            ratios.append(wall / lat[-1])
        return statistics.median(ratios), statistics.median(lat)
    finally:
        runner.close()


def verdict(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %, {'within' if abs(ratio - 1) <= GOAL else 'OUTSIDE'} +-{GOAL * 100:g} %"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=script_cli.model, default="cifar_resnet18")
    ap.add_argument("--widths", type=script_cli.widths, default="1.0,0.5,0.25")
    ap.add_argument("--rounds", type=script_cli.positive_int, default=2)
    ap.add_argument("--seconds", type=script_cli.positive_int, default=2,
                    help="per width per tool per round (whole seconds)")
    ap.add_argument("--threads", type=script_cli.positive_int, default=1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="us3l-xcheck-"))
    try:
        compare(args, tmp)
    finally:  # the exports and profiles are this run's only
        shutil.rmtree(tmp, ignore_errors=True)


def compare(args: argparse.Namespace, tmp: Path) -> None:
    """Export, time every tool round by round, print the tables (the work of :func:`main`, in ``tmp``)."""
    from us3l.deploy.export import export_width
    from us3l.deploy.graph import fresh_model

    widths = args.widths
    net = fresh_model(args.model)
    script_cli.check_model_widths(net, widths)
    arts: dict[tuple[str, float], tuple[Path, str]] = {}
    for backend in ("openvino", "onnx"):
        for w in widths:
            res = export_width(net, w, backend, tmp / "export", model_name=args.model)
            arts[(backend, w)] = (res.artifact.path, res.manifest["model"]["graph"]["graph_sha256"])
    shape = (1, 3, net.input_size, net.input_size)

    med: dict[tuple[str, float], list[float]] = {}
    same: dict[tuple[str, float], bool] = {}
    load_start = loadavg()
    for rnd in range(args.rounds):
        for backend in ("openvino", "onnx"):
            prof = us3l_profile(args.model, widths, backend, args.threads, args.seconds * len(widths),
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

    print(provenance_line())
    print(f"# {args.model}, batch 1, {args.threads} thread(s), {args.rounds} interleaved rounds, "
          f"~{args.seconds:g} s per width per tool per round; medians of the per-round p50 (ms); "
          f"load average {load_start} at the start, {loadavg()} at the end ({os.cpu_count()} CPUs)")
    print(f"{'width':>6} {'profile ov':>10} {'bench_app':>10} {'ratio':>6} {'profile ort':>11} {'ort lone':>9} "
          f"{'ratio':>6}  same graph (ov/ort)")
    for w in widths:
        pov, bap, port, lone = m("profile-openvino", w), m("benchmark_app", w), m("profile-onnx", w), m("ort-lone", w)
        print(f"{w:6.3g} {pov:10.3f} {bap:10.3f} {pov / bap:6.2f} {port:11.3f} {lone:9.3f} {port / lone:6.2f}  "
              f"{'yes' if same[('openvino', w)] else 'NO'}/{'yes' if same[('onnx', w)] else 'NO'}")
    overhead = {w: call_overhead(arts[("openvino", w)][0], args.threads, args.seconds, shape) for w in widths}
    print("# per-round p50 (ms), round 1, 2, ...: the spread between rounds is the noise floor of the ratios")
    for key in ("profile-openvino", "benchmark_app", "profile-onnx", "ort-lone"):
        print(f"#   {key:16} " + "  ".join(f"w{w:g}: " + "/".join(f"{v:.3f}" for v in med[(key, w)]) for w in widths))
    print("# per call (load-robust): OpenVinoRunner.time_once wall / the same call's InferRequest.latency "
          "(benchmark_app's number), median over ~" + f"{args.seconds:g} s of calls")
    print("#   " + "  ".join(f"w{w:g}: {r:.3f} (latency p50 {lat:.3f} ms)" for w, (r, lat) in overhead.items()))
    for w in widths:  # the goal: each ratio within +-10 %
        r_ov = m("profile-openvino", w) / m("benchmark_app", w)
        r_ort = m("profile-onnx", w) / m("ort-lone", w)
        print(f"width {w:g}: openvino profile/benchmark_app {r_ov:.3f} ({verdict(r_ov)}), "
              f"onnx profile/lone session {r_ort:.3f} ({verdict(r_ort)})")


if __name__ == "__main__":
    script_cli.run(main)
