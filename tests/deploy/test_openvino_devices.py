"""OpenVINO device names: the physical devices ``Core.available_devices`` lists and the virtual ones (AUTO, HETERO,
MULTI, BATCH) that OpenVINO accepts although it never lists them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from us3l.deploy.backends import get_backend
from us3l.deploy.backends.openvino_devices import device_problem
from us3l.errors import US3LError

pytest.importorskip("openvino")


@pytest.mark.parametrize("name", ["CPU", "cpu", "AUTO", "AUTO:CPU", "AUTO:-GPU", "AUTO:CPU,-NPU", "HETERO:CPU",
                                  "MULTI:CPU", "BATCH:CPU", "BATCH:CPU(4)"])
def test_names_openvino_runs_on_a_cpu_only_machine_are_accepted(name: str) -> None:
    assert device_problem(name, ["CPU"]) is None


@pytest.mark.parametrize(("name", "why"), [
    ("GPU", "OpenVINO device 'GPU' is not present"),
    ("AUTO:GPU", "names GPU, which is not present"),
    ("HETERO:GPU,NPU", "names GPU, NPU, which are not present"),
    ("HETERO", "needs a device list, e.g. HETERO:GPU,CPU"),
    ("MULTI", "needs a device list"),
    ("HETERO:CPU,", "empty entry"),
    ("HETERO:AUTO", "nests the virtual device AUTO"),
    ("CPU:GPU", "is not an OpenVINO device name"),
])
def test_names_openvino_cannot_run_on_here_are_refused(name: str, why: str) -> None:
    assert why in (device_problem(name, ["CPU"]) or "")


def test_gpu_indices_match_the_listed_gpus() -> None:
    assert device_problem("GPU", ["CPU", "GPU.0", "GPU.1"]) is None
    assert device_problem("GPU.1", ["CPU", "GPU.0", "GPU.1"]) is None
    assert device_problem("HETERO:GPU.1,CPU", ["CPU", "GPU.0", "GPU.1"]) is None
    assert device_problem("AUTO:NPU,GPU", ["CPU", "GPU.0", "GPU.1"]) is not None


@pytest.mark.parametrize("name", ["AUTO", "HETERO:CPU", "MULTI:CPU", "auto"])
def test_virtual_devices_run_an_ir_with_the_real_cpu_plugin(
    tiny_net: torch.nn.Module, tmp_path: Path, name: str
) -> None:
    """These were refused as 'not present' (they are never in available_devices), though OpenVINO runs them; with
    --threads, given to the CPU plugin through DEVICE_PROPERTIES."""
    be = get_backend("openvino")
    x = torch.randn(1, 3, 8, 8)
    art = be.export(tiny_net, x, tmp_path)
    runner = be.load(art.path, device=name, threads=1)
    try:
        with torch.no_grad():
            want = tiny_net(x).numpy()
        np.testing.assert_allclose(runner.infer(x.numpy()), want, rtol=1e-4, atol=1e-4)
    finally:
        runner.close()


@pytest.mark.parametrize(("name", "cpu"), [
    ("AUTO", True), ("AUTO:-GPU", True), ("AUTO:GPU,CPU", True), ("HETERO:GPU,CPU", True), ("BATCH:CPU(4)", True),
    ("AUTO:GPU", False), ("AUTO:-CPU", False), ("HETERO:GPU", False), ("GPU", False),
])
def test_threads_reach_the_cpu_plugin_of_a_virtual_device(name: str, cpu: bool) -> None:
    """`--threads` was dropped for every device but CPU: under AUTO (which runs on the CPU here) the plugin used its
    own default thread count, so a profile's --threads was not what it measured with."""
    from us3l.deploy.backends.openvino import compile_config

    config = compile_config(2, name, "fp32")
    assert config.get("DEVICE_PROPERTIES") == ({"CPU": {"INFERENCE_NUM_THREADS": 2}} if cpu else None)
    assert "INFERENCE_NUM_THREADS" not in config and "DEVICE_PROPERTIES" not in compile_config(None, name, "fp32")


def test_a_virtual_device_over_an_absent_device_is_one_line(tiny_net: torch.nn.Module, tmp_path: Path) -> None:
    be = get_backend("openvino")
    art = be.export(tiny_net, torch.randn(1, 3, 8, 8), tmp_path)
    from us3l.deploy.backends.openvino import shared_core

    if "GPU" in {d.split(".")[0] for d in shared_core().available_devices}:
        pytest.skip("a GPU is present")
    with pytest.raises(US3LError, match=r"^OpenVINO device 'HETERO:GPU,CPU' names GPU, which is not present "
                                        r"\(available: CPU; or AUTO, HETERO:<list>"):
        be.load(art.path, device="HETERO:GPU,CPU")
    with pytest.raises(US3LError, match=r"^OpenVINO device 'HETERO' needs a device list"):
        be.load(art.path, device="HETERO")
