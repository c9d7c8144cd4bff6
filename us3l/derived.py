"""Files derived from a run's checkpoint, bound to its sha256, and their invalidation when the weights change.

Every file computed from a checkpoint records the sha256 of ``checkpoint.safetensors`` it was computed for:
``bn_stats.safetensors`` (safetensors metadata ``checkpoint_sha256``), ``accuracy.json``
(``checkpoint_sha256``), profiles (``checkpoint_sha256``), manifests (``source.checkpoint_sha256``). Loaders
refuse or recompute on mismatch; ``invalidate_stale`` removes the run folder's own derived files once the
checkpoint beside them changed (``us3l train`` calls it after every checkpoint and on ``--resume``), so a
stale file is never picked up by a tool that does not check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

BN_STATS_FILE = "bn_stats.safetensors"
ACCURACY_FILE = "accuracy.json"
ACCURACY_PLOTS = ("accuracy_vs_width.png", "accuracy_vs_macs.png")
WEIGHTS_FILE = "checkpoint.safetensors"


def _accuracy_sha(path: Path) -> str | None:
    from us3l.errors import US3LError
    from us3l.io import read_json

    try:  # bounded: a multi-GB file named accuracy.json is not read whole
        doc = read_json(path, "accuracy file")
    except US3LError:
        return None
    return doc.get("checkpoint_sha256") if isinstance(doc, dict) else None


def invalidate_stale(run_dir: str | Path, checkpoint_sha256: str | None = None) -> list[Path]:
    """Delete the derived files of ``run_dir`` not bound to its current checkpoint; return what was removed.

    ``checkpoint_sha256`` defaults to the digest of ``run_dir/checkpoint.safetensors``; without a checkpoint
    nothing is removed. A file that records no digest (older us3l, damaged) counts as stale. The accuracy plots
    go with a stale ``accuracy.json`` only when us3l wrote them (``Software: us3l``): any other file under
    those names is left alone. When anything was stale, a ``report.html`` that ``us3l report`` wrote into the
    run folder goes too (a page of the user's under that name stays).
    """
    from us3l.eval.calibrate import bn_stats_checkpoint_sha256
    from us3l.io import file_sha256

    run_dir = Path(run_dir)
    if checkpoint_sha256 is None:
        weights = run_dir / WEIGHTS_FILE
        if not weights.is_file():
            return []
        checkpoint_sha256 = file_sha256(weights)
    removed: list[Path] = []
    bn = run_dir / BN_STATS_FILE
    if bn.is_file() and bn_stats_checkpoint_sha256(bn) != checkpoint_sha256:
        bn.unlink(missing_ok=True)
        removed.append(bn)
    acc = run_dir / ACCURACY_FILE
    if acc.is_file() and _accuracy_sha(acc) != checkpoint_sha256:
        acc.unlink(missing_ok=True)
        removed.append(acc)
        from us3l.io import is_us3l_png

        for p in (run_dir / n for n in ACCURACY_PLOTS):
            if _written_by_us3l(p, is_us3l_png):  # a PNG of the user's under that name is not ours to delete
                p.unlink(missing_ok=True)
                removed.append(p)
    if removed:  # the weights changed: a us3l report written into the run folder shows the old weights' numbers
        from us3l.report import REPORT_FILE, is_report

        page = run_dir / REPORT_FILE
        if _written_by_us3l(page, is_report):
            page.unlink(missing_ok=True)
            removed.append(page)
    return removed


def _written_by_us3l(path: Path, ours: Callable[[bytes], bool]) -> bool:
    """Whether ``path`` is a regular file whose first bytes are ``ours`` (a PNG with ``Software: us3l``, a page
    ``us3l report`` wrote). Anything else (absent, a folder, a FIFO, which ``open`` would wait on) is not."""
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            return ours(fh.read(65536))
    except OSError:
        return False
