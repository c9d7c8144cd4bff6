"""``us3l devices --check``: is each device reachable, and is its runtime there?"""

from __future__ import annotations

from dataclasses import dataclass

from us3l.devices.spec import DeviceSpec
from us3l.errors import US3LError

#: Python module that provides each backend's runtime.
RUNTIME_MODULES = {"onnx": "onnxruntime", "openvino": "openvino", "torch": "torch"}


@dataclass(frozen=True)
class CheckResult:
    """Outcome of checking one device: reachable, and which of its backends have a runtime."""

    device: str
    reachable: bool
    runtimes: dict[str, bool]
    message: str

    @property
    def ok(self) -> bool:
        return self.reachable and any(self.runtimes.values())

    def to_dict(self) -> dict[str, object]:
        return {"device": self.device, "ok": self.ok, "reachable": self.reachable, "runtimes": self.runtimes,
                "message": self.message}


def _local_runtime(backend: str, spec: DeviceSpec) -> bool:
    from us3l.devices.detect import find_trtexec, module_available

    if backend == "tensorrt":
        return find_trtexec() is not None
    if not module_available(RUNTIME_MODULES[backend]):
        return False
    if backend == "openvino" and spec.openvino_device != "CPU":
        return openvino_device_present(spec.openvino_device)
    return True


def openvino_device_present(name: str) -> bool:
    """Whether OpenVINO can run on device ``name`` on this machine: a listed device (``GPU``, ``NPU``; ``GPU.0``
    for a lone ``GPU``, never ``CPU.1``) or a virtual one over listed devices (``AUTO``, ``HETERO:GPU,CPU``; see
    ``us3l.deploy.backends.openvino_devices``)."""
    from us3l.deploy.backends.openvino import device_ids, shared_core
    from us3l.deploy.backends.openvino_devices import refusal

    core = shared_core()
    return refusal(name, list(core.available_devices), device_ids(core)) is None


def check_local(spec: DeviceSpec) -> CheckResult:
    """Hardware requirements (Jetson / CUDA) and runtimes on this machine."""
    from us3l.devices.detect import has_cuda_gpu, is_jetson

    if spec.requires_tegra and not is_jetson():
        return CheckResult(spec.name, False, {}, "not a Jetson here; reach it with --host ssh://user@board")
    if spec.requires_cuda and not has_cuda_gpu():
        return CheckResult(spec.name, False, {}, "no NVIDIA GPU here")
    runtimes = {b: _local_runtime(b, spec) for b in spec.backends}
    missing = [b for b, ok in runtimes.items() if not ok]
    what = {"openvino": f"openvino (device {spec.openvino_device})"} if spec.openvino_device != "CPU" else {}
    msg = "local" + (f"; missing runtime: {', '.join(what.get(b, b) for b in missing)}" if missing else "")
    return CheckResult(spec.name, True, runtimes, msg)


def check_ssh(spec: DeviceSpec) -> CheckResult:
    """Connect (host key checked) and probe each backend's runtime with the device's Python / trtexec."""
    from us3l.devices.ssh import SSHSession
    from us3l.profiler.trt_timers import find_trtexec

    python = spec.reach.python
    no_python = False
    try:
        with SSHSession(spec.reach) as s:
            runtimes: dict[str, bool] = {}
            for b in spec.backends:
                if b == "tensorrt":
                    runtimes[b] = find_trtexec(s) is not None
                elif b == "torch":
                    runtimes[b] = False  # eager torch is measured only locally
                else:
                    res = s.run([python, "-c", f"import {RUNTIME_MODULES[b]}"], timeout=60)
                    runtimes[b] = res.returncode == 0
                    no_python = no_python or res.returncode == 127  # the shell found no such program
    except US3LError as exc:
        return CheckResult(spec.name, False, {}, str(exc))
    missing = [b for b, ok in runtimes.items() if not ok]
    msg = spec.reach.url
    if no_python:  # the words us3l profile uses for the same device
        msg += f"; remote python '{python}' not found: set [reach] python in the device file"
    elif missing:
        hints = [f"pip install {RUNTIME_MODULES[b]}" for b in missing if b in RUNTIME_MODULES and b != "torch"]
        msg += f"; missing runtime: {', '.join(missing)}" + (f" (for {python}: {', '.join(hints)})" if hints else "")
    return CheckResult(spec.name, True, runtimes, msg)


def check_device(spec: DeviceSpec) -> CheckResult:
    """``check_local`` or ``check_ssh`` depending on how the device is reached."""
    return check_local(spec) if spec.reach.is_local else check_ssh(spec)
