"""Post-training BN recalibration per width (method.md §4), stored beside the one weight copy.

US3L trains with batch-statistics BN (no running statistics), so every width needs its own statistics before
it can be evaluated or deployed. For each width of the grid the statistics are *reset and re-estimated* over
the same N calibration batches:

- ``momentum=None`` (default): cumulative average over the batches, like US-Nets' ``bn_calibration_init``;
- ``momentum=0.1``: the reference's EMA from mean 0 / var 1 (its CIFAR linear worker runs 3 epochs of it).

Calibration batches use the deterministic evaluation transform (``EvalTransform``) of a fixed-seed shuffle of
the *train* split, so every width sees exactly the same images (the reference uses its linear-probe train
augmentation on CIFAR and the SSL augmentation on ImageNet; deterministic batches make the result
reproducible and match the statistics of the images the width is evaluated on).

The result goes to ``RUN/bn_stats.safetensors`` (only BN mean/var per width, a few hundred kB for ResNet-18's
90-width grid; its metadata records the sha256 of the weights it was computed for), which
``us3l.checkpoint.load_backbone`` reloads only when that digest matches the weights it loads, so
``materialize(model, w)`` and every exporter use the calibrated statistics. Weights (and any running
statistics in the state dict) are never modified.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from us3l.derived import BN_STATS_FILE, WEIGHTS_FILE
from us3l.errors import US3LError
from us3l.slim import (
    SlimBatchNorm2d,
    bn_stats_state,
    calibrated_widths,
    calibrating,
    canonical_width,
    has_batch_norm,
    load_bn_stats_state,
    slim_modules,
)
from us3l.validate import require_types
from us3l.width_key import width_key_text

CHECKPOINT_SHA_KEY = "checkpoint_sha256"
#: metadata key of the statistics' own digest (``tensors_sha256``), checked when they are loaded
TENSORS_SHA_KEY = "tensors_sha256"
DEFAULT_BATCHES = 20
DEFAULT_BATCH_SIZE = 128
CALIBRATION_SEED = 0
_CACHE_BYTES = 512 * 2**20  # keep transformed calibration batches in memory below this size

BatchSource = Sequence[torch.Tensor] | Callable[[], Iterable[torch.Tensor]]
CALIBRATION_AUGMENTS = ("eval", "linear", "ssl")


@dataclass(frozen=True)
class CalibrationSettings:
    """How statistics were estimated (recorded in ``bn_stats.safetensors`` metadata and accuracy.json)."""

    batches: int = DEFAULT_BATCHES
    batch_size: int = DEFAULT_BATCH_SIZE
    momentum: float | None = None
    data: str | None = None
    seed: int = CALIBRATION_SEED
    #: input pipeline: "eval" (deterministic EvalTransform), "linear" (the linear-probe train augmentation: the
    #: reference CIFAR calibration) or "ssl" (the SSL augmentation: the reference ImageNet calibration)
    augment: str = "eval"
    epochs: int | None = None  # passes over the train split instead of ``batches`` (reference CIFAR: 3)
    #: the batches the estimate really saw (``batches`` is a cap: a small train split has fewer); None: not known
    batches_used: int | None = None

    def __post_init__(self) -> None:
        check_batches(self.batches, self.batch_size)  # up front: `calibrate --batch-size 0` divided by zero later
        if self.augment not in CALIBRATION_AUGMENTS:
            valid = ", ".join(CALIBRATION_AUGMENTS)
            raise US3LError(f"calibration augment must be one of {valid}, got {self.augment!r}")
        if self.epochs is not None and self.epochs < 1:
            raise US3LError(f"calibration epochs must be >= 1, got {self.epochs}")

    def to_dict(self) -> dict[str, object]:
        return {
            "batches": self.batches,
            "batch_size": self.batch_size,
            "momentum": self.momentum,
            "mode": "cumulative" if self.momentum is None else "ema",
            "data": self.data,
            "seed": self.seed,
            "augment": self.augment,
            "epochs": self.epochs,
            "batches_used": self.batches_used,
        }

    def used_on(self, num_train: int) -> CalibrationSettings:
        """These settings with ``batches_used`` for a train split of ``num_train`` images (what
        ``calibration_source`` reads: at most one pass of the eval transform, else ``batches`` or the epochs). A pass's
        last batch of one image is not counted: ``calibrate_widths`` skips it (one image has no variance)."""
        per_pass = num_train // self.batch_size + (num_train % self.batch_size >= 2)
        if self.epochs is not None:
            used = self.epochs * per_pass
        else:
            used = min(self.batches, per_pass) if self.augment == "eval" else self.batches
        return replace(self, batches_used=used)


def check_batches(num_batches: int, batch_size: int) -> None:
    """One-line errors for a calibration batch count below 1 or a batch size below 2 (a 1-image batch has no
    variance)."""
    require_types("the number of calibration batches", num_batches, numbers.Integral)
    require_types("the calibration batch size", batch_size, numbers.Integral)
    if num_batches < 1:
        raise US3LError(f"the number of calibration batches must be >= 1, got {num_batches}")
    if batch_size < 2:
        raise US3LError(f"the calibration batch size must be >= 2, got {batch_size}")


def _iter_source(source: BatchSource) -> Iterator[torch.Tensor]:
    return iter(source() if callable(source) else source)


def check_momentum(momentum: float | None) -> float | None:
    """``None`` (cumulative) or a float in (0, 1]; anything else is a one-line error."""
    if momentum is None:
        return None
    if not isinstance(momentum, int | float) or not 0.0 < float(momentum) <= 1.0:
        raise US3LError(f"BN momentum must be in (0, 1] (omit it for a cumulative average), got {momentum!r}")
    return float(momentum)


@torch.no_grad()
def calibrate_widths(
    model: nn.Module,
    widths: Iterable[float],
    batches: BatchSource,
    momentum: float | None = None,
    device: torch.device | str | None = None,
) -> tuple[float, ...]:
    """Reset and re-estimate the BN statistics of ``model`` at each width over the same ``batches``.

    ``batches`` is a sequence of (already transformed, float) input tensors, or a callable returning a fresh
    iterable of them (called once per width; it must yield the same batches each time). Widths with the same
    channel configuration are calibrated once. Returns the canonical widths calibrated, ascending.
    Only ``SlimBatchNorm2d.width_stats`` changes; the state dict is untouched.
    """
    momentum = check_momentum(momentum)
    keys: dict[float, float] = {}
    for w in widths:
        keys.setdefault(canonical_width(model, w), w)
    if not keys:
        raise US3LError("no widths to calibrate")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    for key, w in keys.items():
        n = 0
        with calibrating(model, w, momentum=momentum):
            for x in _iter_source(batches):
                if x.shape[0] < 2:
                    continue  # a 1-sample batch has no variance; skip it like drop_last would
                model(x.to(device))
                n += 1
        if n == 0:
            raise US3LError("calibration data produced no batch with at least 2 images")
        _check_finite_stats(model, key, w)
    return tuple(sorted(keys))


def _check_finite_stats(model: nn.Module, key: float, w: float) -> None:
    """Drop the statistics just estimated at canonical width ``key`` and raise a one-line ``US3LError`` when any is
    NaN or inf (a diverged network's weights): they would be stored and exported as if they were statistics."""
    bns = [(name, m) for name, m in slim_modules(model) if isinstance(m, SlimBatchNorm2d) and key in m.width_stats]
    bad = [name for name, m in bns if not all(bool(torch.isfinite(t).all()) for t in m.width_stats[key])]
    if bad:
        for _, m in bns:
            del m.width_stats[key]
        where = f"the network gives non-finite BN statistics (NaN or inf) at width {w:g}, first in layer {bad[0]}"
        if all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point()):
            # finite weights: what was fed was not (a calibration batch normalised by a zero std, a NaN image)
            raise US3LError(f"{where}: the weights are finite, so the calibration batches are not (NaN or inf in "
                            "the inputs, or values too large for the network); nothing was calibrated")
        raise US3LError(
            f"{where}: its weights are not finite (a diverged run?), so nothing was calibrated; use an earlier "
            "checkpoint or re-train"
        )


def calibration_batches(
    ds: object,
    transform: Callable[[torch.Tensor], torch.Tensor],
    num_batches: int = DEFAULT_BATCHES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = CALIBRATION_SEED,
) -> BatchSource:
    """The first ``num_batches`` batches of a fixed-seed shuffle of ``ds``, transformed by ``transform``.

    Returns a list (transformed once and kept) when it fits in 512 MiB, else a callable that re-reads the
    same batches for every width. Fewer batches are used when ``ds`` is smaller.
    """
    from us3l.data import iterate_batches

    check_batches(num_batches, batch_size)

    def gen() -> Iterator[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        for i, (images, _) in enumerate(iterate_batches(ds, batch_size, shuffle=True, generator=g)):  # type: ignore[arg-type]
            if i >= num_batches:
                break
            yield transform(images)

    first = next(gen(), None)
    if first is None:
        raise US3LError("the calibration data set is empty")
    if first.numel() * first.element_size() * num_batches <= _CACHE_BYTES:
        return list(gen())
    return gen


def calibration_source(
    ds: object,
    settings: CalibrationSettings,
    eval_transform: Callable[[torch.Tensor], torch.Tensor],
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> BatchSource:
    """The calibration batches ``settings`` asks for: :func:`calibration_batches` of the evaluation transform, or
    (``augment`` "linear" / "ssl") seeded augmented batches, ``settings.batches`` of them or ``settings.epochs``
    passes over ``ds`` -- re-generated identically for every width. Folder data get their crops per image."""
    if settings.augment == "eval" and settings.epochs is None:
        return calibration_batches(ds, eval_transform, settings.batches, settings.batch_size, settings.seed)

    from us3l.data import LinearTrainAugment, iterate_batches, ssl_augment_for
    from us3l.data.folder import augmented_views, is_folder

    n = len(ds)  # type: ignore[arg-type]
    bs = settings.batch_size
    total = settings.batches if settings.epochs is None else settings.epochs * math.ceil(n / bs)
    aug: Any = None
    if settings.augment == "linear":
        aug = LinearTrainAugment(image_size, mean, std)  # type: ignore[arg-type]
    elif settings.augment == "ssl":
        aug = ssl_augment_for("folder" if is_folder(ds) else "cifar", image_size, mean, std)  # type: ignore[arg-type]
    folder = is_folder(ds)

    def gen() -> Iterator[torch.Tensor]:
        g = torch.Generator().manual_seed(settings.seed)
        done, epoch = 0, 0
        while done < total:
            source = augmented_views(ds, aug, 1, settings.seed * 1_000_003 + epoch) if folder and aug else ds
            for images, _ in iterate_batches(source, bs, shuffle=True, generator=g):  # type: ignore[arg-type]
                if done >= total:
                    return
                if aug is None:
                    yield eval_transform(images)
                else:
                    yield aug.after_crop(images[:, 0], g) if folder else aug(images, g)
                done += 1
            epoch += 1

    return gen


def missing_widths(model: nn.Module, widths: Iterable[float]) -> list[float]:
    """The widths among ``widths`` that have no calibrated statistics yet (none for a model without BatchNorm)."""
    if not has_batch_norm(model):
        return []
    have = set(calibrated_widths(model))
    return [w for w in widths if canonical_width(model, w) not in have]


def require_calibrated(model: nn.Module, widths: Iterable[float]) -> None:
    """Raise a clear ``US3LError`` when some width has no calibrated statistics (and no data was given)."""
    missing = missing_widths(model, widths)
    if missing:
        shown = ", ".join(f"{w:g}" for w in missing[:6]) + (" ..." if len(missing) > 6 else "")
        raise US3LError(
            f"width(s) {shown} have no calibrated BN statistics and no calibration data was given; "
            "run `us3l calibrate --ckpt RUN --data SPEC` or pass --data"
        )


def save_bn_stats(
    model: nn.Module,
    run_dir: str | Path,
    settings: CalibrationSettings | None = None,
    checkpoint_sha256: str | None = None,
) -> Path:
    """Write every calibrated width of ``model`` to ``run_dir/bn_stats.safetensors`` atomically.

    The file is bound to the checkpoint it was computed for: its metadata records ``checkpoint_sha256`` (the
    digest of the weights the model was loaded from; default: of ``run_dir/checkpoint.safetensors`` now).
    A loader refuses or recomputes statistics whose recorded digest differs from the weights it loads.
    """
    from us3l.io import file_sha256
    from us3l.safetensors_io import write_safetensors

    state = bn_stats_state(model)
    if not state:
        raise US3LError("the model has no calibrated BN statistics to save")
    if checkpoint_sha256 is None:
        weights = Path(run_dir) / WEIGHTS_FILE
        checkpoint_sha256 = file_sha256(weights) if weights.is_file() else None
    meta = {
        "format": "pt",
        "widths": ",".join(width_key_text(w) for w in calibrated_widths(model)),
        TENSORS_SHA_KEY: tensors_sha256(state),
    }
    if checkpoint_sha256 is not None:
        meta[CHECKPOINT_SHA_KEY] = checkpoint_sha256
    if settings is not None:
        meta.update({k: str(v) for k, v in settings.to_dict().items()})
    path = Path(run_dir) / BN_STATS_FILE
    return write_safetensors(path, state, meta)


def load_bn_stats(
    model: nn.Module, path: str | Path, checkpoint_sha256: str | None = None, data: bytes | None = None
) -> tuple[float, ...]:
    """Load ``bn_stats.safetensors`` (a file or the run folder holding it) into ``model``; one-line errors.

    With ``checkpoint_sha256``, statistics computed for other weights (or not bound to any) are refused
    (``StaleBNStats``) before anything is loaded. The file is read once: the binding is checked on, and the
    statistics are loaded from, the same bytes (a file swapped between a check and a second open was loaded
    unchecked); ``data``: those bytes, read by the caller (who hashes them).
    """
    from safetensors.torch import load

    from us3l.safetensors_io import read_header

    p = Path(path)
    if p.is_dir():
        p = p / BN_STATS_FILE
    if not p.is_file():
        raise US3LError(f"BN statistics file not found: {p}")
    redo = f"delete it and run `us3l calibrate --ckpt {p.parent}`"
    try:
        data = p.read_bytes() if data is None else data
    except OSError as exc:
        raise US3LError(f"cannot read BN statistics {p} ({_one_line(exc)}); {redo}") from None
    if checkpoint_sha256 is not None:
        check_bn_stats_binding(p, checkpoint_sha256, data=data)
    try:
        recorded = (read_header(data).get("__metadata__") or {}).get(TENSORS_SHA_KEY)
        state = load(data)
    except Exception as exc:  # noqa: BLE001 - any safetensors parse error means a corrupt file
        raise US3LError(f"cannot read BN statistics {p} ({_one_line(exc)}); {redo}") from None
    if recorded is not None and recorded != tensors_sha256(state):  # files from before 2026-12-03 have none
        raise US3LError(f"BN statistics {p} are damaged (their content differs from the digest recorded when they "
                        f"were saved); {redo}")
    try:
        load_bn_stats_state(model, state)
    except US3LError as exc:  # an entry of another model or width: name the file it came from, and the fix
        raise US3LError(f"{p}: {exc}; {redo}") from None
    return calibrated_widths(model)


def width_bn_stats_sha256(model: nn.Module, w: float) -> str | None:
    """``tensors_sha256`` of the calibrated BN statistics width ``w`` runs with (those of its canonical width, as
    ``bn_stats.safetensors`` stores them), ``None`` when the width has none: what an export of ``w`` froze into
    its graph, and what a consumer of that artifact compares with the statistics it loaded
    (``source.bn_stats.width_sha256`` of a manifest). Independent of the other widths in the file."""
    from us3l.slim import canonical_width

    key = canonical_width(model, w)
    if key not in calibrated_widths(model):
        return None
    return _width_sha256(bn_stats_state(model), key)


def file_bn_stats_digests(path: str | Path) -> dict[str, str]:
    """Every width's ``width_bn_stats_sha256`` in a ``bn_stats.safetensors`` (one read): stored width key
    (``us3l.width_key.width_key_text``) -> digest. A digest covers the entries' names, which start with the width's
    key, so it names its width: a recorded digest found here is that width's statistics, unchanged. One-line
    ``US3LError`` for a file that cannot be read."""
    state = _read_state(path)
    keys = {name.split("/", 1)[0] for name in state if "/" in name}
    return {key: sha for key in sorted(keys) if (sha := _width_sha256(state, key)) is not None}


def _read_state(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    p = Path(path)
    try:
        return load(p.read_bytes())
    except Exception as exc:  # noqa: BLE001 - a missing, unreadable or corrupt file
        raise US3LError(f"cannot read BN statistics {p} ({_one_line(exc)})") from None


def _width_sha256(state: dict[str, torch.Tensor], canonical: float | str) -> str | None:
    """``tensors_sha256`` of the entries of ``state`` (``bn_stats_state``'s layout) for the canonical width
    ``canonical`` (or its stored key), as float32 (how a model holds them); ``None`` when there are none."""
    prefix = f"{canonical if isinstance(canonical, str) else width_key_text(canonical)}/"
    mine = {k: t.float().contiguous() for k, t in state.items() if k.startswith(prefix)}
    return tensors_sha256(mine) if mine else None


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes, in name order (what a file holds, independent
    of how it is laid out)."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class StaleBNStats(US3LError):
    """``bn_stats.safetensors`` was computed for other weights than the checkpoint beside it."""


def bn_stats_checkpoint_sha256(path: str | Path, data: bytes | None = None) -> str | None:
    """The checkpoint digest recorded in a ``bn_stats.safetensors`` (``None``: unbound or unreadable); read from
    ``data`` (the file's bytes) when given."""
    from safetensors import safe_open

    from us3l.safetensors_io import read_header

    p = Path(path)
    if p.is_dir():
        p = p / BN_STATS_FILE
    try:
        if data is not None:
            recorded = (read_header(data).get("__metadata__") or {}).get(CHECKPOINT_SHA_KEY)
            return recorded if isinstance(recorded, str) else None
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            return (fh.metadata() or {}).get(CHECKPOINT_SHA_KEY)
    except Exception:  # noqa: BLE001 - a damaged file is reported when it is loaded
        return None


def check_bn_stats_binding(path: str | Path, checkpoint_sha256: str, data: bytes | None = None) -> None:
    """Raise ``StaleBNStats`` (one line, with the fix) unless ``path`` (or ``data``, its bytes) records
    ``checkpoint_sha256``."""
    p = Path(path)
    if p.is_dir():
        p = p / BN_STATS_FILE
    recorded = bn_stats_checkpoint_sha256(p, data)
    if recorded == checkpoint_sha256:
        return
    why = (
        "records no checkpoint hash (written by an older us3l or damaged)"
        if recorded is None
        else f"were computed for another checkpoint (sha256 {recorded[:12]}…, the weights now are "
        f"{checkpoint_sha256[:12]}…): stale"
    )
    raise StaleBNStats(f"BN statistics {p} {why}; run `us3l calibrate --ckpt {p.parent}` to recompute them")


def read_bn_stats_settings(run_dir: str | Path) -> dict[str, str] | None:
    """The calibration settings recorded in ``run_dir/bn_stats.safetensors`` (``None`` if absent/unreadable)."""
    from safetensors import safe_open

    p = Path(run_dir) / BN_STATS_FILE
    if not p.is_file():
        return None
    try:
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
    except Exception:  # noqa: BLE001 - a damaged file is reported when it is loaded
        return None
    for key in ("format", "widths", CHECKPOINT_SHA_KEY):
        meta.pop(key, None)
    return meta


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
