"""Render the report in headless Chromium and check the screenshot (slow; skipped without chromium).

Set ``US3L_REPORT_SCREENSHOT=/some/dir`` to keep the rendered page and its screenshots for a look.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from us3l.report import write_report

from .conftest import accuracy_v1, make_selection, selection_v2

LONG_DEVICE = "jetson_orin_nano_super_developer_kit_8gb_maxn_power_mode_"  # + 6 characters: 64, the most allowed
RULE_GREY = (0xDD, 0xDD, 0xDD)  # a section heading's underline (and the table borders)

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
WIDTH, HEIGHT = 1280, 2400
ANSWER_GREEN = (0x2E, 0x7D, 0x32)  # the answer card's left border
WARN_ORANGE = (0xFB, 0x8C, 0x00)  # a warning's left border

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]


def screenshot(page: Path, png: Path, width: int = WIDTH, height: int = HEIGHT) -> Path:
    """Render ``page`` in headless Chromium (no network, no GPU, throwaway profile) into ``png``."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             f"--screenshot={png}", f"--window-size={width},{height}", page.resolve().as_uri()],
            check=True, capture_output=True, timeout=120,
        )
    return png


def _rows_with(img: object, rgb: tuple[int, int, int], tol: int = 12) -> list[int]:
    """Rows of the image holding a pixel within ``tol`` of ``rgb``."""
    px = img.load()  # type: ignore[attr-defined]
    w, h = img.size  # type: ignore[attr-defined]
    return [y for y in range(0, h, 2)
            if any(all(abs(a - b) <= tol for a, b in zip(px[x, y][:3], rgb, strict=True)) for x in range(0, 80))]


def _keep(out: Path, name: str) -> None:
    keep = os.environ.get("US3L_REPORT_SCREENSHOT")
    if keep:
        dest = Path(keep)
        dest.mkdir(parents=True, exist_ok=True)
        for f in out.iterdir():
            shutil.copy2(f, dest / f"{name}-{f.name}")


@pytest.mark.parametrize("variant", ["schema2", "schema1"])
def test_report_renders_with_the_answer_and_its_warning_on_top(pipeline: Path, tmp_path: Path, variant: str) -> None:
    from PIL import Image

    if variant == "schema1":  # old files: no intervals, no baselines, no decided_by / warnings
        (pipeline / "accuracy.json").write_text(__import__("json").dumps(accuracy_v1()), encoding="utf-8")
        old = selection_v2()
        for d in old["devices"]:
            for key in ("decided_by", "tied_widths", "warnings"):
                d.pop(key)
        make_selection(pipeline, old)
    out = tmp_path / "out"
    out.mkdir()
    page = write_report(pipeline, out / "report.html")
    png = screenshot(page, out / "report.png")
    _keep(out, variant)
    img = Image.open(png).convert("RGB")
    assert img.size == (WIDTH, HEIGHT)
    colours = img.resize((64, 120)).getcolors(64 * 120) or []
    assert len(colours) > 20  # not a blank or error page
    green, orange = _rows_with(img, ANSWER_GREEN), _rows_with(img, WARN_ORANGE)
    assert green and min(green) < 400, "the answer card is not near the top"
    assert orange and min(orange) < 700, "the unstable-latency warning is not in the answer"


def _content_right_edge(img: object) -> int:
    """The right end of the first heading rule that spans most of the screenshot: where the content ends."""
    px = img.load()  # type: ignore[attr-defined]
    w, h = img.size  # type: ignore[attr-defined]
    for y in range(h):
        xs = [x for x in range(w) if px[x, y][:3] == RULE_GREY]
        if len(xs) > w // 2:
            return max(xs)
    raise AssertionError("no heading rule found")


@pytest.mark.parametrize("width", [420, 1280])
def test_wide_tables_scroll_in_their_box_and_the_page_does_not(pipeline: Path, tmp_path: Path, width: int) -> None:
    """64-character device names on a phone-wide and a laptop-wide window: nothing is drawn in the page's right
    padding (a table running past the content would be), so the page itself never scrolls sideways."""
    from PIL import Image

    sel = selection_v2()
    for d in sel["devices"]:
        d["device"] = LONG_DEVICE + d["backend"][:6].ljust(6, "_")
    make_selection(pipeline, sel)
    out = tmp_path / "out"
    out.mkdir()
    png = screenshot(write_report(pipeline, out / "report.html"), out / "report.png", width=width)
    _keep(out, f"long-names-{width}")
    img = Image.open(png).convert("RGB")
    edge = _content_right_edge(img)
    px = img.load()
    spill = [(x, y) for y in range(img.size[1]) for x in range(edge + 3, edge + 12) if min(px[x, y]) < 245]
    assert not spill, f"content drawn right of the content edge (x={edge}) at {spill[:3]}"
