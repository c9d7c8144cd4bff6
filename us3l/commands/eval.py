"""``us3l calibrate`` and ``us3l eval``: per-width BN recalibration and accuracy of a trained checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from us3l.cli_app import app, emit_json
from us3l.cli_output import (
    Col,
    Progress,
    note,
    note_switches,
    print_table,
    renamed_option,
    result,
    set_quiet,
    set_threads,
)
from us3l.errors import US3LError, require_package
from us3l.validate import MAX_THREADS, number
from us3l.validate import batch_size as check_batch_size
from us3l.validate import points as check_points


def _momentum(value: float | None) -> float | None:
    from us3l.eval.calibrate import check_momentum

    return check_momentum(value)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _macs(v: Any) -> str:
    return "-" if v is None else f"{v / 1e6:.1f}M"


def _lock(ctx: typer.Context, folder: Path, what: str, create: bool = False) -> None:
    """Hold an exclusive lock on ``folder`` until the command ends (another us3l process writing it: fail).

    A missing folder is locked (and created) only with ``create``: a missing run folder is reported by
    ``open_checkpoint``, not created here."""
    from us3l.locking import acquire, release

    if create or folder.is_dir():
        key = acquire(folder, what)
        ctx.call_on_close(lambda: release(key))


@app.command("calibrate")
def calibrate_cmd(
    ctx: typer.Context,
    ckpt: Path = typer.Option(..., "--ckpt", help="Run folder (or its checkpoint.safetensors)."),
    data: str | None = typer.Option(
        None, "--data", help="Calibration data spec; default: the checkpoint's data if it is builtin or digits."
    ),
    batches: int = typer.Option(20, "--batches", help="Calibration batches per width (same for all)."),
    batch_size: int = typer.Option(128, "--batch-size", help="Images per calibration batch."),
    widths: str | None = typer.Option(None, "--widths", help="Comma-separated widths (default: the grid)."),
    points: int | None = typer.Option(
        None, "--points", help="Calibrate N evenly spread grid widths (default: every distinct width)."
    ),
    grid: int | None = typer.Option(None, "--grid", hidden=True),  # deprecated spelling of --points
    bn_momentum: float | None = typer.Option(
        None, "--bn-momentum", help="EMA momentum (reference: 0.1); default: cumulative average (US-Nets)."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, max=MAX_THREADS, help="CPU threads (default: PyTorch's)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display or notes."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Reset and re-estimate BN statistics at every width; store them in RUN/bn_stats.safetensors."""
    import time

    from us3l.checkpoint import run_dir_of, weights_path
    from us3l.data.datasets import parse_data_spec
    from us3l.eval.calibrate import BN_STATS_FILE, CalibrationSettings, read_bn_stats_settings
    from us3l.eval.runner import (
        calibrate_checkpoint,
        open_checkpoint,
        parse_widths,
        resolve_data_spec,
        statistics_of_other_data,
        trained_widths,
        typed_bn_stats_settings,
    )
    from us3l.slim import calibrated_widths, canonical_width, has_batch_norm

    set_quiet(quiet)
    points = renamed_option(points, grid, "--grid", "--points", "calibrate")
    check_points(points)  # before the checkpoint loads, as in profile and quickstart
    set_threads(threads)
    number(batches, "--batches", positive=True, integer=True)  # worded as eval --batches and every command's flag
    check_batch_size(batch_size, least=2)  # batch statistics of one image are its own
    settings = CalibrationSettings(batches=batches, batch_size=batch_size, momentum=_momentum(bn_momentum))
    _lock(ctx, run_dir_of(weights_path(ckpt)), "run folder")  # bn_stats.safetensors is written there
    loaded = open_checkpoint(ckpt)
    if not has_batch_norm(loaded.model):  # a ViT (LayerNorm only): every width runs as trained
        # what was typed is still checked: `--widths 5` or `--data bultin` said "nothing to calibrate", exit 0
        if widths is not None or points is not None:
            parse_widths(loaded.model, widths, points)
        if data is not None:
            parse_data_spec(data)
        name = loaded.meta.get("model", "the model")
        if json_out:
            emit_json({"checkpoint": str(loaded.path), "bn_stats": None, "calibrated": [], "stored_widths": [],
                       "note": f"{name} has no BatchNorm"})
        else:
            result(f"nothing to calibrate: {name} has no BatchNorm layers (its widths need no statistics)")
        return
    if widths is None and points is None:
        todo = list(loaded.model.width_grid())
    else:
        todo = parse_widths(loaded.model, widths, points)
    todo = trained_widths(loaded.meta, todo, widths is not None or points is not None, loaded.model,
                          lambda text: note(text, markup=False), done="calibrated")
    if widths is None:
        note_switches(loaded.model, "the width grid is")
    canonical = {w: canonical_width(loaded.model, w) for w in todo}
    for w, c in canonical.items():
        if widths is not None and abs(c - w) > 1e-9:  # only what the user typed: grid widths are canonical
            note(f"note: width {w:g} builds the network of width {c:g}; calibrated and stored as {c:g}", markup=False)
    distinct = len(set(canonical.values()))
    spec = resolve_data_spec(loaded.meta, data)  # calibrate always estimates: --data, unless the run's data is built in
    # an unknown spec or a missing path is its own error, before the stored statistics are looked at: it was told
    # to delete bn_stats.safetensors "to store statistics on" a spec that names no data set
    parse_data_spec(spec)
    out = loaded.path.parent / BN_STATS_FILE
    stored_data = statistics_of_other_data(loaded, spec)
    if stored_data is not None:
        # calibrate_checkpoint never replaces the run's statistics of another data set: they would be computed
        # and dropped, under a "wrote" line
        raise US3LError(
            f"{out} holds the BN statistics on {stored_data}, and a run keeps those of one data set: delete it to "
            f"store statistics on {spec} (us3l eval --data {spec} uses them without storing them)"
        )
    t0 = time.perf_counter()
    with Progress("calibrating", distinct, "widths", enabled=not json_out) as bar:
        bar.update(0, detail="loading the calibration data")
        started = [0]

        def on_width_start() -> None:
            started[0] += 1
            bar.update(started[0] - 1, detail=f"{batches} batch(es) of {batch_size} per width")

        def say(message: str) -> None:  # e.g. stored widths dropped for other settings; not its own summary
            if not message.startswith("calibrated "):
                note(f"note: {message}", markup=False)

        done = calibrate_checkpoint(
            loaded, data, todo, settings, recalibrate=True, save=True, on_width_start=on_width_start, progress=say
        )
        bar.update(distinct, detail="done")
    elapsed = time.perf_counter() - t0
    used = (typed_bn_stats_settings(read_bn_stats_settings(loaded.path.parent)) or {}).get("batches_used")
    doc = {
        "checkpoint": str(loaded.path),
        "bn_stats": str(out),
        "calibrated": list(done),
        "stored_widths": list(calibrated_widths(loaded.model)),
        "settings": {**settings.to_dict(), "data": spec, "batches_used": used},
        "seconds": round(elapsed, 2),
    }
    if json_out:
        emit_json(doc)
        return
    mode = "cumulative average" if settings.momentum is None else f"EMA momentum {settings.momentum:g}"
    seen = f"{used or batches} batch(es)"
    if used and used != batches:
        seen += f" ({batches} asked; the train split has no more)"
    result(
        f"calibrated {len(done)} width(s) ({min(done):g}..{max(done):g}) over {seen} of "
        f"{batch_size}, {mode}, in {elapsed:.1f}s"
    )
    note(f"wrote {out} ({len(doc['stored_widths'])} width(s) stored)", markup=False)


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    ckpt: Path = typer.Option(..., "--ckpt", help="Run folder (or its checkpoint.safetensors)."),
    data: str | None = typer.Option(
        None, "--data", help="Data spec; default: the checkpoint's data if it is builtin or digits."
    ),
    protocol: str = typer.Option("knn", "--protocol", help="knn, linear or both."),
    widths: str | None = typer.Option(
        None, "--widths", help="Comma-separated widths (default 1,.75,.5,.25; an S-Nets run: its switches)."
    ),
    points: int | None = typer.Option(None, "--points", help="Evaluate N evenly spread grid widths instead."),
    grid: int | None = typer.Option(None, "--grid", hidden=True),  # deprecated spelling of --points
    k: int | None = typer.Option(
        None,
        "--knn-k",
        help="kNN neighbours requested (default: the run's training knn_k, else 200); capped at half the "
        "smallest class of the bank.",
    ),
    k_old: int | None = typer.Option(None, "--k", hidden=True),  # deprecated spelling of --knn-k
    temperature: float | None = typer.Option(None, "--knn-t", help="kNN temperature (default 0.1)."),
    temperature_old: float | None = typer.Option(None, "--temperature", hidden=True),  # deprecated: --knn-t
    knn_max_train: int | None = typer.Option(
        None, "--knn-max-train", help="Cap the kNN feature bank (seeded stratified subset)."
    ),
    baselines: bool = typer.Option(
        True, "--baselines/--no-baselines", help="Also score a random-init network and raw pixels (kNN)."
    ),
    linear_epochs: int = typer.Option(100, "--linear-epochs", help="Linear-probe epochs (reference 100)."),
    linear_lr: float = typer.Option(30.0, "--linear-lr", help="Linear-probe SGD lr (reference 30)."),
    linear_batch_size: int = typer.Option(512, "--linear-batch-size", help="Linear-probe batch (ref. 512)."),
    linear_augment: bool = typer.Option(
        False, "--linear-augment", help="Reference augmentation (slow); default: cached features."
    ),
    batches: int = typer.Option(20, "--batches", help="Calibration batches for uncalibrated widths."),
    bn_momentum: float | None = typer.Option(None, "--bn-momentum", help="Calibration EMA momentum."),
    recalibrate: bool = typer.Option(False, "--recalibrate", help="Re-estimate already calibrated widths."),
    preset: str = typer.Option(
        "fast", "--preset",
        help="fast (default) or reference: the reference's BN calibration and linear probe for the checkpoint's "
        "data/model (replaces the calibration and --linear-* settings; recorded in accuracy.json).",
    ),
    out: Path | None = typer.Option(None, "--out", help="Output folder for accuracy.json (default: RUN)."),
    artifact: list[Path] | None = typer.Option(
        None, "--artifact",
        help="Exported artifact folder (repeatable): accuracy with its own runtime's embeddings (e.g. INT8) beside "
        "FP32 PyTorch at its width, stored in accuracy.json under precisions.<precision>.<backend>.",
    ),
    plot: bool = typer.Option(False, "--plot", help="Also write accuracy-vs-width/MACs PNGs."),
    threads: int | None = typer.Option(
        None, "--threads", min=1, max=MAX_THREADS, help="CPU threads (default: PyTorch's)."
    ),
    wide: bool = typer.Option(False, "--wide", help="Show every table column, however wide."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines or notes."),
    json_out: bool = typer.Option(False, "--json", help="Print the accuracy document as JSON."),
) -> None:
    """Accuracy per width (kNN and/or linear probe), MACs/params and embedding std -> accuracy.json."""
    from us3l.eval.accuracy import ACCURACY_FILE, carry_precisions, save_accuracy
    from us3l.eval.calibrate import CalibrationSettings
    from us3l.eval.linear import LinearProbeSettings
    from us3l.eval.runner import (
        EvalSettings,
        KnnSettings,
        evaluate_checkpoint,
        open_checkpoint,
        parse_widths,
        trained_widths,
        unfinished_note,
    )

    set_quiet(quiet)
    points = renamed_option(points, grid, "--grid", "--points", "eval")
    check_points(points)  # before the checkpoint loads, as in profile and quickstart
    k = renamed_option(k, k_old, "--k", "--knn-k", "eval")
    temperature = renamed_option(temperature, temperature_old, "--temperature", "--knn-t", "eval")
    set_threads(threads)
    counts = {"--knn-k": k, "--knn-max-train": knn_max_train, "--linear-epochs": linear_epochs,
              "--linear-batch-size": linear_batch_size, "--batches": batches}
    for flag, value in counts.items():  # the flag named, worded as every command's numbers
        if value is not None:
            number(value, flag, positive=True, integer=True)
    for flag, value in (("--knn-t", temperature), ("--linear-lr", linear_lr)):
        if value is not None:
            number(value, flag, positive=True)
    given = {name for name in ctx.params if _typed(ctx, name)}
    unused = _unused_flags(protocol, preset, given)
    if unused:
        note(f"note: {unused}", markup=False)
    settings = EvalSettings(
        protocol=protocol,
        knn=KnnSettings(k=k, temperature=0.1 if temperature is None else temperature, max_train=knn_max_train),
        linear=LinearProbeSettings(
            epochs=linear_epochs, lr=linear_lr, batch_size=linear_batch_size, augment=linear_augment
        ),
        calibration=CalibrationSettings(batches=batches, momentum=_momentum(bn_momentum)),
        recalibrate=recalibrate,
        baselines=baselines,
        preset=preset,
    )
    from us3l.checkpoint import run_dir_of, weights_path
    from us3l.io import check_replaceable, output_folder

    if plot:
        require_package("matplotlib", "plot", "--plot")
    run = run_dir_of(weights_path(ckpt))  # a checkpoint, before anything is locked or written beside it
    out_dir = output_folder(out if out is not None else run, writes=ACCURACY_FILE)  # checked before any work
    # a file of the user's named accuracy.json is never replaced (a damaged us3l one is), as select and profile do
    check_replaceable(out_dir / ACCURACY_FILE, "us3l accuracy file", lambda head: b'"kind": "accuracy"' in head[:200])
    if plot:  # a PNG of the user's where a plot would go: refused before any work
        from us3l.derived import ACCURACY_PLOTS
        from us3l.io import check_png_replaceable

        beside_ours = _previous_accuracy(out_dir) is not None
        for name in ACCURACY_PLOTS:
            check_png_replaceable(out_dir / name, beside_ours=beside_ours)
    if os.access(run, os.W_OK):  # calibrated BN statistics may be written there; a read-only run is only read
        _lock(ctx, run, "run folder")
    loaded = open_checkpoint(ckpt)
    log = None if json_out else (lambda msg: note(f"[dim]{msg}[/dim]"))
    if artifact:
        if widths is not None or points is not None:
            raise US3LError("--artifact evaluates each artifact at its own width: drop --widths/--points")
        if plot:  # the plots are accuracy against width of the checkpoint's widths
            raise US3LError("--plot draws the checkpoint's accuracy over its widths; with --artifact there is no "
                            "curve to draw: drop --plot")
        _lock(ctx, out_dir, "output folder", create=True)
        _eval_artifacts(loaded, data, artifact, settings, out_dir, threads, log, wide, json_out)
        return
    todo = parse_widths(loaded.model, widths, points)
    if points is not None:
        note_switches(loaded.model, "--points is")
    todo = trained_widths(loaded.meta, todo, widths is not None or points is not None, loaded.model,
                          lambda text: note(text, markup=False))
    unfinished = unfinished_note(loaded.meta, str(run))
    if unfinished:
        note(unfinished, markup=False)
    _lock(ctx, out_dir, "output folder", create=True)
    doc = evaluate_checkpoint(loaded, data, todo, settings, progress=log)
    for text in carry_precisions(_previous_accuracy(out_dir), doc):
        note(f"note: {text}", markup=False)
    path = save_accuracy(doc, out_dir / ACCURACY_FILE)
    pngs = []
    if plot:
        from us3l.eval.plot import plot_accuracy

        pngs = plot_accuracy(doc, out_dir)
    if json_out:
        emit_json(doc)
        return
    _print_table(doc, wide)
    note(f"wrote {path}" + "".join(f", {p}" for p in pngs), markup=False)


#: The flags each protocol uses, and those ``--preset reference`` replaces (docs/evaluation.md).
_KNN_FLAGS = {"k": "--knn-k", "temperature": "--knn-t", "knn_max_train": "--knn-max-train"}
_LINEAR_FLAGS = {"linear_epochs": "--linear-epochs", "linear_lr": "--linear-lr",
                 "linear_batch_size": "--linear-batch-size", "linear_augment": "--linear-augment"}
_PRESET_REPLACES = {**_LINEAR_FLAGS, "batches": "--batches", "bn_momentum": "--bn-momentum"}


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave parameter ``name`` on the command line (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _unused_flags(protocol: str, preset: str, given: set[str]) -> str | None:
    """The note for flags given that this evaluation will not use (they were ignored without a word)."""
    parts = []
    if protocol == "linear" and (knn := [f for k, f in _KNN_FLAGS.items() if k in given]):
        parts.append(f"{', '.join(knn)} do nothing with --protocol linear")
    if protocol == "knn" and (lin := [f for k, f in _LINEAR_FLAGS.items() if k in given]):
        parts.append(f"{', '.join(lin)} do nothing with --protocol knn")
    if preset == "reference" and (rep := [f for k, f in _PRESET_REPLACES.items() if k in given]):
        parts.append(f"--preset reference replaces {', '.join(rep)} (its settings are recorded in accuracy.json)")
    return "; ".join(parts) or None


def _previous_accuracy(out_dir: Path) -> dict[str, Any] | None:
    """The accuracy.json already in ``out_dir`` (None when absent or unreadable: it is then replaced)."""
    from us3l.eval.accuracy import ACCURACY_FILE, load_accuracy

    path = out_dir / ACCURACY_FILE
    if not path.is_file():
        return None
    try:
        return load_accuracy(path)
    except US3LError:
        return None


def _eval_artifacts(
    loaded: Any, data: str | None, artifacts: list[Path], settings: Any, out_dir: Path, threads: int | None,
    log: Any, wide: bool, json_out: bool,
) -> None:
    """``us3l eval --artifact``: each artifact's accuracy with its own runtime beside FP32 PyTorch at its width,
    merged into ``out_dir/accuracy.json`` (created when absent) under ``precisions.<precision>.<backend>``."""
    from us3l.deploy.accuracy import evaluate_artifact
    from us3l.eval.accuracy import (
        ACCURACY_FILE,
        accuracy_doc,
        add_data_check,
        add_precision_entry,
        data_mismatch,
        protocol_mismatch,
        save_accuracy,
    )
    from us3l.eval.calibrate import read_bn_stats_settings
    from us3l.eval.runner import typed_bn_stats_settings

    _check_one_per_entry(artifacts)
    splits: dict[tuple[str, int], Any] = {}  # the data, loaded and checked once for all the artifacts
    results = [evaluate_artifact(loaded, a, data, settings, threads, log, splits) for a in artifacts]
    first = results[0]
    doc = _previous_accuracy(out_dir)
    path = out_dir / ACCURACY_FILE
    if doc is not None:
        why = protocol_mismatch(doc, loaded.sha256, first["data"], first["num_test"], first["protocols"])
        if why:
            raise US3LError(
                f"{path}: cannot add the artifact accuracies, {why}: use the same --knn-*/--linear-*/--protocol/"
                "--data or another --out"
            )
        why = data_mismatch(doc, first["data_check"])
        if why:  # the same folder changed since: the file's numbers and these would not be of the same test set
            raise US3LError(
                f"{path}: cannot add the artifact accuracies, {why}: write them to another --out, or re-run us3l eval "
                "on the data as it is first"
            )
        # the record of the eval that wrote the file stays; what it lacks (written before a field was) is added, but
        # only to a file of this data: one without a fingerprint does not get the data's now on its earlier numbers
        untied = add_data_check(doc, first["data_check"])
    else:
        untied = None
        meta = loaded.meta
        rows = {r["width"]: r["fp32"] for r in results}
        doc = accuracy_doc(
            checkpoint={"path": str(loaded.path), "sha256": loaded.sha256, "method": meta.get("method"),
                        "epoch": meta.get("epoch")},
            model=str(meta.get("model")),
            model_kwargs=dict(meta.get("model_kwargs") or {}),
            data=first["data"],
            num_classes=first["num_classes"],
            input_size=first["input_size"],
            num_test=first["num_test"],
            calibration=typed_bn_stats_settings(read_bn_stats_settings(loaded.path.parent)),
            protocols=first["protocols"],
            baselines=None,
            widths=list(rows.values()),
            data_check=first["data_check"],
        )
    for r in results:
        add_precision_entry(doc, r["width"], r["precision"], r["backend"], r["entry"], r["fp32"])
    save_accuracy(doc, out_dir / ACCURACY_FILE)
    if untied is not None:
        note(f"note: {path} {untied}", markup=False)
    if json_out:
        emit_json({"accuracy": str(path), "results": [
            {"width": r["width"], "precision": r["precision"], "backend": r["backend"], **r["entry"],
             "fp32": {k: r["fp32"][k] for k in ("knn_top1", "knn_top1_ci", "knn_top5", "linear_top1",
                                                "linear_top1_ci", "linear_top5")}}
            for r in results
        ]})
        return
    _print_artifact_table(results, first, wide)
    note(f"wrote {path}", markup=False)


def _check_one_per_entry(artifacts: list[Path]) -> None:
    """Refuse (one line, before any work) two artifacts that would be stored under the same accuracy entry (width,
    precision, backend): the second replaced the first's accuracy in accuracy.json without a word."""
    from us3l.deploy.manifest import read_manifest
    from us3l.width_key import width_keys

    # the width matched as add_precision_entry stores it (width_keys): 0.78125 and 0.7813 are one row
    seen: dict[tuple[float, str, str], Path] = {}
    for a in artifacts:
        doc, _ = read_manifest(a)  # a bad folder: its one line, as evaluate_artifact would say it
        b = doc["backend"]
        keys = [(w, str(b.get("precision")), str(b.get("name"))) for w in width_keys(float(doc["model"]["width"]))]
        key = next((k for k in keys if k in seen), None)
        if key is not None:
            raise US3LError(f"--artifact {seen[key]} and {a} are both {key[2]}/{key[1]} at width {key[0]:g}: "
                            "accuracy.json keeps one accuracy per width, precision and backend; evaluate them with "
                            "different --out folders")
        seen.update(dict.fromkeys(keys, a))


def _print_artifact_table(results: list[dict[str, Any]], first: dict[str, Any], wide: bool) -> None:
    """Artifact vs FP32 PyTorch at the same width, on the same images: accuracies with 95 % intervals, the drop in
    points, and how often the two kNN classifiers predict the same class."""
    def pts(v: Any) -> str:
        return "-" if v is None else f"{round(100 * v, 1) + 0.0:+.1f}"  # + 0.0: no "-0.0" for an identical artifact

    has_linear = any(r["entry"]["linear_top1"] is not None for r in results)
    cols = [
        Col("width", key=True, justify="right"), Col("artifact", key=True),
        Col("kNN@1", key=True, justify="right"), Col("FP32 kNN@1", key=True, justify="right"),
        Col("Δ pts", key=True, justify="right"), Col("same kNN pred", justify="right", rank=2),
        Col("linear@1", key=has_linear, justify="right", rank=3), Col("FP32 linear@1", justify="right", rank=3),
        Col("kNN@5", justify="right", rank=1),
    ]
    rows = []
    for r in results:
        e, f = r["entry"], r["fp32"]
        agree = e.get("prediction_agreement")
        rows.append([
            f"{r['width']:g}", f"{r['backend']}/{r['precision']}",
            _pm(e["knn_top1"], e.get("knn_top1_ci")), _pm(f["knn_top1"], f.get("knn_top1_ci")),
            pts(None if e["knn_top1_drop"] is None else -e["knn_top1_drop"]),
            "-" if agree is None else f"{100 * agree:.1f}%",
            _pm(e["linear_top1"], e.get("linear_top1_ci")), _pm(f["linear_top1"], f.get("linear_top1_ci")),
            _pct(e["knn_top5"]),
        ])
    knn = first["protocols"].get("knn") or {}
    title = (f"artifact accuracy vs FP32 PyTorch at the same width (%, ± 95% Wilson interval, {first['num_test']} "
             f"test images" + (f", kNN k={knn['k']}" if knn else "") + ")")
    print_table(title, cols, rows, wide=wide,
                caption="Δ pts: artifact minus FP32, in points; same kNN pred: test images classified alike by both")


def _pm(v: Any, ci: Any) -> str:
    """``75.2 ±4.5`` (percent; the larger distance from the value to its 95 % interval's ends)."""
    if v is None:
        return "-"
    if not ci:
        return _pct(v)
    return f"{100 * v:.1f} ±{100 * max(v - ci[0], ci[1] - v):.1f}"


def _print_table(doc: dict[str, Any], wide: bool = False) -> None:
    """The accuracy table on stdout: kNN top-1 with its 95 % interval beside the random-init baseline at the
    same width; raw pixels and chance in the caption. Width and the top-1 accuracies are never dropped."""
    n = doc.get("num_test")
    knn = (doc.get("protocols") or {}).get("knn") or {}
    k = ""
    if knn:
        asked = knn.get("k_requested")
        k = f", kNN k={knn['k']}" + (f" (asked {asked})" if asked not in (None, knn["k"]) else "")
    title = f"{doc['model']} on {doc['data']} (accuracy %, ± 95% Wilson interval, {doc['num_classes']} classes"
    title += (f", {n} test images" if n else "") + k + ")"
    has_knn = any(r["knn_top1"] is not None for r in doc["widths"])
    has_linear = any(r["linear_top1"] is not None for r in doc["widths"])
    cols = [
        Col("width", key=True, justify="right"), Col("feat dim", justify="right", rank=3),
        Col("kNN@1", key=has_knn, justify="right", rank=9), Col("random-init kNN@1", justify="right", rank=1),
        Col("kNN@5", justify="right", rank=2), Col("linear@1", key=has_linear, justify="right", rank=9),
        Col("linear@5", justify="right", rank=2), Col("MACs", justify="right", rank=1),
        Col("params", justify="right", rank=3), Col("emb std", justify="right", rank=2),
    ]
    rows = []
    for r in doc["widths"]:
        base = r.get("baseline_random_init") or {}
        rows.append([
            f"{r['width']:g}",
            str(r["feature_dim"]),
            _pm(r["knn_top1"], r.get("knn_top1_ci")),
            _pm(base.get("knn_top1"), base.get("knn_top1_ci")),
            _pct(r["knn_top5"]),
            _pm(r["linear_top1"], r.get("linear_top1_ci")),
            _pct(r["linear_top5"]),
            _macs(r["macs"]),
            "-" if r["params"] is None else f"{r['params'] / 1e6:.2f}M",
            "-" if r["embedding_std"] is None else f"{r['embedding_std']:.3f}",
        ])
    caption = None
    b = doc.get("baselines")
    if b:
        raw = b.get("raw_pixels")
        raw_s = "skipped (too large)" if raw is None else _pm(raw["knn_top1"], raw.get("knn_top1_ci"))
        caption = (
            f"baselines (same kNN): raw pixels {raw_s}, chance {100 * b['chance']:.1f}; random-init network "
            f"seed {b['random_init_seed']}" + (", BN calibrated like the trained one" if doc.get("calibration") else "")
        )
    print_table(title, cols, rows, wide=wide, caption=caption)
