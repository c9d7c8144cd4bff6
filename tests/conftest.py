"""Shared test settings: deterministic, single-threaded torch so that tests are fast on 2 shared cores."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
