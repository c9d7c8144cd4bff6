"""The learning-rate schedules: per-epoch cosine, constant, and the start of a longer cosine."""

from __future__ import annotations

import math

import pytest

from us3l.errors import US3LError
from us3l.train import make_config
from us3l.train.config import fill_method_defaults, validate
from us3l.train.loop import lr_at


def test_start_of_a_longer_cosine_matches_the_long_run() -> None:
    long = make_config({"epochs": 1000, "lr": 0.05})
    start = make_config({"epochs": 160, "lr": 0.05, "lr_schedule_epochs": 1000})
    for e in (0, 1, 80, 159):
        assert lr_at(start, e, 0, 62) == lr_at(long, e, 0, 62)
    assert lr_at(start, 159, 0, 62) == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 159 / 1000)))
    # without it the cosine spans the run's own epochs
    assert lr_at(make_config({"epochs": 160, "lr": 0.05}), 80, 0, 62) == pytest.approx(0.025)


def test_constant_schedule_holds_the_base_lr() -> None:
    cfg = make_config({"epochs": 10, "lr": 0.05, "lr_schedule": "constant"})
    assert {lr_at(cfg, e, it, 5) for e in range(10) for it in range(5)} == {0.05}


def test_a_schedule_shorter_than_the_run_is_refused() -> None:
    with pytest.raises(US3LError, match=r"^lr_schedule_epochs must be >= epochs \(8\), got 4$"):
        validate(fill_method_defaults(make_config({"epochs": 8, "lr_schedule_epochs": 4})))
    with pytest.raises(US3LError, match="lr_schedule must be 'epoch', 'iter' or 'constant', got 'step'"):
        validate(fill_method_defaults(make_config({"lr_schedule": "step"})))
