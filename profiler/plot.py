"""``--plot``: latency (median with its 95 % interval, and p90) and MACs against width, as one PNG."""

from __future__ import annotations

from pathlib import Path

from us3l.errors import MissingDependencyError
from us3l.profiler.profile_file import Profile


def plot_profile(profile: Profile, path: str | Path) -> Path:
    """Write the latency/MACs-vs-width figure of ``profile`` to ``path`` (PNG, matplotlib Agg backend)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("matplotlib", "plot", "--plot") from None
    from us3l.report.plots import save_png

    recs = sorted(profile.records, key=lambda r: r.width)
    w = [r.width for r in recs]
    p50 = [r.latency.p50_ms for r in recs]
    lo = [r.latency.p50_ms - r.latency.ci95_ms["p50"][0] for r in recs]
    hi = [r.latency.ci95_ms["p50"][1] - r.latency.p50_ms for r in recs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.errorbar(w, p50, yerr=[lo, hi], fmt="o-", ms=3, capsize=2, label="median (95% CI)")
    ax1.plot(w, [r.latency.p90_ms for r in recs], "s--", ms=2, alpha=0.7, label="p90")
    unstable = [r for r in recs if not r.latency.stable and not r.interpolated]
    interp = [r for r in recs if r.interpolated]
    if interp:
        ax1.plot([r.width for r in interp], [r.latency.p50_ms for r in interp], "o", mfc="white", ms=5,
                 label="interpolated (--adaptive)")
    if unstable:
        ax1.plot([r.width for r in unstable], [r.latency.p50_ms for r in unstable], "rx", label="not stable")
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
    fig.tight_layout()
    out = save_png(fig, path, dpi=120)
    plt.close(fig)
    return out
