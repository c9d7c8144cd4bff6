# ruff: noqa: UP031
# (no f-strings with = and no 3.10 syntax: this script also runs on the Python 3.8 of older JetPack releases)
"""Self-contained latency runner copied to a remote device (needs Python >= 3.8, numpy, and onnxruntime or
openvino; nothing from us3l). It is driven over stdin/stdout, one JSON document per line:

    start:   python3 remote_runner.py --backend onnx --manifest manifest.json [--threads N] [--device CPU]
    out:     {"ready": true, "runtime": "onnxruntime", "version": "...", "threads": N, "fingerprint": {...}}
    in:      {"cmd": "time", "key": "w0.5", "n": 10}
    out:     {"samples": [seconds, ...]}
    in:      {"cmd": "quit"}

The host side runs the interleaved measurement loop and the statistics; this script only times single
inferences. A missing runtime is reported as {"error": "...", "kind": "missing_runtime"} with exit status 3.
The manifest maps each key to a model file (relative to the manifest) and its input shape.
"""

import argparse
import json
import os
import sys
import time

EXIT_MISSING_RUNTIME = 3
EXIT_BAD_INPUT = 4


def _emit(doc):
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


class OrtModel:
    def __init__(self, path, threads):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # the widths' sessions take turns on the same cores: idle sessions must not spin-wait
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def time_once(self, x):
        feeds = {self.input_name: x}
        t0 = time.perf_counter()
        self.session.run(None, feeds)
        return time.perf_counter() - t0


class OvModel:
    def __init__(self, path, threads, device, precision):
        import openvino as ov

        core = ov.Core()
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads and device.startswith("CPU"):
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision == "fp32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        self.compiled = core.compile_model(path, device, config)
        self.request = self.compiled.create_infer_request()

    def time_once(self, x):
        t0 = time.perf_counter()
        self.request.infer({0: x})
        return time.perf_counter() - t0


def _import_runtime(backend):
    try:
        if backend == "onnx":
            import onnxruntime as rt

            return "onnxruntime", rt.__version__
        import openvino as rt

        return "openvino", rt.get_version()
    except ImportError as exc:
        name = "onnxruntime" if backend == "onnx" else "openvino"
        _emit({
            "error": "%s is not installed for %s (%s): pip install %s" % (name, sys.executable, exc, name),
            "kind": "missing_runtime",
        })
        sys.exit(EXIT_MISSING_RUNTIME)


def _fingerprint():
    try:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import fingerprint  # copied next to this script

        return fingerprint.collect()
    except Exception as exc:  # best effort: never fail a run for the fingerprint
        return {"error": repr(exc)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("onnx", "openvino"), required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="CPU")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args(argv)
    runtime, version = _import_runtime(args.backend)
    if not args.threads:  # pin to the cores this process may use (recorded in the ready message)
        try:
            args.threads = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            args.threads = os.cpu_count() or 1
    try:
        import numpy as np
    except ImportError as exc:
        _emit({"error": "numpy is not installed for %s: %s" % (sys.executable, exc), "kind": "missing_runtime"})
        sys.exit(EXIT_MISSING_RUNTIME)
    base = os.path.dirname(os.path.abspath(args.manifest))
    with open(args.manifest) as fh:
        manifest = json.load(fh)
    rng = np.random.default_rng(int(manifest.get("seed", 0)))
    models, inputs = {}, {}
    for key, entry in manifest["models"].items():
        path = os.path.join(base, entry["path"])
        if args.backend == "onnx":
            models[key] = OrtModel(path, args.threads)
        else:
            models[key] = OvModel(path, args.threads, args.device.upper(), args.precision)
        inputs[key] = np.ascontiguousarray(rng.standard_normal(entry["input_shape"]), dtype=np.float32)
    _emit({"ready": True, "runtime": runtime, "version": str(version), "threads": args.threads,
           "python": sys.executable, "fingerprint": _fingerprint()})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        if msg.get("cmd") == "quit":
            break
        if msg.get("cmd") != "time" or msg.get("key") not in models:
            _emit({"error": "bad request: %s" % line[:200], "kind": "protocol"})
            sys.exit(EXIT_BAD_INPUT)
        n = msg.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1000000:
            _emit({"error": "bad request: n must be an integer in [1, 1000000], got %r" % (n,), "kind": "protocol"})
            sys.exit(EXIT_BAD_INPUT)
        model, x = models[msg["key"]], inputs[msg["key"]]
        _emit({"samples": [model.time_once(x) for _ in range(n)]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
