import json

import pytest
import torch

from us3l.cli import main
from us3l.models import create_model
from us3l.slim import materialize


def test_help_works(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("models", "info", "version"):
        assert cmd in out


def test_info_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", "cifar_resnet18", "--width", "0.5", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "cifar_resnet18" and doc["width"] == 0.5
    assert doc["feature_dim"] == 256
    assert sum(r["macs"] for r in doc["layers"]) == doc["macs"]


def test_info_says_which_grid_width_a_typed_width_builds(capsys: pytest.CaptureFixture[str]) -> None:
    """Only --json gave the canonical width: the table's title read "at width 0.37" for the 0.3672 network."""
    assert main(["info", "--model", "cifar_resnet18", "--width", "0.37"]) == 0
    assert capsys.readouterr().out.splitlines()[0].strip().startswith(
        "cifar_resnet18 at width 0.37 = grid width 0.3672 (the same channels)")
    assert main(["info", "--model", "cifar_resnet18", "--width", "0.25"]) == 0
    assert "grid width" not in capsys.readouterr().out


def _hooked_macs(net: torch.nn.Module, size: int) -> int:
    """Conv and Linear MACs per image counted by forward hooks on a batch of two (an independent count)."""
    total = 0

    def hook(mod: torch.nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            total += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, torch.nn.Linear):
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    with torch.no_grad():
        net(torch.zeros(2, 3, size, size))
    for h in handles:
        h.remove()
    return total // 2


def test_info_counts_an_uncalibrated_resnet_whose_last_map_is_1x1(capsys: pytest.CaptureFixture[str]) -> None:
    """resnet18 at 32 px ends on 1x1 maps, where a batch of one has no batch statistics to normalise with."""
    assert main(["info", "--model", "resnet18", "--input-size", "32", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["input_shape"] == [1, 3, 32, 32]
    assert doc["macs"] == _hooked_macs(materialize(create_model("resnet18"), 1.0), 32)


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_info_builds_a_vit_for_the_input_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", "vit_tiny", "--input-size", "32", "--json"]) == 0
    small = json.loads(capsys.readouterr().out)
    assert main(["info", "--model", "vit_tiny", "--json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert small["input_shape"] == [1, 3, 32, 32] and full["input_shape"] == [1, 3, 224, 224]
    assert small["params"] == full["params"]  # the same weights: only the (fixed) position embedding differs
    assert 0 < small["macs"] < full["macs"] / 40  # 4 patches + cls against 196 + cls


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "--model", "resnet19"], "error: unknown model 'resnet19'; choose one of:"),
        (["info", "--model", "cifar_resnet18", "--input-size", "0"],
         "error: --input-size must be 8 to 4096 pixels, got 0"),
        (["info", "--model", "vit_tiny", "--input-size", "200"],
         "error: model 'vit_tiny': input size 200 is not a multiple of the patch size 16"),
        (["info", "--model", "vit_tiny", "--input-size", "4"], "error: --input-size must be 8 to 4096 pixels, got 4"),
        (["info", "--model", "cifar_resnet18", "--width", "1.5"],
         "error: --width: width must be in [0.25, 1], got 1.5"),
        (["info", "--model", "cifar_resnet18", "--width", "nan"],
         "error: --width must be a finite positive number, got nan"),
    ],
)
def test_bad_input_is_one_line_error(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(message)
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["quickstart", "--latency-ms", "inf"], "error: --latency-ms must be a finite positive number, got inf"),
        (["quickstart", "--latency-ms", "nan"], "error: --latency-ms must be a finite positive number, got nan"),
        (["quickstart", "--latency-ms", "-1"], "error: --latency-ms must be a finite positive number, got -1.0"),
        (["quickstart", "--max-seconds", "nan"], "error: --max-seconds must be a finite positive number, got nan"),
        (["quickstart", "--backend", "tflite"], "error: quickstart profiles and exports with onnx and/or openvino"),
        (["quickstart", "--config", "/nonexistent.yaml"], "error: config file not found: /nonexistent.yaml"),
        (["train", "--config", "/dev/null"], "error: config file /dev/null is not a regular file"),
        (["train", "--data", "/nonexistent-data"], "error: unknown data spec '/nonexistent-data' (valid: builtin,"),
        (["profile", "--device", "cpu", "--model", "cifar_resnet18", "--points", "0"],
         "error: --points must be >= 1 (0 is not allowed), got 0"),
        (["quickstart", "--points", "0"], "error: --points must be >= 1 (0 is not allowed), got 0"),
        (["profile", "--device", "cpu", "--model", "cifar_resnet18", "--points", "3", "--widths", "0.5"],
         "error: give either --widths or --points, not both"),
        (["train", "--config", "/"], "error: config file / is not a regular file"),
        # the model is built on the meta device before the config is printed: one line, nothing allocated
        (["train", "--set", "model_kwargs={base_channels: 12}"],
         "error: model 'cifar_resnet18': base_channels must be a positive multiple of 8, got 12\n"),
        (["train", "--set", "model_kwargs={base_channels: 100000000}"],
         "error: cannot build model 'cifar_resnet18' with model_kwargs {'base_channels': 100000000} (Storage size "
         "calculation overflowed"),
        (["train", "--set", "proj_hidden=100000000"],
         "error: model 'cifar_resnet18' with these settings needs 2235"),
        (["train", "--set", "image_size=100000"], "error: image_size must be >= 8 and <= 4096, got 100000\n"),
        (["train", "--set", "model=vit_tiny", "--set", "method=us3l_mocov3", "--set", "model_kwargs={}",
          "--set", "image_size=30"],
         "error: model 'vit_tiny': input size 30 is not a multiple of the patch size 16\n"),
        (
            ["train", "--set", 'x=!!python/object/apply:os.system ["touch PWNED"]'],
            "error: --set x=...: not a plain YAML value (could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'); quote it as a string or give a number, list or "
            "mapping",
        ),
    ],
)
def test_options_are_refused_before_any_work(
    args: list[str], message: str, tmp_path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing trained, measured or written (not even the folder)


def test_quickstart_checks_the_configured_network_before_any_work(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("proj_hidden: 100000000\n", encoding="utf-8")  # heads of terabytes: refused, not allocated
    assert main(["quickstart", "--config", str(cfg), "--out", str(tmp_path / "qs")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: model 'cifar_resnet18' with these settings needs ") and err.count("\n") == 1
    assert not (tmp_path / "qs").exists()


@pytest.mark.parametrize("command", [["quickstart"], ["profile", "--device", "cpu", "--model", "cifar_resnet18"]])
def test_a_backend_flag_of_blanks_is_refused_not_read_as_the_default(command: list[str], tmp_path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: ``quickstart --backend ''`` started training with the default backends."""
    assert main([*command, "--backend", " , ", "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err == "error: --backend names nothing, got ' , '\n"
    assert main([*command, "--backend", "", "--out", str(tmp_path / "o")]) == 2  # an empty value: the CLI's rule
    assert capsys.readouterr().err == f"error: --backend is given an empty value (see: us3l {command[0]} --help)\n"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["export", "--model", "cifar_resnet18", "--width", "0.5", "--out", ""], "--out"),  # wrote into the cwd
        (["export", "--model", "cifar_resnet18", "--width", "0.5", "--out="], "--out"),
        (["calibrate", "--ckpt", "RUN", "--data", " "], "--data"),  # used the checkpoint's data
        (["export", "--model", "cifar_resnet18", "--calib-data", "", "--out", "o"], "--calib-data"),  # not given
        (["profile", "show", ""], "an argument"),
        (["profile", "show", " ", "--json"], "an argument"),
        # after a switch the blank is an argument: it was called "--json is given an empty value" (2026-12-06)
        (["profile", "show", "--json", " "], "an argument"),
        (["eval", "--json", "", "--ckpt", "RUN"], "an argument"),
        (["select", "-q", ""], "an argument"),
        (["profile", "--device", "cpu", "--out", ""], "--out"),
    ],
)
def test_an_empty_value_is_a_usage_error_before_any_work(args: list[str], named: str, tmp_path, monkeypatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """An unset shell variable (`--out "$DIR"`) gave `--out ''`, which typer reads as the current folder; an
    empty --data or --calib-data was read as not given. Every empty value is refused, exit 2. The help named is
    the subcommand's (`us3l profile show ""` pointed to `us3l profile --help` until 2026-12-06)."""
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    command = " ".join(args[:2]) if args[:2] == ["profile", "show"] else args[0]
    assert capsys.readouterr().err == f"error: {named} is given an empty value (see: us3l {command} --help)\n"
    assert list(tmp_path.iterdir()) == []


def test_counts_just_under_a_unit_take_the_next_unit() -> None:
    # `us3l info` and `us3l models --costs` printed 999,500 params as "1e+03K" and 999.95M MACs as "1e+03M"
    from us3l.commands.models import _fmt_count

    assert [_fmt_count(n) for n in (999, 1000, 12_345, 999_499, 999_500, 999_950_000, 1_234_567_890)] == [
        "999", "1K", "12.3K", "999K", "1M", "1G", "1.23G"]
    assert _fmt_count(2_000_000_000_000) == "2000G"
