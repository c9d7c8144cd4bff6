"""A restricted unpickler for CIFAR's python-pickle batches: numpy arrays and plain containers, nothing else.

CIFAR comes as pickles, and a pickle is a program: a tampered download can name any importable function and
call it. Only the globals numpy's own array pickles use are resolved, and only the way numpy calls them.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from us3l.errors import US3LError

__all__ = ["RestrictedUnpickler", "safe_unpickle"]

_NUMPY_GLOBALS = {
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}
_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_NDARRAY = ("numpy", "ndarray")


def _refuse_array_call(module: str, name: str) -> US3LError:
    return US3LError(f"refusing to unpickle a call of '{module}.{name}' that makes an array of a size the file does "
                     "not hold (numpy's own pickles make an empty array and fill it from the file)")


class _PickledNdarray:
    """``numpy.ndarray`` as an unpickled name: only the type argument of ``_reconstruct``. Called itself (a pickle's
    REDUCE of ``numpy.ndarray(shape, dtype)``), it would allocate any shape, uninitialised, from a few bytes."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _refuse_array_call(*_NDARRAY)


_NDARRAY_NAME = _PickledNdarray()


def _check_dtype(dtype: Any) -> None:
    """Refuse all but a plain numeric dtype (bool, integer, float) as numpy makes it: the flags in a pickled dtype's
    state are the file's to set, and flags that claim object references for uint8 pixels made numpy print a
    RuntimeError traceback ("get_clear_loop not set") whenever such an array was freed."""
    plain = isinstance(dtype, np.dtype) and dtype.kind in "biuf" and dtype.fields is None and dtype.subdtype is None
    if not plain or dtype.flags != np.dtype(dtype.str).flags:
        raise US3LError(f"refusing to unpickle an array of dtype {dtype!r} (flags {getattr(dtype, 'flags', None)}): "
                        "only plain numeric arrays are read")


class _CheckedArray(np.ndarray):
    """The array ``_reconstruct`` makes for the pickle to fill: its ``__setstate__`` (the pickle's BUILD) checks the
    dtype before numpy adopts it. :func:`_plain` turns it into an ``ndarray`` once the file is read."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):  # ([version,] shape, dtype, is_fortran, data)
            raise US3LError(f"refusing to unpickle an array state of type {type(state).__name__}")
        _check_dtype(state[-3])
        super().__setstate__(state)


def _reconstruct_empty(reconstruct_array: Any, module: str, name: str) -> Any:
    """numpy's ``_reconstruct`` limited to the call numpy's pickles make, ``_reconstruct(ndarray, (0,), b'b')``:
    an empty array that the pickle's BUILD then fills with bytes from the file (its size checked by numpy).
    Another shape would be an uninitialised array of that size (a memory bomb, or garbage pixels if never filled)."""

    def reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not _NDARRAY_NAME or not isinstance(shape, tuple) or shape != (0,):
            raise _refuse_array_call(module, name)
        return reconstruct_array(_CheckedArray, shape, dtype)

    return reconstruct


def _frombuffer_checked(frombuffer: Any) -> Any:
    """numpy's ``_frombuffer`` (protocol-5 arrays) with the dtype checked as for :class:`_CheckedArray`."""

    def from_buffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        _check_dtype(dtype)
        return frombuffer(buf, dtype, shape, order)

    return from_buffer


def _plain(obj: Any, done: dict[int, Any]) -> Any:
    """``obj`` with every :class:`_CheckedArray` inside its dicts, lists and tuples as a plain ``ndarray``; each object
    once (a pickle can share one list many times over, 2**60 paths from 60 lists, or make it hold itself)."""
    if id(obj) in done:
        return done[id(obj)]
    if isinstance(obj, _CheckedArray):
        done[id(obj)] = obj.view(np.ndarray)
    elif isinstance(obj, dict):
        done[id(obj)] = out = {}
        out.update((_plain(k, done), _plain(v, done)) for k, v in obj.items())
    elif isinstance(obj, list):
        done[id(obj)] = out = []
        out.extend(_plain(v, done) for v in obj)
    elif isinstance(obj, tuple):
        done[id(obj)] = tuple(_plain(v, done) for v in obj)
    else:
        return obj
    return done[id(obj)]


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only resolves the globals needed to rebuild numpy arrays.

    Everything else (``os.system``, ``builtins.eval``, arbitrary classes, ...) raises ``US3LError``, so a
    malicious file cannot run code. Plain containers (dict, list, bytes, str, numbers) need no globals. Arrays are
    made only the way numpy pickles them (an empty array filled from the file, or ``_frombuffer`` of bytes in the
    file): a direct ``numpy.ndarray((10**7, 3072), 'u1')`` would allocate gigabytes from a 150-byte file. Their
    dtype is a plain numeric one as numpy makes it (bool, integer, float; flags not forged).
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == _NDARRAY:
            return _NDARRAY_NAME
        if (module, name) in _RECONSTRUCT:
            return _reconstruct_empty(super().find_class(module, name), module, name)
        if name == "_frombuffer" and (module, name) in _NUMPY_GLOBALS:
            return _frombuffer_checked(super().find_class(module, name))
        if (module, name) not in _NUMPY_GLOBALS:
            raise US3LError(
                f"refusing to unpickle '{module}.{name}': only numpy arrays and plain containers are allowed"
            )
        return super().find_class(module, name)


def safe_unpickle(path: Path) -> Any:
    """Read a pickle file with :class:`RestrictedUnpickler` (``encoding="bytes"``); errors are US3LError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise US3LError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return _plain(RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load(), {})
    except US3LError as exc:
        raise US3LError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a malformed file
        raise US3LError(f"{path}: not a valid pickle file ({type(exc).__name__}: {exc})") from None
