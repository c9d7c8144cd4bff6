"""The remote runner's own timed call (``profiler/remote_runner.py``, shipped to devices): the runtime's inference
on an input bound once (issue 18 item 4). Real onnxruntime / OpenVINO sessions on a tiny model; no thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from us3l.deploy.backends import get_backend
from us3l.profiler import remote_runner

CPU_BACKENDS = [b for b in ("onnx", "openvino") if get_backend(b).available()]


def load(name: str, path: Path) -> object:
    if name == "onnx":
        return remote_runner.OrtModel(str(path), 1)
    return remote_runner.OvModel(str(path), 1, "CPU", "fp32")


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_remote_runner_times_positive_floats_and_leaves_the_input(name: str, tmp_path: Path) -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    rng = np.random.default_rng(0)
    x, y = (np.ascontiguousarray(rng.standard_normal((1, 3, 8, 8)), dtype=np.float32) for _ in range(2))
    art = get_backend(name).export(net, torch.from_numpy(x), tmp_path, precision="fp32")
    model = load(name, art.path)
    x_before = x.copy()
    samples = [model.time_once(x) for _ in range(3)] + [model.time_once(y)] + [model.time_once(x)]
    assert all(isinstance(t, float) and t > 0 for t in samples)
    np.testing.assert_array_equal(x, x_before)
