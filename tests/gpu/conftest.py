"""The training tests' tiny ImageFolder, for the CUDA tests."""

from tests.train.conftest import tiny_folder  # noqa: F401 - the session fixture, shared
