"""Device files: built-ins, parsing and validation errors, registry lookups, local requirement errors."""

from __future__ import annotations

import json

import pytest

from us3l.cli import main
from us3l.devices.registry import get_device, list_devices
from us3l.devices.spec import load_device_file, parse_host
from us3l.errors import US3LError

BUILTINS = {"cpu", "cuda", "jetson-orin-nano", "jetson-agx-orin", "jetson-xavier-nx", "raspberry-pi-5",
            "intel-igpu", "intel-npu"}


def test_builtins_load():
    specs = {s.name: s for s in list_devices()}
    assert BUILTINS <= set(specs)
    assert specs["cpu"].backends == ("onnx", "openvino", "torch") and specs["cpu"].reach.is_local
    assert specs["jetson-orin-nano"].backends == ("tensorrt",) and specs["jetson-orin-nano"].precision == "fp16"
    assert specs["jetson-orin-nano"].requires_tegra and specs["cuda"].requires_cuda
    assert specs["raspberry-pi-5"].reach.kind == "ssh"
    assert specs["intel-npu"].openvino_device == "NPU"


def test_parse_host():
    assert parse_host("ssh://pi@board:2222") == ("ssh", "pi", "board", 2222)
    assert parse_host("ssh://board") == ("ssh", None, "board", 22)
    assert parse_host("local")[0] == "local"
    for bad in ("pi@board", "ssh://", "ssh://b:notaport", "ssh://b/path"):
        with pytest.raises(ValueError):
            parse_host(bad)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('name = "x"\n', "'name' and 'backends' are required"),
        ('name = "x"\nbackends = ["cuda-magic"]\n', "unknown backend 'cuda-magic'"),
        ('name = "x"\nbackends = ["onnx"]\nbatch = 0\n', "'batch' must be >= 1"),
        ('name = "x"\nbackends = ["onnx"]\nbatch = true\n', "'batch' must be int"),
        ('name = "x"\nbackends = ["onnx"]\ncolour = "red"\n', "unknown key"),
        ('name = "x"\nbackends = ["onnx"]\n[measure]\ntarget_rel_ci = 2.0\n', "target_rel_ci must be in"),
        ('name = "x"\nbackends = ["onnx"]\n[reach]\nhost = "pi@board"\n', "host must be"),
        ('name = "X Y"\nbackends = ["onnx"]\n', "must be lowercase"),
        ('name = "x"\nbackends = ["onnx"\n', "not valid TOML"),
    ],
)
def test_device_file_errors(tmp_path, text, match):
    p = tmp_path / "d.toml"
    p.write_text(text)
    with pytest.raises(US3LError, match=match):
        load_device_file(p)


def test_user_folder_and_device_file(tmp_path, monkeypatch):
    monkeypatch.setenv("US3L_DEVICES_DIR", str(tmp_path))
    (tmp_path / "mine.toml").write_text(
        'name = "mine"\nbackends = ["onnxruntime"]\nthreads = 2\n[reach]\nhost = "ssh://me@box:2200"\n'
        'python = "/opt/py/bin/python3"\n'
    )
    spec = get_device("mine")
    assert spec.backends == ("onnx",) and spec.reach.port == 2200 and spec.reach.python == "/opt/py/bin/python3"
    assert spec.with_host("ssh://other@h").reach.url == "ssh://other@h:22"
    with pytest.raises(US3LError, match="unknown device 'nope'.*known: .*cpu"):
        get_device("nope")
    assert get_device(None, tmp_path / "mine.toml").name == "mine"


def test_cli_devices_json_and_errors(capsys):
    assert main(["devices", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert BUILTINS <= {d["name"] for d in doc["devices"]}
    assert main(["devices", "--device", "cpu", "--check", "--json"]) == 0
    (cpu,) = json.loads(capsys.readouterr().out)["devices"]
    assert cpu["check"]["ok"] and cpu["check"]["runtimes"]["onnx"]
    # a failed check is a non-zero exit (scripts can test reachability), with the reason in the table
    assert main(["devices", "--device", "jetson-orin-nano", "--check"]) == 1
    assert "not a Jetson here" in capsys.readouterr().out  # the table is the result: stdout
    assert main(["profile", "--device", "nope", "--model", "cifar_resnet18"]) == 1
    assert "unknown device 'nope'" in capsys.readouterr().err


def test_jetson_and_cuda_without_hardware_say_how_to_reach(capsys):
    from us3l.devices.detect import has_cuda_gpu, is_jetson

    if is_jetson() or has_cuda_gpu():
        pytest.skip("this machine has the hardware")
    for dev in ("jetson-orin-nano", "cuda"):
        assert main(["profile", "--device", dev, "--model", "cifar_resnet18", "--widths", "0.25"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--host ssh://user@" in err


@pytest.mark.parametrize("key", ["connect_timeout_s", "command_timeout_s"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1.0", "0"])
def test_non_finite_or_negative_timeouts_are_refused(tmp_path, key, value):
    p = tmp_path / "d.toml"
    p.write_text(f'name = "x"\nbackends = ["onnx"]\n[reach]\nhost = "ssh://pi@board"\n{key} = {value}\n')
    shown = repr(float(value))
    with pytest.raises(US3LError) as info:
        load_device_file(p)
    assert str(info.value) == f"device file {p} [reach]: '{key}' must be a finite number of seconds > 0, got {shown}"


@pytest.mark.parametrize(("key", "value"), [("max_seconds", "nan"), ("max_seconds", "inf"), ("warmup", "nan")])
def test_non_finite_measurement_policy_is_refused(tmp_path, key, value):
    p = tmp_path / "d.toml"
    p.write_text(f'name = "x"\nbackends = ["onnx"]\n[measure]\n{key} = {value}\n')
    with pytest.raises(US3LError) as info:
        load_device_file(p)
    assert str(info.value) == f"device file {p} [measure]: {key} must be a finite number, got {float(value)!r}"


def test_device_names_must_be_one_short_path_component(tmp_path, monkeypatch, capsys):
    from us3l.cli import main
    from us3l.devices.registry import get_device
    from us3l.validate import NAME_RULE

    long = "a" * 300
    p = tmp_path / "d.toml"
    p.write_text(f'name = "{long}"\nbackends = ["onnx"]\n')
    with pytest.raises(US3LError) as info:
        load_device_file(p)
    assert str(info.value) == f"device file {p}: name must be a name ({NAME_RULE}), got '{'a' * 40}…(300 characters)'"
    for bad in ("../../ESCAPED", "/abs", ".", "..", "a/b", long):
        with pytest.raises(US3LError, match=r"^--device must be a name \("):
            get_device(bad)
    # refused up front: before any model is built or measured
    monkeypatch.chdir(tmp_path)
    assert main(["profile", "--device", long, "--model", "cifar_resnet18", "--out", "p"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --device must be a name (") and err.count("\n") == 1
    assert not (tmp_path / "p").exists()


def test_max_memory_mb_in_device_files(tmp_path):
    base = 'name = "board"\nbackends = ["onnx"]\n'
    good = tmp_path / "good.toml"
    good.write_text(base + "max_memory_mb = 1536\n")
    spec = load_device_file(good)
    assert spec.max_memory_mb == 1536 and spec.to_dict()["max_memory_mb"] == 1536
    assert get_device("raspberry-pi-5").max_memory_mb == 1536 and get_device("cpu").max_memory_mb is None
    for value in ("0", "-1", "nan", "inf", "true", '"2G"'):
        bad = tmp_path / "bad.toml"
        bad.write_text(base + f"max_memory_mb = {value}\n")
        with pytest.raises(US3LError, match="max_memory_mb"):
            load_device_file(bad)
