"""``us3l report``: one self-contained HTML page for a pipeline folder.

Public API::

    from us3l.report import write_report, render_report
    path = write_report("quickstart_out")               # -> quickstart_out/report.html (atomic write)
    rep = render_report("quickstart_out")               # Report(html, sections, files); nothing written
    rep.rendered(), rep.missing(), rep.errors(), rep.warnings()

The folder layout is the one ``us3l quickstart`` writes: ``run/``, ``accuracy.json``, ``profiles/*.json``,
``selection.json``, ``artifacts/<device>/<name>/manifest.json`` and ``summary.json``. Whatever is present is
rendered; missing inputs and unreadable files are named on the page. A folder that does not exist or holds
none of these files raises ``US3LError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from us3l.report.collect import PipelineFiles, collect_pipeline
from us3l.report.html import ERROR, MISSING, RENDERED, Section, build_sections, render_html

REPORT_FILE = "report.html"

__all__ = [
    "REPORT_FILE", "PipelineFiles", "Report", "Section", "check_report_replaceable", "collect_pipeline", "is_report",
    "render_report", "save_report", "write_report",
]


@dataclass(frozen=True)
class Report:
    """A rendered page and what went into it."""

    html: str
    sections: list[Section]
    files: PipelineFiles

    def rendered(self) -> list[str]:
        """Keys of the sections drawn from their inputs."""
        return [s.key for s in self.sections if s.state == RENDERED]

    def missing(self) -> list[str]:
        """Keys of the sections whose inputs are absent."""
        return [s.key for s in self.sections if s.state == MISSING]

    def failed(self) -> list[str]:
        """Keys of the sections whose inputs are present but unreadable."""
        return [s.key for s in self.sections if s.state == ERROR]

    def errors(self) -> list[str]:
        """One line per unreadable input file."""
        return self.files.errors()

    def unchecked_widths(self) -> list[str]:
        """One line per artifact whose width could not be checked against its graph (marked so on the page)."""
        return self.files.unchecked_widths()

    def unchecked_sources(self) -> list[str]:
        """One line per artifact whose source checkpoint could not be checked against the run's weights (marked so
        on the page)."""
        return self.files.unchecked_sources()

    def data_checks(self) -> list[dict[str, Any]]:
        """Per readable accuracy file: its ``data_check`` fields and the page's notes on them
        (``us3l.report.data_check.data_check_record``)."""
        from us3l.report.data_check import data_check_record

        acc = self.files.accuracy
        return [data_check_record(acc.path, acc.doc)] if acc is not None and acc.ok and acc.doc is not None else []

    def data_warnings(self) -> list[str]:
        """One line per accuracy file measured on data changed since training or with test images identical to
        training images (noted on the page too): its ``data_checks`` notes."""
        return [f"{r['path']}: {'; '.join(r['notes'])}" for r in self.data_checks() if r["notes"]]

    def warnings(self) -> list[str]:
        """Every stderr line (without ``warning:``) the report has for the terminal, which the page alone would
        not tell there: unreadable files, unchecked artifact widths and sources, accuracies on questionable data,
        sections not rendered. ``us3l report`` and the report step of ``us3l quickstart`` both print these."""
        return (self.errors() + self.unchecked_widths() + self.unchecked_sources() + self.data_warnings()
                + self.problems())

    def problems(self) -> list[str]:
        """One line per reason that sections could not be rendered at all (e.g. matplotlib is not installed: no
        figure), naming the sections."""
        keys: dict[str, list[str]] = {}
        for s in self.sections:
            if s.problem:
                keys.setdefault(s.problem, []).append(s.key)
        return [f"section{'s' * (len(k) > 1)} {', '.join(k)} not rendered: {p}" for p, k in keys.items()]

    def to_dict(self, path: Path | None = None) -> dict[str, Any]:
        """The ``--json`` document of ``us3l report``."""
        return {
            "report": None if path is None else str(path),
            "directory": str(self.files.root),
            "sections": {s.key: s.state for s in self.sections},
            "rendered": self.rendered(),
            "missing": self.missing(),
            "failed": self.failed(),
            "missing_inputs": self.files.missing(),
            "errors": self.errors(),
            "unchecked_widths": self.unchecked_widths(),
            "unchecked_sources": self.unchecked_sources(),
            "data_checks": self.data_checks(),
        }


def render_report(directory: str | Path) -> Report:
    """Load the pipeline folder and render the page in memory (``US3LError`` for a missing/empty folder)."""
    files = collect_pipeline(directory)
    sections = build_sections(files)
    return Report(html=render_html(files, sections), sections=sections, files=files)


def write_report(directory: str | Path, out: str | Path | None = None) -> Path:
    """Render the report of ``directory`` and write it atomically to ``out`` (default ``DIR/report.html``);
    ``US3LError`` when a file there is not a us3l report."""
    check_report_replaceable(Path(out) if out is not None else Path(directory) / REPORT_FILE)
    return save_report(render_report(directory), out)


def save_report(report: Report, out: str | Path | None = None) -> Path:
    """Write a rendered report atomically; returns the path written. An existing file there that is not a us3l
    report is never replaced (``check_report_replaceable``)."""
    from us3l.io import atomic_write_bytes

    path = Path(out) if out is not None else report.files.root / REPORT_FILE
    check_report_replaceable(path)
    # a file name that is not UTF-8 (the folder's, a profile's) reaches Python as lone surrogates, which UTF-8
    # cannot encode: written as \udcff, not a failed report
    return atomic_write_bytes(path, report.html.encode("utf-8", "backslashreplace"))


#: What every report page has in its first bytes (the line under the title), and no other file of the user's.
_REPORT_MARK = b'<p class="muted">pipeline folder <code>'


def is_report(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) is the start of a page ``us3l report`` wrote."""
    return _REPORT_MARK in head


def check_report_replaceable(path: str | Path) -> None:
    """Refuse (one line) to replace an existing ``path`` that is not a us3l report: a page of the user's under that
    name is never overwritten (``us3l report``, ``us3l quickstart`` and the Python API check it before any work)."""
    from us3l.io import check_replaceable

    check_replaceable(Path(path), "us3l report", is_report)
