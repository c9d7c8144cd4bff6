"""The report's figures (matplotlib ``Figure`` objects on the Agg canvas, no pyplot state, no files).

Each ``*_figure`` function takes already-loaded documents and returns ``None`` when there is nothing to draw;
:func:`png_data_uri` turns a figure into a PNG ``data:`` URI for the page, and ``us3l eval --plot`` /
``us3l select --plot`` save the same figures as PNG files. No global backend is switched and nothing is shown.

Conventions shared by every figure (and by the HTML tables, through :func:`pct`):

* accuracies are drawn on a fixed 0–100 % axis (never zoomed, so noise does not look like a trend), with the
  95 % interval of every point as an error bar when the accuracy file has one;
* baselines are reference lines: kNN on a randomly initialised network at the same width (dashed, grey
  triangles), kNN on raw pixels and chance (horizontal lines);
* accuracy is the vertical axis everywhere (rising upward); latency is the horizontal axis;
* a width whose latency was not stable is drawn hollow, and the legend says so;
* legends sit below the axes, off the data;
* percentages are written ``83.4 %`` (one decimal, a space before the sign), tick labels ``80 %``;
* text from the input files (model, data, device names, the latency rule) is drawn as it is: mathtext and TeX
  are off while a figure is built (:func:`_literal_text`), so a ``$`` in a path is a dollar sign.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from us3l.errors import MissingDependencyError
from us3l.width_key import same_width, width_key

_DPI = 110
_MAX_LABELS = 16  # width labels on trade-off points up to this many widths
_PROTOCOLS = (("knn_top1", "kNN top-1", "o", "tab:blue"), ("linear_top1", "linear top-1", "s", "tab:purple"))
_RANDOM = "random init, same width (kNN)"
_RANDOM_STYLE: dict[str, Any] = {"color": "0.45", "ls": "--", "marker": "v", "markersize": 4, "lw": 1.0}
_RAW_COLOR = "tab:brown"
_CHANCE_COLOR = "0.55"
_UNSTABLE = "latency not stable (hollow)"
#: A latency budget more than this many times the slowest width's latency is named at the edge of a trade-off
#: panel, not drawn to scale.
BUDGET_OFF_SCALE = 3.0
_TITLE_CHARS = 56  # characters per line of a trade-off panel's title (two panels side by side, fontsize 8)

P = ParamSpec("P")
R = TypeVar("R")


# ------------------------------------------------------------------------------------------ formatting


def pct(value: Any, decimals: int = 1) -> str:
    """A fraction in [0, 1] as ``83.4 %``; ``n/a`` for None or a non-number (the page's one percent format)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return "n/a"
    return f"{100 * value:.{decimals}f} %"


def interval(value: Any) -> tuple[float, float] | None:
    """A ``[lo, hi]`` pair of numbers, or ``None`` (absent, null or malformed)."""
    if isinstance(value, list | tuple) and len(value) == 2 and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return float(value[0]), float(value[1])
    return None


def pct_ci(ci: Any) -> str:
    """A 95 % interval of fractions as ``[79.1–87.0 %]``; ``[CI n/a]`` when absent."""
    pair = interval(ci)
    if pair is None:
        return "[CI n/a]"
    return f"[{100 * pair[0]:.1f}–{100 * pair[1]:.1f} %]"


def pct_with_ci(value: Any, ci: Any) -> str:
    """``83.4 % [79.1–87.0 %]``; just ``n/a`` when the value itself is absent."""
    if pct(value) == "n/a":
        return "n/a"
    return f"{pct(value)} {pct_ci(ci)}"


def pct_text(text: Any) -> str:
    """A text from an input file with its percent signs in the page's format (``95%`` -> ``95 %``)."""
    return re.sub(r"(\d)%", r"\1 %", str(text))


def _tick_pct(v: float, _pos: Any = None) -> str:
    return f"{v:.0f} %"


# ------------------------------------------------------------------------------------------ accuracy data


@dataclass(frozen=True)
class Reference:
    """A horizontal reference line on an accuracy axis (values as fractions)."""

    label: str
    value: float
    ci: tuple[float, float] | None = None
    color: str = _CHANCE_COLOR
    style: str = ":"


def random_init(row: Mapping[str, Any]) -> tuple[float | None, tuple[float, float] | None]:
    """kNN top-1 and its interval of a randomly initialised network at this width row (schema 2), or Nones."""
    base = row.get("baseline_random_init")
    if not isinstance(base, Mapping):
        return None, None
    value = base.get("knn_top1")
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return (float(value) if ok else None), interval(base.get("knn_top1_ci"))


def chance_level(doc: Mapping[str, Any]) -> tuple[float | None, str]:
    """Chance accuracy and where it came from: ``baselines.chance``, else ``1 / num_classes``."""
    base = doc.get("baselines") if isinstance(doc.get("baselines"), Mapping) else {}
    value = base.get("chance")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), "chance"
    n = doc.get("num_classes")
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        return 1.0 / n, f"chance (1/{n} classes)"
    return None, "chance"


def raw_pixels(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``baselines.raw_pixels`` of an accuracy document (schema 2) when it has a kNN top-1."""
    base = doc.get("baselines") if isinstance(doc.get("baselines"), Mapping) else {}
    raw = base.get("raw_pixels")
    if isinstance(raw, Mapping) and isinstance(raw.get("knn_top1"), int | float):
        return raw
    return None


def references(doc: Mapping[str, Any] | None) -> list[Reference]:
    """The horizontal baselines of an accuracy document: raw-pixel kNN (when recorded) and chance."""
    if not doc:
        return []
    refs = []
    raw = raw_pixels(doc)
    if raw is not None:
        k = f", k={raw['k']}" if raw.get("k") is not None else ""
        refs.append(Reference(f"raw pixels (kNN{k}) {pct(raw['knn_top1'])}", float(raw["knn_top1"]),
                              interval(raw.get("knn_top1_ci")), _RAW_COLOR, "-."))
    chance, label = chance_level(doc)
    if chance is not None:
        refs.append(Reference(f"{label} {pct(chance)}", chance, None, _CHANCE_COLOR, ":"))
    return refs


def has_intervals(doc: Mapping[str, Any]) -> bool:
    """Whether any width row of an accuracy document carries a 95 % interval."""
    return any(interval(r.get(f"{key}_ci")) is not None
               for r in doc.get("widths") or [] if isinstance(r, Mapping) for key, *_ in _PROTOCOLS)


def _data_name(data: Any) -> str:
    if isinstance(data, Mapping):
        return str(data.get("name") or data.get("spec") or "?")
    return str(data)


# ------------------------------------------------------------------------------------------ figures


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("matplotlib", "plot", "drawing the figures") from None
    return matplotlib


def _literal_text(build: Callable[P, R]) -> Callable[P, R]:
    """Run a figure builder with mathtext and TeX off: every text it sets (titles, labels, legends, annotations)
    is drawn literally, so ``$`` in a path from an input file is never parsed as math."""

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _matplotlib().rc_context({"text.parse_math": False, "text.usetex": False}):
            return build(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Any:
    _matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _wrap(text: str, width: int = _TITLE_CHARS) -> str:
    """``text`` on lines of at most ``width`` characters (a long name is broken, never cut off)."""
    return "\n".join(textwrap.wrap(text, width)) or text


def png_data_uri(fig: Any) -> str:
    """Render ``fig`` to PNG (Agg) and return it as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig)).decode("ascii")


def png_bytes(fig: Any, dpi: float = _DPI) -> bytes:
    """``fig`` as PNG bytes: no timestamp, and ``Software`` = ``us3l`` with no version (``us3l.io.is_us3l_png``
    knows the file as ours; equal inputs give equal files)."""
    from us3l.io import PNG_SOFTWARE

    _drawable_text(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": PNG_SOFTWARE})
    return buf.getvalue()


def _drawable_text(fig: Any) -> None:
    """Write the lone surrogates of a name that is not UTF-8 (a data folder's, read from the file system) as
    ``\\udcff`` in every text of ``fig``: matplotlib cannot lay them out (a TypeError from FT2Font)."""
    from matplotlib.text import Text

    for t in fig.findobj(Text):
        text = t.get_text()
        if any("\ud800" <= ch <= "\udfff" for ch in text):
            t.set_text(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def save_png(fig: Any, path: str | Path, dpi: float = _DPI) -> Path:
    """Write :func:`png_bytes` of ``fig`` to ``path`` atomically: every ``--plot`` PNG goes through here."""
    from us3l.io import atomic_write_bytes

    return atomic_write_bytes(Path(path), png_bytes(fig, dpi))


def _percent_axis(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    ax.set_ylim(0, 100)
    ax.yaxis.set_major_locator(MultipleLocator(20))
    ax.yaxis.set_minor_locator(MultipleLocator(10))
    ax.yaxis.set_major_formatter(FuncFormatter(_tick_pct))
    ax.grid(alpha=0.3)
    ax.grid(alpha=0.12, which="minor", axis="y")


def _draw_references(ax: Any, refs: Iterable[Reference], scale: float = 100.0) -> None:
    for ref in refs:
        ax.axhline(scale * ref.value, color=ref.color, ls=ref.style, lw=1.2, label=ref.label, zorder=1)
        if ref.ci is not None:
            ax.axhspan(scale * ref.ci[0], scale * ref.ci[1], color=ref.color, alpha=0.10, lw=0, zorder=0)


def _yerr(values: Sequence[float], cis: Sequence[tuple[float, float] | None]) -> list[list[float]] | None:
    """Asymmetric error bars (in %) from intervals of fractions; ``None`` when no point has one."""
    if not any(ci is not None for ci in cis):
        return None
    lo = [max(0.0, v - 100 * ci[0]) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    hi = [max(0.0, 100 * ci[1] - v) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    return [lo, hi]


def _fig_legend(fig: Any, axes: Sequence[Any], ncol: int = 3) -> None:
    """One legend for the whole figure, below the axes (off the data), each label once."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if not label.startswith("_"):
                seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncol=min(ncol, len(seen)),
                   fontsize=7, frameon=False)


@_literal_text
def accuracy_figure(accuracy: Mapping[str, Any], x: str = "width") -> Any | None:
    """Top-1 accuracy (kNN and/or linear) against ``x`` (``width`` or ``macs``), with intervals and baselines.

    Returns ``None`` when no width has an accuracy (or, for ``macs``, when a row lacks MACs).
    """
    rows = sorted((r for r in accuracy.get("widths") or [] if isinstance(r, Mapping)), key=lambda r: float(r["width"]))
    if x == "macs" and not all(isinstance(r.get("macs"), int | float) for r in rows):
        return None
    scale = 1e-6 if x == "macs" else 1.0
    series = [(key, label, marker, color, [r for r in rows if isinstance(r.get(key), int | float)])
              for key, label, marker, color in _PROTOCOLS]
    series = [s for s in series if s[4]]
    if not series:
        return None
    fig = _figure(6.2, 4.6)
    ax = fig.add_subplot()
    _draw_references(ax, references(accuracy))
    base = [(scale * float(r[x]), *random_init(r)) for r in rows]
    base = [b for b in base if b[1] is not None]
    if base:
        ys = [100 * b[1] for b in base]
        ax.errorbar([b[0] for b in base], ys, yerr=_yerr(ys, [b[2] for b in base]), label=_RANDOM, capsize=2,
                    elinewidth=0.8, zorder=2, **_RANDOM_STYLE)
    for key, label, marker, color, pts in series:
        xs = [scale * float(r[x]) for r in pts]
        ys = [100 * float(r[key]) for r in pts]
        ax.errorbar(xs, ys, yerr=_yerr(ys, [interval(r.get(f"{key}_ci")) for r in pts]), fmt=f"{marker}-",
                    color=color, markersize=4, capsize=2.5, elinewidth=1.0, lw=1.4, label=label, zorder=3)
    _percent_axis(ax)
    ax.set_xlabel("width multiplier" if x == "width" else "MACs (millions)")
    if x == "width":
        ax.set_xlim(0, 1.05)
    else:
        ax.set_xlim(0, max(scale * float(r["macs"]) for r in rows) * 1.08)
    ax.set_ylabel("top-1 accuracy")
    ax.set_title(_accuracy_title(accuracy), fontsize=8)
    _fig_legend(fig, [ax], ncol=2)
    return fig


def _accuracy_title(doc: Mapping[str, Any]) -> str:
    parts = [f"{doc.get('model', '?')} on {_data_name(doc.get('data'))}"]
    if isinstance(doc.get("num_test"), int):
        parts.append(f"{doc['num_test']} test images")
    knn = (doc.get("protocols") or {}).get("knn") if isinstance(doc.get("protocols"), Mapping) else None
    if isinstance(knn, Mapping) and knn.get("k") is not None:
        parts.append(f"kNN k={knn['k']}")
    bars = "bars: 95 % interval" if has_intervals(doc) else "no intervals recorded (n/a)"
    return " · ".join(parts) + f"\n{bars}; axis: full 0–100 % range"


def accuracy_vs_width(accuracy: Mapping[str, Any]) -> str | None:
    """:func:`accuracy_figure` against width, as a PNG data URI (``None`` when nothing to draw)."""
    fig = accuracy_figure(accuracy, "width")
    return None if fig is None else png_data_uri(fig)


def profile_label(profile: Any) -> str:
    """``device backend/precision`` of a ``us3l.profiler.profile_file.Profile``."""
    return f"{profile.device} {profile.backend}/{profile.precision}"


def profile_labels(profiles: Sequence[Any]) -> list[str]:
    """:func:`profile_label` of each profile, made distinct: a label shared by profiles of several models gets the
    model, and one still shared gets ``#1``, ``#2``, ... (a legend or table keeps one entry per label)."""
    base = [profile_label(p) for p in profiles]
    models: dict[str, set[str]] = {}
    for label, prof in zip(base, profiles, strict=True):
        models.setdefault(label, set()).add(str(prof.model))
    labels = [f"{b} · {p.model}" if len(models[b]) > 1 else b for b, p in zip(base, profiles, strict=True)]
    total, seen = Counter(labels), Counter[str]()
    out = []
    for label in labels:
        seen[label] += 1
        out.append(label if total[label] == 1 else f"{label} #{seen[label]}")
    return out


def _p50_ci(record: Any) -> tuple[float, float]:
    """The 95 % interval of a profile record's median latency (the median itself where none is recorded)."""
    return record.latency.ci95_ms.get("p50") or (record.latency.p50_ms, record.latency.p50_ms)


@_literal_text
def latency_figure(profiles: Sequence[Any]) -> Any | None:
    """p50 latency against width, one line per profile, the 95 % CI of p50 as a band, unstable points hollow."""
    drawn = [p for p in profiles if p.records]
    if not drawn:
        return None
    fig = _figure(6.2, 4.4)
    ax = fig.add_subplot()
    any_unstable = False
    for prof, label in zip(drawn, profile_labels(drawn), strict=True):
        recs = sorted(prof.records, key=lambda r: r.width)
        xs = [r.width for r in recs]
        p50 = [r.latency.p50_ms for r in recs]
        ci = [_p50_ci(r) for r in recs]
        (line,) = ax.plot(xs, p50, "-", lw=1.3, label=label, zorder=2)
        color = line.get_color()
        ax.fill_between(xs, [c[0] for c in ci], [c[1] for c in ci], color=color, alpha=0.2, linewidth=0)
        stable = [bool(r.latency.stable) for r in recs]
        any_unstable = any_unstable or not all(stable)
        for flag in (True, False):
            sel = [i for i, s in enumerate(stable) if s == flag]
            if sel:
                ax.scatter([xs[i] for i in sel], [p50[i] for i in sel], s=22, zorder=3, linewidths=1.3,
                           facecolors=color if flag else "white", edgecolors=color)
    if any_unstable:
        ax.scatter([], [], s=22, facecolors="white", edgecolors="0.3", label=_UNSTABLE)
    ax.set_xlim(0, 1.05)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("width multiplier")
    ax.set_ylabel("latency p50 (ms)")
    ax.set_title("latency vs width · band: 95 % CI of p50", fontsize=8)
    ax.grid(alpha=0.3)
    _fig_legend(fig, [ax], ncol=2)
    return fig


@_literal_text
def profile_figure(profile: Any) -> Any:
    """``us3l profile --plot``: one profile's latency against width (median with its 95 % interval, p90;
    interpolated and unstable widths marked) beside its MACs against width."""
    recs = sorted(profile.records, key=lambda r: r.width)
    w = [r.width for r in recs]
    p50 = [r.latency.p50_ms for r in recs]
    ci = [_p50_ci(r) for r in recs]
    fig = _figure(11, 4)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.errorbar(w, p50, yerr=[[m - c[0] for m, c in zip(p50, ci, strict=True)],
                               [c[1] - m for m, c in zip(p50, ci, strict=True)]],
                 fmt="o-", ms=3, capsize=2, label="median (95% CI)")
    ax1.plot(w, [r.latency.p90_ms for r in recs], "s--", ms=2, alpha=0.7, label="p90")
    interp = [r for r in recs if r.interpolated]
    unstable = [r for r in recs if not r.latency.stable and not r.interpolated]
    if interp:
        ax1.plot([r.width for r in interp], [r.latency.p50_ms for r in interp], "o", mfc="white", ms=5,
                 label="interpolated (--adaptive)")
    if unstable:
        ax1.plot([r.width for r in unstable], [r.latency.p50_ms for r in unstable], "rx", label="not stable")
    ax1.set_ylim(bottom=0)  # as the report's latency figure: a band of noise is not drawn as a trend
    ax1.set_xlabel("width")
    ax1.set_ylabel("latency (ms)")
    ax1.set_title(f"{profile.model} on {profile.device} ({profile.backend}, {profile.precision})")
    ax1.grid(alpha=0.3)
    ax1.legend()
    ax2.plot(w, [r.macs / 1e6 for r in recs], "o-", ms=3)
    ax2.set_xlabel("width")
    ax2.set_ylabel("MMACs (multiply-adds)")
    ax2.set_title(f"input {'x'.join(map(str, profile.input_shape))}")
    ax2.grid(alpha=0.3)
    return fig


def latency_vs_width(profiles: Sequence[Any]) -> str | None:
    """:func:`latency_figure` as a PNG data URI."""
    fig = latency_figure(profiles)
    return None if fig is None else png_data_uri(fig)


# ------------------------------------------------------------------------------------------ trade-off


@dataclass(frozen=True)
class TradeoffPoint:
    """One width on an accuracy-vs-latency panel (accuracy and its interval already on the axis scale)."""

    width: float
    latency_ms: float
    accuracy: float
    fits: bool = True
    stable: bool | None = None
    ci: tuple[float, float] | None = None
    random_init: float | None = None


@dataclass(frozen=True)
class TradeoffPanel:
    """One device's accuracy-vs-latency panel: every width, the budget, the chosen width and the runner-up."""

    title: str
    xlabel: str
    ylabel: str
    points: list[TradeoffPoint]
    budget_ms: float | None = None
    chosen: TradeoffPoint | None = None
    runner_up: TradeoffPoint | None = None
    notes: list[str] = field(default_factory=list)
    percent: bool = True  # accuracy is a fraction drawn on the fixed 0-100 % axis (False: MACs proxy)
    references: list[Reference] = field(default_factory=list)


def accuracy_scale(values: Sequence[float], metric: str | None) -> tuple[float, str]:
    """Factor and axis label for selection accuracies: % for fractions, millions for the MACs proxy."""
    if metric == "macs":
        return 1e-6, "accuracy proxy: MACs (millions)"
    name = metric_label(metric)
    if values and all(0.0 <= v <= 1.0 for v in values):
        return 100.0, f"{name} accuracy"
    return 1.0, name


def metric_label(metric: str | None) -> str:
    """``knn_top1`` -> ``kNN top-1``, ``linear_top1`` -> ``linear top-1``."""
    if not metric:
        return "accuracy"
    return metric.replace("knn", "kNN").replace("_top1", " top-1").replace("_top5", " top-5")


def _row_of(rows: Mapping[float, Mapping[str, Any]], w: float) -> Mapping[str, Any] | None:
    """The accuracy row of width ``w`` as ``us3l select`` finds it (25/32 = 0.78125 is a file's 0.7813)."""
    from us3l.deploy.select import lookup_width

    key = lookup_width(rows, w)
    return None if key is None else rows[key]


def rows_by_width(accuracy: Mapping[str, Any] | None) -> dict[float, Mapping[str, Any]]:
    if not accuracy:
        return {}
    return {width_key(r["width"]): r for r in accuracy.get("widths") or []
            if isinstance(r, Mapping) and isinstance(r.get("width"), int | float)}


def candidate_ci(c: Mapping[str, Any], metric: str | None,
                 rows: Mapping[float, Mapping[str, Any]]) -> tuple[float, float] | None:
    """The 95 % interval of a selection candidate's accuracy: its own ``accuracy_ci``, else the accuracy file's."""
    own = interval(c.get("accuracy_ci"))
    if own is not None or not metric or metric == "macs":
        return own
    row = _row_of(rows, c["width"]) if isinstance(c.get("width"), int | float) else None
    return interval(row.get(f"{metric}_ci")) if row else None


def latency_stable(c: Mapping[str, Any]) -> bool | None:
    lat = c.get("latency")
    value = lat.get("stable") if isinstance(lat, Mapping) else c.get("stable")
    return value if isinstance(value, bool) else None


def _point(c: Any, scale: float, metric: str | None, rows: Mapping[float, Mapping[str, Any]]) -> TradeoffPoint | None:
    if not isinstance(c, Mapping) or c.get("accuracy") is None or c.get("latency_ms") is None:
        return None
    ci = candidate_ci(c, metric, rows)
    base = None
    if metric == "knn_top1":
        row = _row_of(rows, c["width"])
        base = random_init(row)[0] if row else None
    return TradeoffPoint(float(c["width"]), float(c["latency_ms"]), scale * float(c["accuracy"]),
                         not c.get("violations"), latency_stable(c),
                         None if ci is None else (scale * ci[0], scale * ci[1]),
                         None if base is None else scale * base)


def tied_widths(dev: Mapping[str, Any]) -> list[Any]:
    """The widths a selection found tied with the chosen one (``tied_widths``, or ``ties`` / ``tied``), the
    chosen width itself left out (``us3l select`` records the whole tie group)."""
    chosen = dev.get("chosen") if isinstance(dev.get("chosen"), Mapping) else {}
    own = chosen.get("width")
    for key in ("tied_widths", "ties", "tied"):
        if isinstance(dev.get(key), list):
            widths = [t.get("width") if isinstance(t, Mapping) else t for t in dev[key]]
            return [w for w in widths if not same_width(w, own)]
    return []


def tied_pairs(dev: Mapping[str, Any]) -> list[tuple[Any, Any]] | None:
    """A pooled answer's tie group as (width, precision) pairs (``tied_pairs``), the chosen pair left out; None
    where the answer has none (one precision: ``tied_widths`` says it all)."""
    pairs = dev.get("tied_pairs")
    if not isinstance(pairs, list):
        return None
    chosen = dev.get("chosen") if isinstance(dev.get("chosen"), Mapping) else {}
    out = [(t.get("width"), t.get("precision")) for t in pairs if isinstance(t, Mapping)]
    return [(w, p) for w, p in out if not (same_width(w, chosen.get("width")) and p == chosen.get("precision"))]


def panels_from_selection(selection: Mapping[str, Any],
                          accuracy: Mapping[str, Any] | None = None) -> list[TradeoffPanel]:
    """One panel per device of a selection document (latency = the statistic the solver compared).

    ``accuracy`` (the accuracy document the selection was made from) adds the intervals and baselines.
    """
    metric = (selection.get("accuracy") or {}).get("metric")
    rule = pct_text((selection.get("latency_rule") or {}).get("describe") or "latency")
    budget = (selection.get("budget") or {}).get("latency_ms")
    rows = rows_by_width(accuracy)
    panels = []
    for dev in selection.get("devices") or []:
        cands = [c for c in dev.get("candidates") or [] if c.get("accuracy") is not None]
        scale, ylabel = accuracy_scale([float(c["accuracy"]) for c in cands], metric)
        points = [p for p in (_point(c, scale, metric, rows) for c in cands) if p is not None]
        percent = scale == 100.0
        refs = references(accuracy) if percent and metric == "knn_top1" else []
        if percent and metric != "knn_top1" and accuracy:
            refs = [r for r in references(accuracy) if r.label.startswith("chance")]
        chosen = _point(dev.get("chosen"), scale, metric, rows)
        tie = " (tie → faster)" if chosen and str(dev.get("decided_by") or "").startswith("tie") else ""
        panels.append(TradeoffPanel(
            title=f"{dev.get('device', '?')} · {dev.get('backend', '?')}/{dev.get('precision', '?')} · "
                  + (f"chosen w={chosen.width:g}{tie}" if chosen else "no width fits"),
            xlabel=f"latency (ms, {rule})",
            ylabel=ylabel,
            points=sorted(points, key=lambda p: p.width),
            budget_ms=None if budget is None else float(budget),
            chosen=chosen,
            runner_up=_point(dev.get("runner_up"), scale, metric, rows),
            percent=percent,
            references=refs,
        ))
    return panels


def panels_from_profiles(profiles: Sequence[Any], accuracy: Mapping[str, Any]) -> list[TradeoffPanel]:
    """Without a selection: accuracy (linear, else kNN top-1) against p50 latency per profile, no budget.

    A profile of another model than the accuracy file's is left out (its latencies are not these widths')."""
    from us3l.deploy.select import accuracy_table, lookup_width

    table, metric = accuracy_table(accuracy)
    rows = rows_by_width(accuracy)
    refs = references(accuracy) if metric == "knn_top1" else [r for r in references(accuracy)
                                                                 if r.label.startswith("chance")]
    model = accuracy.get("model")
    profiles = [p for p in profiles if not isinstance(model, str) or p.model == model]
    panels = []
    for prof, label in zip(profiles, profile_labels(profiles), strict=True):
        points = []
        for r in sorted(prof.records, key=lambda r: r.width):
            w = lookup_width(table, r.width)  # 25/32 = 0.78125 is the accuracy file's 0.7813, as in select
            if w is None:
                continue
            ci = interval(rows.get(w, {}).get(f"{metric}_ci"))
            base = random_init(rows[w])[0] if metric == "knn_top1" and w in rows else None
            points.append(TradeoffPoint(r.width, r.latency.p50_ms, 100.0 * table[w], True, bool(r.latency.stable),
                                        None if ci is None else (100 * ci[0], 100 * ci[1]),
                                        None if base is None else 100 * base))
        if points:
            panels.append(TradeoffPanel(f"{label} · {prof.model}", "latency p50 (ms)",
                                        f"{metric_label(metric)} accuracy", points, references=refs))
    return panels


@_literal_text
def tradeoff_figure(panels: Sequence[TradeoffPanel]) -> Any | None:
    """One subplot per panel (accuracy up, latency across), one shared legend below them."""
    panels = [p for p in panels if p.points]
    if not panels:
        return None
    cols = min(len(panels), 2)
    rows = math.ceil(len(panels) / cols)
    fig = _figure(5.4 * cols, 4.0 * rows + 0.7)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(len(panels))]
    for ax, panel in zip(axes, panels, strict=True):
        _draw_panel(ax, panel)
    _fig_legend(fig, axes, ncol=4)
    return fig


def accuracy_vs_latency(panels: Sequence[TradeoffPanel]) -> str | None:
    """:func:`tradeoff_figure` as a PNG data URI."""
    fig = tradeoff_figure(panels)
    return None if fig is None else png_data_uri(fig)


def _draw_panel(ax: Any, panel: TradeoffPanel) -> None:
    pts = panel.points
    xs = [p.latency_ms for p in pts]
    _draw_references(ax, panel.references, 100.0 if panel.percent else 1.0)
    ax.plot(xs, [p.accuracy for p in pts], "-", color="0.75", lw=0.9, zorder=1)
    base = [p for p in pts if p.random_init is not None]
    if base:
        ax.plot([p.latency_ms for p in base], [p.random_init for p in base], label=_RANDOM, zorder=2,
                **_RANDOM_STYLE)
    any_unstable = False
    for fits, color, label in ((True, "tab:blue", "fits the budget"), (False, "0.5", "over budget")):
        sel = [p for p in pts if p.fits == fits]
        if not sel:
            continue
        marker = "o" if fits else "X"
        if any(p.ci for p in sel):
            lo = [max(0.0, p.accuracy - p.ci[0]) if p.ci else 0.0 for p in sel]
            hi = [max(0.0, p.ci[1] - p.accuracy) if p.ci else 0.0 for p in sel]
            ax.errorbar([p.latency_ms for p in sel], [p.accuracy for p in sel], yerr=[lo, hi], fmt="none",
                        ecolor=color, elinewidth=0.9, capsize=2, zorder=2)
        for stable in (True, False):
            group = [p for p in sel if (p.stable is not False) == stable]
            if group:
                any_unstable = any_unstable or not stable
                ax.scatter([p.latency_ms for p in group], [p.accuracy for p in group], s=24, linewidths=1.3,
                           facecolors=color if stable else "white", edgecolors=color, zorder=3, marker=marker)
        # legend entry: a filled marker of the group, whatever the stability of its points
        ax.scatter([], [], s=24, color=color, marker=marker, label=label if panel.budget_ms is not None else "width")
    if any_unstable:
        ax.scatter([], [], s=24, facecolors="white", edgecolors="0.3", linewidths=1.3, label=_UNSTABLE)
    if len(pts) <= _MAX_LABELS:
        for p in pts:
            ax.annotate(f"{p.width:g}", (p.latency_ms, p.accuracy), textcoords="offset points", xytext=(4, 4),
                        fontsize=6, color="0.3")
    slowest = max(xs)
    off_scale = panel.budget_ms is not None and panel.budget_ms > BUDGET_OFF_SCALE * slowest
    if off_scale:  # a generous budget (33 ms for widths of 0.1-0.3 ms) drawn to scale squeezed every width into
        # the left edge: the axis follows the widths and the budget is named at its right edge instead
        ax.annotate(f"latency budget {panel.budget_ms:.4g} ms →", (1.0, 1.0), xycoords="axes fraction",
                    xytext=(-3, -3), textcoords="offset points", ha="right", va="top", fontsize=7,
                    color="tab:red")
        ax.plot([], [], color="tab:red", ls="--", lw=1.2, label="latency budget (off the axis →)")
    elif panel.budget_ms is not None:
        ax.axvline(panel.budget_ms, color="tab:red", ls="--", lw=1.2, label="latency budget")
    if panel.runner_up is not None:
        ax.scatter([panel.runner_up.latency_ms], [panel.runner_up.accuracy], s=90, marker="D",
                   facecolors="none", edgecolors="tab:orange", linewidths=1.5, zorder=4, label="runner-up")
    if panel.chosen is not None:
        ax.scatter([panel.chosen.latency_ms], [panel.chosen.accuracy], s=150, facecolors="none",
                   edgecolors="tab:green", linewidths=2.2, zorder=5, label="chosen")
    right = max([slowest, 0.0 if off_scale else panel.budget_ms or 0.0]) * 1.1
    ax.set_xlim(0, right if right > 0 else 1.0)
    if panel.percent:
        _percent_axis(ax)
    else:
        top = max(p.accuracy for p in pts)
        ax.set_ylim(0, top * 1.1 if top > 0 else 1.0)
        ax.grid(alpha=0.3)
    ax.set_title(_wrap(panel.title), fontsize=8)
    ax.set_xlabel(_wrap(panel.xlabel), fontsize=8)
    ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
