"""``us3l.derived.invalidate_stale``: what goes with a stale accuracy file, and what never does."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from us3l.derived import ACCURACY_FILE, ACCURACY_PLOTS, invalidate_stale


def _png(software: str | None) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if software is not None:
        info.add_text("Software", software)
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def test_stale_accuracy_takes_only_us3l_plots_with_it(tmp_path: Path) -> None:
    """A stale accuracy.json goes with the plots us3l drew from it; a PNG of the user's under the same name (no
    ``Software: us3l`` text) stays (red-team 2026-12-05: it was deleted unchecked)."""
    (tmp_path / ACCURACY_FILE).write_text(json.dumps({"checkpoint_sha256": "old"}))
    ours, theirs = ACCURACY_PLOTS
    (tmp_path / ours).write_bytes(_png("us3l"))
    mine = _png(None)
    (tmp_path / theirs).write_bytes(mine)
    removed = invalidate_stale(tmp_path, checkpoint_sha256="new")
    assert sorted(p.name for p in removed) == sorted([ACCURACY_FILE, ours])
    assert not (tmp_path / ours).exists() and not (tmp_path / ACCURACY_FILE).exists()
    assert (tmp_path / theirs).read_bytes() == mine


def test_bound_accuracy_keeps_everything(tmp_path: Path) -> None:
    (tmp_path / ACCURACY_FILE).write_text(json.dumps({"checkpoint_sha256": "same"}))
    for name in ACCURACY_PLOTS:
        (tmp_path / name).write_bytes(_png("us3l"))
    assert invalidate_stale(tmp_path, checkpoint_sha256="same") == []
    assert all((tmp_path / n).is_file() for n in (ACCURACY_FILE, *ACCURACY_PLOTS))


def test_changed_weights_take_a_us3l_report_in_the_run_folder_with_them(tmp_path: Path) -> None:
    """Red-team 2026-12-05: after `us3l report RUN` and a retrain, RUN/report.html kept showing the old weights'
    numbers. A page of the user's named report.html stays; with nothing stale the report stays too."""
    from us3l.report import _REPORT_MARK

    page = tmp_path / "report.html"
    (tmp_path / ACCURACY_FILE).write_text(json.dumps({"checkpoint_sha256": "same"}))
    page.write_bytes(b"<!doctype html><title>us3l report</title>" + _REPORT_MARK + b"RUN</code></p>")
    assert invalidate_stale(tmp_path, checkpoint_sha256="same") == [] and page.is_file()
    removed = invalidate_stale(tmp_path, checkpoint_sha256="new")
    assert sorted(p.name for p in removed) == [ACCURACY_FILE, "report.html"] and not page.exists()
    (tmp_path / ACCURACY_FILE).write_text(json.dumps({"checkpoint_sha256": "old"}))
    page.write_text("<html>my notes</html>")
    assert [p.name for p in invalidate_stale(tmp_path, checkpoint_sha256="new")] == [ACCURACY_FILE]
    assert page.read_text() == "<html>my notes</html>"


def test_a_fifo_named_report_html_is_left_alone_without_waiting_on_it(tmp_path: Path) -> None:
    """The page was opened before it was checked to be a file: a FIFO named report.html made training wait on it."""
    import os

    (tmp_path / ACCURACY_FILE).write_text(json.dumps({"checkpoint_sha256": "old"}))
    os.mkfifo(tmp_path / "report.html")
    assert [p.name for p in invalidate_stale(tmp_path, checkpoint_sha256="new")] == [ACCURACY_FILE]
    assert (tmp_path / "report.html").exists()
