"""``us3l select --plot``: accuracy against latency per device, with the budget line and the chosen width.

The figure is the report's (:func:`us3l.report.plots.tradeoff_figure`): accuracy on a fixed 0–100 % axis
rising upward, latency (the statistic the solver compared) across, 95 % intervals as error bars and the
random-init / raw-pixel / chance baselines when the accuracy file records them, widths with an unstable
latency hollow, the chosen width ringed, the runner-up a diamond, one legend below the panels.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from us3l.deploy.select import Selection


def _accuracy_doc(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The accuracy file the selection read (``inputs.accuracy.path``), when it is still there and readable."""
    ref = (doc.get("inputs") or {}).get("accuracy")
    path = ref.get("path") if isinstance(ref, Mapping) else None
    if not path or not Path(path).is_file():
        return None
    from us3l.errors import US3LError
    from us3l.eval.accuracy import load_accuracy

    try:
        return load_accuracy(path)
    except (US3LError, OSError, ValueError):
        return None


def plot_selection(selection: Selection | Mapping[str, Any], path: str | Path,
                   accuracy: Mapping[str, Any] | None = None) -> Path:
    """Draw one panel per profile and save a PNG; ``selection`` is a result or a selection document.

    ``accuracy`` (an accuracy document) adds intervals and baselines; by default the file named in the
    selection's inputs is read when it exists.
    """
    from us3l.report.plots import panels_from_selection, save_png, tradeoff_figure

    doc = selection.to_document() if isinstance(selection, Selection) else selection
    if accuracy is None:
        accuracy = _accuracy_doc(doc)
    fig = tradeoff_figure(panels_from_selection(doc, accuracy))
    if fig is None:
        from us3l.errors import US3LError

        raise US3LError("nothing to plot: no candidate width has an accuracy and a latency")
    return save_png(fig, path)
