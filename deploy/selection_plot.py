"""``us3l select --plot``: accuracy against latency per device, with the budget line and the chosen width."""

from __future__ import annotations

from pathlib import Path

from deploy.select import Selection


def plot_selection(selection: Selection, path: str | Path) -> Path:
    """Draw one panel per profile and save a PNG (matplotlib, Agg backend)."""
    try:
        import matplotlib
    except ImportError:
        from us3l.errors import MissingDependencyError

        raise MissingDependencyError("matplotlib", "plot", "--plot") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(selection.devices)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
    ylabel = "accuracy proxy: MACs" if selection.metric == "macs" else f"{selection.metric} (%)"
    for ax, d in zip(axes[0], selection.devices, strict=True):
        cands = sorted(d.candidates, key=lambda c: c.width)
        xs = [c.latency_ms for c in cands]
        ys = [c.accuracy if c.accuracy is not None else float("nan") for c in cands]
        ok = [c.feasible for c in cands]
        ax.plot(xs, ys, "-", color="0.7", zorder=1)
        ax.scatter(
            [x for x, f in zip(xs, ok, strict=True) if f],
            [y for y, f in zip(ys, ok, strict=True) if f],
            s=14,
            color="tab:blue",
            label="fits the budget",
            zorder=2,
        )
        ax.scatter(
            [x for x, f in zip(xs, ok, strict=True) if not f],
            [y for y, f in zip(ys, ok, strict=True) if not f],
            s=14,
            color="tab:gray",
            marker="x",
            label="over budget",
            zorder=2,
        )
        if selection.budget.latency_ms is not None:
            ax.axvline(
                selection.budget.latency_ms,
                color="tab:red",
                ls="--",
                label=f"budget {selection.budget.latency_ms:g} ms",
            )
        if d.chosen is not None:
            ax.scatter(
                [d.chosen.latency_ms],
                [d.chosen.accuracy],
                s=90,
                facecolors="none",
                edgecolors="tab:green",
                linewidths=2,
                zorder=3,
                label=f"chosen w={d.chosen.width:g}",
            )
        ax.set_title(f"{d.device} · {d.model} · {d.backend}/{d.precision}", fontsize=9)
        ax.set_xlabel(f"latency (ms, {selection.rule.describe()})")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    from us3l.io import atomic_write

    atomic_write(out, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)
    return out
