"""The profile result file: schema, atomic write (JSON + CSV), load with a schema check, table rows.

``profiles/<model>-<device>-<backend>-<precision>.json`` (kind ``profile``, schema 1; see docs/CONTRACT.md):
``us3l.io.header`` + model, checkpoint_sha256, init_seed, device, backend, precision, input_shape, threads,
policy, fingerprint, records (each with the timed graph's ``bn``, ``graph_sha256`` and
``graph_structure_sha256``). The CSV next to it has one row per width without the raw samples.

Optional fields (absent or null in profiles written before them; schema 1 still): ``peak_rss_bytes`` (peak
resident memory of the process that held the sessions: this one during the sweep, or the remote runner),
``window`` (how many sessions were held at once and why: ``us3l.profiler.window.WindowPlan`` plus ``max_live`` and
``peak_scope``), ``time_budget`` (``max_total_seconds`` or null, ``wall_s``, ``prepare_s``, ``measure_s``,
``stable_widths``, ``unstable_widths``, ``budget_stopped``, ``requested_widths``, ``prepared_widths``: fewer
when preparation reached half the budget) and, per record, ``share_s`` (the width's share of
the budget, null without one), ``timing_s`` (seconds it spent being timed) and ``interpolated`` (true: an
adaptive sweep predicted its latency from measured neighbours, ``us3l.profiler.interpolate``; n = 0, never stable,
never selected), plus ``adaptive`` at the top (null, or the fit: measured/interpolated counts, rounds, error).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from us3l.errors import US3LError
from us3l.io import atomic_write_all, check_replaceable, check_schema, header, json_text, non_finite_at, read_json
from us3l.profiler.stats import LatencyStats
from us3l.validate import integer, number, one_of, safe_name
from us3l.width_key import width_key, width_keys

KIND = "profile"
SCHEMA_VERSION = 1

CSV_COLUMNS = (
    "width", "channels", "macs", "params", "weight_bytes", "activation_bytes", "n", "mean_ms", "std_ms",
    "p50_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "p50_ci_lo_ms", "p50_ci_hi_ms", "p90_ci_lo_ms",
    "p90_ci_hi_ms", "p99_ci_lo_ms", "p99_ci_hi_ms", "rel_ci_halfwidth", "stable", "stop_reason", "bn",
    "graph_sha256",
)
#: The leading columns of every profile table us3l has written (``bn`` and ``graph_sha256`` came later): a table
#: from an older us3l is still ours to replace.
CSV_COLUMNS_V1 = CSV_COLUMNS[:CSV_COLUMNS.index("stop_reason") + 1]


@dataclass(frozen=True)
class ProfileRecord:
    """One width: its static network's size and cost, and its measured latency.

    ``bn``: how the timed graph's BatchNorm was frozen (``us3l.deploy.graph.BN_KINDS``: calibrated, running,
    frozen-uncalibrated -- initial statistics, same graph and latency as calibrated -- or none).
    ``graph_sha256`` / ``graph_structure_sha256``: the timed graph (see ``us3l.deploy.graph``); None for eager torch
    and for profiles written before they were recorded.
    """

    width: float
    channels: int
    macs: int
    params: int
    weight_bytes: int | None  # None: absent from the file (optional there; select then has no memory figures)
    activation_bytes: int | None
    latency: LatencyStats
    stop_reason: str = ""
    bn: str | None = None
    graph_sha256: str | None = None
    graph_structure_sha256: str | None = None
    share_s: float | None = None
    timing_s: float | None = None
    interpolated: bool = False  # us3l profile --adaptive: latency predicted from measured neighbours (n = 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "channels": self.channels,
            "macs": self.macs,
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "activation_bytes": self.activation_bytes,
            "stop_reason": self.stop_reason,
            "bn": self.bn,
            "graph_sha256": self.graph_sha256,
            "graph_structure_sha256": self.graph_structure_sha256,
            "share_s": self.share_s,
            "timing_s": self.timing_s,
            "interpolated": self.interpolated,
            "latency": self.latency.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProfileRecord:
        return cls(
            width=float(d["width"]),
            channels=int(d["channels"]),
            macs=int(d["macs"]),
            params=int(d["params"]),
            weight_bytes=None if d.get("weight_bytes") is None else int(d["weight_bytes"]),
            activation_bytes=None if d.get("activation_bytes") is None else int(d["activation_bytes"]),
            latency=LatencyStats.from_dict(d["latency"]),
            stop_reason=str(d.get("stop_reason", "")),
            bn=d.get("bn"),
            graph_sha256=d.get("graph_sha256"),
            graph_structure_sha256=d.get("graph_structure_sha256"),
            share_s=None if d.get("share_s") is None else float(d["share_s"]),
            timing_s=None if d.get("timing_s") is None else float(d["timing_s"]),
            interpolated=bool(d.get("interpolated", False)),
        )


@dataclass(frozen=True)
class Profile:
    """A full sweep of one model on one device with one backend and precision."""

    model: str
    device: str
    backend: str
    precision: str
    input_shape: tuple[int, ...]
    threads: int | None
    policy: dict[str, Any]
    fingerprint: dict[str, Any]
    records: tuple[ProfileRecord, ...]
    checkpoint_sha256: str | None = None
    init_seed: int | None = None  # seed of a fresh model's random init (None: checkpoint or unknown)
    reach: str = "local"
    runtime_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    peak_rss_bytes: int | None = None
    window: dict[str, Any] | None = None
    time_budget: dict[str, Any] | None = None
    adaptive: dict[str, Any] | None = None

    @property
    def stem(self) -> str:
        return profile_stem(self.model, self.device, self.backend, self.precision)

    def to_dict(self) -> dict[str, Any]:
        return {
            **header(KIND, SCHEMA_VERSION),
            "model": self.model,
            "checkpoint_sha256": self.checkpoint_sha256,
            "init_seed": self.init_seed,
            "device": self.device,
            "backend": self.backend,
            "precision": self.precision,
            "runtime_version": self.runtime_version,
            "reach": self.reach,
            "input_shape": list(self.input_shape),
            "threads": self.threads,
            "policy": dict(self.policy),
            "fingerprint": self.fingerprint,
            "extra": dict(self.extra),
            "peak_rss_bytes": self.peak_rss_bytes,
            "window": None if self.window is None else dict(self.window),
            "time_budget": None if self.time_budget is None else dict(self.time_budget),
            "adaptive": None if self.adaptive is None else dict(self.adaptive),
            "records": [r.to_dict() for r in self.records],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str | Path = "<profile>") -> Profile:
        validate_profile(d, path)
        try:
            return cls(
                model=str(d["model"]),
                device=str(d["device"]),
                backend=str(d["backend"]),
                precision=str(d["precision"]),
                input_shape=tuple(int(v) for v in d["input_shape"]),
                threads=None if d.get("threads") is None else int(d["threads"]),
                policy=dict(d.get("policy") or {}),
                fingerprint=dict(d.get("fingerprint") or {}),
                records=tuple(ProfileRecord.from_dict(r) for r in d["records"]),
                checkpoint_sha256=d.get("checkpoint_sha256"),
                init_seed=None if d.get("init_seed") is None else int(d["init_seed"]),
                reach=str(d.get("reach", "local")),
                runtime_version=d.get("runtime_version"),
                extra=dict(d.get("extra") or {}),
                peak_rss_bytes=None if d.get("peak_rss_bytes") is None else int(d["peak_rss_bytes"]),
                window=None if d.get("window") is None else dict(d["window"]),
                time_budget=None if d.get("time_budget") is None else dict(d["time_budget"]),
                adaptive=None if d.get("adaptive") is None else dict(d["adaptive"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise US3LError(f"{path} is a damaged profile file ({type(exc).__name__}: {exc})") from None


#: Latency fields every record has (milliseconds, finite and > 0; ``std_ms`` may be 0).
_LATENCY_MS = ("mean_ms", "p50_ms", "p90_ms", "p99_ms", "min_ms", "max_ms")
#: Record fields that are counts (``macs`` and ``params`` finite and > 0, the byte counts >= 0 or absent).
_COUNTS = (("macs", True), ("params", True), ("weight_bytes", False), ("activation_bytes", False), ("channels", True))
#: No vision network comes near 1e15 MACs, parameters or bytes per image: a larger count is a corrupt file.
MAX_COUNT = 1e15


#: What ``us3l profile --artifact`` appends to the model name of a switchable artifact's profile
#: (``cifar_resnet18-switchable``): it measured the same network as a static profile of that model.
SWITCHABLE_SUFFIX = "-switchable"


def measured_model(model: str, extra: Any) -> str:
    """The model a profile measured: its ``model``, without the ``SWITCHABLE_SUFFIX`` that a switchable artifact's
    profile (``extra.switchable`` set) adds."""
    switchable = isinstance(extra, dict) and extra.get("switchable") is not None
    return model.removesuffix(SWITCHABLE_SUFFIX) if switchable else model

_SHA256 = re.compile(r"[0-9a-f]{64}")


def validate_profile(doc: Any, path: str | Path) -> None:
    """Schema check plus every number a profile holds: finite, positive where it must be (one-line errors).

    E.g. ``profiles/cpu.json: records[3].latency.p50_ms must be a finite positive number, got nan``. A profile
    with NaN, infinite, zero or negative latencies, samples or MACs is refused rather than selected from, and so is
    one holding what no measurement would have been let through when it arrived: a latency or sample above one
    hour per inference (``measure.MAX_SAMPLE_S``), a peak or window memory figure outside ``remote.FACTS``.
    """
    from us3l.deploy.backends.base import PRECISIONS
    from us3l.devices.spec import BACKENDS

    check_schema(doc, KIND, SCHEMA_VERSION, path)
    for key in ("model", "device", "backend", "precision"):  # every profile us3l writes names all four
        if key not in doc:
            raise US3LError(f"{path}: '{key}' is missing")
        safe_name(doc[key], f"{path}: {key}")
    if doc["device"] != doc["device"].lower():  # "CPU" and "cpu" would be two devices to select and the report
        raise US3LError(f"{path}: device {doc['device']!r} must be lowercase, as device files and --device name "
                        f"devices (us3l profile --device {doc['device']} writes {doc['device'].lower()!r})")
    one_of(doc["backend"], BACKENDS, f"{path}: backend")
    one_of(doc["precision"], PRECISIONS, f"{path}: precision")
    # the bounds a fresh measurement is held to when it arrives (remote.FACTS), not looser ones on the way back in
    _memory_fact(doc.get("peak_rss_bytes"), f"{path}: peak_rss_bytes", "peak_rss_bytes")
    for key, kinds in (("runtime_version", (str, type(None))), ("fingerprint", (dict, type(None)))):
        if not isinstance(doc.get(key), kinds):
            raise US3LError(f"{path}: {key} must be {'a string' if key == 'runtime_version' else 'an object'} "
                            f"or null, got {doc.get(key)!r:.80}")
    for key in ("window", "time_budget", "adaptive", "extra", "policy"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise US3LError(f"{path}: {key} must be an object, got {doc[key]!r:.80}")
    for key in ("checkpoint_sha256", "reach"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise US3LError(f"{path}: {key} must be a string or null, got {doc[key]!r:.80}")
    _validate_switchable((doc.get("extra") or {}).get("switchable"), doc.get("records"), path)
    shape = doc.get("input_shape")
    if not isinstance(shape, list) or len(shape) != 4:
        raise US3LError(f"{path}: input_shape must be [batch, channels, height, width], got {shape!r:.80}")
    for j, v in enumerate(shape):
        number(v, f"{path}: input_shape[{j}]", positive=True, integer=True)
    number(doc.get("threads"), f"{path}: threads", positive=True, integer=True, optional=True)
    number(doc.get("init_seed"), f"{path}: init_seed", nonnegative=True, integer=True, optional=True)
    window = doc.get("window") or {}
    if "size" in window:
        number(window["size"], f"{path}: window.size", positive=True, integer=True)
    for key, fact in _WINDOW_FACTS:  # the runner's (or this process's) memory when the window was sized
        if key in window:
            _memory_fact(window[key], f"{path}: window.{key}", fact)
    records = doc.get("records")
    if not isinstance(records, list) or not records:
        raise US3LError(f"{path}: 'records' must be a non-empty list")
    rule = _stability_rule(doc.get("policy"), path)
    seen: set[float] = set()
    for i, rec in enumerate(records):
        where = f"{path}: records[{i}]"
        if not isinstance(rec, dict):
            raise US3LError(f"{where} is not an object")
        width = number(rec.get("width"), f"{where}.width", positive=True, at_most=1.0)
        if width_key(width) in seen:
            raise US3LError(f"{where}.width {width:g} appears twice")
        seen.add(width_key(width))
        for key in ("share_s", "timing_s"):
            number(rec.get(key), f"{where}.{key}", nonnegative=True, optional=True)
        for key, positive in _COUNTS:
            if key in rec or positive:
                number(rec.get(key), f"{where}.{key}", positive=positive, nonnegative=True, integer=True,
                       at_most=MAX_COUNT, optional=not positive)
        for key in ("stop_reason", "bn", "graph_sha256", "graph_structure_sha256"):
            value = rec.get(key)
            if value is not None and not isinstance(value, str):
                raise US3LError(f"{where}.{key} must be a string or null, got {value!r:.80}")
            if isinstance(value, str) and not (value.isprintable() and len(value) <= 200):
                # shown by `profile show` and the report: an escape sequence would reach the terminal
                raise US3LError(f"{where}.{key} must be printable text, got {value!r:.80}")
        for key in ("graph_sha256", "graph_structure_sha256"):
            if rec.get(key) is not None and not _SHA256.fullmatch(rec[key]):
                raise US3LError(f"{where}.{key} must be a sha256 (64 hex digits) or null, got {rec[key]!r:.80}")
        lat = rec.get("latency")
        if not isinstance(lat, dict):
            raise US3LError(f"{where}.latency must be an object, got {lat!r}")
        interpolated = rec.get("interpolated", False)
        if not isinstance(interpolated, bool):
            raise US3LError(f"{where}.interpolated must be true or false, got {interpolated!r:.80}")
        where = f"{where}.latency"
        if interpolated:  # predicted, not measured: no samples, never stable
            if lat.get("n") != 0 or lat.get("samples_ms") or lat.get("stable") is not False:
                raise US3LError(f"{where}: an interpolated record must have n 0, no samples and stable false")
        else:
            number(lat.get("n"), f"{where}.n", positive=True, integer=True)
        samples = lat.get("samples_ms")
        if not interpolated:  # the samples first: a sample out of bounds is named, not the statistics it gives
            if not isinstance(samples, list) or not samples:
                raise US3LError(f"{where}.samples_ms must be a non-empty list, got {samples!r}")
            for j, v in enumerate(samples):
                _sample_ms(v, f"{where}.samples_ms[{j}]")
        for key in _LATENCY_MS:
            _sample_ms(lat.get(key), f"{where}.{key}")
        number(lat.get("std_ms"), f"{where}.std_ms", nonnegative=True)
        _check_order(lat, where)
        number(lat.get("rel_ci_halfwidth"), f"{where}.rel_ci_halfwidth", nonnegative=True, optional=True)
        if not isinstance(lat.get("stable", False), bool):  # "false" (a string) would read as stable
            raise US3LError(f"{where}.stable must be true or false, got {lat['stable']!r:.80}")
        ci = lat.get("ci95_ms")
        if not isinstance(ci, dict):
            raise US3LError(f"{where}.ci95_ms must be an object, got {ci!r}")
        for q, bounds in ci.items():
            if not isinstance(bounds, list | tuple) or len(bounds) != 2:
                raise US3LError(f"{where}.ci95_ms.{q} must be [low, high], got {bounds!r}")
            for j, v in enumerate(bounds):
                number(v, f"{where}.ci95_ms.{q}[{j}]", positive=True)
            if bounds[0] > bounds[1]:
                raise US3LError(f"{where}.ci95_ms.{q} must be [low, high] with low <= high, got {bounds!r:.80}")
        if interpolated:
            continue
        _check_against_samples(lat, samples, where, rule, rec.get("stop_reason"))
    bad = non_finite_at(doc)  # fingerprint, policy, extra, ...: parts not checked field by field above
    if bad is not None:
        raise US3LError(f"{path}: {bad} is not a finite number (NaN or Infinity, which JSON cannot hold and us3l "
                        "never writes): an edited or damaged profile")


#: The ``window`` fields that are memory measurements, with the runner's fact (``us3l.profiler.remote.FACTS``) whose
#: bounds they are held to: the baseline is the RSS before any session was loaded.
_WINDOW_FACTS = (("baseline_bytes", "rss_bytes"), ("available_bytes", "available_bytes"))


def _memory_fact(value: Any, what: str, fact: str) -> None:
    """A recorded memory figure (bytes, or null) within the bounds of the runner's ``fact`` as it is checked when it
    arrives (``us3l.profiler.remote.FACTS``: an integer up to ``MAX_MEMORY_BYTES``)."""
    from us3l.profiler.remote import FACTS

    least, most, _ = FACTS[fact]
    assert most is not None  # every memory fact has a fixed bound
    integer(value, what, least, most, optional=True)


def _sample_ms(value: Any, what: str) -> None:
    """A latency in milliseconds as a timer may measure it: finite, above 0 and at most one hour per inference
    (``us3l.profiler.measure.MAX_SAMPLE_S``, the bound every sample is held to when it arrives, in ms)."""
    from us3l.profiler.measure import MAX_SAMPLE_S

    number(value, what, positive=True, at_most=MAX_SAMPLE_S * 1e3)


#: The order statistics of every latency record, which never decrease along this tuple.
_ORDERED_MS = ("min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")


def _check_order(lat: dict[str, Any], where: str) -> None:
    """``min <= p50 <= p90 <= p99 <= max`` (to a relative 1e-9 for rounding): a profile whose quantiles decrease is
    refused, not selected from."""
    for low, high in zip(_ORDERED_MS, _ORDERED_MS[1:], strict=False):
        if lat[low] > lat[high] * (1.0 + 1e-9):
            raise US3LError(f"{where}: {low} {lat[low]:g} is above {high} {lat[high]:g}; the quantiles of a latency "
                            "record never decrease (min <= p50 <= p90 <= p99 <= max): an edited or damaged profile")


#: Statistics recomputed from ``samples_ms`` (with ``us3l.profiler.stats.summarize``, as the profiler does) and
#: compared with the file's, as are the ``ci95_ms`` bounds: every figure select compares. ``rel_ci_halfwidth``
#: and ``stable`` are compared too where the profile records its measurement policy (the stopping rule's target
#: and sample minimum): a ``stable: true`` written over an unstable width hid select's and the report's warning.
_FROM_SAMPLES = ("n", *_LATENCY_MS, "std_ms")
#: Relative tolerance of that comparison: a remote runner's numpy may round the last bits differently.
_SAMPLES_REL_TOL = 1e-6


def _stability_rule(policy: Any, path: str | Path) -> tuple[float, int] | None:
    """(target_rel_ci, min_samples) of the profile's ``policy``, as the profiler's stopping rule used them; ``None``
    for a profile that records no policy (its widths' ``stable`` cannot be re-derived)."""
    if not isinstance(policy, dict) or "target_rel_ci" not in policy:
        return None
    from dataclasses import fields

    from us3l.profiler.measure import MeasurementPolicy

    known = {f.name for f in fields(MeasurementPolicy)}
    try:
        rule = MeasurementPolicy().replace(**{k: v for k, v in policy.items() if k in known})
    except (TypeError, ValueError) as exc:
        raise US3LError(f"{path}: policy: {exc}") from None
    return rule.target_rel_ci, rule.min_samples


def _check_against_samples(
    lat: dict[str, Any], samples: list[Any], where: str, rule: tuple[float, int] | None = None,
    stop_reason: str | None = None,
) -> None:
    """The statistics of a measured record are those of its ``samples_ms``: a p90 (or its CI bound) lowered by hand
    would otherwise get that width selected under a budget its measurements do not meet. With the profile's
    stopping ``rule``, so are ``rel_ci_halfwidth`` and ``stable`` (a width cut short by the time budget before
    its sample minimum is not called stable, as ``us3l.profiler.measure`` records it)."""
    import math

    from us3l.profiler.stats import DEFAULT_TARGET_REL_CI, summarize

    ours = summarize(samples, DEFAULT_TARGET_REL_CI if rule is None else rule[0]).to_dict()
    found: list[tuple[str, Any, Any]] = [(k, lat.get(k), ours[k]) for k in _FROM_SAMPLES]
    found += [(f"ci95_ms.{q}[{j}]", bounds[j], ours["ci95_ms"][q][j])
              for q, bounds in lat["ci95_ms"].items() if q in ours["ci95_ms"] for j in (0, 1)]
    if rule is not None:
        got, want = lat.get("rel_ci_halfwidth"), ours["rel_ci_halfwidth"]  # None: an infinite interval
        if (got is None) != (want is None):
            raise US3LError(f"{where}.rel_ci_halfwidth is {got} but its samples_ms give {want}: an edited or damaged "
                            "profile")
        if want is not None:
            found.append(("rel_ci_halfwidth", got, want))
    for key, got, want in found:
        if not math.isclose(got, want, rel_tol=_SAMPLES_REL_TOL, abs_tol=1e-12):
            raise US3LError(f"{where}.{key} is {got:g} but its samples_ms give {want:g}: the statistics of a "
                            "measured width are those of its samples (an edited or damaged profile)")
    if rule is None:
        return
    stable = ours["stable"] and not (stop_reason == "budget" and ours["n"] < rule[1])
    if lat.get("stable", False) != stable:
        raise US3LError(f"{where}.stable is {str(lat.get('stable', False)).lower()} but its samples_ms give "
                        f"{str(stable).lower()} under the profile's policy (median interval within "
                        f"±{rule[0]:g} of the median, no drift, and at least {rule[1]} samples where the time budget "
                        "stopped it): an edited or damaged profile")


def _validate_switchable(sw: Any, records: Any, path: str | Path) -> None:
    """``extra.switchable`` of a profile measured through a switchable artifact (``us3l profile --artifact``):
    ``us3l select --latency-schedule`` maps each chosen width to its index in ``widths`` and names the artifact."""
    if sw is None:
        return
    where = f"{path}: extra.switchable"
    if not isinstance(sw, dict):
        raise US3LError(f"{where} must be an object or null, got {sw!r:.80}")
    for key in ("artifact", "sha256"):
        if not isinstance(sw.get(key), str):
            raise US3LError(f"{where}.{key} must be a string, got {sw.get(key)!r:.80}")
    if sw.get("relative_to", "profile") != "profile":
        raise US3LError(f"{where}.relative_to must be \"profile\" (the artifact path starts at the profile's folder) "
                        f"or absent, got {sw.get('relative_to')!r:.80}")
    grid = sw.get("widths")
    if not isinstance(grid, list) or not grid:
        raise US3LError(f"{where}.widths must be a non-empty list of widths, got {grid!r:.80}")
    keys = {k for j, w in enumerate(grid)
            for k in width_keys(number(w, f"{where}.widths[{j}]", positive=True, at_most=1.0))}
    for rec in records if isinstance(records, list) else ():
        w = rec.get("width") if isinstance(rec, dict) else None
        if isinstance(w, int | float) and not isinstance(w, bool) and not set(width_keys(w)) & set(keys):
            raise US3LError(f"{where}.widths does not hold the record width {w:g}: not the artifact's grid")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def profile_stem(model: str, device: str, backend: str, precision: str) -> str:
    """``<model>-<device>-<backend>-<precision>`` with unsafe characters replaced."""
    return "-".join(_slug(p) for p in (model, device, backend, precision))


def csv_text(profile: Profile) -> str:
    """The per-width table as CSV (no raw samples)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in profile.records:
        s = r.latency
        writer.writerow([
            r.width, r.channels, r.macs, r.params, r.weight_bytes, r.activation_bytes, s.n,
            f"{s.mean_ms:.6f}", f"{s.std_ms:.6f}", f"{s.p50_ms:.6f}", f"{s.p90_ms:.6f}", f"{s.p99_ms:.6f}",
            f"{s.min_ms:.6f}", f"{s.max_ms:.6f}",
            *(f"{v:.6f}" for q in ("p50", "p90", "p99") for v in s.ci95_ms[q]),
            f"{s.rel_ci_halfwidth:.6f}", int(s.stable), r.stop_reason, r.bn or "", r.graph_sha256 or "",
        ])
    return buf.getvalue()


def profile_paths(out_dir: str | Path, stem: str) -> tuple[Path, Path]:
    """``out_dir/<stem>.json`` and ``.csv``, refused in one line where a file there is not a us3l profile (a
    user's own file is never replaced; called before measuring, and again before writing)."""
    out = Path(out_dir)
    json_path, csv_path = out / f"{stem}.json", out / f"{stem}.csv"
    check_replaceable(json_path, "us3l profile", lambda head: f'"kind": "{KIND}"'.encode() in head[:200])
    check_replaceable(csv_path, "us3l profile table",
                      lambda head: head.split(b"\n", 1)[0].rstrip(b"\r").split(b",")[:len(CSV_COLUMNS_V1)]
                      == [c.encode() for c in CSV_COLUMNS_V1])
    return json_path, csv_path


def write_profile(profile: Profile, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.csv`` into ``out_dir`` atomically; returns both paths."""
    json_path, csv_path = profile_paths(out_dir, profile.stem)
    doc = profile.to_dict()
    try:  # what was measured (possibly by a remote runner) must read back: never write a file us3l refuses
        validate_profile(json.loads(json.dumps(doc, default=str)), f"{profile.stem}.json")
    except US3LError as exc:
        raise US3LError(f"the measured profile is not valid, not written: {exc}") from None
    text, table = json_text(doc), csv_text(profile)
    # one step for both: an interrupt leaves the old pair or the new pair, not a new JSON beside an old CSV
    atomic_write_all([(json_path, lambda p: p.write_text(text, encoding="utf-8")),
                      (csv_path, lambda p: p.write_text(table, encoding="utf-8"))])
    return json_path, csv_path


def load_profile(path: str | Path) -> Profile:
    """Read a profile file; a file of another kind or schema version is refused with a clear message."""
    return Profile.from_dict(read_json(path, "profile file"), path)
