"""``Runner.time_once`` times the runtime on inputs (and, for onnxruntime, an output) bound once (issue 18 item 4):
the binding must never leak into ``infer`` -- after timing calls ``infer`` still returns a fresh, correct array,
and the timed input array is never written. Real onnxruntime / OpenVINO sessions; no timing thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from us3l.deploy.backends import get_backend

CPU_BACKENDS = [b for b in ("onnx", "openvino") if get_backend(b).available()]


def reference(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_infer_stays_correct_around_timing_calls(name: str, tiny_net: torch.nn.Module, tmp_path: Path) -> None:
    backend = get_backend(name)
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((2, 3, 16, 16)).astype(np.float32) for _ in range(2))
    art = backend.export(tiny_net, torch.from_numpy(x), tmp_path, precision="fp32", dynamic_batch=True)
    ref_x, ref_y = reference(tiny_net, x), reference(tiny_net, y)
    x_before = x.copy()
    with backend.load(art.path, threads=1) as runner:
        times = [runner.time_once(x) for _ in range(3)]
        assert all(isinstance(t, float) and t > 0 for t in times)
        out_y = runner.infer(y)  # a different input right after timing x
        np.testing.assert_allclose(out_y, ref_y, rtol=1e-4, atol=1e-5)
        out_x = runner.infer(x)
        np.testing.assert_allclose(out_x, ref_x, rtol=1e-4, atol=1e-5)
        assert runner.time_once(x) > 0  # timing again after infer rebinds x
        np.testing.assert_allclose(out_y, ref_y, rtol=1e-4, atol=1e-5)  # earlier results are not overwritten
        np.testing.assert_allclose(out_x, ref_x, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(runner.infer(y), ref_y, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(x, x_before)  # the timed (shared) input was never written
        # a new array (another batch size: another output shape) and one that is not C-contiguous float32
        z = rng.standard_normal((5, 3, 16, 16)).astype(np.float32)
        f = np.asfortranarray(x, dtype=np.float64)
        for arr in (z, f, z):
            assert runner.time_once(arr) > 0
            np.testing.assert_allclose(runner.infer(arr), reference(tiny_net, arr), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_profiles_record_the_timed_call(name: str) -> None:
    from us3l.profiler.timers import interleaved_notes

    notes = interleaved_notes(name)
    assert isinstance(notes["timed_call"], str) and "bound once" in notes["timed_call"]
    assert interleaved_notes("torch") == {}
