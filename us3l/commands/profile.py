"""``us3l profile --device NAME ...`` (measure every width) and ``us3l profile show FILE`` (print a profile).

``profile`` is a typer sub-app whose callback runs the sweep when no subcommand is given
(``invoke_without_command=True``), so both forms work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from us3l.cli_app import app, console, emit_json
from us3l.errors import US3LError
from us3l.locking import acquire, release

profile_app = typer.Typer(
    help="Measure MACs, params, memory and latency of every width on a device (locally or over SSH).",
    invoke_without_command=True,
    add_completion=False,
)
app.add_typer(profile_app, name="profile")


def _parse_widths(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise US3LError(f"--widths must be comma-separated numbers like 0.25,0.5,1.0, got {text!r}") from None


def _load_model(model_name: str | None, ckpt: Path | None) -> tuple[Any, str, str | None, int]:
    """(slimmable model, model name, checkpoint sha256 or None, input side)."""
    if (model_name is None) == (ckpt is None):
        raise US3LError("give exactly one of --model NAME or --ckpt PATH")
    if ckpt is not None:
        try:
            from us3l.checkpoint import load_backbone
        except ImportError:
            raise US3LError("--ckpt needs us3l.checkpoint, which this installation lacks") from None
        loaded = load_backbone(ckpt)
        size = int(loaded.meta.get("input_size") or loaded.model.input_size)
        return loaded.model, str(loaded.meta.get("model", "model")), loaded.sha256, size
    from deploy.graph import fresh_model

    net = fresh_model(str(model_name))  # seeded: a fresh export of the same model ships the same bytes
    return net, str(model_name), None, int(net.input_size)


def profile_table(doc: Any) -> Table:
    """The per-width table of a ``Profile``."""
    t = Table(title=f"{doc.model} on {doc.device} ({doc.backend}, {doc.precision}, input "
                    f"{'x'.join(map(str, doc.input_shape))}, {doc.threads} threads)")
    for col in ("width", "ch", "MMACs", "params", "weights", "act. mem", "n", "p50 ms", "95% CI", "±%",
                "p90 ms", "p99 ms", "stable", "BN"):
        t.add_column(col, justify="right")
    for r in sorted(doc.records, key=lambda r: r.width):
        s = r.latency
        lo, hi = s.ci95_ms["p50"]
        t.add_row(
            f"{r.width:.4g}", str(r.channels), f"{r.macs / 1e6:.1f}", f"{r.params / 1e6:.2f}M",
            f"{r.weight_bytes / 2**20:.2f} MiB", f"{r.activation_bytes / 2**10:.0f} KiB", str(s.n),
            f"{s.p50_ms:.3f}", f"{lo:.3f}-{hi:.3f}", f"{100 * s.rel_ci_halfwidth:.1f}", f"{s.p90_ms:.3f}",
            f"{s.p99_ms:.3f}", "yes" if s.stable else f"[red]no[/] ({r.stop_reason})", r.bn or "?",
        )
    return t


@profile_app.callback()
def profile_cmd(
    ctx: typer.Context,
    device: str | None = typer.Option(None, "--device", "-d", help="Device name (see: us3l devices)."),
    device_file: Path | None = typer.Option(None, "--device-file", help="A device TOML file."),
    host: str | None = typer.Option(None, "--host", help="Reach the device at ssh://user@host[:port] (or local)."),
    model: str | None = typer.Option(None, "--model", help="A registered model, freshly created."),
    ckpt: Path | None = typer.Option(None, "--ckpt", help="A run folder or checkpoint.safetensors."),
    backend: str | None = typer.Option(None, "--backend", help="onnx | openvino | tensorrt | torch."),
    widths: str | None = typer.Option(None, "--widths", help="Comma-separated widths (default: the grid)."),
    points: int | None = typer.Option(None, "--points", help="At most this many widths from the grid."),
    batch: int | None = typer.Option(None, "--batch", min=1, help="Batch size (default: the device's)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Pinned thread count."),
    target_ci: float | None = typer.Option(None, "--target-ci", help="Target relative 95% CI half-width."),
    max_seconds: float | None = typer.Option(None, "--max-seconds", help="Time cap per width (s)."),
    out: Path = typer.Option(Path("profiles"), "--out", help="Output folder."),
    plot: bool = typer.Option(False, "--plot", help="Also write <stem>.png (latency and MACs vs width)."),
    json_out: bool = typer.Option(False, "--json", help="Print only the profile JSON document."),
) -> None:
    """Profile every width of a model on a device; writes <out>/<model>-<device>-<backend>-<precision>.json/.csv."""
    if ctx.invoked_subcommand is not None:
        return
    from devices.registry import get_device
    from profiler.profile_file import write_profile
    from profiler.sweep import check_local_requirements, resolve_backend, run_sweep

    spec = get_device(device, device_file)
    if host:
        try:
            spec = spec.with_host(host)
        except ValueError as exc:
            raise US3LError(str(exc)) from None
    try:  # nan / inf / out of range: refused before any model is built
        policy = spec.policy.replace(target_rel_ci=target_ci, max_seconds=max_seconds)
    except ValueError as exc:
        raise US3LError(f"--target-ci / --max-seconds: {exc}") from None
    resolve_backend(spec, backend)  # a backend the device lacks, or hardware missing here: before any work
    if spec.reach.is_local:
        check_local_requirements(spec)
    net, name, sha, size = _load_model(model, ckpt)
    grid = _parse_widths(widths) if widths else list(net.width_grid(points))
    grid = [net.width_range.check(w) for w in grid]
    out_lock = acquire(out, "profile folder")  # before measuring: a second profile into --out fails at once
    ctx.call_on_close(lambda: release(out_lock))

    status = None if json_out else console.status(f"profiling {len(grid)} widths of {name} on {spec.name}")

    def on_round(rnd: int, counts: dict[str, int]) -> None:
        if status is not None:
            status.update(f"{name} on {spec.name}: round {rnd + 1}, samples per width "
                          f"{min(counts.values())}-{max(counts.values())}")

    if status is not None:
        status.start()
    try:
        prof = run_sweep(net, name, grid, spec, size, backend=backend,
                         batch=batch, threads=threads, policy=policy, checkpoint_sha256=sha, on_round=on_round)
    finally:
        if status is not None:
            status.stop()
    json_path, csv_path = write_profile(prof, out)
    png = None
    if plot:
        from profiler.plot import plot_profile

        png = plot_profile(prof, json_path.with_suffix(".png"))
    frozen = [r.width for r in prof.records if r.bn == "frozen-uncalibrated"]
    if frozen:
        console.print(
            f"[yellow]note:[/yellow] {len(frozen)} of {len(prof.records)} widths have no calibrated BN statistics: "
            "timed with frozen placeholder statistics (the graph export ships, same latency)"
            + ("; calibrate them before exporting (us3l calibrate)" if sha else "")
        )
    if json_out:
        emit_json(prof.to_dict())
        return
    console.print(profile_table(prof))
    console.print(f"wrote {json_path} and {csv_path}" + (f" and {png}" if png else ""))


@profile_app.command("show")
def show_cmd(
    file: Path = typer.Argument(..., help="A profile JSON file."),
    json_out: bool = typer.Option(False, "--json", help="Print the profile JSON document."),
) -> None:
    """Print the per-width table of a profile file."""
    from profiler.profile_file import Profile
    from us3l.io import read_json

    doc = read_json(file, "profile file")
    prof = Profile.from_dict(doc, file)  # schema check
    if json_out:
        emit_json(doc)
        return
    console.print(profile_table(prof))
