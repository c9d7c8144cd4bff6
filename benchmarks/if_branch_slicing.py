"""Design measurement for a switchable-width artifact (issue 16): weights sliced inside ONNX ``If`` branches.

One ONNX file holds a stack of 3x3 convolutions at full width as outer-scope initializers; an int64 input
``idx`` picks a width of the grid through a chain of ``If`` nodes, and each branch ``Slice``s the shared
weights to its width. The question it answers: does a runtime slice once (constant folding inside the
branches) or on every call? Side by side, interleaved in one run, per runtime (onnxruntime and OpenVINO, one
thread each) and width: median latency of the switchable file / median latency of a static file holding that
width's weights only, with its bounds from the two medians' intervals over the rounds (the same outputs checked
first); then the mean latency when the width changes on every call (the switch cost); the Slice nodes left in
onnxruntime's optimized graph; and each session's resident memory growth. A third variant, ``ov-bound``, loads
the same file in OpenVINO with ``idx`` bound to each width before compiling (one compiled model per width,
switching = choosing one). No us3l code runs in what is timed (``us3l.profiler.stats`` only summarises the
timings): it measures the runtimes, not our exporter. Usage::

    python benchmarks/if_branch_slicing.py [--channels 128 --layers 6 --size 16 --rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import psutil
from onnx import TensorProto, helper, numpy_helper

from us3l import script_cli
from us3l.profiler.provenance import provenance_line
from us3l.profiler.stats import median_interval_is_full, ratio_interval, summarize

OPSET = 17


def conv_chain(weights: list[np.ndarray], c: int, sliced: bool, tag: str) -> tuple[list, list, str]:
    """Nodes and initializers of the conv stack at ``c`` channels: slicing the outer ``W{i}`` (``sliced``) or
    holding their slices as its own initializers. Returns (nodes, initializers, output name)."""
    nodes: list = []
    inits: list = []
    x = "X"
    for i, w in enumerate(weights):
        cin = w.shape[1] if i == 0 else c
        if sliced:
            names = [f"{n}{i}_{tag}" for n in ("starts", "ends", "axes")]
            inits += [numpy_helper.from_array(np.array(v, np.int64), n)
                      for v, n in zip(([0, 0], [c, cin], [0, 1]), names, strict=True)]
            nodes.append(helper.make_node("Slice", [f"W{i}", *names], [f"w{i}_{tag}"]))
        else:
            inits.append(numpy_helper.from_array(np.ascontiguousarray(w[:c, :cin]), f"w{i}_{tag}"))
        nodes.append(helper.make_node("Conv", [x, f"w{i}_{tag}"], [f"y{i}_{tag}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"y{i}_{tag}"], [f"r{i}_{tag}"]))
        x = f"r{i}_{tag}"
    nodes.append(helper.make_node("GlobalAveragePool", [x], [f"out_{tag}"]))
    return nodes, inits, f"out_{tag}"


def _out(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, "channels", 1, 1])


def switchable_model(weights: list[np.ndarray], channels: list[int], size: int) -> onnx.ModelProto:
    """``If(idx == 0, width 0, If(idx == 1, width 1, ...))`` over the shared outer weights."""

    def chain(k: int) -> onnx.GraphProto:
        nodes, inits, out = conv_chain(weights, channels[k], True, f"b{k}")
        nodes.append(helper.make_node("Identity", [out], [f"Y{k}"]))
        leaf = helper.make_graph(nodes, f"width{k}", [], [_out(f"Y{k}")], initializer=inits)
        if k == len(channels) - 1:
            return leaf
        cond = helper.make_node("Equal", ["idx", f"k{k}"], [f"is{k}"])
        branch = helper.make_node("If", [f"is{k}"], [f"Z{k}"], then_branch=leaf, else_branch=chain(k + 1))
        return helper.make_graph([cond, branch], f"choose{k}", [], [_out(f"Z{k}")],
                                 initializer=[numpy_helper.from_array(np.array(k, np.int64), f"k{k}")])

    top = chain(0)
    graph = helper.make_graph(
        list(top.node), "switchable",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, weights[0].shape[1], size, size]),
         helper.make_tensor_value_info("idx", TensorProto.INT64, [])],
        [_out(top.output[0].name)],
        initializer=list(top.initializer) + [numpy_helper.from_array(w, f"W{i}") for i, w in enumerate(weights)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def static_model(weights: list[np.ndarray], c: int, size: int) -> onnx.ModelProto:
    nodes, inits, out = conv_chain(weights, c, False, "s")
    graph = helper.make_graph(
        nodes, "static", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, weights[0].shape[1], size, size])],
        [_out(out)], initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def bind_width(model: object, k: int) -> object:
    """The OpenVINO model ``model`` (``ov.Model``, changed in place and returned) with its ``idx`` input replaced
    by the constant ``k``: compiled, OpenVINO folds the ``If`` chain to the one width's static network."""
    import openvino.opset13 as ops

    param = next(p for p in model.get_parameters() if p.get_friendly_name() == "idx")
    const = ops.constant(np.array(k, np.int64))
    for target in param.output(0).get_target_inputs():
        target.replace_source_output(const.output(0))
    model.remove_parameter(param)
    return model


def count_ops(graph: onnx.GraphProto, op: str) -> int:
    """``op`` nodes in ``graph`` and all its subgraphs."""
    n = 0
    for node in graph.node:
        n += node.op_type == op
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                n += count_ops(attr.g, op)
    return n


def switch_confidence(widths: int, rounds: int) -> str:
    """What the switch cost's bounds hold at: they use ``widths + 1`` medians' 95 % intervals, all of which hold
    together with at least 1 - 0.05 (widths + 1) (nothing from 19 widths on), and only with 6 rounds or more."""
    joint = 100 - 5 * (widths + 1)
    if not median_interval_is_full(rounds):
        return "fewer than 6 rounds"
    return f"at {joint} %" if joint > 0 else "no joint confidence"


def median_ms(fn: Callable[[], object], calls: int) -> float:
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def session_mib(runtime: str, path: Path) -> float:
    """Resident MiB that building one session of ``path`` adds, measured in a fresh interpreter (so no other
    session's freed pages are reused) after the runtime is imported."""
    out = subprocess.run([sys.executable, __file__, "--session-mib", runtime, str(path)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-2])


def _session_mib(runtime: str, path: str) -> None:
    proc = psutil.Process(os.getpid())
    keep: object
    if runtime.startswith("openvino-bound:"):
        import openvino as ov

        core = ov.Core()
        before = proc.memory_info().rss
        keep = [core.compile_model(bind_width(core.read_model(path), k), "CPU", {"INFERENCE_NUM_THREADS": 1})
                .create_infer_request() for k in range(int(runtime.split(":")[1]))]
    elif runtime == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        before = proc.memory_info().rss
        keep = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    else:
        import openvino as ov

        core = ov.Core()
        before = proc.memory_info().rss
        keep = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_NUM_THREADS": 1}).create_infer_request()
    print((proc.memory_info().rss - before) / 2**20, keep is not None)


def main() -> None:
    ap = script_cli.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--channels", type=script_cli.positive_int, default=128, help="full-width channels of every conv")
    ap.add_argument("--layers", type=script_cli.positive_int, default=6)
    ap.add_argument("--size", type=script_cli.positive_int, default=16, help="input height and width")
    ap.add_argument("--widths", type=script_cli.widths, default="1,0.5,0.25")
    ap.add_argument("--rounds", type=script_cli.positive_int, default=5, help="interleaved rounds per timer")
    ap.add_argument("--calls", type=script_cli.positive_int, default=100, help="calls per round and timer")
    ap.add_argument("--session-mib", nargs=2, metavar=("RUNTIME", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.session_mib:
        _session_mib(*args.session_mib)
        return

    tmp = Path(tempfile.mkdtemp(prefix="if_slicing_"))
    try:
        measure(args, tmp)
    finally:  # the ONNX files are this run's only (every run used to leave its folder in /tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args: argparse.Namespace, tmp: Path) -> None:
    """Build the files in ``tmp``, check, time and print (the work of :func:`main`)."""
    import onnxruntime as ort
    import openvino as ov

    rng = np.random.default_rng(0)
    c_full = args.channels
    weights = [(rng.standard_normal((c_full, 3 if i == 0 else c_full, 3, 3)) * 0.05).astype(np.float32)
               for i in range(args.layers)]
    widths = args.widths
    channels = [max(1, round(c_full * w)) for w in widths]
    x = rng.standard_normal((1, 3, args.size, args.size)).astype(np.float32)
    sw_path = tmp / "switchable.onnx"
    onnx.save(switchable_model(weights, channels, args.size), sw_path)
    st_paths = []
    for k, c in enumerate(channels):
        st_paths.append(tmp / f"static{k}.onnx")
        onnx.save(static_model(weights, c, args.size), st_paths[-1])

    def ort_session(path: Path, optimized: Path | None = None) -> ort.InferenceSession:
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        so.log_severity_level = 3
        if optimized is not None:
            so.optimized_model_filepath = str(optimized)
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    core = ov.Core()
    ov_cfg = {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}

    def ov_request(path: Path) -> ov.InferRequest:
        return core.compile_model(core.read_model(str(path)), "CPU", ov_cfg).create_infer_request()

    runs: dict[str, dict[str, Callable[..., np.ndarray]]] = {}
    sess = ort_session(sw_path, tmp / "switchable_ort_opt.onnx")
    runs["onnxruntime"] = {"switchable": lambda k, s=sess: s.run(None, {"X": x, "idx": np.array(k, np.int64)})[0]}
    req = ov_request(sw_path)
    runs["openvino"] = {"switchable": lambda k, r=req: next(iter(r.infer({"X": x, "idx": np.array(k, np.int64)})
                                                                  .values()))}
    # OpenVINO with idx bound at compile time: one compiled model per width of the grid, from the one file
    bound = [core.compile_model(bind_width(core.read_model(str(sw_path)), k), "CPU", ov_cfg).create_infer_request()
             for k in range(len(channels))]
    runs["ov-bound"] = {"switchable": lambda k: next(iter(bound[k].infer({"X": x}).values()))}
    for k, p in enumerate(st_paths):
        s_k, r_k = ort_session(p), ov_request(p)
        runs["onnxruntime"][f"static{k}"] = lambda _k, s=s_k: s.run(None, {"X": x})[0]
        runs["openvino"][f"static{k}"] = runs["ov-bound"][f"static{k}"] = (
            lambda _k, r=r_k: next(iter(r.infer({"X": x}).values()))
        )

    for fns in runs.values():  # same outputs first
        for k in range(len(channels)):
            np.testing.assert_allclose(fns["switchable"](k), fns[f"static{k}"](k), rtol=1e-4, atol=1e-5)

    timers = {(rt, k, kind): (lambda f=fns[kind if kind == "switchable" else f"static{k}"], k=k: f(k))
              for rt, fns in runs.items() for k in range(len(channels)) for kind in ("switchable", "static")}
    for rt, fns in runs.items():  # the width changes on every call
        timers[(rt, -1, "alternating")] = (
            lambda f=fns["switchable"]: [f(k) for k in range(len(channels))]
        )
    times: dict[tuple, list[float]] = {key: [] for key in timers}
    for r in range(args.rounds + 1):
        for key, fn in timers.items():
            t = median_ms(fn, args.calls)
            if r:  # round 0 warms up
                times[key].append(t)
    stats = {key: summarize(v) for key, v in times.items()}
    med = {key: st.p50_ms for key, st in stats.items()}

    def spread(num: tuple, den: tuple) -> str:
        lo, hi = ratio_interval(stats[num], stats[den])
        return f"{lo:.2f}-{hi:.2f}"

    def switch_spread(rt: str) -> str:
        """Bounds on alternating per call / mean steady median from every median's 95 % interval (all hold
        together with at least 1 - 0.05 x (widths + 1))."""
        n = len(channels)
        a_lo, a_hi = stats[(rt, -1, "alternating")].ci95_ms["p50"]
        steady = [stats[(rt, k, "switchable")].ci95_ms["p50"] for k in range(n)]
        lo, hi = a_lo / n / statistics.mean(c[1] for c in steady), a_hi / n / statistics.mean(c[0] for c in steady)
        return f"{lo:.2f}-{hi:.2f} {switch_confidence(n, args.rounds)}"


    print(provenance_line())
    print(f"{args.layers} convs 3x3 at {c_full} channels full width, input {args.size}px, batch 1, 1 thread, "
          f"{args.rounds} interleaved rounds of {args.calls} calls; file {sw_path.stat().st_size / 2**20:.2f} MiB "
          f"switchable vs {st_paths[0].stat().st_size / 2**20:.2f} MiB static widest")
    print("ov-bound: the same file in OpenVINO with idx bound to each width at compile time (one compiled model "
          "per width, switching = choosing one)")
    print("ratio: of the medians over the rounds, with its bounds from the two medians' 95 % intervals (at least "
          "90 %, us3l.profiler.stats.ratio_interval)")
    if not median_interval_is_full(args.rounds):
        print("# fewer than 6 rounds: each median's interval is the range of its rounds, and the bounds below hold "
              "with less than the confidence they name")
    print(f"{'runtime':>12} {'width':>6} {'switchable':>11} {'static':>9} {'ratio':>6} {'90% CI':>11}")
    for rt in runs:
        for k, w in enumerate(widths):
            a, b = med[(rt, k, "switchable")], med[(rt, k, "static")]
            ci = spread((rt, k, "switchable"), (rt, k, "static"))
            print(f"{rt:>12} {w:>6g} {a:9.3f}ms {b:7.3f}ms {a / b:6.2f} {ci:>11}")
        steady = statistics.mean(med[(rt, k, "switchable")] for k in range(len(channels)))
        alt = med[(rt, -1, "alternating")] / len(channels)
        print(f"{rt:>12} width changed on every call: {alt:.3f} ms per call against {steady:.3f} ms steady "
              f"(ratio {alt / steady:.2f}, {switch_spread(rt)})")
    opt = onnx.load(str(tmp / "switchable_ort_opt.onnx"), load_external_data=False)
    print(f"onnxruntime's optimized graph keeps {count_ops(opt.graph, 'Slice')} of "
          f"{count_ops(onnx.load(str(sw_path)).graph, 'Slice')} Slice nodes")
    mem = {f"{rt} {kind}": session_mib(rt, path) for rt in ("onnxruntime", "openvino")
           for kind, path in (("switchable", sw_path), ("static widest", st_paths[0]))}
    mem[f"ov-bound, all {len(channels)} widths"] = session_mib(f"openvino-bound:{len(channels)}", sw_path)
    print("resident MiB a fresh process adds to build one session: "
          + ", ".join(f"{k} {v:.1f}" for k, v in mem.items()))


if __name__ == "__main__":
    script_cli.run(main)
