"""OpenVINO backend: IR (``model.xml`` + ``model.bin``) converted from the ONNX export, run by OpenVINO.

``openvino.convert_model`` reads the same ONNX file the ONNX backend writes (one tracing path for every
backend); ``openvino.save_model(compress_to_fp16=...)`` stores FP32 or FP16 weights. INT8: the converted FP32
model is quantized by NNCF post-training quantization (``nncf.quantize``, ``us3l.deploy.quantize``) on the
calibration images before it is saved (FakeQuantize nodes, int8 weights; the CPU plugin runs them in int8).
The runner compiles for ``CPU`` by default (``GPU``/``NPU`` where present) with a latency hint and
``INFERENCE_NUM_THREADS``. For fp32 (and int8) artifacts it pins ``INFERENCE_PRECISION_HINT=f32``: on CPUs with
AVX512-BF16/AMX OpenVINO otherwise runs bf16 by default, which would not be the model that was verified.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from us3l.deploy.backends.base import Artifact, Backend, Runner, as_input, fixed_dims, staging_dir, version_tuple
from us3l.deploy.backends.intel_telemetry import import_openvino, telemetry_off
from us3l.deploy.backends.openvino_devices import compile_failure, refusal
from us3l.deploy.timing import phase
from us3l.errors import US3LError

#: What ``OpenVinoRunner.time_once`` (and the remote runner) times; profiles record it (``extra.timed_call``).
TIMED_CALL = "openvino InferRequest.infer() (sync), input tensor bound once (shared memory)"


_CORE: Any = None


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block returns, then raise it as usual.

    ``openvino.convert_model`` calls back into Python (its ONNX frontend submits work to a Python thread pool). A
    ``KeyboardInterrupt`` raised in there came out of the converter as ``RuntimeError: Check 'false' failed ...
    KeyboardInterrupt`` (exit 1 instead of 130) or the process died (SIGSEGV): seen in tests/test_quickstart.py's
    Ctrl-C test. (Runs of that test that went on to exit 0 were traced later to a SIGINT the launching shell had set
    to ignored, not to the converter.) The conversion takes about a second, so Ctrl-C waits at most that long.
    Outside the main thread (where Python signal handlers cannot be set) the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if got and previous is not signal.SIG_IGN:
            if callable(previous):
                previous(signal.SIGINT, None)  # Python's default handler raises KeyboardInterrupt
            else:
                raise KeyboardInterrupt


def shared_core() -> Any:
    """The process's one ``openvino.Core``. OpenVINO's CPU plugin (2026.4) gives every Core its own alternate
    signal stack and, when that Core is destroyed, restores the previous one only if its own is still current:
    two Cores released oldest first (as a sweep window releases sessions) leave the thread's signal stack on
    unmapped memory, and the next signal handled in Python (SIGCHLD, Ctrl-C) kills the process with a silent
    SIGSEGV. One Core for the whole process is never released before exit."""
    global _CORE
    if _CORE is None:
        _CORE = import_openvino().Core()
    return _CORE


def device_ids(core: Any) -> dict[str, list[str]]:
    """Each listed device's ids (``AVAILABLE_DEVICES``: ``['']`` for the CPU, ``['0']`` for a lone GPU), where
    its plugin answers."""
    ids: dict[str, list[str]] = {}
    for d in core.available_devices:
        try:
            ids[d] = [str(i) for i in core.get_property(d, "AVAILABLE_DEVICES")]
        except RuntimeError:  # a plugin without the property: its listed name is all there is
            continue
    return ids


def require_device(core: Any, device: str, where: str = "") -> None:
    """Refuse, in one line (prefixed with ``where``), a device OpenVINO cannot run on here: absent (``CPU.1``),
    or a virtual device (``AUTO``, ``HETERO:...``, ``MULTI:...``, ``BATCH:...``) over absent ones
    (``us3l.deploy.backends.openvino_devices``)."""
    problem = refusal(device, list(core.available_devices), device_ids(core), where)
    if problem is not None:
        raise US3LError(problem)


def compile_on(core: Any, source: Any, device: str, config: Mapping[str, Any]) -> Any:
    """``core.compile_model`` on ``device``; OpenVINO's several-line refusal (``BATCH:CPU`` rejects the CPU's
    thread count, a plugin rejects a device id) becomes one line naming the device."""
    try:
        return core.compile_model(source, device, dict(config))
    except RuntimeError as exc:
        raise US3LError(compile_failure(device, str(exc))) from None


def may_run_on_cpu(device: str) -> bool:
    """Whether the virtual device ``device`` may place work on the CPU: ``AUTO`` unless its list leaves the CPU
    out (``AUTO:GPU``, ``AUTO:-CPU``), the others when their list names it."""
    kind, _, rest = device.strip().upper().partition(":")
    items = [i.split("(")[0].strip() for i in rest.split(",") if i.strip()]  # BATCH:CPU(4) names CPU
    if kind == "AUTO":
        named = [i for i in items if not i.startswith("-")]
        return "-CPU" not in items and (not named or "CPU" in named)
    return kind in ("HETERO", "MULTI", "BATCH") and "CPU" in items


def compile_config(threads: int | None, device: str, precision: str | None) -> dict[str, Any]:
    """The ``compile_model`` configuration every us3l OpenVINO model uses: the latency hint, ``threads`` on a CPU
    and the precision hint (f32 for fp32 and int8, f16 for fp16 on GPU/NPU). A virtual device that may run on the
    CPU (``AUTO``, ``AUTO:-GPU``, ``HETERO:GPU,CPU``, ...) takes ``threads`` as the CPU plugin's own property
    (``DEVICE_PROPERTIES``): a top-level ``INFERENCE_NUM_THREADS`` is not one of theirs."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if threads:
        from us3l.train.threads import local_threads

        threads = local_threads(threads)
    if threads and device.startswith("CPU"):
        config["INFERENCE_NUM_THREADS"] = int(threads)
    elif threads and may_run_on_cpu(device):
        config["DEVICE_PROPERTIES"] = {"CPU": {"INFERENCE_NUM_THREADS": int(threads)}}
    if precision in (None, "fp32", "int8"):
        # int8: the quantized layers run in int8 whatever the hint; the hint keeps the rest f32, not bf16
        config["INFERENCE_PRECISION_HINT"] = "f32"
    elif device.startswith(("GPU", "NPU")):
        config["INFERENCE_PRECISION_HINT"] = "f16"
    return config


class OpenVinoRunner(Runner):
    """A compiled OpenVINO model and one synchronous infer request.

    ``time_once`` times the runtime's synchronous ``infer()`` on an input tensor bound once (``set_input_tensor``
    on the caller's array, shared memory; rebound only when a different array comes), the call ``benchmark_app
    -api sync`` times: the Python dict/copy of ``infer({0: x})`` cost 0.15-0.35 ms per call here, +28 % at
    width 0.25 (issue 18, docs/profiling.md). ``infer`` binds its own copy of the input, so it never writes into
    a timed array.
    """

    backend = "openvino"

    def __init__(
        self, path: Path, threads: int | None, device: str, precision: str | None,
        ir: tuple[bytes, bytes] | None = None,
    ) -> None:
        core = shared_core()
        require_device(core, device)
        self.device = device
        # ir: the .xml and .bin bytes whose hashes were checked, read from memory (never the files again)
        source = str(path) if ir is None else core.read_model(model=ir[0], weights=ir[1])
        self.compiled = compile_on(core, source, device, compile_config(threads, device, precision))
        self.request = self.compiled.create_infer_request()
        self.input_shape = fixed_dims(list(self.compiled.input(0).get_partial_shape()))
        #: (the caller's array, the float32 array whose memory the input tensor shares: x itself when it is one)
        self._bound: tuple[np.ndarray, np.ndarray] | None = None

    def infer(self, x: np.ndarray) -> np.ndarray:
        import openvino as ov

        self._bound = None  # the input tensor now holds a copy of x: the next time_once rebinds
        self.request.set_input_tensor(ov.Tensor(as_input(x, self.input_shape), shared_memory=False))
        self.request.infer()
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def time_once(self, x: np.ndarray) -> float:
        if self._bound is None or x is not self._bound[0]:
            import openvino as ov

            data = as_input(x, self.input_shape)  # C-contiguous float32 for shared memory; kept alive in _bound
            self.request.set_input_tensor(ov.Tensor(data, shared_memory=True))
            self._bound = (x, data)
        t0 = time.perf_counter()
        self.request.infer()  # synchronous: returns when the output tensor is ready
        return time.perf_counter() - t0

    def close(self) -> None:
        self.request = None
        self.compiled = None
        self._bound = None


class OpenVinoBackend(Backend):
    name = "openvino"
    package = "openvino"
    extra = "openvino"
    precisions = ("fp32", "fp16", "int8")
    filename = "model.xml"

    def available(self) -> bool:
        return importlib.util.find_spec("openvino") is not None

    def runtime_version(self) -> str | None:
        if not self.available():
            return None
        return str(import_openvino().get_version())

    def check_runtime_compat(self, recorded: str | None) -> None:
        """IR files are read by the same or a newer OpenVINO release; refuse an older one."""
        current = self.runtime_version()
        if current is None:
            raise self.missing()
        if recorded is not None and version_tuple(current)[:2] < version_tuple(recorded)[:2]:
            raise US3LError(
                f"artifact was exported with openvino {recorded}, installed {current} is older: "
                f"upgrade openvino or re-export"
            )

    def export(
        self,
        model: Any,
        example: Any,
        out_dir: str | Path,
        precision: str = "fp32",
        dynamic_batch: bool = False,
        calibration: Any = None,
    ) -> Artifact:
        self.check_precision(precision)
        if not self.available():
            raise self.missing()
        self.check_int8_inputs(precision, calibration, example)
        from us3l.deploy.backends.onnx import export_onnx

        if precision == "int8":
            from us3l.deploy.quantize import import_nncf

            import_nncf()  # missing NNCF: one line naming the extra, before the ONNX export
        with staging_dir(out_dir) as tmp:
            onnx_dir = tmp / "onnx"
            onnx_dir.mkdir()
            done = export_onnx(model, example, onnx_dir / "model.onnx", dynamic_batch)
            extras, out_shape = dict(done.facts), done.output_shape
            with phase("openvino convert + save"):
                ov = import_openvino()
                with sigint_deferred(), telemetry_off():
                    ov_model = ov.convert_model(str(onnx_dir / "model.onnx"))
                if precision == "int8":
                    from us3l.deploy.quantize import quantize_openvino

                    with phase("int8 quantization (nncf)"):
                        batch = None if dynamic_batch else int(example.shape[0])
                        ov_model, extras["quantization"] = quantize_openvino(ov_model, calibration, batch)
                with sigint_deferred():
                    ov.save_model(ov_model, str(tmp / self.filename), compress_to_fp16=(precision == "fp16"))
                del ov_model
            shutil.rmtree(onnx_dir)  # the intermediate ONNX file is not part of this artifact
        out = Path(out_dir)
        extras["converted_from"] = "onnx"
        extras["weights"] = {"fp16": "fp16 (compressed)", "int8": "int8 (NNCF)"}.get(precision, "fp32")
        if precision == "int8":
            # the FP32 ONNX graph is what the IR was converted from (graph_sha256); the structure hash must say
            # that the graph that runs is not the FP32 one (its latency differs): FP32 structure + the scheme
            q = extras["quantization"]
            scheme = f"int8|{q['quantizer']}|{q['weights']}|{q['activations']}|{q['fake_quantize_nodes']}"
            extras["graph_structure_sha256"] = hashlib.sha256(
                f"{extras['graph_structure_sha256']}|{scheme}".encode()
            ).hexdigest()
        files = (out / self.filename, out / "model.bin")
        return self.artifact(files, precision, dynamic_batch, example, out_shape, extras)

    def load(
        self,
        path: str | Path,
        threads: int | None = None,
        device: str | None = None,
        precision: str | None = None,
        *,
        data: Mapping[str, bytes] | None = None,
    ) -> Runner:
        if not self.available():
            raise self.missing()
        path = Path(path)
        bin_name = path.with_suffix(".bin").name
        ir = None
        if data is not None and path.name in data and bin_name in data:
            ir = (data[path.name], data[bin_name])
        elif not path.is_file() or not path.with_suffix(".bin").is_file():
            raise US3LError(f"OpenVINO IR not found: {path} (+ {bin_name})")
        return OpenVinoRunner(path, threads, (device or "CPU").upper(), precision, ir=ir)


BACKEND = OpenVinoBackend()
