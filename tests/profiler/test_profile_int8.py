"""``us3l profile --precision int8``: refused with one line where the backend cannot time INT8 artifacts, and
before any model is built or data is read (issue 15). The profile of real INT8 graphs, and that it times the
exported graph byte for byte, is tested with the export in tests/deploy/test_deploy_int8.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from us3l.cli import main
from us3l.errors import US3LError
from us3l.profiler.sweep import check_int8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "torch"], "error: the torch backend times eager PyTorch in fp32; profile int8 with --backend "
                                 "onnx or openvino"),
        (["--backend", "onnx", "--calib-images", "8"],
         "error: --calib-images must be >= 32 (stable INT8 activation ranges), got 8"),
        (["--backend", "onnx"], "error: INT8 needs calibration images and a fresh --model has no training data: "
                                "pass --calib-data SPEC (e.g. builtin)"),
    ],
)
def test_int8_profile_refusals_are_one_line(args: list[str], message: str, tmp_path: Path, capsys) -> None:
    argv = ["profile", "--device", "cpu", "--model", "cifar_resnet18", "--widths", "0.25", "--precision", "int8",
            "--out", str(tmp_path), *args]
    assert main(argv) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == message
    assert not list(tmp_path.glob("*.json"))


def test_int8_profile_backends() -> None:
    with pytest.raises(US3LError, match=r"^profiling int8 on tensorrt is not implemented"):
        check_int8("tensorrt", object())
    with pytest.raises(US3LError, match="^int8 profiling needs calibration images"):
        check_int8("onnx", None)
    check_int8("openvino", object())


def test_unknown_precision_is_refused(tmp_path: Path, capsys) -> None:
    argv = ["profile", "--device", "cpu", "--model", "cifar_resnet18", "--precision", "int4", "--out", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "error: --precision must be fp32, fp16 or int8, got 'int4'"
