# ruff: noqa: UP031
# (no f-strings with = and no 3.10 syntax: this script also runs on the Python 3.8 of older JetPack releases)
"""Self-contained latency runner copied to a remote device (needs Python >= 3.8, numpy, and onnxruntime or
openvino; nothing from us3l). It is driven over stdin/stdout, one JSON document per line:

    start:   python3 remote_runner.py --backend onnx --manifest manifest.json [--threads N] [--device CPU]
                                      [--max-memory-mb M]
    out:     {"ready": true, "runtime": "onnxruntime", "version": "...", "threads": N, "fingerprint": {...},
              "rss_bytes": ..., "peak_rss_bytes": ..., "available_bytes": ..., "max_memory_bytes": ...}
              (openvino: also "openvino_devices": {"available": [...], "ids": {"GPU": ["0"], ...}})
    in:      {"cmd": "load", "key": "w0.5"}
    out:     {"loaded": "w0.5", "session_bytes": ..., "rss_bytes": ..., "live": 1}
         or  {"full": true, "rss_bytes": ..., "limit_bytes": ..., "live": 3}
         or  {"error": "<OpenVINO's message>", "kind": "openvino_compile"}
    in:      {"cmd": "time", "key": "w0.5", "n": 10}
    out:     {"samples": [seconds, ...]}
    in:      {"cmd": "unload", "key": "w0.5"}
    out:     {"unloaded": "w0.5", "rss_bytes": ..., "live": 0}
    in:      {"cmd": "stat"}
    out:     {"rss_bytes": ..., "peak_rss_bytes": ..., "available_bytes": ..., "live": 0}
    in:      {"cmd": "quit"}     (the end of stdin without it: the host is gone; the runner removes its
                                  own us3l-profile.* work folder, which nobody else will)

The host side runs the interleaved measurement loop and the statistics; this script only loads, times and
unloads single models. Nothing is loaded at start: the host opens a window of models at a time. With
``--max-memory-mb`` a load is answered ``full`` (and nothing loaded) when a model is loaded already and the
resident memory plus the largest session measured so far (RSS after loading and one inference, less RSS
before) would exceed the limit; the first model is always loaded. A missing runtime is reported as
{"error": "...", "kind": "missing_runtime"} with exit status 3. The manifest maps each key to a model file
(relative to the manifest) and its input shape.
"""

import argparse
import gc
import json
import os
import sys
import time

EXIT_MISSING_RUNTIME = 3
EXIT_BAD_INPUT = 4
#: The most threads a runtime here may be asked for, or the usable cores where more: us3l.train.threads'
#: MAX_LOCAL_THREADS, the host's own bound (this script imports nothing from us3l; a test holds the two equal).
MAX_LOCAL_THREADS = 1024


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
        self.output_name = self.session.get_outputs()[0].name
        self.bound = None  # (x, IOBinding, output buffer): the timed call runs on tensors bound once

    def time_once(self, x):
        # as us3l.deploy.backends.onnx.OnnxRunner.time_once: run_with_iobinding on an input bound once (x's own
        # memory, a C-contiguous float32 array) and an output bound to a buffer allocated once
        if self.bound is None or x is not self.bound[0]:
            import numpy as np

            (out,) = self.session.run([self.output_name], {self.input_name: x})  # the output shape (untimed)
            buffer = np.empty(out.shape, dtype=np.float32)
            binding = self.session.io_binding()
            binding.bind_cpu_input(self.input_name, x)
            binding.bind_output(self.output_name, "cpu", 0, np.float32, list(buffer.shape), buffer.ctypes.data)
            self.bound = (x, binding, buffer)
        binding = self.bound[1]
        t0 = time.perf_counter()
        self.session.run_with_iobinding(binding)
        return time.perf_counter() - t0


_OV_CORE = []  # one openvino.Core per process (see us3l.deploy.backends.openvino.shared_core: released Cores
# leave the thread's signal stack dangling, and the next signal is a silent SIGSEGV)


def may_run_on_cpu(device):
    """us3l.deploy.backends.openvino.may_run_on_cpu (a test keeps the two equal)."""
    kind, _, rest = device.strip().upper().partition(":")
    items = [i.split("(")[0].strip() for i in rest.split(",") if i.strip()]  # BATCH:CPU(4) names CPU
    if kind == "AUTO":
        named = [i for i in items if not i.startswith("-")]
        return "-CPU" not in items and (not named or "CPU" in named)
    return kind in ("HETERO", "MULTI", "BATCH") and "CPU" in items


def ov_config(threads, device, precision):
    """The compile configuration of us3l.deploy.backends.openvino.compile_config (this file runs on devices
    without us3l; a test keeps the two equal)."""
    config = {"PERFORMANCE_HINT": "LATENCY"}
    if threads and device.startswith("CPU"):
        config["INFERENCE_NUM_THREADS"] = int(threads)
    elif threads and may_run_on_cpu(device):  # a virtual device: the CPU plugin's own property
        config["DEVICE_PROPERTIES"] = {"CPU": {"INFERENCE_NUM_THREADS": int(threads)}}
    if precision in (None, "fp32", "int8"):  # int8: quantized layers run int8 anyway; the rest f32, not bf16
        config["INFERENCE_PRECISION_HINT"] = "f32"
    elif device.startswith(("GPU", "NPU")):
        config["INFERENCE_PRECISION_HINT"] = "f16"
    return config


def _ov_core():
    if not _OV_CORE:
        import openvino as ov

        _OV_CORE.append(ov.Core())
    return _OV_CORE[0]


def ov_devices():
    """What the host checks the device against (us3l.deploy.backends.openvino.require_device): this machine's
    Core.available_devices and each one's ids (AVAILABLE_DEVICES, where its plugin answers)."""
    core = _ov_core()
    available = [str(d) for d in core.available_devices]
    ids = {}
    for d in available:
        try:
            ids[d] = [str(i) for i in core.get_property(d, "AVAILABLE_DEVICES")]
        except RuntimeError:
            continue
    return {"available": available, "ids": ids}


class OvCompileError(Exception):
    """OpenVINO refused to compile a model for the device (its message: several lines)."""


class OvModel:
    def __init__(self, path, threads, device, precision):
        try:
            self.compiled = _ov_core().compile_model(path, device, ov_config(threads, device, precision))
        except RuntimeError as exc:
            raise OvCompileError(str(exc)) from None
        self.request = self.compiled.create_infer_request()
        self.bound = None  # the array the input tensor shares memory with

    def time_once(self, x):
        # as us3l.deploy.backends.openvino.OpenVinoRunner.time_once: the synchronous infer() on an input tensor
        # bound once (shared memory with x, a C-contiguous float32 array), the call benchmark_app -api sync times
        if x is not self.bound:
            import openvino as ov

            self.request.set_input_tensor(ov.Tensor(x, shared_memory=True))
            self.bound = x
        t0 = time.perf_counter()
        self.request.infer()
        return time.perf_counter() - t0


def _decline_intel_telemetry():
    """What us3l.deploy.backends.intel_telemetry does on the host, for this runner's own process: importing
    OpenVINO sets up Intel's usage telemetry (a client id and a counter written to ~/intel, events sent to Google
    Analytics) unless CI=true or the user opted in with Intel's opt_in_out tool (~/intel/openvino_telemetry holds
    1), which is kept."""
    try:
        with open(os.path.join(os.path.expanduser("~"), "intel", "openvino_telemetry")) as f:
            if f.read().strip() == "1":
                return
    except (OSError, UnicodeDecodeError):
        pass
    os.environ["CI"] = "true"


def _import_runtime(backend):
    try:
        if backend == "onnx":
            import onnxruntime as rt

            return "onnxruntime", rt.__version__
        _decline_intel_telemetry()
        import openvino as rt

        return "openvino", rt.get_version()
    except ImportError as exc:
        name = "onnxruntime" if backend == "onnx" else "openvino"
        _emit({
            "error": "%s is not installed for %s (%s): pip install %s" % (name, sys.executable, exc, name),
            "kind": "missing_runtime",
        })
        sys.exit(EXIT_MISSING_RUNTIME)


def proc_bytes(field, path="/proc/self/status"):
    """A ``kB`` field of a /proc status file (``VmRSS``, ``VmHWM``, ``MemAvailable``) in bytes; None without it.

    The host's memory accounting (profiler/window.py) uses this same reader."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_facts():
    """This process's resident and peak memory, and the system's available memory (None where unknown)."""
    return {"rss_bytes": proc_bytes("VmRSS"), "peak_rss_bytes": proc_bytes("VmHWM"),
            "available_bytes": proc_bytes("MemAvailable", "/proc/meminfo")}


class Models:
    """The loaded models (at most what the memory limit allows) and their inputs."""

    def __init__(self, backend, entries, base, threads, device, precision, max_memory_bytes, seed):
        import numpy as np

        self.backend, self.entries, self.base = backend, entries, base
        self.threads, self.device, self.precision = threads, device, precision
        self.limit = max_memory_bytes
        self.rng_seed = seed
        self.np = np
        self.loaded = {}
        self.inputs = {}
        self.session_bytes = 0  # the largest session measured so far

    def _input(self, key):
        if key not in self.inputs:  # the same input for a key whenever it is loaded
            index = sorted(self.entries).index(key)
            rng = self.np.random.default_rng([int(self.rng_seed), index])
            shape = self.entries[key]["input_shape"]
            self.inputs[key] = self.np.ascontiguousarray(rng.standard_normal(shape), dtype=self.np.float32)
        return self.inputs[key]

    def load(self, key):
        if key in self.loaded:
            return {"loaded": key, "session_bytes": 0, "rss_bytes": proc_bytes("VmRSS"), "live": len(self.loaded)}
        before = proc_bytes("VmRSS")
        if self.limit and self.loaded and before is not None and before + self.session_bytes > self.limit:
            return {"full": True, "rss_bytes": before, "limit_bytes": self.limit, "live": len(self.loaded)}
        path = os.path.join(self.base, self.entries[key]["path"])
        if self.backend == "onnx":
            model = OrtModel(path, self.threads)
        else:
            model = OvModel(path, self.threads, self.device.upper(), self.precision)
        model.time_once(self._input(key))  # the runtime allocates its buffers on the first inference
        self.loaded[key] = model
        after = proc_bytes("VmRSS")
        grew = max(0, after - before) if after is not None and before is not None else 0
        self.session_bytes = max(self.session_bytes, grew)
        return {"loaded": key, "session_bytes": grew, "rss_bytes": after, "live": len(self.loaded)}

    def unload(self, key):
        self.loaded.pop(key, None)
        gc.collect()
        return {"unloaded": key, "rss_bytes": proc_bytes("VmRSS"), "live": len(self.loaded)}


def _fingerprint():
    try:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import fingerprint  # copied next to this script

        return fingerprint.collect()
    except Exception as exc:  # best effort: never fail a run for the fingerprint
        return {"error": repr(exc)}


def _usable_cores():
    """The cores this process may run on (its CPU affinity), or the machine's CPU count where that is unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("onnx", "openvino"), required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="CPU")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--max-memory-mb", type=float, default=0.0)
    args = ap.parse_args(argv)
    runtime, version = _import_runtime(args.backend)
    cores = _usable_cores()
    if not args.threads:  # pin to the cores this process may use (recorded in the ready message)
        args.threads = cores
    most = max(MAX_LOCAL_THREADS, cores)
    if args.threads > most:  # the runtime's thread pool would fail to start them and the process die
        _emit({"error": "--threads %d is more threads than this device can start: at most %d here (%d, or its usable "
                        "cores where more; it has %d)" % (args.threads, most, MAX_LOCAL_THREADS, cores)})
        sys.exit(EXIT_BAD_INPUT)
    try:
        import numpy  # noqa: F401 - checked here so a missing numpy is a clear message, not a traceback
    except ImportError as exc:
        _emit({"error": "numpy is not installed for %s: %s" % (sys.executable, exc), "kind": "missing_runtime"})
        sys.exit(EXIT_MISSING_RUNTIME)
    base = os.path.dirname(os.path.abspath(args.manifest))
    with open(args.manifest) as fh:
        manifest = json.load(fh)
    limit = int(args.max_memory_mb * 1024 * 1024) if args.max_memory_mb > 0 else None
    models = Models(args.backend, manifest["models"], base, args.threads, args.device, args.precision, limit,
                    manifest.get("seed", 0))
    ready = {"ready": True, "runtime": runtime, "version": str(version), "threads": args.threads,
             "python": sys.executable, "fingerprint": _fingerprint(), "max_memory_bytes": limit}
    if args.backend == "openvino":
        ready["openvino_devices"] = ov_devices()
    ready.update(memory_facts())
    _emit(ready)
    done = False
    try:
        done = _serve(models, manifest)
    finally:
        if not done:  # the host is gone (connection lost): nobody else will remove this work folder
            remove_own_folder(base)
    return 0


def remove_own_folder(base):
    """Remove the work folder the host made for this runner (``us3l-profile.*``, never another folder)."""
    import shutil

    if os.path.basename(os.path.normpath(base)).startswith("us3l-profile"):
        shutil.rmtree(base, ignore_errors=True)


def _serve(models, manifest):
    """Answer requests until ``quit`` (True) or the end of stdin (False: the host went away)."""
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        cmd = msg.get("cmd")
        if cmd == "quit":
            return True
        if cmd == "stat":
            facts = memory_facts()
            facts["live"] = len(models.loaded)
            _emit(facts)
            continue
        key = msg.get("key")
        if cmd not in ("time", "load", "unload") or key not in manifest["models"]:
            _emit({"error": "bad request: %s" % line[:200], "kind": "protocol"})
            sys.exit(EXIT_BAD_INPUT)
        if cmd == "load":
            try:
                _emit(models.load(key))
            except OvCompileError as exc:  # the host words it in one line (openvino_devices.compile_failure)
                _emit({"error": str(exc), "kind": "openvino_compile"})
            continue
        if cmd == "unload":
            _emit(models.unload(key))
            continue
        if key not in models.loaded:
            _emit({"error": "bad request: model %s is not loaded" % key, "kind": "protocol"})
            sys.exit(EXIT_BAD_INPUT)
        n = msg.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1000000:
            _emit({"error": "bad request: n must be an integer in [1, 1000000], got %r" % (n,), "kind": "protocol"})
            sys.exit(EXIT_BAD_INPUT)
        model, x = models.loaded[key], models._input(key)
        _emit({"samples": [model.time_once(x) for _ in range(n)]})
    return False


if __name__ == "__main__":
    sys.exit(main())
