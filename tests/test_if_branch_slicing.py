"""benchmarks/if_branch_slicing.py: the switchable test file computes what the static files compute, in real
onnxruntime and OpenVINO sessions, and onnxruntime folds its slices (the property the docs report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.script_module import load_script

ib = load_script("benchmarks/if_branch_slicing.py", "if_branch_slicing")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], np.ndarray]:
    rng = np.random.default_rng(0)
    weights = [(rng.standard_normal((8, 3 if i == 0 else 8, 3, 3)) * 0.1).astype(np.float32) for i in range(2)]
    channels = [8, 4, 2]
    tmp = tmp_path_factory.mktemp("ifs")
    onnx.save(ib.switchable_model(weights, channels, 6), tmp / "sw.onnx")
    statics = []
    for k, c in enumerate(channels):
        statics.append(tmp / f"st{k}.onnx")
        onnx.save(ib.static_model(weights, c, 6), statics[-1])
    return tmp / "sw.onnx", statics, rng.standard_normal((1, 3, 6, 6)).astype(np.float32)


def test_switchable_equals_static_per_width_in_onnxruntime_and_slices_fold(models, tmp_path: Path) -> None:
    import onnxruntime as ort

    sw, statics, x = models
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    s = ort.InferenceSession(str(sw), so, providers=["CPUExecutionProvider"])
    outs = []
    for k, st in enumerate(statics):
        a = s.run(None, {"X": x, "idx": np.array(k, np.int64)})[0]
        b = ort.InferenceSession(str(st), providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
        assert a.shape == (1, [8, 4, 2][k], 1, 1)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        outs.append(a)
    assert not np.allclose(outs[1], outs[0][:, :4])  # the widths really differ (narrower inputs to layer 2)
    assert ib.count_ops(onnx.load(str(sw)).graph, "Slice") == 2 * 3
    assert ib.count_ops(onnx.load(str(tmp_path / "opt.onnx")).graph, "Slice") == 0


def test_switchable_equals_static_per_width_in_openvino(models) -> None:
    import openvino as ov

    sw, statics, x = models
    core = ov.Core()
    req = core.compile_model(core.read_model(str(sw)), "CPU").create_infer_request()
    for k, st in enumerate(statics):
        a = next(iter(req.infer({"X": x, "idx": np.array(k, np.int64)}).values()))
        b = next(iter(core.compile_model(core.read_model(str(st)), "CPU").create_infer_request()
                      .infer({"X": x}).values()))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_binding_idx_before_compiling_gives_each_width_in_openvino(models) -> None:
    import openvino as ov

    sw, statics, x = models
    core = ov.Core()
    for k, st in enumerate(statics):
        bound = ib.bind_width(core.read_model(str(sw)), k)
        assert [p.get_friendly_name() for p in bound.get_parameters()] == ["X"]
        a = next(iter(core.compile_model(bound, "CPU").create_infer_request().infer({"X": x}).values()))
        b = next(iter(core.compile_model(core.read_model(str(st)), "CPU").create_infer_request()
                      .infer({"X": x}).values()))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # a benchmark run
def test_a_tiny_run_prints_every_ratio_with_its_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The per-width switchable/static ratios and the switch cost were printed without any spread; every run left
    its folder of ONNX files (if_slicing_*) in the temporary folder. Run in this process (``main`` with its command
    line; the temporary folder is ``tmp_path``): a fresh interpreter paid numpy's, onnx's and both runtimes'
    imports again."""
    import re
    import sys
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["benchmarks/if_branch_slicing.py", "--channels", "8", "--layers", "1",
                                      "--size", "6", "--rounds", "2", "--calls", "5"])
    ib.main()
    out = capsys.readouterr().out
    assert not list(tmp_path.glob("if_slicing_*"))
    rows = [ln.split() for ln in out.splitlines() if re.match(r"\s*(onnxruntime|openvino|ov-bound) +[\d.]+ ", ln)]
    assert len(rows) == 9  # 3 runtimes x 3 widths
    for row in rows:
        lo, hi = (float(v) for v in row[-1].split("-"))
        assert lo <= float(row[-2]) <= hi, row
    # 2 rounds: too few for a 95 % interval of a median, so no confidence is claimed for the bounds
    switches = re.findall(r"\(ratio (\d+\.\d+), (\d+\.\d+)-(\d+\.\d+) fewer than 6 rounds\)", out)
    assert len(switches) == 3 and all(float(lo) <= float(r) <= float(hi) for r, lo, hi in switches)
    assert "# fewer than 6 rounds: each median's interval is the range of its rounds" in out


def test_the_switch_costs_confidence_is_the_union_bound_and_never_negative() -> None:
    """It printed 'at -5 %' for 20 widths (1 - 0.05 x 21)."""
    assert ib.switch_confidence(3, 6) == "at 80 %"
    assert ib.switch_confidence(3, 5) == "fewer than 6 rounds"  # the default --rounds
    assert ib.switch_confidence(18, 6) == "at 5 %"
    assert ib.switch_confidence(20, 6) == "no joint confidence"
