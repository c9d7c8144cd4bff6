"""TensorRT backend: a serialized engine (``model.engine``) built from the ONNX export.

Engines only run where they were built: same TensorRT version, same GPU architecture (compute capability).
So the engine is built

* here, with the TensorRT Python API, when ``tensorrt`` imports and a CUDA GPU is present, or
* on the target (a Jetson, a remote GPU box) with ``trtexec``: ``trtexec_build_command`` gives the argument
  list. ``us3l profile --backend tensorrt`` builds engines that way on the device (over SSH) to time them;
  ``us3l export`` does not reach remote devices, so for a shipped engine the user builds it on the target
  from the exported ONNX with that command.

INT8 engines are built from the width's explicit Q/DQ ONNX (``us3l.deploy.backends.onnx.export_onnx_int8`` with
symmetric activations, calibrated on the run's training images): the engine uses the model's own scales, no
TensorRT calibrator or calibration cache is involved, and the same Q/DQ file (kept beside the engine) builds the
engine on a remote device (``trtexec_build_command(..., int8=True)``).

The manifest records the TensorRT version and compute capability; ``check_engine_compat`` refuses an engine
from another version or architecture before TensorRT is asked to deserialize it. The runner follows the
TensorRT 10 API (named I/O tensors, ``set_tensor_address``, ``execute_async_v3``) with torch CUDA buffers.
It cannot be tested on a machine without an NVIDIA GPU; its tests skip there.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from us3l.deploy.backends.base import INPUT_NAME, Artifact, Backend, Runner, as_input, staging_dir, version_tuple
from us3l.deploy.backends.tensorrt_versions import trt_release
from us3l.errors import US3LError

NO_TENSORRT_HERE = (
    "the tensorrt backend needs TensorRT and an NVIDIA GPU on this machine ({why}): run this export on the "
    "NVIDIA machine with TensorRT installed (pip install 'us3l[tensorrt]'), or export ONNX here "
    "(--backend onnx) and build the engine on the target with trtexec (engines only run where they were "
    "built; us3l profile --backend tensorrt --device BOARD builds and times them there over SSH)"
)


def _shape_arg(name: str, shape: Sequence[int]) -> str:
    return f"{name}:{'x'.join(str(int(d)) for d in shape)}"


def trtexec_build_command(
    onnx_path: str | Path,
    engine_path: str | Path,
    fp16: bool = True,
    shapes: Mapping[str, Sequence[int]] | None = None,
    workspace_mb: int | None = None,
    min_shapes: Mapping[str, Sequence[int]] | None = None,
    max_shapes: Mapping[str, Sequence[int]] | None = None,
    trtexec: str = "trtexec",
    int8: bool = False,
    tensorrt_version: str | None = None,
) -> list[str]:
    """The ``trtexec`` argument list (never a shell string) that builds ``engine_path`` from ``onnx_path``.

    The precision flags are exactly those the Python-API build sets (``builder_flags``, mapped by
    ``TRTEXEC_FLAGS``), so a remote device builds the same engine from the same file: ``int8`` (``onnx_path`` is an
    explicitly quantized Q/DQ model; ``--int8`` lets TensorRT run its quantized layers in INT8 with the model's own
    scales, no calibration cache) wins over ``fp16`` (``--fp16``); neither: fp32 (no flag; TF32 is TensorRT's
    default both ways).

    ``shapes`` sets the input shape of a dynamic-shape ONNX (``--shapes``; trtexec refuses it for a static
    one); with ``min_shapes``/``max_shapes`` it is the optimisation
    shape of a dynamic-batch profile (``--minShapes/--optShapes/--maxShapes``). ``workspace_mb`` limits the
    builder's scratch memory (``--memPoolSize=workspace:<N>``: MiB, no unit suffix, which every release reads alike).

    ``tensorrt_version`` is the TensorRT of the ``trtexec`` that runs the command (None: TensorRT 10): 8.5 spells
    "build, do not time" ``--buildOnly``, 8.6 and 10.x ``--skipInference``
    (``us3l.deploy.backends.tensorrt_versions``); an unsupported version is refused in one line.
    """
    release = trt_release(tensorrt_version)
    cmd = [trtexec, f"--onnx={onnx_path}", f"--saveEngine={engine_path}", release.build_only_flag]
    precision = "int8" if int8 else "fp16" if fp16 else "fp32"
    cmd += [TRTEXEC_FLAGS[flag] for flag in builder_flags(precision)]
    if (min_shapes is None) != (max_shapes is None):
        raise ValueError("min_shapes and max_shapes go together")
    if min_shapes is not None and max_shapes is not None:
        if not shapes:
            raise ValueError("a dynamic profile needs shapes= as its optimisation shape")
        cmd.append("--minShapes=" + ",".join(_shape_arg(k, v) for k, v in min_shapes.items()))
        cmd.append("--optShapes=" + ",".join(_shape_arg(k, v) for k, v in shapes.items()))
        cmd.append("--maxShapes=" + ",".join(_shape_arg(k, v) for k, v in max_shapes.items()))
    elif shapes:
        cmd.append("--shapes=" + ",".join(_shape_arg(k, v) for k, v in shapes.items()))
    if workspace_mb is not None:
        if workspace_mb <= 0:
            raise ValueError(f"workspace_mb must be positive, got {workspace_mb}")
        cmd.append(f"--memPoolSize=workspace:{int(workspace_mb)}")  # MiB: no suffix, read alike by every release
    return cmd


def check_engine_compat(
    recorded: Mapping[str, Any], tensorrt_version: str | None, compute_capability: str | None
) -> None:
    """Refuse an engine built with another TensorRT version or for another GPU architecture.

    ``recorded`` is the manifest's ``tensorrt`` section (``version``, ``compute_capability``).
    """
    want_v, want_cc = recorded.get("version"), recorded.get("compute_capability")
    if tensorrt_version is None:
        raise US3LError(
            f"this engine needs TensorRT {want_v} on a GPU with compute capability {want_cc}; "
            "TensorRT is not installed here"
        )
    if want_v is not None and _release(str(want_v)) != _release(tensorrt_version):
        raise US3LError(
            f"engine was built with TensorRT {want_v}, installed is {tensorrt_version}: "
            "engines only run with the TensorRT version that built them; rebuild the engine on this machine"
        )
    if want_cc is not None and compute_capability is None:
        raise US3LError(
            f"this engine needs a GPU with compute capability {want_cc}; no CUDA GPU is visible here"
        )
    if want_cc is not None and str(want_cc) != str(compute_capability):
        raise US3LError(
            f"engine was built for GPU compute capability {want_cc}, this GPU is {compute_capability}: "
            "rebuild the engine on this machine"
        )


def _release(version: str) -> tuple[int, ...]:
    """A TensorRT version's major.minor.patch, missing parts as 0 (``"10.3"`` is ``10.3.0``; a build number such
    as the 4th part of ``10.3.0.26`` does not change the engine format)."""
    return (*version_tuple(version), 0, 0, 0)[:3]


def current_compute_capability() -> str | None:
    """``"8.7"`` for the current CUDA device, None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return f"{major}.{minor}"


#: The trtexec option that sets each ``tensorrt.BuilderFlag`` ``builder_flags`` uses (TensorRT 10 trtexec).
TRTEXEC_FLAGS = {"FP16": "--fp16", "INT8": "--int8"}


def builder_flags(precision: str) -> tuple[str, ...]:
    """Names of the ``tensorrt.BuilderFlag`` members set for ``precision`` (fp32: none; fp16: FP16; int8: INT8 --
    an explicitly quantized Q/DQ network, whose quantized layers run in INT8 with the model's scales)."""
    flags = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8",)}
    if precision not in flags:
        raise US3LError(f"TensorRT builds fp32, fp16 or int8 engines, not '{precision}'")
    return flags[precision]


def build_record(
    precision: str, example_shape: tuple[int, ...], dynamic_batch: bool, tensorrt_version: str | None = None
) -> dict[str, Any]:
    """What the manifest's ``tensorrt`` section records about an engine's build: ``builder_flags`` (the
    ``tensorrt.BuilderFlag`` names ``_build_engine`` set) and ``trtexec_command``, the ``trtexec`` argument list that
    builds the same engine from the artifact's ``model.onnx`` on a target (same flags; the dynamic-batch profile,
    no ``--shapes`` for a fixed-batch file, whose shape is in the file). Without a GPU the engine is opaque: these
    are what ``us3l.deploy.manifest_claims`` checks the claimed
    precision against (fp16 and fp32 engines come from the same ONNX)."""
    rest = tuple(example_shape[1:])
    batch = example_shape[0]
    profile: dict[str, Any] = {}
    if dynamic_batch:  # the optimisation profile _build_engine sets
        profile = {"shapes": {INPUT_NAME: example_shape}, "min_shapes": {INPUT_NAME: (1, *rest)},
                   "max_shapes": {INPUT_NAME: (max(batch, 64), *rest)}}
    # A fixed-batch model.onnx has a static input shape: trtexec refuses --shapes for it ("Static model does not
    # take explicit shapes since the shape of inference tensors will be determined by the model itself").
    cmd = trtexec_build_command("model.onnx", "model.engine", fp16=precision == "fp16", int8=precision == "int8",
                                tensorrt_version=tensorrt_version, **profile)
    return {"builder_flags": list(builder_flags(precision)), "trtexec_command": cmd}


def build_precision(record: Mapping[str, Any]) -> str | None:
    """The precision an engine was built at according to the manifest's ``tensorrt`` section (``builder_flags``,
    else the precision flags of ``trtexec_command``); ``None`` when it records neither (an older manifest).
    ``ValueError`` when the two disagree or name flags us3l does not set."""
    by_flags = {tuple(builder_flags(p)): p for p in ("fp32", "fp16", "int8")}
    found: list[str] = []
    flags = record.get("builder_flags")
    if flags is not None:
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags) or tuple(flags) not in by_flags:
            raise ValueError(f"tensorrt.builder_flags {flags!r:.60} is not a set of flags us3l builds with")
        found.append(by_flags[tuple(flags)])
    cmd = record.get("trtexec_command")
    if cmd is not None:
        if not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd) or \
                not any(a.startswith("--saveEngine=") for a in cmd):
            raise ValueError(f"tensorrt.trtexec_command {cmd!r:.60} is not a trtexec build command (argument list)")
        named = {v: k for k, v in TRTEXEC_FLAGS.items()}
        # every precision option trtexec knows, so that an added --best or --fp8 is not read as an fp32 build
        given = tuple(named.get(a, a) for a in cmd_flags(cmd))
        if given not in by_flags:
            raise ValueError(f"tensorrt.trtexec_command has the precision options {' '.join(cmd_flags(cmd))!r}, "
                             "which no us3l build uses")
        found.append(by_flags[given])
    if len(set(found)) > 1:
        raise ValueError(f"tensorrt.builder_flags says {found[0]}, tensorrt.trtexec_command {found[1]}")
    return found[0] if found else None


#: trtexec's options that choose the precisions an engine may use (TensorRT 10).
TRTEXEC_PRECISION_OPTIONS = ("--fp16", "--bf16", "--int8", "--fp8", "--int4", "--best", "--stronglyTyped")


def cmd_flags(cmd: Sequence[str]) -> list[str]:
    """The precision options of a trtexec argument list."""
    return [a for a in cmd if a.split("=")[0] in TRTEXEC_PRECISION_OPTIONS]


def check_fast_int8(builder: Any, compute_capability: str | None) -> None:
    """Refuse INT8 on a GPU without fast INT8 (TensorRT's ``platform_has_fast_int8``; compute capability < 6.1)."""
    fast = getattr(builder, "platform_has_fast_int8", True)
    if not fast:
        raise US3LError(
            f"this GPU (compute capability {compute_capability}) has no fast INT8 in TensorRT: export fp16 instead"
        )


def _build_engine(
    onnx_path: Path, fp16: bool, example_shape: tuple[int, ...], dynamic_batch: bool, precision: str | None = None
) -> bytes:
    import tensorrt as trt

    precision = precision or ("fp16" if fp16 else "fp32")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    if precision == "int8":
        check_fast_int8(builder, current_compute_capability())
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise US3LError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    for flag in builder_flags(precision):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if dynamic_batch:
        profile = builder.create_optimization_profile()
        rest = tuple(example_shape[1:])
        batch = example_shape[0]
        profile.set_shape(INPUT_NAME, (1, *rest), (batch, *rest), (max(batch, 64), *rest))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise US3LError("TensorRT failed to build the engine (see the TensorRT log above)")
    return bytes(serialized)


class TensorRtRunner(Runner):
    """A deserialized engine with one execution context, torch CUDA buffers and a dedicated CUDA stream."""

    backend = "tensorrt"

    def __init__(self, path: Path, engine: bytes | None = None) -> None:
        import tensorrt as trt
        import torch

        self._torch = torch
        self.device = "cuda"
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes() if engine is None else engine)
        if self.engine is None:
            raise US3LError(f"TensorRT could not deserialize {path} (built by another version or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == mode)
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) != mode)
        self.stream = torch.cuda.Stream()
        self._shape: tuple[int, ...] | None = None

    def _bind(self, x: np.ndarray) -> Any:
        torch = self._torch
        if self._shape != x.shape:
            self.context.set_input_shape(self.input_name, tuple(x.shape))
            self._in = torch.empty(tuple(x.shape), dtype=torch.float32, device="cuda")
            out_shape = tuple(self.context.get_tensor_shape(self.output_name))
            self._out = torch.empty(out_shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(self.input_name, self._in.data_ptr())
            self.context.set_tensor_address(self.output_name, self._out.data_ptr())
            self._shape = tuple(x.shape)
        return self._in

    def _run(self, x: np.ndarray) -> None:
        buf = self._bind(x)
        with self._torch.cuda.stream(self.stream):
            buf.copy_(self._torch.from_numpy(x), non_blocking=False)
            self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()

    def infer(self, x: np.ndarray) -> np.ndarray:
        self._run(as_input(x))
        return self._out.float().cpu().numpy().copy()

    def time_once(self, x: np.ndarray) -> float:
        """Host-to-device copy, execution and stream synchronisation (the output stays on the GPU)."""
        t0 = time.perf_counter()
        self._run(x)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.context = None
        self.engine = None


class TensorRtBackend(Backend):
    name = "tensorrt"
    package = "tensorrt"
    extra = "tensorrt"
    precisions = ("fp32", "fp16", "int8")
    filename = "model.engine"

    def runtime_version(self) -> str | None:
        if importlib.util.find_spec("tensorrt") is None:
            return None
        try:
            import tensorrt
        except Exception:  # a broken install (missing libnvinfer) counts as absent
            return None
        return str(tensorrt.__version__)

    def available(self) -> bool:
        return self.runtime_version() is not None and current_compute_capability() is not None

    def require_runtime(self) -> None:
        """Nothing up front: ``export`` and ``load`` say what is missing (the package or a GPU) once the precision
        and its inputs are checked (``_require_here``)."""

    def _require_here(self) -> None:
        if self.runtime_version() is None:
            raise US3LError(NO_TENSORRT_HERE.format(why="the tensorrt package is not installed"))
        if current_compute_capability() is None:
            raise US3LError(NO_TENSORRT_HERE.format(why="no CUDA GPU is visible"))
        installed = str(self.runtime_version())
        if version_tuple(installed)[:1] < (10,):
            # TensorRT 8's create_network(0) is an implicit-batch network, which its ONNX parser refuses (10.x: explicit
            # batch is the only mode). The runner's named-tensor calls (set_tensor_address, execute_async_v3) exist
            # since 8.5, but this build and runner are written and documented against the 10.x API only
            raise US3LError(
                f"the tensorrt backend builds and runs engines with the TensorRT 10 Python API, installed is "
                f"TensorRT {installed}: export ONNX here (--backend onnx --device BOARD) and build the engine with "
                "this machine's trtexec (us3l profile --backend tensorrt builds and times it there)"
            )

    def check_runtime_compat(self, recorded: str | None) -> None:
        """Exact TensorRT version (the GPU architecture is checked by ``check_engine_compat``)."""
        check_engine_compat({"version": recorded}, self.runtime_version(), current_compute_capability())

    def export(
        self,
        model: Any,
        example: Any,
        out_dir: str | Path,
        precision: str = "fp16",
        dynamic_batch: bool = False,
        calibration: Any = None,
    ) -> Artifact:
        self.check_precision(precision)
        self._require_here()
        self.check_int8_inputs(precision, calibration, example)
        import torch

        from us3l.deploy.backends.onnx import export_onnx, export_onnx_int8

        with staging_dir(out_dir) as tmp:
            if precision == "int8":  # explicit quantization: TensorRT needs zero-point 0, so symmetric activations
                done = export_onnx_int8(
                    model, example, tmp / "model.onnx", calibration, dynamic_batch, symmetric_activations=True
                )
            else:
                done = export_onnx(model, example, tmp / "model.onnx", dynamic_batch)
            extras, out_shape = dict(done.facts), done.output_shape
            fp16 = precision == "fp16"
            engine = _build_engine(tmp / "model.onnx", fp16, tuple(example.shape), dynamic_batch, precision)
            (tmp / self.filename).write_bytes(engine)
        out = Path(out_dir)
        extras["tensorrt"] = {
            "version": self.runtime_version(),
            "compute_capability": current_compute_capability(),
            "gpu_name": torch.cuda.get_device_name(),
            "built_with": "python-api",
            **build_record(precision, tuple(example.shape), dynamic_batch, self.runtime_version()),
        }
        files = (out / self.filename, out / "model.onnx")
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
        self._require_here()
        path = Path(path)
        engine = None if data is None else data.get(path.name)
        if engine is None and not path.is_file():
            raise US3LError(f"TensorRT engine not found: {path}")
        return TensorRtRunner(path, engine)


def which_trtexec() -> str | None:
    """Path of a local ``trtexec`` (installed with TensorRT under /usr/src/tensorrt/bin on Jetson)."""
    return shutil.which("trtexec") or (
        "/usr/src/tensorrt/bin/trtexec" if Path("/usr/src/tensorrt/bin/trtexec").is_file() else None
    )


BACKEND = TensorRtBackend()
