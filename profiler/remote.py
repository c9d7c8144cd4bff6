"""Remote profiling over SSH with onnxruntime / OpenVINO: ship artifacts + ``remote_runner.py``, drive it.

The exported models, ``remote_runner.py`` and ``fingerprint.py`` go into a fresh ``mktemp -d`` directory on
the device; the runner is started there with the device's Python and answers load / time / unload requests
over stdin/stdout (JSON lines), so the host runs the same windowed loop and statistics as for a local device:
only the widths in the window are loaded on the device, and the runner itself refuses a load that would take
it over ``max_memory_mb`` (``WindowFull``: the width waits for a slot). The remote directory is removed when
the session closes, also after an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from us3l.deploy.backends.openvino_devices import compile_failure
from us3l.devices.ssh import ENDED_BY_SIGNAL, NO_EXIT_STATUS, RemoteProcess, SSHSession, exit_status
from us3l.errors import US3LError
from us3l.validate import MAX_MEMORY_BYTES, MAX_THREADS, integer, number

HERE = Path(__file__).resolve().parent
RUNNER_FILES = (HERE / "remote_runner.py", HERE / "fingerprint.py")
EXIT_MISSING_RUNTIME = 3
#: What is kept of the runner's standard error (read throughout the session) for the error line of a runner that
#: exits: its last line is all that is shown.
STDERR_TAIL_BYTES = 65536
#: The longest answer line read from the runner. Its largest answers are a few hundred KiB (10 000 samples, the
#: most one timing call asks for: MeasurementPolicy's warmup bound); a device sending more without a newline
#: (garbage, a runaway print) is refused at this size, not read into the host's memory until it stops.
MAX_ANSWER_BYTES = 4 << 20
#: The most of a device's fingerprint a profile records, as JSON: a real one is under 1 KiB (a Jetson's, with
#: ``jetson_clocks --show``, a few KiB).
MAX_FINGERPRINT_BYTES = 64 << 10
#: The longest runtime version a device's runner may report ("1.17.3", "2024.6.0-15805-6138d624dc1-releases/...").
MAX_VERSION_CHARS = 200
#: The numeric facts of the runner's answers (its ready line, load, unload and stat), each checked as it arrives:
#: an integer from the least to the most value (None as most: the number of models it was given), null only where
#: the runner may not know it (``proc_bytes`` without /proc, no memory limit). Memory figures go up to
#: ``us3l.validate.MAX_MEMORY_BYTES`` (2**50): a larger or negative one (a damaged /proc, a broken runner) sized the
#: window and was recorded as the profile's peak, or the profile was refused only when written, after the sweep.
FACTS: dict[str, tuple[int, int | None, bool]] = {
    "rss_bytes": (1, MAX_MEMORY_BYTES, True),
    "peak_rss_bytes": (1, MAX_MEMORY_BYTES, True),
    "available_bytes": (0, MAX_MEMORY_BYTES, True),
    "max_memory_bytes": (1, MAX_MEMORY_BYTES, True),
    "session_bytes": (0, MAX_MEMORY_BYTES, False),
    "limit_bytes": (1, MAX_MEMORY_BYTES, False),
    "threads": (1, MAX_THREADS, False),
    "live": (0, None, False),
}


def device_fingerprint(value: Any, where: str) -> dict[str, Any]:
    """The fingerprint ``where`` (``remote runner on ssh://...``) sent, as the profile records it: a non-empty
    JSON object of at most ``MAX_FINGERPRINT_BYTES`` without NaN or infinite numbers. Anything else is recorded
    as ``{"error": what was wrong}`` (the fingerprint is best effort, as on the device), never replaced by the
    host's own fingerprint, which is not the device's environment."""
    problem = _fingerprint_problem(value)
    return value if problem is None else {"error": f"{where} sent {problem}; not recorded"}


def _fingerprint_problem(value: Any) -> str | None:
    from us3l.io import non_finite_at

    if not isinstance(value, dict):
        return f"a fingerprint that is not an object: {str(value)[:80]!r}"
    if not value:
        return "an empty fingerprint"
    try:
        bad, size = non_finite_at(value), len(json.dumps(value))
    except RecursionError:
        return "a fingerprint nested too deep"
    if bad is not None:
        return f"a fingerprint whose {bad} is not a finite number"
    if size > MAX_FINGERPRINT_BYTES:
        return f"a fingerprint of {size} bytes (more than {MAX_FINGERPRINT_BYTES >> 10} KiB)"
    return None


def runtime_version(value: Any, where: str) -> str:
    """The runtime version ``where`` sent: printable text of at most ``MAX_VERSION_CHARS`` (it is shown by the
    report and compared across profiles); anything else is one error line."""
    if not (isinstance(value, str) and value.strip() and value.isprintable() and len(value) <= MAX_VERSION_CHARS):
        raise US3LError(f"{where} sent a runtime version that is not a version (printable text of at most "
                        f"{MAX_VERSION_CHARS} characters): {str(value)[:80]!r}")
    return value


class RemoteRunner:
    """``remote_runner.py`` running on the device, with one timer per uploaded model."""

    def __init__(
        self,
        session: SSHSession,
        backend: str,
        models: dict[str, tuple[Sequence[Path], Sequence[int]]],
        threads: int | None,
        device: str = "CPU",
        precision: str = "fp32",
        max_memory_mb: float | None = None,
        where: str = "",
    ) -> None:
        """``models`` maps a key to (files of the artifact, primary file first; input shape);
        ``max_memory_mb``: the runner's resident-memory limit (None: none); ``where`` (``"device file F: "``)
        begins the refusal of an OpenVINO ``device`` the device's runtime does not have."""
        if backend not in ("onnx", "openvino"):
            raise US3LError(f"the remote runner handles onnx and openvino, not '{backend}'")
        self.session = session
        self.backend = backend
        self.models = models
        self.threads = threads
        self.device = device
        self.precision = precision
        self.max_memory_mb = max_memory_mb
        self.where = where
        self.session_bytes = 0  # the largest session the runner measured
        self.failed = False  # set by the first error the runner answered or caused
        self.workdir: str | None = None
        self.ready: dict[str, Any] = {}
        self._proc: RemoteProcess | None = None

    def __enter__(self) -> RemoteRunner:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _start(self) -> None:
        s = self.session
        self.workdir = s.mkdtemp("us3l-profile")
        # Until the runner is up (it removes the folder itself when the host goes away), a guard on the device
        # removes the folder unless told "keep": this process killed outright (SIGKILL, a crash) or its connection
        # lost during the uploads left the folder and its models on the device for good.
        guard = s.start(["sh", "-c", 'read -r word; [ "$word" = keep ] || rm -rf -- "$1"', "us3l", self.workdir])
        try:
            self._upload_and_run()
        finally:
            try:
                guard.stdin.write("keep\n")
                guard.stdin.flush()
                guard.stdin.close()
            except Exception:  # noqa: BLE001 - the connection is gone (paramiko's SSHException too): the guard removed it
                pass
            finally:
                guard.stdout.channel.close()

    def _upload_and_run(self) -> None:
        s = self.session
        assert self.workdir is not None
        for f in RUNNER_FILES:
            s.put(f, f"{self.workdir}/{f.name}")
        manifest: dict[str, Any] = {"seed": 0, "models": {}}
        for key, (files, shape) in self.models.items():
            s.mkdir(f"{self.workdir}/{key}")
            for f in files:
                s.put(f, f"{self.workdir}/{key}/{Path(f).name}")
            manifest["models"][key] = {"path": f"{key}/{Path(files[0]).name}", "input_shape": list(shape)}
        s.write_bytes(f"{self.workdir}/manifest.json", json.dumps(manifest).encode())
        argv = [
            s.reach.python, f"{self.workdir}/remote_runner.py", "--backend", self.backend,
            "--manifest", f"{self.workdir}/manifest.json", "--threads", str(self.threads or 0),
            "--device", self.device, "--precision", self.precision,
            "--max-memory-mb", str(float(self.max_memory_mb or 0)),
        ]
        self._proc = s.start(argv, keep_stderr=STDERR_TAIL_BYTES)
        self.ready = self._read()
        if not self.ready.get("ready"):
            raise US3LError(f"remote runner on {s.reach.url} did not start: {str(self.ready)[:200]}")
        where = f"remote runner on {s.reach.url}"
        if "threads" not in self.ready:  # the profile records it; its value was bounded as the line arrived (FACTS)
            raise US3LError(f"{where} sent a ready line without threads (the thread count it runs with)")
        # recorded in the profile as the device's environment: checked here, before any model is timed
        self.ready["version"] = runtime_version(self.ready.get("version"), where)
        self.ready["fingerprint"] = device_fingerprint(self.ready.get("fingerprint"), where)
        if self.backend == "openvino":
            self._check_device()

    def _check_device(self) -> None:
        """Refuse, before any model is loaded, an OpenVINO device the device's runtime does not have, in the words
        of a local profile (``us3l.deploy.backends.openvino.require_device``)."""
        from us3l.deploy.backends.openvino_devices import refusal

        url = self.session.reach.url
        found = self.ready.get("openvino_devices")
        available = found.get("available") if isinstance(found, dict) else None
        ids = found.get("ids") if isinstance(found, dict) else None
        if not (isinstance(available, list) and isinstance(ids, dict)):
            raise US3LError(f"remote runner on {url} sent no OpenVINO device list: {str(found)[:120]}")
        ids = {str(k): [str(i) for i in v] for k, v in ids.items() if isinstance(v, list)}
        problem = refusal(self.device, [str(d) for d in available], ids, f"{self.where}remote runner on {url}: ")
        if problem is not None:
            raise US3LError(problem)

    def _read(self) -> dict[str, Any]:
        """The runner's next answer; any error marks the runner failed (``open`` then skips its unload)."""
        try:
            return self._read_answer()
        except US3LError:
            self.failed = True
            raise

    def _read_answer(self) -> dict[str, Any]:
        assert self._proc is not None
        stdout = self._proc.stdout
        url = self.session.reach.url
        try:
            line = stdout.readline(MAX_ANSWER_BYTES + 1)  # bounded: a line without end is not read to its end
        except TimeoutError:
            raise US3LError(f"remote runner on {url} stopped answering (timeout)") from None
        except UnicodeDecodeError:  # the runner's JSON is ASCII (json.dumps escapes the rest)
            raise US3LError(f"remote runner on {url} sent bytes that are not UTF-8 text") from None
        if len(line.encode("utf-8", "surrogateescape")) > MAX_ANSWER_BYTES:
            raise US3LError(f"remote runner on {url} sent an answer longer than {MAX_ANSWER_BYTES >> 20} MiB, which "
                            f"no runner answer is: {line[:80]!r}...")
        if not line.endswith("\n"):  # the end of its output, possibly in the middle of an answer (cut off)
            mid = f" in the middle of an answer ({len(line)} characters of it came)" if line else ""
            try:
                rc = exit_status(stdout.channel, self.session.reach.connect_timeout_s)
            except TimeoutError:
                raise US3LError(f"remote runner on {url} closed its output{mid} but did not exit") from None
            err = self._proc.stderr_text(self.session.reach.connect_timeout_s).strip()
            tail = err.splitlines()[-1] if err else "(no error output)"
            tail = tail if len(tail) <= 300 else "..." + tail[-297:]  # one line, not a screenful
            if rc == 127:
                raise US3LError(
                    f"remote python '{self.session.reach.python}' not found on {self.session.reach.url}: "
                    f"set [reach] python in the device file"
                )
            if rc == NO_EXIT_STATUS:
                raise US3LError(f"remote runner on {self.session.reach.url} {ENDED_BY_SIGNAL}{mid}: {tail}")
            raise US3LError(f"remote runner on {self.session.reach.url} exited with status {rc}{mid}: {tail}")
        try:
            doc = json.loads(line)
        except (json.JSONDecodeError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise US3LError(f"remote runner sent something that is not JSON: {line[:200]!r}") from None
        if not isinstance(doc, dict):
            raise US3LError(f"remote runner sent JSON that is not an object: {line[:200]!r}")
        if "error" in doc:
            if doc.get("kind") == "missing_runtime":
                raise US3LError(f"runtime missing on {self.session.reach.url}: {doc['error']}")
            if doc.get("kind") == "openvino_compile":
                raise US3LError(f"{self.where}remote runner on {self.session.reach.url}: "
                                f"{compile_failure(self.device, str(doc['error']))}")
            raise US3LError(f"remote runner on {self.session.reach.url}: {doc['error']}")
        self._check_facts(doc)
        return doc

    def _check_facts(self, doc: dict[str, Any]) -> None:
        """Each of ``FACTS`` that ``doc`` holds, checked when it arrives (one line naming the runner and the fact)."""
        where = f"remote runner on {self.session.reach.url}"
        for name, (least, most, nullable) in FACTS.items():
            if name in doc:
                top = len(self.models) if most is None else most
                integer(doc[name], f"{where}: {name}", least, top, optional=nullable)

    def _ask(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self._proc is not None
        self._proc.stdin.write(json.dumps(msg) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def load(self, key: str) -> dict[str, Any]:
        """Load model ``key`` on the device (one warm inference); ``WindowFull`` when the runner's memory limit
        leaves no room for it now."""
        from us3l.profiler.measure import WindowFull

        doc = self._ask({"cmd": "load", "key": key})
        if doc.get("full"):
            raise WindowFull(key)
        if doc.get("loaded") != key:
            raise US3LError(f"remote runner on {self.session.reach.url} answered {str(doc)[:120]} to a load")
        grew = doc.get("session_bytes")
        if isinstance(grew, int) and not isinstance(grew, bool):
            self.session_bytes = max(self.session_bytes, grew)
        return doc

    def unload(self, key: str) -> dict[str, Any]:
        """Release model ``key`` on the device."""
        return self._ask({"cmd": "unload", "key": key})

    def stat(self) -> dict[str, Any]:
        """The runner's memory: ``rss_bytes``, ``peak_rss_bytes``, ``available_bytes`` (None where unknown)."""
        return self._ask({"cmd": "stat"})

    @contextmanager
    def open(self, key: str) -> Iterator[Callable[[int], list[float]]]:
        """Model ``key`` loaded for the duration of the block, as a timer."""
        self.load(key)
        yield self.timer(key)  # after an error the runner is closed as a whole: no unload then
        if not self.failed:  # a runner that already failed would answer with a new error hiding the first
            self.unload(key)

    def timer(self, key: str) -> Callable[[int], list[float]]:
        """``timer(k)``: k remote single-inference timings of model ``key``, in seconds."""

        def run(k: int) -> list[float]:
            return self._samples(self._ask({"cmd": "time", "key": key, "n": int(k)}), int(k))

        return run

    def _samples(self, doc: dict[str, Any], k: int) -> list[float]:
        """The ``k`` timings of a runner answer: finite positive seconds up to ``MAX_SAMPLE_S`` (NaN, <= 0, more
        or a wrong count refused as the answer arrives, warm-up answers too)."""
        from us3l.profiler.measure import MAX_SAMPLE_S

        where = f"remote runner on {self.session.reach.url}"
        samples = doc.get("samples")
        if not isinstance(samples, list) or len(samples) != k:
            got = f"{len(samples)} samples" if isinstance(samples, list) else repr(samples)[:80]
            raise US3LError(f"{where} answered {got}, asked for {k} samples")
        return [number(v, f"{where}: samples[{j}]", positive=True, at_most=MAX_SAMPLE_S) for j, v in enumerate(samples)]

    def close(self) -> None:
        """Ask the runner to quit; kill it on the device if it has not exited within the connect timeout (a
        runner stuck in a load or a timing loop), then remove the remote directory."""
        if self._proc is not None:
            proc, self._proc = self._proc, None
            try:
                proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                proc.stdin.flush()
                proc.stdin.close()
                exit_status(proc.stdout.channel, self.session.reach.connect_timeout_s)
            except (TimeoutError, OSError, EOFError):
                proc.kill()
            finally:
                proc.stdout.channel.close()
        if self.workdir is not None:
            try:
                self.session.rmtree(self.workdir)
            finally:
                self.workdir = None
