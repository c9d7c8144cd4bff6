"""The training tests' tiny ImageFolder, for the CUDA tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.conftest import write_tiny_folder


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_folder(tmp_path_factory.mktemp("tinydata"))
