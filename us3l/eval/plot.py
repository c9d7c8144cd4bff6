"""Accuracy against width and against MACs, as PNG files (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from us3l.errors import MissingDependencyError

_SERIES = (("knn_top1", "kNN top-1", "o-"), ("linear_top1", "linear top-1", "s-"))


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("matplotlib", "plot", "--plot") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(doc: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``accuracy_vs_width.png`` and (when MACs are known) ``accuracy_vs_macs.png``; return paths."""
    from us3l.io import atomic_write

    plt = _pyplot()
    rows = sorted(doc["widths"], key=lambda r: r["width"])
    out = Path(out_dir)
    title = f"{doc.get('model')} on {doc.get('data')}"
    written: list[Path] = []
    axes_specs = [("width", "width multiplier", "accuracy_vs_width.png", False)]
    if all(r.get("macs") is not None for r in rows):
        axes_specs.append(("macs", "MACs (millions)", "accuracy_vs_macs.png", True))
    for key, label, name, mega in axes_specs:
        fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=120)
        for field, legend, style in _SERIES:
            pts = [(r[key], r[field]) for r in rows if r.get(field) is not None]
            if pts:
                xs = [x / 1e6 if mega else x for x, _ in pts]
                ax.plot(xs, [100 * y for _, y in pts], style, label=legend)
        ax.set_xlabel(label)
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        written.append(atomic_write(out / name, lambda p, fig=fig: fig.savefig(p, format="png")))
        plt.close(fig)
    return written
