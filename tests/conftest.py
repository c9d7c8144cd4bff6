"""Shared test settings: deterministic, single-threaded torch so that tests are fast on 2 shared cores; and a guard
against the silent SIGSEGV (exit 139, no faulthandler output) that used to kill the whole pytest process.

That crash: OpenVINO's CPU plugin (``SigAltStackSetup`` in its ``Plugin`` constructor/destructor) gives the calling
thread a new mmap'ed alternate signal stack and, when destroyed, unmaps it and restores the previous one only if its
own is still current. Every ``ov.Core`` compiles with its own plugin, so two OpenVINO sessions released first-in
first-out (as a sweep's window releases them) leave the main thread's ``sigaltstack`` pointing at unmapped memory.
From then on any signal whose handler runs on the alternate stack (``SA_ONSTACK``: every Python-level handler and
faulthandler's) cannot be delivered: the kernel forces SIGSEGV (``si_code`` SI_KERNEL), whose handler cannot be
delivered either, and the process dies silently. The signal was SIGCHLD from a subprocess exit -- torch's
``DataLoader`` installs a Python SIGCHLD handler once a loader with workers ran (tests/data/test_folder.py) -- which
is why it hit late in the suite, in whichever test next waited for a subprocess (a core dump showed the main thread
in ``Popen.wait``'s sleep in tests/profiler/test_window.py, its ``sigaltstack`` unmapped). So after each test the
SIGCHLD disposition is put back as it was before the test, and a dangling alternate signal stack is replaced.
"""

from __future__ import annotations

import ctypes
import signal
import sys

import pytest
import torch

torch.set_num_threads(1)

# The suite tests Ctrl-C handling. Started as a background job of a non-interactive shell (`./test.sh &`, nohup,
# a script's subprocess), pytest inherits SIGINT ignored, and so does every process a test starts: us3l leaves an
# ignored SIGINT alone by design (us3l/cli.py, _SigintWatch), so those tests would see no interrupt at all.
# Here it is Python's.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


#: Test files that take longest in the default run, longest first (per-file time summed from ``--durations=0`` on
#: the 2-core development machine, 2026-12-07). pytest-xdist hands whole files to its workers in collection order
#: (``--dist loadfile --no-loadscope-reorder``, pyproject.toml), so these go out first and the run ends on short
#: files: otherwise one worker was still on a long file well after the other had finished (xdist's own order,
#: most tests first, put files with a few long tests last). A file missing here only runs in its collection place.
LONG_FILES = (
    "tests/devices/test_ssh_known_hosts.py",
    "tests/train/test_train_cli.py",
    "tests/deploy/test_switchable.py",
    "tests/test_script_cli.py",
    "tests/deploy/test_deploy_int8.py",
    "tests/deploy/test_manifest_bn_stats.py",
    "tests/deploy/test_manifest_claims.py",
    "tests/test_cli_conventions.py",
    "tests/report/test_report_trust.py",
    "tests/profiler/test_costs.py",
    "tests/deploy/test_export_flags_redteam.py",
    "tests/eval/test_cli.py",
    "tests/slim/test_materialize.py",
    "tests/test_output_errors.py",
    "tests/deploy/test_deploy_export.py",
    "tests/train/test_loop.py",
    "tests/eval/test_calibrate.py",
    "tests/deploy/test_deploy_cli.py",
    "tests/deploy/test_manifest_sources.py",
    "tests/models/test_models.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of ``LONG_FILES`` first, in its order; every other file after them, in collection order."""
    rank = {path: i for i, path in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: tests keep their order


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI tables size themselves to ``$COLUMNS`` (us3l.cli_output.stdout_width); a test that wants a width sets
    it, so that the output does not depend on the terminal or on the test runner (pytest-xdist's workers see a
    different environment from a plain run)."""
    monkeypatch.delenv("COLUMNS", raising=False)


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


_SS_DISABLE = 2
_ENOMEM = 12
_ALT_STACKS: list[ctypes.Array] = []  # replacement alternate stacks: kept for the life of the process
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def alt_stack_unmapped() -> bool:
    """Whether the calling thread's alternate signal stack lies in unmapped memory (False where it has none, off
    Linux, or when the kernel cannot tell)."""
    libc = _LIBC
    if libc is None:
        return False
    try:
        cur = _StackT()
        if libc.sigaltstack(None, ctypes.byref(cur)) != 0 or cur.ss_flags & _SS_DISABLE or not cur.ss_sp:
            return False
        page = 4096
        start = cur.ss_sp // page * page
        length = (cur.ss_sp + cur.ss_size - start + page - 1) // page * page
        vec = ctypes.create_string_buffer(length // page)
        return libc.mincore(ctypes.c_void_p(start), ctypes.c_size_t(length), vec) != 0 and ctypes.get_errno() == _ENOMEM
    except (AttributeError, OSError):
        return False


def _repair_sigaltstack() -> bool:
    """Give the calling (main) thread a fresh alternate signal stack if its current one lies in unmapped memory;
    True if it did. Linux only; any failure leaves things as they are."""
    if _LIBC is None or not alt_stack_unmapped():
        return False
    try:
        buf = ctypes.create_string_buffer(64 * 1024)
        new = _StackT(ctypes.cast(buf, ctypes.c_void_p).value, 0, len(buf))
        if _LIBC.sigaltstack(ctypes.byref(new), None) != 0:
            return False
        _ALT_STACKS.append(buf)
        return True
    except (AttributeError, OSError):
        return False


@pytest.fixture(autouse=True)
def _signal_state() -> object:
    """Undo what a test left in the process's signal state (see the module docstring)."""
    chld = signal.getsignal(signal.SIGCHLD)
    yield
    if signal.getsignal(signal.SIGCHLD) is not chld:
        signal.signal(signal.SIGCHLD, chld)
    _repair_sigaltstack()
