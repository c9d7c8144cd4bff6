"""Per-width evaluation of a checkpoint: calibrate missing widths, then kNN / linear probe / costs."""

from __future__ import annotations

import math
import numbers
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from us3l.data.datasets import anchored_data_spec, same_data_spec
from us3l.derived import BN_STATS_FILE
from us3l.errors import US3LError
from us3l.eval.accuracy import accuracy_doc
from us3l.eval.calibrate import (
    CalibrationSettings,
    calibrate_widths,
    calibration_source,
    missing_widths,
    read_bn_stats_settings,
    require_calibrated,
    save_bn_stats,
)
from us3l.eval.features import embedding_std, extract_features
from us3l.eval.linear import LinearProbeSettings, train_linear_probe, train_linear_probe_augmented
from us3l.slim import bn_switches, canonical_width, check_width
from us3l.train.knn import BANK_SEED, check_knn_data
from us3l.validate import MAX_INPUT_SIZE, number, require_types
from us3l.validate import points as check_points

DEFAULT_WIDTHS = (1.0, 0.75, 0.5, 0.25)
DEFAULT_KNN_K = 200  # requested k when neither --knn-k nor the checkpoint's training config gives one
RANDOM_INIT_SEED = 0
RAW_PIXEL_MAX_BYTES = 2**30  # raw-pixel baseline skipped when bank + test pixels exceed this (float32)
PROTOCOLS = ("knn", "linear", "both")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class KnnSettings:
    """Weighted kNN on L2-normalised features (T=0.1: the InstDisc/MoCo monitor protocol).

    ``k`` is the *requested* k: ``None`` means the checkpoint's training ``knn_k`` (so ``us3l eval`` and the
    training monitor agree), else 200 as in InstDisc; the k used is ``min(k, max(1, n_min // 2))`` with
    ``n_min`` the smallest class's count in the feature bank (``us3l.train.knn.effective_k``). With
    ``max_train`` the bank is a seeded (``bank_seed``) stratified subset of that many train images.
    """

    k: int | None = None
    temperature: float = 0.1
    max_train: int | None = None  # None: the whole train split is the feature bank
    bank_seed: int = BANK_SEED

    def __post_init__(self) -> None:
        require_types("kNN k", self.k, numbers.Integral, optional=True)
        require_types("kNN temperature", self.temperature, numbers.Real)
        require_types("kNN max_train", self.max_train, numbers.Integral, optional=True)
        if self.k is not None and self.k < 1:
            raise US3LError(f"kNN k must be >= 1, got {self.k}")
        if not 0 < self.temperature < math.inf:
            raise US3LError(f"kNN temperature must be a finite number > 0, got {self.temperature}")
        if self.max_train is not None and self.max_train < 1:
            raise US3LError(f"kNN max_train must be >= 1, got {self.max_train}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def requested_k(self, meta: dict[str, Any]) -> int:
        """The k asked for: ``k``, else the checkpoint's training ``knn_k``, else ``DEFAULT_KNN_K``."""
        if self.k is not None:
            return int(self.k)
        config = meta.get("config")
        trained = config.get("knn_k") if isinstance(config, dict) else None
        if isinstance(trained, int) and not isinstance(trained, bool) and trained >= 1:
            return trained
        return DEFAULT_KNN_K


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
    baselines: bool = True  # kNN of a random-init network per width and of raw pixels (with the kNN protocol)
    random_init_seed: int = RANDOM_INIT_SEED
    preset: str = "fast"  # "reference": the reference's calibration + linear probe (us3l.eval.presets)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise US3LError(f"unknown protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        if self.preset not in ("fast", "reference"):
            raise US3LError(f"unknown evaluation preset {self.preset!r}; choose one of fast, reference")

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


#: Data specs that name no path (generated or bundled with a package): the same data on every machine, so a
#: checkpoint trained on one of them is evaluated on it by default.
BUILT_IN_SPECS = ("builtin", "digits")


def built_in_training_data(meta: dict[str, Any]) -> str | None:
    """The checkpoint's training data spec when it is a built-in set (``BUILT_IN_SPECS``), else None."""
    trained = checkpoint_data_spec(meta)
    return trained.strip() if trained is not None and trained.strip() in BUILT_IN_SPECS else None


def resolve_data_spec(meta: dict[str, Any], data: str | None) -> str:
    """``data`` if given (a relative path made absolute: ``anchored_data_spec``, as it is recorded); else the
    checkpoint's training data when that is a built-in set (no path)."""
    if data:
        return anchored_data_spec(data)
    built_in = built_in_training_data(meta)
    if built_in is not None:
        return built_in
    raise US3LError(
        f"--data is required: the checkpoint was trained on {checkpoint_data_spec(meta) or 'unknown data'!r}, "
        "only the built-in data sets (builtin, digits) are used by default"
    )


def parse_widths(model: nn.Module, widths: str | Sequence[float] | None, grid: int | None) -> list[float]:
    """The widths to evaluate: an explicit list, ``grid`` points of the model's width grid, or the default
    1.0/0.75/0.5/0.25 (restricted to the model's width range). An S-Nets model (switchable BN) runs only at its
    switches: they are its default and its grid, and any other width is refused. Bad values are a one-line
    error."""
    if widths is not None and grid is not None:
        raise US3LError("give either --widths or --points, not both")
    switches = bn_switches(model)
    if grid is not None:
        check_points(grid)
        full = model.width_grid()  # type: ignore[operator]
        return list(full if grid >= len(full) else (full[-1:] if grid == 1 else model.width_grid(grid)))  # type: ignore[operator]
    if widths is None:
        if switches is not None:
            return list(switches)
        wr = model.width_range  # type: ignore[attr-defined]
        return [w for w in DEFAULT_WIDTHS if wr.min <= w <= wr.max] or [wr.max]
    if isinstance(widths, str):
        from us3l.validate import width_list

        values = width_list(widths)  # a width typed twice is refused, as by profile and export
    else:
        values = [float(v) for v in widths]
    if not values:
        raise US3LError("no widths given")
    out: list[float] = []
    for v in values:
        v = check_width(model, v, "--widths")  # in range and, for S-Nets, a switch
        if v not in out:
            out.append(v)
    return out


def planned_epochs(meta: dict[str, Any]) -> int | None:
    """The epochs the run was configured for (its ``config.epochs``), None where checkpoint.json records none."""
    config = meta.get("config")
    epochs = config.get("epochs") if isinstance(config, dict) else None
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def unfinished_note(meta: dict[str, Any], run: str) -> str | None:
    """A note for a checkpoint of a run that stopped before its last epoch (interrupted, or still training), None
    for a finished one: its accuracies are of a partly trained network (under schedule A, the narrow widths may
    not have trained at all yet)."""
    epoch, epochs = meta.get("epoch"), planned_epochs(meta)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epochs is None or epoch >= epochs:
        return None
    return (f"note: {run} holds epoch {epoch} of {epochs}: the run stopped before its end (interrupted, or still "
            f"training); these are the accuracies of a partly trained network (`us3l train --out {run} --resume` "
            "finishes it)")


def trained_widths(meta: dict[str, Any], todo: list[float], explicit: bool, model: nn.Module,
                   say: Callable[[str], None], done: str = "evaluated") -> list[float]:
    """``todo`` for a run that trained every width; for a ``single`` run (one fixed width, ``single_width`` in its
    checkpoint.json) the widths it never trained are no result of it: by default only its width is evaluated (or
    calibrated: ``done``), with a note; widths given explicitly are kept, with a note naming the ones it never
    trained."""
    only = meta.get("single_width") if meta.get("method") == "single" else None
    if not isinstance(only, int | float) or isinstance(only, bool):
        return todo
    width = check_width(model, float(only), "the run's single_width")
    if not explicit:
        say(f"note: this `single` run trained width {width:g} only: {done} there (--widths adds others, which it "
            "never trained)")
        return [width]
    untrained = [w for w in todo if abs(w - width) > 1e-9]
    if untrained:
        say(f"note: this `single` run trained width {width:g} only; {', '.join(f'{w:g}' for w in untrained)} "
            f"{'was' if len(untrained) == 1 else 'were'} never trained")
    return todo


def width_costs(model: nn.Module, w: float, input_size: int) -> tuple[int | None, int | None]:
    """(MACs, params) of the static network at width ``w`` via ``us3l.profiler.costs.count_costs``;
    ``(None, None)`` when the profiler package is not available. ``input_size`` is the square input side."""
    size = int(number(input_size, "input_size", positive=True, integer=True, at_most=MAX_INPUT_SIZE))  # 0: RuntimeError
    try:
        from us3l.profiler.costs import count_costs
    except ImportError:
        return None, None
    from us3l.slim import materialize

    static = materialize(model, w, require_bn_stats=False)
    c = count_costs(static, (1, 3, size, size))
    return int(c.macs), int(c.params)


def input_normalization(meta: dict[str, Any], ds: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The checkpoint's training normalisation, else the data set's own."""
    norm = meta.get("normalization") or {}
    mean, std = norm.get("mean"), norm.get("std")
    if mean is not None and std is not None:
        return tuple(mean), tuple(std)
    return tuple(ds.mean), tuple(ds.std)


@dataclass(frozen=True)
class KnnData:
    """The evaluation data of one checkpoint: both splits, the input normalisation and eval transform, and the
    kNN feature bank (the train split, or its seeded stratified subset of ``max_train`` images: ``bank_idx``)
    with the requested and the effective (data-capped) k."""

    train: Any
    test: Any
    mean: tuple[float, ...]
    std: tuple[float, ...]
    transform: Any
    bank_idx: Any
    bank: Any
    k_requested: int
    k: int
    data_check: dict[str, Any] | None = None


def knn_data(spec: str, meta: dict[str, Any], s: EvalSettings, input_size: int, typed: str | None = None) -> KnnData:
    """Load ``spec``'s splits at ``input_size`` and choose the kNN bank and k (``us3l eval`` and the artifact's
    own accuracy, ``us3l.deploy.accuracy``, use the same). The run's own automatically split folder, changed since
    it trained, is refused where a training image may be in its test split now
    (``us3l.train.data_identity.check_split_unchanged``; ``typed``: the ``--data`` as typed, for a run that recorded
    a relative path), and evaluated with a warning where none can be (split rule 2, or only byte sizes changed under
    either rule): ``data_check`` says so. Test images of an image folder identical to training images are counted,
    with a warning (``data_check.train_test_overlaps``: ``us3l.data.overlap``)."""
    from us3l.data.folder import check_first_images, eval_transform_for
    from us3l.data.overlap import count_overlaps
    from us3l.train.data_identity import checked_splits, warn_changed, with_anchored_record
    from us3l.train.knn import dataset_labels, effective_k, stratified_indices, subset_dataset

    trained = with_anchored_record(meta.get("data"), typed)
    train_ds, test_ds, change, fingerprint = checked_splits(spec, input_size, trained)
    data_check: dict[str, Any] = {"fingerprint": fingerprint, "changed_since_training": change is not None}
    warn_changed(spec, change, "accuracy.json records the data's new fingerprint")
    check_first_images(train_ds)  # a folder of unreadable files: one line now, not after calibrating every width
    check_first_images(test_ds)
    overlaps = count_overlaps(spec, train_ds, test_ds)  # with one warning line where any is
    if overlaps is not None:
        data_check["train_test_overlaps"] = overlaps
    mean, std = input_normalization(meta, train_ds)
    bank_idx = None
    check_knn_data(train_ds.num_classes, s.knn.max_train, len(train_ds), spec, "--knn-max-train")
    if s.knn.max_train is not None and len(train_ds) > s.knn.max_train:
        bank_idx = stratified_indices(dataset_labels(train_ds), s.knn.max_train, s.knn.bank_seed)
    bank_ds = train_ds if bank_idx is None else subset_dataset(train_ds, bank_idx)
    k_requested = s.knn.requested_k(meta)
    return KnnData(train_ds, test_ds, mean, std, eval_transform_for(train_ds, input_size, mean, std), bank_idx,
                   bank_ds, k_requested, effective_k(k_requested, dataset_labels(bank_ds)), data_check)


def calibrate_checkpoint(
    loaded: Any,
    data: str | None,
    widths: Sequence[float],
    settings: CalibrationSettings,
    recalibrate: bool = True,
    save: bool = True,
    progress: Progress | None = None,
    on_width_start: Callable[[], None] | None = None,
    train_split: Any = None,
) -> tuple[float, ...]:
    """Calibrate ``widths`` of a loaded checkpoint (all of them, or only the missing ones when
    ``recalibrate=False``) and store every calibrated width beside the weights. Returns the widths done.

    ``on_width_start()`` is called as each distinct width (channel configuration) starts (progress display).
    ``train_split``: the train split of ``data`` at the checkpoint's input size, already loaded and checked by the
    caller (``evaluate_checkpoint``: ``knn_data``'s); else it is loaded here."""
    from us3l.data.folder import check_first_images, eval_transform_for
    from us3l.slim import has_batch_norm
    from us3l.train.data_identity import load_checked_train_split, with_anchored_record

    model, meta = loaded.model, loaded.meta
    if not has_batch_norm(model):  # a ViT: LayerNorm only, nothing is estimated per width
        if progress:
            progress(f"{meta.get('model', 'the model')} has no BatchNorm: no statistics to calibrate")
        return ()
    if data is not None or built_in_training_data(meta) is not None:
        wanted = _with_data(settings, resolve_data_spec(meta, data))
        computing = recalibrate or bool(missing_widths(model, widths))
        stored_data = statistics_of_other_data(loaded, wanted.data)
        kept = save and stored_data is not None  # the run's statistics of its own data stay in the file
        if _stored_differently(model, loaded.path.parent, wanted, computing, progress, kept):
            recalibrate = True
            if kept:
                save = False  # statistics of another data set are the run's: never replaced by these
                if progress:
                    progress(f"statistics on {wanted.data} are used for this evaluation only; "
                             f"{loaded.path.parent / BN_STATS_FILE} keeps those on {stored_data} "
                             "(delete it to store these instead)")
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
    ds = train_split
    if ds is None:
        ds = load_checked_train_split(spec, input_size, with_anchored_record(meta.get("data"), data))
        check_first_images(ds)  # a folder of unreadable files: one error line, not a note on its size first
    settings = settings.used_on(len(ds))  # recorded: the batches a small train split really gave
    if settings.batch_size > len(ds) and progress:  # the summary's "N batch(es) of <batch size>" overstates it
        progress(f"the {spec} train split has {len(ds)} images, fewer than the batch size {settings.batch_size}: "
                 f"each calibration batch holds all {len(ds)}")
    mean, std = input_normalization(meta, ds)
    transform = eval_transform_for(ds, input_size, mean, std)
    batches = calibration_source(ds, settings, transform, input_size, mean, std)
    if on_width_start is not None:  # calibrate_widths reads the batch source once per distinct width
        source = batches

        def counted() -> Iterator[Any]:
            on_width_start()
            return iter(source() if callable(source) else source)

        batches = counted
    t0 = time.perf_counter()
    done = calibrate_widths(model, todo, batches, momentum=settings.momentum)
    if progress:
        progress(f"calibrated {len(done)} width(s) on {spec} in {time.perf_counter() - t0:.1f}s")
    if save and not os.access(loaded.path.parent, os.W_OK):  # a read-only run: used here, not stored
        if progress:
            progress(f"{loaded.path.parent} is not writable: the statistics calibrated now are used for this "
                     "command only")
    elif save:
        save_bn_stats(model, loaded.path.parent, _with_data(settings, spec), getattr(loaded, "sha256", None))
    return done


def statistics_of_other_data(loaded: Any, data: str) -> str | None:
    """The data set of the run's stored BN statistics when it is not ``data`` and they are the run's own (bound
    to these weights; stale ones, ``loaded.bn_stats_note``, are no one's): a run keeps the statistics of one data
    set, so statistics on ``data`` are not stored over them. ``None`` otherwise."""
    stored = (read_bn_stats_settings(loaded.path.parent) or {}).get("data")
    if stored is None or same_data_spec(stored, data) or getattr(loaded, "bn_stats_note", None):
        return None
    return stored


def typed_bn_stats_settings(stored: dict[str, str] | None) -> dict[str, Any] | None:
    """The settings ``bn_stats.safetensors`` records (as strings) with the types ``CalibrationSettings.to_dict``
    writes, so that accuracy.json's ``calibration`` has one shape whichever path produced it."""
    if stored is None:
        return None

    def value(key: str, text: str | None) -> Any:
        if text is None or text == "None":
            return None
        if key in ("batches", "batch_size", "seed", "epochs", "batches_used"):
            return int(text) if text.lstrip("-").isdigit() else text
        if key == "momentum":
            try:
                return float(text)
            except ValueError:
                return text
        return text

    keys = CalibrationSettings().to_dict()
    return {k: value(k, stored.get(k)) for k in keys}


#: The calibration settings that change the statistics (``bn_stats.safetensors`` records them as strings).
_STATS_SETTINGS = ("data", "batches", "batch_size", "momentum", "seed", "augment", "epochs")


def stats_settings_changes(recorded: Any, stored: dict[str, str] | None) -> list[str]:
    """``"key recorded -> stored"`` for each setting that changes the statistics (``_STATS_SETTINGS``) where an
    accuracy file's ``calibration`` (``recorded``, the statistics its numbers were measured with) differs from the
    settings ``bn_stats.safetensors`` records now (``stored``, ``read_bn_stats_settings``): recalibrated since, so
    the run's widths (and what is exported from them) are other networks than those scored. Empty when either side
    is unknown, or the two are of different data (an evaluation on other data calibrates for itself and does not
    store its statistics over the run's)."""
    if not isinstance(recorded, dict) or not stored or recorded.get("data") is None or "data" not in stored:
        return []
    if not same_data_spec(str(recorded["data"]), stored["data"]):
        return []
    return [f"{k} {recorded.get(k)} -> {stored.get(k)}" for k in _STATS_SETTINGS
            if k != "data" and str(recorded.get(k)) != stored.get(k, "None")]


def _stored_differently(model: nn.Module, run_dir: Path, wanted: CalibrationSettings, adding: bool,
                        progress: Progress | None, kept: bool = False) -> bool:
    """True (and the stored statistics dropped from the model, with a note) when ``bn_stats.safetensors`` holds
    statistics that must not be reused: estimated on other data than ``wanted`` (they would score widths with
    another data set's statistics), or estimated with other settings while any width is being computed
    (``adding``: missing widths, or a recalibration of some of them) into the file, which records one set of
    settings and would mislabel the rest. Every width asked for is then recalibrated; stored widths not asked for
    now are dropped rather than mislabelled. Stored statistics of the same data that cover every width asked for
    are reused, and their own settings are reported."""
    from us3l.slim.layers import SlimBatchNorm2d

    stored = read_bn_stats_settings(run_dir)
    if not stored or "data" not in stored:
        return False
    want = {k: str(v) for k, v in wanted.to_dict().items()}
    same_data = same_data_spec(stored["data"], want["data"])  # folder:/x, /x and /x/ are one data set
    diff = [f"{k} {stored.get(k)} -> {want[k]}" for k in _STATS_SETTINGS
            if stored.get(k) != want.get(k) and not (k == "data" and same_data)]
    if not diff or (same_data and not adding):
        return False
    for m in model.modules():
        if isinstance(m, SlimBatchNorm2d):
            m.width_stats.clear()
    if progress:
        # kept: the file stays as it is (the next note says so); its widths are only left out of this evaluation
        fate = "" if kept else "; stored widths not asked for now are dropped, not mislabelled"
        progress(f"stored BN statistics were estimated differently ({', '.join(diff)}): recalibrating the widths "
                 f"asked for{fate}")
    return True


def _with_data(s: CalibrationSettings, spec: str) -> CalibrationSettings:
    from dataclasses import replace

    return replace(s, data=spec)


def evaluate_checkpoint(
    loaded: Any,
    data: str | None,
    widths: Sequence[float],
    settings: EvalSettings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Calibrate (missing) widths, then measure kNN / linear accuracy (with 95 % Wilson intervals), costs,
    embedding std and (``settings.baselines``, with kNN) the random-init and raw-pixel kNN baselines.

    Returns the ``accuracy.json`` document (schema 2, not written).
    """
    from us3l.data import LinearTrainAugment
    from us3l.eval.hits import encode_hits
    from us3l.eval.intervals import wilson_interval
    from us3l.eval.presets import apply_preset
    from us3l.train.knn import accuracy_and_hits, knn_accuracy, knn_predict

    s = settings or EvalSettings()
    model, meta = loaded.model, loaded.meta
    widths = parse_widths(model, widths, None)  # checked and de-duplicated before any work
    spec = resolve_data_spec(meta, data)
    s = apply_preset(s, spec, str(meta.get("model") or ""))
    input_size = int(meta.get("input_size") or model.input_size)
    d = knn_data(spec, meta, s, input_size, data)  # before calibrating: a bank that cannot work fails at once
    done = calibrate_checkpoint(loaded, spec, widths, s.calibration, s.recalibrate, s.save_bn_stats, progress,
                                train_split=d.train)
    require_calibrated(model, widths)
    calibration: dict[str, Any] | None = _with_data(s.calibration.used_on(len(d.train)), spec).to_dict()
    baseline_calibration = s.calibration
    if not done:  # every width came calibrated: report how the stored statistics were made
        calibration = typed_bn_stats_settings(read_bn_stats_settings(loaded.path.parent))
        baseline_calibration = _recorded_settings(calibration, s.calibration)  # the random-init network's too

    train_ds, test_ds, mean, std, transform, bank_idx, bank_ds, k_requested, k = (
        d.train, d.test, d.mean, d.std, d.transform, d.bank_idx, d.bank, d.k_requested, d.k)
    num_classes = int(train_ds.num_classes)
    num_test = len(test_ds)
    full_train = s.run_linear and not s.linear.augment  # the cached-feature probe needs every train image

    def ci(v: float | None) -> list[float] | None:
        return None if v is None else wilson_interval(v, num_test)

    random_net = None
    if s.baselines and s.run_knn:
        random_net = _random_init_network(meta, s, baseline_calibration, spec, train_ds, transform, widths)
    rows: list[dict[str, Any]] = []
    for w in widths:
        t0 = time.perf_counter()
        ftr, ytr = extract_features(model, w, train_ds if full_train else bank_ds, transform, s.feature_batch_size)
        fte, yte = extract_features(model, w, test_ds, transform, s.feature_batch_size)
        row: dict[str, Any] = {
            "width": float(w),
            "canonical_width": canonical_width(model, w),
            "feature_dim": int(fte.shape[1]),
            "embedding_std": embedding_std(fte),
        }
        if s.run_knn:
            bank, bank_y = (ftr[bank_idx], ytr[bank_idx]) if full_train and bank_idx is not None else (ftr, ytr)
            top1, top5, hits = accuracy_and_hits(knn_predict(bank, bank_y, fte, num_classes, k, s.knn.temperature), yte)
            row.update(knn_top1=top1, knn_top1_ci=ci(top1), knn_top1_hits=encode_hits(hits), knn_top5=top5)
        if random_net is not None:
            rtr, rtr_y = extract_features(random_net, w, bank_ds, transform, s.feature_batch_size)
            rte, _ = extract_features(random_net, w, test_ds, transform, s.feature_batch_size)
            (rtop1,) = knn_accuracy(rtr, rtr_y, rte, yte, num_classes, k, s.knn.temperature)
            row["baseline_random_init"] = {"knn_top1": rtop1, "knn_top1_ci": ci(rtop1)}
        if s.run_linear:
            if s.linear.augment:
                aug = LinearTrainAugment(input_size, mean, std, crop_scale=(s.linear.crop_min, 1.0),
                                         interpolation=s.linear.interpolation)
                top1, top5, hits = train_linear_probe_augmented(
                    model, w, train_ds, aug, fte, yte, num_classes, s.linear
                )
            else:
                top1, top5, hits = train_linear_probe(ftr, ytr, fte, yte, num_classes, s.linear)
            row.update(linear_top1=top1, linear_top1_ci=ci(top1), linear_top1_hits=encode_hits(hits), linear_top5=top5)
        if s.costs:
            row["macs"], row["params"] = width_costs(model, w, input_size)
        rows.append(row)
        if progress:
            progress(f"width {w:g}: done in {time.perf_counter() - t0:.1f}s")

    baselines = None
    if s.baselines and s.run_knn:
        raw = _raw_pixel_knn(bank_ds, test_ds, transform, num_classes, k, s.knn.temperature, s.feature_batch_size)
        if raw is None and progress:
            progress("raw-pixel baseline skipped: the pixels of bank + test exceed 1 GiB")
        baselines = {
            "raw_pixels": None if raw is None else {"knn_top1": raw, "knn_top1_ci": ci(raw), "k": k},
            "chance": 1.0 / num_classes,
            "random_init_seed": s.random_init_seed,
        }
    knn_protocol = None
    if s.run_knn:
        knn_protocol = {
            "k": k,
            "k_requested": k_requested,
            "temperature": s.knn.temperature,
            "max_train": s.knn.max_train,
            "bank_size": len(bank_ds),
            "bank_seed": s.knn.bank_seed if bank_idx is not None else None,
        }
    protocols = {
        "preset": s.preset,
        "knn": knn_protocol,
        "linear": s.linear.to_dict() if s.run_linear else None,
        "feature_transform": repr(transform),
    }
    return accuracy_doc(
        checkpoint={
            "path": str(loaded.path),
            "sha256": loaded.sha256,
            "method": meta.get("method"),
            "epoch": meta.get("epoch"),
            "epochs": planned_epochs(meta),  # the run's planned length: epoch < epochs is a run stopped early
        },
        model=str(meta.get("model")),
        model_kwargs=dict(meta.get("model_kwargs") or {}),
        data=spec,
        num_classes=num_classes,
        input_size=input_size,
        num_test=num_test,
        calibration=calibration,
        protocols=protocols,
        baselines=baselines,
        widths=rows,
        data_check=d.data_check,
    )


def _recorded_settings(recorded: dict[str, Any] | None, default: CalibrationSettings) -> CalibrationSettings:
    """The ``CalibrationSettings`` that an accuracy.json ``calibration`` entry (the stored statistics') records;
    ``default`` when there is none or it cannot be rebuilt (an old or edited file)."""
    from dataclasses import replace

    from us3l.eval.calibrate import check_momentum

    if not recorded:
        return default
    try:
        check_momentum(recorded.get("momentum"))
        kept = {k: recorded[k] for k in ("batches", "batch_size", "seed", "augment") if recorded.get(k) is not None}
        return replace(default, **kept, momentum=recorded.get("momentum"), epochs=recorded.get("epochs"))
    except (US3LError, TypeError):
        return default


def _random_init_network(
    meta: dict[str, Any], s: EvalSettings, calibration: CalibrationSettings, spec: str, train_ds: Any,
    transform: Any, widths: Sequence[float],
) -> nn.Module:
    """The checkpoint's model and model_kwargs, freshly initialised with ``s.random_init_seed`` (global torch
    RNG untouched), its BN statistics calibrated at ``widths`` exactly like the trained model's (``calibration``:
    the settings of this evaluation, or those the stored statistics were made with when every width came
    calibrated), so the baseline differs from the trained network in the weights only."""
    import torch

    from us3l.checkpoint import model_kwargs_of
    from us3l.models import create_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.random_init_seed)
        net = create_model(meta["model"], num_classes=0, **model_kwargs_of(meta))
    c = _with_data(calibration, spec)
    batches = calibration_source(train_ds, c, transform, transform.image_size, transform.mean, transform.std)
    calibrate_widths(net, widths, batches, momentum=c.momentum)
    return net.eval()


def _raw_pixel_knn(
    bank_ds: Any, test_ds: Any, transform: Any, num_classes: int, k: int, temperature: float, batch_size: int
) -> float | None:
    """kNN top-1 on flattened eval-transform (normalised) pixels; ``None`` when they would not fit in 1 GiB."""
    import torch

    from us3l.data import iterate_batches
    from us3l.train.knn import knn_accuracy

    def pixels(ds: Any) -> tuple[Any, Any]:
        xs, ys = [], []
        for images, y in iterate_batches(ds, batch_size):
            xs.append(transform(images).flatten(1).float())
            ys.append(y.to(torch.int64))
        return torch.cat(xs), torch.cat(ys)

    first, _ = next(iterate_batches(test_ds, 1))
    dim = int(transform(first).numel())
    if (len(bank_ds) + len(test_ds)) * dim * 4 > RAW_PIXEL_MAX_BYTES:
        return None
    xtr, ytr = pixels(bank_ds)
    xte, yte = pixels(test_ds)
    (top1,) = knn_accuracy(xtr, ytr, xte, yte, num_classes, k, temperature)
    return top1
