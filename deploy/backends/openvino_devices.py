"""Which OpenVINO device names us3l accepts (``--runtime-device``, a device file's ``openvino_device``).

``Core.available_devices`` lists the *physical* devices of this machine only: ``CPU``, ``GPU`` (or ``GPU.0``,
``GPU.1`` when there are several), ``NPU``. OpenVINO's *virtual* devices are never listed there, yet
``compile_model`` accepts them (https://docs.openvino.ai/2025/openvino-workflow/running-inference/
inference-devices-and-modes.html): ``AUTO`` (automatic device selection, optionally ``AUTO:GPU,CPU`` to name the
candidates in priority order or ``AUTO:-GPU`` to exclude one), ``HETERO:GPU,CPU`` (heterogeneous execution),
``MULTI:GPU,CPU`` (legacy multi-device execution) and ``BATCH:GPU`` / ``BATCH:GPU(4)`` (automatic batching). So a
name is accepted when it is a listed physical device (``GPU`` also when only ``GPU.0``/``GPU.1`` are listed,
``GPU.1`` when ``GPU`` is), or one of those virtual devices whose every named candidate is such a physical device
(an ``AUTO`` exclusion need not be present). ``HETERO``, ``MULTI`` and ``BATCH`` without a device list are refused:
us3l passes no ``ov::device::priorities``, so OpenVINO would have nothing to run on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: OpenVINO's virtual devices and whether each may be named without a device list.
VIRTUAL_DEVICES: dict[str, bool] = {"AUTO": True, "HETERO": False, "MULTI": False, "BATCH": False}

_BATCH_SIZE = re.compile(r"\(\d+\)$")


def _physical_present(name: str, available: Sequence[str]) -> bool:
    listed = {d.upper() for d in available}
    bases = {d.split(".")[0] for d in listed}
    return name in listed or name in bases or name.split(".")[0] in bases


def device_problem(device: str, available: Sequence[str]) -> str | None:
    """Why OpenVINO cannot run on ``device`` here (``available``: ``Core.available_devices``), None when it can."""
    name = device.strip().upper()
    kind, sep, rest = name.partition(":")
    if kind not in VIRTUAL_DEVICES:
        if sep:
            return f"'{device}' is not an OpenVINO device name (only {', '.join(VIRTUAL_DEVICES)} take a device list)"
        return None if _physical_present(name, available) else f"OpenVINO device '{device}' is not present"
    if not rest:
        if VIRTUAL_DEVICES[kind]:
            return None
        return f"OpenVINO device '{device}' needs a device list, e.g. {kind}:GPU,CPU"
    missing: list[str] = []
    for item in (part.strip() for part in rest.split(",")):
        if kind == "AUTO" and item.startswith("-"):
            continue  # an exclusion
        if kind == "BATCH":
            item = _BATCH_SIZE.sub("", item)
        if not item:
            return f"'{device}' has an empty entry in its device list"
        if item.partition(":")[0] in VIRTUAL_DEVICES:
            return f"'{device}' nests the virtual device {item.partition(':')[0]}; name physical devices in the list"
        if not _physical_present(item, available):
            missing.append(item)
    if missing:
        return f"OpenVINO device '{device}' names {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} " \
               "not present"
    return None


def describe_available(available: Sequence[str]) -> str:
    """The devices present, and the virtual ones that run on them, for an error message."""
    listed = ", ".join(available) or "none"
    return f"available: {listed}; or AUTO, HETERO:<list>, MULTI:<list>, BATCH:<device> over those"
