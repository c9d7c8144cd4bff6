"""``us3l select``: the most accurate width per device under latency / MACs / params / memory budgets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from us3l.cli_app import app, emit_json
from us3l.cli_output import Col, deprecated, note, print_table, set_quiet, warn

SELECTION_FILE = "selection.json"


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def _slack(v: float | None) -> str:
    """A slack in ms: three decimals, or four significant digits from 10**6 on (a huge budget's slack stays one
    narrow cell)."""
    return _fmt(v, ".3f" if v is None or abs(v) < 1e6 else ".4g")


def _acc_cell(acc: float | None, ci: Any, macs: bool = False) -> str:
    """An accuracy cell: ``83.4 % ±3.0`` with its 95 % interval, ``83.4 %`` without one (schema 1), the bare
    count for the MACs proxy."""
    if acc is None:
        return "—"
    if macs:
        return f"{acc:.4g}"
    if ci is None:
        return f"{100 * acc:.1f} %"
    return f"{100 * acc:.1f} % ±{100 * max(acc - ci[0], ci[1] - acc):.1f}"


@app.command("select")
def select_cmd(
    profile: list[Path] = typer.Option([], "--profile", help="Profile file(s) (repeat for many devices)."),
    device: list[str] = typer.Option(
        [], "--device", "-d", help="Device name(s): finds PROFILES_DIR/*-<device>-*.json."
    ),
    profiles_dir: Path = typer.Option(Path("profiles"), "--profiles-dir", help="Where --device looks."),
    accuracy: Path | None = typer.Option(None, "--accuracy", help="accuracy.json (else MACs are the proxy)."),
    metric: str = typer.Option("auto", "--metric", help="auto (linear, else knn) | linear | knn"),
    latency_ms: float | None = typer.Option(None, "--latency-ms", help="Latency budget in ms."),
    latency_schedule: str | None = typer.Option(
        None, "--latency-schedule",
        help="Comma-separated latency budgets in ms (e.g. 1,2,5): a width per budget for a device whose budget "
        "changes at run time (with a switchable-artifact profile, its width_index too); the main answer is the "
        "largest budget's.",
    ),
    macs: float | None = typer.Option(None, "--macs", help="MACs budget (multiply-adds per image)."),
    params: float | None = typer.Option(None, "--params", help="Parameter-count budget."),
    memory_mb: float | None = typer.Option(None, "--memory-mb", help="Weights + activations budget, 10^6 B."),
    statistic: str = typer.Option("p90", "--statistic", help="p50 | p90 | p99 | mean"),
    point: bool = typer.Option(
        False, "--point", help="Use the statistic itself, not its upper 95% CI bound (the upper end of its "
        "two-sided 95% interval: a one-sided 97.5% bound, for every statistic)."
    ),
    margin: float = typer.Option(0.0, "--margin", help="Fraction added to the latency, e.g. 0.1."),
    strict_accuracy: bool = typer.Option(
        False,
        "--strict-accuracy",
        help="Highest accuracy wins even inside the noise (default: a width is tied with the most accurate one "
        "unless an exact McNemar test on the same test images, Holm-adjusted at 5 %, shows it less accurate; the "
        "fastest tied width wins).",
    ),
    out: Path = typer.Option(
        Path("."), "--out", help=f"Output folder: writes OUT/{SELECTION_FILE} (a path ending in .json: that file)."
    ),
    plot: bool = typer.Option(False, "--plot", help="Also write OUT/selection.png (accuracy vs latency)."),
    plot_file: Path | None = typer.Option(None, "--plot-file", hidden=True),  # old `--plot FILE` (cli.main)
    wide: bool = typer.Option(False, "--wide", help="Show every table column, however wide."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No notes on stderr (warnings still print)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Pick, per device, the most accurate width that fits every budget (exit 3 when none fits).

    A width is tied with the most accurate one unless an exact McNemar test shows it less accurate (Holm, 5 %).
    The fastest tied width wins, unless --strict-accuracy.
    Unstable latencies of the chosen or tied widths are warned about.
    """
    from us3l.deploy.select import Budget, LatencyRule, find_profiles, load_accuracy, select, write_selection
    from us3l.deploy.select import latency_schedule as latency_schedule_fn

    set_quiet(quiet)
    from us3l.errors import US3LError
    from us3l.io import check_png_replaceable, check_replaceable, output_folder

    path = out
    if out.suffix.lower() == ".json" and not out.is_dir():  # as report takes FILE.HTML: sel.JSON is the file
        deprecated(f"--out {out}", f"--out {out.parent} (the folder; the file is always {SELECTION_FILE})", "select")
    else:
        path = output_folder(out) / SELECTION_FILE
    check_replaceable(path, "us3l selection file", lambda head: b'"kind": "selection"' in head[:200])
    png: Path | None = path.with_suffix(".png") if plot else None
    if plot_file is not None:
        deprecated(f"--plot {plot_file}", "--plot (a switch: writes the PNG next to the selection)", "select")
        png = plot_file
        if png.resolve() == path.resolve():  # not there yet, the file checks below let it through: the PNG was
            # written over the selection just written, and the command said "wrote" both
            raise US3LError(f"--plot {plot_file} is the selection file this command writes (--out): give the plot "
                            "another name, or use --plot alone (it writes the PNG next to the selection)")
    if png is not None:
        from us3l.errors import require_package

        require_package("matplotlib", "plot", "--plot")
        # a PNG of the user's is never replaced (an old us3l plot: beside the selection it was drawn from)
        check_png_replaceable(png, beside_ours=png == path.with_suffix(".png") and path.is_file())
    budget = Budget(latency_ms=latency_ms, macs=macs, params=params, memory_mb=memory_mb)
    rule = LatencyRule(statistic=statistic.strip().lower(), conservative=not point, margin=margin)  # P90 as p90
    from us3l.deploy.select import METRICS

    metric = metric.strip().lower()  # KNN as knn, as --statistic P90 is p90
    if metric not in METRICS:  # checked whether or not an accuracy file is given
        raise US3LError(f"unknown accuracy metric '{metric}' (choose {', '.join(METRICS)})")
    if metric != "auto" and accuracy is None:
        raise US3LError(f"--metric {metric} needs --accuracy (without it MACs stand in for accuracy)")
    files = list(profile)
    if device:  # a folder shared by several models: with --accuracy, the profiles of its model
        acc_model = load_accuracy(accuracy).get("model") if accuracy is not None else None
        files += find_profiles(device, profiles_dir, model=acc_model if isinstance(acc_model, str) else None,
                               left_out=lambda line: note(f"note: {line}", markup=False))
    seen: dict[Path, Path] = {}
    for f in files:  # one profile twice would give its device two answers and export it twice
        key = f.resolve()
        if key in seen:
            raise US3LError(f"profile {f} is given twice (--profile and --device find the same files too)")
        seen[key] = f
    if latency_schedule is not None:
        from us3l.validate import width_list

        steps = width_list(latency_schedule, "--latency-schedule", unique=False)  # repeats: latency_schedule
        result = latency_schedule_fn(files, steps, budget, accuracy, rule, metric, strict_accuracy=strict_accuracy)
    else:
        result = select(files, budget, accuracy, rule, metric, strict_accuracy=strict_accuracy)
    write_selection(path, result)

    for warning in result.warnings:  # stderr, and the selection's "warnings" list
        warn(warning, markup=False)
    for d in result.devices:  # unstable latencies, machines: stderr, and each device's "warnings" list
        for warning in d.warnings:  # printed as written: a host name from a profile is no markup
            warn(warning, markup=False)
    if png is not None:
        from us3l.deploy.selection_plot import plot_selection

        plot_selection(result, png)
    if json_out:
        emit_json(result.to_document(path.parent))  # the document written, input paths as in the file
    else:
        _print_selection(result, rule, budget, wide)
        if result.schedule is not None:
            _print_schedule(result, wide)
        if result.metric == "macs":
            note("[yellow]note:[/yellow] no --accuracy file: MACs stand in for accuracy "
                 "(the widest width that fits wins)")
        for d in result.devices:  # as written: a device name or width is no markup
            for n in d.notes:
                note(f"note: {d.device}: {n}", markup=False)
        note(f"wrote {path}" + (f" and {png}" if png else ""), markup=False)
    for gap in result.schedule_gaps:  # the rows say "none fits": an answer that fits other steps is no error
        note(f"note: infeasible schedule steps: {gap}", markup=False)
    result.raise_if_infeasible()  # an answer that fits no step (its largest budget): exit 3, as for one budget


def _print_selection(result: Any, rule: Any, budget: Any, wide: bool) -> None:
    """The choice per device on stdout: device, width, accuracy and compared latency are never dropped."""
    acc_head = "MACs (proxy)" if result.metric == "macs" else result.metric
    shown = dict(budget.active())
    if result.schedule is not None:  # the main rows answer the schedule's largest latency budget
        shown = {"latency_ms": max(st["latency_ms"] for sch in result.schedule for st in sch["steps"]), **shown}
    title = f"us3l select · latency = {rule.describe()} · budget " + ", ".join(
        f"{k} ≤ {v:g}" for k, v in shown.items()
    )
    cols = [
        Col("device", key=True), Col("model", rank=3), Col("backend", rank=2), Col("width", key=True, justify="right"),
        Col(acc_head, key=True, justify="right"), Col("latency ms", key=True, justify="right"),
        Col("p50", justify="right", rank=4), Col("p90", justify="right", rank=4), Col("p99", justify="right", rank=5),
        Col("slack ms", justify="right", rank=1), Col("decided by", rank=1, fold=True),
        Col("runner-up", rank=3, fold=True),
    ]
    rows = []
    for d in result.devices:
        c = d.chosen
        if c is None:
            rows.append([d.device, d.model, f"{d.backend}/{d.precision}", "[red]none[/red]", "—",
                         f"min {d.minimum['latency_ms']:.3f}", "—", "—", "—", "—", "—", "—"])
            continue
        ru = d.runner_up
        macs = result.metric == "macs"
        acc = _acc_cell(c.accuracy, c.accuracy_ci, macs)
        decided = _decided_text(d.decided_by, macs)
        if d.decided_by == "tie->latency":
            tied = [f"{w:g} {p}" for w, p in d.tied_pairs] if d.tied_pairs is not None else [
                f"{w:g}" for w in d.tied_widths]  # pooled precisions: each pair, "0.5 fp32, 0.5 int8"
            decided += " (tied: " + ", ".join(tied) + ")"
        rows.append([
            d.device, d.model, f"{d.backend}/{d.precision}", f"{c.width:g}", acc, f"{c.latency_ms:.3f}",
            _fmt(c.latency.get("p50_ms")), _fmt(c.latency.get("p90_ms")), _fmt(c.latency.get("p99_ms")),
            _slack(d.slack.get("latency_ms")), decided,
            f"w={ru.width:g} ({_acc_cell(ru.accuracy, None, macs)}, {ru.latency_ms:.3f} ms)" if ru else "—",
        ])
    reasons = [f"{d.device} ({d.backend}): {d.reason}" for d in result.devices if d.reason]
    print_table(title, cols, rows, wide=wide, caption="why: " + "; ".join(reasons) if reasons else None)


def _decided_text(decided_by: str | None, macs: bool) -> str:
    """The "decided by" cell: without an accuracy file the ranking is by MACs, which "accuracy" would misname."""
    if decided_by is None:
        return "—"
    return "MACs (proxy)" if macs and decided_by == "accuracy" else decided_by


def _print_schedule(result: Any, wide: bool) -> None:
    """The width schedule on stdout: one table per device answer, a row per latency budget."""
    for d in result.schedule:
        rows = []
        for st in d["steps"]:
            text = _acc_cell(st["accuracy"], st["accuracy_ci"], result.metric == "macs")
            rows.append([
                f"{st['latency_ms']:g}", "none fits" if st["width"] is None else f"{st['width']:g}",
                "—" if st["width_index"] is None else str(st["width_index"]), text,
                _fmt(st["compared_latency_ms"]), _decided_text(st["decided_by"], result.metric == "macs"),
            ])
        acc_head = "MACs (proxy)" if result.metric == "macs" else str(result.metric)
        cols = [Col("latency ≤ ms", key=True, justify="right"), Col("width", key=True, justify="right"),
                Col("width_index", key=True, justify="right"), Col(acc_head, justify="right", rank=1),
                Col("compared ms", justify="right", rank=1), Col("decided by", rank=2)]
        where = "switchable artifact" if d["switchable"] else "static artifacts"
        print_table(f"width schedule: {d['device']} ({d['backend']}, {d['precision']}; {where})", cols, rows,
                    wide=wide)
