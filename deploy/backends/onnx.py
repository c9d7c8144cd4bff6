"""ONNX backend: one self-contained ``model.onnx`` (weights inside), run with ONNX Runtime.

Export uses ``torch.onnx.export(dynamo=True, external_data=False)``, the default exporter of torch >= 2.9
(the TorchScript exporter is deprecated and scheduled for removal). ``external_data=False`` keeps the weights
inside the one file (fine below the 2 GB protobuf limit, far above any model here); ``optimize=True`` folds
the exported graph to plain Conv/Relu/ReduceMean/Gemm nodes. Only fp32 is exported: ONNX Runtime's CPU kernels
are fp32, and the fp16 paths are built from this file by the other backends (OpenVINO weight compression,
a TensorRT FP16 engine).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from deploy.backends.base import (
    INPUT_NAME,
    OUTPUT_NAME,
    Artifact,
    Backend,
    Runner,
    as_input,
    staging_dir,
)
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


def export_onnx_file(
    model: Any, example: Any, path: str | Path, dynamic_batch: bool = False
) -> dict[str, Any]:
    """Write ``model`` (a static ``nn.Module`` in eval mode) as one ONNX file and check it.

    Input ``"input"`` (N, C, H, W) float32, output ``"embedding"`` (N, D); the batch axis is symbolic
    (``"batch"``) when ``dynamic_batch``. Returns facts for the manifest (opset, exporter) and the graph's
    structure hash (``deploy.graph.onnx_structure_sha256``; ``build_deployable_graph`` moves it out of the
    backend facts into the graph facts).
    """
    for package in ("onnx", "onnxscript"):
        if importlib.util.find_spec(package) is None:
            from us3l.errors import MissingDependencyError

            raise MissingDependencyError(package, "onnx", "ONNX export")
    import onnx
    import torch

    model = model.eval()
    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    with _quiet_exporter(), torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            external_data=False,
            optimize=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic_shapes,
            verbose=False,
        )
    proto = onnx.load(str(path))
    if _strip_debug_metadata(proto):
        onnx.save(proto, str(path))
    onnx.checker.check_model(proto, full_check=True)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    from deploy.graph import onnx_structure_sha256

    return {
        "onnx_opset": opset,
        "exporter": f"torch.onnx dynamo (torch {torch.__version__})",
        "graph_structure_sha256": onnx_structure_sha256(path),
        "onnx_sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),  # every backend's graph_sha256
    }


def _strip_debug_metadata(proto: Any) -> bool:
    """Drop the exporter's per-node debug metadata (Python stack traces with this machine's absolute paths and
    line numbers, FX node dumps, rewrite-rule names) and doc strings; True when anything was dropped.

    They do not change what runs, but they would make the same model's export differ from machine to machine
    (and reveal local paths); without them the file is a function of the weights, shapes and exporter version,
    so a profiled graph and the exported one can be compared by sha256 (``deploy.graph``).
    """
    changed = False
    for node in proto.graph.node:
        if len(node.metadata_props) or node.doc_string:
            del node.metadata_props[:]
            node.doc_string = ""
            changed = True
    return changed


class OnnxRunner(Runner):
    """An ONNX Runtime ``InferenceSession`` (sequential execution, ``intra_op`` threads as given).

    ``spin=False`` turns off the worker threads' spin-waiting. Keep it on for one session (the runtime's
    default, lowest latency); turn it off when several sessions take turns on the same cores, as in an
    interleaved profiling sweep: idle sessions' spinning workers otherwise steal the cores from the one being
    timed (measured here on 2 cores with 10 sessions: p90 8.5 ms against a 0.5 ms median).
    """

    backend = "onnx"

    def __init__(self, path: Path, threads: int | None, device: str, spin: bool = True) -> None:
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
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        if threads:
            opts.intra_op_num_threads = int(threads)
        if not spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.device = device
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=wanted)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def infer(self, x: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([self.output_name], {self.input_name: as_input(x)})
        return np.asarray(out, dtype=np.float32)

    def time_once(self, x: np.ndarray) -> float:
        feeds = {self.input_name: x}
        t0 = time.perf_counter()
        self.session.run([self.output_name], feeds)  # returns after outputs are copied to the host
        return time.perf_counter() - t0

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]


class OnnxBackend(Backend):
    name = "onnx"
    package = "onnxruntime"
    extra = "onnx"
    precisions = ("fp32",)
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
    ) -> Artifact:
        self.check_precision(precision)
        import torch

        with torch.no_grad():
            out_shape = tuple(model.eval()(example).shape)
        with staging_dir(out_dir) as tmp:
            extras = export_onnx_file(model, example, tmp / self.filename, dynamic_batch)
        path = Path(out_dir) / self.filename
        return self.artifact((path,), precision, dynamic_batch, example, out_shape, extras)

    def load(
        self,
        path: str | Path,
        threads: int | None = None,
        device: str | None = None,
        precision: str | None = None,
        *,
        spin: bool = True,
    ) -> Runner:
        if importlib.util.find_spec("onnxruntime") is None:
            raise self.missing()
        path = Path(path)
        if not path.is_file():
            raise US3LError(f"ONNX model not found: {path}")
        return OnnxRunner(path, threads, (device or "cpu").lower(), spin=spin)


BACKEND = OnnxBackend()
