"""Environment fingerprint recorded with every profile: what machine, which runtimes, which clocks.

This module uses only the standard library (it is copied to remote devices next to ``remote_runner.py``), and
every probe is best effort: a value that cannot be read is left out, never an error.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions are recorded when installed.
RUNTIME_PACKAGES = ("torch", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "numpy")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _run(argv: list[str], timeout: float = 10.0) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or "").strip()
    return text if out.returncode == 0 and text else None


#: The CPU features that decide how fast INT8 and bfloat16 inference and training run, as ``/proc/cpuinfo`` names
#: them: x86 vector width and dot-product/matrix units (VNNI, AMX, AVX512-BF16), Arm NEON dot product, int8 matrix
#: multiply, bfloat16 and SVE. A profile's fingerprint lists those the CPU has (``cpu.isa``): an INT8 latency
#: measured on a CPU with VNNI does not carry over to one without.
ISA_FEATURES = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16",
    "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2",
)
#: Those of ``ISA_FEATURES`` that compute int8 dot products natively.
INT8_DOT_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def isa_features(cpuinfo_text: str) -> list[str]:
    """The ``ISA_FEATURES`` listed on the first ``flags`` (x86) or ``Features`` (Arm) line of ``/proc/cpuinfo``
    text, in ``ISA_FEATURES``'s order."""
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            have = set(value.split())
            return [f for f in ISA_FEATURES if f in have]
    return []


def cpu_info() -> dict[str, Any]:
    """CPU model, logical/physical core counts, cores usable by this process, governor, frequencies and the
    instruction-set features of ``ISA_FEATURES`` it has (``isa``; absent where ``/proc/cpuinfo`` lists none)."""
    info: dict[str, Any] = {"logical_cores": os.cpu_count()}
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    text = _read("/proc/cpuinfo") or ""
    cores: set[tuple[str, str]] = set()
    phys = core = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Hardware", "Model", "cpu model") and "model" not in info:
            info["model"] = value
        elif key == "physical id":
            phys = value
        elif key == "core id":
            core = value
            cores.add((phys, core))
    if cores:
        info["physical_cores"] = len(cores)
    isa = isa_features(text)
    if isa:
        info["isa"] = isa
    if "model" not in info:
        info["model"] = platform.processor() or platform.machine()
    gov = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if gov:
        info["governor"] = gov
    for name in ("scaling_cur_freq", "scaling_max_freq"):
        khz = _read(f"/sys/devices/system/cpu/cpu0/cpufreq/{name}")
        if khz and khz.isdigit():
            info[name.replace("scaling_", "") + "_mhz"] = int(khz) // 1000
    return info


def package_versions(names: tuple[str, ...] = RUNTIME_PACKAGES) -> dict[str, str]:
    """Installed versions (from package metadata, without importing the packages)."""
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def jetson_info() -> dict[str, Any] | None:
    """Tegra release, board model, power mode (``nvpmodel -q``) and clock state, on a Jetson; else None."""
    release = _read("/etc/nv_tegra_release")
    if release is None:
        return None
    info: dict[str, Any] = {"nv_tegra_release": release.splitlines()[0]}
    model = _read("/proc/device-tree/model")
    if model:
        info["model"] = model.replace("\x00", "")
    nvp = _run(["nvpmodel", "-q"])
    if nvp:
        info["nvpmodel"] = nvp
    clocks = _run(["jetson_clocks", "--show"])
    if clocks:
        info["jetson_clocks"] = clocks
    for devfreq in sorted(Path("/sys/class/devfreq").glob("*")) if Path("/sys/class/devfreq").is_dir() else []:
        cur = _read(str(devfreq / "cur_freq"))
        if cur and cur.isdigit():
            info.setdefault("devfreq_mhz", {})[devfreq.name] = int(cur) // 1_000_000
    return info


def nvidia_gpu_info() -> list[dict[str, str]] | None:
    """Name, driver, clocks, power state and limit of each NVIDIA GPU via ``nvidia-smi``; None without it."""
    fields = ["name", "driver_version", "clocks.sm", "clocks.mem", "clocks.max.sm", "pstate", "power.limit"]
    out = _run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"])
    if out is None:
        return None
    # no zip(strict=...): this module must also run on the Python 3.8 of older JetPack releases
    return [dict(zip(fields, [v.strip() for v in line.split(",")])) for line in out.splitlines()]  # noqa: B905


def collect() -> dict[str, Any]:
    """The full fingerprint of the machine this runs on."""
    fp: dict[str, Any] = {
        "hostname": platform.node(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "cpu": cpu_info(),
        "packages": package_versions(),
    }
    jetson = jetson_info()
    if jetson is not None:
        fp["jetson"] = jetson
    gpus = nvidia_gpu_info()
    if gpus is not None:
        fp["nvidia_gpus"] = gpus
    return fp


if __name__ == "__main__":  # pragma: no cover - handy on a device: python fingerprint.py
    import json

    print(json.dumps(collect(), indent=2))
