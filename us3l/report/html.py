"""Render one self-contained HTML page from a :class:`~us3l.report.collect.PipelineFiles`.

The page has no external reference: the stylesheet is inline and every figure is a ``data:`` URI. The markup
lives in the jinja2 template ``templates/report.html.j2``, rendered with autoescape: every piece of text taken
from the input files is escaped unless it was built here as HTML (``Markup``). Each section is rendered on its own; a
section whose input is missing says so, and one whose input is unreadable (or malformed in a way the loaders
do not catch) shows one error line, without stopping the rest of the page.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from markupsafe import Markup

from us3l.report import plots
from us3l.report.collect import (
    PRODUCERS,
    SOURCE_UNCHECKED_KEY,
    WIDTH_UNCHECKED_KEY,
    Loaded,
    PipelineFiles,
    answer_of_another_model,
    error_line,
    shown_path,
)
from us3l.version import __version__

RENDERED, MISSING, ERROR = "rendered", "missing", "error"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#1d1d1f;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;
margin-top:2rem}h3{font-size:1rem;margin-bottom:.3rem}
.scroll{overflow-x:auto;max-width:100%;margin:.5rem 0 1rem}
table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
td{overflow-wrap:break-word}td:first-child:not(.num){overflow-wrap:anywhere;min-width:8em}
h1,h2,h3,.answer p,.warn{overflow-wrap:anywhere}
th{background:#f4f4f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.8rem;word-break:break-all}
img{max-width:100%;height:auto;border:1px solid #eee}
.missing{color:#8a6d00;background:#fff8e1;padding:.3rem .6rem;border-left:3px solid #f0c000}
.error{color:#a00;background:#fdecea;padding:.3rem .6rem;border-left:3px solid #d33}
.ok{color:#0a7d28;font-weight:600}.bad{color:#c00;font-weight:600}.muted{color:#777;font-size:.85rem}
td.num{white-space:nowrap}
.answer{border:1px solid #cfd8dc;border-left:5px solid #2e7d32;border-radius:4px;padding:.4rem .9rem;margin:.6rem 0;
background:#f7fbf7}.answer.bad-answer{border-left-color:#c62828;background:#fdf4f4}.answer h3{margin:.2rem 0}
.answer p{margin:.25rem 0}.answer .big{font-size:1.1rem}
.warn{color:#7a4a00;background:#fff3e0;padding:.25rem .6rem;border-left:3px solid #fb8c00;margin:.3rem 0}
nav{font-size:.85rem;color:#555}nav a{color:#1565c0;margin-right:.8rem;text-decoration:none}
"""


@cache
def _template() -> Any:
    """The page template's module (its macros), from ``templates/report.html.j2``; autoescape on."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2").module


def _macro(name: str, *args: Any) -> str:
    """A template macro's HTML as a plain ``str`` (fragments are joined with ``+`` and later handed to the
    template as ``Markup``; a ``Markup`` here would escape the plain strings added to it)."""
    return str(getattr(_template(), name)(*args))


@dataclass(frozen=True)
class Section:
    """One part of the page: ``state`` is ``rendered``, ``missing`` (input absent) or ``error``."""

    key: str
    title: str
    body: str
    state: str
    problem: str | None = None  # why the section could not be rendered at all (a missing package, a bad document)


# ------------------------------------------------------------------------------------------ formatting


def esc(value: Any) -> str:
    """Escape any value for HTML text or attribute context."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt_num(value: Any, spec: str = ".3f") -> str:
    """A number formatted with ``spec``; ``—`` for None or non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return format(value, spec)


def fmt_pct(value: Any) -> str:
    """A fraction in [0, 1] as ``83.4 %`` (the page's one percent format); ``n/a`` when absent."""
    return plots.pct(value)


def fmt_count(value: Any) -> str:
    """A large count (MACs, params) in millions."""
    return "—" if not isinstance(value, int | float) else f"{value / 1e6:.2f}M"


def fmt_width(value: Any) -> str:
    """A width multiplier without trailing zeros (``1``, ``0.4167``); ``—`` for None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    return f"{value:g}"


def fmt_yes(value: Any) -> str:
    """``yes``/``no`` with a colour class (already HTML)."""
    if value is True:
        return '<span class="ok">yes</span>'
    if value is False:
        return '<span class="bad">no</span>'
    return "—"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """An HTML table; ``headers`` are escaped by the template, cells must already be HTML (escape with
    :func:`esc`)."""
    return _macro("table", list(headers), [[Markup(c) for c in row] for row in rows], list(numeric))


def kv_table(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column key/value table; values are escaped (None values are skipped)."""
    return table(["field", "value"], [(esc(k), esc(v)) for k, v in pairs if v is not None and v != ""])


def img(uri: str, alt: str) -> str:
    return _macro("img", uri, alt)


def missing_note(what: str, producer: str) -> str:
    return _macro("missing_note", what, producer)


def error_note(text: str) -> str:
    return _macro("error_note", text)


def _errors(items: Iterable[Loaded[Any] | None]) -> str:
    return "".join(error_note(error_line(it)) for it in items if it is not None and it.error)


def _foreign_note(files: PipelineFiles) -> str:
    """A warning naming the profiles of another model than the run's, which the plots and tables leave out."""
    if not files.foreign:
        return ""
    names = ", ".join(f"{p.parent.name}/{p.name}" for p in files.foreign)
    return _macro("warning", f"left out: {names}: profiled from another model (or model configuration) than the "
                             "run's (see Inputs); re-run us3l profile on the run's checkpoint")


def _short(text: Any, n: int = 12) -> str | None:
    return None if not text else str(text)[:n]


# ------------------------------------------------------------------------------------------ sections


def _model_name(files: PipelineFiles) -> str | None:
    for item in (files.checkpoint, files.accuracy):
        if item is not None and item.ok and item.doc.get("model"):
            return str(item.doc["model"])
    for p in files.profiles:
        if p.ok:
            return str(p.doc.model)
    return None


def training_seconds(metrics: list[dict[str, Any]]) -> float | None:
    """Sum of the per-epoch ``seconds`` recorded in ``metrics.jsonl`` (None when none is recorded)."""
    secs = [float(r["seconds"]) for r in metrics if isinstance(r.get("seconds"), int | float)]
    return sum(secs) if secs else None


def _duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    minutes, sec = divmod(seconds, 60)
    return f"{seconds:.1f} s" if minutes < 1 else f"{int(minutes)} min {sec:.0f} s ({seconds:.1f} s)"


def _data_text(data: Any) -> str | None:
    if isinstance(data, dict):
        parts = [str(data.get("name") or data.get("spec") or "?")]
        if data.get("spec") and data.get("spec") != data.get("name"):
            parts.append(f"spec {data['spec']}")
        for key in ("num_classes", "train_size", "test_size"):
            if data.get(key) is not None:
                parts.append(f"{key.replace('_', ' ')} {data[key]}")
        return ", ".join(parts)
    return None if data is None else str(data)


#: Each section's heading (and its entry in the page's navigation), also when its builder fails.
TITLES = {
    "run": "Run",
    "accuracy": "Accuracy vs width",
    "latency": "Latency vs width",
    "tradeoff": "Accuracy vs latency (selection)",
    "widths": "Per-width table",
    "selection": "Answer: the width to deploy per device",
    "environment": "Environment (per profile)",
    "artifacts": "Artifacts",
    "summary": "Pipeline summary",
}


def section_run(files: PipelineFiles) -> Section:
    """Model, method, epochs, data, training time and the checkpoint's identity."""
    items = [files.checkpoint, files.metrics]
    if all(it is None for it in items):
        return Section("run", TITLES["run"],
                       missing_note("run/checkpoint.json and run/metrics.jsonl", PRODUCERS["run"]), MISSING)
    meta = files.checkpoint.doc if files.checkpoint is not None and files.checkpoint.ok else {}
    metrics = files.metrics.doc if files.metrics is not None and files.metrics.ok else []
    if isinstance(meta.get("epoch"), int):  # a run stopped between checkpoints logged epochs its weights lack
        metrics = [r for r in metrics if not isinstance(r.get("epoch"), int) or r["epoch"] <= meta["epoch"]]
    acc = files.accuracy.doc if files.accuracy is not None and files.accuracy.ok else {}
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    wr = meta.get("width_range") if isinstance(meta.get("width_range"), dict) else {}
    last = metrics[-1] if metrics else {}
    pairs = [
        ("model", meta.get("model") or acc.get("model")),
        ("method", meta.get("method")),
        ("epochs", _epochs_text(meta.get("epoch"), config.get("epochs"), len(metrics) if metrics else None)),
        ("data", _data_text(meta.get("data") if meta else acc.get("data"))),
        ("input size", meta.get("input_size")),
        ("width range", f"{wr.get('min')} … {wr.get('max')} (divisor {wr.get('divisor')})" if wr else None),
        ("training time", _duration(training_seconds(metrics))),
        ("last epoch loss", _loss_text(last.get("loss"))),
        ("training device", (meta.get("distributed") or {}).get("device") if isinstance(
            meta.get("distributed"), dict) else None),
        ("checkpoint sha256", _run_sha_text(files, meta, acc)),
        ("trained with", f"{meta.get('tool', 'us3l')} {meta.get('tool_version')}" if meta.get("tool_version")
         else None),
    ]
    body = kv_table(pairs) + _errors(items)
    if files.metrics is None:
        body += missing_note("run/metrics.jsonl", PRODUCERS["run"])
    state = RENDERED if meta or metrics else ERROR
    return Section("run", TITLES["run"], body, state)


def _run_sha_text(files: PipelineFiles, meta: dict[str, Any], acc: dict[str, Any]) -> str | None:
    """The run's checkpoint sha256: of its weights file, else as checkpoint.json recorded it, else as accuracy.json
    did (said so: accuracy.json may be of another checkpoint)."""
    if files.weights_sha256:
        return files.weights_sha256
    if isinstance(meta.get("weights_sha256"), str):
        return f"{meta['weights_sha256']} (recorded in checkpoint.json; the weights file is absent)"
    if isinstance(acc.get("checkpoint_sha256"), str):
        return f"{acc['checkpoint_sha256']} (recorded in accuracy.json; the weights file is absent)"
    return None


def _epochs_text(epoch: Any, planned: Any, recorded: int | None) -> str | None:
    if epoch is None and recorded is None:
        return None
    done = epoch if epoch is not None else recorded
    return f"{done} of {planned}" if planned is not None and planned != done else str(done)


def _loss_text(loss: Any) -> str | None:
    if isinstance(loss, dict):
        return ", ".join(f"{k} {fmt_num(v, '.4f')}" for k, v in loss.items())
    return None if loss is None else fmt_num(loss, ".4f")


def _protocol_text(doc: dict[str, Any]) -> str:
    protocols = doc.get("protocols") if isinstance(doc.get("protocols"), dict) else {}
    parts = []
    knn = protocols.get("knn")
    if isinstance(knn, dict):
        k = f"k={knn.get('k')}"
        if knn.get("k_requested") is not None and knn.get("k_requested") != knn.get("k"):
            k += f" (requested {knn.get('k_requested')}, capped by the class sizes)"
        parts.append(f"kNN {k}")
    elif knn:
        parts.append("kNN")
    if protocols.get("linear"):
        parts.append("linear probe")
    return ", ".join(parts) or "none"


def _baseline_text(doc: dict[str, Any]) -> str:
    """Raw pixels, chance and the random-init seed, as one line of HTML; ``n/a`` for what is not recorded."""
    raw = plots.raw_pixels(doc)
    raw_text = "n/a (not recorded)"
    if raw is not None:
        k = f" (kNN, k={raw.get('k')})" if raw.get("k") is not None else ""
        raw_text = plots.pct_with_ci(raw["knn_top1"], raw.get("knn_top1_ci")) + k
    chance, label = plots.chance_level(doc)
    base = doc.get("baselines") if isinstance(doc.get("baselines"), dict) else {}
    seed = base.get("random_init_seed")
    random_text = "per width in the table below" if any(
        plots.random_init(r)[0] is not None for r in doc.get("widths") or [] if isinstance(r, dict)) else "n/a"
    if seed is not None and random_text != "n/a":
        random_text += f" (seed {seed})"
    return (f"raw pixels {esc(raw_text)} · {esc(label)} {esc(plots.pct(chance))} · "
            f"random init {esc(random_text)}")


def section_accuracy(files: PipelineFiles) -> Section:
    """Accuracy against width, with intervals and the baselines as reference lines."""
    title = TITLES["accuracy"]
    if files.accuracy is None:
        return Section("accuracy", title, missing_note("accuracy.json", PRODUCERS["accuracy"]), MISSING)
    if not files.accuracy.ok:
        return Section("accuracy", title, _errors([files.accuracy]), ERROR)
    doc = files.accuracy.doc
    uri = plots.accuracy_vs_width(doc)
    if uri is None:
        return Section("accuracy", title,
                       error_note(f"{files.accuracy.path}: no width has a kNN or linear accuracy"), ERROR)
    n_test = doc.get("num_test")
    intervals = ("error bars: 95 % Wilson interval of each accuracy" if plots.has_intervals(doc)
                 else "no confidence intervals recorded (accuracy.json schema "
                      f"{esc(doc.get('schema_version'))}): small differences may be noise")
    note = (f'<p class="muted">protocols: {esc(_protocol_text(doc))} · test images: '
            f"{esc(n_test if isinstance(n_test, int) else 'n/a')} · data: {esc(_data_text(doc.get('data')))}<br>"
            f"baselines: {_baseline_text(doc)}<br>{intervals}; y axis: the full 0–100 % range.</p>")
    from us3l.report.data_check import data_check_notes

    warnings = "".join(_macro("warning", f"{files.accuracy.path.name}: {text}") for text in data_check_notes(doc))
    return Section("accuracy", title, warnings + img(uri, "accuracy vs width") + note, RENDERED)


def section_latency(files: PipelineFiles) -> Section:
    """p50 latency against width, one line per profile, CI band."""
    title = TITLES["latency"]
    if not files.profiles:
        return Section("latency", title, missing_note("profiles/*.json", PRODUCERS["profiles"]), MISSING)
    uri = plots.latency_vs_width(files.usable_profiles())
    errors = _foreign_note(files) + _errors(files.profiles)
    errors += "".join(_macro("warning", line) for line in files.unchecked_profile_sources())
    if uri is None:
        return Section("latency", title, errors or error_note("no profile has records"), ERROR)
    return Section("latency", title, img(uri, "latency vs width") + errors, RENDERED)


def section_tradeoff(files: PipelineFiles) -> Section:
    """Accuracy against latency per device, with the budget and the chosen width (from selection.json); without a
    drawable selection, accuracy against p50 per profile, and a line saying why."""
    title = TITLES["tradeoff"]
    sel = files.selection
    acc_doc = files.accuracy.doc if files.accuracy is not None and files.accuracy.ok else None
    own: list[Any] = []
    if sel is not None and sel.ok:
        devices = sel.doc.get("devices") or []
        own = [d for d in devices if not answer_of_another_model(files, d)]
        panels = plots.panels_from_selection({**sel.doc, "devices": own}, acc_doc)
        uri = plots.accuracy_vs_latency(panels)
        if uri is not None:
            body = _stale_warnings(files) + _foreign_answers_note(files, devices) + \
                img(uri, "accuracy vs latency per device") + _tradeoff_note(panels)
            return Section("tradeoff", title, body, RENDERED)
    lead, why = _tradeoff_fallback(files)
    all_foreign = sel is not None and sel.ok and bool(sel.doc.get("devices")) and not own
    if all_foreign:
        lead, why = (_foreign_answers_note(files, sel.doc["devices"]),  # type: ignore[union-attr]
                     f"{_NO_OWN_ANSWER}; drawn from accuracy.json and the profiles instead")
    panels = plots.panels_from_profiles(files.usable_profiles(), acc_doc) if acc_doc is not None else []
    uri = plots.accuracy_vs_latency(panels)
    if uri is not None:
        note = f'<p class="muted">{esc(why)}: p50 latency, no budget, no chosen width.</p>'
        return Section("tradeoff", title, lead + _foreign_note(files) + img(uri, "accuracy vs latency per profile")
                       + note + _tradeoff_note(panels), RENDERED)
    if sel is not None and sel.ok:
        text = f"nothing drawn: {_NO_OWN_ANSWER if all_foreign else _NO_CANDIDATES}, and there is no readable " \
               "accuracy.json with profiles of the run's model to draw from instead"
        return Section("tradeoff", title, (lead if all_foreign else "") + _macro("nothing_note", text), MISSING)
    return Section("tradeoff", title, lead, MISSING if sel is None else ERROR)


_NO_CANDIDATES = "selection.json lists no candidate width with an accuracy and a latency"
_NO_OWN_ANSWER = "no answer in selection.json is for the run's model"


def _foreign_answers_note(files: PipelineFiles, devices: Sequence[Any]) -> str:
    """A warning naming the selection's devices whose model is not the run's, left out of the panels."""
    names = [f"{d.get('device')}/{d.get('backend')} ({d.get('model')})" for d in devices
             if answer_of_another_model(files, d)]
    if not names:
        return ""
    return _macro("warning", f"left out: {', '.join(names)}: selected for another model than the run's (see the "
                             "answer above); re-run us3l select with profiles of the run's checkpoint")


def _stale_selection(files: PipelineFiles) -> list[str]:
    """Warnings for a selection made from other versions of the files the folder holds now, or from an accuracy
    file or profiles that are themselves stale (computed from another checkpoint than the run's: a run re-trained
    since, whose answer card showed the old numbers without a word)."""
    sel = files.selection
    if sel is None:
        return []
    out = [f"these numbers come from old files: {sel.path.name} was {why.removeprefix('stale: ')}"
           for why in files.stale_reasons(sel.path) if why.startswith("stale: ")]
    inputs = sel.doc.get("inputs") if sel.ok and isinstance(sel.doc, dict) else None
    used = {Path(str(p.get("path"))).name for p in (inputs or {}).get("profiles") or [] if isinstance(p, dict)}
    sources = [files.accuracy] if files.accuracy is not None else []
    sources += [p for p in files.profiles if p.path.name in used]
    for item in sources:
        for why in files.stale_reasons(item.path):
            if why.startswith("stale: "):
                out.append(f"these numbers come from stale files: {item.path.name} was {why.removeprefix('stale: ')}")
    return out


def _stale_warnings(files: PipelineFiles) -> str:
    return "".join(_macro("warning", t) for t in _stale_selection(files))


def _tradeoff_fallback(files: PipelineFiles) -> tuple[str, str]:
    """(the note leading the section, why the panels come from accuracy.json and the profiles) when the selection
    gives no panel: it is missing, unreadable, or lists no candidate width with an accuracy and a latency."""
    sel = files.selection
    if sel is None:
        return missing_note("selection.json", PRODUCERS["selection"]), "without a selection"
    if not sel.ok:
        return _errors([sel]), "without a readable selection"
    return "", f"{_NO_CANDIDATES}; drawn from accuracy.json and the profiles instead"


def _tradeoff_note(panels: Sequence[plots.TradeoffPanel]) -> str:
    unstable = sum(1 for p in panels for q in p.points if q.stable is False)
    total = sum(len(p.points) for p in panels)
    parts = ["accuracy rises upward, latency runs across; error bars: 95 % interval of the accuracy"
             if any(q.ci for p in panels for q in p.points) else "no accuracy intervals recorded (n/a)"]
    if unstable:
        parts.append(f"⚠ {unstable} of {total} points have an unstable latency (hollow markers): their position "
                     "on the latency axis is uncertain")
    return f'<p class="muted">{esc("; ".join(parts))}.</p>'


def _width_rows(files: PipelineFiles) -> tuple[list[str], list[list[str]], bool]:
    from us3l.deploy.select import lookup_width, width_key

    acc_rows: dict[float, dict[str, Any]] = {}
    if files.accuracy is not None and files.accuracy.ok:
        acc_rows = {width_key(r["width"]): r for r in files.accuracy.doc.get("widths") or []}
    profiles = files.usable_profiles()
    # one row per width across the profiles, keyed by width_key: 25/32 = 0.78125 in one profile is another's 0.7813
    recs = [{width_key(r.width): r for r in p.records} for p in profiles]
    exact: dict[float, float] = {}  # key -> the first profile's own spelling of the width
    for r in (r for p in profiles for r in p.records):
        exact.setdefault(width_key(r.width), r.width)
    # a profiled width's accuracy row as `us3l select` finds it: 25/32 = 0.78125 is the accuracy file's 0.7813
    acc_of = {k: a for k, w in exact.items() if (a := lookup_width(acc_rows, w)) is not None}
    widths = sorted(set(exact) | (set(acc_rows) - set(acc_of.values())))
    has_knn = any(r.get("knn_top1") is not None for r in acc_rows.values())
    has_linear = any(r.get("linear_top1") is not None for r in acc_rows.values())
    headers = ["width"]
    if acc_rows:
        headers += (["kNN top-1 [95 % CI]", "random init kNN [95 % CI]"] if has_knn else [])
        headers += ["linear top-1 [95 % CI]"] if has_linear else []
    headers += ["MACs", "params"]
    for label in plots.profile_labels(profiles):
        headers += [f"{label} p50 ms", "p90 ms"]
    unstable = False
    rows = []
    for w in widths:
        a = acc_rows.get(acc_of.get(w, w), {})
        first = next((m[w] for m in recs if w in m), None)
        row = [f"{exact.get(w, w):g}"]
        if acc_rows and has_knn:
            base, base_ci = plots.random_init(a)
            row += [esc(plots.pct_with_ci(a.get("knn_top1"), a.get("knn_top1_ci"))),
                    esc(plots.pct_with_ci(base, base_ci))]
        if acc_rows and has_linear:
            row += [esc(plots.pct_with_ci(a.get("linear_top1"), a.get("linear_top1_ci")))]
        row += [fmt_count(a.get("macs") if a.get("macs") is not None else getattr(first, "macs", None)),
                fmt_count(a.get("params") if a.get("params") is not None else getattr(first, "params", None))]
        for m in recs:
            r = m.get(w)
            mark = "" if r is None or r.latency.stable else " †"
            unstable = unstable or bool(mark)
            row += [fmt_num(r.latency.p50_ms if r else None) + mark, fmt_num(r.latency.p90_ms if r else None)]
        rows.append(row)
    return headers, rows, unstable


def section_widths(files: PipelineFiles) -> Section:
    """Per width: accuracy with interval, random-init baseline, MACs, params, latency p50/p90 per profile."""
    title = TITLES["widths"]
    if files.accuracy is None and not files.profiles:
        return Section("widths", title, missing_note("accuracy.json and profiles/*.json",
                                                     f"{PRODUCERS['accuracy']} / {PRODUCERS['profiles']}"), MISSING)
    headers, rows, unstable = _width_rows(files)
    if not rows:
        return Section("widths", title, error_note("no readable accuracy or profile file"), ERROR)
    body = _foreign_note(files) + table(headers, rows, numeric=range(len(headers)))
    if files.accuracy is not None and files.accuracy.ok:
        body += f'<p class="muted">baselines: {_baseline_text(files.accuracy.doc)}; n/a: not recorded.</p>'
    if unstable:
        body += ('<p class="warn">† latency not stable: the median\'s 95 % CI did not reach the target or drift '
                 "was seen; re-profile before relying on these widths.</p>")
    return Section("widths", title, body, RENDERED)


def _acc_text(value: Any, metric: str | None, ci: Any = None, with_ci: bool = False) -> str:
    """An accuracy as the page writes it: ``83.4 % [79.1–87.0 %]`` (fractions), millions of MACs for the proxy."""
    if metric == "macs":
        return fmt_count(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return plots.pct_with_ci(value, ci) if with_ci else plots.pct(value)
    return fmt_num(value, ".4g")


def _candidate_text(c: dict[str, Any] | None, metric: str | None) -> str:
    if not c:
        return "—"
    return f"w={fmt_width(c.get('width'))} ({_acc_text(c.get('accuracy'), metric)}, {fmt_num(c.get('latency_ms'))} ms)"


def _decision(d: dict[str, Any], metric: str | None) -> str:
    """Why the chosen width won, in words (already HTML-escaped)."""
    if not d.get("chosen"):
        return "no width fits the budget"
    decided = d.get("decided_by")
    pairs = plots.tied_pairs(d)  # pooled precisions: "0.5 fp32, 0.5 int8" rather than "0.5, 0.5"
    tied = ", ".join(f"{fmt_width(w)} {p}" for w, p in pairs) if pairs is not None else ", ".join(
        fmt_width(w) for w in plots.tied_widths(d))
    if metric == "macs":
        return "largest MACs that fit (no accuracy file: MACs stand in for accuracy)"
    if decided is None:
        return "highest accuracy among the widths that fit (decided_by n/a: the selection predates it)"
    if decided == "accuracy":
        return "highest accuracy among the widths that fit" + (f"; tied widths: {esc(tied)}" if tied else "")
    if str(decided).startswith("tie"):
        from us3l.deploy.tie_test import MIXED, PAIRED

        how = {PAIRED: "by a paired test on the per-image hits (McNemar, Holm 5 %)",
               MIXED: "by a paired test on the per-image hits where both widths have them, else within the 95 % "
                      "intervals"}.get(str(d.get("tie_test")), "within the 95 % intervals")
        text = f"accuracy tied {how}"
        text += f" with w={esc(tied)}" if tied else ""
        return text + "; the faster width was taken"
    return f"decided by {esc(decided)}" + (f"; tied widths: {esc(tied)}" if tied else "")


def _warning_text(item: Any) -> str:
    """A warning of the selection as one line, its percentages in the page's format (``1.9%`` -> ``1.9 %``)."""
    if isinstance(item, dict):
        item = item.get("message") or item.get("text") or json.dumps(item, sort_keys=True, default=str)
    return plots.pct_text(item)


def device_warnings(d: dict[str, Any], budget_ms: Any, metric: str | None,
                    rows: dict[float, dict[str, Any]]) -> list[str]:
    """The selection's own warnings for one device, plus what the page can tell from the numbers.

    Derived here: an unstable latency of the chosen width or the runner-up (only for selections that carry no
    ``warnings`` list), a latency slack under 5 % of the budget, and, for selections without ``decided_by``,
    a runner-up whose accuracy lies inside the chosen width's 95 % interval.
    """
    out = [_warning_text(w) for w in d.get("warnings") or []]
    chosen, runner = d.get("chosen") or {}, d.get("runner_up") or {}
    if "warnings" not in d:
        for label, c in (("chosen width", chosen), ("runner-up", runner)):
            if c and plots.latency_stable(c) is False:
                out.append(f"latency of the {label} w={fmt_width(c.get('width'))} was not stable "
                           "(its CI did not reach the target, or drift was seen): re-profile before trusting it")
    slack = (d.get("slack") or {}).get("latency_ms")
    if isinstance(slack, int | float) and isinstance(budget_ms, int | float) and budget_ms > 0 \
            and 0 <= slack < 0.05 * budget_ms:
        out.append(f"slack {slack:.3f} ms is under 5 % of the {budget_ms:g} ms budget: the choice sits on the line")
    if "decided_by" not in d and chosen and runner and metric != "macs":
        ci = plots.candidate_ci(chosen, metric, rows)
        acc = runner.get("accuracy")
        if ci is not None and isinstance(acc, int | float) and ci[0] <= acc <= ci[1]:
            out.append(f"runner-up w={fmt_width(runner.get('width'))} ({plots.pct(acc)}) is inside the chosen "
                       f"width's 95 % interval {plots.pct_ci(ci)}: the accuracy difference is noise")
    return out


def _budget_text(budget: dict[str, Any]) -> str:
    units = {"latency_ms": ("latency", " ms"), "memory_mb": ("memory", " MB")}
    parts = []
    for k, v in budget.items():
        name, unit = units.get(k, (k, ""))
        parts.append(f"{name} ≤ {v:g}{unit}" if isinstance(v, int | float) else f"{name} ≤ {v}")
    return ", ".join(parts) or "—"


def _slack_text(slack: Any) -> str:
    if not isinstance(slack, dict) or not slack:
        return "—"
    units = {"latency_ms": " ms", "memory_mb": " MB"}
    return ", ".join(f"{fmt_num(v, _slack_spec(v))}{units.get(k, '')}" if k in units else f"{k} {fmt_num(v, '.4g')}"
                     for k, v in slack.items())


def _slack_spec(value: Any) -> str:
    """Three decimals, or four significant digits from 10**6 on (a budget of 1e308 ms left a 309-digit slack)."""
    return ".3f" if not isinstance(value, int | float) or abs(value) < 1e6 else ".4g"


def _accuracy_rows(files: PipelineFiles) -> dict[float, dict[str, Any]]:
    if files.accuracy is None or not files.accuracy.ok:
        return {}
    return plots.rows_by_width(files.accuracy.doc)  # type: ignore[return-value]


def _answer_card(d: dict[str, Any], doc: dict[str, Any], rows: dict[float, dict[str, Any]],
                 stale: Sequence[str] = ()) -> str:
    """One device's answer; ``stale`` (the selection's staleness, or that the answer is of another model than
    the run's) leads its warnings."""
    metric = (doc.get("accuracy") or {}).get("metric")
    rule = plots.pct_text((doc.get("latency_rule") or {}).get("describe") or "latency")
    budget = doc.get("budget") or {}
    c = d.get("chosen") or {}
    where = f"{d.get('device')} · {d.get('backend')}/{d.get('precision')} · {d.get('model')}"
    warnings = [*stale, *device_warnings(d, budget.get("latency_ms"), metric, rows)]
    if not c:
        minimum = (d.get("minimum") or {}).get("latency_ms")
        return _macro("answer_none", where, _budget_text(budget), fmt_num(minimum), rule, warnings)
    ci = plots.candidate_ci(c, metric, rows)
    stable = plots.latency_stable(c)
    return _macro("answer", {
        "where": where,
        "width": fmt_width(c.get("width")),
        "metric_name": "MACs (accuracy proxy)" if metric == "macs" else plots.metric_label(metric),
        "accuracy": _acc_text(c.get("accuracy"), metric, ci, with_ci=True),
        "latency": fmt_num(c.get("latency_ms")),
        "rule": rule,
        "budget": _budget_text(budget),
        "slack": _slack_text(d.get("slack")),
        "stable_text": "" if stable is None else (" · latency stable" if stable else " · latency NOT stable"),
        "why": Markup(_decision(d, metric)),  # built (and escaped) by _decision
        "runner_up": _candidate_text(d.get("runner_up"), metric),
        "warnings": warnings,
    })


def section_selection(files: PipelineFiles) -> Section:
    """The answer: per device the chosen width, accuracy ± interval, latency, budget, slack, why, warnings."""
    title = TITLES["selection"]
    sel = files.selection
    if sel is None:
        return Section("selection", title, missing_note("selection.json", PRODUCERS["selection"]), MISSING)
    if not sel.ok:
        return Section("selection", title, _errors([sel]), ERROR)
    doc = sel.doc
    rule = doc.get("latency_rule") or {}
    acc = doc.get("accuracy") or {}
    metric = acc.get("metric")
    run_rows = _accuracy_rows(files)
    stale = _stale_selection(files)

    def rows_of(d: dict[str, Any]) -> dict[float, dict[str, Any]]:
        """accuracy.json's rows (for the intervals) only for an answer of the run's model."""
        return {} if answer_of_another_model(files, d) else run_rows

    def warnings_of(d: dict[str, Any]) -> list[str]:
        other = answer_of_another_model(files, d)
        return [f"{other}: it is not an answer for this run; re-run us3l select with profiles of the run's "
                "checkpoint", *stale] if other else list(stale)

    cards = "".join(_answer_card(d, doc, rows_of(d), warnings_of(d)) for d in doc.get("devices") or [])
    per_device = {_warning_text(w) for d in doc.get("devices") or [] for w in d.get("warnings") or []}
    cards += "".join(_macro("warning", t) for t in dict.fromkeys(
        _warning_text(w) for w in doc.get("warnings") or []) if t not in per_device)
    head = kv_table([
        ("budget", _budget_text(doc.get("budget") or {})),
        ("latency statistic", plots.pct_text(rule.get("describe") or rule.get("statistic"))),
        ("accuracy", f"{acc.get('source')} ({metric})" if acc else None),
        ("accuracy interval", "95 % interval from accuracy.json" if any(
            plots.candidate_ci(d.get("chosen") or {}, metric, rows_of(d)) for d in doc.get("devices") or []
            if d.get("chosen")) else "n/a (no intervals recorded)"),
        ("tie rule", plots.pct_text(doc["tie_rule"]) if isinstance(doc.get("tie_rule"), str) else None),
        ("tie-break", doc.get("tie_break")),
        ("feasible", "yes" if doc.get("feasible") else "no"),
    ])
    rows = []
    for d in doc.get("devices") or []:
        c = d.get("chosen") or {}
        lat = c.get("latency") or {}
        minimum = (d.get("minimum") or {}).get("latency_ms")
        ci = plots.candidate_ci(c, metric, rows_of(d)) if c else None
        rows.append([
            esc(d.get("device")), esc(d.get("model")), esc(f"{d.get('backend')}/{d.get('precision')}"),
            esc(fmt_width(c["width"]) if c else "none fits"),
            esc(_acc_text(c.get("accuracy"), metric, ci, with_ci=True) if c else "—"),
            fmt_num(c.get("latency_ms")), fmt_num(lat.get("p50_ms")), fmt_num(lat.get("p90_ms")),
            fmt_yes(plots.latency_stable(c)) if c else "—", esc(_slack_text(d.get("slack"))),
            esc(d.get("decided_by") or "n/a"), esc(_candidate_text(d.get("runner_up"), metric)), fmt_num(minimum),
            esc("; ".join(str(n) for n in d.get("notes") or []) or "—"),
        ])
    headers = ["device", "model", "backend", "chosen width", "accuracy [95 % CI]", "latency ms (compared)",
               "p50 ms", "p90 ms", "latency stable", "slack", "decided by", "runner-up", "min latency ms",
               "notes"]
    body = cards + head + table(headers, rows, numeric=(4, 5, 6, 7, 12)) + _schedule_tables(doc, metric)
    return Section("selection", title, body, RENDERED)


def _schedule_tables(doc: dict[str, Any], metric: str | None) -> str:
    """``us3l select --latency-schedule``: per device answer, the width (and its index in a switchable artifact)
    under each latency budget; empty without a schedule."""
    out = []
    for d in doc.get("schedule") or []:
        if not isinstance(d, dict):
            continue
        rows = []
        for st in d.get("steps") or []:
            ci = st.get("accuracy_ci")
            rows.append([
                fmt_num(st.get("latency_ms"), "g"), esc("none fits" if st.get("width") is None
                                                        else fmt_width(st.get("width"))),
                esc("—" if st.get("width_index") is None else str(st.get("width_index"))),
                esc(_acc_text(st.get("accuracy"), metric, ci, with_ci=ci is not None) if st.get("width") is not None
                    else "—"),
                fmt_num(st.get("compared_latency_ms")), esc(st.get("decided_by") or "—"),
            ])
        sw = d.get("switchable")
        where = f"switchable artifact <code>{esc(sw.get('artifact'))}</code>" if isinstance(sw, dict) else \
            "static artifacts"
        out.append(f"<h3>Width schedule: {esc(d.get('device'))} ({esc(d.get('backend'))}/{esc(d.get('precision'))};"
                   f" {where})</h3>" + table(["latency ≤ ms", "width", "width_index", "accuracy [95 % CI]",
                                               "latency ms (compared)", "decided by"], rows, numeric=(0, 4)))
    return "".join(out)


def _packages(pkgs: Any) -> str | None:
    if not isinstance(pkgs, dict) or not pkgs:
        return None
    return ", ".join(f"{k} {v}" for k, v in pkgs.items())


def _fingerprint_pairs(p: Any) -> list[tuple[str, Any]]:
    fp = p.fingerprint if isinstance(p.fingerprint, dict) else {}
    cpu = fp.get("cpu") if isinstance(fp.get("cpu"), dict) else {}
    cores = ", ".join(f"{k.replace('_cores', '')} {cpu[k]}" for k in ("logical_cores", "physical_cores",
                                                                         "usable_cores") if k in cpu)
    freq = " / ".join(f"{cpu[k]} MHz" for k in ("cur_freq_mhz", "max_freq_mhz") if k in cpu)
    isa = cpu.get("isa")  # int8/bf16-relevant instruction sets (us3l.profiler.fingerprint.ISA_FEATURES)
    stable = sum(1 for r in p.records if r.latency.stable)
    pairs: list[tuple[str, Any]] = [
        ("model", p.model), ("runtime version", p.runtime_version), ("reach", p.reach),
        ("threads", p.threads if p.threads is not None else "default"),
        ("input shape", "×".join(str(v) for v in p.input_shape)),
        ("widths (stable)", f"{len(p.records)} ({stable} stable)"),
        ("CPU", cpu.get("model")), ("CPU features", " ".join(map(str, isa)) if isinstance(isa, list) and isa else None),
        ("cores", cores or None), ("governor", cpu.get("governor")),
        ("frequency (cur / max)", freq or None), ("versions", _packages(fp.get("packages"))),
        ("python", fp.get("python")), ("OS", fp.get("os")), ("machine", fp.get("machine")),
        ("host", fp.get("hostname")),
    ]
    for key in ("jetson", "nvidia_gpus"):
        if fp.get(key):
            pairs.append((key, json.dumps(fp[key], sort_keys=True, default=str)))
    if p.policy:
        pairs.append(("measurement policy", json.dumps(p.policy, sort_keys=True, default=str)))
    return pairs


def section_environment(files: PipelineFiles) -> Section:
    """The environment fingerprint of every profile: CPU, threads, runtime and package versions."""
    title = TITLES["environment"]
    if not files.profiles:
        return Section("environment", title, missing_note("profiles/*.json", PRODUCERS["profiles"]), MISSING)
    items = [it for it in files.profiles if it.ok and it.path not in files.foreign]
    labels = plots.profile_labels([it.doc for it in items])
    parts = [f"<h3>{esc(label)} <span class=\"muted\">{esc(it.path.name)}</span>"
             f"{_unchecked_mark(it.doc.extra, SOURCE_UNCHECKED_KEY, 'source unchecked')}</h3>"
             f"{kv_table(_fingerprint_pairs(it.doc))}" for it, label in zip(items, labels, strict=True)]
    body = _foreign_note(files) + "".join(parts) + _errors(files.profiles)
    return Section("environment", title, body, RENDERED if parts else ERROR)


def _switchable_facts(m: dict[str, Any]) -> tuple[str, str, Any, Any, str]:
    """(width cell, BN cell, worst max abs error, worst min cosine, tolerance) of a switchable manifest: over
    every width of its grid and every runtime mode it was verified in."""
    model = m.get("model") or {}
    checks = [v for p in model.get("per_width") or [] for v in (p.get("verification") or {}).values()]
    errs = [c.get("max_abs_error") for c in checks if isinstance(c.get("max_abs_error"), int | float)]
    coss = [c.get("min_cosine") for c in checks if isinstance(c.get("min_cosine"), int | float)]
    widths = ", ".join(fmt_width(w) for w in model.get("widths") or [])
    bns = sorted({str(p.get("bn_stats")) for p in model.get("per_width") or []})
    return (f"switchable: {widths}", ", ".join(bns), max(errs) if errs else None, min(coss) if coss else None,
            str((m.get("verification") or {}).get("rule") or "—"))


def _manifest_row(item: Loaded[dict[str, Any]], root: Any) -> list[str]:
    m = item.doc or {}
    if m.get("kind") == "switchable_manifest":
        width, bn, err, cos, rule = _switchable_facts(m)
        m = {**m, "model": {"width": None, "bn_stats": bn},
             "verification": {"max_abs_error": err, "min_cosine": cos, "tolerance": {"describe": rule},
                              "passed": (m.get("verification") or {}).get("passed")}}
    else:
        width = None
    model = m.get("model") or {}
    be = m.get("backend") or {}
    ver = m.get("verification") or {}
    tol = ver.get("tolerance") or {}
    art = m.get("artifact") or {}
    where = shown_path(root, item.path.parent)
    return [
        esc((m.get("target") or {}).get("device")),
        f"<code>{esc(where)}</code>" + _unchecked_mark(m, SOURCE_UNCHECKED_KEY, "source unchecked"),
        esc(f"{be.get('name')} ({be.get('runtime')} {be.get('runtime_version')})"), esc(be.get("precision")),
        esc(width or fmt_width(model.get("width"))) + _unchecked_mark(m, WIDTH_UNCHECKED_KEY, "unchecked"),
        esc(model.get("bn_stats")),
        fmt_num(ver.get("max_abs_error"), ".2e"), fmt_num(ver.get("min_cosine"), ".6f"),
        esc(tol.get("describe") or (f"≤ {tol.get('max_abs')}, cos ≥ {tol.get('min_cosine')}" if tol else "—")),
        fmt_yes(ver.get("passed")),
        f"<code>{esc(art.get('file'))}</code>", f'<span class="mono">{esc(art.get("sha256"))}</span>',
        fmt_yes(m.get("valid")),
    ]


def _unchecked_mark(m: dict[str, Any], key: str, label: str) -> str:
    """`` (label)`` after a claim the report could not check, with why as its tooltip: a width not checked against
    the artifact's graph (``WIDTH_UNCHECKED_KEY``, "unchecked"), a source checkpoint not checked against the run's
    weights (``SOURCE_UNCHECKED_KEY``, "source unchecked": a manifest's, or a profile's ``extra``); ``""`` for a
    checked one."""
    why = m.get(key)
    return f' <span class="bad" title="{esc(why)}">({label})</span>' if why else ""


def section_artifacts(files: PipelineFiles) -> Section:
    """Each exported artifact's manifest: backend, precision, width, verification errors, sha256, valid."""
    title = TITLES["artifacts"]
    if not files.manifests:
        return Section("artifacts", title, missing_note("artifacts/<device>/<name>/manifest.json",
                                                        PRODUCERS["artifacts"]), MISSING)
    good = [m for m in files.manifests if m.ok]
    headers = ["device", "artifact", "backend", "precision", "width", "BN stats", "max abs error", "min cosine",
               "tolerance", "verified", "file", "sha256", "valid"]
    body = (table(headers, [_manifest_row(m, files.root) for m in good], numeric=(6, 7)) if good else "")
    body += "".join(_macro("warning", line) for line in files.unchecked_widths() + files.unchecked_artifact_sources())
    body += _errors(files.manifests)
    return Section("artifacts", title, body, RENDERED if good else ERROR)


def _flatten(doc: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    if isinstance(doc, dict) and depth < 3:
        out: list[tuple[str, Any]] = []
        for k, v in doc.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
        return out
    if isinstance(doc, list | dict):
        return [(prefix, json.dumps(doc, default=str)[:300])]
    return [(prefix, doc)]


def section_summary(files: PipelineFiles) -> Section:
    """``summary.json`` (written by quickstart), shown as flattened key/value pairs."""
    title = TITLES["summary"]
    if files.summary is None:
        return Section("summary", title, missing_note("summary.json", PRODUCERS["summary"]), MISSING)
    if not files.summary.ok:
        return Section("summary", title, _errors([files.summary]), ERROR)
    skip = {"kind", "schema_version", "tool", "tool_version", "environment"}
    doc = {k: v for k, v in files.summary.doc.items() if k not in skip}
    lists = {k: v for k, v in doc.items() if _is_records(v)}
    body = kv_table(_flatten({k: v for k, v in doc.items() if k not in lists})[:200])
    for key, rows in lists.items():
        cols = list(dict.fromkeys(c for r in rows for c in r))
        body += f"<h3>{esc(key)}</h3>" + table(cols, [[esc(_cell(r.get(c))) for c in cols] for r in rows[:200]])
    return Section("summary", title, body, RENDERED)


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)[:300]
    return "—" if value is None else str(value)


#: Page order: the answer first, then the evidence behind it, then provenance.
SECTIONS: tuple[Callable[[PipelineFiles], Section], ...] = (
    section_selection, section_tradeoff, section_accuracy, section_latency, section_widths, section_run,
    section_environment, section_artifacts, section_summary,
)


def _safe(builder: Callable[[PipelineFiles], Section], files: PipelineFiles) -> Section:
    """Run one section builder; an unexpected document shape becomes one error line, not a crash."""
    try:
        return builder(files)
    except Exception as exc:  # noqa: BLE001 - documents are untrusted input; the rest of the page must render
        key = builder.__name__.removeprefix("section_")
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())
        note = error_note(f"could not render this section ({msg})")
        return Section(key, TITLES.get(key, key.capitalize()), note, ERROR, msg)


def build_sections(files: PipelineFiles) -> list[Section]:
    """Every section of the report, in page order."""
    return [_safe(b, files) for b in SECTIONS]


def render_html(files: PipelineFiles, sections: Sequence[Section]) -> str:
    """The complete page (template ``templates/report.html.j2``)."""
    model = _model_name(files)
    title = f"us3l report · {model}" if model else "us3l report"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    shown = [{"key": s.key, "title": s.title, "body": Markup(s.body)} for s in sections]  # bodies: built as HTML
    inputs = [(name, "found" if found else f"missing (written by {PRODUCERS[name]})")
              for name, found in files.present().items()]
    return str(_template().page(title, str(files.root), now, __version__, shown, inputs, files.errors(),
                                Markup(_CSS)))
