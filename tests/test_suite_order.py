"""tests/conftest.py's file order: the long files named there exist and are collected first."""

from __future__ import annotations

from types import SimpleNamespace

from tests.conftest import LONG_FILES, pytest_collection_modifyitems
from tests.script_module import ROOT


def test_every_long_file_named_exists() -> None:
    missing = [path for path in LONG_FILES if not (ROOT / path).is_file()]
    assert not missing, f"renamed or removed, update LONG_FILES in tests/conftest.py: {missing}"
    assert len(set(LONG_FILES)) == len(LONG_FILES)


def test_long_files_go_first_in_their_order_the_rest_keep_theirs() -> None:
    ids = ["tests/a.py::t1", f"{LONG_FILES[1]}::x", "tests/b.py::t", f"{LONG_FILES[0]}::y", "tests/a.py::t2",
           f"{LONG_FILES[1]}::w[1]"]
    items = [SimpleNamespace(nodeid=i) for i in ids]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [it.nodeid for it in items] == [f"{LONG_FILES[0]}::y", f"{LONG_FILES[1]}::x", f"{LONG_FILES[1]}::w[1]",
                                           "tests/a.py::t1", "tests/b.py::t", "tests/a.py::t2"]
