"""Over a real sshd on 127.0.0.1: the device file's ``max_memory_mb`` reaches the remote runner, which then holds
one session at a time (the window), and the profile records the runner's peak memory. The widths' exports are
shared (``shared_exports`` in conftest.py)."""

from __future__ import annotations

import json

import pytest

from us3l.cli import main


@pytest.mark.slow  # 2.6 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_remote_sweep_honours_max_memory_mb(loopback_ssh, shared_exports, tmp_path, capsys):
    dev = tmp_path / "small.toml"
    # 1 MiB: below any runner process, so the runner refuses a second session and the window is one (two widths
    # are enough to need a second session)
    dev.write_text(loopback_ssh.device_toml(name="small").replace('threads = 1\n', 'threads = 1\nmax_memory_mb = 1\n'))
    rc = main(["profile", "--device-file", str(dev), "--model", "cifar_resnet18", "--widths", "0.25,0.5",
               "--backend", "onnx", "--out", str(tmp_path / "p"), "--max-total-seconds", "600", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads(captured.out)
    win = doc["window"]
    assert win["size"] == 1 and win["max_live"] == 1 and win["reason"] == "memory"
    assert win["max_memory_bytes"] == 2**20 and win["peak_scope"] == "remote runner"
    assert doc["peak_rss_bytes"] > 0  # the runner's own peak (VmHWM), read over the protocol
    assert doc["time_budget"]["max_total_seconds"] == 600
    assert [r["width"] for r in doc["records"]] == [0.25, 0.5] and shared_exports == [[0.25, 0.5]]
    assert all(r["latency"]["n"] >= 1 and r["share_s"] is not None for r in doc["records"])


def test_cli_refuses_bad_limits(capsys):
    for flag in ("--max-memory-mb", "--max-total-seconds"):
        for value in ("0", "nan", "-5"):
            assert main(["profile", "--device", "cpu", "--model", "cifar_resnet18", flag, value]) == 1
            err = capsys.readouterr().err
            assert err.startswith("error:") and flag in err and len(err.strip().splitlines()) == 1


def test_cli_bounds_max_memory_mb_by_what_a_runner_may_report(tmp_path, capsys):
    """--max-memory-mb above 2**30 MiB was taken: a remote runner then reported a max_memory_bytes over 2**50, which
    is refused when it arrives, and the sweep stopped with the runner's error about a value the user never typed.
    Refused before any work, as the flag's other bad values; a device file's max_memory_mb too."""
    from us3l.devices.spec import load_device_file
    from us3l.errors import US3LError
    from us3l.profiler.remote import FACTS
    from us3l.validate import MAX_MEMORY_MB

    assert MAX_MEMORY_MB << 20 == FACTS["max_memory_bytes"][1] == 2**50  # one bound, in MiB and in bytes
    for value in ("1073741825", "1e12", "0.5", "1e-07"):
        assert main(["profile", "--device", "cpu", "--model", "cifar_resnet18", "--max-memory-mb", value,
                     "--out", str(tmp_path / "p")]) == 1
        assert capsys.readouterr().err == ("error: --max-memory-mb must be from 1 to 1073741824 MiB (2**50 bytes), "
                                           f"got {float(value)!r}\n")
    assert not (tmp_path / "p").exists()
    dev = tmp_path / "board.toml"
    dev.write_text('name = "board"\nbackends = ["onnx"]\nmax_memory_mb = 1073741825\n')
    with pytest.raises(US3LError, match=r"'max_memory_mb' must be from 1 to 1073741824 MiB "
                                        r"\(2\*\*50 bytes\), got 1073741825\.0$"):
        load_device_file(dev)
    dev.write_text('name = "board"\nbackends = ["onnx"]\nmax_memory_mb = 1073741824\n')
    assert load_device_file(dev).max_memory_mb == MAX_MEMORY_MB


@pytest.mark.parametrize("value", [2**30 + 1, 1e12, 0.5, 1e-07])
@pytest.mark.parametrize("on_spec", [False, True])
def test_run_sweep_bounds_max_memory_mb_as_the_cli_does(value, on_spec):
    """run_sweep called from Python took any positive max_memory_mb (its own or a DeviceSpec's built in Python), the
    CLI and device files 1 to 2**30 MiB: the one validator refuses it there too, worded as the CLI words it, before
    the model is touched (None here)."""
    from dataclasses import replace

    from us3l.devices.registry import get_device
    from us3l.errors import US3LError
    from us3l.profiler.sweep import run_sweep

    spec = get_device("cpu")
    kwargs = {}
    if on_spec:
        spec = replace(spec, max_memory_mb=value)
    else:
        kwargs["max_memory_mb"] = value
    with pytest.raises(US3LError, match=r"^max_memory_mb must be from 1 to 1073741824 MiB \(2\*\*50 bytes\), "
                                        rf"got {value!r}$".replace(".", r"\.").replace("+", r"\+")):
        run_sweep(None, "m", [1.0], spec, 32, **kwargs)  # type: ignore[arg-type]
