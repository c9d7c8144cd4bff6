"""Local sweeps with real onnxruntime / OpenVINO sessions and eager torch; memory definitions by hand."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from us3l.cli import main
from us3l.devices.registry import get_device
from us3l.errors import US3LError
from us3l.profiler.measure import MeasurementPolicy
from us3l.profiler.memory import activation_bytes, weight_bytes
from us3l.profiler.sweep import run_sweep

FAST = MeasurementPolicy(warmup=2, min_repeats=10, max_repeats=60, target_rel_ci=0.05, max_seconds=0.5, chunk=5)


def toy(width: float) -> nn.Module:
    c = max(1, int(8 * width))
    return nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()


def test_activation_and_weight_bytes_by_hand():
    x = torch.zeros(1, 3, 8, 8)
    # live sets: {input 768 B, conv out 256c B} then {conv out, relu out} -> max(768 + 256c, 512c)
    assert activation_bytes(toy(0.5), x) == max(768 + 256 * 4, 512 * 4)
    assert activation_bytes(toy(0.25), x) == max(768 + 256 * 2, 512 * 2)
    m = toy(0.5)  # conv 3->4, 3x3: 108 weights + 4 bias
    assert weight_bytes(m) == 112 * 4 and weight_bytes(m, "fp16") == 112 * 2
    inplace = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True))
    assert activation_bytes(inplace, x) == 768 + 256 * 4  # in-place output shares storage: counted once


@pytest.mark.parametrize("backend", ["onnx", "torch"])  # openvino: through the CLI, below
def test_local_sweep_real_runtimes(backend):
    from us3l.deploy.graph import fresh_model

    net = fresh_model("cifar_resnet18", base_channels=8)
    prof = run_sweep(net, "tiny", [0.25, 1.0], get_device("cpu"), 16, backend=backend, threads=1, policy=FAST)
    assert prof.backend == backend and prof.threads == 1 and prof.input_shape == (1, 3, 16, 16)
    assert [r.width for r in prof.records] == [0.25, 1.0] and prof.init_seed == 0
    assert prof.records[0].macs < prof.records[1].macs and prof.records[1].channels == 64
    # a fresh model has no BN statistics: timed frozen (never batch statistics), and the graph is named
    assert all(r.bn == "frozen-uncalibrated" for r in prof.records)
    exported = backend != "torch"
    assert all((r.graph_sha256 is not None) == exported for r in prof.records)
    assert all((r.graph_structure_sha256 is not None) == exported for r in prof.records)
    for r in prof.records:
        assert r.latency.n >= 10 and r.stop_reason in ("target", "max_repeats", "time_cap")
        assert r.latency.min_ms <= r.latency.p50_ms <= r.latency.p90_ms <= r.latency.p99_ms <= r.latency.max_ms
    assert prof.runtime_version
    # interleaved onnxruntime sessions must not spin-wait (idle sessions would steal the measured one's cores)
    assert prof.extra.get("onnxruntime_allow_spinning") is (False if backend == "onnx" else None)
    assert "cpu" in prof.fingerprint and prof.fingerprint["packages"]


def test_a_sweep_gives_torch_its_thread_count_back() -> None:
    """The eager timer pins PyTorch's threads to the sweep's count (process-wide); a program that called
    ``run_sweep(threads=1)`` then ran on one thread from there on."""
    from us3l.deploy.graph import fresh_model

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        net = fresh_model("cifar_resnet18", base_channels=8)
        prof = run_sweep(net, "tiny", [0.25], get_device("cpu"), 16, backend="torch", threads=1, policy=FAST)
        assert prof.threads == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow  # the CLI profile with OpenVINO and a plot; the torch and ONNX CLI profiles stay fast
def test_cli_profile_cpu_openvino_json_and_plot(tmp_path, capsys):
    """The local OpenVINO sweep, through ``us3l profile`` (what test_local_sweep_real_runtimes checks for onnx and
    torch, here on the CLI's JSON document), plus the plot and CSV."""
    rc = main(["profile", "--device", "cpu", "--model", "cifar_resnet18", "--widths", "0.25,1.0", "--backend",
               "openvino", "--threads", "1", "--max-seconds", "0.3", "--target-ci", "0.05", "--out", str(tmp_path),
               "--plot", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out)  # --json: stdout is exactly one JSON document
    assert doc["backend"] == "openvino" and doc["policy"]["max_seconds"] == 0.3 and doc["threads"] == 1
    assert doc["input_shape"] == [1, 3, 32, 32] and doc["init_seed"] == 0
    recs = doc["records"]
    assert [r["width"] for r in recs] == [0.25, 1.0] and recs[0]["macs"] < recs[1]["macs"]
    assert recs[1]["channels"] == 512  # cifar_resnet18's widest layer at width 1.0
    # a fresh model has no BN statistics: timed frozen (never batch statistics), and the graph is named
    assert all(r["bn"] == "frozen-uncalibrated" and r["graph_sha256"] and r["graph_structure_sha256"] for r in recs)
    for r in recs:
        lat = r["latency"]
        assert lat["n"] >= 10 and r["stop_reason"] in ("target", "max_repeats", "time_cap")
        assert lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert doc["runtime_version"] and "onnxruntime_allow_spinning" not in doc.get("extra", {})
    assert "cpu" in doc["fingerprint"] and doc["fingerprint"]["packages"]
    assert (tmp_path / "cifar_resnet18-cpu-openvino-fp32.png").stat().st_size > 1000
    assert (tmp_path / "cifar_resnet18-cpu-openvino-fp32.csv").is_file()


def test_cli_bad_arguments(capsys):
    assert main(["profile", "--device", "cpu", "--model", "cifar_resnet18", "--widths", "0.1"]) == 1
    assert capsys.readouterr().err.startswith("error:")
    assert main(["profile", "--device", "cpu", "--model", "cifar_resnet18", "--backend", "tensorrt"]) == 1
    assert "supports backends onnx, openvino, torch" in capsys.readouterr().err
    assert main(["profile", "--device", "cpu"]) == 1
    assert "--model NAME or --ckpt PATH" in capsys.readouterr().err
    for flag, value, said in (("--max-seconds", "0", "--max-seconds must be a finite positive number, got 0.0"),
                              ("--target-ci", "2", "--target-ci must be in (0, 1), got 2.0")):
        assert main(["profile", "--device", "cpu", "--model", "cifar_resnet18", flag, value]) == 1
        assert capsys.readouterr().err == f"error: {said}\n"


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_cli_profile_from_checkpoint_torch(tmp_path, capsys):
    from tests.run_folders import save_run
    from us3l.models import create_model

    net = create_model("cifar_resnet18", num_classes=0, base_channels=8)
    save_run(tmp_path / "run", net, "cifar_resnet18", {"base_channels": 8}, input_size=16)
    rc = main(["profile", "--device", "cpu", "--ckpt", str(tmp_path / "run"), "--backend", "torch", "--points", "2",
               "--threads", "1", "--max-seconds", "0.2", "--out", str(tmp_path / "p"), "--json"])
    assert rc == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["checkpoint_sha256"] and doc["input_shape"] == [1, 3, 16, 16] and len(doc["records"]) == 2
    # --json takes the table and the progress off, not the notes: they went missing too, among them the one that
    # says a --max-total-seconds budget left widths unprofiled (docs/cli.md: only --quiet silences notes)
    assert "widths stable in" in captured.err and "wrote " in captured.err


def test_widths_of_one_network_are_timed_once(capsys) -> None:
    from us3l.commands.profile import _one_per_network
    from us3l.models import create_model

    net = create_model("cifar_resnet18", num_classes=0, base_channels=16)
    assert _one_per_network(net, [1.0, 0.5, 0.5001, 0.25]) == [1.0, 0.5, 0.25]
    assert "note: width 0.5001 builds the same network as 0.5; timed once, as 0.5" in capsys.readouterr().err


@pytest.mark.slow  # a whole profile for one refusal; eval's and report's like refusals stay fast
def test_profile_plot_never_replaces_a_png_of_the_users(tmp_path, monkeypatch, capsys):
    """Red-team 2026-12-05: the profile's JSON and CSV were protected, <stem>.png silently replaced any file."""
    from PIL import Image

    import us3l.profiler.sweep

    argv = ["profile", "--device", "cpu", "--model", "cifar_resnet18", "--widths", "0.25", "--backend", "torch",
            "--threads", "1", "--max-seconds", "0.2", "--target-ci", "0.2", "--out", str(tmp_path), "--plot",
            "--quiet"]
    png = tmp_path / "cifar_resnet18-cpu-torch-fp32.png"
    Image.new("RGB", (4, 4), "red").save(png)  # a PNG of the user's (PIL: no Software text)
    mine = png.read_bytes()
    with monkeypatch.context() as m:  # refused before anything is measured
        m.setattr(us3l.profiler.sweep, "run_sweep", lambda *a, **k: pytest.fail("measured"))
        assert main(argv) == 1
    assert capsys.readouterr().err == f"error: refusing to replace {png}: it is not a us3l plot; choose another --out\n"
    assert png.read_bytes() == mine and [p.name for p in tmp_path.iterdir()] == [png.name]
    png.unlink()
    from us3l.io import is_us3l_png

    assert main(argv) == 0 and main(argv) == 0  # its own PNG is replaced
    capsys.readouterr()
    assert is_us3l_png(png.read_bytes()) and png.stat().st_size > 1000


def _ov_device_file(tmp_path, device: str):
    dev = tmp_path / "ov.toml"
    dev.write_text(f'name = "ov-odd"\nbackends = ["openvino"]\ninput_size = 8\nopenvino_device = "{device}"\n')
    return dev


@pytest.mark.parametrize("device", ["CPU.1", "HETERO:GPU.3,CPU"])
def test_profile_refuses_an_openvino_device_this_machine_lacks_before_any_work(tmp_path, capsys, device):
    """Red-team: `openvino_device = "CPU.1"` passed the device-file check and failed at the first width's compile
    with OpenVINO's several-line message ('error: RuntimeError: Exception from src/inference/...')."""
    pytest.importorskip("openvino")
    from us3l.deploy.backends.openvino import shared_core

    available = ", ".join(shared_core().available_devices)
    dev = _ov_device_file(tmp_path, device)
    out = tmp_path / "p"
    assert main(["profile", "--device-file", str(dev), "--model", "cifar_resnet18", "--widths", "0.25",
                 "--out", str(out)]) == 1
    what = "is not present" if device == "CPU.1" else "names GPU.3, which is not present"
    assert capsys.readouterr().err == (
        f"error: device file {dev}: OpenVINO device '{device}' {what} (available: {available}; or AUTO, "
        "HETERO:<list>, MULTI:<list>, BATCH:<device> over those)\n")
    assert not out.exists()


@pytest.mark.parametrize("device", ["BATCH:CPU", "BATCH:CPU(4)"])
def test_profile_refuses_automatic_batching_before_any_work(tmp_path, capsys, monkeypatch, device):
    """`BATCH:GPU(4)` would have each timed request wait for its batch timeout (1000 ms: the profile measured the
    timeout); `BATCH:CPU(4)` failed at the first width's compile on the thread count ('Unsupported config key:
    DEVICE_PROPERTIES'). Refused in one line before the model is built, over SSH as well."""
    import us3l.commands.profile

    monkeypatch.setattr(us3l.commands.profile, "_load_model", lambda *a: pytest.fail("the model was built"))
    dev = _ov_device_file(tmp_path, device)
    out = tmp_path / "p"
    for host in ([], ["--host", "ssh://u@h:22"]):
        assert main(["profile", "--device-file", str(dev), "--model", "cifar_resnet18", "--widths", "0.25",
                     "--out", str(out), *host]) == 1
        assert capsys.readouterr().err == (
            f"error: device file {dev}: OpenVINO device '{device}' is automatic batching, which a latency profile "
            "cannot time: it times one request at a time, and each would wait for the batch timeout "
            "(AUTO_BATCH_TIMEOUT, 1000 ms by default); profile on CPU itself\n")
    assert not out.exists()


def test_automatic_batching_is_refused_only_where_openvino_is_timed() -> None:
    """A device file with `BATCH:GPU(4)` still reads (an export verifies on it) and profiles its other backends."""
    from us3l.devices.spec import spec_from_dict
    from us3l.profiler.sweep import check_timed_device

    spec = spec_from_dict({"name": "b", "backends": ["onnx", "openvino"], "openvino_device": "batch:gpu(4)"}, "b.toml")
    check_timed_device(spec, ["onnx"])
    with pytest.raises(US3LError, match=r"^device file b.toml: OpenVINO device 'BATCH:GPU\(4\)' is automatic "
                                        r"batching, .*; profile on GPU itself$"):
        check_timed_device(spec, ["onnx", "openvino"])
