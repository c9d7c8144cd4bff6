"""``us3l profile --backend LIST``: one sweep and one profile file per backend (times each precision), every entry
checked against the device before any model is built, as ``--precision LIST`` and ``quickstart --backend``."""

from __future__ import annotations

from pathlib import Path

import pytest

from us3l.cli import main
from us3l.commands.profile import parse_backends
from us3l.devices.registry import get_device
from us3l.errors import US3LError
from us3l.profiler.profile_file import load_profile

FAST = ["--threads", "1", "--max-seconds", "0.2", "--target-ci", "0.2"]


def test_parse_backends() -> None:
    cpu = get_device("cpu", None)
    assert parse_backends(cpu, []) == [cpu.backends[0]]  # none given: the device's first
    assert parse_backends(cpu, ["openvino, onnx"]) == ["openvino", "onnx"]
    assert parse_backends(cpu, ["onnx", "torch"]) == ["onnx", "torch"]  # repeated flags
    with pytest.raises(US3LError) as info:
        parse_backends(cpu, ["onnx,ort"])  # an alias of the same runtime
    assert str(info.value) == "--backend lists onnx more than once, got 'onnx, ort'"
    with pytest.raises(US3LError) as info:
        parse_backends(cpu, ["onnx", "tensorrt"])
    assert str(info.value) == "device 'cpu' supports backends onnx, openvino, torch, not 'tensorrt'"


def test_every_alias_a_device_file_accepts_is_accepted_by_backend() -> None:
    """A device file may list `ov` or `trtexec` (devices.spec aliases), but `us3l profile --backend ov` said
    `device 'cpu' supports backends onnx, openvino, torch, not 'ov'`: the flag had its own, shorter alias table."""
    cpu = get_device("cpu", None)
    assert parse_backends(cpu, ["ov", "ORT"]) == ["openvino", "onnx"]
    assert parse_backends(cpu, ["ORT"]) == ["onnx"]


def test_a_bad_entry_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    out = tmp_path / "p"
    argv = ["profile", "--device", "cpu", "--model", "cifar_resnet18", "--widths", "0.25",
            "--backend", "onnx,torch", "--precision", "int8", "--out", str(out)]
    assert main(argv) == 1
    assert capsys.readouterr().err == ("error: the torch backend times eager PyTorch in fp32; profile int8 with "
                                       "--backend onnx or openvino\n")
    assert not out.exists()


@pytest.mark.slow  # 2.5 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_list_writes_one_profile_per_backend(tmp_path: Path, capsys) -> None:
    dev = tmp_path / "tiny.toml"  # 8 px keeps the sweeps cheap
    dev.write_text('name = "tiny"\nbackends = ["onnx", "openvino"]\ninput_size = 8\n')
    out = tmp_path / "p"
    argv = ["profile", "--device-file", str(dev), "--model", "cifar_resnet18", "--widths", "0.25,0.5",
            "--backend", "openvino", "--backend", "onnx", "--out", str(out), *FAST]
    assert main(argv) == 0
    captured = capsys.readouterr()
    titles = [line.strip() for line in captured.out.splitlines() if line.strip().startswith("cifar_resnet18 on tiny")]
    assert titles == [
        "cifar_resnet18 on tiny (openvino, fp32, input 1x3x8x8, 1 threads)",
        "cifar_resnet18 on tiny (onnx, fp32, input 1x3x8x8, 1 threads)",
    ]  # in the order asked
    for be in ("openvino", "onnx"):
        prof = load_profile(out / f"cifar_resnet18-tiny-{be}-fp32.json")
        assert prof.backend == be and sorted(r.width for r in prof.records) == [0.25, 0.5]
