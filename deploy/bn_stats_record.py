"""The calibrated BN statistics a manifest records for its width(s), and the one comparison every consumer makes.

A one-width manifest records them in ``source.bn_stats.width_sha256`` (the width ``model.width``, stored in
``bn_stats.safetensors`` under ``model.canonical_width``); a switchable one per width, in
``model.per_width[i].bn_stats_sha256`` (``canonical_width`` beside it, where recorded). Each digest is
``us3l.eval.calibrate.width_bn_stats_sha256`` at export time. ``us3l.deploy.load`` / ``load_switchable``
(``bn_stats_sha256=``), ``us3l eval --artifact`` and the report compare them with the statistics the run holds
now, through :func:`bn_stats_records` and :func:`bn_stats_differ`, so one-width and switchable artifacts are
refused or flagged alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WidthBNStats:
    """One width's record: ``width`` as the manifest names it, ``canonical`` the width its statistics are stored
    under in ``bn_stats.safetensors``, ``sha256`` their digest (``None``: exported without calibrated statistics),
    ``index`` its index in a switchable artifact's grid (``None`` for a one-width artifact)."""

    width: float
    canonical: float
    sha256: str | None
    index: int | None = None

    @property
    def label(self) -> str:
        """How messages name the width: ``width 0.25`` (a switchable artifact's: ``width 0.25 (index 3)``)."""
        return f"width {self.width:g}" + ("" if self.index is None else f" (index {self.index})")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def bn_stats_records(doc: Mapping[str, Any]) -> list[WidthBNStats]:
    """The BN statistics records of a manifest (one-width or switchable), in grid order; empty for a manifest
    written before they were recorded. Entries of the wrong type are left out (the report reads manifests that
    failed their checks): the loaders refuse those before they get here."""
    model = doc.get("model") if isinstance(doc.get("model"), Mapping) else {}
    if doc.get("kind") == "switchable_manifest":
        out = []
        per_width = model.get("per_width")
        for i, p in enumerate(per_width if isinstance(per_width, list) else []):
            if not isinstance(p, Mapping) or "bn_stats_sha256" not in p:  # an older manifest: nothing recorded
                continue
            width, sha = _number(p.get("width")), p.get("bn_stats_sha256")
            canonical = _number(p.get("canonical_width", p.get("width")))
            if width is not None and canonical is not None and (sha is None or isinstance(sha, str)):
                out.append(WidthBNStats(width, canonical, sha, i))
        return out
    source = doc.get("source") if isinstance(doc.get("source"), Mapping) else {}
    if "bn_stats" not in source:  # an older manifest: nothing to compare
        return []
    bn = source.get("bn_stats")
    sha = bn.get("width_sha256") if isinstance(bn, Mapping) else None
    width = _number(model.get("width"))
    canonical = _number(model.get("canonical_width", model.get("width")))
    if width is None or canonical is None or not (sha is None or isinstance(sha, str)):
        return []
    return [WidthBNStats(width, canonical, sha)]


def bn_stats_differ(record: WidthBNStats, expected: str | None, *, name_width: bool = False) -> str | None:
    """Why ``record`` is not the calibrated statistics ``expected`` (``width_bn_stats_sha256`` of the model the
    caller runs; ``None``: the caller's model has none for the width), or ``None`` when it is. ``name_width``: start
    with the record's width (a switchable artifact)."""
    prefix = f"{record.label}: " if name_width else ""
    if expected is None:
        if record.sha256 is None:
            return None
        return (f"{prefix}exported with calibrated BN statistics {record.sha256[:12]}…, expected none: the checkpoint "
                "has no calibrated statistics for this width now (bn_stats.safetensors removed, stale, or without it)")
    if record.sha256 is None:
        return (f"{prefix}exported without calibrated BN statistics for its width, expected the calibrated ones "
                f"{expected[:12]}…")
    if record.sha256 != expected:
        return (f"{prefix}BN statistics {record.sha256[:12]}…, expected {expected[:12]}…: the width was recalibrated "
                "since the export")
    return None


def expected_bn_stats_differ(doc: Mapping[str, Any], expected: str | Mapping[float, str | None]) -> list[str]:
    """:func:`bn_stats_differ` for every record of ``doc``: ``expected`` is the digest of a one-width artifact's
    width, or (a switchable artifact) a mapping width -> digest, each width matched as ``us3l select`` matches
    widths (``width_keys``); a width the mapping does not name, or names with ``None``, is not checked."""
    from us3l.width_key import width_keys

    records = bn_stats_records(doc)
    if isinstance(expected, str):
        return [why for r in records if (why := bn_stats_differ(r, expected)) is not None]
    wanted = {key: sha for w, sha in expected.items() for key in width_keys(float(w))}
    out = []
    for r in records:
        sha = next((wanted[k] for k in width_keys(r.width) if k in wanted), None)
        if sha is not None and (why := bn_stats_differ(r, sha, name_width=True)) is not None:
            out.append(why)
    return out
