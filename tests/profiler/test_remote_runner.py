"""The remote runner's own timed call (``profiler/remote_runner.py``, shipped to devices): the runtime's inference
on an input bound once (issue 18 item 4). Real onnxruntime / OpenVINO sessions on a tiny model; no thresholds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from us3l.deploy.backends import get_backend
from us3l.profiler import remote_runner

CPU_BACKENDS = [b for b in ("onnx", "openvino") if get_backend(b).available()]


def load(name: str, path: Path) -> object:
    if name == "onnx":
        return remote_runner.OrtModel(str(path), 1)
    return remote_runner.OvModel(str(path), 1, "CPU", "fp32")


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_remote_runner_times_positive_floats_and_leaves_the_input(name: str, tmp_path: Path) -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    rng = np.random.default_rng(0)
    x, y = (np.ascontiguousarray(rng.standard_normal((1, 3, 8, 8)), dtype=np.float32) for _ in range(2))
    art = get_backend(name).export(net, torch.from_numpy(x), tmp_path, precision="fp32")
    model = load(name, art.path)
    x_before = x.copy()
    samples = [model.time_once(x) for _ in range(3)] + [model.time_once(y)] + [model.time_once(x)]
    assert all(isinstance(t, float) and t > 0 for t in samples)
    np.testing.assert_array_equal(x, x_before)


class _Lines:
    """A runner's stdout/stdin stand-in: answers one line per request, records what was asked."""

    def __init__(self, answers: list[str]) -> None:
        self.answers, self.asked = list(answers), []

    def readline(self, size: int = -1) -> str:
        return self.answers.pop(0) if self.answers else ""

    def write(self, text: str) -> None:
        self.asked.append(text)

    def flush(self) -> None:
        pass


def _runner(answers: list[str]):
    from types import SimpleNamespace

    from us3l.devices.ssh import RemoteProcess
    from us3l.profiler.remote import RemoteRunner

    session = SimpleNamespace(reach=SimpleNamespace(url="ssh://u@h:22"))
    runner = RemoteRunner(session, "onnx", {}, None)  # type: ignore[arg-type]
    lines = _Lines(answers)
    runner._proc = RemoteProcess(session, 4242, lines, lines, None)  # type: ignore[arg-type]
    return runner, lines


@pytest.mark.parametrize("answer", ['[1, 2]\n', '"error"\n', "5\n", "null\n"])
def test_an_answer_that_is_not_an_object_is_one_line(answer: str) -> None:
    from us3l.errors import US3LError

    runner, _ = _runner([answer])
    with pytest.raises(US3LError, match="^remote runner sent JSON that is not an object: "):
        runner.stat()
    assert runner.failed


def test_the_runners_own_error_is_not_hidden_by_the_unload(monkeypatch) -> None:
    from us3l.errors import US3LError

    runner, lines = _runner(['{"loaded": "m"}\n', '{"error": "bad request: n must be an integer"}\n'])
    with pytest.raises(US3LError, match="bad request: n must be an integer"):  # not a later unload's error
        with runner.open("m") as timer:
            try:
                timer(5)
            except US3LError as exc:
                first = exc
        raise first
    assert not any('"unload"' in a for a in lines.asked)


@pytest.mark.parametrize(("stdin", "kept"), [("", False), ('{"cmd": "quit"}\n', True)])
def test_a_runner_whose_host_went_away_removes_its_work_folder(tmp_path: Path, stdin: str, kept: bool) -> None:
    """Red-team 2026-12-05: a connection lost mid-profile left the 80 MB work folder on the device for good. The
    end of stdin without ``quit`` means the host is gone; after ``quit`` the host removes the folder itself."""
    import json
    import subprocess
    import sys

    work = tmp_path / "us3l-profile.abc123"
    work.mkdir()
    (work / "manifest.json").write_text(json.dumps({"models": {}}))
    proc = subprocess.run([sys.executable, remote_runner.__file__, "--backend", "onnx", "--manifest",
                           str(work / "manifest.json"), "--threads", "1"], input=stdin, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[0])["ready"] is True
    assert work.exists() == kept


def test_a_runner_never_removes_a_folder_the_host_did_not_make_for_it(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    remote_runner.remove_own_folder(str(tmp_path / "mine"))
    assert (tmp_path / "mine").is_dir()


def test_the_remote_openvino_configuration_is_the_local_one() -> None:
    """The runner (shipped to devices without us3l) keeps its own copy of the compile configuration; an fp16 IR on
    a remote GPU or NPU was compiled without the f16 hint that a local profile or export gives it."""
    from us3l.deploy.backends.openvino import compile_config

    for device in ("CPU", "GPU", "GPU.1", "NPU", "AUTO", "AUTO:GPU", "AUTO:-GPU", "HETERO:GPU,CPU", "BATCH:GPU"):
        for precision in (None, "fp32", "fp16", "int8"):
            for threads in (None, 1, 4):
                assert remote_runner.ov_config(threads, device, precision) == compile_config(threads, device, precision)


def _ov_runner_session(tmp_path: Path, device: str, stdin: str) -> list[dict]:
    """The real runner (a subprocess, as on a device) on one tiny OpenVINO IR: its answers, one per line."""
    import json
    import subprocess
    import sys

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    art = get_backend("openvino").export(net, torch.zeros(1, 3, 8, 8), tmp_path / "m", precision="fp32")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"models": {"m": {"path": str(art.path.relative_to(tmp_path)),
                                                     "input_shape": [1, 3, 8, 8]}}}))
    home = tmp_path / "home"  # the device user's home: Intel's telemetry must write nothing there
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")} | {"HOME": str(home)}
    proc = subprocess.run([sys.executable, remote_runner.__file__, "--backend", "openvino", "--manifest",
                           str(manifest), "--threads", "1", "--device", device], input=stdin, capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in home.rglob("*")) == []
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.skipif("openvino" not in CPU_BACKENDS, reason="openvino not installed")
def test_the_host_refuses_a_device_the_remote_openvino_lacks_before_any_load(tmp_path: Path) -> None:
    """Red-team: `openvino_device = "CPU.1"` reached the remote runner's compile_model, which exited with a
    traceback; the runner now reports its devices when ready and the host refuses the name as a local profile
    does."""
    from us3l.deploy.backends.openvino import device_ids, shared_core
    from us3l.errors import US3LError

    (ready,) = _ov_runner_session(tmp_path, "CPU.1", '{"cmd": "quit"}\n')
    core = shared_core()
    assert ready["openvino_devices"] == {"available": list(core.available_devices), "ids": device_ids(core)}
    runner, _ = _runner([])
    runner.backend, runner.device, runner.where, runner.ready = "openvino", "CPU.1", "device file d.toml: ", ready
    with pytest.raises(US3LError) as info:
        runner._check_device()
    assert str(info.value) == (
        "device file d.toml: remote runner on ssh://u@h:22: OpenVINO device 'CPU.1' is not present (available: "
        f"{', '.join(core.available_devices)}; or AUTO, HETERO:<list>, MULTI:<list>, BATCH:<device> over those)")
    runner.device = "AUTO:CPU"
    runner._check_device()


@pytest.mark.skipif("openvino" not in CPU_BACKENDS, reason="openvino not installed")
def test_a_compile_the_remote_openvino_refuses_is_one_line(tmp_path: Path) -> None:
    """The runner answers OpenVINO's refusal (it exited with a traceback whose last line the host showed); the host
    words it as a local profile does."""
    import json

    from us3l.errors import US3LError

    ready, answer = _ov_runner_session(tmp_path, "BATCH:CPU(4)", '{"cmd": "load", "key": "m"}\n{"cmd": "quit"}\n')
    assert ready["ready"] is True and answer["kind"] == "openvino_compile"
    runner, _ = _runner([json.dumps(answer) + "\n"])
    runner.device, runner.where = "BATCH:CPU(4)", "device file d.toml: "
    with pytest.raises(US3LError) as info:
        runner.load("m")
    assert str(info.value) == ("device file d.toml: remote runner on ssh://u@h:22: OpenVINO cannot compile the model "
                               "for device 'BATCH:CPU(4)': Unsupported config key: DEVICE_PROPERTIES")
    assert runner.failed


def test_a_thread_count_the_device_cannot_start_is_one_answer(tmp_path: Path) -> None:
    """A device file's threads may be up to MAX_THREADS (65536); the runner passed any count to the runtime, whose
    thread pool then failed to start the threads and the process died. It answers one error line instead, which the
    host reports as one line, bounded as the host bounds its own (us3l.train.threads.MAX_LOCAL_THREADS)."""
    import json
    import subprocess
    import sys

    from us3l.train.threads import MAX_LOCAL_THREADS, usable_cores

    assert remote_runner.MAX_LOCAL_THREADS == MAX_LOCAL_THREADS
    (tmp_path / "manifest.json").write_text(json.dumps({"models": {}}))
    proc = subprocess.run([sys.executable, remote_runner.__file__, "--backend", "onnx", "--manifest",
                           str(tmp_path / "manifest.json"), "--threads", "65536"], input="", capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == remote_runner.EXIT_BAD_INPUT
    most = max(MAX_LOCAL_THREADS, usable_cores())
    assert json.loads(proc.stdout) == {"error": f"--threads 65536 is more threads than this device can start: at most "
                                                f"{most} here (1024, or its usable cores where more; it has "
                                                f"{usable_cores()})"}
