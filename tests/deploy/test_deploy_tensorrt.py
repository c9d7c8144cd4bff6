"""TensorRT: the pure parts (trtexec command, engine compatibility) here; the runtime only with a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from us3l.deploy.backends import get_backend
from us3l.deploy.backends.tensorrt import check_engine_compat, trtexec_build_command
from us3l.errors import US3LError

TRT = get_backend("tensorrt")


def test_trtexec_fixed_shape_fp16() -> None:
    cmd = trtexec_build_command("m.onnx", "m.engine", fp16=True, shapes={"input": (1, 3, 32, 32)}, workspace_mb=512)
    assert cmd == [
        "trtexec",
        "--onnx=m.onnx",
        "--saveEngine=m.engine",
        "--skipInference",
        "--fp16",
        "--shapes=input:1x3x32x32",
        "--memPoolSize=workspace:512",
    ]


def test_trtexec_dynamic_profile_fp32_and_paths_with_spaces() -> None:
    cmd = trtexec_build_command(
        Path("/a b/m.onnx"),
        Path("/a b/m.engine"),
        fp16=False,
        shapes={"input": (8, 3, 32, 32)},
        min_shapes={"input": (1, 3, 32, 32)},
        max_shapes={"input": (64, 3, 32, 32)},
        trtexec="/usr/src/tensorrt/bin/trtexec",
    )
    assert isinstance(cmd, list) and cmd[0] == "/usr/src/tensorrt/bin/trtexec"
    assert "--onnx=/a b/m.onnx" in cmd and "--fp16" not in cmd  # one argv item, no shell quoting needed
    assert cmd[-3:] == ["--minShapes=input:1x3x32x32", "--optShapes=input:8x3x32x32", "--maxShapes=input:64x3x32x32"]


def test_trtexec_rejects_half_a_profile_and_bad_workspace() -> None:
    with pytest.raises(ValueError):
        trtexec_build_command("m.onnx", "m.engine", min_shapes={"input": (1, 3, 8, 8)})
    with pytest.raises(ValueError):
        trtexec_build_command("m.onnx", "m.engine", workspace_mb=0)


def test_engine_compat() -> None:
    rec = {"version": "10.3.0", "compute_capability": "8.7"}
    check_engine_compat(rec, "10.3.0.30", "8.7")  # same x.y.z build line: accepted
    with pytest.raises(US3LError, match="built with TensorRT 10.3.0, installed is 10.4.0"):
        check_engine_compat(rec, "10.4.0", "8.7")
    with pytest.raises(US3LError, match="compute capability 8.7, this GPU is 8.9"):
        check_engine_compat(rec, "10.3.0", "8.9")
    with pytest.raises(US3LError, match="TensorRT is not installed"):
        check_engine_compat(rec, None, None)


def test_engine_compat_without_a_gpu_and_with_a_short_version() -> None:
    """Red-team 2026-12-05 (rtA): TensorRT installed without a visible GPU read 'this GPU is None'; a recorded
    "10.3" was refused against an installed 10.3.0."""
    rec = {"version": "10.3.0", "compute_capability": "8.7"}
    with pytest.raises(US3LError, match=r"^this engine needs a GPU with compute capability 8.7; no CUDA GPU is "
                                        r"visible here$"):
        check_engine_compat(rec, "10.3.0", None)
    check_engine_compat({"version": "10.3", "compute_capability": "8.7"}, "10.3.0", "8.7")
    check_engine_compat({"version": "10.3.0"}, "10.3", "8.7")
    with pytest.raises(US3LError, match="built with TensorRT 10.3, installed is 10.3.1"):
        check_engine_compat({"version": "10.3"}, "10.3.1", "8.7")


@pytest.mark.skipif(TRT.available(), reason="TensorRT and a GPU are present")
def test_export_without_tensorrt_says_what_to_do(tmp_path: Path) -> None:
    what = r"run this export on the NVIDIA machine .*, or export ONNX here \(--backend onnx\) and build the engine on"
    with pytest.raises(US3LError, match=what + " the target with trtexec"):
        TRT.export(torch.nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8), tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(not TRT.available(), reason="needs TensorRT and a CUDA GPU")
def test_tensorrt_contract(tiny_net: torch.nn.Module, tmp_path: Path) -> None:  # pragma: no cover
    from us3l.deploy.verify import compare

    x = torch.randn(1, 3, 16, 16)
    art = TRT.export(tiny_net, x, tmp_path, precision="fp16")
    assert art.extras["tensorrt"]["compute_capability"]
    with TRT.load(art.path) as r, torch.no_grad():
        assert compare(tiny_net(x).numpy(), r.infer(x.numpy()), "fp16")


def test_trtexec_sets_exactly_the_python_api_builder_flags() -> None:
    """Red-team: int8=True with the fp16=True default gave --fp16 --int8, the Python API INT8 only."""
    from us3l.deploy.backends.tensorrt import TRTEXEC_FLAGS, builder_flags, trtexec_build_command

    def flags(cmd: list[str]) -> list[str]:
        return [a for a in cmd if a in TRTEXEC_FLAGS.values()]

    assert flags(trtexec_build_command("m.onnx", "m.engine", int8=True)) == ["--int8"]  # fp16=True is the default
    for kwargs, precision in (({"int8": True}, "int8"), ({}, "fp16"), ({"fp16": False}, "fp32")):
        cmd = trtexec_build_command("m.onnx", "m.engine", **kwargs)
        assert flags(cmd) == [TRTEXEC_FLAGS[f] for f in builder_flags(precision)]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_the_recorded_trtexec_command_of_a_fixed_batch_engine_gives_no_shapes(precision: str) -> None:
    """A fixed-batch model.onnx has a static input shape, and trtexec refuses shape options for a static model
    ("Static model does not take explicit shapes ..."): the recorded command failed on the target."""
    from us3l.deploy.backends.tensorrt import build_record

    cmd = build_record(precision, (2, 3, 32, 32), dynamic_batch=False)["trtexec_command"]
    assert not [a for a in cmd if a.split("=")[0] in ("--shapes", "--minShapes", "--optShapes", "--maxShapes")]
    dynamic = build_record(precision, (2, 3, 32, 32), dynamic_batch=True)["trtexec_command"]
    assert dynamic[-3:] == ["--minShapes=input:1x3x32x32", "--optShapes=input:2x3x32x32",
                            "--maxShapes=input:64x3x32x32"]


@pytest.mark.parametrize(("version", "build_only", "pool"), [
    ("8.5", "--buildOnly", "--memPoolSize=workspace:256"),
    ("8.5.2.2", "--buildOnly", "--memPoolSize=workspace:256"),
    ("8.6.1", "--skipInference", "--memPoolSize=workspace:256"),
    ("10.3.0", "--skipInference", "--memPoolSize=workspace:256"),
    (None, "--skipInference", "--memPoolSize=workspace:256"),
])
def test_trtexec_command_follows_the_tensorrt_version(version: str | None, build_only: str, pool: str) -> None:
    """The build command used TensorRT 10's options whatever the device had: the trtexec of JetPack 5 (TensorRT 8.5,
    the newest a Xavier NX runs) knows no --skipInference (its spelling is --buildOnly)."""
    cmd = trtexec_build_command("m.onnx", "m.engine", workspace_mb=256, tensorrt_version=version)
    assert cmd[3] == build_only and cmd[-1] == pool
    assert not {"--skipInference", "--buildOnly"} - {build_only} & set(cmd)


@pytest.mark.parametrize(("version", "message"), [
    ("8.2.1", r"^TensorRT 8\.2\.1 is not supported \(not a release us3l builds for\): us3l builds for TensorRT "
              r"8\.5, 8\.6 and 10\.x$"),
    ("9.2", r"^TensorRT 9\.2 is not supported"),
    ("11.1", r"^TensorRT 11\.1 is not supported \(its trtexec has no --fp16/--int8"),
    ("8", r"^TensorRT version '8' needs its minor version \(8\.5 or 8\.6\)"),
    ("ten", r"^TensorRT version 'ten' is not a version number like 8\.5 or 10\.3\.0"),
])
def test_trtexec_command_refuses_versions_it_cannot_spell_for(version: str, message: str) -> None:
    with pytest.raises(US3LError, match=message):
        trtexec_build_command("m.onnx", "m.engine", tensorrt_version=version)


def test_export_refuses_a_tensorrt_version_in_other_scripts_digits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--tensorrt-version ٨.٥` (Arabic-Indic digits) was read as TensorRT 8.5 (``\\d`` and ``int()`` take any
    script's digits) and an opset-17 file exported without a word; every other flag takes ASCII numbers only."""
    from us3l.cli import main

    code = main(["export", "--backend", "onnx", "--model", "cifar_resnet18", "--width", "0.25", "--quiet",
                 "--tensorrt-version", "\u0668.\u0665", "--out", str(tmp_path / "out")])
    assert code == 1
    assert capsys.readouterr().err == ("error: TensorRT version '\u0668.\u0665' is not a version number like 8.5 or "
                                       "10.3.0 (us3l builds for TensorRT 8.5, 8.6 and 10.x)\n")
    assert not (tmp_path / "out").exists()


def test_onnx_opset_fits_the_tensorrt_version() -> None:
    from us3l.deploy.backends.onnx import OPSET
    from us3l.deploy.backends.tensorrt_versions import onnx_opset_for

    assert onnx_opset_for("8.5.2", OPSET) == 17 and onnx_opset_for("8.6", OPSET) == 17
    assert onnx_opset_for("10.3", OPSET) == OPSET and onnx_opset_for(None, OPSET) == OPSET


@pytest.mark.slow  # 1.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_an_onnx_export_for_a_tensorrt_8_5_board_is_opset_17(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ONNX file a Jetson Xavier NX builds its engine from was opset 18, which TensorRT 8.5's parser (the newest
    JetPack 5 has) does not read; its device file now declares tensorrt_version = "8.5"."""
    import json

    from us3l.cli import main

    args = ["export", "--backend", "onnx", "--model", "cifar_resnet18", "--width", "0.25", "--quiet"]
    assert main([*args, "--device", "jetson-xavier-nx", "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    assert main([*args, "--device", "jetson-agx-orin", "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    opsets = {m.parent.parent.name: json.loads(m.read_text())["backend"]["onnx_opset"]
              for m in tmp_path.glob("*/*/manifest.json")}
    assert opsets == {"jetson-xavier-nx": 17, "jetson-agx-orin": 18}


def test_the_api_refuses_a_tensorrt_version_for_another_backend(tmp_path: Path) -> None:
    """`us3l export` refuses --tensorrt-version without --backend onnx; `export_width(..., "openvino",
    tensorrt_version="8.5")` ignored it and wrote an artifact, before any folder is made now."""
    from us3l.deploy.export import export_width
    from us3l.errors import US3LError
    from us3l.models import create_model

    model = create_model("cifar_resnet18", num_classes=0, base_channels=8)
    with pytest.raises(US3LError, match=r"^tensorrt_version sets the opset .*: it needs backend 'onnx', got "
                                        r"'openvino'$"):
        export_width(model, 0.25, "openvino", tmp_path / "out", model_name="cifar_resnet18", tensorrt_version="8.5")
    assert not (tmp_path / "out").exists()


def test_a_device_file_declares_its_tensorrt_version() -> None:
    from us3l.deploy.backends.tensorrt_versions import device_onnx_opset
    from us3l.devices.spec import spec_from_dict

    base = {"name": "board", "backends": ["tensorrt"]}
    assert spec_from_dict(base, "b.toml").tensorrt_version is None
    assert device_onnx_opset(spec_from_dict({**base, "tensorrt_version": "8.6.2"}, "b.toml")) == 17
    assert device_onnx_opset(spec_from_dict({**base, "tensorrt_version": "10.3"}, "b.toml")) is None
    with pytest.raises(US3LError, match=r"^device file b\.toml: 'tensorrt_version': TensorRT 7\.1 is not supported"):
        spec_from_dict({**base, "tensorrt_version": "7.1"}, "b.toml")


def test_a_tensorrt_8_python_api_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a JetPack 5 board (TensorRT 8.5) export --backend tensorrt went on to the TensorRT 10 API: create_network(0)
    is an implicit-batch network there, which the ONNX parser refuses, and the runner's execute_async_v3 is 10's."""
    from us3l.deploy.backends import tensorrt as trt_backend

    monkeypatch.setattr(trt_backend.TensorRtBackend, "runtime_version", lambda self: "8.5.2.2")
    monkeypatch.setattr(trt_backend, "current_compute_capability", lambda: "7.2")
    with pytest.raises(US3LError, match=r"^the tensorrt backend builds and runs engines with the TensorRT 10 Python "
                                        r"API, installed is TensorRT 8\.5\.2\.2: export ONNX here"):
        TRT.export(torch.nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8), tmp_path)
    with pytest.raises(US3LError, match=r"installed is TensorRT 8\.5\.2\.2"):
        TRT.load(tmp_path / "model.engine")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # 0.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_export_tensorrt_version_sets_the_onnx_opset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from us3l.cli import main

    args = ["export", "--model", "cifar_resnet18", "--width", "0.25", "--quiet", "--out", str(tmp_path)]
    assert main([*args, "--backend", "onnx", "--tensorrt-version", "8.6.2"]) == 0, capsys.readouterr().err
    (manifest,) = tmp_path.glob("local/*/manifest.json")
    assert json.loads(manifest.read_text())["backend"]["onnx_opset"] == 17
    capsys.readouterr()
    assert main([*args, "--backend", "onnx", "--tensorrt-version", "7.1"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: TensorRT 7.1 is not supported (not a release us3l builds for): us3l builds for TensorRT 8.5, 8.6 "
        "and 10.x"]
    assert main([*args, "--backend", "openvino", "--tensorrt-version", "8.5"]) == 1
    assert capsys.readouterr().err.startswith("error: --tensorrt-version sets the opset of an ONNX file")
