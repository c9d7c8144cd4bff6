"""Mixed precision of the training step: the config key ``amp`` and the autocast dtype it means on a device.

* ``true`` (the dataclass default): float16 autocast with a gradient scaler on CUDA; float32 on the CPU.
* ``false``: float32 everywhere.
* ``"bf16"``: bfloat16 autocast on any device, no gradient scaler (bfloat16 has float32's exponent range). On a
  CPU without native bfloat16 instructions oneDNN emulates them, which is slower than float32.
* ``"auto"`` (the default recipe's): float16 on CUDA; on the CPU bfloat16 where the CPU computes it natively (AMX
  or AVX512-BF16), else float32. Resolved once when the run starts, printed, and recorded in the saved config,
  like ``threads: auto`` (a resume keeps it: float results depend on it). In a multi-process CPU job the ranks
  agree: bfloat16 only where every rank's CPU has it (:func:`agreed_across_ranks`).

Under any autocast the losses still compute in float32 (``us3l.ssl.losses.full_precision``), BatchNorm keeps
float32 parameters and statistics, and evaluation (kNN monitor, ``us3l eval``, export) runs in float32.

Denormal floats (the config key ``flush_denormal``): :func:`set_flush_denormal` flushes them to zero in the CPU
work of the process (docs/training.md, "Denormal floats"); :func:`kept_flush_denormal` gives the caller of
``run_training`` its own mode back afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from us3l.train.threads import AUTO  # one word for every setting resolved when a run starts

BF16 = "bf16"
#: The values ``amp`` accepts besides true and false.
WORDS = (AUTO, BF16)


def cpu_bf16_unit(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's native bfloat16 matrix instructions (``"AMX"`` or ``"AVX512-BF16"``), or None. Asks torch's own
    CPU feature check, else the flags in ``/proc/cpuinfo``."""
    cpu = getattr(torch, "cpu", None)
    amx, avx = getattr(cpu, "_is_amx_tile_supported", None), getattr(cpu, "_is_avx512_bf16_supported", None)
    if callable(amx) and callable(avx):
        try:
            return "AMX" if amx() else "AVX512-BF16" if avx() else None
        except RuntimeError:
            pass
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    from us3l.profiler.fingerprint import isa_features  # stdlib only; the core imports profiler/ where it calls it

    isa = isa_features(text)
    return "AMX" if "amx_bf16" in isa else "AVX512-BF16" if "avx512_bf16" in isa else None


def resolve_amp(amp: bool | str, device_type: str, unit: str | None = None) -> tuple[bool | str, str]:
    """(the concrete ``amp`` value for ``amp: auto`` on ``device_type``, why); other values are returned as they
    are. ``unit``: the CPU's bfloat16 unit (detected when None)."""
    if amp != AUTO:
        return amp, ""
    if device_type == "cuda":
        return True, "CUDA"
    if device_type != "cpu":
        return False, f"no mixed precision on {device_type}"
    unit = cpu_bf16_unit() if unit is None else unit
    if unit:
        return BF16, f"native bfloat16 on this CPU: {unit}"
    return False, "no native bfloat16 on this CPU (AMX or AVX512-BF16)"


def agreed_across_ranks(amp: bool | str, why: str, all_ranks: Callable[[bool], bool]) -> tuple[bool | str, str]:
    """``amp: auto`` as every rank of a CPU job resolved it: bfloat16 only where every rank's CPU computes it
    natively, else float32 on all of them (the nodes of a CPU cluster may differ). ``all_ranks(flag)``: the
    collective that tells whether ``flag`` holds on every rank; every rank calls this function."""
    if all_ranks(amp == BF16) or amp != BF16:
        return amp, why
    return False, "another rank's CPU has no native bfloat16: every rank trains in float32"


def autocast_dtype(amp: bool | str, device_type: str) -> torch.dtype | None:
    """The autocast dtype of a resolved ``amp`` on ``device_type`` (None: float32, no autocast)."""
    if amp == BF16:
        return torch.bfloat16
    if amp is True and device_type == "cuda":
        return torch.float16
    return None


def label(dtype: torch.dtype | None) -> str:
    """``"fp16"``, ``"bf16"`` or ``"fp32"``: the precision a run trained in, for ``checkpoint.json``."""
    return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")


#: The bit pattern of a float32 denormal (about 1e-39): made from bits, so that no conversion flushes it first.
_DENORMAL_BITS = 0x000AE398


def set_flush_denormal(on: bool) -> bool:
    """Flush denormal floats to zero (``on``) or keep them, for this process's CPU work; True when they are
    flushed now. The mode is per thread: threads that torch's intra-op pool starts afterwards inherit it, a pool
    that already runs keeps its own (a fresh `us3l train` process sets it before its first parallel operation,
    so every thread flushes). False where the CPU has no such mode."""
    return bool(torch.set_flush_denormal(on)) and on


def flushing_denormals() -> bool:
    """Whether this thread flushes denormal floats to zero now (torch can set the mode, not read it: one denormal
    times 1.0, computed on this thread, is 0 when it does)."""
    x = torch.tensor([_DENORMAL_BITS], dtype=torch.int32).view(torch.float32)
    return bool((x * 1.0).item() == 0.0)


@contextmanager
def kept_flush_denormal() -> Iterator[None]:
    """Put the calling thread's denormal mode back as it was once the body returns or raises: a run flushes them
    (``flush_denormal: true``), and a program (or test) calling ``run_training`` went on computing without IEEE
    denormals. Only this thread's: threads of torch's intra-op pool started during the body keep the mode they
    started with (torch sets it per thread, on the calling one only)."""
    before = flushing_denormals()
    try:
        yield
    finally:
        if flushing_denormals() != before:
            torch.set_flush_denormal(before)
