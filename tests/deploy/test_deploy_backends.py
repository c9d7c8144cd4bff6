"""One contract for every backend: export -> load -> infer -> compare with PyTorch (real runtimes, no fakes)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from us3l.deploy.backends import available_backends, get_backend, list_backends
from us3l.deploy.backends.base import version_tuple
from us3l.deploy.verify import compare
from us3l.errors import MissingDependencyError, US3LError

CPU_BACKENDS = [b for b in ("onnx", "openvino") if get_backend(b).available()]


@pytest.mark.parametrize("name", available_backends())
@pytest.mark.parametrize("dynamic_batch", [False, True])
def test_backend_contract(name: str, dynamic_batch: bool, tiny_net: torch.nn.Module, tmp_path: Path) -> None:
    backend = get_backend(name)
    x = torch.randn(2, 3, 16, 16)
    art = backend.export(tiny_net, x, tmp_path, precision=backend.precisions[0], dynamic_batch=dynamic_batch)
    assert art.path.is_file() and all(f.is_file() for f in art.files)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in art.files)  # no leftovers
    assert art.input_shape == (2, 3, 16, 16) and art.output_shape == (2, 6)
    with torch.no_grad():
        ref = tiny_net(x).numpy()
    with backend.load(art.path, threads=1, precision=art.precision) as runner:
        out = runner.infer(x.numpy())
        assert out.dtype == np.float32 and out.shape == (2, 6)
        assert compare(ref, out, art.precision)
        assert np.abs(out - ref).max() < 1e-4
        assert runner.time_once(x.numpy()) > 0
        if dynamic_batch:
            x5 = torch.randn(5, 3, 16, 16)
            with torch.no_grad():
                assert compare(tiny_net(x5).numpy(), runner.infer(x5.numpy()), art.precision)


@pytest.mark.skipif("openvino" not in CPU_BACKENDS, reason="openvino not installed")
def test_openvino_fp16_weights_are_smaller_and_close(tiny_net: torch.nn.Module, tmp_path: Path) -> None:
    be = get_backend("openvino")
    x = torch.randn(1, 3, 16, 16)
    a32 = be.export(tiny_net, x, tmp_path / "a", "fp32")
    a16 = be.export(tiny_net, x, tmp_path / "b", "fp16")
    assert (tmp_path / "b" / "model.bin").stat().st_size < (tmp_path / "a" / "model.bin").stat().st_size
    with be.load(a16.path, precision="fp16") as r, torch.no_grad():
        assert compare(tiny_net(x).numpy(), r.infer(x), "fp16")
    assert a32.extras["weights"] == "fp32"


def test_onnx_is_one_self_contained_file_with_named_tensors(tiny_net: torch.nn.Module, tmp_path: Path) -> None:
    import onnx

    art = get_backend("onnx").export(tiny_net, torch.randn(1, 3, 16, 16), tmp_path, dynamic_batch=True)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no side .data file
    proto = onnx.load(str(art.path))
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["embedding"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    assert "BatchNormalization" not in {n.op_type for n in proto.graph.node}  # folded into Conv


def test_exported_onnx_runs_without_us3l(tiny_net: torch.nn.Module, tmp_path: Path) -> None:
    """The artifact is usable by a plain onnxruntime session in a process that never imports us3l."""
    x = torch.randn(1, 3, 16, 16)
    art = get_backend("onnx").export(tiny_net, x, tmp_path)
    np.save(tmp_path / "x.npy", x.numpy())
    code = (
        "import sys, json, numpy as np, onnxruntime as ort\n"
        "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
        "y = s.run(['embedding'], {'input': np.load(sys.argv[2])})[0]\n"
        "assert not any(m.split('.')[0] in ('us3l', 'torch') for m in sys.modules)\n"
        "print(json.dumps(y.tolist()))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code, str(art.path), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    with torch.no_grad():
        assert compare(tiny_net(x).numpy(), np.array(json.loads(proc.stdout), dtype=np.float32))


def test_registry_names_and_unknown_backend() -> None:
    assert list_backends() == ["onnx", "openvino", "tensorrt"]
    assert get_backend(" ONNX ").name == "onnx"
    with pytest.raises(US3LError, match="unknown backend 'tflite'.*onnx, openvino, tensorrt"):
        get_backend("tflite")


def test_onnx_refuses_fp16_with_a_pointer(tiny_net: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(US3LError, match="exports precision fp32/int8, not 'fp16'"):
        get_backend("onnx").export(tiny_net, torch.randn(1, 3, 8, 8), tmp_path, precision="fp16")


def test_missing_runtime_is_reported_only_when_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a))
    be = get_backend("openvino")  # importing and looking up the backend still works
    assert not be.available() and be.runtime_version() is None
    with pytest.raises(MissingDependencyError, match=r"pip install 'us3l\[openvino\]'"):
        be.load(tmp_path / "model.xml")


def test_onnx_runner_rejects_absent_provider(tiny_net: torch.nn.Module, tmp_path: Path) -> None:
    import onnxruntime as ort

    art = get_backend("onnx").export(tiny_net, torch.randn(1, 3, 8, 8), tmp_path)
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider present")
    with pytest.raises(US3LError, match="no CUDAExecutionProvider"):
        get_backend("onnx").load(art.path, device="cuda")


def test_onnx_runner_refuses_a_gpu_provider_that_fell_back_to_the_cpu(
    tiny_net: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime-gpu lists CUDAExecutionProvider even where it cannot start (no cuDNN, no GPU) and then runs the
    session on the CPU: an export 'verified on cuda' (or a profile timed 'on cuda') ran on the CPU."""
    import onnxruntime as ort

    art = get_backend("onnx").export(tiny_net, torch.randn(1, 3, 8, 8), tmp_path)
    real = ort.InferenceSession

    def falls_back(source: object, sess_options: object = None, providers: object = None, **kwargs: object) -> object:
        return real(source, sess_options=sess_options, providers=["CPUExecutionProvider"], **kwargs)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", falls_back)
    with pytest.raises(US3LError, match=r"^onnxruntime could not start CUDAExecutionProvider for device 'cuda' "
                                        r"\(the session runs on CPUExecutionProvider;"):
        get_backend("onnx").load(art.path, device="cuda")
    get_backend("onnx").load(art.path, device="cpu").close()  # the CPU provider itself is what was asked for


def test_onnx_runner_turns_a_failing_gpu_provider_into_one_line_and_keeps_stdout_clean(
    tiny_net: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """When creating the CUDA provider raises, onnxruntime's own fallback printed "EP Error ... Falling back to
    ['CPUExecutionProvider'] and retrying." on stdout (breaking `--json`) and ran the session on the CPU. The real
    InferenceSession runs here; only its provider creation is faked to fail as onnxruntime-gpu does without CUDA."""
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_inference_collection as collection

    art = get_backend("onnx").export(tiny_net, torch.randn(1, 3, 8, 8), tmp_path)
    real_create = collection.InferenceSession._create_inference_session

    def create(self: object, providers: object, provider_options: object, *args: object) -> object:
        if providers and "CUDAExecutionProvider" in list(providers):  # type: ignore[call-overload]
            self._fallback_providers = ["CPUExecutionProvider"]  # type: ignore[attr-defined]  # as the real one sets
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real_create(self, providers, provider_options, *args)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(collection.InferenceSession, "_create_inference_session", create)
    capsys.readouterr()
    with pytest.raises(US3LError) as info:
        get_backend("onnx").load(art.path, device="cuda")
    assert capsys.readouterr().out == ""
    message = str(info.value)
    assert message.startswith("onnxruntime could not start CUDAExecutionProvider for device 'cuda' (CUDA failure 100")
    assert "\n" not in message
    get_backend("onnx").load(art.path, device="cpu").close()


def test_version_tuple() -> None:
    assert version_tuple("1.32.0") == (1, 32, 0)
    assert version_tuple("2026.4.1-22982-e213a147257-releases/2026/4") == (2026, 4, 1)
    assert version_tuple("10.3.0.post12.dev1") == (10, 3, 0)
    assert version_tuple("2.13.0+cpu") == (2, 13, 0)


def test_a_signal_while_an_export_lands_files_comes_after_the_last(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``Backend.export`` into a folder holding a previous OpenVINO IR (the Python API, docs/deploy.md): a SIGTERM
    right after ``model.bin`` landed waits until ``model.xml`` has landed too. It left the new weights beside the
    old graph, an IR that no longer matched itself."""
    import os
    import signal

    from tests.signals import Interrupted
    from us3l.deploy.backends.base import staging_dir

    out = tmp_path / "ir"
    out.mkdir()
    for name in ("model.bin", "model.xml"):
        (out / name).write_text(f"old {name}")
    real, landed = os.replace, []

    def replace_then_signal(src, dst) -> None:  # type: ignore[no-untyped-def]
        real(src, dst)
        landed.append(Path(dst).name)
        if len(landed) == 1:
            signal.raise_signal(signal.SIGTERM)

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGTERM, handler)
    monkeypatch.setattr(os, "replace", replace_then_signal)
    try:
        with pytest.raises(Interrupted), staging_dir(out) as tmp:
            for name in ("model.bin", "model.xml"):
                (tmp / name).write_text(f"new {name}")
    finally:
        monkeypatch.setattr(os, "replace", real)
        signal.signal(signal.SIGTERM, previous)
    assert landed == ["model.bin", "model.xml"]
    assert {p.name: p.read_text() for p in out.iterdir()} == {"model.bin": "new model.bin",
                                                              "model.xml": "new model.xml"}
