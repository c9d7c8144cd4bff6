"""``us3l quickstart``: the whole pipeline on the built-in data, every step re-runnable on its own.

train → calibrate + kNN per width → profile every width on this CPU (onnxruntime, OpenVINO) → select the best
width for a latency budget → export it (ONNX, OpenVINO IR) with verification → the INT8 line (that width as
post-training INT8 ONNX: latency and kNN top-1 against FP32; ``--no-int8`` skips it) → report. Every intermediate file
lands in ``--out`` in its documented format; a re-run reuses each step whose output is complete and still
matches its inputs (checkpoint hash, widths, budget), unless ``--force``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from us3l.cli_app import app, console, emit_json
from us3l.cli_output import Col, deprecated, is_quiet, print_table, set_quiet, warn
from us3l.cli_output import result as result_line
from us3l.errors import InfeasibleError, US3LError, debug_enabled
from us3l.io import atomic_write_json, file_sha256, header, read_json
from us3l.locking import folder_lock
from us3l.validate import MAX_THREADS, number, once_each
from us3l.validate import points as check_points
from us3l.width_key import width_key, width_key_text

if TYPE_CHECKING:
    from us3l.train.data_identity import LoadedData

SUMMARY_KIND, SUMMARY_SCHEMA = "quickstart", 1
DEFAULT_BACKENDS = ("onnx", "openvino")


@dataclass(frozen=True)
class QuickstartOptions:
    out: Path = Path("quickstart")
    config: Path | None = None
    epochs: int | None = None
    latency_ms: float | None = None
    points: int = 8
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    max_seconds: float = 2.0
    threads: int | None = None
    force: bool = False
    int8: bool = True  # the INT8 line (``--no-int8`` skips it)


class InfeasibleRun(InfeasibleError):
    """No width fits the budget (exit 3) once selection.json, summary.json and report.html say so: ``summary`` is
    printed (the tables, or the ``--json`` document) before the error line, as ``us3l select`` prints its answer."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class StepLog:
    name: str
    status: str  # "ran" | "reused" | "failed" (the int8 step only: the quickstart goes on)
    seconds: float
    outputs: list[str] = field(default_factory=list)


def _say(msg: str) -> None:
    """A progress line on stderr, never wrapped: a path in it stays one copyable piece at any length."""
    if not is_quiet():
        console.print(f"[bold cyan]quickstart[/] {msg}", soft_wrap=True)


def _timed(name: str, logs: list[StepLog], fn: Callable[[], tuple[str, list[str]]]) -> None:
    t0 = time.perf_counter()
    _say(f"[bold]{name}[/] …")
    status, outputs = fn()
    logs.append(StepLog(name, status, round(time.perf_counter() - t0, 2), outputs))
    _say(f"{name}: {status} in {logs[-1].seconds:.1f}s → {', '.join(outputs)}")


# ------------------------------------------------------------------------------------------------ steps


def _train(opts: QuickstartOptions, run_dir: Path, keep: list[LoadedData] | None = None) -> tuple[str, list[str]]:
    """Train the run (or reuse or resume it); ``keep``: gets the data read for it (``LoadedData``), which the later
    steps reuse with its fingerprint (``us3l.train.data_identity.reusing``): computed once per quickstart run."""
    from us3l.train.config import resolve_config
    from us3l.train.loop import check_batches, check_data, run_training

    overrides: dict[str, Any] = {"out": str(run_dir)}
    if opts.epochs is not None:
        overrides["epochs"] = opts.epochs
    cfg = resolve_config(opts.config, overrides)
    meta_path = run_dir / "checkpoint.json"
    meta = read_json(meta_path, "checkpoint metadata") if meta_path.is_file() and not opts.force else None
    # as `us3l train`: an empty class folder or a junk first image is one line before training (a resume's batch
    # size is checked by the loop); read before the reuse decision, which compares the data too
    loaded = check_data(cfg, None)
    if keep is not None:
        keep.append(loaded)
    changes = None if meta is None else _run_changes(meta, cfg, loaded)
    if changes == [] and int(meta.get("epoch", -1)) >= cfg.epochs:  # type: ignore[union-attr]
        return "reused", [str(run_dir)]
    if changes == []:
        result = run_training(cfg, resume=True, loaded=loaded)
        _check_training(result)
        return "resumed", [str(run_dir)]
    check_batches(len(loaded.train), cfg, 1)
    if changes:  # it is replaced once the new run has saved its first checkpoint: say so first
        warn(f"{run_dir} holds a run trained with other settings ({', '.join(changes)}); training a new one "
             "replaces it (keep it: Ctrl-C now, or choose another --out)", markup=False)
    result = run_training(cfg, resume=False, overwrite=True, loaded=loaded)
    _check_training(result)
    return "ran", [str(run_dir)]


#: Config fields that do not change the trained weights.
_NOT_TRAINING = ("out", "quiet", "knn_every", "save_every", "num_workers", "collapse_warn")


def _same_training(saved: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a finished (or interrupted) run was trained with the config now asked for. Keys a run saved
    before they existed count as their defaults."""
    return not _training_changes(saved, wanted)


def _training_changes(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The config keys (``epochs 4 -> 24``) whose saved value differs from the one now asked for, ignoring
    :data:`_NOT_TRAINING`."""
    import json

    from us3l.train.config import TrainConfig, as_recorded

    saved = {**TrainConfig().to_dict(), **saved}
    wanted = as_recorded(wanted, saved)  # threads: auto and amp: auto match whatever they resolved to

    def norm(d: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps({k: v for k, v in d.items() if k not in _NOT_TRAINING}, default=str))

    a, b = norm(saved), norm(wanted)
    return [f"{k} {a.get(k)!r:.40} -> {b.get(k)!r:.40}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _run_changes(meta: dict[str, Any], cfg: Any, loaded: LoadedData) -> list[str]:
    """What makes the run in ``meta`` (its checkpoint.json) other training than the one asked for (``cfg``, on the
    data ``loaded``: ``us3l.train.loop.LoadedData``): its config keys that differ (``_training_changes``), and data
    of other images, class names or image byte sizes (its fingerprint, ``us3l.train.data_identity.difference``: the
    run is no training on this data to reuse, and on a folder whose automatic split moved, no run to evaluate on a
    test split it may have trained on)."""
    from us3l.data import load_splits
    from us3l.data.split_rule import split_rule_of
    from us3l.train.data_identity import data_fingerprint, difference, fingerprint_differs

    changes = _training_changes(meta.get("config") or {}, cfg.to_dict())
    trained = meta.get("data")
    recorded = trained.get("fingerprint") if isinstance(trained, dict) else None
    rule = split_rule_of(trained)  # the run's own split of its data (rule 1 for runs saved before rule 2)
    now = loaded.fingerprint if rule == loaded.split_rule else data_fingerprint(*load_splits(loaded.spec, None, rule))
    if fingerprint_differs(recorded, now):
        changes.append(f"data: {difference(trained, now)}")
    return changes


def _check_training(result: Any) -> None:
    if getattr(result, "status", "completed") != "completed":
        raise US3LError(f"training stopped ({result.status}): {result.message}")


def _widths(run_dir: Path, points: int) -> list[float]:
    from us3l.checkpoint import load_backbone

    model = load_backbone(run_dir, stale_bn_stats="ignore").model  # the evaluate step recomputes stale ones
    grid = set(model.width_grid(max_points=points))
    grid.update(_canonical(model, w) for w in (1.0, 0.75, 0.5, 0.25) if model.width_range.min <= w)
    return sorted(grid, reverse=True)


def _canonical(model: Any, w: float) -> float:
    from us3l.slim import canonical_width

    return canonical_width(model, w)


def _evaluate(run_dir: Path, acc_path: Path, widths: list[float], force: bool) -> tuple[str, list[str]]:
    from us3l.eval.accuracy import load_accuracy, save_accuracy
    from us3l.eval.calibrate import bn_stats_checkpoint_sha256, read_bn_stats_settings
    from us3l.eval.runner import EvalSettings, evaluate_checkpoint, open_checkpoint, stats_settings_changes

    if acc_path.is_file() and not force:
        sha = file_sha256(run_dir / "checkpoint.safetensors")  # only to reuse: open_checkpoint hashes it itself
        try:
            doc = load_accuracy(acc_path)
            done = sorted(width_key(r["width"]) for r in doc["widths"])
            fresh_bn = bn_stats_checkpoint_sha256(run_dir) == sha  # the profile/export steps load them
            fresh_bn = fresh_bn and doc.get("baselines") is not None  # schema 2 with intervals and baselines
            # measured with the statistics the run holds now (not recalibrated since: the exports would ship others)
            fresh_bn = fresh_bn and not stats_settings_changes(doc.get("calibration"), read_bn_stats_settings(run_dir))
            if doc["checkpoint"]["sha256"] == sha and fresh_bn and done == sorted(width_key(w) for w in widths):
                return "reused", [str(acc_path)]
        except (US3LError, KeyError, TypeError, AttributeError):  # a hand-edited file: evaluated again
            pass
    loaded = open_checkpoint(run_dir)
    doc = evaluate_checkpoint(loaded, _trained_on(loaded.meta), widths, EvalSettings(protocol="knn"), progress=_say)
    save_accuracy(doc, acc_path)
    return "ran", [str(acc_path), str(run_dir / "bn_stats.safetensors")]


def _trained_on(meta: dict[str, Any]) -> str | None:
    """The data the run was just trained on (``--config``'s ``data``): the evaluation and INT8 steps use it, as
    ``us3l eval --data`` would (quickstart has no ``--data``; without it, only the built-in data is used)."""
    from us3l.eval.runner import checkpoint_data_spec

    return checkpoint_data_spec(meta)


def _profile_path(profiles_dir: Path, model: str, backend: str) -> Path:
    from us3l.profiler.profile_file import profile_stem

    return profiles_dir / f"{profile_stem(model, 'cpu', backend, 'fp32')}.json"


def _profile_policy(opts: QuickstartOptions) -> Any:
    """The quickstart's timing policy (``us3l.profiler.measure.MeasurementPolicy``): short, capped per width.

    The default ``tail_quantile`` (p90, the budget's statistic) keeps every width sampling until the upper 95 % CI
    bound of p90 is an order statistic two places under the sample maximum (70 samples). The quickstart once
    stopped at 20: that bound did not exist and was clipped to the maximum, so one tail sample moved a width
    past its neighbours and the OpenVINO choice jumped between runs (0.3438 in one, 0.9063 in the next)."""
    from us3l.deploy.select import LatencyRule
    from us3l.profiler.measure import MeasurementPolicy

    q = float(LatencyRule().statistic.lstrip("p")) / 100.0
    return MeasurementPolicy(warmup=5, max_seconds=opts.max_seconds, tail_quantile=q)


#: The profile's ``extra`` entry where quickstart records each width's BN statistics as timed (width key text ->
#: ``us3l.eval.calibrate.width_bn_stats_sha256``, null: uncalibrated): the graphs' bytes (``graph_sha256``) fold
#: them in, so a profile timed before a recalibration is not the profile of the graphs the export step ships.
PROFILED_BN_STATS = "bn_stats_sha256"


def _bn_stats_digests(model: Any, widths: list[float]) -> dict[str, str | None]:
    """Each width's ``width_bn_stats_sha256`` (the statistics its deployable graph freezes), keyed by width."""
    from us3l.eval.calibrate import width_bn_stats_sha256

    return {width_key_text(w): width_bn_stats_sha256(model, w) for w in widths}


def _profile(opts: QuickstartOptions, run_dir: Path, widths: list[float], profiles_dir: Path) -> tuple[str, list[str]]:
    from us3l.checkpoint import load_backbone
    from us3l.devices.registry import get_device
    from us3l.profiler.profile_file import load_profile, write_profile
    from us3l.profiler.sweep import run_sweep

    loaded = load_backbone(run_dir)
    spec = get_device("cpu")
    statuses, outputs = [], []
    for backend in opts.backends:
        path = _profile_path(profiles_dir, loaded.meta["model"], backend)
        if path.is_file() and not opts.force:
            try:
                prof = load_profile(path)
                done = sorted(width_key(r.width) for r in prof.records)
                if (prof.checkpoint_sha256 == loaded.sha256 and done == sorted(width_key(w) for w in widths)
                        and prof.extra.get(PROFILED_BN_STATS) == _bn_stats_digests(loaded.model, widths)):
                    statuses.append("reused")
                    outputs.append(str(path))
                    continue
            except US3LError:
                pass
        policy = _profile_policy(opts)
        model = loaded.model
        profile = run_sweep(
            model,
            loaded.meta["model"],
            widths,
            spec,
            int(loaded.meta.get("input_size") or model.input_size),
            backend=backend,
            threads=opts.threads,
            policy=policy,
            checkpoint_sha256=loaded.sha256,
            require_bn_stats=True,
        )
        profile = replace(profile, extra={**profile.extra, PROFILED_BN_STATS: _bn_stats_digests(model, widths)})
        json_path, _ = write_profile(profile, profiles_dir)
        if json_path != path:  # pragma: no cover - the file name is the profile's stem
            path = json_path
        statuses.append("ran")
        outputs.append(str(path))
    return ("reused" if set(statuses) == {"reused"} else "ran"), outputs


#: Smallest relative gap (b - a) / b between two adjacent conservative latencies that the default budget may sit in.
BUDGET_MIN_GAP = 0.10
#: A backend's latency more than this many times its next-lower one, beyond what the two widths' MACs explain
#: (``ratio > BUDGET_OUTLIER * max(1, macs_ratio)``), is a hiccup: the budget's gap never reaches up to it.
BUDGET_OUTLIER = 2.0
BUDGET_RULE = (
    "midway between two adjacent conservative latencies (upper 95% CI of p90, all backends pooled), in the "
    "first gap of at least 10% above the largest lower median over backends (else the widest gap); a latency "
    "more than 2x its next-lower one beyond their MACs ratio (a hiccup) does not bound a gap"
)


def _without_hiccups(points: list[tuple[float, float | None]]) -> list[float]:
    """One backend's latencies, sorted, up to its first hiccup: a latency ``b`` more than ``BUDGET_OUTLIER``
    times the next-lower one ``a`` beyond the two widths' MACs ratio (``b / a > BUDGET_OUTLIER * max(1,
    macs_b / macs_a)``: twice the work takes at most about twice the time, and a narrower width that runs slower
    than a wider one does so by a little, so such a jump is a stall, not the network). Only jumps above the
    lower median are looked at, so a minority of the widths is ever cut and the lower median is kept."""
    points = sorted(points, key=lambda p: p[0])
    for i in range(len(points) // 2 + 1, len(points)):
        (a, ma), (b, mb) = points[i - 1], points[i]
        work = mb / ma if ma and mb else 1.0  # a narrower width may run a little slower, never 2x: at least 1
        if b > BUDGET_OUTLIER * max(work, 1.0) * a:
            return [p[0] for p in points[:i]]
    return [p[0] for p in points]


def default_budget_ms(profile_paths: list[Path]) -> float:
    """A budget that is meaningful on this machine and leaves real slack: *midway* between two adjacent
    conservative latencies (upper 95 % CI bound of p90), never on one of them.

    The latencies of every profiled backend are pooled. The gap ``(a, b)`` between adjacent pooled values is
    taken above ``lo`` = the largest lower median over the backends (so at least half of the widths fit on every
    backend) and at most ``hi`` = the smallest per-backend maximum (so some backend's slowest width does not):
    the first such gap with ``(b - a) / b >= BUDGET_MIN_GAP``, else the widest one. Every width on every backend
    then sits at least ``(b - a) / 2`` from the budget. With a single latency level the budget is 10 % above it.

    Hiccups (a width measured several times slower than it should be, e.g. a stall during its timing;
    ``_without_hiccups``, ``BUDGET_OUTLIER``) never bound the gap: ``hi`` is the smallest maximum without them,
    and where that leaves no gap above ``lo``, the gaps up to the largest maximum without them are used, else 10 %
    above ``lo`` (at most midway to the next latency). Without that, the gap below a hiccup was the widest one and
    the budget landed midway in it, far above every other width, so that every width but the hiccup fitted and
    the demo's selection decided nothing. A hiccup still counts for the lower median and never fits.

    When one backend's lower median is above another backend's slowest width, every width of the faster backend
    fits: the half-fit guarantee for the slower one decides.
    """
    from us3l.deploy.select import Budget, LatencyRule, load_profile, select_profile

    per_backend, kept = [], []
    for path in profile_paths:
        probe = select_profile(load_profile(path), Budget(latency_ms=1e12), LatencyRule(), None, str(path))
        per_backend.append(sorted(c.latency_ms for c in probe.candidates))
        kept.append(_without_hiccups([(c.latency_ms, c.macs) for c in probe.candidates]))
    lo = max(lat[(len(lat) - 1) // 2] for lat in per_backend)
    pooled = sorted({v for lat in per_backend for v in lat})  # hiccups included: the budget never sits on one
    above = [(a, b) for a, b in zip(pooled, pooled[1:], strict=False) if a >= lo]
    gaps = ([(a, b) for a, b in above if b <= min(lat[-1] for lat in kept)]
            or [(a, b) for a, b in above if b <= max(lat[-1] for lat in kept)])  # never a gap up to a hiccup
    if not gaps:  # one latency level, or only hiccups above it: 10 % above it, below the next latency
        nxt = next((b for a, b in above if a == lo), None)
        budget = lo * (1 + BUDGET_MIN_GAP) if nxt is None else min(lo * (1 + BUDGET_MIN_GAP), (lo + nxt) / 2)
        rounded = round(budget, 3)
        return rounded if lo < rounded < (nxt if nxt is not None else math.inf) else budget
    wide = [(a, b) for a, b in gaps if (b - a) / b >= BUDGET_MIN_GAP]
    a, b = wide[0] if wide else max(gaps, key=lambda g: (g[1] - g[0]) / g[1])
    budget = (a + b) / 2
    rounded = round(budget, 3)  # a readable number when that keeps it strictly inside the gap
    return rounded if a < rounded < b else budget


def budget_text(ms: float) -> str:
    """A latency budget as printed: 3 decimals, or more where the budget has them (a default budget in a gap
    narrower than 1 µs is not rounded, and printed as 0.120 it read as the width at 0.1201 ms it lies above)."""
    text = f"{ms:.3f}"
    return text if abs(float(text) - ms) <= 1e-12 else f"{ms:.6g}"


def _select(
    profile_paths: list[Path], acc_path: Path, sel_path: Path, budget_ms: float, force: bool
) -> tuple[str, list[str]]:
    from us3l.deploy.select import Budget, read_selection, select, selection_input, write_selection

    if sel_path.is_file() and not force:
        try:
            old = read_selection(sel_path)
            hashes = {selection_input(sel_path, old, p["path"]).resolve(): p["sha256"]
                      for p in old["inputs"]["profiles"]}
            same_inputs = all(hashes.get(p.resolve()) == file_sha256(p) for p in profile_paths) and len(
                hashes) == len(profile_paths)
            same_acc = (old["inputs"].get("accuracy") or {}).get("sha256") == file_sha256(acc_path)
            same_rule = all("decided_by" in d for d in old["devices"])  # made with the tie rule
            feasible = old.get("feasible") is True  # an infeasible one is made again: it ends the run with exit 3
            if (same_inputs and same_acc and same_rule and feasible
                    and (old.get("budget") or {}).get("latency_ms") == budget_ms):
                return "reused", [str(sel_path)]
        except (US3LError, KeyError, TypeError, AttributeError):  # a hand-edited file: selected again
            pass
    selection = select(profile_paths, Budget(latency_ms=budget_ms), accuracy=acc_path)
    write_selection(sel_path, selection)
    selection.raise_if_infeasible()
    return "ran", [str(sel_path)]


def _run_checkpoint(run_dir: Path) -> Callable[[], Any]:
    """The run's checkpoint (``load_backbone``, a ``LoadedCheckpoint``; stale BN statistics ignored: only its layer
    shapes and the sha256 of its weights are used), loaded on the first call and then the same object: every reuse
    check of the export and INT8 steps checks an artifact's graph against its network and the manifest's
    ``source.checkpoint_sha256`` against the digest of the bytes loaded (``_artifact``, ``_checked_artifacts``);
    each once reloaded the checkpoint, and each export reuse check hashed it again."""
    from functools import cache

    @cache
    def loaded() -> Any:
        from us3l.checkpoint import load_backbone

        return load_backbone(run_dir, stale_bn_stats="ignore")

    return loaded


def _artifact(
    run_dir: Path, art_dir: Path, device: str, model: str, w: float, backend: str, precision: str, force: bool,
    run: Callable[[], Any],
) -> tuple[str, Path]:
    """("reused" | "ran", folder) of the artifact of width ``w``: the one in ``art_dir`` when it is valid, its
    files match their hashes and it is what this export would write now (checkpoint, width, input, backend,
    precision; int8: the default calibration set size), else a fresh ``export_width``. ``run``: the run's
    checkpoint (``_run_checkpoint``), called only to check an artifact found there."""
    from us3l.deploy.export import artifact_name, export_width
    from us3l.deploy.manifest import read_manifest, verify_manifest
    from us3l.deploy.quantize import DEFAULT_CALIB_IMAGES

    size = int(read_json(run_dir / "checkpoint.json", "checkpoint metadata").get("input_size") or 0) or None
    target = art_dir / device / artifact_name(model, w, backend, precision) / "manifest.json"
    if target.is_file() and not force:
        try:
            loaded = run()  # its digest is of the bytes loaded: the checkpoint is hashed once for every reuse check
            man, directory = read_manifest(target)
            # valid, every listed file re-hashed, and the artifact this step would export now: the graph's layers
            # those of the run's network at width w (model.width and model.name are the manifest's word only)
            verify_manifest(
                man, directory, model=model, width=w, input_shape=(1, 3, size, size),
                checkpoint_sha256=loaded.sha256, backend=backend, precision=precision, network=loaded.model,
            )
            calib = ((man.get("quantization") or {}).get("calibration") or {}).get("size")
            if (precision != "int8" or calib == DEFAULT_CALIB_IMAGES) and _same_bn_stats(man, run_dir):
                return "reused", directory
        except US3LError:
            pass
    res = export_width(run_dir, w, backend, art_dir, precision=precision, device_name=device)
    return "ran", res.directory


def _same_bn_stats(manifest: dict[str, Any], run_dir: Path) -> bool:
    """Whether the artifact was materialized with the run's ``bn_stats.safetensors`` as it is now (its recorded
    sha256 against the file's). A re-run that recalibrated re-exports, and so does one over a manifest that records
    no ``source.bn_stats`` (written before 2026-12-06, or the record deleted): nothing shows which statistics it
    holds."""
    from us3l.derived import BN_STATS_FILE

    source = manifest.get("source")
    if not isinstance(source, dict) or "bn_stats" not in source:
        return False
    path = run_dir / BN_STATS_FILE
    return (source.get("bn_stats") or {}).get("sha256") == (file_sha256(path) if path.is_file() else None)


def _export(
    run_dir: Path, sel_path: Path, art_dir: Path, force: bool, run: Callable[[], Any]
) -> tuple[str, list[str]]:
    from us3l.deploy.select import read_selection

    sel = read_selection(sel_path)
    statuses, outputs = [], []
    for dev in sel["devices"]:
        status, directory = _artifact(
            run_dir, art_dir, dev["device"], dev["model"], dev["chosen"]["width"], dev["backend"], "fp32", force,
            run,
        )
        statuses.append(status)
        outputs.append(str(directory))
    return ("reused" if set(statuses) == {"reused"} else "ran"), outputs


#: The INT8 line's runtime: onnxruntime's Q/DQ model (``us3l export --backend onnx --precision int8``).
INT8_BACKEND = "onnx"


def _int8(
    opts: QuickstartOptions, run_dir: Path, sel_path: Path, art_dir: Path, entry: dict[str, Any],
    run: Callable[[], Any],
) -> tuple[str, list[str]]:
    """The INT8 line: the post-training INT8 ONNX artifact of the selected width (the onnx choice, else the first
    device's), timed interleaved with the FP32 ONNX artifact of the same width and scored with its own
    embeddings beside FP32 PyTorch (``us3l eval --artifact``). Fills ``entry`` (summary.json ``int8``).

    A failed INT8 export, verification or measurement is a warning, and the quickstart goes on: ``entry`` then
    says ``"status": "failed"`` with the error, and the step ``failed``."""
    from us3l.deploy.select import read_selection

    sel = read_selection(sel_path)
    dev = next((d for d in sel["devices"] if d["backend"] == INT8_BACKEND), sel["devices"][0])
    device, model, w = str(dev["device"]), str(dev["model"]), float(dev["chosen"]["width"])
    entry.update(backend=INT8_BACKEND, device=device, width=w)
    try:
        _, fp32_dir = _artifact(run_dir, art_dir, device, model, w, INT8_BACKEND, "fp32", opts.force, run)
        _, int8_dir = _artifact(run_dir, art_dir, device, model, w, INT8_BACKEND, "int8", opts.force, run)
        outputs = [str(int8_dir)] + ([str(fp32_dir)] if INT8_BACKEND not in opts.backends else [])
        checked = _checked_artifacts(run().model, model, w, {"fp32": fp32_dir, "int8": int8_dir})
        inputs = _int8_inputs(checked, opts)
        old = _previous_int8(opts.out)
        if not opts.force and old.get("status") == "ok" and old.get("inputs") == inputs:
            entry.update(old)  # the same two artifact files, timed with the same settings: measured already
            return "reused", outputs
        entry.update(_int8_measure(run_dir, checked, opts), inputs=inputs, status="ok")
        return "ran", outputs
    except US3LError as exc:
        error = str(exc)
    except Exception as exc:  # a runtime's own failure (onnxruntime, the quantizer): the quickstart goes on
        if debug_enabled():
            raise
        error = f"{type(exc).__name__}: {exc} (set US3L_DEBUG=1 for the traceback)"
    entry.update(status="failed", error=error)
    warn(f"INT8 line skipped, the quickstart goes on without it: {error}", markup=False)
    return "failed", []


@dataclass(frozen=True)
class CheckedArtifact:
    """An artifact the INT8 step measures: its manifest and folder, and the bytes of its files as they were
    hash-checked (``verify_manifest``), which its runtime is built from."""

    manifest: dict[str, Any]
    directory: Path
    data: dict[str, bytes]


def _checked_artifacts(network: Any, model: str, w: float, dirs: dict[str, Path]) -> dict[str, CheckedArtifact]:
    """Each of ``dirs`` (precision -> artifact folder) read and checked once (``verify_manifest``: valid, every file
    re-hashed, the ONNX artifact of ``model`` at width ``w`` in that precision, its graph ``network``, the run's, at
    that width), with the bytes that were hashed: the timing runs exactly these, not a second read of the files
    (one replaced after its check would be what ran)."""
    from us3l.deploy.manifest import read_manifest, verify_manifest

    out = {}
    for precision, folder in dirs.items():
        doc, directory = read_manifest(folder)
        _, data = verify_manifest(doc, directory, model=model, width=w, backend=INT8_BACKEND, precision=precision,
                                  network=network)
        out[precision] = CheckedArtifact(doc, directory, data)
    return out


def _int8_inputs(checked: dict[str, CheckedArtifact], opts: QuickstartOptions) -> dict[str, Any]:
    """What the INT8 line's numbers depend on: both artifact files (sha256, as checked) and the timing settings."""
    return {
        "fp32_sha256": checked["fp32"].manifest["artifact"]["sha256"],
        "int8_sha256": checked["int8"].manifest["artifact"]["sha256"],
        "threads": opts.threads,
        "max_seconds": opts.max_seconds,
    }


def _previous_int8(out: Path) -> dict[str, Any]:
    """The ``int8`` entry of the summary.json a previous run left in ``out`` (``{}`` when there is none)."""
    path = out / "summary.json"
    try:
        doc = read_json(path, "summary") if path.is_file() else {}
    except US3LError:
        return {}
    entry = doc.get("int8") if isinstance(doc, dict) else None
    return entry if isinstance(entry, dict) else {}


def _int8_measure(run_dir: Path, checked: dict[str, CheckedArtifact], opts: QuickstartOptions) -> dict[str, Any]:
    """INT8 vs FP32 latency (the two ONNX artifacts timed round-robin, as ``us3l profile`` times widths, with the
    profile step's policy; each runtime built from its hash-checked bytes, ``checked``) and kNN top-1
    (``us3l.deploy.accuracy.evaluate_artifact``, the quickstart's kNN protocol: the same numbers ``us3l eval
    --artifact`` stores, of the same INT8 file)."""
    from contextlib import ExitStack

    from us3l.deploy.accuracy import evaluate_artifact
    from us3l.eval.runner import EvalSettings, open_checkpoint
    from us3l.profiler.measure import measure_interleaved
    from us3l.profiler.timers import example_input, load_interleaved, resolve_threads, runner_timer

    mans = {p: c.manifest for p, c in checked.items()}
    threads = resolve_threads(opts.threads)
    x = example_input(tuple(int(v) for v in mans["fp32"]["input"]["shape"])).numpy()
    with ExitStack() as stack:
        timers = {
            p: runner_timer(stack.enter_context(load_interleaved(
                INT8_BACKEND, c.directory / c.manifest["artifact"]["file"], threads, precision=p, data=c.data)), x)
            for p, c in checked.items()
        }
        lat = {p: m.stats for p, m in measure_interleaved(timers, _profile_policy(opts)).items()}
    int8_dir = checked["int8"].directory
    loaded = open_checkpoint(run_dir)
    res = evaluate_artifact(loaded, int8_dir, _trained_on(loaded.meta), settings=EvalSettings(protocol="knn"),
                            threads=opts.threads, progress=_say)
    e, f = res["entry"], res["fp32"]
    scored = (e.get("artifact") or {}).get("file_sha256")
    if scored != mans["int8"]["artifact"]["sha256"]:  # evaluate_artifact read the folder again: the one timed?
        raise US3LError(f"{int8_dir} was replaced while the INT8 line measured it (timed sha256 "
                        f"{mans['int8']['artifact']['sha256'][:12]}…, scored {str(scored)[:12]}…); run the "
                        "quickstart again")
    calib = (mans["int8"].get("quantization") or {}).get("calibration") or {}
    return {
        "artifact": str(int8_dir),
        "fp32_artifact": str(checked["fp32"].directory),
        "calibration": {"size": calib.get("size"), "sha256": calib.get("sha256")},
        "latency": {
            "rule": "p50 of the two artifacts timed interleaved (round-robin) in one run",
            "threads": threads,
            **{f"{p}_p50_ms": s.p50_ms for p, s in lat.items()},
            **{f"{p}_p50_ci95_ms": list(s.ci95_ms["p50"]) for p, s in lat.items()},
            **{f"{p}_n": s.n for p, s in lat.items()},
            "ratio": lat["int8"].p50_ms / lat["fp32"].p50_ms,
        },
        "num_test": res["num_test"],
        "knn_top1": e["knn_top1"],
        "knn_top1_ci": e["knn_top1_ci"],
        "fp32_knn_top1": f["knn_top1"],
        "fp32_knn_top1_ci": f["knn_top1_ci"],
        "knn_top1_drop": e["knn_top1_drop"],
        "prediction_agreement": e["prediction_agreement"],
    }


# ------------------------------------------------------------------------------------------------ driver


def check_options(opts: QuickstartOptions) -> None:
    """Refuse (one line) any option the pipeline would reject later: nothing runs on a bad option."""
    if not opts.backends:
        raise US3LError("--backend must name onnx and/or openvino")
    for b in opts.backends:
        if b not in DEFAULT_BACKENDS:
            raise US3LError(f"quickstart profiles and exports with onnx and/or openvino, not {b!r}")
    once_each(opts.backends, "--backend", opts.backends)  # as us3l profile
    from us3l.deploy.backends import get_backend

    for b in opts.backends:  # its runtime is installed: known now, not after training
        get_backend(b).require_runtime()
    check_points(opts.points)
    if opts.latency_ms is not None:
        number(opts.latency_ms, "--latency-ms", positive=True)
    number(opts.max_seconds, "--max-seconds", positive=True)
    if opts.threads is not None:
        number(opts.threads, "--threads", positive=True, integer=True, at_most=MAX_THREADS)
    if opts.epochs is not None:  # worded as train words it
        number(opts.epochs, "--epochs", positive=True, integer=True)
    from us3l.train.config import resolve_config

    overrides: dict[str, Any] = {"out": str(opts.out / "run")}
    if opts.epochs is not None:
        overrides["epochs"] = opts.epochs
    from us3l.train.loop import check_model

    check_model(resolve_config(opts.config, overrides))  # config valid with these epochs; its network can be built
    from us3l.io import check_replaceable, output_folder
    from us3l.report import REPORT_FILE, check_report_replaceable

    output_folder(opts.out)
    # files of the user's where the last steps write: refused now, not after training
    check_report_replaceable(opts.out / REPORT_FILE)
    check_replaceable(opts.out / "summary.json", "us3l quickstart summary",
                      lambda head: f'"kind": "{SUMMARY_KIND}"'.encode() in head)


def run_quickstart(opts: QuickstartOptions) -> dict[str, Any]:
    """Run (or resume) the pipeline into ``opts.out``; return the summary document (also written).

    Every option is checked first (``check_options``); ``opts.out`` is locked for the whole run, so a second
    quickstart into the same folder fails at once.
    """
    check_options(opts)
    from us3l.train.data_identity import reusing

    # the data the train step reads, and its fingerprint, serve the evaluation and INT8 steps: read and
    # fingerprinted once
    with folder_lock(opts.out, "quickstart folder"), reusing() as reused:
        return _run_pipeline(opts, reused)


def _run_pipeline(opts: QuickstartOptions, reused: list[LoadedData] | None = None) -> dict[str, Any]:
    """The steps; ``reused``: gets the train step's data, which the later steps reuse (``run_quickstart``)."""
    out = opts.out
    run_dir, acc_path = out / "run", out / "accuracy.json"
    profiles_dir, sel_path, art_dir = out / "profiles", out / "selection.json", out / "artifacts"
    logs: list[StepLog] = []
    t0 = time.perf_counter()

    _timed("train", logs, lambda: _train(opts, run_dir, reused))
    widths = _widths(run_dir, opts.points)
    _timed("evaluate", logs, lambda: _evaluate(run_dir, acc_path, widths, opts.force))
    _timed("profile", logs, lambda: _profile(opts, run_dir, widths, profiles_dir))
    meta = read_json(run_dir / "checkpoint.json", "checkpoint metadata")
    profile_paths = [_profile_path(profiles_dir, meta["model"], b) for b in opts.backends]
    budget_ms = opts.latency_ms if opts.latency_ms is not None else default_budget_ms(profile_paths)
    origin = "given" if opts.latency_ms else "default: midway between two adjacent widths' latencies"
    _say(f"latency budget: {budget_text(budget_ms)} ms per image ({origin})")
    rule = "given (--latency-ms)" if opts.latency_ms is not None else BUDGET_RULE
    try:
        _timed("select", logs, lambda: _select(profile_paths, acc_path, sel_path, budget_ms, opts.force))
    except US3LError as exc:
        if exc.exit_code != 3 or not sel_path.is_file():
            raise
        # no width fits (exit 3): selection.json says so; the page and summary.json of a previous run must not
        # go on showing its answer beside it
        logs.append(StepLog("select", "no width fits", 0.0, [str(sel_path)]))
        summary = _summary(out, meta, budget_ms, logs, time.perf_counter() - t0, rule, None)
        atomic_write_json(out / "summary.json", summary)
        _write_report(out)
        raise InfeasibleRun(str(exc), summary) from exc
    run = _run_checkpoint(run_dir)  # loaded (and hashed) once, by the first reuse check that needs it
    _timed("export", logs, lambda: _export(run_dir, sel_path, art_dir, opts.force, run))
    int8: dict[str, Any] = {}
    if opts.int8:
        _timed("int8", logs, lambda: _int8(opts, run_dir, sel_path, art_dir, int8, run))

    from us3l.report import write_report

    _timed("report", logs, lambda: ("ran", [str(_write_report(out))]))
    summary = _summary(out, meta, budget_ms, logs, time.perf_counter() - t0, rule, int8 if opts.int8 else None)
    atomic_write_json(out / "summary.json", summary)
    # the report reads summary.json too: render it once more now that it exists
    write_report(out)
    return summary


def _write_report(out: Path) -> Path:
    """The report step: ``out/report.html``, and the warnings ``us3l report`` prints (``Report.warnings``), which
    the page alone would not tell on the terminal. Only this first render warns: the pipeline's second one (once
    summary.json exists) writes the page silently."""
    from us3l.report import render_report, save_report

    report = render_report(out)
    for line in report.warnings():
        warn(line, markup=False)
    return save_report(report)


def _selection_row(d: dict[str, Any], budget_ms: float) -> dict[str, Any]:
    """One device of selection.json as the summary shows it: the choice, its interval, slack and why."""
    c = d.get("chosen") or {}
    slack = (d.get("slack") or {}).get("latency_ms")
    return {
        "device": d["device"],
        "backend": d["backend"],
        "width": c.get("width"),
        "accuracy": c.get("accuracy"),
        "accuracy_ci": c.get("accuracy_ci"),
        "latency_ms": c.get("latency_ms"),
        "slack_ms": slack,
        "slack_fraction": None if slack is None else slack / budget_ms,
        "decided_by": d.get("decided_by"),
        "tied_widths": d.get("tied_widths") or [],
        "tie_test": d.get("tie_test"),
        "warnings": d.get("warnings") or [],
    }


def _summary(
    out: Path, meta: dict[str, Any], budget_ms: float, logs: list[StepLog], seconds: float, budget_rule: str = "given",
    int8: dict[str, Any] | None = None,
) -> dict:
    from us3l.deploy.select import read_selection
    from us3l.eval.accuracy import load_accuracy

    acc = load_accuracy(out / "accuracy.json")
    sel = read_selection(out / "selection.json")
    doc = header(SUMMARY_KIND, SUMMARY_SCHEMA)
    doc.update(
        model=meta.get("model"),
        method=meta.get("method"),
        data=(meta.get("data") or {}).get("spec") if isinstance(meta.get("data"), dict) else meta.get("data"),
        budget_ms=budget_ms,
        seconds=round(seconds, 1),
        steps=[asdict(s) for s in logs],
        budget_rule=budget_rule,
        num_test=acc.get("num_test"),
        accuracy=[
            {
                "width": r["width"],
                "knn_top1": r.get("knn_top1"),
                "knn_top1_ci": r.get("knn_top1_ci"),
                "random_init_knn_top1": (r.get("baseline_random_init") or {}).get("knn_top1"),
                "random_init_knn_top1_ci": (r.get("baseline_random_init") or {}).get("knn_top1_ci"),
                "macs": r.get("macs"),
            }
            for r in acc["widths"]
        ],
        baselines=acc.get("baselines"),
        selection=[_selection_row(d, budget_ms) for d in sel["devices"]],
        int8=int8,
        report=str(out / "report.html"),
        # the files its numbers were read from: the report flags a summary whose files have changed since
        inputs={name: {"path": name, "sha256": file_sha256(out / name)}
                for name in ("accuracy.json", "selection.json")},
    )
    return doc


def _pm(v: Any, ci: Any) -> str:
    """``83.4 ±2.1`` (percent, the larger distance to the 95 % interval's ends); ``-`` when absent."""
    if v is None:
        return "-"
    if not ci:
        return f"{100 * v:.1f}"
    return f"{100 * v:.1f} ±{100 * max(v - ci[0], ci[1] - v):.1f}"


def _print_summary(doc: dict[str, Any], wide: bool = False) -> None:
    """The steps, the accuracy per width and the selected width per backend, on stdout."""
    print_table(
        f"us3l quickstart: {doc['model']} / {doc['method']} on {doc['data']} ({doc['seconds']:.0f}s)",
        [Col("step", key=True), Col("status", key=True), Col("seconds", key=True, justify="right"),
         Col("output", key=True, fold=True)],
        [[s["name"], s["status"], f"{s['seconds']:.1f}", "\n".join(s["outputs"])] for s in doc["steps"]],
        wide=wide,
    )
    n = doc.get("num_test")
    rows = []
    for r in doc["accuracy"]:
        macs = "-" if r["macs"] is None else f"{r['macs'] / 1e6:.1f}"
        rows.append([
            f"{r['width']:g}",
            _pm(r.get("knn_top1"), r.get("knn_top1_ci")),
            _pm(r.get("random_init_knn_top1"), r.get("random_init_knn_top1_ci")),
            macs,
        ])
    caption = None
    b = doc.get("baselines")
    if b:
        raw = b.get("raw_pixels") or {}
        caption = (
            f"baselines (same kNN): raw pixels {_pm(raw.get('knn_top1'), raw.get('knn_top1_ci'))}, "
            f"chance {100 * b['chance']:.1f}; random-init: seed {b['random_init_seed']}"
        )
    print_table(
        "kNN top-1 per width (%, ± 95% Wilson interval" + (f" over {n} test images)" if n else ")"),
        [Col("width", key=True, justify="right"), Col("kNN top-1", key=True, justify="right"),
         Col("random-init kNN top-1", key=True, justify="right"), Col("MMACs", justify="right", rank=1)],
        rows, wide=wide, caption=caption,
    )
    rows = []
    for r in doc["selection"]:
        lat = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.3f}"
        slack = "-" if r.get("slack_ms") is None else f"{r['slack_ms']:.3f} ({100 * r['slack_fraction']:.0f}%)"
        decided = r.get("decided_by") or "-"
        if decided == "tie->latency":
            decided += " (tied: " + ", ".join(f"{w:g}" for w in r.get("tied_widths") or []) + ")"
        rows.append([
            r["device"], r["backend"], f"{r['width']:g}" if r["width"] else "none",
            _pm(r["accuracy"], r.get("accuracy_ci")), lat, slack, decided,
        ])
    print_table(
        f"selected width per backend for a {budget_text(doc['budget_ms'])} ms budget (upper 95% CI of p90)",
        [Col("device", key=True), Col("backend", key=True), Col("width", key=True, justify="right"),
         Col("kNN top-1", key=True, justify="right"), Col("latency ms", key=True, justify="right"),
         Col("slack ms", justify="right", rank=1), Col("decided by", rank=1, fold=True)],
        rows, wide=wide,
    )
    line = int8_line(doc.get("int8"))
    if line:
        result_line(line)
    _say(f"budget: {doc.get('budget_rule', 'given')}")
    for r in doc["selection"]:
        for w in r.get("warnings") or []:
            warn(w)
    _say(f"report: {doc['report']}")


def int8_line(e: dict[str, Any] | None) -> str | None:
    """The quickstart's INT8 line (stdout), or None when the INT8 step was skipped or failed."""
    if not e or e.get("status") not in ("ok",):
        return None
    lat = e["latency"]
    calib = (e.get("calibration") or {}).get("size")
    extra = []
    if e.get("knn_top1_drop") is not None:
        extra.append(f"{-100 * e['knn_top1_drop']:+.1f} pts")
    if e.get("prediction_agreement") is not None:
        extra.append(f"{100 * e['prediction_agreement']:.1f}% same predictions")
    return (
        f"INT8 ({e['backend']}, width {e['width']:g}, {calib} calibration images): p50 {lat['int8_p50_ms']:.3f} ms vs "
        f"{lat['fp32_p50_ms']:.3f} ms FP32 ({lat['ratio']:.2f}x, timed interleaved); kNN top-1 "
        f"{_pm(e['knn_top1'], e.get('knn_top1_ci'))} vs {_pm(e['fp32_knn_top1'], e.get('fp32_knn_top1_ci'))} FP32"
        + (f" ({', '.join(extra)})" if extra else "")
    )


@app.command("quickstart")
def quickstart_cmd(
    out: Path = typer.Option(Path("quickstart"), "--out", help="Folder for every file the pipeline writes."),
    latency_ms: float = typer.Option(
        None, "--latency-ms", help="Latency budget per image, ms (default: midway between two widths' p90 bounds)."
    ),
    config: Path = typer.Option(
        None, "--config", "-c", help="Training config (default: the packaged default.yaml)."
    ),
    epochs: int = typer.Option(None, "--epochs", help="Override the training epochs (multiple of 4)."),
    points: int = typer.Option(
        8, "--points", help="Grid widths to evaluate and profile, plus whichever of 1/0.75/0.5/0.25 they lack."
    ),
    backend: list[str] = typer.Option(
        [], "--backend", help="onnx and/or openvino (repeat or comma-separate; default: both)."
    ),
    backends_old: str | None = typer.Option(None, "--backends", hidden=True),  # deprecated spelling of --backend
    max_seconds: float = typer.Option(2.0, "--max-seconds", help="Latency measurement cap per width (s)."),
    threads: int = typer.Option(
        None, "--threads", min=1, max=MAX_THREADS, help="CPU threads for inference (default: all cores)."
    ),
    force: bool = typer.Option(False, "--force", help="Re-run every step even if its output is complete."),
    int8: bool = typer.Option(
        True, "--int8/--no-int8", help="Also export the selected width as INT8 ONNX and print its latency and kNN "
        "top-1 against FP32 (one line; a failure is a warning, not an error)."
    ),
    wide: bool = typer.Option(False, "--wide", help="Show every table column, however wide."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No step lines or notes (warnings still print)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON document."),
) -> None:
    """Run the whole pipeline on the built-in data: train, evaluate, profile, select, export, report.

    Exit 3 when no profiled width fits the --latency-ms budget."""
    from us3l.validate import name_list

    set_quiet(quiet)
    names = list(backend)
    if backends_old is not None:
        deprecated(f"--backends {backends_old}", f"--backend {backends_old}", "quickstart")
        names.append(backends_old)
    from us3l.devices.spec import canonical_backend

    picked = tuple(canonical_backend(n) for n in name_list(names, "--backend"))  # ONNX, ort: onnx, as elsewhere
    opts = QuickstartOptions(
        out=out,
        config=config,
        epochs=epochs,
        latency_ms=latency_ms,
        points=points,
        backends=picked or DEFAULT_BACKENDS,
        max_seconds=max_seconds,
        threads=threads,
        force=force,
        int8=int8,
    )
    try:
        doc = run_quickstart(opts)
    except InfeasibleRun as exc:  # exit 3: stdout still gets the answer (no width), stderr the error line
        _show_summary(exc.summary, json_out, wide)
        raise
    _show_summary(doc, json_out, wide)


def _show_summary(doc: dict[str, Any], json_out: bool, wide: bool) -> None:
    """The summary on stdout: one JSON document with ``--json``, else the tables."""
    if json_out:
        emit_json(doc)
    else:
        _print_summary(doc, wide)
