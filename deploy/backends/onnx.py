"""ONNX backend: one self-contained ``model.onnx`` (weights inside), run with ONNX Runtime.

Two exporters write the same operators with the same latency (``benchmarks/export_time.py --latency``):
the TorchScript exporter (``dynamo=False``, opset 18, constant folding; the default) and
``torch.onnx.export(dynamo=True, optimize=True)`` (torch's default since 2.9), which costs about twice the time per
export process (docs/deploy.md "Export time"; ``US3L_ONNX_EXPORTER=dynamo`` selects it). Where the TorchScript
exporter is missing (a future torch) or fails on a module, the dynamo exporter is used and the manifest's
``backend.exporter``/``exporter_note`` say so. Either way
the exporter's per-node debug metadata is stripped, so the bytes are a function of the weights, shapes and
exporter version (``us3l.deploy.graph``); profile and export use the same exporter, so the graphs still match.
Precisions: fp32, and int8 as an explicit Q/DQ model from ``onnxruntime.quantization.quantize_static``
(``export_onnx_int8``, ``us3l.deploy.quantize``), which plain onnxruntime runs with its int8 kernels. fp16 is not
offered (ONNX Runtime's CPU kernels are fp32); the fp16 paths are built from the fp32 file by the other backends
(OpenVINO weight compression, a TensorRT FP16 engine).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from us3l.deploy.backends.base import (
    INPUT_NAME,
    OUTPUT_NAME,
    Artifact,
    Backend,
    Runner,
    as_input,
    fixed_dims,
    staging_dir,
)
from us3l.deploy.timing import phase
from us3l.errors import US3LError

#: ONNX Runtime execution providers for each device name ``load(device=...)`` accepts.
PROVIDERS: dict[str, list[str]] = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's informational log lines and deprecation warnings (not errors)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


#: Exporters ``export_onnx`` can use; the first is the default (``US3L_ONNX_EXPORTER`` overrides it). The
#: TorchScript exporter takes half the wall time of a whole ``us3l export`` (4.9 s against 10.0 s for cifar_resnet18
#: on a quiet 2-core machine, docs/deploy.md "Export time") and its graphs run at the same speed. It was once kept
#: opt-in because the test suite crashed (exit 139) with it; that crash was OpenVINO's, not the exporter's (released
#: ov.Core objects left the signal stack dangling; fixed by one shared Core,
#: us3l.deploy.backends.openvino.shared_core).
EXPORTERS = ("torchscript", "dynamo")
#: ONNX opset of the TorchScript exporter (the dynamo exporter's default in torch 2.13 is 18 as well).
OPSET = 18


def onnx_exporter() -> str:
    """The exporter in use: ``US3L_ONNX_EXPORTER`` if set (``torchscript`` or ``dynamo``), else ``EXPORTERS[0]``."""
    name = (os.environ.get("US3L_ONNX_EXPORTER") or EXPORTERS[0]).strip().lower()
    if name not in EXPORTERS:
        raise US3LError(f"US3L_ONNX_EXPORTER={name!r}: choose {' or '.join(EXPORTERS)}")
    return name


@dataclass(frozen=True)
class OnnxExport:
    """What ``export_onnx`` wrote: the manifest facts and the output shape read from the graph."""

    facts: dict[str, Any]
    output_shape: tuple[int, ...]


def _torchscript_export(model: Any, example: Any, dynamic_batch: bool, opset: int = OPSET) -> bytes:
    import torch

    buf = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(
        model,
        (example,),
        buf,
        dynamo=False,
        opset_version=opset,
        do_constant_folding=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes=axes,
        verbose=False,
    )
    return buf.getvalue()


def _dynamo_export(model: Any, example: Any, dynamic_batch: bool, path: Path, opset: int = OPSET) -> bytes:
    import torch

    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        opset_version=opset,
        external_data=False,
        optimize=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=dynamic_shapes,
        verbose=False,
    )
    return path.read_bytes()


def export_onnx(
    model: Any, example: Any, path: str | Path, dynamic_batch: bool = False, exporter: str | None = None,
    opset: int = OPSET,
) -> OnnxExport:
    """Write ``model`` (a static ``nn.Module`` in eval mode) as one ONNX file and check it.

    Input ``"input"`` (N, C, H, W) float32, output ``"embedding"`` (N, D); the batch axis is symbolic
    (``"batch"``) when ``dynamic_batch``. ``exporter``: ``"torchscript"`` or ``"dynamo"`` (default
    ``onnx_exporter()``). The facts hold the opset, the exporter, the file's sha256 (``onnx_sha256``, every
    backend's ``graph_sha256``) and the graph's structure hash (``us3l.deploy.graph.onnx_structure_sha256``;
    ``build_deployable_graph`` moves it out of the backend facts into the graph facts). ``opset``: lower than
    ``OPSET`` for an older ONNX consumer (TensorRT 8.5/8.6 read opset <= 17, ``tensorrt_versions.onnx_opset_for``).
    """
    for package in ("onnx", "onnxscript") if (exporter or onnx_exporter()) == "dynamo" else ("onnx",):
        if importlib.util.find_spec(package) is None:
            from us3l.errors import MissingDependencyError

            raise MissingDependencyError(package, "onnx", "ONNX export")
    import onnx
    import torch

    from us3l.deploy.graph import onnx_structure_sha256

    path = Path(path)
    exporter = exporter or onnx_exporter()
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown ONNX exporter {exporter!r} (choose {' or '.join(EXPORTERS)})")
    model = model.eval()
    fallback = None
    with phase(f"onnx export ({exporter})"), _quiet_exporter(), torch.no_grad():
        if exporter == "torchscript":
            try:
                data = _torchscript_export(model, example, dynamic_batch, opset)
            except Exception as exc:  # removed from a future torch, or an op it cannot trace: use dynamo
                fallback = f"torchscript exporter failed ({type(exc).__name__}: {str(exc)[:200]})"
                exporter = "dynamo"
        if exporter == "dynamo":
            data = _dynamo_export(model, example, dynamic_batch, path, opset)
    with phase("onnx check + hash"):
        proto = onnx.load_model_from_string(data)
        if _strip_debug_metadata(proto):
            data = proto.SerializeToString()
        onnx.checker.check_model(data, full_check=True)  # the bytes: no second serialisation of the proto
        path.write_bytes(data)
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        dims = proto.graph.output[0].type.tensor_type.shape.dim
        output_shape = tuple(
            int(d.dim_value) if d.HasField("dim_value") else int(example.shape[0]) for d in dims
        )
        facts: dict[str, Any] = {
            "onnx_opset": opset,
            "exporter": f"torch.onnx {exporter} (torch {torch.__version__})",
            "onnx_sha256": hashlib.sha256(data).hexdigest(),
            "graph_structure_sha256": onnx_structure_sha256(proto, consume=True),  # proto not used after this
        }
        if fallback:
            facts["exporter_note"] = fallback
    return OnnxExport(facts, output_shape)


def export_onnx_file(
    model: Any, example: Any, path: str | Path, dynamic_batch: bool = False, exporter: str | None = None
) -> dict[str, Any]:
    """``export_onnx``'s manifest facts (opset, exporter, ``onnx_sha256``, ``graph_structure_sha256``)."""
    return export_onnx(model, example, path, dynamic_batch, exporter).facts


def export_onnx_int8(
    model: Any,
    example: Any,
    path: str | Path,
    calibration: Any,
    dynamic_batch: bool = False,
    symmetric_activations: bool = False,
    opset: int = OPSET,
) -> OnnxExport:
    """Export ``model`` as FP32 ONNX (``export_onnx``) next to ``path``, then write its Q/DQ INT8 model
    (``us3l.deploy.quantize.quantize_onnx_qdq``, calibrated on ``calibration``) to ``path``; the FP32 file is
    removed. The facts describe the Q/DQ file (``onnx_sha256``, ``graph_structure_sha256``: what runs) and keep
    the FP32 graph's hashes as ``fp32_onnx_sha256`` / ``fp32_graph_structure_sha256``; ``quantization`` holds the
    quantizer facts."""
    from us3l.deploy.graph import onnx_structure_sha256
    from us3l.deploy.quantize import quantize_onnx_qdq

    path = Path(path)
    fp32 = path.with_name(f".fp32-{path.name}")
    try:
        done = export_onnx(model, example, fp32, dynamic_batch, opset=opset)
        with phase("int8 quantization (onnxruntime)"):
            batch = None if dynamic_batch else int(example.shape[0])
            quant = quantize_onnx_qdq(fp32, path, calibration, batch, symmetric_activations, INPUT_NAME)
    finally:
        fp32.unlink(missing_ok=True)
    facts = dict(done.facts)
    facts["fp32_onnx_sha256"] = facts.pop("onnx_sha256")
    facts["fp32_graph_structure_sha256"] = facts.pop("graph_structure_sha256")
    data = path.read_bytes()
    facts["onnx_sha256"] = hashlib.sha256(data).hexdigest()
    facts["graph_structure_sha256"] = onnx_structure_sha256(path)
    facts["quantization"] = quant
    return OnnxExport(facts, done.output_shape)


def _strip_debug_metadata(proto: Any) -> bool:
    """Drop the exporter's per-node debug metadata (Python stack traces with this machine's absolute paths and
    line numbers, FX node dumps, rewrite-rule names) and doc strings; True when anything was dropped.

    They do not change what runs, but they would make the same model's export differ from machine to machine
    (and reveal local paths); without them the file is a function of the weights, shapes and exporter version,
    so a profiled graph and the exported one can be compared by sha256 (``us3l.deploy.graph``).
    """
    changed = False
    for node in proto.graph.node:
        if len(node.metadata_props) or node.doc_string:
            del node.metadata_props[:]
            node.doc_string = ""
            changed = True
    return changed


#: What ``OnnxRunner.time_once`` (and the remote runner) times; profiles record it (``extra.timed_call``).
TIMED_CALL = "onnxruntime run_with_iobinding, input and output bound once"


def session_options(threads: int | None, spin: bool = True) -> Any:
    """The ``onnxruntime.SessionOptions`` every us3l session uses: all graph optimizations, sequential execution,
    ``threads`` intra-op threads (None: the runtime's default) and, with ``spin=False``, no spin-waiting
    (see ``OnnxRunner``)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        from us3l.train.threads import local_threads

        opts.intra_op_num_threads = local_threads(threads)
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def _session(ort: Any, source: str | bytes, options: Any, providers: list[str], device: str) -> Any:
    """An ``InferenceSession`` that runs on ``providers[0]``, else one line saying that provider did not start.

    onnxruntime's provider fallback is off (``enable_fallback=0``, the constructor form of ``disable_fallback()``):
    with it on, a provider whose creation raises prints an "EP Error ... Falling back" banner on stdout and the
    session runs on the CPU. A GPU provider listed but not started (the session's ``get_providers()`` lacks it)
    is refused the same way."""
    try:
        session = ort.InferenceSession(source, sess_options=options, providers=providers, enable_fallback=0)
    except (RuntimeError, ValueError) as exc:
        if providers[0] == "CPUExecutionProvider":
            raise
        why = " ".join(str(exc).split())[:300]
    else:
        running = session.get_providers()
        if providers[0] in running:
            return session
        why = f"the session runs on {', '.join(running) or 'nothing'}; its results would be the CPU's"
    raise US3LError(
        f"onnxruntime could not start {providers[0]} for device '{device}' ({why}; missing CUDA/cuDNN/TensorRT "
        "libraries or no GPU?): fix the GPU install or use device 'cpu'"
    )


class OnnxRunner(Runner):
    """An ONNX Runtime ``InferenceSession`` (sequential execution, ``intra_op`` threads as given).

    ``spin=False`` turns off the worker threads' spin-waiting. Keep it on for one session (the runtime's
    default, lowest latency); turn it off when several sessions take turns on the same cores, as in an
    interleaved profiling sweep: idle sessions' spinning workers otherwise steal the cores from the one being
    timed (measured here on 2 cores with 10 sessions: p90 8.5 ms against a 0.5 ms median).

    ``time_once`` times ``run_with_iobinding`` on an input bound once (the caller's array, shared) and an output
    bound to a buffer allocated once, i.e. the runtime's ``Run`` on pre-bound tensors as a C++ deployment calls
    it, without the feed dict and output allocation of ``session.run`` (issue 18). ``infer`` uses
    ``session.run`` and returns a fresh array; the timing output buffer is never handed out.
    """

    backend = "onnx"

    def __init__(
        self, path: Path, threads: int | None, device: str, spin: bool = True, model_bytes: bytes | None = None
    ) -> None:
        import onnxruntime as ort

        if device not in PROVIDERS:
            raise US3LError(f"onnx backend: unknown device '{device}' (choose from {', '.join(PROVIDERS)})")
        wanted = PROVIDERS[device]
        present = set(ort.get_available_providers())
        if wanted[0] not in present:
            raise US3LError(
                f"onnxruntime {ort.__version__} has no {wanted[0]} "
                f"(available: {', '.join(sorted(present))}); "
                f"install onnxruntime-gpu on a CUDA machine or use device 'cpu'"
            )
        self.device = device
        source = str(path) if model_bytes is None else model_bytes  # bytes: exactly the ones whose hash was checked
        self.session = _session(ort, source, session_options(threads, spin), wanted, device)
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = fixed_dims(self.session.get_inputs()[0].shape)
        self.output_name = self.session.get_outputs()[0].name
        #: time_once's (caller's array, IOBinding with that input and the output buffer bound, output buffer)
        self._bound: tuple[np.ndarray, Any, np.ndarray] | None = None

    def infer(self, x: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([self.output_name], {self.input_name: as_input(x, self.input_shape)})
        return np.asarray(out, dtype=np.float32)

    def _bind(self, x: np.ndarray) -> tuple[np.ndarray, Any, np.ndarray]:
        data = as_input(x, self.input_shape)  # x itself when it is C-contiguous float32; the binding keeps it alive
        (out,) = self.session.run([self.output_name], {self.input_name: data})  # the output shape (untimed)
        buffer = np.empty(out.shape, dtype=np.float32)
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, data)
        binding.bind_output(self.output_name, "cpu", 0, np.float32, list(buffer.shape), buffer.ctypes.data)
        return x, binding, buffer  # the buffer is kept alive with the binding that writes into it

    def time_once(self, x: np.ndarray) -> float:
        if self._bound is None or x is not self._bound[0]:
            self._bound = self._bind(x)
        binding = self._bound[1]
        t0 = time.perf_counter()
        self.session.run_with_iobinding(binding)  # synchronous: returns when the output buffer is written
        return time.perf_counter() - t0

    def close(self) -> None:
        self._bound = None
        self.session = None  # type: ignore[assignment]


class OnnxBackend(Backend):
    name = "onnx"
    package = "onnxruntime"
    extra = "onnx"
    precisions = ("fp32", "int8")
    filename = "model.onnx"

    def available(self) -> bool:
        return all(importlib.util.find_spec(p) is not None for p in ("onnx", "onnxscript", "onnxruntime"))

    def runtime_version(self) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None:
            return None
        import onnxruntime

        return str(onnxruntime.__version__)

    def export(
        self,
        model: Any,
        example: Any,
        out_dir: str | Path,
        precision: str = "fp32",
        dynamic_batch: bool = False,
        calibration: Any = None,
        opset: int = OPSET,
    ) -> Artifact:
        """``opset``: the ONNX opset to write (``OPSET``; lower for a TensorRT whose parser reads less)."""
        self.check_precision(precision)
        self.check_int8_inputs(precision, calibration, example)
        with staging_dir(out_dir) as tmp:
            if precision == "int8":
                done = export_onnx_int8(model, example, tmp / self.filename, calibration, dynamic_batch, opset=opset)
            else:
                done = export_onnx(model, example, tmp / self.filename, dynamic_batch, opset=opset)
        path = Path(out_dir) / self.filename
        return self.artifact((path,), precision, dynamic_batch, example, done.output_shape, dict(done.facts))

    def load(
        self,
        path: str | Path,
        threads: int | None = None,
        device: str | None = None,
        precision: str | None = None,
        *,
        spin: bool = True,
        data: Mapping[str, bytes] | None = None,
    ) -> Runner:
        if importlib.util.find_spec("onnxruntime") is None:
            raise self.missing()
        path = Path(path)
        model_bytes = None if data is None else data.get(path.name)
        if model_bytes is None and not path.is_file():
            raise US3LError(f"ONNX model not found: {path}")
        return OnnxRunner(path, threads, (device or "cpu").lower(), spin=spin, model_bytes=model_bytes)


BACKEND = OnnxBackend()
