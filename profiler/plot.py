"""``--plot``: latency (median with its 95 % interval, and p90) and MACs against width, as one PNG."""

from __future__ import annotations

from pathlib import Path

from us3l.profiler.profile_file import Profile


def plot_profile(profile: Profile, path: str | Path) -> Path:
    """Write the latency/MACs-vs-width figure of ``profile`` to ``path`` (PNG, matplotlib's Agg renderer).

    The figure is drawn without pyplot: the caller's matplotlib backend and open figures are left as they were
    (this called ``matplotlib.use("Agg")``, which switched a notebook's backend). Without matplotlib the figure
    builder raises ``MissingDependencyError``, as for the other plots; ``us3l profile --plot`` checks up front."""
    from us3l.report.plots import profile_figure, save_png

    return save_png(profile_figure(profile), path, dpi=120)
