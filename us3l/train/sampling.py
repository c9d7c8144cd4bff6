"""Width sampling per iteration: sandwich rule, uniform, and the dynamic schedule "A" (method.md §1.3, §2).

Widths come from a private ``random.Random(seed)`` seeded identically on every DDP rank, so all ranks draw
the same widths (the reference seeds Python's ``random`` with the same seed everywhere).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import torch

from us3l.errors import US3LError

SAMPLINGS = ("sandwich", "uniform")
SCHEDULES = ("A", "none")


#: The reference's share of schedule A's first stage (full width only): four equal stages.
REFERENCE_STAGE1 = 0.25


def stage1_epochs(epochs: int, stage1: float = REFERENCE_STAGE1) -> int:
    """Epochs of schedule A's first stage (the full width only): ``stage1`` of ``epochs``, rounded half up."""
    return math.floor(stage1 * epochs + 0.5)


def check_stage1(stage1: float) -> None:
    """Schedule A's first-stage share must be in [0, 1): stages 2-4 need some of the epochs."""
    if not 0.0 <= stage1 < 1.0:
        raise US3LError(f"schedule_stage1 must be in [0, 1), got {stage1}")


def check_schedule(schedule: str, epochs: int, stage1: float = REFERENCE_STAGE1) -> None:
    """Schedule "A" with the reference's four equal stages needs a positive multiple of 4 epochs; with another
    first-stage share ``stage1`` (in [0, 1)) each of stages 2-4 needs at least one epoch."""
    if schedule not in SCHEDULES:
        raise US3LError(f"unknown width schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    check_stage1(stage1)
    if schedule != "A":
        return
    if stage1 == REFERENCE_STAGE1 and (epochs < 4 or epochs % 4):
        raise US3LError(
            f"schedule 'A' splits training into 4 equal stages, so epochs must be a multiple of 4 "
            f"(got {epochs}); use e.g. --epochs {max(4, (epochs + 3) // 4 * 4)} or schedule 'none'"
        )
    rest = epochs - stage1_epochs(epochs, stage1)
    if rest < 3:
        raise US3LError(
            f"schedule 'A' with schedule_stage1 {stage1:g} leaves {rest} of {epochs} epochs for stages 2-4, "
            "which need at least one epoch each; train more epochs"
        )


def schedule_a_min_width(
    epoch: int, epochs: int, w_min: float, w_max: float, stage1: float = REFERENCE_STAGE1
) -> float:
    """The smallest width of epoch ``epoch`` under schedule "A": max, then 0.75 → 0.5 → 0.25 (for [0.25, 1]).

    Stage 1 (the full width only) takes ``stage1`` of the epochs and stages 2-4 split the rest equally; with
    the reference's 0.25 and a multiple of 4 epochs these are its four equal stages, epoch for epoch.
    """
    first = stage1_epochs(epochs, stage1)
    if epoch < first:
        return w_max
    stage = 2 + (epoch - first) * 3 // (epochs - first)
    return w_min + (4 - stage) * (w_max - w_min) / 3


@dataclass
class WidthSampler:
    """Draws the widths trained in one iteration, sorted descending (the first is the base network).

    ``faithful_sandwich_bug`` reproduces the reference's list concatenation inside its loop, which for
    ``num_samples > 3`` duplicates the max and min widths; with the default (False) the sandwich is
    ``[max, N-2 uniform draws, min]``. For N = 3 both are identical.
    """

    w_min: float
    w_max: float
    epochs: int
    num_samples: int = 3
    sampling: str = "sandwich"
    schedule: str = "A"
    faithful_sandwich_bug: bool = False
    seed: int = 100
    stage1: float = REFERENCE_STAGE1
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise US3LError(f"unknown width sampling {self.sampling!r}; choose one of {', '.join(SAMPLINGS)}")
        if self.num_samples < 1:
            raise US3LError(f"num_samples must be >= 1 (got {self.num_samples})")
        check_schedule(self.schedule, self.epochs, self.stage1)
        self.rng = random.Random(self.seed)

    def min_width(self, epoch: int) -> float:
        """The smallest width sampled in ``epoch`` (schedule "A" raises it in the early stages)."""
        if self.schedule == "A":
            return schedule_a_min_width(epoch, self.epochs, self.w_min, self.w_max, self.stage1)
        return self.w_min

    def widths(self, epoch: int) -> list[float]:
        """The widths of the next iteration of ``epoch``, sorted descending."""
        lo, hi = self.min_width(epoch), self.w_max
        n = self.num_samples
        if lo >= hi or n == 1:
            return [hi]
        if self.sampling == "uniform":
            return sorted((self.rng.uniform(lo, hi) for _ in range(n)), reverse=True)
        if self.faithful_sandwich_bug:
            ws: list[float] = []
            for _ in range(n - 2):  # reference: the concatenation sits inside the loop
                ws.append(self.rng.uniform(lo, hi))
                ws = [hi, lo] + ws
            ws = ws or [hi, lo]
        else:
            ws = [hi, lo] + [self.rng.uniform(lo, hi) for _ in range(n - 2)]
        return sorted(ws, reverse=True)

    def state_dict(self) -> dict[str, Any]:
        """The RNG state as tensors/primitives (``torch.load(weights_only=True)``-safe)."""
        version, internal, gauss = self.rng.getstate()
        return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        internal = tuple(int(v) for v in state["internal"].tolist())
        self.rng.setstate((int(state["version"]), internal, state["gauss"]))


@dataclass
class FixedWidth:
    """The ``single`` baseline: one fixed width every iteration."""

    width: float

    def min_width(self, epoch: int) -> float:
        return self.width

    def widths(self, epoch: int) -> list[float]:
        return [self.width]

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


@dataclass
class SwitchWidths:
    """The ``snets`` baseline: every switch width in every iteration, largest first (the base network)."""

    switches: tuple[float, ...]

    def __post_init__(self) -> None:
        self.switches = tuple(sorted(self.switches, reverse=True))

    def min_width(self, epoch: int) -> float:
        return self.switches[-1]

    def widths(self, epoch: int) -> list[float]:
        return list(self.switches)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None
