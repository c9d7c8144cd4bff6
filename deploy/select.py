"""Budget solver: per device, the most accurate width whose measured cost fits every budget.

Inputs are profile files (kind "profile": per-width latency distribution, MACs, params, memory, measured on
the device) and optionally an accuracy file (kind "accuracy": per-width kNN/linear top-1). Each width is
checked independently against each budget, so non-monotone latency curves (a wider net that runs faster
because of better kernel shapes) are handled: nothing assumes latency grows with width.

Latency is compared conservatively: by default the upper end of the 95% confidence interval of p90
(``LatencyRule(statistic="p90", conservative=True)``), then multiplied by ``1 + margin``. For ``mean`` the bound
is the upper end of Student's two-sided 95 % interval, ``mean + t(0.975, n - 1) * std / sqrt(n)`` (``std`` the sample
standard deviation; ``mean_upper_bound``). Every statistic's bound follows one convention, worded "upper 95 % CI
bound": the upper end of a two-sided 95 % interval, which alone is a one-sided 97.5 % upper bound. For p50, p90
and p99 the interval is the profile's ``ci95_ms``, the distribution-free order-statistic interval
(``us3l.profiler.stats``): its upper end is the smallest order statistic ``x_(u)`` with ``P(B <= u - 1) >= 0.975``,
``B ~ Binomial(n, q)``; for the mean, Student's t quantile 0.975.

Choosing among the feasible widths (the tie rule, ``TIE_RULE``): accuracy is measured on a finite test set, so
a difference inside its noise must not decide. Every feasible width is compared with the most accurate feasible
width, and those the data do not show to be less accurate are *tied* with it; the fastest of the tied widths
(lowest compared latency, then smaller width) is chosen: ``decided_by: "tie->latency"`` with the
``tied_widths`` recorded. How "shown less accurate" is tested (``us3l.deploy.tie_test``, recorded as
``tie_test``): where the accuracy file has the per-test-image hits of both widths (``knn_top1_hits``,
``linear_top1_hits``), an exact McNemar test on the images only one of them gets right, Holm-adjusted over the
comparisons at 5 % (the p-values are in ``tie_p_values``); otherwise (schema-2 files written before the hits) the
two 95 % intervals (``knn_top1_ci`` / ``linear_top1_ci``) must not overlap. The widths of one network are scored on the
same images and mostly agree, so the paired test sees the noise of their difference, far below what two
separate intervals allow. A width shown less accurate is never preferred for speed, and a width alone at the
top wins on ``decided_by: "accuracy"``. ``strict_accuracy`` (``--strict-accuracy``), an accuracy file without
intervals (schema 1) and the MACs proxy use plain ranking: higher accuracy, then lower latency, then smaller
width (``TIE_BREAK``). Without an accuracy file, MACs stand in for accuracy (more compute is assumed more
accurate) and the result says so.

Each device's answer carries ``warnings`` for a chosen or tied width whose latency the profile marked
``stable: false`` (its confidence interval did not reach the target, or drift was seen), and for one whose
compared bound does not exist at its sample count (the upper 95 % CI bound of p90 needs at least 36 samples, of
p99 368; with fewer the sample maximum stands in, so one slow sample sets the compared latency).

Width × precision (issue 15): an INT8 profile (``us3l profile --precision int8``) is ranked with the accuracy of
the INT8 artifacts themselves -- ``precisions.int8.<backend>`` of each width in the accuracy file, written by
``us3l eval --artifact`` -- never with the FP32 numbers; a width without that entry is excluded with a note.
When the profiles given hold several precisions of the same device, model and backend and an accuracy file is
given, their candidates are pooled into one answer for that device/backend: every (width, precision) pair with
both an accuracy and a latency competes under the same budget and tie rule, the answer's ``precision`` is the
chosen pair's, ``by_precision`` keeps each precision's own best, and ``reason`` says why, e.g. "int8 at width
0.75 (38.2 % ±3.0, 4.1 ms) beats fp32 at width 0.5 (37.9 % ±3.0, 6.0 ms) under latency_ms <= 7: tied accuracy,
faster". ``us3l export --selection`` exports the chosen precision.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from us3l.deploy.graph import chosen_graph_warnings, profiled_graph
from us3l.deploy.tie_test import MIXED, OVERLAP
from us3l.errors import InfeasibleError, US3LError
from us3l.io import atomic_write_json, check_schema, header, read_json, read_json_sha256
from us3l.profiler.stats import min_samples_for_upper_bound
from us3l.validate import number, one_of, safe_name
from us3l.width_key import width_key, width_keys  # the one rule of width keys (us3l.width_key)

SELECTION_KIND = "selection"
SELECTION_SCHEMA = 1
#: ``inputs.relative_to`` of a written selection: its relative input paths start at the file's own folder. A
#: selection without it (written before 2026-12-06, or a document not written to a file) recorded the paths as
#: given to ``us3l select``: relative to the folder that command ran in, which a reader cannot know.
INPUTS_RELATIVE_TO = "file"
#: ``precision`` of a device whose precisions were pooled (``by_precision``) and where no (width, precision) fits
POOLED_NONE_FITS = "mixed"
STATISTICS = ("p50", "p90", "p99", "mean")
METRICS = ("auto", "linear", "knn")
TIE_BREAK = "without the tie rule (strict, or no intervals): higher accuracy, then lower latency, then smaller width"
TIE_RULE = (
    "a feasible width is tied with the most accurate one unless an exact McNemar test on their per-image hits "
    "(Holm-adjusted over the comparisons, 5%) shows it less accurate; without per-image hits, when their 95% "
    "accuracy intervals overlap; the fastest tied width wins (then the smaller); --strict-accuracy: plain highest "
    "accuracy"
)
MB = 1_000_000  # --memory-mb counts decimal megabytes of weights + activations


@dataclass(frozen=True)
class Budget:
    """Upper limits; ``None`` means unconstrained. ``memory_mb`` is weights + activations in 10**6 bytes."""

    latency_ms: float | None = None
    macs: float | None = None
    params: float | None = None
    memory_mb: float | None = None

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if v is not None:  # the flag names it, worded as every command words a bad number
                number(v, f"--{k.replace('_', '-')}", positive=True)

    def is_empty(self) -> bool:
        return all(v is None for v in asdict(self).values())

    def active(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def mean_upper_bound(mean: float, std: float, n: int) -> float:
    """The upper end of Student's two-sided 95 % interval of a mean from ``n`` samples with sample standard deviation
    ``std``: ``mean + t(0.975, n - 1) · std / √n`` (``scipy.stats.t``). Until 2026-12-07 the normal quantile 1.96
    stood for t, which covers less than 95 % below about 30 samples (t = 2.26 at n = 10). One sample gives no
    interval: its mean stands (``LatencyRule.missing_bound`` says so)."""
    if n < 2:
        return mean
    from scipy.stats import t

    return mean + float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)


@dataclass(frozen=True)
class LatencyRule:
    """How one latency number is taken from a LatencyStats record."""

    statistic: str = "p90"
    #: compare the statistic's upper 95% CI bound: the upper end of its two-sided 95 % interval (p50/p90/p99: the
    #: profile's order-statistic ``ci95_ms``; mean: Student's), a one-sided 97.5 % bound (module docstring)
    conservative: bool = True
    margin: float = 0.0  # fraction added on top, e.g. 0.1 = +10 %

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise US3LError(f"unknown latency statistic '{self.statistic}' (choose {', '.join(STATISTICS)})")
        if not (0.0 <= self.margin < 10.0):
            raise US3LError(f"--margin must be a fraction in [0, 10), got {self.margin}")

    def describe(self) -> str:
        bound = "upper 95% CI bound of " if self.conservative else ""
        margin = f" + {self.margin:.0%} margin" if self.margin else ""
        return f"{bound}{self.statistic}{margin}"

    def missing_bound(self, latency: Mapping[str, Any]) -> str | None:
        """What stands in for the compared upper 95 % CI bound of this record when it is not a real one, and
        why (``"is compared at ...: why; fix"``), or None. Too few samples for the quantile's order statistic
        to exist: the profile's maximum stands in. No bound in the profile at all (an edited or foreign file), or a
        mean from one sample (no spread): the point value stands in."""
        if not self.conservative:
            return None
        if self.statistic == "mean":
            if not latency.get("n") or latency.get("std_ms") is None:  # e.g. an interpolated width (n 0)
                return ("is compared at its point value: the profile has no samples for the mean's upper 95% CI "
                        "bound; re-profile it with us3l profile")
            if latency.get("n") == 1:  # std_ms 0 by convention, no t-quantile with 0 degrees of freedom: no bound
                return ("is compared at its point value: the mean's upper 95% CI bound needs >= 2 samples, the "
                        "profile has 1; re-profile with more samples")
            return None
        ci = (latency.get("ci95_ms") or {}).get(self.statistic)
        if not isinstance(ci, list | tuple) or len(ci) != 2 or ci[1] is None:
            return (f"is compared at its point value: the profile records no upper 95% CI bound of {self.statistic} "
                    "(ci95_ms); re-profile it with us3l profile")
        n = latency.get("n")
        need = min_samples_for_upper_bound(float(self.statistic[1:]) / 100.0, below_max=0)
        if isinstance(n, int) and not isinstance(n, bool) and 0 < n < need:
            return (f"is compared at its slowest sample: the upper 95% CI bound of {self.statistic} needs >= {need} "
                    f"samples, the profile has {n}; re-profile with more samples")
        return None

    def value_ms(self, latency: Mapping[str, Any]) -> float:
        """The latency (ms) compared with the budget."""
        s = self.statistic
        point = float(latency[f"{s}_ms"])
        value = point
        if self.conservative:
            if s == "mean":
                n, std = latency.get("n"), latency.get("std_ms")
                if n and std is not None:
                    value = mean_upper_bound(point, float(std), int(n))
            else:
                ci = (latency.get("ci95_ms") or {}).get(s)
                if ci is not None and ci[1] is not None:
                    value = max(point, float(ci[1]))
        if not self.margin:
            return value
        # 12 significant digits: 3.0 ms + 10 % is 3.3 ms, not 3.3000000000000003 (which a 3.3 ms budget refused)
        return float(f"{value * (1.0 + self.margin):.12g}")


@dataclass(frozen=True)
class Candidate:
    """One width of one profile, with what the solver compared."""

    width: float
    accuracy: float | None
    latency_ms: float  # the conservative value compared with the budget
    latency: dict[str, Any]  # p50/p90/p99/mean and CIs from the profile (no raw samples)
    macs: int | None
    params: int | None
    memory_mb: float | None
    violations: tuple[str, ...] = ()
    graph: dict[str, Any] | None = None  # the profiled graph (us3l.deploy.graph.profiled_graph), for export to compare
    accuracy_ci: tuple[float, float] | None = None  # 95 % interval of ``accuracy`` (schema-2 accuracy files)
    precision: str | None = None  # the profile's precision (fp32, fp16, int8): a candidate is a (width, precision)
    profile: str | None = None  # the profile file it came from
    stop_reason: str | None = None  # why the profile stopped timing it (for the unstable warning; not written)
    # per-test-image top-1 hits behind ``accuracy`` (``knn_top1_hits`` / ``linear_top1_hits``), for the paired
    # tie test; not written
    hits: Any = field(default=None, compare=False, repr=False)

    @property
    def feasible(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        d = asdict(replace(self, hits=None))
        del d["stop_reason"], d["hits"]
        d["violations"] = list(self.violations)
        d["accuracy_ci"] = None if self.accuracy_ci is None else list(self.accuracy_ci)
        return d


@dataclass(frozen=True)
class DeviceSelection:
    """The solver's answer for one profile (one device/backend/precision)."""

    device: str
    model: str
    backend: str
    precision: str
    profile: str
    chosen: Candidate | None
    runner_up: Candidate | None
    slack: dict[str, float]
    minimum: dict[str, float]  # smallest achievable value of each quantity over the usable widths
    candidates: list[Candidate]
    notes: list[str] = field(default_factory=list)
    decided_by: str | None = None  # "accuracy" | "tie->latency"; None when nothing fits
    tied_widths: list[float] = field(default_factory=list)  # the tie group, chosen width included
    warnings: list[str] = field(default_factory=list)  # unstable latency of the chosen or a tied width
    by_precision: dict[str, Any] | None = None  # pooled answers: each precision's own choice (see the module doc)
    tied_pairs: list[tuple[float, str]] | None = None  # pooled answers: the tie group as (width, precision) pairs
    reason: str | None = None  # pooled answers: why the chosen (width, precision) beat the other precisions
    tie_test: str | None = None  # how ties were tested (us3l.deploy.tie_test): paired, overlap, paired+overlap
    tie_p_values: list[dict[str, Any]] = field(default_factory=list)  # Holm-adjusted McNemar p per compared pair

    @property
    def feasible(self) -> bool:
        return self.chosen is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "model": self.model,
            "backend": self.backend,
            "precision": self.precision,
            "profile": self.profile,
            "feasible": self.feasible,
            "chosen": self.chosen.to_dict() if self.chosen else None,
            "runner_up": self.runner_up.to_dict() if self.runner_up else None,
            "slack": self.slack,
            "minimum": self.minimum,
            "decided_by": self.decided_by,
            "tied_widths": list(self.tied_widths),
            "tie_test": self.tie_test,
            "tie_p_values": list(self.tie_p_values),
            "warnings": list(self.warnings),
            "notes": self.notes,
            "candidates": [c.to_dict() for c in self.candidates],
            **({"by_precision": self.by_precision, "reason": self.reason} if self.by_precision is not None else {}),
            **({"tied_pairs": [{"width": w, "precision": p} for w, p in self.tied_pairs]}
               if self.tied_pairs is not None else {}),
        }

    def infeasible_reason(self, budget: Budget, rule: LatencyRule, latency_steps: Sequence[float] = ()) -> str:
        """Why nothing fits ``budget``; ``latency_steps``: the schedule steps it is said for (``budget`` holds the
        largest), named in place of the one latency budget."""
        parts = []
        if "latency_ms" in self.minimum:
            best = self.minimum["latency_ms"]
            shown = f"{best:.3f}" if budget.latency_ms is None or best <= budget.latency_ms or float(
                f"{best:.3f}") > budget.latency_ms else _above(best, budget.latency_ms)
            parts.append(f"smallest achievable latency is {shown} ms ({rule.describe()})")
        for k in ("macs", "params", "memory_mb"):
            if getattr(budget, k) is not None and k in self.minimum:
                parts.append(f"smallest {k} is {self.minimum[k]:.4g}")
        active = budget.active()
        texts = {k: f"{v:g}" for k, v in active.items()}
        if latency_steps and "latency_ms" in texts:  # "latency_ms <= 0.3 or 0.5": every step, none fits
            texts["latency_ms"] = " or ".join(f"{v:g}" for v in latency_steps)
        limits = ", ".join(f"{k} <= {t}" for k, t in texts.items())
        if len(active) > 1 and all(self.minimum.get(k, math.inf) <= v for k, v in active.items()):
            # every limit alone is met by some width: the smallest values above do not say what failed
            fits = []
            for k, v in active.items():
                ok = sorted({c.width for c in self.candidates if not any(x.startswith(f"{k} ") for x in c.violations)})
                fits.append(f"{k} <= {v:g}: width{'s' if len(ok) > 1 else ''} {', '.join(f'{w:g}' for w in ok)}")
            parts.append(f"each limit alone is met, but by different widths ({'; '.join(fits)})")
        return f"{self.device} ({self.model}, {self.backend}): no width fits {limits}; " + "; ".join(parts)


@dataclass(frozen=True)
class Selection:
    """Answers for every profile of one ``select`` call, plus what produced them."""

    devices: list[DeviceSelection]
    budget: Budget
    rule: LatencyRule
    accuracy_source: str  # "accuracy file" or "MACs proxy"
    metric: str | None
    inputs: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    strict_accuracy: bool = False
    schedule: list[dict[str, Any]] | None = None  # ``latency_schedule``: a width per latency budget, per device
    schedule_gaps: list[str] = field(default_factory=list)  # ``latency_schedule``: steps where nothing fits (lines)

    @property
    def feasible(self) -> bool:
        return all(d.feasible for d in self.devices)

    def to_document(self, folder: str | Path | None = None) -> dict[str, Any]:
        """The selection document; with ``folder`` (where it is written) the input paths are relative to it."""
        doc = header(SELECTION_KIND, SELECTION_SCHEMA)
        doc.update(
            inputs=self.inputs if folder is None else _inputs_relative_to(self.inputs, Path(folder)),
            budget=self.budget.active(),
            latency_rule={**asdict(self.rule), "describe": self.rule.describe()},
            accuracy={"source": self.accuracy_source, "metric": self.metric, "strict": self.strict_accuracy},
            tie_break=TIE_BREAK,
            tie_rule=None if self.strict_accuracy else TIE_RULE,
            feasible=self.feasible,
            devices=[d.to_dict() for d in self.devices],
            warnings=list(self.warnings),
        )
        if self.schedule is not None:
            doc["schedule"] = self.schedule
        return doc

    def raise_if_infeasible(self) -> None:
        """``InfeasibleError`` (exit code 3) naming the smallest achievable latency of each infeasible device (with a
        schedule: each answer that no step fits, naming the steps)."""
        steps = [st["latency_ms"] for st in self.schedule[0]["steps"]] if self.schedule else []
        bad = [d.infeasible_reason(self.budget, self.rule, steps) for d in self.devices if not d.feasible]
        if bad:
            raise InfeasibleError("infeasible budget: " + " | ".join(bad))


def latency_schedule(
    profiles: Sequence[str | Path] | str | Path,
    latencies_ms: Sequence[float],
    budget: Budget = Budget(),
    accuracy: str | Path | None = None,
    rule: LatencyRule = LatencyRule(),
    metric: str = "auto",
    strict_accuracy: bool = False,
) -> Selection:
    """A width schedule: for every device answer, the width chosen under each latency budget of
    ``latencies_ms`` (ascending; the other limits of ``budget`` apply to all), for a device whose latency budget
    changes at run time. The returned selection is the one at the largest latency (``devices``), with
    ``schedule``: per device answer, ``steps`` of (latency_ms, width, width_index, accuracy, compared latency,
    decided_by), width None where nothing fits. ``width_index`` is the width's index in a switchable artifact's
    grid when the profile was measured through one (``us3l profile --artifact``), else None."""
    if budget.latency_ms is not None:
        raise US3LError("give --latency-ms or --latency-schedule, not both")
    given = [number(v, "--latency-schedule", positive=True) for v in latencies_ms]
    for i, v in enumerate(given):  # the same budget twice is a typo (the CLI's check too: budgets, not width keys)
        if v in given[:i]:
            raise US3LError(f"--latency-schedule lists {v:g} twice")
    steps = sorted(given)
    if not steps:
        raise US3LError("--latency-schedule needs at least one latency")
    inputs = _read_inputs(_profile_list(profiles), accuracy)  # once: every step solves the same files
    each = [_select_read(inputs, replace(budget, latency_ms=b), rule, metric, strict_accuracy) for b in steps]
    main = each[-1]
    docs = {str(p): doc for p, doc, _ in inputs.profiles}
    schedule = []
    for i, d in enumerate(main.devices):
        extra = docs[str(d.profile)].get("extra") if d.profile else None
        sw = (extra or {}).get("switchable")
        if sw:
            _check_switchable_unchanged(d.profile, extra)
        grid = [width_key(w) for w in sw["widths"]] if sw else None
        entries = []
        for b, sel in zip(steps, each, strict=True):
            di = sel.devices[i]
            c = di.chosen
            entries.append({
                "latency_ms": b,
                "width": None if c is None else c.width,
                "width_index": grid.index(width_key(c.width)) if c is not None and grid else None,
                "precision": None if c is None else c.precision,
                "accuracy": None if c is None else c.accuracy,
                "accuracy_ci": None if c is None or c.accuracy_ci is None else list(c.accuracy_ci),
                "compared_latency_ms": None if c is None else c.latency_ms,
                "decided_by": di.decided_by,
            })
        schedule.append({
            "device": d.device, "model": d.model, "backend": d.backend, "precision": d.precision,
            "profile": d.profile, "switchable": None if not sw else {k: sw[k] for k in ("artifact", "sha256")},
            "steps": entries,
        })
    return replace(main, schedule=schedule, schedule_gaps=_schedule_gaps(steps, each, rule))


def _schedule_gaps(steps: Sequence[float], each: Sequence[Selection], rule: LatencyRule) -> list[str]:
    """One line (``infeasible_reason``'s) per device answer and run of consecutive ``steps`` at which nothing fits
    (``each``: the selection at each step), for the answers some step fits: one that nothing fits at any step is
    ``raise_if_infeasible``'s error (exit 3), as for a single budget."""
    from itertools import groupby

    lines = []
    for i, answer in enumerate(each[-1].devices):
        if not answer.feasible:
            continue
        for fits, group in groupby(range(len(steps)), key=lambda k, i=i: each[k].devices[i].feasible):
            run = list(group)
            if not fits:
                last = each[run[-1]]  # the run's largest budget: what its minimum latency is shown against
                lines.append(last.devices[i].infeasible_reason(last.budget, rule, [steps[k] for k in run]))
    return lines


def _check_switchable_unchanged(profile_path: Any, extra: object) -> None:
    """Refuse (one line) a schedule from a profile measured through a switchable artifact whose folder now holds
    another export (re-exported since, perhaps with its grid in another order): the width indices would name other
    widths there. A folder that is gone is not checked (the schedule names the artifact it was measured on)."""
    from us3l.deploy.manifest import MANIFEST_FILE
    from us3l.io import read_json
    from us3l.profiler.switchable_profile import (
        manifest_artifact_sha256,
        recorded_artifact,
        recorded_switchable,
        reexported_text,
    )

    sw = recorded_switchable(extra)
    if sw is None:
        return
    folder = recorded_artifact(profile_path, sw)
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        return
    now = manifest_artifact_sha256(read_json(manifest, "manifest"))
    if now != sw["sha256"]:
        raise US3LError(
            f"{profile_path} was {reexported_text(os.path.normpath(folder), sw['sha256'], now)}): its width "
            "indices may name other widths there; re-run us3l profile --artifact on it"
        )


def lookup_width(table: Mapping[float, Any], w: float) -> float | None:
    """The key of ``table`` (built with ``_put``) that width ``w`` is found under (``width_keys``), or None."""
    return next((k for k in width_keys(w) if k in table), None)


def load_profile(path: str | Path) -> dict[str, Any]:
    return load_profile_sha256(path)[0]


def load_profile_sha256(path: str | Path) -> tuple[dict[str, Any], str]:
    """The checked profile and the sha256 of the very bytes it was parsed from (the selection records it: a digest
    taken by reading the file again could be that of another file, swapped in between)."""
    from us3l.profiler.profile_file import validate_profile

    doc, sha = read_json_sha256(path, "profile")
    validate_profile(doc, path)  # schema, and every latency/sample/MACs figure finite and positive
    return doc, sha


def load_accuracy(path: str | Path) -> dict[str, Any]:
    """The accuracy file, checked by the same validator as ``us3l eval`` and ``us3l report`` (schema 1 or 2;
    accuracies and intervals fractions in [0, 1]); NaN or out-of-range accuracies are refused, never ranked."""
    return load_accuracy_sha256(path)[0]


def load_accuracy_sha256(path: str | Path) -> tuple[dict[str, Any], str]:
    """``load_accuracy`` and the sha256 of the bytes it parsed (one read)."""
    from us3l.eval.accuracy import load_accuracy_sha256 as load_checked

    if Path(path).is_dir():
        raise US3LError(f"accuracy file {path} is a folder; give the accuracy.json inside it")
    return load_checked(path)


def _put(table: dict[float, Any], row: Mapping[str, Any], value: Any) -> None:
    """``table[width] = value`` for an accuracy row, and the same under its ``canonical_width`` (the grid width
    with the same channels: the same network, e.g. a calibrated 0.4688 for an evaluated 0.5) and its key as
    written by earlier us3l versions (``width_keys``: 0.78125 also as 0.7812) unless that width has a row of its own. A
    row spelled exactly as its key (0.7813) is that key's own row: another row rounding to it (0.78125) does not
    replace it."""
    own, *alternates = width_keys(row["width"])
    if own not in table or float(row["width"]) == own:
        table[own] = value
    canonical = row.get("canonical_width")
    if isinstance(canonical, int | float) and not isinstance(canonical, bool):
        table.setdefault(width_key(canonical), value)
    for key in alternates:  # 0.78125 is also found as 0.7813, unless that width has a row of its own
        table.setdefault(key, value)


def accuracy_table(doc: Mapping[str, Any], metric: str = "auto") -> tuple[dict[float, float], str]:
    """Map rounded width -> top-1 accuracy, and the field used. A width is also found under its canonical
    width (``_put``).

    ``auto`` uses ``linear_top1`` when any width has it, else ``knn_top1`` (one metric for the whole file,
    never mixed across widths).
    """
    if metric not in METRICS:
        raise US3LError(f"unknown accuracy metric '{metric}' (choose {', '.join(METRICS)})")
    rows = doc.get("widths") or []
    if metric == "auto":
        metric = "linear" if any(r.get("linear_top1") is not None for r in rows) else "knn"
    name = f"{metric}_top1"
    table: dict[float, float] = {}
    for r in rows:
        if r.get(name) is not None:
            _put(table, r, float(r[name]))
    if not table:
        other = "knn" if metric == "linear" else "linear"
        raise US3LError(f"accuracy file has no {name} values (try --metric {other})")
    return table, name


def precision_accuracy(
    doc: Mapping[str, Any], name: str, precision: str, backend: str
) -> tuple[dict[float, float], dict[float, tuple[float, float]], dict[float, Any]]:
    """(rounded width -> ``name`` accuracy, -> its 95 % interval, -> its per-image hits) of the ``precision``
    artifacts of ``backend`` (``widths[].precisions[precision][backend]``, ``us3l eval --artifact``); empty when
    the file has none."""
    from us3l.eval.hits import decode_hits

    table: dict[float, float] = {}
    ivs: dict[float, tuple[float, float]] = {}
    hits: dict[float, Any] = {}
    for r in doc.get("widths") or []:
        entry = ((r.get("precisions") or {}).get(precision) or {}).get(backend) or {}
        v, ci, text = entry.get(name), entry.get(f"{name}_ci"), entry.get(f"{name}_hits")
        if v is None:
            continue
        where = f"accuracy file: width {r['width']:g} {precision}/{backend} {name}"
        number(v, where, nonnegative=True)
        _put(table, r, float(v))
        if isinstance(ci, list | tuple) and len(ci) == 2 and 0 <= ci[0] <= ci[1] <= 1:
            _put(ivs, r, (float(ci[0]), float(ci[1])))
        if text is not None:
            _put(hits, r, decode_hits(text, doc.get("num_test"), f"{where}_hits"))
    return table, ivs, hits


def accuracy_intervals(doc: Mapping[str, Any], name: str) -> dict[float, tuple[float, float]]:
    """Map rounded width -> 95 % interval ``(lo, hi)`` of the ``name`` accuracy (``name + "_ci"``); empty for
    a schema-1 file. A malformed interval is a one-line error."""
    out: dict[float, tuple[float, float]] = {}
    for i, r in enumerate(doc.get("widths") or []):
        ci = r.get(f"{name}_ci")
        if ci is None:
            continue
        ok = isinstance(ci, list | tuple) and len(ci) == 2
        ok = ok and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in ci)
        if not ok or not 0 <= ci[0] <= ci[1] <= 1:
            raise US3LError(f"accuracy file: widths[{i}].{name}_ci must be [lo, hi] in [0, 1], got {ci!r}")
        _put(out, r, (float(ci[0]), float(ci[1])))
    return out


def accuracy_hits(doc: Mapping[str, Any], name: str) -> dict[float, Any]:
    """Map rounded width -> the per-test-image hits (a bool array) behind the ``name`` accuracy (``name +
    "_hits"``, ``us3l.eval.hits``); empty where the file has none (schema 1, files written before them). The
    accuracy file's loader has checked them against ``num_test`` and the accuracy."""
    from us3l.eval.hits import decode_hits

    out: dict[float, Any] = {}
    for i, r in enumerate(doc.get("widths") or []):
        text = r.get(f"{name}_hits")
        if text is not None:
            _put(out, r, decode_hits(text, doc.get("num_test"), f"accuracy file: widths[{i}].{name}_hits"))
    return out


def _memory_mb(rec: Mapping[str, Any]) -> float | None:
    wb, ab = rec.get("weight_bytes"), rec.get("activation_bytes")
    if wb is None or ab is None:
        return None
    return (float(wb) + float(ab)) / MB


def _summary(lat: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("n", "mean_ms", "std_ms", "p50_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "ci95_ms", "rel_ci_halfwidth",
            "stable")
    return {k: lat.get(k) for k in keys if k in lat}


def _above(value: float, limit: float, digits: int = 4) -> str:
    """``value`` (> ``limit``) with as many significant digits as it takes not to read as ``limit``: a
    violation printed as "latency_ms 3.3 > 3.3" said the budget refused its own value."""
    for d in range(digits, 18):
        text = f"{value:.{d}g}"
        if float(text) > limit:
            return text
    return repr(value)


def _rank_key(c: Candidate) -> tuple[float, float, float]:
    acc = c.accuracy if c.accuracy is not None else -math.inf
    return (-acc, c.latency_ms, c.width)


@dataclass(frozen=True)
class _Decision:
    """How ``_decide`` chose: the chosen candidate, ``decided_by``, the tie group and how ties were tested."""

    chosen: Candidate | None
    decided_by: str | None
    tied: list[Candidate]
    tie_test: str | None = None
    p_values: list[dict[str, Any]] = field(default_factory=list)


def _decide(feasible: list[Candidate], strict: bool) -> _Decision:
    """The choice over the feasible candidates sorted by ``_rank_key`` (see ``TIE_RULE``): every other candidate is
    compared with the most accurate one by ``us3l.deploy.tie_test.ties_with_best`` (paired on per-image hits where
    both have them, else by interval overlap), and the fastest of the tie group wins."""
    from us3l.deploy.tie_test import ties_with_best

    if not feasible:
        return _Decision(None, None, [])
    best = feasible[0]
    if strict or best.accuracy_ci is None:
        return _Decision(best, "accuracy", [])
    others = feasible[1:]
    outcome = ties_with_best(best.hits, best.accuracy_ci, [(c.hits, c.accuracy_ci) for c in others])
    p_values = [{"width": c.width, "precision": c.precision, "p_holm": p}
                for c, p in zip(others, outcome.p_holm, strict=True) if p is not None]
    tied = [best, *(c for c, t in zip(others, outcome.tied, strict=True) if t)]
    if len(tied) < 2:
        return _Decision(best, "accuracy", [], outcome.test, p_values)
    chosen = min(tied, key=lambda c: (c.latency_ms, c.width))
    return _Decision(chosen, "tie->latency", tied, outcome.test, p_values)


def _latency_warnings(chosen: Candidate | None, tied: list[Candidate], where: str, rule: LatencyRule) -> list[str]:
    """One line per chosen/tied width whose profiled latency is marked ``stable: false`` or whose compared bound
    rests on too few samples or is missing (``LatencyRule.missing_bound``); ``where`` names the device and backend (a
    selection per backend may tie the same width on each)."""
    out = []
    for c in ([chosen] if chosen is not None else []) + [t for t in tied if t is not chosen]:
        role = "chosen width" if c is chosen else "tied width"
        name = f"{where}: latency of the {role} {c.width:g}{f' ({c.precision})' if c.precision else ''}"
        if c.latency.get("stable") is False:
            rel = c.latency.get("rel_ci_halfwidth")
            ci = f"relative CI half-width {rel:.1%}" if isinstance(rel, int | float) else ""
            extra = f" ({ci})" if ci else ""
            if c.stop_reason == "target":  # the CI met the target: the drift check is what failed
                extra = (f" (drift: its median's CI met the target{f', {ci}' if ci else ''}, but the first and second "
                         "half of its samples differ)")
            out.append(f"{name} is not stable in the profile{extra}; re-profile before trusting the choice")
        missing = rule.missing_bound(c.latency)
        if missing is not None:
            out.append(f"{name} {missing}")
    return out


def select_profile(
    profile: Mapping[str, Any],
    budget: Budget,
    rule: LatencyRule = LatencyRule(),
    accuracy: Mapping[float, float] | None = None,
    profile_name: str = "",
    intervals: Mapping[float, tuple[float, float]] | None = None,
    strict_accuracy: bool = False,
    accuracy_label: str = "",
    hits: Mapping[float, Any] | None = None,
) -> DeviceSelection:
    """Solve one profile: check every width against every budget, then choose among the feasible ones by the
    tie rule (``TIE_RULE``: widths not shown less accurate than the best, by a paired test on ``hits`` where given,
    else by their 95 % ``intervals``, are tied, the fastest tied width wins) or, with ``strict_accuracy`` or without
    intervals, by plain ranking (``TIE_BREAK``)."""
    notes: list[str] = []
    candidates: list[Candidate] = []
    for rec in profile["records"]:
        w = width_key(rec["width"])
        key = lookup_width(accuracy, rec["width"]) if accuracy is not None else w
        if key is None:
            notes.append(f"width {w:g} has no {accuracy_label}accuracy: excluded")
            continue
        if rec.get("interpolated"):  # us3l profile --adaptive: a predicted latency is never committed to
            notes.append(f"width {w:g} was interpolated, not measured: excluded")
            continue
        lat = rec.get("latency") or {}
        try:
            latency_ms = rule.value_ms(lat)
        except (KeyError, TypeError, ValueError):
            notes.append(f"width {w:g} has no usable latency: excluded")
            continue
        macs, params, mem = rec.get("macs"), rec.get("params"), _memory_mb(rec)
        acc = accuracy[key] if accuracy is not None else (float(macs) if macs is not None else None)
        violations = []
        checks = (("latency_ms", latency_ms), ("macs", macs), ("params", params), ("memory_mb", mem))
        for name, value in checks:
            limit = getattr(budget, name)
            if limit is None:
                continue
            if value is None:
                raise US3LError(f"profile {profile_name} has no {name} figures, needed by the {name} budget")
            if float(value) > limit:
                violations.append(f"{name} {_above(float(value), limit)} > {limit:g}")
        graph = profiled_graph(profile, rec)
        ci = (intervals or {}).get(key) if accuracy is not None else None
        candidates.append(
            Candidate(w, acc, latency_ms, _summary(lat), macs, params, mem, tuple(violations), graph, accuracy_ci=ci,
                      precision=str(profile.get("precision", "?")), profile=profile_name,
                      stop_reason=rec.get("stop_reason") if isinstance(rec.get("stop_reason"), str) else None,
                      hits=(hits or {}).get(key) if accuracy is not None else None)
        )
    if not candidates:
        raise US3LError(f"profile {profile_name}: no width is usable ({'; '.join(notes[:3])})")
    feasible = sorted((c for c in candidates if c.feasible), key=_rank_key)
    decision = _decide(feasible, strict_accuracy)
    chosen, decided_by, tied = decision.chosen, decision.decided_by, decision.tied
    runner_up = next((c for c in feasible if c is not chosen), None)  # the most accurate other feasible width
    slack: dict[str, float] = {}
    if chosen is not None:
        values = {
            "latency_ms": chosen.latency_ms,
            "macs": chosen.macs,
            "params": chosen.params,
            "memory_mb": chosen.memory_mb,
        }
        slack = {k: float(limit - float(values[k])) for k, limit in budget.active().items()}
    minimum: dict[str, float] = {"latency_ms": min(c.latency_ms for c in candidates)}
    for k in ("macs", "params", "memory_mb"):
        vals = [getattr(c, k) for c in candidates if getattr(c, k) is not None]
        if vals:
            minimum[k] = min(vals)  # counts stay whole numbers, as in every candidate (1058816, not 1058816.0)
    return DeviceSelection(
        device=str(profile.get("device", "?")),
        model=str(profile.get("model", "?")),
        backend=str(profile.get("backend", "?")),
        precision=str(profile.get("precision", "?")),
        profile=profile_name,
        chosen=chosen,
        runner_up=runner_up,
        slack=slack,
        minimum=minimum,
        candidates=sorted(candidates, key=lambda c: c.width),
        notes=notes,
        decided_by=decided_by,
        tied_widths=sorted(c.width for c in tied),
        warnings=_latency_warnings(
            chosen, tied, f"{profile.get('device', '?')}/{profile.get('backend', '?')}", rule
        ),
        tie_test=decision.tie_test,
        tie_p_values=decision.p_values,
    )


def profiled_model(profile: Mapping[str, Any]) -> Any:
    """The model a profile measured: its ``model``, without the ``-switchable`` a switchable artifact's profile adds."""
    from us3l.profiler.profile_file import measured_model

    name = profile.get("model")
    return measured_model(name, profile.get("extra")) if isinstance(name, str) else name


def find_profiles(
    devices: Sequence[str],
    profiles_dir: str | Path = "profiles",
    model: str | None = None,
    left_out: Callable[[str], None] | None = None,
) -> list[Path]:
    """Profile files of the named devices: ``<profiles_dir>/*-<device>-*.json`` whose ``device`` matches. With
    ``model`` (the accuracy file's), a folder shared by several models gives that model's profiles only; each
    one left out is told to ``left_out``."""
    root = Path(profiles_dir)
    if root.exists() and not root.is_dir():
        raise US3LError(f"--profiles-dir must be a folder of profiles, got the file {root}")
    if not root.is_dir():
        raise US3LError(f"profiles directory not found: {root}")
    from us3l.devices.registry import device_name

    found: list[Path] = []
    for given in devices:
        name = device_name(given)  # as us3l profile reads --device; it becomes part of a glob pattern
        hits, others = [], {}
        # any case: a hand-made "CPU" profile is found, then refused by validate_profile (device names are lowercase)
        for p in sorted(f for f in root.glob("*.json") if f"-{name}-" in f.name.lower()):
            doc = read_json(p, "profile")
            device = doc.get("device") if isinstance(doc, dict) else None
            if isinstance(device, str) and doc.get("kind") == "profile" and device.lower() == name:
                measured = profiled_model(doc)
                if model is None or measured == model:
                    hits.append(p)
                else:
                    others[p] = measured
        if not hits and others:
            raise US3LError(
                f"no profile of model {model} for device '{name}' in {root}: it holds profiles of "
                f"{', '.join(sorted({str(m) for m in others.values()}))} (profile this model, or give --accuracy "
                "of the profiled one)"
            )
        if not hits:
            raise US3LError(f"no profile for device '{name}' in {root} (expected {root}/*-{name}-*.json)")
        for p, other in others.items():
            if left_out is not None:
                left_out(f"left out {p}: it profiles model {other}, the accuracy file is for {model}")
        found.extend(hits)
    return found


def select(
    profiles: Sequence[str | Path] | str | Path,
    budget: Budget,
    accuracy: str | Path | None = None,
    rule: LatencyRule = LatencyRule(),
    metric: str = "auto",
    strict_accuracy: bool = False,
) -> Selection:
    """Solve every profile file under the same budget; the result knows the inputs' sha256.

    Widths not shown less accurate than the best are a tie that the faster width wins (``TIE_RULE``) unless
    ``strict_accuracy``; an accuracy file without intervals (schema 1) is ranked by plain accuracy, with a note.
    ``profiles`` is a list of profile files, or one file.
    """
    profiles = _profile_list(profiles)
    if budget.is_empty():
        raise US3LError("no budget given (use --latency-ms, --macs, --params and/or --memory-mb)")
    return _select_read(_read_inputs(profiles, accuracy), budget, rule, metric, strict_accuracy)


def _profile_list(profiles: Sequence[str | Path] | str | Path) -> Sequence[str | Path]:
    if isinstance(profiles, str | Path):  # one file: a str is a Sequence too, read as files named "p", "r", ...
        profiles = [profiles]
    if not profiles:
        raise US3LError("no profile given (use --profile FILE or --device NAME)")
    return profiles


@dataclass(frozen=True)
class _ReadInputs:
    """The files a selection solves, each read and checked once: (path, document, sha256 of the bytes read)."""

    profiles: list[tuple[str | Path, dict[str, Any], str]]
    accuracy: tuple[str | Path, dict[str, Any], str] | None


def _read_inputs(profiles: Sequence[str | Path], accuracy: str | Path | None) -> _ReadInputs:
    acc = None
    if accuracy is not None:
        acc_doc, acc_sha = load_accuracy_sha256(accuracy)  # the digest of the bytes ranked, not of a later read
        acc = (accuracy, acc_doc, acc_sha)
    read = []
    answered: dict[tuple[str, ...], tuple[str | Path, Mapping[str, Any]]] = {}
    for p in profiles:
        doc, profile_sha = load_profile_sha256(p)
        if acc is not None:
            check_same_checkpoint(acc[1], acc[0], doc, p)
            check_same_int8_calibration(acc[1], acc[0], doc, p)
        check_one_answer(answered, doc, p)
        read.append((p, doc, profile_sha))
    return _ReadInputs(read, acc)


def _select_read(
    read: _ReadInputs, budget: Budget, rule: LatencyRule, metric: str, strict_accuracy: bool
) -> Selection:
    """``select`` on inputs already read."""
    acc_table = None
    metric_name = None
    intervals: dict[float, tuple[float, float]] = {}
    hits: dict[float, Any] = {}
    inputs: dict[str, Any] = {"profiles": [], "accuracy": None}
    if read.accuracy is not None:
        accuracy, acc_doc, acc_sha = read.accuracy
        acc_table, metric_name = accuracy_table(acc_doc, metric)
        intervals = accuracy_intervals(acc_doc, metric_name)
        hits = accuracy_hits(acc_doc, metric_name)
        inputs["accuracy"] = {"path": str(accuracy), "sha256": acc_sha}
    results = []
    measured_on: dict[str, str] = {}  # profile file -> the machine it was measured on
    for p, doc, profile_sha in read.profiles:
        measured_on[str(p)] = _measured_on(doc)
        inputs["profiles"].append({"path": str(p), "sha256": profile_sha})
        table, ivs, label, profile_hits = acc_table, intervals, "", hits
        if acc_table is not None and doc.get("precision") == "int8":  # the artifact's own accuracy, never FP32's
            table, ivs, profile_hits = precision_accuracy(acc_doc, str(metric_name), "int8", str(doc.get("backend")))
            label = f"int8/{doc.get('backend')} {metric_name} (us3l eval --artifact) "
        try:
            d = select_profile(doc, budget, rule, table, str(p), ivs, strict_accuracy, label, profile_hits)
        except US3LError as exc:
            if not label:
                raise
            raise US3LError(f"{exc}: measure the INT8 artifacts' accuracy with us3l eval --artifact") from None
        shape = doc.get("input_shape")
        per_call = shape[0] if isinstance(shape, list) and shape and isinstance(shape[0], int) else 1
        if per_call > 1 and budget.latency_ms is not None:  # the budget is compared with a call's latency
            d.notes.append(f"the profile times calls of {per_call} images (batch {per_call}): the latency budget "
                           f"applies per call, i.e. to {per_call} images")
        if acc_table is not None and unchecked_checkpoint(doc):
            d.notes.append(f"the profile's checkpoint sha256 is its switchable artifact's manifest's word (not checked "
                           "against the checkpoint when profiled: it was absent, or its relative path held other "
                           f"weights there, or it was profiled before 2026-12-07), so its tie to {accuracy} is "
                           "unchecked")
        if acc_table is not None and not intervals and not strict_accuracy:
            d.notes.append("the accuracy file has no 95% intervals (schema 1): plain highest accuracy decided")
        if d.tie_test in (OVERLAP, MIXED):
            d.notes.append(f"ties tested by overlapping 95% intervals where {label.strip() or metric_name} has no "
                           "per-image hits (a file written before them): more widths count as tied than a paired "
                           "test would find")
        results.append(d)
    if acc_table is not None:
        results = pool_precisions(results, budget, strict_accuracy, rule, measured_on)
    return Selection(
        devices=results,
        budget=budget,
        rule=rule,
        accuracy_source="accuracy file" if acc_table is not None else "MACs proxy (no accuracy file)",
        metric=metric_name if acc_table is not None else "macs",
        inputs=inputs,
        warnings=[w for d in results for w in chosen_graph_warnings(d.chosen, d.backend, d.device)],
        strict_accuracy=strict_accuracy,
    )


def _measured_on(doc: Mapping[str, Any]) -> str:
    """Where a profile was measured, as its file records it: the host name, and the reach when not local."""
    host = (doc.get("fingerprint") or {}).get("hostname")
    reach = str(doc.get("reach") or "local")
    named = f"host {host}" if isinstance(host, str) and host else "an unnamed host"
    return named if reach == "local" else f"{named} ({reach})"


def check_one_answer(
    answered: dict[tuple[str, ...], tuple[str | Path, Mapping[str, Any]]], doc: Mapping[str, Any], path: str | Path
) -> None:
    """Refuse (one line) a second profile of the same device, model, backend and precision in one selection: two
    answers under one device name (e.g. two boards profiled as ``raspberry-pi-5``, or an old and a new sweep) look
    alike in the table and in selection.json, and ``us3l export --selection`` would export both widths for that
    device. ``answered`` maps each key seen so far to its file and document."""
    # a switchable artifact's profile (model "<model>-switchable") answers for the same network as a static one
    key = (str(doc.get("device")), str(profiled_model(doc)), str(doc.get("backend")), str(doc.get("precision")))
    if key not in answered:
        answered[key] = (path, doc)
        return
    first, first_doc = answered[key]
    kinds = [_is_switchable(d) for d in (first_doc, doc)]
    if kinds[0] != kinds[1]:
        static, switchable = (first, path) if kinds[1] else (path, first)
        raise US3LError(
            f"profiles {static} (static widths) and {switchable} (a switchable artifact) both answer for device "
            f"'{key[0]}' ({key[1]}, {key[2]}, {key[3]}): one selection has one answer per device; select from the "
            "static profile (a per-width artifact) or the switchable one (one artifact, the width chosen per call), "
            "not both (keep them in separate folders)"
        )
    where, other = _measured_on(first_doc), _measured_on(doc)
    measured = f" (one measured on {where}, the other on {other})" if where != other else ""
    raise US3LError(
        f"profiles {first} and {path} both answer for device '{key[0]}' ({key[1]}, {key[2]}, {key[3]}){measured}: "
        "one selection has one answer per device; select from one of them, or profile the other machine under its "
        "own device name (a --device-file)"
    )


def _is_switchable(doc: Mapping[str, Any]) -> bool:
    """Whether a profile was measured through a switchable artifact (``us3l profile --artifact``)."""
    return (doc.get("extra") or {}).get("switchable") is not None


def _describe(c: Candidate) -> str:
    acc = "—" if c.accuracy is None else f"{100 * c.accuracy:.1f} %"
    if c.accuracy_ci is not None and c.accuracy is not None:
        acc += f" ±{100 * max(c.accuracy - c.accuracy_ci[0], c.accuracy_ci[1] - c.accuracy):.1f}"
    return f"{c.precision} at width {c.width:g} ({acc}, {c.latency_ms:.3g} ms)"


def pool_precisions(
    results: list[DeviceSelection], budget: Budget, strict: bool, rule: LatencyRule = LatencyRule(),
    measured_on: Mapping[str, str] | None = None,
) -> list[DeviceSelection]:
    """Merge the answers of one device/model/backend profiled at several precisions into one answer over every
    (width, precision) pair (see the module docstring); other answers pass through unchanged, in order.
    ``measured_on``: profile file -> the machine it was measured on (``_measured_on``), to warn where a pooled
    answer compares latencies of two machines."""
    groups: dict[tuple[str, str, str], list[DeviceSelection]] = {}
    for d in results:
        groups.setdefault((d.device, d.model, d.backend), []).append(d)
    out: list[DeviceSelection] = []
    done: set[tuple[str, str, str]] = set()
    for d in results:
        key = (d.device, d.model, d.backend)
        group = groups[key]
        if len({g.precision for g in group}) < 2:
            out.append(d)
            continue
        if key in done:
            continue
        done.add(key)
        out.append(_pooled(group, budget, strict, rule, measured_on or {}))
    return out


def _why_beats(chosen: Candidate, other: Candidate, tied: bool) -> str:
    """Why ``chosen`` won over ``other`` (another precision's own choice), from the two pairs' own numbers and
    whether ``other`` is in the tie group (``other`` may lie outside the tie, or match ``chosen``'s accuracy)."""
    a, b = chosen.accuracy, other.accuracy
    faster = chosen.latency_ms < other.latency_ms
    if tied and faster and a != b:
        return "tied accuracy, faster"
    if a is not None and (b is None or a > b):
        return "more accurate"
    if a is not None and b is not None and a < b:  # only the tie rule lets a less accurate pair win
        return "tied with the most accurate pair (inside the noise), and the fastest there"
    if a == b and faster:
        return "same accuracy, faster"
    if a == b and chosen.latency_ms == other.latency_ms and chosen.width < other.width:
        return "same accuracy and latency, narrower"
    return "same accuracy, latency and width"


def _machines_warning(group: list[DeviceSelection], measured_on: Mapping[str, str]) -> list[str]:
    """One warning when the precisions pooled for one device name were profiled on different machines (their
    fingerprints' host names differ): their latencies do not compare, whichever pair the pooling picks."""
    places = {g.precision: measured_on.get(g.profile, "") for g in group}
    if len(set(places.values())) < 2:
        return []
    first = group[0]
    where = ", ".join(f"{prec} on {place or 'an unknown machine'}" for prec, place in places.items())
    return [f"{first.device}/{first.backend}: the pooled precisions were profiled on different machines ({where}): "
            "their latencies do not compare; profile every precision on the device itself"]


def _pooled(
    group: list[DeviceSelection], budget: Budget, strict: bool, rule: LatencyRule,
    measured_on: Mapping[str, str] | None = None,
) -> DeviceSelection:
    candidates = [c for g in group for c in g.candidates]
    feasible = sorted((c for c in candidates if c.feasible), key=lambda c: (*_rank_key(c), str(c.precision)))
    decision = _decide(feasible, strict)
    chosen, decided_by, tied = decision.chosen, decision.decided_by, decision.tied
    runner_up = next((c for c in feasible if c is not chosen), None)
    first = group[0]
    by_precision = {
        g.precision: None if g.chosen is None else {
            "width": g.chosen.width, "accuracy": g.chosen.accuracy, "latency_ms": g.chosen.latency_ms,
            "profile": g.profile,
        }
        for g in group
    }
    limits = ", ".join(f"{k} <= {v:g}" for k, v in budget.active().items())
    reason = f"no (width, precision) pair fits {limits}"
    slack: dict[str, float] = {}
    if chosen is not None:
        others = [g.chosen for g in group if g.precision != chosen.precision and g.chosen is not None]
        if others:
            best_other = min(others, key=_rank_key)
            reason = f"{_describe(chosen)} beats {_describe(best_other)} under {limits}: " \
                     f"{_why_beats(chosen, best_other, any(c is best_other for c in tied))}"
        else:
            missing = sorted({g.precision for g in group} - {chosen.precision})
            reason = f"{_describe(chosen)}: no {'/'.join(missing)} width fits {limits}"
        values = {"latency_ms": chosen.latency_ms, "macs": chosen.macs, "params": chosen.params,
                  "memory_mb": chosen.memory_mb}
        slack = {k: float(limit - float(values[k])) for k, limit in budget.active().items()}
    minimum: dict[str, float] = {}
    for k in ("latency_ms", "macs", "params", "memory_mb"):
        vals = [g.minimum[k] for g in group if k in g.minimum]
        if vals:
            minimum[k] = min(vals)
    return DeviceSelection(
        device=first.device,
        model=first.model,
        backend=first.backend,
        precision=chosen.precision if chosen is not None and chosen.precision else POOLED_NONE_FITS,
        profile=chosen.profile if chosen is not None and chosen.profile else first.profile,
        chosen=chosen,
        runner_up=runner_up,
        slack=slack,
        minimum=minimum,
        candidates=sorted(candidates, key=lambda c: (c.width, str(c.precision))),
        notes=[f"{g.precision}: {n}" for g in group for n in g.notes],  # which precision a note is about
        decided_by=decided_by,
        tied_widths=sorted({c.width for c in tied}),  # as in every answer; fp32 0.5 and int8 0.5 are one width
        tied_pairs=sorted((c.width, str(c.precision)) for c in tied),
        warnings=[*_machines_warning(group, measured_on or {}),
                  *_latency_warnings(chosen, tied, f"{first.device}/{first.backend}", rule)],
        by_precision=by_precision,
        reason=reason,
        tie_test=decision.tie_test,
        tie_p_values=decision.p_values,
    )


def _inputs_relative_to(inputs: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``inputs`` with each path relative to ``folder`` (``INPUTS_RELATIVE_TO``), found wherever the folder moves."""
    base = folder.resolve()

    def entry(e: Mapping[str, Any]) -> dict[str, Any]:
        return {**e, "path": Path(os.path.relpath(Path(e["path"]).resolve(), base)).as_posix()}

    accuracy = inputs.get("accuracy")
    return {**inputs, "profiles": [entry(p) for p in inputs.get("profiles") or []],
            "accuracy": None if accuracy is None else entry(accuracy), "relative_to": INPUTS_RELATIVE_TO}


def selection_input(path: str | Path, doc: Mapping[str, Any], recorded: str) -> Path:
    """The file a selection document read from ``path`` recorded as an input (``inputs.*.path``): relative to the
    file's folder where it says so (``inputs.relative_to``), else as recorded (an older file: relative to wherever
    ``us3l select`` ran)."""
    return Path(path).parent / recorded if inputs_placed(doc) else Path(recorded)


def inputs_placed(doc: Mapping[str, Any]) -> bool:
    """Whether a selection document's relative input paths start at its file's folder (``INPUTS_RELATIVE_TO``)."""
    inputs = doc.get("inputs")
    return isinstance(inputs, Mapping) and inputs.get("relative_to") == INPUTS_RELATIVE_TO


def write_selection(path: str | Path, selection: Selection) -> Path:
    """Write ``selection`` to ``path`` atomically, its input paths relative to the file's folder."""
    return atomic_write_json(path, selection.to_document(Path(path).parent))


def read_selection(path: str | Path) -> dict[str, Any]:
    """Read a ``selection.json`` (kind "selection", schema 1)."""
    doc = read_json(path, "selection")
    check_schema(doc, SELECTION_KIND, SELECTION_SCHEMA, path)
    validate_selection(doc, path)
    return doc


def _check_known(d: Mapping[str, Any], where: str) -> None:
    """A selection's backend and precision, where given, are ones us3l knows (export picks its runtime by them).
    A device whose precisions were pooled and where no pair fits has no precision of its own: POOLED_NONE_FITS."""
    from us3l.deploy.backends.base import PRECISIONS
    from us3l.devices.spec import BACKENDS

    pooled_none = "chosen" in d and d["chosen"] is None and isinstance(d.get("by_precision"), dict)
    precisions = (*PRECISIONS, POOLED_NONE_FITS) if pooled_none else PRECISIONS
    for key, allowed in (("backend", BACKENDS), ("precision", precisions)):
        if key in d:
            one_of(d[key], allowed, f"{where}.{key}")


def _check_tied_pairs(pairs: Any, where: str) -> None:
    """A pooled answer's ``tied_pairs`` (absent elsewhere): a list of ``{"width", "precision"}`` objects."""
    if pairs is None:
        return
    if not isinstance(pairs, list) or not all(isinstance(t, dict) for t in pairs):
        raise US3LError(f"{where} must be a list of {{width, precision}} objects, got {pairs!r:.80}")
    for j, t in enumerate(pairs):
        number(t.get("width"), f"{where}[{j}].width", positive=True, at_most=1.0)
        _check_known({"precision": t.get("precision")}, f"{where}[{j}]")


def validate_selection(doc: Mapping[str, Any], path: str | Path) -> None:
    """Device/model/backend names are safe path components; chosen widths and latencies finite and > 0."""
    devices = doc.get("devices")
    if not isinstance(devices, list) or not devices:
        raise US3LError(f"{path}: 'devices' must be a non-empty list")
    for key in ("inputs", "budget"):  # read by quickstart (reuse), the report and --plot
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise US3LError(f"{path}: {key!r} must be an object, got {doc[key]!r:.80}")
    inputs = doc.get("inputs") or {}
    if inputs.get("accuracy") is not None and not isinstance(inputs["accuracy"], dict):
        raise US3LError(f"{path}: 'inputs.accuracy' must be an object or null, got {inputs['accuracy']!r:.80}")
    profiles = inputs.get("profiles")
    if profiles is not None and not (isinstance(profiles, list) and all(isinstance(p, dict) for p in profiles)):
        raise US3LError(f"{path}: 'inputs.profiles' must be a list of objects, got {profiles!r:.80}")
    if inputs.get("relative_to", INPUTS_RELATIVE_TO) != INPUTS_RELATIVE_TO:
        raise US3LError(f"{path}: 'inputs.relative_to' must be {INPUTS_RELATIVE_TO!r}, "
                        f"got {inputs['relative_to']!r:.80}")
    for i, d in enumerate(devices):
        where = f"{path}: devices[{i}]"
        if not isinstance(d, dict):
            raise US3LError(f"{where} is not an object")
        for key in ("device", "model", "backend", "precision"):  # they become folder and file names
            safe_name(d.get(key), f"{where}.{key}")
        if "chosen" not in d:  # read as "nothing fits" (export: exit 3), where the file lost its answer
            raise US3LError(f"{where} has no 'chosen' entry (us3l select writes null there when nothing fits)")
        _check_known(d, where)
        _check_tied_pairs(d.get("tied_pairs"), f"{where}.tied_pairs")
        for pick in ("chosen", "runner_up"):
            c = d.get(pick)
            if c is None:
                continue
            if not isinstance(c, dict):
                raise US3LError(f"{where}.{pick} must be an object or null")
            _check_known(c, f"{where}.{pick}")
            number(c.get("width"), f"{where}.{pick}.width", positive=True, at_most=1.0)
            number(c.get("latency_ms"), f"{where}.{pick}.latency_ms", positive=True)
            number(c.get("accuracy"), f"{where}.{pick}.accuracy", nonnegative=True, optional=True)
            if c.get("graph") is not None and not isinstance(c["graph"], dict):
                raise US3LError(f"{where}.{pick}.graph must be an object or null, got {c['graph']!r:.80}")
            sha = (c.get("graph") or {}).get("checkpoint_sha256")
            if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
                # export compares it with the checkpoint it exports from; any other value skipped that check
                raise US3LError(f"{where}.{pick}.graph.checkpoint_sha256 must be a sha256 (64 hex digits) or null, "
                                f"got {sha!r:.80}")


def check_same_int8_calibration(
    acc_doc: Mapping[str, Any], acc_path: str | Path, profile: Mapping[str, Any], profile_path: str | Path
) -> None:
    """Refuse (one line) an INT8 profile whose graphs were quantized with another calibration set
    (``extra.int8_calibration.sha256``) than the INT8 artifact whose accuracy the file holds at a profiled width
    (``precisions.int8.<backend>.artifact.calibration_sha256``, ``us3l eval --artifact``): INT8 accuracy depends on
    the calibration, so the selection would rank the timed network by another network's accuracy (and export
    --selection would ship the profiled one). Where either file lacks its digest, nothing is compared."""
    if profile.get("precision") != "int8":
        return
    extra = profile.get("extra")
    calib = extra.get("int8_calibration") if isinstance(extra, Mapping) else None
    timed = calib.get("sha256") if isinstance(calib, Mapping) else None
    if not isinstance(timed, str):
        return
    backend = str(profile.get("backend"))
    profiled = {k for rec in profile.get("records") or [] if isinstance(rec, Mapping)
                for k in width_keys(rec.get("width"))}
    for r in acc_doc.get("widths") or []:
        entry = ((r.get("precisions") or {}).get("int8") or {}).get(backend) or {}
        art = entry.get("artifact") if isinstance(entry, Mapping) else None
        scored = art.get("calibration_sha256") if isinstance(art, Mapping) else None
        if isinstance(scored, str) and scored != timed and profiled & set(width_keys(r["width"])):
            raise US3LError(
                f"{profile_path} times INT8 graphs quantized with calibration set {timed[:12]}…, but the "
                f"int8/{backend} accuracy of width {r['width']:g} in {acc_path} is of an artifact quantized with "
                f"{scored[:12]}…: quantize both with the same --calib-images and --calib-data (re-run us3l profile, "
                "or us3l export and us3l eval --artifact)"
            )


def unchecked_checkpoint(profile: Mapping[str, Any]) -> bool:
    """Whether a profile's ``checkpoint_sha256`` is a switchable manifest's word that ``us3l profile --artifact``
    could not check against the checkpoint: ``extra.switchable.checkpoint_checked`` false, or absent in a profile
    written before 2026-12-07, which copied the manifest's digest unchecked."""
    extra = profile.get("extra")
    sw = extra.get("switchable") if isinstance(extra, Mapping) else None
    return isinstance(sw, Mapping) and isinstance(profile.get("checkpoint_sha256"), str) and \
        sw.get("checkpoint_checked") is not True


def check_same_checkpoint(
    acc_doc: Mapping[str, Any], acc_path: str | Path, profile: Mapping[str, Any], profile_path: str | Path
) -> None:
    """Refuse (one line) to combine accuracies and latencies measured on different checkpoints (both record
    ``checkpoint_sha256``; a file without one, e.g. a profile of a fresh model, is not compared)."""
    a, p = acc_doc.get("checkpoint_sha256"), profile.get("checkpoint_sha256")
    if isinstance(a, str) and isinstance(p, str) and a != p:
        raise US3LError(
            f"{profile_path} was profiled from checkpoint {p[:12]}… but {acc_path} was computed for {a[:12]}…; "
            "re-run us3l eval or us3l profile on the same checkpoint"
        )
    # a profile of a fresh model (no checkpoint) is fine for a trained one of the same architecture: the same
    # model name and, at every width both files hold, the same MACs
    a_model, p_model = acc_doc.get("model"), profiled_model(profile)
    if isinstance(a_model, str) and isinstance(p_model, str) and a_model != p_model:
        raise US3LError(f"{profile_path} profiles model {p_model} but {acc_path} is for model {a_model}")
    acc_macs = {width_key(r["width"]): r.get("macs") for r in acc_doc.get("widths") or []}
    for rec in profile.get("records") or []:
        m = acc_macs.get(width_key(rec["width"]))
        if isinstance(m, int | float) and isinstance(rec.get("macs"), int | float) and int(m) != int(rec["macs"]):
            raise US3LError(
                f"{profile_path} and {acc_path} describe different networks: width {rec['width']:g} has "
                f"{int(rec['macs'])} MACs in one and {int(m)} in the other (other model options?)"
            )
