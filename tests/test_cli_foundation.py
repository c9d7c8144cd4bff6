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
        (["info", "--model", "cifar_resnet18", "--width", "1.5"], "error: width must be in [0.25, 1], got 1.5"),
        (["info", "--model", "cifar_resnet18", "--width", "nan"], "error: width must be in [0.25, 1], got nan"),
    ],
)
def test_bad_input_is_one_line_error(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(message)
    assert "Traceback" not in err and len(err.splitlines()) == 1
