"""``us3l eval --plot``: accuracy against width and against MACs, as PNG files.

The figures are the report's (:func:`us3l.report.plots.accuracy_figure`): 95 % intervals as error bars,
random-init / raw-pixel / chance baselines as reference lines, a fixed 0–100 % axis, the legend below the
axes. Schema-1 documents (no intervals, no baselines) draw what they have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_accuracy(doc: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``accuracy_vs_width.png`` and (when MACs are known) ``accuracy_vs_macs.png``; return paths."""
    from us3l.derived import ACCURACY_PLOTS
    from us3l.report.plots import accuracy_figure, save_png

    out = Path(out_dir)
    written: list[Path] = []
    for key, name in zip(("width", "macs"), ACCURACY_PLOTS, strict=True):
        fig = accuracy_figure(doc, key)
        if fig is not None:
            written.append(save_png(fig, out / name))
    return written
