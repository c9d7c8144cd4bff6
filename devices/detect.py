"""What this machine is: NVIDIA Jetson (Tegra), NVIDIA GPU with CUDA, which runtimes are importable."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

#: Where JetPack installs trtexec when it is not on PATH.
TRTEXEC_FALLBACKS = ("/usr/src/tensorrt/bin/trtexec", "/usr/local/tensorrt/bin/trtexec")
TEGRA_RELEASE = Path("/etc/nv_tegra_release")


def is_jetson(release_file: Path = TEGRA_RELEASE) -> bool:
    """True on an NVIDIA Jetson (L4T writes ``/etc/nv_tegra_release``)."""
    return release_file.is_file()


def jetson_model() -> str | None:
    """The board name from the device tree (e.g. ``NVIDIA Jetson Orin Nano Developer Kit``), if readable."""
    try:
        return Path("/proc/device-tree/model").read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def has_cuda_gpu() -> bool:
    """True when an NVIDIA GPU is visible: ``nvidia-smi -L`` lists one (or torch sees CUDA), or on a Jetson."""
    if is_jetson():
        return True
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
            if out.returncode == 0 and "GPU" in out.stdout:
                return True
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


def find_trtexec() -> str | None:
    """Path of the ``trtexec`` binary on this machine, or None."""
    found = shutil.which("trtexec")
    if found:
        return found
    for path in TRTEXEC_FALLBACKS:
        if Path(path).is_file():
            return path
    return None


def module_available(name: str) -> bool:
    """True when ``import name`` would find the module (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
