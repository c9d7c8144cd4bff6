"""The one interface every deploy backend implements: ``export() -> Artifact`` and ``load() -> Runner``.

A backend module (``deploy/backends/<name>.py``) defines one ``Backend`` subclass and keeps its heavy imports
(onnx, onnxruntime, openvino, tensorrt) inside functions, so that importing it is cheap and a missing package
is reported only when that backend is used.
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from us3l.errors import US3LError
from us3l.io import signals_held, temp_dir

#: Tensor names of every exported artifact (the manifest's input/output spec repeats them).
INPUT_NAME = "input"
OUTPUT_NAME = "embedding"

PRECISIONS = ("fp32", "fp16", "int8")


def precision_flag(value: str) -> str:
    """One ``--precision`` value (profile: each entry of its list), read in any case as ``--backend`` is (FP16 is
    fp16), else a one-line ``US3LError``; '' is not "not given"."""
    p = value.strip().lower()
    if p not in PRECISIONS:
        raise US3LError(f"--precision must be {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]}, got {p!r}")
    return p


@dataclass(frozen=True)
class Artifact:
    """What a backend wrote: the primary file (``path``) and every file belonging to it.

    ``extras`` carries backend facts the manifest records (ONNX opset and exporter, TensorRT version and GPU
    compute capability, ...).
    """

    backend: str
    path: Path
    files: tuple[Path, ...]
    precision: str
    dynamic_batch: bool
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    runtime_version: str | None
    extras: dict[str, Any] = field(default_factory=dict)


class Runner(ABC):
    """A loaded artifact, ready to run. Use as a context manager; ``close()`` releases the session.

    ``infer`` takes and returns float32 NCHW / (B, D) numpy arrays. ``time_once`` returns the wall time in
    seconds of one inference, synchronised the way the runtime itself synchronises (the call returns only
    when the output is on the host). Latency statistics are computed elsewhere (``profiler/stats.py``).
    """

    backend: str = ""
    device: str = "cpu"
    #: The manifest document when loaded through ``us3l.deploy.load`` (None when loaded from a bare file).
    manifest: dict[str, Any] | None = None

    @abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run one batch and return the embedding as a new float32 array."""

    @abstractmethod
    def time_once(self, x: np.ndarray) -> float:
        """Seconds taken by one synchronous inference of ``x`` (input already prepared).

        Only the runtime's inference is timed: an implementation may bind ``x`` (and an output buffer) on the
        first call with that array and reuse the binding while the same array comes back, as a C++ deployment
        would; ``infer`` must stay correct around it and never write into ``x``."""

    def close(self) -> None:  # noqa: B027 - optional hook, most runtimes free themselves
        """Release the runtime objects (idempotent)."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Backend(ABC):
    """A deploy target: exports a static ``nn.Module`` and loads the result into a ``Runner``."""

    #: Registered lowercase name (CLI, manifests, file names).
    name: str = ""
    #: The pip package the runtime comes from and the us3l extra that installs it.
    package: str = ""
    extra: str = ""
    #: Precisions this backend can export.
    precisions: tuple[str, ...] = ("fp32",)
    #: File name of the primary artifact inside an export directory.
    filename: str = ""

    @abstractmethod
    def available(self) -> bool:
        """True when the runtime (and any hardware it needs) is present; never raises."""

    @abstractmethod
    def runtime_version(self) -> str | None:
        """Version of the installed runtime, or None when it is not installed."""

    @abstractmethod
    def export(
        self,
        model: Any,
        example: Any,
        out_dir: str | Path,
        precision: str = "fp32",
        dynamic_batch: bool = False,
        calibration: Any = None,
    ) -> Artifact:
        """Export the static module ``model`` traced with ``example`` (N, C, H, W) into ``out_dir``.

        ``calibration``: a ``us3l.deploy.quantize.CalibrationSet``, required for ``precision="int8"``."""

    @abstractmethod
    def load(
        self,
        path: str | Path,
        threads: int | None = None,
        device: str | None = None,
        precision: str | None = None,
        *,
        data: Mapping[str, bytes] | None = None,
    ) -> Runner:
        """Load an exported artifact; ``device`` is the runtime's device name (``cpu`` by default). ``data``: the
        artifact's files as bytes (file name -> bytes, ``us3l.deploy.manifest.read_artifact_files``), checked against
        their hashes: the runtime is built from these bytes, never from a second read of the files."""

    def artifact(
        self,
        files: tuple[Path, ...],
        precision: str,
        dynamic_batch: bool,
        example: Any,
        output_shape: tuple[int, ...],
        extras: dict[str, Any],
    ) -> Artifact:
        """The ``Artifact`` this backend wrote: ``files[0]`` is the primary file."""
        return Artifact(
            backend=self.name,
            path=files[0],
            files=files,
            precision=precision,
            dynamic_batch=dynamic_batch,
            input_shape=tuple(example.shape),
            output_shape=output_shape,
            runtime_version=self.runtime_version(),
            extras=extras,
        )

    def check_runtime_compat(self, recorded: str | None) -> None:
        """Refuse (``US3LError``) when the installed runtime cannot be trusted to run an artifact written
        with runtime version ``recorded``. Default: same major version, and not older than the writer."""
        current = self.runtime_version()
        if current is None:
            raise self.missing()
        if recorded is None:
            return
        cur, rec = version_tuple(current), version_tuple(recorded)
        if cur[:1] != rec[:1] or cur[:2] < rec[:2]:
            raise US3LError(
                f"artifact was exported with {self.package} {recorded}, installed is {current}: "
                f"install {self.package}=={'.'.join(map(str, rec[:2]))}.* or re-export"
            )

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise US3LError(
                f"backend '{self.name}' exports precision {'/'.join(self.precisions)}, not '{precision}'"
            )

    def check_int8_inputs(self, precision: str, calibration: Any, example: Any) -> None:
        """Refuse an INT8 export without a calibration set or with one of another input size / too small."""
        if precision != "int8":
            return
        if calibration is None:
            raise US3LError(
                f"INT8 export to '{self.name}' needs calibration images (a us3l.deploy.quantize.CalibrationSet; "
                "us3l export takes them from the run's training data)"
            )
        from us3l.deploy.quantize import check_calibration

        check_calibration(calibration, tuple(example.shape))

    def require_runtime(self) -> None:
        """Raise ``missing()`` when the runtime is not installed: called before any file or folder is made."""
        if not self.available():
            raise self.missing()

    def missing(self) -> US3LError:
        from us3l.errors import MissingDependencyError

        return MissingDependencyError(self.package, self.extra, f"the '{self.name}' deploy backend")


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.32.0"`` -> ``(1, 32, 0)``; ``"2026.4.1-22982-..."`` -> ``(2026, 4, 1)``; stops at the first
    non-numeric part."""
    parts: list[int] = []
    for piece in version.split("-")[0].split("+")[0].split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def as_input(x: Any, expected: Sequence[int | None] | None = None) -> np.ndarray:
    """A C-contiguous float32 array from a numpy array or a torch tensor; with ``expected`` (the artifact's input
    shape, None for a dynamic axis) one line naming both shapes when it does not fit, instead of the runtime's
    multi-line error."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    data = np.ascontiguousarray(x, dtype=np.float32)
    if expected is not None and (data.ndim != len(expected)
                                 or any(e is not None and e != d for e, d in zip(expected, data.shape, strict=False))):
        want = "x".join("N" if e is None else str(e) for e in expected)
        raise US3LError(f"input of shape {'x'.join(map(str, data.shape))} does not fit this artifact's input {want} "
                        "(NCHW, float32)")
    return data


def fixed_dims(dims: Sequence[Any]) -> tuple[int | None, ...]:
    """A runtime's input shape with every dynamic axis (a name, -1, ``?``) as None."""
    out: list[int | None] = []
    for d in dims:
        if hasattr(d, "is_static"):  # an OpenVINO Dimension
            v = d.get_length() if d.is_static else -1
            out.append(v if v > 0 else None)
            continue
        try:
            v = int(d)
        except (TypeError, ValueError):  # onnxruntime: "batch"
            v = -1
        out.append(v if v > 0 else None)
    return tuple(out)


@contextmanager
def staging_dir(out_dir: str | Path) -> Iterator[Path]:
    """A temporary directory inside ``out_dir`` whose files are moved into ``out_dir`` on success.

    Each file lands by ``os.replace`` (atomic per file), all of them with Ctrl-C and SIGTERM held back (raised again
    once the last has landed): an interrupt between two renames left an OpenVINO IR's new ``model.bin`` beside the
    old ``model.xml`` of a previous export into ``out_dir``. On error the staging directory is removed and
    ``out_dir`` keeps no partial file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(out, prefix=".staging-")  # the umask's usual mode: files moved out keep theirs
    try:
        yield tmp
        with signals_held():
            for item in sorted(tmp.iterdir()):
                os.replace(item, out / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
