import json

import pytest

from us3l.cli import main


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "--model", "resnet19"], "error: unknown model 'resnet19'; choose one of:"),
        (["info", "--model", "cifar_resnet18", "--input-size", "0"],
         "error: --input-size must be 8 to 4096 pixels, got 0"),
        (["info", "--model", "vit_tiny", "--input-size", "200"], "error: vit_tiny does not run at input size 200 ("),
        (["info", "--model", "cifar_resnet18", "--width", "1.5"], "error: width must be in [0.25, 1], got 1.5"),
        (["info", "--model", "cifar_resnet18", "--width", "nan"], "error: width must be in [0.25, 1], got nan"),
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
        (["quickstart", "--threads", "0"], "error: --threads must be >= 1, got 0"),
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
