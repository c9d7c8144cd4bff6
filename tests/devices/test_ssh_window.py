"""Over a real sshd on 127.0.0.1: the device file's ``max_memory_mb`` reaches the remote runner, which then holds
one session at a time (the window), and the profile records the runner's peak memory. The widths' exports are
shared (``shared_exports`` in conftest.py)."""

from __future__ import annotations

import json

from us3l.cli import main


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
