"""The report's figures as PNG ``data:`` URIs (matplotlib, Agg canvas, no pyplot state, no files).

Each function takes already-loaded documents and returns ``None`` when there is nothing to draw. Figures are
built on ``matplotlib.figure.Figure`` directly, so no global backend is switched and nothing is shown.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from us3l.errors import MissingDependencyError

_ACC_SERIES = (("knn_top1", "kNN top-1", "o-"), ("linear_top1", "linear top-1", "s-"))
_DPI = 110
_MAX_LABELS = 16  # width labels on trade-off points up to this many widths


@dataclass(frozen=True)
class TradeoffPoint:
    """One width on an accuracy-vs-latency panel."""

    width: float
    latency_ms: float
    accuracy: float
    fits: bool = True


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


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", "plot", "the report's plots") from None
    return Figure(figsize=(width, height), dpi=_DPI)


def png_data_uri(fig: Any) -> str:
    """Render ``fig`` to PNG (Agg) and return it as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def accuracy_vs_width(accuracy: dict[str, Any]) -> str | None:
    """Top-1 accuracy (kNN and/or linear, %) against the width multiplier, from an accuracy document."""
    rows = sorted(accuracy.get("widths") or [], key=lambda r: float(r["width"]))
    series = []
    for key, label, style in _ACC_SERIES:
        pts = [(float(r["width"]), 100.0 * float(r[key])) for r in rows if r.get(key) is not None]
        if pts:
            series.append((pts, label, style))
    if not series:
        return None
    fig = _figure(5.6, 3.8)
    ax = fig.add_subplot()
    for pts, label, style in series:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label, markersize=4)
    ax.set_xlabel("width multiplier")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"accuracy vs width · {accuracy.get('model', '?')} on {_data_name(accuracy.get('data'))}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return png_data_uri(fig)


def _data_name(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("name") or data.get("spec") or "?")
    return str(data)


def profile_label(profile: Any) -> str:
    """``device backend/precision`` of a ``profiler.profile_file.Profile``."""
    return f"{profile.device} {profile.backend}/{profile.precision}"


def latency_vs_width(profiles: Sequence[Any]) -> str | None:
    """p50 latency against width, one line per profile, with the 95 % CI of p50 as a band."""
    drawn = [p for p in profiles if p.records]
    if not drawn:
        return None
    fig = _figure(5.6, 3.8)
    ax = fig.add_subplot()
    for prof in drawn:
        recs = sorted(prof.records, key=lambda r: r.width)
        xs = [r.width for r in recs]
        p50 = [r.latency.p50_ms for r in recs]
        lo = [r.latency.ci95_ms.get("p50", (r.latency.p50_ms, r.latency.p50_ms))[0] for r in recs]
        hi = [r.latency.ci95_ms.get("p50", (r.latency.p50_ms, r.latency.p50_ms))[1] for r in recs]
        (line,) = ax.plot(xs, p50, "o-", markersize=3, label=profile_label(prof))
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("width multiplier")
    ax.set_ylabel("latency p50 (ms), band: 95% CI")
    ax.set_title("latency vs width", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return png_data_uri(fig)


def accuracy_scale(values: Sequence[float], metric: str | None) -> tuple[float, str]:
    """Factor and axis label for selection accuracies: % for fractions, millions for the MACs proxy."""
    if metric == "macs":
        return 1e-6, "accuracy proxy: MACs (millions)"
    name = metric or "accuracy"
    if values and all(0.0 <= v <= 1.0 for v in values):
        return 100.0, f"{name} (%)"
    return 1.0, name


def _point(c: dict[str, Any] | None, scale: float) -> TradeoffPoint | None:
    if not c or c.get("accuracy") is None or c.get("latency_ms") is None:
        return None
    return TradeoffPoint(float(c["width"]), float(c["latency_ms"]), scale * float(c["accuracy"]),
                         not c.get("violations"))


def panels_from_selection(selection: dict[str, Any]) -> list[TradeoffPanel]:
    """One panel per device of a selection document (latency = the statistic the solver compared)."""
    metric = (selection.get("accuracy") or {}).get("metric")
    rule = (selection.get("latency_rule") or {}).get("describe") or "latency"
    budget = (selection.get("budget") or {}).get("latency_ms")
    panels = []
    for dev in selection.get("devices") or []:
        cands = [c for c in dev.get("candidates") or [] if c.get("accuracy") is not None]
        scale, ylabel = accuracy_scale([float(c["accuracy"]) for c in cands], metric)
        points = [p for p in (_point(c, scale) for c in cands) if p is not None]
        panels.append(TradeoffPanel(
            title=f"{dev.get('device', '?')} · {dev.get('model', '?')} · {dev.get('backend', '?')}/"
                  f"{dev.get('precision', '?')}",
            xlabel=f"latency (ms, {rule})",
            ylabel=ylabel,
            points=sorted(points, key=lambda p: p.width),
            budget_ms=None if budget is None else float(budget),
            chosen=_point(dev.get("chosen"), scale),
            runner_up=_point(dev.get("runner_up"), scale),
        ))
    return panels


def panels_from_profiles(profiles: Sequence[Any], accuracy: dict[str, Any]) -> list[TradeoffPanel]:
    """Without a selection: accuracy (kNN or linear top-1) against p50 latency per profile, no budget."""
    from deploy.select import accuracy_table, width_key

    table, metric = accuracy_table(accuracy)
    panels = []
    for prof in profiles:
        points = [
            TradeoffPoint(r.width, r.latency.p50_ms, 100.0 * table[width_key(r.width)])
            for r in sorted(prof.records, key=lambda r: r.width)
            if width_key(r.width) in table
        ]
        if points:
            panels.append(TradeoffPanel(f"{profile_label(prof)} · {prof.model}", "latency p50 (ms)",
                                        f"{metric} (%)", points))
    return panels


def accuracy_vs_latency(panels: Sequence[TradeoffPanel]) -> str | None:
    """One subplot per panel: every width, the budget line, the chosen point and the runner-up."""
    panels = [p for p in panels if p.points]
    if not panels:
        return None
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig = _figure(4.6 * cols, 3.7 * rows)
    for i, panel in enumerate(panels):
        _draw_panel(fig.add_subplot(rows, cols, i + 1), panel)
    fig.tight_layout()
    return png_data_uri(fig)


def _draw_panel(ax: Any, panel: TradeoffPanel) -> None:
    pts = panel.points
    for fits, color, marker, label in ((True, "tab:blue", "o", "fits the budget"),
                                       (False, "tab:gray", "x", "over budget")):
        sel = [p for p in pts if p.fits == fits]
        if sel:
            ax.scatter([p.latency_ms for p in sel], [p.accuracy for p in sel], s=14, color=color,
                       marker=marker, label=label if panel.budget_ms is not None else "width", zorder=2)
    if len(pts) <= _MAX_LABELS:
        for p in pts:
            ax.annotate(f"{p.width:g}", (p.latency_ms, p.accuracy), textcoords="offset points", xytext=(4, -9),
                        fontsize=6, color="0.35")
    if panel.budget_ms is not None:
        ax.axvline(panel.budget_ms, color="tab:red", ls="--", label=f"budget {panel.budget_ms:g} ms")
    if panel.runner_up is not None:
        ax.scatter([panel.runner_up.latency_ms], [panel.runner_up.accuracy], s=80, marker="D",
                   facecolors="none", edgecolors="tab:orange", linewidths=1.5, zorder=3,
                   label=f"runner-up w={panel.runner_up.width:g}")
    if panel.chosen is not None:
        ax.scatter([panel.chosen.latency_ms], [panel.chosen.accuracy], s=130, facecolors="none",
                   edgecolors="tab:green", linewidths=2.2, zorder=4, label=f"chosen w={panel.chosen.width:g}")
    ax.set_title(panel.title, fontsize=8)
    ax.set_xlabel(panel.xlabel, fontsize=8)
    ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
