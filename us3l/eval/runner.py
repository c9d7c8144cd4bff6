"""Per-width evaluation of a checkpoint: calibrate missing widths, then kNN / linear probe / costs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from us3l.errors import US3LError
from us3l.eval.accuracy import accuracy_doc
from us3l.eval.calibrate import (
    CalibrationSettings,
    calibrate_widths,
    calibration_batches,
    missing_widths,
    read_bn_stats_settings,
    require_calibrated,
    save_bn_stats,
)
from us3l.eval.features import embedding_std, extract_features
from us3l.eval.linear import LinearProbeSettings, train_linear_probe, train_linear_probe_augmented
from us3l.slim import canonical_width

DEFAULT_WIDTHS = (1.0, 0.75, 0.5, 0.25)
PROTOCOLS = ("knn", "linear", "both")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class KnnSettings:
    """Weighted kNN on L2-normalised features (k=200, T=0.1: the InstDisc/MoCo monitor protocol)."""

    k: int = 200
    temperature: float = 0.1
    max_train: int | None = None  # None: the whole train split is the feature bank

    def __post_init__(self) -> None:
        if self.k < 1:
            raise US3LError(f"kNN k must be >= 1, got {self.k}")
        if not self.temperature > 0:
            raise US3LError(f"kNN temperature must be > 0, got {self.temperature}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvalSettings:
    """Everything ``evaluate_checkpoint`` needs besides the checkpoint and the data."""

    protocol: str = "knn"
    knn: KnnSettings = field(default_factory=KnnSettings)
    linear: LinearProbeSettings = field(default_factory=LinearProbeSettings)
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    recalibrate: bool = False  # re-estimate widths that already have statistics
    save_bn_stats: bool = True  # write newly calibrated widths to RUN/bn_stats.safetensors
    feature_batch_size: int = 256
    costs: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise US3LError(f"unknown protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")

    @property
    def run_knn(self) -> bool:
        return self.protocol in ("knn", "both")

    @property
    def run_linear(self) -> bool:
        return self.protocol in ("linear", "both")


def open_checkpoint(path: str | Path) -> Any:
    """``us3l.checkpoint.load_backbone`` with every failure turned into one clear line.

    A run folder of another model (shape or key mismatch), a truncated or corrupted weights file, a missing
    or malformed ``checkpoint.json`` or a ``bn_stats.safetensors`` that does not fit are all ``US3LError``.
    """
    from us3l.checkpoint import load_backbone

    try:
        return load_backbone(path, stale_bn_stats="ignore")  # stale statistics are recomputed, not used
    except US3LError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors / torch errors from foreign or damaged files
        if "size mismatch" in str(exc):
            from us3l.checkpoint import read_meta

            meta = read_meta(path)
            raise US3LError(
                f"checkpoint {path} does not match model {meta.get('model')!r} "
                f"{meta.get('model_kwargs') or {}}: its weights have other shapes (another model?)"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise US3LError(f"cannot load checkpoint {path}: {type(exc).__name__}: {first[:300]}") from None


def checkpoint_data_spec(meta: dict[str, Any]) -> str | None:
    """The data spec a checkpoint was trained on (``checkpoint.json`` ``data``: a spec or a mapping)."""
    data = meta.get("data")
    if isinstance(data, dict):
        data = data.get("spec") or data.get("name")
    return data if isinstance(data, str) else None


def resolve_data_spec(meta: dict[str, Any], data: str | None) -> str:
    """``data`` if given; else the checkpoint's training data when that is the built-in data set."""
    if data:
        return data
    trained = checkpoint_data_spec(meta)
    if trained == "builtin":
        return "builtin"
    raise US3LError(
        f"--data is required: the checkpoint was trained on {trained or 'unknown data'!r}, "
        "only the built-in data set is used by default"
    )


def parse_widths(model: nn.Module, widths: str | Sequence[float] | None, grid: int | None) -> list[float]:
    """The widths to evaluate: an explicit list, ``grid`` points of the model's width grid, or the default
    1.0/0.75/0.5/0.25 (restricted to the model's width range). Bad values are a one-line error."""
    if widths is not None and grid is not None:
        raise US3LError("give either --widths or --grid, not both")
    if grid is not None:
        if grid < 1:
            raise US3LError(f"--grid must be >= 1 (0 is not allowed), got {grid}")
        full = model.width_grid()  # type: ignore[operator]
        return list(full if grid >= len(full) else (full[-1:] if grid == 1 else model.width_grid(grid)))  # type: ignore[operator]
    if widths is None:
        wr = model.width_range  # type: ignore[attr-defined]
        return [w for w in DEFAULT_WIDTHS if wr.min <= w <= wr.max] or [wr.max]
    if isinstance(widths, str):
        try:
            values = [float(t) for t in widths.replace(" ", "").split(",") if t]
        except ValueError:
            raise US3LError(f"--widths must be comma-separated numbers, got {widths!r}") from None
    else:
        values = [float(v) for v in widths]
    if not values:
        raise US3LError("no widths given")
    out: list[float] = []
    for v in values:
        try:
            v = model.width_range.check(v)  # type: ignore[attr-defined]
        except ValueError as exc:
            raise US3LError(str(exc)) from None
        if v not in out:
            out.append(v)
    return out


def width_costs(model: nn.Module, w: float, input_size: int) -> tuple[int | None, int | None]:
    """(MACs, params) of the static network at width ``w`` via ``profiler.costs.count_costs``;
    ``(None, None)`` when the profiler package is not available."""
    try:
        from profiler.costs import count_costs
    except ImportError:
        return None, None
    from us3l.slim import materialize

    static = materialize(model, w, require_bn_stats=False)
    c = count_costs(static, (1, 3, input_size, input_size))
    return int(c.macs), int(c.params)


def input_normalization(meta: dict[str, Any], ds: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The checkpoint's training normalisation, else the data set's own."""
    norm = meta.get("normalization") or {}
    mean, std = norm.get("mean"), norm.get("std")
    if mean is not None and std is not None:
        return tuple(mean), tuple(std)
    return tuple(ds.mean), tuple(ds.std)


def calibrate_checkpoint(
    loaded: Any,
    data: str | None,
    widths: Sequence[float],
    settings: CalibrationSettings,
    recalibrate: bool = True,
    save: bool = True,
    progress: Progress | None = None,
) -> tuple[float, ...]:
    """Calibrate ``widths`` of a loaded checkpoint (all of them, or only the missing ones when
    ``recalibrate=False``) and store every calibrated width beside the weights. Returns the widths done."""
    from us3l.data import EvalTransform, load_dataset

    model, meta = loaded.model, loaded.meta
    todo = list(widths) if recalibrate else missing_widths(model, widths)
    if not todo:
        return ()
    stale = getattr(loaded, "bn_stats_note", None)
    if data is None and checkpoint_data_spec(meta) != "builtin":
        if stale and missing_widths(model, widths):
            raise US3LError(f"{stale} (with --data SPEC)")
        require_calibrated(model, widths)
    if stale and progress:
        progress(f"ignoring stale {stale.split(';')[0]}; recalibrating")
    spec = resolve_data_spec(meta, data)
    input_size = int(meta.get("input_size") or model.input_size)
    ds = load_dataset(spec, "train", image_size=input_size)
    mean, std = input_normalization(meta, ds)
    transform = EvalTransform(input_size, mean, std)
    batches = calibration_batches(ds, transform, settings.batches, settings.batch_size, settings.seed)
    t0 = time.perf_counter()
    done = calibrate_widths(model, todo, batches, momentum=settings.momentum)
    if progress:
        progress(f"calibrated {len(done)} width(s) on {spec} in {time.perf_counter() - t0:.1f}s")
    if save:
        save_bn_stats(model, loaded.path.parent, _with_data(settings, spec), getattr(loaded, "sha256", None))
    return done


def _with_data(s: CalibrationSettings, spec: str) -> CalibrationSettings:
    return CalibrationSettings(s.batches, s.batch_size, s.momentum, spec, s.seed)


def evaluate_checkpoint(
    loaded: Any,
    data: str | None,
    widths: Sequence[float],
    settings: EvalSettings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Calibrate (missing) widths, then measure kNN / linear accuracy, costs and embedding std per width.

    Returns the ``accuracy.json`` document (not written).
    """
    from us3l.data import EvalTransform, LinearTrainAugment, load_dataset
    from us3l.train.knn import knn_accuracy

    s = settings or EvalSettings()
    model, meta = loaded.model, loaded.meta
    spec = resolve_data_spec(meta, data)
    done = calibrate_checkpoint(loaded, spec, widths, s.calibration, s.recalibrate, s.save_bn_stats, progress)
    require_calibrated(model, widths)
    calibration: dict[str, Any] | None = _with_data(s.calibration, spec).to_dict()
    if not done:  # every width came calibrated: report how the stored statistics were made
        calibration = read_bn_stats_settings(loaded.path.parent)

    input_size = int(meta.get("input_size") or model.input_size)
    train_ds = load_dataset(spec, "train", image_size=input_size)
    test_ds = load_dataset(spec, "test", image_size=input_size)
    num_classes = int(train_ds.num_classes)
    mean, std = input_normalization(meta, train_ds)
    transform = EvalTransform(input_size, mean, std)
    rows: list[dict[str, Any]] = []
    for w in widths:
        t0 = time.perf_counter()
        limit = s.knn.max_train if not s.run_linear else None
        ftr, ytr = extract_features(model, w, train_ds, transform, s.feature_batch_size, limit=limit)
        fte, yte = extract_features(model, w, test_ds, transform, s.feature_batch_size)
        row: dict[str, Any] = {
            "width": float(w),
            "canonical_width": canonical_width(model, w),
            "feature_dim": int(fte.shape[1]),
            "embedding_std": embedding_std(fte),
        }
        if s.run_knn:
            bank, bank_y = ftr, ytr
            if s.knn.max_train is not None:
                bank, bank_y = ftr[: s.knn.max_train], ytr[: s.knn.max_train]
            top1, top5 = knn_accuracy(bank, bank_y, fte, yte, num_classes, s.knn.k, s.knn.temperature, (1, 5))
            row.update(knn_top1=top1, knn_top5=top5)
        if s.run_linear:
            if s.linear.augment:
                aug = LinearTrainAugment(input_size, mean, std)
                top1, top5 = train_linear_probe_augmented(
                    model, w, train_ds, aug, fte, yte, num_classes, s.linear
                )
            else:
                top1, top5 = train_linear_probe(ftr, ytr, fte, yte, num_classes, s.linear)
            row.update(linear_top1=top1, linear_top5=top5)
        if s.costs:
            row["macs"], row["params"] = width_costs(model, w, input_size)
        rows.append(row)
        if progress:
            progress(f"width {w:g}: done in {time.perf_counter() - t0:.1f}s")

    protocols = {
        "knn": s.knn.to_dict() if s.run_knn else None,
        "linear": s.linear.to_dict() if s.run_linear else None,
        "feature_transform": repr(transform),
    }
    return accuracy_doc(
        checkpoint={
            "path": str(loaded.path),
            "sha256": loaded.sha256,
            "method": meta.get("method"),
            "epoch": meta.get("epoch"),
        },
        model=str(meta.get("model")),
        model_kwargs=dict(meta.get("model_kwargs") or {}),
        data=spec,
        num_classes=num_classes,
        input_size=input_size,
        calibration=calibration,
        protocols=protocols,
        widths=rows,
    )


