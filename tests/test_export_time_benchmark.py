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


@pytest.mark.slow  # a benchmark process
def test_a_failed_export_is_one_line_naming_the_error(tmp_path) -> None:
    """A failed child printed its whole stdout and stderr (the PHASES line, a blank line, the error); then a
    SystemExit line without 'error:' in front and the child's 'error:' in its middle."""
    from us3l.errors import US3LError

    with pytest.raises(US3LError) as err:
        et._run_one("cifar_resnet18", 0.5, "onnx", "torchscript", str(tmp_path / "no-such-run"))
    msg = str(err.value)
    assert "\n" not in msg and "error:" not in msg  # us3l's error policy puts the one 'error:' in front
    assert msg.startswith("export failed (cifar_resnet18 0.5 onnx torchscript, exit 1): no checkpoint found at ")
    assert "no-such-run" in msg


def _fake_run(model: str, width: float, backend: str, exporter: str, ckpt: str | None) -> dict[str, object]:
    wall = 2.0 if exporter == "dynamo" else 1.0
    return {"wall_s": wall, "cpu_s": wall, "phases": [{"name": "export", "wall_s": wall / 2, "cpu_s": wall / 2}]}


def test_the_ratio_comes_with_its_per_repeat_range(monkeypatch, capsys) -> None:
    """With --repeats 3 the dynamo/torchscript ratio was a ratio of medians alone."""
    walls = iter([1.0, 2.0, 2.6, 1.3, 1.0, 2.2])  # torchscript, dynamo; dynamo, torchscript; torchscript, dynamo

    def run(model: str, width: float, backend: str, exporter: str, ckpt: str | None) -> dict[str, object]:
        wall = next(walls)
        return {"wall_s": wall, "cpu_s": 1.0, "phases": []}

    monkeypatch.setattr(et, "_run_one", run)
    monkeypatch.setattr(et.sys, "argv", ["export_time.py", "--configs", "cifar_resnet18:0.5", "--repeats", "3"])
    assert et.main() == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("ratio dynamo/torchscript")]
    assert line == ("ratio dynamo/torchscript: wall 2.20x, cpu 1.00x, wall per repeat 2.00-2.20x, "
                    "cpu per repeat 1.00-1.00x")


def test_json_is_a_versioned_result_written_atomically(tmp_path, monkeypatch, capsys) -> None:
    """``--json`` wrote ``{"results", "argv"}`` with ``Path.write_text``: no kind, schema, tool version, commit,
    date or machine, and half a file if interrupted."""
    import json

    from us3l.io import check_schema
    from us3l.version import __version__

    out = tmp_path / "sub" / "export_time.json"
    monkeypatch.setattr(et, "_run_one", _fake_run)
    monkeypatch.setattr(et.sys, "argv", ["export_time.py", "--configs", "cifar_resnet18:0.5", "--json", str(out)])
    assert et.main() == 0
    doc = json.loads(out.read_text())
    check_schema(doc, "export_time_benchmark", 1, out)
    assert doc["tool_version"] == __version__ and doc["command"][-2:] == ["--json", str(out)]
    assert len(doc["git"]["commit"] or "") == 40 and doc["date"].endswith("Z") and doc["machine"]["cpu"]
    (entry,) = doc["results"]
    assert entry["ratio_dynamo_over_torchscript"] == {"wall": 2.0, "cpu": 2.0,
                                                      "per_repeat": {"wall": [2.0], "cpu": [2.0]}}
    assert [p.name for p in out.parent.iterdir()] == ["export_time.json"]  # no temporary left
    capsys.readouterr()
    assert et.main() == 0  # its own earlier result is replaced


@pytest.mark.parametrize("where", ["folder", "foreign file", "under a file"])
def test_a_bad_json_path_is_refused_before_any_export(tmp_path, monkeypatch, where: str) -> None:
    from us3l.errors import US3LError

    (tmp_path / "notes.txt").write_text("mine\n")
    path = {"folder": tmp_path, "foreign file": tmp_path / "notes.txt",
            "under a file": tmp_path / "notes.txt" / "x.json"}[where]
    ran = []
    monkeypatch.setattr(et, "_run_one", lambda *a: ran.append(a))
    monkeypatch.setattr(et.sys, "argv", ["export_time.py", "--json", str(path)])
    with pytest.raises(US3LError) as err:
        et.main()
    assert str(path) in str(err.value) and "\n" not in str(err.value) and not ran
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
