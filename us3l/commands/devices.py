"""``us3l devices [--check] [--json]``: list the known profiling targets (and check them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from us3l.cli_app import app, emit_json
from us3l.cli_output import Col, print_table
from us3l.errors import US3LError

if TYPE_CHECKING:
    from us3l.devices.check import CheckResult
    from us3l.devices.spec import DeviceSpec


@app.command("devices")
def devices_cmd(
    check: bool = typer.Option(False, "--check", help="Check that each device is reachable and has its runtime."),
    device_file: Path | None = typer.Option(None, "--device-file", help="Also read this device TOML file."),
    host: str | None = typer.Option(None, "--host", help="Reach the --device here: ssh://user@host[:port] or local."),
    name: str | None = typer.Option(None, "--device", "-d", help="Only this device."),
    wide: bool = typer.Option(False, "--wide", help="Show every table column, however wide."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """List the built-in and user-defined devices ($US3L_DEVICES_DIR or ~/.config/us3l/devices).

    With --check the exit code is 1 when a checked device is unreachable or lacks its runtime."""
    from us3l.devices.check import check_device
    from us3l.devices.registry import get_device, list_devices, user_devices_dir

    if host and not name:  # one URL for every listed device would check one machine under eight names
        raise US3LError("--host reaches one device: name it with --device NAME (see: us3l devices --help)",
                        exit_code=2)
    specs = [get_device(name, device_file)] if name else list_devices(device_file)
    if host:
        specs = [s.with_host(host) for s in specs]
    checks = {s.name: check_device(s) for s in specs} if check else {}
    if json_out:
        emit_json({
            "user_dir": str(user_devices_dir()),
            "devices": [{**s.to_dict(), **({"check": checks[s.name].to_dict()} if check else {})} for s in specs],
        })
    else:
        _print_table(specs, checks, check, str(user_devices_dir()), wide)
    failed = [(n, c) for n, c in checks.items() if not c.ok]
    if failed:  # stdout keeps the table / document; stderr gets the one error line a script's log shows
        raise US3LError(_failed_line(failed, len(checks)))


def _failed_line(failed: list[tuple[str, CheckResult]], checked: int) -> str:
    """The ``error:`` line of a failed ``--check``: one device's reason, or which of several failed."""
    if len(failed) == 1 and checked == 1:
        name, c = failed[0]
        return f"device {name!r} failed its check: {c.message}"
    names = ", ".join(n for n, _ in failed)
    return f"{len(failed)} of {checked} devices failed their check: {names} (the reasons: in the listing on stdout)"


def _print_table(specs: list[DeviceSpec], checks: dict[str, CheckResult], check: bool, user_dir: str,
                 wide: bool = False) -> None:
    cols = [Col("name", key=True), Col("backends", key=True), Col("precision", rank=2), Col("batch", rank=2),
            Col("reach", rank=3, fold=True)]
    cols.append(Col("check", key=True, fold=True) if check else Col("description", rank=1, fold=True))
    rows = []
    for s in specs:
        row = [s.name, ",".join(s.backends), s.precision, str(s.batch), s.reach.url]
        if not check:
            row.append(escape(s.description))  # cells are rich markup: "[reach]" in a text would vanish
        else:
            c = checks[s.name]
            row.append(("[green]ok[/]" if c.ok else "[red]no[/]") + f": {escape(c.message)}")
        rows.append(row)
    print_table(f"us3l devices (user folder: {user_dir})", cols, rows, wide=wide)
