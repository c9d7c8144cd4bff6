"""Post-training INT8 of one materialized width: calibration images, and the quantizer of each backend.

* **Calibration set** (``calibration_set``): a fixed, seeded, class-stratified subset of the run's own
  *training* images (``us3l.train.knn.stratified_indices``, the rule of the kNN bank), passed through the
  evaluation transform with the checkpoint's normalisation -- the images the deployed model sees, never random
  tensors. Its size, seed, data spec, per-class counts and a sha256 of the exact float32 tensor go into the
  manifest (``CalibrationSet.describe``). Training images that are *not* in it (seeded, stratified) are kept
  aside as the verification batch of an INT8 artifact (``holdout``).
* **ONNX** (``quantize_onnx_qdq``): ``onnxruntime.quantization.quantize_static`` in ``QuantFormat.QDQ``:
  explicit QuantizeLinear/DequantizeLinear pairs, int8 weights symmetric per output channel, uint8 activations
  (asymmetric) per tensor, MinMax calibration. The file is plain ONNX that any onnxruntime runs. uint8
  activations ("U8S8") because onnxruntime's CPU provider then fuses *every* Conv and Add into
  QLinearConv/QLinearAdd; with int8 activations ("S8S8") it fused 8 of 20 convolutions of a cifar_resnet18 and
  kept the rest in FP32 between Q/DQ pairs (slower than FP32 here). The weights of a uint8-activation model
  span 7 bits ([-64, 64], ``reduce_range``): on x86 CPUs without VNNI onnxruntime multiplies U8S8 with
  VPMADDUBSW, whose 16-bit sums of two products saturate with 8-bit weights, and an artifact runs on CPUs other
  than the one that exported it. Measured on one 1-epoch cifar_resnet18 (base 8, width 0.25) on an AVX2 CPU
  without VNNI, against FP32 on 64 held-out images: 8-bit weights mean cosine 0.992 and top-5 neighbour
  agreement 0.72 (fails the int8 tolerance), 7-bit 0.9989 and 0.88, U8U8 0.9994 and 0.91 at 1.12x the 7-bit
  latency (docs/deploy.md, "INT8 on CPUs without VNNI").
  TensorRT needs zero-point-0 (symmetric int8) activations: ``symmetric_activations=True``.
* **OpenVINO** (``quantize_openvino``): ``nncf.quantize`` (NNCF post-training quantization, ``PERFORMANCE``
  preset: symmetric int8 weights per output channel and activations per tensor) of the IR converted from the
  width's FP32 ONNX graph, with two of NNCF's defaults changed, each measured on the same graphs: activation
  ranges are the global min/max over the calibration set (``RangeEstimatorParametersSet.MINMAX``, as
  onnxruntime's MinMax) instead of the mean of per-batch min/max, which clips the tails, and fast bias
  correction is off. With NNCF's defaults a 1-epoch cifar_resnet18 (base 8, width 0.25) kept mean cosine 0.986
  and top-5 neighbour agreement 0.60 to FP32 (fails the int8 tolerance); with both changes 0.9998 and 0.93,
  as onnxruntime's Q/DQ model of the same graph (0.9997, 0.89).

Quantizers are imported lazily; a missing one raises ``MissingDependencyError`` naming the extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import logging
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from us3l.deploy.backends.intel_telemetry import telemetry_off
from us3l.errors import US3LError

#: Calibration images by default (``--calib-images``): NNCF's default ``subset_size`` and ORT's examples use
#: a few hundred; MinMax ranges stop moving well before that on the data sets here.
DEFAULT_CALIB_IMAGES = 300
#: Fewer images than this give activation ranges that depend on which images were drawn: refused.
MIN_CALIB_IMAGES = 32
#: Seed of the stratified calibration subset (and of the held-out verification images drawn after it).
CALIB_SEED = 0
#: Held-out training images (not in the calibration set) that verify an INT8 artifact against PyTorch FP32.
VERIFY_IMAGES = 64
#: Images per calibration batch fed to a quantizer when the graph's batch axis is dynamic.
CALIB_BATCH = 32

SELECTION_RULE = (
    "seeded class-stratified subset of the training split (us3l.train.knn.stratified_indices: each class in "
    "proportion, largest remainder), evaluation transform, checkpoint normalisation"
)


@dataclass(frozen=True)
class CalibrationSet:
    """Normalised calibration images ``inputs`` (N, 3, S, S) float32 and how they were chosen.

    ``holdout``: training images outside the calibration subset (seeded, stratified), the verification batch
    of an INT8 export; ``None`` when every training image is used for calibration (or for a provided array).
    """

    inputs: np.ndarray
    source: str
    seed: int | None = None
    split: str | None = None
    indices: tuple[int, ...] = ()
    per_class: Mapping[str, int] = field(default_factory=dict)
    transform: str | None = None
    holdout: np.ndarray | None = None
    holdout_note: str | None = None
    note: str | None = None  # why the set is smaller than asked (``--calib-images`` above what the split allows)

    def __post_init__(self) -> None:
        x = np.ascontiguousarray(self.inputs, dtype=np.float32)
        object.__setattr__(self, "inputs", x)

    @property
    def size(self) -> int:
        return int(len(self.inputs))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.inputs.shape[1:])

    @property
    def sha256(self) -> str:
        """sha256 of the exact calibration tensor: its shape, dtype and float32 bytes (C order)."""
        return array_sha256(self.inputs)

    def describe(self) -> dict[str, Any]:
        """The manifest's ``quantization.calibration`` section."""
        doc: dict[str, Any] = {
            "size": self.size,
            "sha256": self.sha256,
            "sha256_of": "float32 (N,C,H,W) tensor bytes, C order, after the evaluation transform",
            "data": self.source,
            "split": self.split,
            "seed": self.seed,
            "selection": SELECTION_RULE if self.split else "provided array",
            "per_class": dict(self.per_class),
            "transform": self.transform,
        }
        if self.note:
            doc["note"] = self.note
        if self.indices:
            doc["indices_sha256"] = hashlib.sha256(np.asarray(self.indices, dtype=np.int64).tobytes()).hexdigest()
        return doc

    def batches(self, batch: int | None) -> list[np.ndarray]:
        """The calibration images in batches a graph accepts: ``batch`` each for a fixed-batch graph (the last
        partial batch dropped: at most ``batch - 1`` images unused), ``CALIB_BATCH`` each for a dynamic one."""
        return split_batches(self.inputs, batch)


def array_sha256(x: np.ndarray) -> str:
    a = np.ascontiguousarray(x, dtype=np.float32)
    h = hashlib.sha256(f"{a.dtype.str}{list(a.shape)}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def split_batches(x: np.ndarray, batch: int | None) -> list[np.ndarray]:
    step = CALIB_BATCH if batch is None else int(batch)
    usable = len(x) if batch is None else (len(x) // step) * step
    if usable == 0:  # a fixed batch larger than the calibration set: the quantizer would see nothing
        raise US3LError(f"the artifact's fixed batch of {step} is larger than its {len(x)} calibration images: "
                        f"give --calib-images {step} or more, or a smaller --batch-size")
    return [x[i : min(i + step, usable)] for i in range(0, usable, step)]


def check_calibration(calib: CalibrationSet, input_shape: Sequence[int], min_images: int = MIN_CALIB_IMAGES) -> None:
    """Refuse (one line) a calibration set of another image size, with too few images or non-finite values."""
    want = tuple(int(d) for d in input_shape[1:])
    x = calib.inputs
    if x.ndim != 4:
        raise US3LError(f"calibration images must be an (N, C, H, W) array, got shape {list(x.shape)}")
    if calib.input_shape != want:
        got = "x".join(map(str, calib.input_shape))
        raise US3LError(
            f"calibration images are {got} but the model takes {'x'.join(map(str, want))}: calibrate with "
            "images of the model's input size (its evaluation transform)"
        )
    if calib.size < min_images:
        raise US3LError(
            f"calibration set too small: {calib.size} image(s) from {calib.source}, need at least {min_images} "
            "for stable INT8 activation ranges (--calib-images)"
        )
    if not np.all(np.isfinite(x)):
        raise US3LError(f"calibration images from {calib.source} contain NaN or infinite values")
    distinct = len(np.unique(x.reshape(len(x), -1), axis=0))
    if distinct * 2 < len(x):  # e.g. blank images: ranges fitted to one input, and a verification that cannot fail
        raise US3LError(
            f"calibration images from {calib.source} are mostly identical ({distinct} distinct of {len(x)}): INT8 "
            "activation ranges and their verification need varied images (calibrate on the run's own data)"
        )


def check_calib_images(size: object) -> None:
    """Refuse (one line) a ``--calib-images`` value below ``MIN_CALIB_IMAGES`` or not an integer: ``us3l export``
    and ``us3l profile`` call it before any work, ``calibration_set`` before it reads the data."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise US3LError(f"--calib-images must be an integer >= {MIN_CALIB_IMAGES} (stable INT8 activation ranges), "
                        f"got {size!r}")
    if size < MIN_CALIB_IMAGES:
        raise US3LError(f"--calib-images must be >= {MIN_CALIB_IMAGES} (stable INT8 activation ranges), got {size}")


def calib_flags_given(calib_images: int, calib_data: str | None) -> list[str]:
    """The INT8 calibration flags a command was given (``--calib-images`` other than its default, ``--calib-data``),
    for the commands that refuse them where nothing is quantized."""
    return [flag for flag, given in (("--calib-images", calib_images != DEFAULT_CALIB_IMAGES),
                                     ("--calib-data", calib_data is not None)) if given]


def calibration_set(
    data: str,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    size: int = DEFAULT_CALIB_IMAGES,
    seed: int = CALIB_SEED,
    verify_images: int = VERIFY_IMAGES,
    trained: Any = None,
) -> CalibrationSet:
    """``size`` training images of the data spec ``data`` (seeded, stratified), evaluation-transformed.

    The training split is what the run learned from and what BN was calibrated on; the held-out verification
    images (``verify_images``) are drawn (same rule, seed ``seed + 1``) from the training images left over.
    ``size`` is capped so that ``VERIFY_IMAGES`` training images stay out of the calibration set (``capped_size``;
    the set's ``note`` says so). ``trained``: the checkpoint's ``data`` record (checkpoint.json), against which the
    run's own automatically split folder is checked (``us3l.train.data_identity.load_checked_train_split``).
    """
    import torch

    from us3l.data.folder import eval_transform_for
    from us3l.train.data_identity import load_checked_train_split
    from us3l.train.knn import dataset_labels, stratified_indices, subset_dataset

    check_calib_images(size)
    ds = load_checked_train_split(data, int(input_size), trained)
    labels = dataset_labels(ds)
    if len(ds) < MIN_CALIB_IMAGES:
        raise US3LError(
            f"calibration set too small: the training split of {data} has {len(ds)} image(s), need at least "
            f"{MIN_CALIB_IMAGES}"
        )
    size, cap_note = capped_size(size, len(ds), data)
    transform = eval_transform_for(ds, int(input_size), tuple(mean), tuple(std))
    idx = stratified_indices(labels, size, seed)
    calib = _transformed(subset_dataset(ds, idx), transform)
    classes = list(getattr(ds, "classes", []) or [])
    chosen = labels[idx]
    per_class = {
        (classes[c] if c < len(classes) else str(c)): int((chosen == c).sum()) for c in torch.unique(chosen).tolist()
    }
    rest = torch.from_numpy(np.setdiff1d(np.arange(len(ds)), idx.numpy()))
    holdout, note = None, "no training image left outside the calibration set"
    if len(rest) > 0 and verify_images > 0:
        pick = rest[stratified_indices(labels[rest], verify_images, seed + 1)]
        holdout = _transformed(subset_dataset(ds, pick), transform)
        note = (
            f"{len(holdout)} held-out training images (not in the calibration set; seeded stratified, seed "
            f"{seed + 1}), evaluation transform"
        )
    return CalibrationSet(
        inputs=calib,
        source=data,
        seed=seed,
        split="train",
        indices=tuple(int(i) for i in idx.tolist()),
        per_class=per_class,
        transform=repr(transform),
        holdout=holdout,
        holdout_note=note,
        note=cap_note,
    )


def capped_size(size: int, available: int, data: str) -> tuple[int, str | None]:
    """(calibration images to take, a note when that is fewer than ``size``): at most the ``available`` training
    images less ``VERIFY_IMAGES`` held out to verify the artifact (all of them where the split is too small for
    both; the artifact is then verified on synthetic images). The cap does not depend on the batch size, so an
    export and ``us3l profile`` of the same request calibrate on the same images."""
    keep = available - VERIFY_IMAGES
    cap = keep if keep >= MIN_CALIB_IMAGES else available
    if size <= cap:
        return size, None
    why = (
        f"{VERIFY_IMAGES} are held out to verify the INT8 artifact" if cap == keep
        else "none is left to verify the INT8 artifact, which is verified on synthetic images instead"
    )
    return cap, f"--calib-images {size} capped to {cap}: the training split of {data} has {available} images, {why}"


def _transformed(ds: Any, transform: Any, batch: int = 256) -> np.ndarray:
    from us3l.data import iterate_batches

    out = [transform(images).float().numpy() for images, _ in iterate_batches(ds, batch)]
    return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


# ------------------------------------------------------------------------------------------------ ONNX (QDQ)


def quantizer_missing(package: str, extra: str, what: str) -> US3LError:
    from us3l.errors import MissingDependencyError

    return MissingDependencyError(package, extra, what)


@contextlib.contextmanager
def _quiet(logger_names: Sequence[str] = ()) -> Iterator[None]:
    """Keep quantizers' progress bars and advice off stdout (results go there) and their INFO lines quiet."""
    root = logging.getLogger()
    saved = [(lg, lg.level) for lg in (root, *(logging.getLogger(n) for n in logger_names))]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


class _Reader:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over pre-split batches."""

    def __init__(self, input_name: str, batches: list[np.ndarray]) -> None:
        self._it = iter([{input_name: b} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # not needed by MinMax; present for the interface
        pass


def quantize_onnx_qdq(
    fp32_path: str | Path,
    out_path: str | Path,
    calib: CalibrationSet,
    batch: int | None,
    symmetric_activations: bool = False,
    input_name: str = "input",
) -> dict[str, Any]:
    """Write the Q/DQ INT8 model of the FP32 ONNX file ``fp32_path`` to ``out_path``; return the manifest facts.

    ``batch``: the graph's fixed batch size (``None`` when dynamic). Activations are uint8 with a zero point
    (onnxruntime CPU); ``symmetric_activations``: int8 with zero-point 0, as TensorRT requires.
    """
    if importlib.util.find_spec("onnxruntime") is None:
        raise quantizer_missing("onnxruntime", "onnx", "INT8 quantization (onnxruntime.quantization)")
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reader = _Reader(input_name, calib.batches(batch))
    act_type = QuantType.QInt8 if symmetric_activations else QuantType.QUInt8
    reduce_range = not symmetric_activations  # U8S8 on CPUs: 7-bit weights (module docstring); TensorRT: 8-bit
    with _quiet():
        quantize_static(
            str(fp32_path),
            str(out_path),
            reader,  # type: ignore[arg-type]
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=act_type,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            reduce_range=reduce_range,
            extra_options={"ActivationSymmetric": bool(symmetric_activations), "WeightSymmetric": True},
        )
    data = Path(out_path).read_bytes()
    onnx.checker.check_model(data, full_check=True)
    summary = qdq_summary(onnx.load_model_from_string(data))
    return {
        "quantizer": "onnxruntime.quantization.quantize_static",
        "quantizer_version": str(onnxruntime.__version__),
        "format": "QDQ (explicit QuantizeLinear/DequantizeLinear, plain ONNX)",
        "calibration_method": "MinMax",
        "weights": {"dtype": "int8", "symmetric": True, "granularity": "per-channel (output channel)",
                    "range": "7-bit [-64, 64]" if reduce_range else "8-bit [-127, 127]"},
        "activations": {
            "dtype": "int8" if symmetric_activations else "uint8",
            "symmetric": bool(symmetric_activations),
            "granularity": "per-tensor",
        },
        "qdq": summary,
    }


def qdq_summary(model: Any) -> dict[str, int]:
    """Counts in a Q/DQ ONNX model: QuantizeLinear / DequantizeLinear nodes, and weight DequantizeLinear nodes
    with per-channel (1-D, more than one element) scales."""
    inits = {t.name: t for t in model.graph.initializer}
    q = sum(n.op_type == "QuantizeLinear" for n in model.graph.node)
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    per_channel = 0
    for n in dq:
        if n.input[0] in inits and n.input[1] in inits:
            dims = list(inits[n.input[1]].dims)
            if len(dims) == 1 and dims[0] > 1:
                per_channel += 1
    return {"quantize_linear": int(q), "dequantize_linear": len(dq), "per_channel_weights": int(per_channel)}


# ----------------------------------------------------------------------------------------------- OpenVINO


def import_nncf() -> Any:
    """``nncf``, imported with its stdout log handler pointed at stderr (its INFO lines never reach stdout)."""
    if importlib.util.find_spec("nncf") is None:
        raise quantizer_missing("nncf", "openvino", "INT8 quantization of OpenVINO models (NNCF)")
    with contextlib.redirect_stdout(io.StringIO()), telemetry_off():
        import nncf
    lg = logging.getLogger("nncf")
    for h in lg.handlers:
        if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.__stdout__, sys.stdout):
            h.setStream(sys.stderr)
    lg.setLevel(logging.WARNING)
    return nncf


def quantize_openvino(ov_model: Any, calib: CalibrationSet, batch: int | None) -> tuple[Any, dict[str, Any]]:
    """(the NNCF-quantized OpenVINO model, manifest facts) of ``ov_model`` calibrated on ``calib``."""
    nncf = import_nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    items = calib.batches(batch)
    advanced = AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    with _quiet(("nncf",)), telemetry_off():
        quantized = nncf.quantize(
            ov_model,
            nncf.Dataset(items),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=len(items),
            fast_bias_correction=False,
            advanced_parameters=advanced,
        )
    return quantized, {
        "quantizer": "nncf.quantize (post-training quantization, OpenVINO backend)",
        "quantizer_version": str(nncf.__version__),
        "format": "OpenVINO IR with FakeQuantize (int8) nodes",
        "calibration_method": "global min/max activation ranges (RangeEstimatorParametersSet.MINMAX), preset "
        "PERFORMANCE, no bias correction",
        "weights": {"dtype": "int8", "symmetric": True, "granularity": "per-channel (output channel)"},
        "activations": {"dtype": "int8", "symmetric": True, "granularity": "per-tensor"},
        "fake_quantize_nodes": sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops()),
    }
