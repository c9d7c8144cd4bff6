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


@pytest.mark.parametrize("name", ["CPU", "GPU.1", "NPU", "MY_DEV.12", "AUTO", "AUTO:GPU,CPU", "AUTO:-GPU",
                                  "AUTO:GPU.1,-NPU", "HETERO:GPU,CPU", "MULTI:GPU.0,GPU.1", "BATCH:GPU",
                                  "BATCH:GPU(4)", "batch:gpu.1(16)"])
def test_the_forms_openvino_documents_are_well_formed(name: str) -> None:
    from us3l.deploy.backends.openvino_devices import syntax_problem

    assert syntax_problem(name) is None


@pytest.mark.parametrize(("name", "why"), [
    ("BATCH:CPU,GPU", "takes one device, e.g. BATCH:GPU(4)"),
    ("BATCH:GPU(0)", "takes one device and an optional batch size >= 1, e.g. BATCH:GPU(4)"),
    ("BATCH:GPU(4", "takes one device and an optional batch size >= 1, e.g. BATCH:GPU(4)"),
    ("BATCH", "needs a device list, e.g. BATCH:GPU(4)"),
    ("HETERO:CPU(2)", "lists 'CPU(2)', which is not a device name (letters, digits and '_', then an optional .N "
                      "index)"),
    ("MULTI:-CPU", "lists '-CPU', which is not a device name (letters, digits and '_', then an optional .N index)"),
    ("AUTO:", "has an empty entry in its device list"),
    ("GPU.X", "is not an OpenVINO device name (letters, digits and '_', then an optional .N index)"),
    ("GPU.1.2", "is not an OpenVINO device name (letters, digits and '_', then an optional .N index)"),
])
def test_other_forms_are_refused_with_the_reason(name: str, why: str) -> None:
    """Red-team: these passed the device-file check (one pattern of letters, digits and '.(),') and failed in
    compile_model, deep in a profile."""
    from us3l.deploy.backends.openvino_devices import syntax_problem

    assert syntax_problem(name) == why
    assert device_problem(name, ["CPU", "GPU"]) == f"OpenVINO device '{name}' {why}"


def test_an_index_is_a_device_id_the_plugin_has() -> None:
    """``CPU.1`` passed as 'CPU is listed' and failed in compile_model ("CPU plugin supports only '' as device
    id"); a lone GPU is listed as ``GPU`` and answers to ``GPU.0`` (its one id), not to ``GPU.1``."""
    from us3l.deploy.backends.openvino_devices import device_names, refusal

    names = device_names(["CPU", "GPU"], {"CPU": [""], "GPU": ["0"]})
    assert names == ["CPU", "GPU", "GPU.0"]
    assert device_problem("GPU.0", names) is None and device_problem("HETERO:GPU.0,CPU", names) is None
    assert device_problem("GPU.1", names) == "OpenVINO device 'GPU.1' is not present"
    assert device_problem("CPU.0", names) == "OpenVINO device 'CPU.0' is not present"
    assert device_problem("AUTO:CPU.1,GPU", names) == "OpenVINO device 'AUTO:CPU.1,GPU' names CPU.1, which is not " \
                                                      "present"
    assert refusal("CPU.1", ["CPU"], {"CPU": [""]}, "device file d.toml: ") == (
        "device file d.toml: OpenVINO device 'CPU.1' is not present (available: CPU; or AUTO, HETERO:<list>, "
        "MULTI:<list>, BATCH:<device> over those)")


def test_this_machines_openvino_refuses_cpu_1_in_one_line() -> None:
    from us3l.deploy.backends.openvino import device_ids, require_device, shared_core

    core = shared_core()
    if list(core.available_devices) != ["CPU"]:
        pytest.skip("the exact line is written for a CPU-only machine")
    assert device_ids(core) == {"CPU": [""]}
    with pytest.raises(US3LError) as info:
        require_device(core, "CPU.1", "device file d.toml: ")
    assert str(info.value) == ("device file d.toml: OpenVINO device 'CPU.1' is not present (available: CPU; or AUTO, "
                               "HETERO:<list>, MULTI:<list>, BATCH:<device> over those)")


def test_a_compile_openvino_refuses_is_one_line_naming_the_device(tiny_net: torch.nn.Module, tmp_path: Path) -> None:
    """BATCH:CPU(4) is present (the CPU is), but OpenVINO's batching plugin refuses the CPU's thread count: the
    several-line 'Exception from src/...' message became 'error: RuntimeError: ...\\n...' at the first width."""
    be = get_backend("openvino")
    art = be.export(tiny_net, torch.randn(1, 3, 8, 8), tmp_path)
    with pytest.raises(US3LError) as info:
        be.load(art.path, device="BATCH:CPU(4)", threads=1)
    assert str(info.value) == ("OpenVINO cannot compile the model for device 'BATCH:CPU(4)': Unsupported config key: "
                               "DEVICE_PROPERTIES")
    with pytest.raises(US3LError) as info:
        be.load(art.path, device="AUTO:-CPU", threads=1)
    assert str(info.value) == ("OpenVINO cannot compile the model for device 'AUTO:-CPU': Please, check environment "
                               "due to no supported devices can be used")


def test_openvinos_reason_loses_its_source_locations() -> None:
    from us3l.deploy.backends.openvino_devices import compile_failure

    message = ("Exception from src/inference/src/cpp/core.cpp:117:\nException from src/inference/src/dev/plugin.cpp:54:"
               "\nException from src/plugins/auto/src/auto_schedule.cpp:439:\n[AUTO] compile model failed, CPU.1:"
               "Exception from src/inference/src/dev/plugin.cpp:54:\nCheck 'device_id.empty()' failed at "
               "src/plugins/intel_cpu/src/config.cpp:247:\nCPU plugin supports only '' as device id\n\n; \n\n\n")
    assert compile_failure("AUTO:CPU.1", message) == ("OpenVINO cannot compile the model for device 'AUTO:CPU.1': "
                                                      "[AUTO] compile model failed, CPU.1: CPU plugin supports only "
                                                      "'' as device id")
