"""benchmarks/export_time.py: its --configs entries (MODEL:WIDTH) are checked with the arguments."""

from __future__ import annotations

import argparse

import pytest

from tests.script_module import load_script

et = load_script("benchmarks/export_time.py", "export_time_bench")


def test_configs_are_model_width_pairs() -> None:
    """``--configs foo`` was 'error: IndexError: list index out of range' (exit 1)."""
    assert et.CONFIGS("cifar_resnet18:1.0, resnet50:0.5") == [("cifar_resnet18", 1.0), ("resnet50", 0.5)]
    assert et.CONFIGS(et._show_configs(et.DEFAULT_CONFIGS)) == et.DEFAULT_CONFIGS
    for bad, msg in (("foo", "expects MODEL:WIDTH (e.g. cifar_resnet18:0.5), got 'foo'"),
                     ("resnet50:1:0", "expects MODEL:WIDTH (e.g. cifar_resnet18:0.5), got 'resnet50:1:0'"),
                     ("resnet50:", "expects MODEL:WIDTH (e.g. cifar_resnet18:0.5), got 'resnet50:'"),
                     ("resnet50:1.5", "must be in (0, 1], got '1.5'"),
                     ("resnet50:1,resnet50:1.0", "lists resnet50:1.0 twice, got 'resnet50:1,resnet50:1.0'")):
        with pytest.raises(argparse.ArgumentTypeError) as err:
            et.CONFIGS(bad)
        assert str(err.value) == msg
    with pytest.raises(argparse.ArgumentTypeError, match=r"^unknown model 'foo'; choose from .*\(in 'foo:1,a:1'\)$"):
        et.CONFIGS("foo:1,a:1")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^unknown exporter 'jit'; choose from torchscript, dynamo$"):
        et.EXPORTERS("jit")


def test_a_failed_export_is_one_line_naming_the_error(tmp_path) -> None:
    """A failed child printed its whole stdout and stderr (the PHASES line, a blank line, the error)."""
    with pytest.raises(SystemExit) as err:
        et._run_one("cifar_resnet18", 0.5, "onnx", "torchscript", str(tmp_path / "no-such-run"))
    msg = str(err.value.code)
    assert "\n" not in msg
    assert msg.startswith("export failed (cifar_resnet18 0.5 onnx torchscript, exit 1): error: ")
    assert "no-such-run" in msg
