"""``us3l profile --device NAME ...`` (measure every width) and ``us3l profile show FILE`` (print a profile).

``profile`` is a typer sub-app whose callback runs the sweep when no subcommand is given
(``invoke_without_command=True``), so both forms work.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from us3l.cli_app import app, emit_json
from us3l.cli_output import (
    Col,
    Progress,
    fit_table,
    note,
    note_switches,
    print_table,
    renamed_option,
    set_quiet,
    warn,
)
from us3l.errors import US3LError, require_package
from us3l.io import check_png_replaceable
from us3l.locking import acquire, release
from us3l.validate import MAX_THREADS, memory_mb, number, width_list
from us3l.validate import batch_size as check_batch_size
from us3l.validate import points as check_points

profile_app = typer.Typer(
    help="Measure MACs, params, memory and latency of every width on a device (locally or over SSH).",
    invoke_without_command=True,
    add_completion=False,
)
app.add_typer(profile_app, name="profile")


def parse_precisions(text: str | None) -> list[str | None]:
    """``--precision``: one value or a comma-separated list, each checked (one line naming the bad entry);
    ``None`` gives ``[None]`` (the device's precision). A precision listed twice is refused."""
    if text is None:
        return [None]
    from us3l.deploy.backends.base import precision_flag

    entries = [precision_flag(p) for p in text.split(",")]
    twice = sorted({p for p in entries if entries.count(p) > 1})
    if twice:
        raise US3LError(f"--precision lists {', '.join(twice)} more than once, got {text!r}")
    return list(entries)


def _load_model(model_name: str | None, ckpt: Path | None) -> tuple[Any, str, str | None, int, Any]:
    """(slimmable model, model name, checkpoint sha256 or None, input side, the loaded checkpoint or the model)."""
    if (model_name is None) == (ckpt is None):
        raise US3LError("give exactly one of --model NAME or --ckpt PATH")
    if ckpt is not None:
        try:
            from us3l.checkpoint import load_backbone
        except ImportError:
            raise US3LError("--ckpt needs us3l.checkpoint, which this installation lacks") from None
        loaded = load_backbone(ckpt)
        size = int(loaded.meta.get("input_size") or loaded.model.input_size)
        return loaded.model, str(loaded.meta.get("model", "model")), loaded.sha256, size, loaded
    from us3l.deploy.graph import fresh_model

    net = fresh_model(str(model_name))  # seeded: a fresh export of the same model ships the same bytes
    return net, str(model_name), None, int(net.input_size), net


def parse_backends(spec: Any, given: Sequence[str]) -> list[str]:
    """``--backend``: none (the device's first backend), or names repeated and/or comma-separated, each checked
    against the device (aliases such as ``ort`` resolved); a backend named twice is refused."""
    from us3l.profiler.sweep import resolve_backend
    from us3l.validate import name_list, once_each

    names = name_list(given, "--backend")
    if not names:
        return [resolve_backend(spec, None)]
    out = [resolve_backend(spec, n) for n in names]
    once_each(out, "--backend", names)
    return out


def _check_plot_path(json_path: Path) -> None:
    """Refuse, before measuring, a file not of us3l's where ``--plot`` writes the PNG beside profile ``json_path``
    (an unmarked PNG of an older us3l is replaced when that profile is there)."""
    check_png_replaceable(json_path.with_suffix(".png"), beside_ours=json_path.is_file())


def _profile_rows(doc: Any) -> tuple[str, list[Col], list[list[str]]]:
    title = (f"{doc.model} on {doc.device} ({doc.backend}, {doc.precision}, input "
             f"{'x'.join(map(str, doc.input_shape))}, "
             + ("the runtime's default threads)" if doc.threads is None else f"{doc.threads} threads)"))
    cols = [
        Col("width", key=True, justify="right"), Col("ch", justify="right", rank=3),
        Col("MMACs", justify="right", rank=1), Col("params", justify="right", rank=2),
        Col("weights", justify="right", rank=3), Col("act. mem", justify="right", rank=3),
        Col("n", justify="right", rank=2), Col("p50 ms", key=True, justify="right"),
        Col("95% CI", key=True, justify="right"), Col("±%", justify="right", rank=2),
        Col("p90 ms", key=True, justify="right"), Col("p99 ms", justify="right", rank=1),
        Col("stable", key=True), Col("BN", rank=3),
    ]
    rows = []
    for r in sorted(doc.records, key=lambda r: r.width):
        s = r.latency
        ci = s.ci95_ms.get("p50")  # optional in a profile file (an edited one, another tool's): shown as —
        rows.append([
            f"{r.width:.4g}", str(r.channels), f"{r.macs / 1e6:.1f}", f"{r.params / 1e6:.2f}M",
            "—" if r.weight_bytes is None else f"{r.weight_bytes / 2**20:.2f} MiB",
            "—" if r.activation_bytes is None else f"{r.activation_bytes / 2**10:.0f} KiB", str(s.n),
            f"{s.p50_ms:.3f}", "—" if ci is None else f"{ci[0]:.3f}-{ci[1]:.3f}", f"{100 * s.rel_ci_halfwidth:.1f}",
            f"{s.p90_ms:.3f}",
            f"{s.p99_ms:.3f}",
            # stop_reason and bn are free text in the file: escaped, as cells are rich markup ("[/]" would raise)
            "interp." if r.interpolated else "yes" if s.stable else f"[red]no[/] ({escape(_unstable_why(r))})",
            escape(r.bn or "?"),
        ])
    return title, cols, rows


def _unstable_why(record: Any) -> str:
    """Why an unstable width is unstable, for the table: its ``stop_reason``, but ``drift`` where that is
    ``target`` (the median's interval met the CI target, so the drift check is what failed)."""
    return "drift" if record.stop_reason == "target" else str(record.stop_reason)


def profile_table(doc: Any) -> Table:
    """The per-width table of a ``Profile`` (every column)."""
    title, cols, rows = _profile_rows(doc)
    return fit_table(title, cols, rows, wide=True)[0]


def print_profile(doc: Any, wide: bool = False) -> None:
    """The per-width table on stdout; width, p50, its 95 % CI, p90 and stability are never dropped."""
    title, cols, rows = _profile_rows(doc)
    print_table(title, cols, rows, wide=wide)


@profile_app.callback()
def profile_cmd(
    ctx: typer.Context,
    device: str | None = typer.Option(None, "--device", "-d", help="Device name (see: us3l devices)."),
    device_file: Path | None = typer.Option(None, "--device-file", help="A device TOML file."),
    host: str | None = typer.Option(None, "--host", help="Reach the device at ssh://user@host[:port] (or local)."),
    model: str | None = typer.Option(None, "--model", help="A registered model, freshly created."),
    ckpt: Path | None = typer.Option(None, "--ckpt", help="A run folder or checkpoint.safetensors."),
    backend: list[str] = typer.Option(
        [], "--backend", help="onnx | openvino | tensorrt | torch (default: the device's first), or several (repeat "
        "or comma-separate: one sweep and one profile file each)."
    ),
    precision: str | None = typer.Option(
        None, "--precision", help="fp32 | fp16 | int8, or a comma-separated list (one sweep and one profile file "
        "each; default: the device's). int8: each width's post-training INT8 artifact, as us3l export "
        "--precision int8 builds it (onnx, openvino)."
    ),
    calib_images: int = typer.Option(300, "--calib-images", help="int8: calibration images (as us3l export)."),
    calib_data: str | None = typer.Option(
        None, "--calib-data", help="int8: data spec of the calibration images (default: the checkpoint's data)."
    ),
    widths: str | None = typer.Option(None, "--widths", help="Comma-separated widths (default: the grid)."),
    points: int | None = typer.Option(None, "--points", help="At most this many widths from the grid."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Images per inference batch (default: the device's)."
    ),
    batch_old: int | None = typer.Option(None, "--batch", hidden=True),
    threads: int | None = typer.Option(None, "--threads", min=1, max=MAX_THREADS, help="Pinned thread count."),
    target_ci: float | None = typer.Option(
        None, "--target-ci", help="Target relative 95% CI half-width (default: the device's policy, 0.02 on the "
        "built-ins)."
    ),
    max_seconds: float | None = typer.Option(
        None, "--max-seconds", help="Time cap per width, s (default: the device's policy, 10 on cpu)."
    ),
    max_memory_mb: float | None = typer.Option(
        None, "--max-memory-mb", help="Resident memory the sweep may hold (MiB; sessions rotated to stay under it)."
    ),
    max_total_seconds: float | None = typer.Option(
        None, "--max-total-seconds", help="Time budget of the whole sweep (s), spread over the widths."
    ),
    adaptive: bool = typer.Option(
        False, "--adaptive", help="Measure a covering subset, then only where latency is not linear in MACs; "
        "interpolate the other widths (flagged, never selected)."
    ),
    artifact: Path | None = typer.Option(
        None, "--artifact", help="A switchable export folder (us3l export --switchable): time every width of its "
        "grid through that one file, on this machine."
    ),
    out: Path = typer.Option(Path("profiles"), "--out", help="Output folder."),
    plot: bool = typer.Option(False, "--plot", help="Also write <stem>.png (latency and MACs vs width)."),
    wide: bool = typer.Option(False, "--wide", help="Show every table column, however wide."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display or notes."),
    json_out: bool = typer.Option(False, "--json", help="Print only the profile JSON document."),
) -> None:
    """Profile every width of a model on a device, once per --precision entry; writes
    <out>/<model>-<device>-<backend>-<precision>.json/.csv for each."""
    if ctx.invoked_subcommand is not None:
        return
    set_quiet(quiet)
    if plot:
        require_package("matplotlib", "plot", "--plot")
    batch_size = renamed_option(batch_size, batch_old, "--batch", "--batch-size", "profile")
    if batch_size is not None:  # as in export and calibrate: bad input, exit 1 (not 2)
        check_batch_size(batch_size)
    from us3l.devices.registry import get_device
    from us3l.io import output_folder
    from us3l.profiler.profile_file import profile_paths, profile_stem, write_profile
    from us3l.profiler.sweep import check_local_requirements, check_timed_device, run_sweep, swept_precision
    from us3l.slim import check_width

    output_folder(out, writes="MODEL-DEVICE-BACKEND-PRECISION.json and .csv", suffixes=(".json", ".csv"))
    spec = get_device(device, device_file)
    if host:
        try:
            spec = spec.with_host(host)
        except ValueError as exc:
            raise US3LError(str(exc)) from None
    for flag, value in (("--target-ci", target_ci), ("--max-seconds", max_seconds),
                        ("--max-memory-mb", max_memory_mb), ("--max-total-seconds", max_total_seconds)):
        if value is None:
            continue
        if flag == "--max-memory-mb":  # before any work, by the validator run_sweep applies (MiB a runner reports
            memory_mb(value, flag)  # back in bytes, up to 2**50)
        else:  # nan / inf / 0: worded as every command words the flag
            number(value, flag, positive=True)
    try:  # out of range (--target-ci 1): refused before any model is built
        policy = spec.policy.replace(target_rel_ci=target_ci, max_seconds=max_seconds)
    except ValueError as exc:  # the policy names its fields; the user typed the flags
        text = str(exc).replace("target_rel_ci", "--target-ci").replace("max_seconds", "--max-seconds")
        raise US3LError(text) from None
    from us3l.deploy.quantize import calib_flags_given, check_calib_images

    calib_flags = calib_flags_given(calib_images, calib_data)
    if artifact is not None:
        given = [flag for flag, v in (("--model", model), ("--ckpt", ckpt), ("--backend", backend or None),
                                      ("--precision", precision), ("--widths", widths), ("--points", points),
                                      ("--batch-size", batch_size), ("--max-memory-mb", max_memory_mb),
                                      ("--max-total-seconds", max_total_seconds), ("--adaptive", adaptive or None),
                                      *((flag, True) for flag in calib_flags))
                 if v is not None]
        if given:
            raise US3LError(f"--artifact profiles the artifact's own grid, backend and input: drop {', '.join(given)}")
        _profile_artifact(ctx, artifact, spec, threads, policy, out, plot, wide, json_out)
        return
    backends = parse_backends(spec, backend)  # one the device lacks, or hardware missing here: before any work
    check_timed_device(spec, backends)  # OpenVINO's automatic batching would time its batch timeout
    precisions = parse_precisions(precision)  # [None]: the device's own
    from us3l.profiler.sweep import INT8_BACKENDS, check_int8

    for be_name in backends:
        if "int8" in precisions and be_name not in INT8_BACKENDS:  # a backend that cannot time INT8 says so first
            check_int8(be_name, None)
        for p in precisions:  # what the device file's [precisions] allows on this backend
            if p is not None:
                spec.check_precision(be_name, p)
    if calib_flags and "int8" not in precisions:  # dropped without a word, as us3l export dropped them
        raise US3LError(f"--precision has no int8: drop {', '.join(calib_flags)} (int8 calibration), or add int8 to "
                        "--precision")
    if "int8" in precisions:
        check_calib_images(calib_images)
    if spec.reach.is_local:
        check_local_requirements(spec, backends)
    if widths is not None and points is not None:
        raise US3LError("give either --widths or --points, not both")
    check_points(points)
    net, name, sha, size, source = _load_model(model, ckpt)
    grid = width_list(widths) if widths is not None else list(net.width_grid(points))
    if widths is None:
        note_switches(net, "the width grid is")
    grid = _one_per_network(net, [check_width(net, w, "--widths") for w in grid])  # in range; S-Nets: a switch
    calibration = None
    if "int8" in precisions:  # the calibration set us3l export --precision int8 would use (same seed and size)
        from us3l.deploy.export import int8_calibration_for

        calibration = int8_calibration_for(source, calib_images, calib_data, model_name=name)
    sweeps = [(be, prec) for be in backends for prec in precisions]
    for be_name, prec in sweeps:  # before measuring: a file of the user's where a profile would go is refused
        recorded = swept_precision(spec, be_name, prec)
        if prec is None and recorded != spec.precision:
            note(f"{be_name} does not run the device's precision {spec.precision}: profiling {recorded}", markup=False)
        json_path, _ = profile_paths(out, profile_stem(name, spec.name, be_name, recorded))
        if plot:
            _check_plot_path(json_path)
    out_lock = acquire(out, "profile folder")  # before measuring: a second profile into --out fails at once
    ctx.call_on_close(lambda: release(out_lock))

    docs = []
    for i, (be_name, prec) in enumerate(sweeps):  # one sweep per backend and precision, each written and shown
        shown = [x for x, many in ((be_name, len(backends) > 1), (prec, len(precisions) > 1)) if many and x]
        label = f"profiling {name} on {spec.name}" + (f" ({', '.join(shown)})" if shown else "")
        with Progress(label, len(grid), "widths", enabled=not json_out) as bar:
            bar.update(0, detail="exporting the graphs")

            def on_prepare(done: int, total: int, bar: Progress = bar) -> None:
                bar.update(0, detail=f"exported {done}/{total} graphs")

            def on_progress(p: Any, bar: Progress = bar) -> None:  # us3l.profiler.measure.SweepProgress
                eta = "" if p.eta_s is None else f", eta {p.eta_s:.0f} s"
                budget = "" if p.budget_left_s is None else f", budget left {max(0.0, p.budget_left_s):.0f} s"
                bar.update(p.done, detail=f"{p.live} loaded, {p.stable} stable{eta}{budget}")

            prof = run_sweep(net, name, grid, spec, size, backend=be_name,
                             batch=batch_size, threads=threads, policy=policy, checkpoint_sha256=sha,
                             max_memory_mb=max_memory_mb, max_total_seconds=max_total_seconds,
                             on_progress=on_progress, on_prepare=on_prepare, adaptive=adaptive,
                             precision=prec, calibration=calibration)
            bar.update(len(grid), detail="done")
        json_path, csv_path = write_profile(prof, out)
        png = None
        if plot:
            from us3l.profiler.plot import plot_profile

            png = plot_profile(prof, json_path.with_suffix(".png"))
        if i == 0:  # the same widths in every sweep: said once
            _note_uncalibrated(prof)
        if json_out:  # the document is the result; the notes below still go to stderr (--quiet silences them)
            docs.append(prof.to_dict())
        else:
            print_profile(prof, wide)
        tb, win = prof.time_budget or {}, prof.window or {}
        peak = f", peak memory {prof.peak_rss_bytes / 2**20:.0f} MiB" if prof.peak_rss_bytes else ""
        note(f"{tb.get('stable_widths')} of {len(prof.records)} widths stable in {tb.get('wall_s', 0):.0f} s"
             f" (window of {win.get('size')} sessions{peak})", markup=False)
        if tb.get("prepared_widths") is not None and tb["prepared_widths"] < tb.get("requested_widths", 0):
            note(f"budget: {tb['prepared_widths']} of {tb['requested_widths']} widths prepared within half of "
                 f"--max-total-seconds (widest first, then spread over the range); the other "
                 f"{tb['requested_widths'] - tb['prepared_widths']} were not profiled: raise --max-total-seconds, "
                 "or thin the grid with --points", markup=False)
        if prof.adaptive:
            ad = prof.adaptive
            note(f"adaptive: {ad['measured']} widths measured in {ad['rounds']} round(s), {ad['interpolated']} "
                 f"interpolated (largest leave-one-out error of the fit {100 * ad['fit_rel_error']:.1f} %); "
                 "interpolated widths are never selected", markup=False)
        note(f"wrote {json_path} and {csv_path}" + (f" and {png}" if png else ""), markup=False)
    if json_out:  # one document: the profile itself for one sweep, {"profiles": [...]} for several
        emit_json(docs[0] if len(docs) == 1 else {"profiles": docs})


def _profile_artifact(
    ctx: typer.Context, artifact: Path, spec: Any, threads: int | None, policy: Any, out: Path, plot: bool,
    wide: bool, json_out: bool,
) -> None:
    """``us3l profile --artifact DIR``: every width of a switchable artifact, through the one file."""
    from us3l.deploy.switchable_runtime import read_switchable
    from us3l.profiler.profile_file import profile_paths, profile_stem, write_profile
    from us3l.profiler.sweep import check_local_requirements, check_timed_device
    from us3l.profiler.switchable_profile import PRECISION, placed_artifact, profile_switchable, profiled_model_name

    doc, _ = read_switchable(artifact)  # a bad folder: one line before anything is loaded
    check_timed_device(spec, [doc["backend"]["name"]])
    if spec.reach.is_local:
        check_local_requirements(spec)  # the OpenVINO device: profile_switchable, after the file's own checks
    # before measuring, as for a sweep: a file of the user's where the profile would go is refused
    json_path, _ = profile_paths(out, profile_stem(profiled_model_name(doc), spec.name, doc["backend"]["name"],
                                                   PRECISION))
    if plot:
        _check_plot_path(json_path)
    out_lock = acquire(out, "profile folder")
    ctx.call_on_close(lambda: release(out_lock))
    n = len(doc["model"]["widths"])
    with Progress(f"profiling {artifact.name} on {spec.name}", n, "widths", enabled=not json_out) as bar:
        bar.update(0, detail="timing every width through the one file")
        prof = profile_switchable(artifact, spec, threads=threads, policy=policy,
                                  on_note=lambda line: note(f"note: {line}", markup=False),
                                  on_warning=lambda line: warn(line, markup=False))
        bar.update(n, detail="done")
    prof.extra["switchable"].update(placed_artifact(artifact, json_path))
    json_path, csv_path = write_profile(prof, out)
    _note_uncalibrated(prof)
    png = None
    if plot:
        from us3l.profiler.plot import plot_profile

        png = plot_profile(prof, json_path.with_suffix(".png"))
    if json_out:
        emit_json(prof.to_dict())
        return
    print_profile(prof, wide)
    sw = prof.extra["switchable"]
    note(f"{prof.time_budget['stable_widths']} of {n} widths stable in {prof.time_budget['wall_s']:.0f} s, "
         f"one file ({sw['mode']})", markup=False)
    note(f"wrote {json_path} and {csv_path}" + (f" and {png}" if png else ""), markup=False)


def _note_uncalibrated(prof: Any) -> None:
    """The note on widths timed with frozen placeholder BN statistics (``bn`` frozen-uncalibrated), if any."""
    frozen = [r.width for r in prof.records if r.bn == "frozen-uncalibrated"]
    if frozen:
        note(
            f"[yellow]note:[/yellow] {len(frozen)} of {len(prof.records)} widths have no calibrated BN "
            "statistics: timed with frozen placeholder statistics (the graph export ships, same latency)"
            + ("; calibrate them before exporting (us3l calibrate)" if prof.checkpoint_sha256 else "")
        )


def _one_per_network(net: Any, grid: list[float]) -> list[float]:
    """The widths in order, each channel configuration once: 0.5 and 0.5001 build the same network, which would be
    timed twice and recorded as two widths; the later ones are dropped with a note."""
    from us3l.slim import canonical_width

    seen: dict[float, float] = {}
    for w in grid:
        c = canonical_width(net, w)
        if c in seen:
            note(f"note: width {w:g} builds the same network as {seen[c]:g}; timed once, as {seen[c]:g}", markup=False)
        else:
            seen[c] = w
    return list(seen.values())


@profile_app.command("show")
def show_cmd(
    file: Path = typer.Argument(..., help="A profile JSON file."),
    wide: bool = typer.Option(False, "--wide", help="Show every table column, however wide."),
    json_out: bool = typer.Option(False, "--json", help="Print the profile JSON document."),
) -> None:
    """Print the per-width table of a profile file (stdout)."""
    from us3l.io import read_json
    from us3l.profiler.profile_file import Profile

    doc = read_json(file, "profile file")
    prof = Profile.from_dict(doc, file)  # schema check
    if json_out:
        emit_json(doc)
        return
    print_profile(prof, wide)
