"""The TensorRT releases us3l builds engines for, and what differs between them for ``trtexec`` and the ONNX parser.

Jetson boards are tied to their JetPack: Xavier NX and AGX Xavier stop at JetPack 5 (TensorRT 8.5.2); Orin boards
run JetPack 5.1 (TensorRT 8.5.2), JetPack 6.0 (TensorRT 8.6.2) or JetPack 6.1/6.2 (TensorRT 10.3), so an Orin's
release is read from its trtexec, not assumed; desktop GPUs have 8.6 or 10.x. What us3l relies on, per release:

=========  ==============================  ==============================  ================
release    build without timing runs       builder workspace limit         ONNX opset (max)
=========  ==============================  ==============================  ================
8.5        ``--buildOnly``                 ``--memPoolSize=workspace:N``   17
8.6        ``--skipInference``             ``--memPoolSize=workspace:N``   17
10.x       ``--skipInference``             ``--memPoolSize=workspace:N``   18 and more
=========  ==============================  ==============================  ================

Sources (also listed in docs/deploy.md): trtexec's ``--help`` of TensorRT 8.5 lists ``--buildOnly`` ("Exit after the
engine has been built and skip inference perf measurement") and ``--memPoolSize=poolspec`` with sizes in MiB (no
unit suffix), later releases list the same option as ``--skipInference``; NVIDIA's "Migrating trtexec Usage from
TensorRT 8.x to 10.x" (https://docs.nvidia.com/deeplearning/tensorrt/10.16.1/api/tensorrt-8x-to-10x-trtexec.html)
removes ``--workspace`` in 10.x in favour of ``--memPoolSize=workspace:<size>``, and 10.x's help accepts the base-2
suffixes B/K/M/G and reads a size without one as MiB (so us3l writes plain MiB for every release);
onnx-tensorrt's ``docs/operators.md`` on the release/8.5-GA and release/8.6-GA branches says
"supports operators up to Opset 17" (9.2: 19; 10.x: a range from opset 9 that includes 18). TensorRT 11 removed
``--fp16`` and ``--int8`` ("Migrating trtexec Usage from TensorRT 10.x to 11.x",
https://docs.nvidia.com/deeplearning/tensorrt/11.0.0/api/migration/tensorrt-10x-to-11x-trtexec.html), which the
engines us3l builds depend on, so 11 is refused, as are releases before 8.5 and the 9.x series (a limited release).
8.6's samples/common/sampleOptions.cpp still reads ``--buildOnly``, as a deprecated alias of ``--skipInference``.
JetPack's TensorRT, as NVIDIA's maintainers state it: JetPack 5.1.2 ships 8.5.2 (NVIDIA/TensorRT#3454), JetPack 6.0
8.6 (pytorch/TensorRT#3049), JetPack 6.1 and 6.2 10.3 (pytorch/TensorRT#3453).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from us3l.devices.spec import DeviceSpec

from us3l.errors import US3LError


@dataclass(frozen=True)
class TrtRelease:
    """The ``trtexec`` spellings and ONNX parser limit of one TensorRT release line."""

    name: str
    #: the option that builds (and saves) the engine without running inference
    build_only_flag: str
    #: the highest ONNX opset its parser reads
    max_onnx_opset: int


RELEASES: dict[tuple[int, int | None], TrtRelease] = {
    (8, 5): TrtRelease("8.5", "--buildOnly", 17),
    (8, 6): TrtRelease("8.6", "--skipInference", 17),
    (10, None): TrtRelease("10.x", "--skipInference", 18),
}
#: What a command is built for when no version is known (the current TensorRT on PyPI and JetPack 6.1+).
DEFAULT = RELEASES[(10, None)]
SUPPORTED = "8.5, 8.6 and 10.x"

#: ASCII digits only: ``\d`` and ``int()`` also read other scripts' digits ("٨.٥" as 8.5), as no other flag does
_VERSION = re.compile(r"^([0-9]{1,3})(?:\.([0-9]{1,3}))?(?:\.[0-9]{1,5}){0,2}$")


def trt_release(version: str | None) -> TrtRelease:
    """The release line of TensorRT ``version`` (``"8.5"``, ``"8.5.2.2"``, ``"10.3.0"``); ``None``: ``DEFAULT``.
    Anything else is refused in one line."""
    if version is None:
        return DEFAULT
    text = str(version).strip()
    m = _VERSION.match(text)
    if m is None:
        raise US3LError(f"TensorRT version {text!r:.40} is not a version number like 8.5 or 10.3.0 "
                        f"(us3l builds for TensorRT {SUPPORTED})")
    major, minor = int(m.group(1)), m.group(2)
    if major == 10:
        return RELEASES[(10, None)]
    if minor is None:
        raise US3LError(f"TensorRT version {text!r} needs its minor version (8.5 or 8.6): "
                        f"their trtexec options differ")
    release = RELEASES.get((major, int(minor)))
    if release is None:
        why = ("its trtexec has no --fp16/--int8, which us3l's engines are built with" if major >= 11
               else "not a release us3l builds for")
        raise US3LError(f"TensorRT {text} is not supported ({why}): us3l builds for TensorRT {SUPPORTED}")
    return release


def onnx_opset_for(version: str | None, preferred: int) -> int:
    """The ONNX opset to export for TensorRT ``version``: ``preferred`` (us3l's own) unless its parser reads less."""
    return min(preferred, trt_release(version).max_onnx_opset)


def export_opset(version: str | None) -> int | None:
    """The opset of an ONNX file TensorRT ``version`` builds its engine from: None where it reads us3l's own
    (``us3l.deploy.backends.onnx.OPSET``), else the highest its parser reads."""
    from us3l.deploy.backends.onnx import OPSET

    opset = onnx_opset_for(version, OPSET)
    return None if opset == OPSET else opset


def device_onnx_opset(spec: DeviceSpec | None) -> int | None:
    """The ONNX opset to export for a device whose file declares its TensorRT (``tensorrt_version``; 8.5 and 8.6
    read opset <= 17); None: us3l's own."""
    if spec is None or spec.tensorrt_version is None:
        return None
    return export_opset(spec.tensorrt_version)
