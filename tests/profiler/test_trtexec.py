"""trtexec timing command and ``--exportTimes`` parsing (format of TensorRT's sampleReporting.cpp)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from us3l.errors import US3LError
from us3l.profiler.trtexec import parse_times, parse_version, timing_command

# Hand-written in the layout trtexec (TensorRT 8.5/8.6/10.x, sampleReporting.cpp exportJSONTrace) writes: one
# record per timed inference, twelve keys, no endToEndMs.
EXPORT_TIMES = """[
  { "startEnqMs" : 1200.5, "endEnqMs" : 1200.61, "startH2dMs" : 1200.62, "endH2dMs" : 1200.70,
    "startComputeMs" : 1200.70, "endComputeMs" : 1202.20, "startD2hMs" : 1202.21, "endD2hMs" : 1202.25,
    "h2dMs" : 0.08, "computeMs" : 1.5, "d2hMs" : 0.04, "latencyMs" : 1.62 }
, { "startEnqMs" : 1202.3, "endEnqMs" : 1202.4, "startH2dMs" : 1202.41, "endH2dMs" : 1202.49,
    "startComputeMs" : 1202.49, "endComputeMs" : 1204.09, "startD2hMs" : 1204.10, "endD2hMs" : 1204.14,
    "h2dMs" : 0.08, "computeMs" : 1.6, "d2hMs" : 0.04, "latencyMs" : 1.72 }
]
"""

# The layout of older trtexecs (2021 sampleReporting.cpp): the same keys plus endToEndMs.
EXPORT_TIMES_E2E = """[
  { "startEnqMs" : 10.0, "endEnqMs" : 10.1, "startH2dMs" : 10.1, "endH2dMs" : 10.2, "startComputeMs" : 10.2,
    "endComputeMs" : 12.2, "startD2hMs" : 12.2, "endD2hMs" : 12.3, "h2dMs" : 0.1, "computeMs" : 2.0,
    "d2hMs" : 0.1, "latencyMs" : 2.2, "endToEndMs" : 2.5 }
]"""

# TensorRT 7 layout (in/out instead of h2d/d2h)
EXPORT_TIMES_TRT7 = """[
  { "startInMs" : 10.0, "endInMs" : 10.1, "startComputeMs" : 10.1, "endComputeMs" : 12.1,
    "startOutMs" : 12.1, "endOutMs" : 12.15, "inMs" : 0.1, "computeMs" : 2.0, "outMs" : 0.05,
    "latencyMs" : 2.15, "endToEndMs" : 2.15 }
]"""


def test_timing_command():
    cmd = timing_command("/tmp/x y/model.plan", "/tmp/x y/times.json", iterations=200, warmup_ms=150)
    assert cmd == ["trtexec", "--loadEngine=/tmp/x y/model.plan", "--iterations=200", "--warmUp=150",
                   "--duration=0", "--exportTimes=/tmp/x y/times.json", "--useSpinWait"]
    assert timing_command("e", "t", 1, trtexec="/usr/src/tensorrt/bin/trtexec", spin_wait=False)[0].endswith("trtexec")
    with pytest.raises(ValueError):
        timing_command("e", "t", 0)


def test_parse_times():
    assert parse_times(EXPORT_TIMES) == pytest.approx([1.62, 1.72])
    assert parse_times(EXPORT_TIMES, "computeMs") == pytest.approx([1.5, 1.6])
    assert parse_times(EXPORT_TIMES_TRT7) == pytest.approx([2.15])
    assert parse_times(EXPORT_TIMES_E2E, "endToEndMs") == pytest.approx([2.5])


def test_end_to_end_time_of_a_trtexec_that_writes_no_end_to_end_key() -> None:
    """trtexec 8.5/8.6/10.x's --exportTimes has no endToEndMs: the metric us3l offers was "no 'endToEndMs'
    values" with every trtexec it builds for. It is the D2H end minus the H2D start, as older trtexecs wrote it."""
    assert parse_times(EXPORT_TIMES, "endToEndMs") == pytest.approx([1202.25 - 1200.62, 1204.14 - 1202.41])
    # a head record without timings is skipped; computeMs falls back to end - start
    text = '[{"count": 1}, {"startComputeMs": 1.0, "endComputeMs": 3.5, "latencyMs": 2.6}]'
    assert parse_times(text, "computeMs") == pytest.approx([2.5])
    with pytest.raises(US3LError, match="not valid JSON"):
        parse_times("[{")
    with pytest.raises(US3LError, match="^trtexec --exportTimes output is not valid JSON: nested too deep$"):
        parse_times("[" * 100_000 + "]" * 100_000)  # was "error: RecursionError" (red-team)
    with pytest.raises(US3LError, match="no 'latencyMs'"):
        parse_times("[]")



@pytest.mark.parametrize(
    ("text", "metric", "message"),
    [
        ('[{"latencyMs": null}]', "latencyMs", "latencyMs record that is not a finite number: None"),
        ('[{"latencyMs": "1.2"}]', "latencyMs", "latencyMs record that is not a finite number: '1.2'"),
        ('[{"latencyMs": NaN}]', "latencyMs", "latencyMs record that is not a finite number: nan"),
        ('[{"latencyMs": Infinity}]', "latencyMs", "latencyMs record that is not a finite number: inf"),
        ('[{"latencyMs": true}]', "latencyMs", "latencyMs record that is not a finite number: True"),
        ('[{"latencyMs": -0.5}]', "latencyMs", "negative latencyMs duration: -0.5 ms"),
        ('[{"computeMs": [1]}]', "latencyMs", "latencyMs record that is not a finite number: [1]"),
        ('[{"startComputeMs": 5, "endComputeMs": 1}]', "computeMs", "negative computeMs duration: -4 ms"),
    ],
)
def test_parse_times_refuses_values_that_are_not_durations(text: str, metric: str, message: str) -> None:
    """Red-team 2026-12-05 (rtA): null or a list was a TypeError traceback, NaN/inf/negative passed into the
    latency samples."""
    with pytest.raises(US3LError, match=r"^trtexec --exportTimes output has a " + re.escape(message) + "$"):
        parse_times(text, metric)

def test_parse_version_and_build_command():
    assert parse_version("&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec --onnx=a") == "8.6.1"
    assert parse_version("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec") == "10.3.0"
    assert parse_version("no banner") is None
    from us3l.deploy.backends.tensorrt import trtexec_build_command

    cmd = trtexec_build_command("/d/model.onnx", "/d/model.plan", fp16=True)
    assert "--fp16" in cmd and "--onnx=/d/model.onnx" in cmd and "--saveEngine=/d/model.plan" in cmd


def test_a_five_digit_banner_code_is_major_times_10000() -> None:
    """A 5-digit banner code was read as 8.x's major*1000 form ("v90200" -> TensorRT 90.2.0, refused as a release
    whose trtexec has no --fp16/--int8); only the major*10000 form (TensorRT 10's NV_TENSORRT_VERSION) has 5."""
    from us3l.deploy.backends.tensorrt_versions import trt_release

    assert parse_version("&&&& RUNNING TensorRT.trtexec [TensorRT v90200] # trtexec --help") == "9.2.0"
    assert parse_version("&&&& RUNNING TensorRT.trtexec [TensorRT v101300] # trtexec") == "10.13.0"
    assert parse_version("&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # trtexec") == "8.5.2"
    with pytest.raises(US3LError, match=r"^TensorRT 9\.2\.0 is not supported \(not a release us3l builds for\)"):
        trt_release(parse_version("[TensorRT v90200]"))


_FAKE_TRTEXEC = """#!{python}
import json, sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
if "--help" in sys.argv:
    print("TensorRT.trtexec [TensorRT v100300] --onnx=<file>")
elif "--exportTimes" in args:  # one more inference than asked, as trtexec's double-buffered loop can time
    n = int(args["--iterations"]) + {extra}
    with open(args["--exportTimes"], "w") as f:
        json.dump([{{"latencyMs": 1.0 + i}} for i in range(n)], f)
"""


@pytest.mark.parametrize("extra", [1, 0, -1])
def test_a_trtexec_chunk_gives_exactly_the_timings_asked_for(
    extra: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trtexec's --iterations is "at least N" (and --exportTimes holds every timed inference): a chunk that came
    back with one more record failed the measurement loop's count check ("returned 6 samples, asked for 5")."""
    import sys

    from us3l.profiler.executors import LocalExecutor
    from us3l.profiler.trt_timers import TrtexecSession

    _put_on_path(tmp_path, monkeypatch, _FAKE_TRTEXEC.format(python=sys.executable, extra=extra))
    trt = TrtexecSession(LocalExecutor(60))
    try:
        trt.engines["w"] = str(tmp_path / "model.plan")
        Path(trt.workdir, "w").mkdir()
        timer = trt.timer("w")
        if extra < 0:
            with pytest.raises(US3LError, match=r"^trtexec timed 4 inference\(s\) of w, asked for 5$"):
                timer(5)
        else:
            assert timer(5) == pytest.approx([(1.0 + i) / 1e3 for i in range(extra, 5 + extra)])
    finally:
        trt.close()


_FAKE_ONCE_TRTEXEC = """#!{python}
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
if "--help" in sys.argv:
    print("TensorRT.trtexec [TensorRT v100300] --onnx=<file>")
elif "--exportTimes" in args and not os.path.exists({flag!r}):  # writes its times on the first chunk only
    open({flag!r}, "w").close()
    with open(args["--exportTimes"], "w") as f:
        json.dump([{{"latencyMs": 1.0 + i}} for i in range(int(args["--iterations"]))], f)
"""


def test_a_chunk_without_its_own_timings_is_an_error_not_the_last_chunks_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red-team 2026-12-07: every chunk wrote --exportTimes to one path, never removed; a trtexec that exited 0
    without writing it (here: from its second run on) had the first chunk's samples counted again, silently."""
    import sys

    from us3l.profiler.executors import LocalExecutor
    from us3l.profiler.trt_timers import TrtexecSession

    _put_on_path(tmp_path, monkeypatch, _FAKE_ONCE_TRTEXEC.format(python=sys.executable, flag=str(tmp_path / "ran")))
    trt = TrtexecSession(LocalExecutor(60))
    try:
        trt.engines["w"] = str(tmp_path / "model.plan")
        Path(trt.workdir, "w").mkdir()
        timer = trt.timer("w")
        assert timer(3) == pytest.approx([0.001, 0.002, 0.003])
        with pytest.raises(US3LError, match=r"^trtexec exited 0 but wrote no timings of w to .*/w/times-1\.json "
                                            r"\(--exportTimes\); its samples cannot be read$"):
            timer(3)
    finally:
        trt.close()


def test_a_timings_file_too_large_to_read_is_said_so_not_called_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSHSession.read_text refuses a remote file over MAX_OUTPUT_BYTES (OutputTooLarge, red-team 2026-12-08): the
    timer's "wrote no timings" (for a file that is not there) must not replace that line."""
    import sys

    from us3l.devices.ssh import OutputTooLarge
    from us3l.profiler.executors import LocalExecutor
    from us3l.profiler.trt_timers import TrtexecSession

    class _Bounded(LocalExecutor):
        def read_text(self, remote: str) -> str:
            raise OutputTooLarge(f"reading ssh://u@h:22:{remote} failed: the file is larger than 64 MiB, which no "
                                 "file us3l reads back is")

    _put_on_path(tmp_path, monkeypatch, _FAKE_ONCE_TRTEXEC.format(python=sys.executable, flag=str(tmp_path / "ran")))
    trt = TrtexecSession(_Bounded(60))
    try:
        trt.engines["w"] = str(tmp_path / "model.plan")
        Path(trt.workdir, "w").mkdir()
        with pytest.raises(US3LError, match=r"^reading ssh://u@h:22:.*/w/times-0\.json failed: the file is larger "
                                            r"than 64 MiB, which no file us3l reads back is$"):
            trt.timer("w")(3)
    finally:
        trt.close()


_FAKE_OLD_TRTEXEC = """#!{python}
import sys
banner = "&&&& RUNNING TensorRT.trtexec [TensorRT v{code}] # trtexec " + " ".join(sys.argv[1:])
print(banner)
if "--help" not in sys.argv:
    with open({log!r}, "a") as f:
        f.write(" ".join(sys.argv[1:]) + "\\n")
    if "--skipInference" in sys.argv and "{code}" == "8502":  # TensorRT 8.5's trtexec knows no such option
        print("Unknown option: --skipInference")
        sys.exit(1)
"""


def _onnx_file(path: Path, opset: int) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


def _put_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """``script`` as an executable ``trtexec`` first on PATH."""
    import os
    import stat

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "trtexec"
    fake.write_text(script)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def _fake_trtexec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str) -> Path:
    """A trtexec of TensorRT ``code`` (``8502``) on PATH that logs its arguments; returns the log's path."""
    import sys

    log = tmp_path / "argv.log"
    _put_on_path(tmp_path, monkeypatch, _FAKE_OLD_TRTEXEC.format(python=sys.executable, code=code, log=str(log)))
    return log


def test_a_tensorrt_8_5_device_builds_with_its_own_options_and_refuses_opset_18(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Jetson Xavier NX (JetPack 5, TensorRT 8.5) was sent TensorRT 10's --skipInference, which its trtexec does
    not know, and an opset-18 ONNX file, which its parser does not read."""
    from us3l.profiler.executors import LocalExecutor
    from us3l.profiler.trt_timers import TrtexecSession

    log = _fake_trtexec(tmp_path, monkeypatch, "8502")
    trt = TrtexecSession(LocalExecutor(60))
    try:
        assert trt.version == "8.5.2" and trt.release.name == "8.5"
        trt.build("w17", _onnx_file(tmp_path / "a.onnx", 17))
        argv = log.read_text().split()
        assert "--buildOnly" in argv and "--skipInference" not in argv and "--fp16" in argv
        with pytest.raises(US3LError, match=r"^the device's TensorRT 8\.5\.2 reads ONNX up to opset 17, b\.onnx of "
                                            r"width 'w18' is opset 18: declare tensorrt_version = \"8\.5\""):
            trt.build("w18", _onnx_file(tmp_path / "b.onnx", 18))
    finally:
        trt.close()


def test_a_device_with_an_unsupported_tensorrt_is_refused_before_anything_is_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from us3l.profiler.executors import LocalExecutor
    from us3l.profiler.trt_timers import TrtexecSession

    _fake_trtexec(tmp_path, monkeypatch, "110100")
    with pytest.raises(US3LError, match=r"^TensorRT 11\.1\.0 is not supported"):
        TrtexecSession(LocalExecutor(60))


_FAKE_FULL_TRTEXEC = """#!{python}
import json, sys
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
print("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec")
if "saveEngine" in opts:
    open(opts["saveEngine"], "w").write("engine")
elif "exportTimes" in opts:
    json.dump([{{"latencyMs": 1.0 + 0.001 * (i % 7)}} for i in range(int(opts["iterations"]))],
              open(opts["exportTimes"], "w"))
"""


@pytest.mark.slow  # 1.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_tensorrt_profile_records_no_cpu_thread_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-07: `--threads 3` on a TensorRT device was recorded (and titled "3 threads") though trtexec
    takes no thread count; without it, the machine's cores were recorded."""
    import json
    import sys

    from us3l.cli import main

    _put_on_path(tmp_path, monkeypatch, _FAKE_FULL_TRTEXEC.format(python=sys.executable))
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "faketrt.toml").write_text('name = "faketrt"\nbackends = ["tensorrt"]\nprecision = "fp16"\n'
                                          "[measure]\nmax_seconds = 0.2\n")
    monkeypatch.setenv("US3L_DEVICES_DIR", str(devices))
    args = ["profile", "--device", "faketrt", "--model", "cifar_resnet18", "--widths", "0.25", "--quiet"]
    assert main([*args, "--threads", "3", "--out", str(tmp_path / "a")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --threads pins a CPU runtime's threads; TensorRT runs on the GPU (trtexec takes no thread count): "
        "drop --threads")
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    (written,) = (tmp_path / "b").glob("*.json")
    doc = json.loads(written.read_text())
    assert doc["backend"] == "tensorrt" and doc["threads"] is None
