"""TensorRT timing through ``trtexec``, on the board itself (``LocalExecutor``) or over SSH (``SSHSession``).

Engines are built *on the device* from the ONNX export (a TensorRT engine runs only where it was built: same
TensorRT version and GPU), then every chunk of the measurement loop is one ``trtexec --loadEngine`` run with
``--exportTimes``, whose per-inference ``latencyMs`` become the samples.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

from us3l.deploy.backends.tensorrt_versions import trt_release
from us3l.devices.detect import TRTEXEC_FALLBACKS
from us3l.devices.ssh import OutputTooLarge
from us3l.errors import US3LError
from us3l.profiler.executors import Executor
from us3l.profiler.trtexec import parse_times, parse_version, timing_command

#: Where trtexec is looked for on the device: PATH, then JetPack's folders.
TRTEXEC_CANDIDATES = ("trtexec", *TRTEXEC_FALLBACKS)


def probe_trtexec(ex: Executor) -> tuple[str, str | None] | None:
    """The first ``trtexec`` that answers ``--help`` on the executor's machine, and its TensorRT version from the
    banner of that answer (``[TensorRT v8502]``; None where it has none)."""
    for cand in TRTEXEC_CANDIDATES:
        try:
            res = ex.run([cand, "--help"], timeout=60)
        except US3LError:
            continue
        if "TensorRT" in res.stdout + res.stderr or "--onnx" in res.stdout + res.stderr:
            return cand, parse_version(res.stdout + res.stderr)
    return None


def find_trtexec(ex: Executor) -> str | None:
    """The first ``trtexec`` that answers ``--help`` on the executor's machine."""
    found = probe_trtexec(ex)
    return None if found is None else found[0]


def onnx_opset(path: str | Path) -> int | None:
    """The default-domain opset an ONNX file imports (None: it names none)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


class TrtexecSession:
    """Engines built in a private work directory on the device; removed by ``close()``."""

    def __init__(self, ex: Executor, precision: str = "fp16", warmup_ms: int = 200, metric: str = "latencyMs"):
        self.ex = ex
        self.precision = precision
        self.warmup_ms = warmup_ms
        self.metric = metric
        found = probe_trtexec(ex)
        if found is None:
            raise US3LError(
                "trtexec (TensorRT) not found on the device: install TensorRT (JetPack ships it in "
                "/usr/src/tensorrt/bin) or put trtexec on PATH"
            )
        self.trtexec, self.version = found
        #: the option spellings and ONNX opset limit of the device's TensorRT (refused here when unsupported)
        self.release = trt_release(self.version)
        self.workdir = ex.mkdtemp("us3l-trt")
        self.engines: dict[str, str] = {}
        # Over SSH, a guard on the device removes the folder when the connection ends: closed by close(), or lost
        # when this process is killed outright (SIGKILL, a crash) or cut off, which left the ONNX files and
        # engines on the device for good.
        start = getattr(ex, "start", None)
        self._guard = start(["sh", "-c", 'cat >/dev/null; rm -rf -- "$1"', "us3l", self.workdir]) if start else None

    def build(self, key: str, onnx_path: str | Path) -> str:
        """Copy the ONNX file to the device and build its engine there; returns the engine path."""
        from us3l.deploy.backends.tensorrt import trtexec_build_command

        opset = onnx_opset(onnx_path)
        if opset is not None and opset > self.release.max_onnx_opset:
            raise US3LError(
                f"the device's TensorRT {self.version} reads ONNX up to opset {self.release.max_onnx_opset}, "
                f"{Path(onnx_path).name} of width '{key}' is opset {opset}: declare tensorrt_version = "
                f'"{self.release.name}" in the device file so that us3l exports for it'
            )
        folder = f"{self.workdir}/{key}"
        self.ex.mkdir(folder)
        remote_onnx = f"{folder}/model.onnx"
        self.ex.put(onnx_path, remote_onnx)
        engine = f"{folder}/model.plan"
        argv = trtexec_build_command(remote_onnx, engine, fp16=self.precision == "fp16", trtexec=self.trtexec,
                                     tensorrt_version=self.version)
        res = self.ex.run(argv, check=True)
        self.version = self.version or parse_version(res.stdout + res.stderr)
        self.engines[key] = engine
        return engine

    def timer(self, key: str) -> Callable[[int], Sequence[float]]:
        engine = self.engines[key]
        chunks = itertools.count()

        def run(k: int) -> list[float]:
            # a file of its own per chunk: with one path, a trtexec that exited 0 without writing its times
            # (a crash after the loop, an option it ignored) left the previous chunk's file, counted again
            times = f"{self.workdir}/{key}/times-{next(chunks)}.json"
            argv = timing_command(engine, times, k, self.warmup_ms, trtexec=self.trtexec)
            self.ex.run(argv, check=True)
            try:
                text = self.ex.read_text(times)
            except OutputTooLarge:  # there, but too large: said as such, not as a file trtexec did not write
                raise
            except (OSError, US3LError):
                raise US3LError(f"trtexec exited 0 but wrote no timings of {key} to {times} (--exportTimes); its "
                                "samples cannot be read") from None
            ms = parse_times(text, self.metric)
            # --iterations is "at least N" (trtexec keeps a second inference in flight and drains it after the
            # loop): the last k records are the k timings asked for, fewer is an error
            if len(ms) < k:
                raise US3LError(f"trtexec timed {len(ms)} inference(s) of {key}, asked for {k}")
            return [v / 1e3 for v in ms[len(ms) - k:]]

        return run

    def close(self) -> None:
        try:
            self.ex.rmtree(self.workdir)
        finally:
            if self._guard is not None:
                guard, self._guard = self._guard, None
                try:
                    guard.stdin.close()  # the end of its input: it removes the (removed) folder and exits
                except Exception:  # noqa: BLE001 - best effort: a lost connection has ended the guard already
                    pass
                finally:
                    guard.stdout.channel.close()
