"""Which OpenVINO device names us3l accepts (``--runtime-device``, a device file's ``openvino_device``).

The forms OpenVINO documents (https://docs.openvino.ai/2025/openvino-workflow/running-inference/
inference-devices-and-modes.html): a *physical* device, ``CPU``, ``GPU``, ``NPU``, with an optional ``.N`` index
(``GPU.1``); and the *virtual* devices ``AUTO`` (automatic device selection, optionally ``AUTO:GPU,CPU`` to name
the candidates in priority order or ``AUTO:-GPU`` to exclude one), ``HETERO:GPU,CPU`` (heterogeneous execution),
``MULTI:GPU,CPU`` (legacy multi-device execution) and ``BATCH:GPU`` / ``BATCH:GPU(4)`` (automatic batching on one
device, with an optional batch size). ``HETERO``, ``MULTI`` and ``BATCH`` without a device list are refused: us3l
passes no ``ov::device::priorities``, so OpenVINO would have nothing to run on. ``syntax_problem`` checks the form
(a device file, when it is read).

``Core.available_devices`` lists the physical devices of a machine only: ``CPU``, ``GPU`` (or ``GPU.0``, ``GPU.1``
when there are several), ``NPU``; virtual devices are never listed there, yet ``compile_model`` accepts them. A
device listed without an index answers to ``NAME.<id>`` only when its plugin has one device id
(``AVAILABLE_DEVICES``: a lone GPU is ``GPU`` and ``GPU.0``; the CPU has none, and ``CPU.1`` fails in
``compile_model``): ``device_names`` adds those. ``device_problem`` then accepts a listed device (``GPU`` also when
only ``GPU.0``/``GPU.1`` are listed), or a virtual one whose every named candidate is such a device (an ``AUTO``
exclusion need not be present). ``timing_problem`` refuses ``BATCH`` where latency is profiled (it would time the
batch timeout); an export verifies on it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

#: OpenVINO's virtual devices and whether each may be named without a device list.
VIRTUAL_DEVICES: dict[str, bool] = {"AUTO": True, "HETERO": False, "MULTI": False, "BATCH": False}
#: The forms, for messages.
FORMS = "CPU, GPU, GPU.1, NPU, AUTO, AUTO:GPU,CPU, AUTO:-GPU, HETERO:GPU,CPU, MULTI:GPU,CPU, BATCH:GPU, BATCH:GPU(4)"

_NAME = "letters, digits and '_', then an optional .N index"
_PHYSICAL = re.compile(r"[A-Z][A-Z0-9_]*(?:\.[0-9]+)?")
_BATCH = re.compile(r"(?P<device>[^()]*)(?:\((?P<size>[1-9][0-9]*)\))?")
#: The file:line locations OpenVINO puts before (and inside) its reason.
_LOCATION = re.compile(r"(?:Exception from \S+:\d+:|Check '.*' failed at \S+:\d+:)")
MAX_REASON = 300


def _split(device: str) -> tuple[str, str, list[str]]:
    """``(name, kind, items)``: the upper-case name, its part before ``:`` and the list after it."""
    name = device.strip().upper()
    kind, sep, rest = name.partition(":")
    return name, kind, rest.split(",") if sep else []


def _item_problem(kind: str, item: str) -> str | None:
    if kind == "BATCH":
        m = _BATCH.fullmatch(item)
        if m is None:
            return "takes one device and an optional batch size >= 1, e.g. BATCH:GPU(4)"
        item = m["device"]
    elif kind == "AUTO" and item.startswith("-"):
        item = item[1:]  # an exclusion
    if not item:
        return "has an empty entry in its device list"
    if item.partition(":")[0] in VIRTUAL_DEVICES:
        return f"nests the virtual device {item.partition(':')[0]}; name physical devices in the list"
    if not _PHYSICAL.fullmatch(item):
        return f"lists '{item}', which is not a device name ({_NAME})"
    return None


def syntax_problem(device: str) -> str | None:
    """Why ``device`` is not written in one of the forms OpenVINO documents (module docstring), None when it is;
    the reason reads after the name (``"needs a device list, e.g. HETERO:GPU,CPU"``)."""
    name, kind, items = _split(device)
    if kind not in VIRTUAL_DEVICES:
        if ":" in name:
            return f"is not an OpenVINO device name: only {', '.join(VIRTUAL_DEVICES)} take a device list"
        return None if _PHYSICAL.fullmatch(name) else f"is not an OpenVINO device name ({_NAME})"
    if not items:
        example = "BATCH:GPU(4)" if kind == "BATCH" else f"{kind}:GPU,CPU"
        return None if VIRTUAL_DEVICES[kind] else f"needs a device list, e.g. {example}"
    if kind == "BATCH" and len(items) > 1:
        return "takes one device, e.g. BATCH:GPU(4)"
    return next((p for p in (_item_problem(kind, i) for i in items) if p is not None), None)


def members(device: str) -> list[str]:
    """The physical devices a well-formed ``device`` names: itself, or its list less ``AUTO`` exclusions and
    ``BATCH`` sizes."""
    name, kind, items = _split(device)
    if kind not in VIRTUAL_DEVICES:
        return [name]
    return [i.split("(")[0] for i in items if not (kind == "AUTO" and i.startswith("-"))]


def device_names(available: Sequence[str], ids: Mapping[str, Sequence[str]]) -> list[str]:
    """The physical device names OpenVINO answers to: ``available`` (``Core.available_devices``) and
    ``NAME.<id>`` for a device listed without an index whose plugin has exactly one device id (``ids``: each
    device's ``AVAILABLE_DEVICES``)."""
    names = [d.upper() for d in available]
    for d in available:
        own = [str(i) for i in ids.get(d, ()) if str(i)]
        if "." not in d and len(own) == 1:
            names.append(f"{d.upper()}.{own[0].upper()}")
    return names


def _present(name: str, names: Sequence[str]) -> bool:
    return name in names or ("." not in name and any(n.split(".")[0] == name for n in names))


def device_problem(device: str, available: Sequence[str]) -> str | None:
    """Why OpenVINO cannot run on ``device`` here (``available``: ``device_names``, or ``Core.available_devices``),
    None when it can."""
    problem = syntax_problem(device)
    if problem is not None:
        return f"OpenVINO device '{device}' {problem}"
    names = [n.upper() for n in available]
    missing = [m for m in members(device) if not _present(m, names)]
    if not missing:
        return None
    if missing == [device.strip().upper()]:
        return f"OpenVINO device '{device}' is not present"
    return f"OpenVINO device '{device}' names {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} " \
           "not present"


def timing_problem(device: str) -> str | None:
    """Why a latency profile cannot time ``device``, None when it can. ``BATCH:...`` (automatic batching) holds
    each inference request until its batch is full or its timeout (``AUTO_BATCH_TIMEOUT``, 1000 ms by default)
    passes, and a profile times one request at a time: it would measure the timeout, not the network (``BATCH:CPU``
    also refuses the CPU thread count a profile pins). An export's verification runs on it all the same."""
    name, kind, _ = _split(device)
    if kind != "BATCH":
        return None
    inner = ", ".join(members(name)) or "the device"
    return (f"OpenVINO device '{device}' is automatic batching, which a latency profile cannot time: it times one "
            "request at a time, and each would wait for the batch timeout (AUTO_BATCH_TIMEOUT, 1000 ms by default); "
            f"profile on {inner} itself")


def describe_available(available: Sequence[str]) -> str:
    """The devices present, and the virtual ones that run on them, for an error message."""
    listed = ", ".join(available) or "none"
    return f"available: {listed}; or AUTO, HETERO:<list>, MULTI:<list>, BATCH:<device> over those"


def refusal(device: str, available: Sequence[str], ids: Mapping[str, Sequence[str]], where: str = "") -> str | None:
    """The one-line refusal of ``device`` on a machine whose OpenVINO lists ``available`` (with ``ids``, see
    ``device_names``), prefixed with ``where``; None when OpenVINO can run on it."""
    problem = device_problem(device, device_names(available, ids))
    return None if problem is None else f"{where}{problem} ({describe_available(available)})"


def compile_failure(device: str, message: str) -> str:
    """One line for a failed ``compile_model`` on ``device``: OpenVINO's reason without its source locations
    (``message`` is several lines of ``Exception from src/...:117:`` around it)."""
    lines = (line.strip() for line in _LOCATION.sub("\n", message).splitlines())
    reason = " ".join(line for line in lines if line.strip(" ;")) or "no reason given"
    reason = reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."
    return f"OpenVINO cannot compile the model for device '{device}': {reason}"
