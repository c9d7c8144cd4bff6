"""Red-team findings (2026-12-05, rtA) on ``us3l export``'s flags and output (``--json`` when verification fails,
flags ``--switchable`` does not use, an empty ``--precision`` or ``--runtime-device``) and ``export_width``'s
``verify_inputs``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from us3l.cli import main

MODEL = "cifar_resnet18"


def _failing_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    from us3l.deploy import verify

    monkeypatch.setitem(verify.TOLERANCES, "fp32", verify.Tolerance(max_abs=-1.0, min_cosine=2.0))


def test_json_export_whose_verification_fails_prints_one_json_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """`--json` prints exactly one JSON document on stdout; a failed verification printed the rich table there."""
    _failing_fp32(monkeypatch)
    code = main(["export", "--backend", "onnx", "--model", MODEL, "--width", "0.25", "--out", str(tmp_path),
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    doc = json.loads(out)
    (exp,) = doc["exports"]
    assert exp["valid"] is False and exp["directory"].endswith(".failed")
    assert exp["verification"]["passed"] is False
    assert err.startswith("error: verification FAILED") and "Traceback" not in err


@pytest.mark.slow  # a switchable export for one JSON error; the static one stays fast
def test_json_switchable_export_whose_verification_fails_prints_one_json_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _failing_fp32(monkeypatch)
    code = main(["export", "--backend", "onnx", "--model", MODEL, "--switchable", "--widths", "0.5,0.25",
                 "--out", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    doc = json.loads(out)
    assert doc["valid"] is False and doc["directory"].endswith(".failed")
    assert [p["width"] for p in doc["per_width"]] == [0.5, 0.25]
    assert err.startswith("error: verification failed")


@pytest.mark.parametrize(
    ("extra", "dropped"),
    [
        (["--runtime-device", "NPU"], "--runtime-device"),
        (["--calib-data", "builtin", "--calib-images", "64"], "--calib-images, --calib-data"),
    ],
)
def test_switchable_refuses_the_flags_it_does_not_use(extra: list[str], dropped: str, tmp_path: Path, capsys) -> None:
    """`--switchable --runtime-device NPU` verified on the CPU and recorded CPU, without a word; the calibration
    flags were dropped as silently."""
    code = main(["export", "--backend", "openvino", "--model", MODEL, "--switchable", "--widths", "0.5,0.25",
                 "--out", str(tmp_path / "out"), *extra])
    assert code == 1
    assert capsys.readouterr().err == f"error: --switchable exports fp32 and verifies on the CPU: drop {dropped}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "onnx", "--calib-data", "builtin"],
         "error: this export is fp32: drop --calib-data (int8 calibration), or give --precision int8"),
        (["--backend", "openvino", "--precision", "fp16", "--calib-images", "64", "--calib-data", "builtin"],
         "error: this export is fp16: drop --calib-images, --calib-data (int8 calibration), or give --precision "
         "int8"),
    ],
)
def test_calibration_flags_on_an_export_without_int8_are_refused(extra: list[str], message: str, tmp_path: Path,
                                                                   capsys) -> None:
    """Red-team 2026-12-06 (rtL): `--width 0.5 --calib-data builtin` (the --precision int8 forgotten) exported fp32
    and dropped the calibration flags without a word; --switchable refuses them."""
    args = ["export", "--model", MODEL, "--width", "0.25", "--out", str(tmp_path / "out"), *extra]
    assert main(args) == 1
    assert capsys.readouterr().err == message + "\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["fp64", " fp64 "])
def test_an_empty_or_unknown_precision_is_refused_as_profile_refuses_it(value: str, tmp_path: Path, capsys) -> None:
    """`--precision ''` exported fp32 (and overrode the precision a --selection chose) as if it were not given;
    `us3l profile` refuses it with this line."""
    code = main(["export", "--backend", "onnx", "--model", MODEL, "--width", "0.25", "--out", str(tmp_path / "o"),
                 "--precision", value])
    assert code == 1
    assert capsys.readouterr().err == f"error: --precision must be fp32, fp16 or int8, got {value.strip()!r}\n"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_an_empty_runtime_device_is_refused(backend: str, tmp_path: Path, capsys) -> None:
    """`--runtime-device ''` verified on the default device as if the flag were absent."""
    code = main(["export", "--backend", backend, "--model", MODEL, "--width", "0.25", "--out", str(tmp_path / "o"),
                 "--runtime-device", ""])
    assert code == 2  # the CLI's rule for every empty value (tests/test_cli_foundation.py)
    assert capsys.readouterr().err == "error: --runtime-device is given an empty value (see: us3l export --help)\n"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("shape", [(8, 3, 16, 16), (3, 32, 32), (0, 3, 32, 32)])
def test_verify_inputs_of_another_image_size_are_refused(shape: tuple[int, ...], tmp_path: Path) -> None:
    """The first provided image also traces the graph: 16 px images for a 32 px model shipped a valid 16 px
    artifact whose manifest's MACs were the 32 px network's."""
    import numpy as np

    from us3l.deploy.export import export_width
    from us3l.errors import US3LError
    from us3l.models import create_model

    net = create_model(MODEL, num_classes=0, base_channels=8)  # 32 px
    x = np.zeros(shape, np.float32)
    with pytest.raises(US3LError, match=r"^verify_inputs must be N x 3x32x32 normalised images \(the model's "
                                        rf"input\), got shape {'x'.join(map(str, shape))}$"):
        export_width(net, 0.25, "onnx", tmp_path / "o", verify_inputs=x, model_name=MODEL)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("norm", [None, {}, {"mean": [0.5, 0.5, 0.5]}])
def test_a_checkpoint_without_normalization_is_one_clear_line(norm: object, tmp_path: Path, capsys) -> None:
    """checkpoint.json may hold "normalization": null (the checkpoint reader allows it); export failed with
    'error: TypeError: bad operand type for unary -: 'NoneType''."""
    from types import SimpleNamespace

    from us3l.deploy.export import export_width
    from us3l.errors import US3LError
    from us3l.models import create_model

    ckpt = SimpleNamespace(model=create_model(MODEL, num_classes=0, base_channels=8), sha256="0" * 64,
                           path=tmp_path / "run" / "checkpoint.safetensors",
                           meta={"model": MODEL, "normalization": norm, "input_size": 32})
    with pytest.raises(US3LError, match=r"run/checkpoint.json records no input normalization \(mean and std\), "
                                        r"which an artifact's manifest must state"):
        export_width(ckpt, 0.25, "onnx", tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("switchable", [False, True])
def test_a_file_where_the_device_folder_goes_is_one_clear_line(switchable: bool, tmp_path: Path, capsys) -> None:
    """OUT/<device> as a file (or a dangling link) was 'error: File exists: OUT/local' from its mkdir."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "local").write_text("mine\n")
    (out / "edge").symlink_to(tmp_path / "nowhere")
    args = ["export", "--backend", "onnx", "--model", MODEL, "--out", str(out), "--quiet"]
    args += ["--switchable", "--widths", "0.5,0.25"] if switchable else ["--width", "0.25"]
    assert main(args) == 1
    assert capsys.readouterr().err == (
        f"error: refusing to export into {out / 'local'}: it is a file, not a folder; move it away or choose "
        "another --out or --device\n"
    )
    assert main([*args, "--device", "edge"]) == 1
    assert capsys.readouterr().err.startswith(f"error: refusing to export into {out / 'edge'}: it is a link to nothing")
    assert (out / "local").read_text() == "mine\n"


def _nan_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime returns NaN everywhere (an fp16 overflow, a broken quantization)."""
    import numpy as np

    from us3l.deploy.backends import onnx as onnx_backend
    from us3l.deploy.switchable_runtime import OrtSwitchable

    infer, sw_infer = onnx_backend.OnnxRunner.infer, OrtSwitchable.infer
    monkeypatch.setattr(onnx_backend.OnnxRunner, "infer", lambda self, x: np.full_like(infer(self, x), np.nan))
    monkeypatch.setattr(OrtSwitchable, "infer", lambda self, x, k: np.full_like(sw_infer(self, x, k), np.nan))


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_an_artifact_that_outputs_nan_fails_verification_and_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """NaN outputs made the errors NaN, and writing the manifest failed ('not writing .../.staging-.../manifest.json:
    verification.max_abs_error is not a finite number'): no <name>.failed to inspect, and no verification line."""
    _nan_runtime(monkeypatch)
    out = tmp_path / "out"
    assert main(["export", "--backend", "onnx", "--model", MODEL, "--width", "0.25", "--out", str(out)]) == 1
    stdout, err = capsys.readouterr()
    assert err.splitlines()[-1].startswith("error: verification FAILED: max abs nan")
    assert "FAILED" in stdout
    failed = out / "local" / "cifar_resnet18-w0.25-onnx-fp32.failed"
    doc = json.loads((failed / "manifest.json").read_text())
    assert doc["valid"] is False and doc["verification"]["max_abs_error"] is None
    assert doc["verification"]["min_cosine"] is None and doc["verification"]["passed"] is False


@pytest.mark.slow  # a switchable export of its own; the static NaN case stays fast
def test_a_switchable_artifact_that_outputs_nan_fails_verification_and_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _nan_runtime(monkeypatch)
    out = tmp_path / "out"
    assert main(["export", "--backend", "onnx", "--model", MODEL, "--switchable", "--widths", "0.5,0.25",
                 "--out", str(out)]) == 1
    stdout, err = capsys.readouterr()
    assert err.splitlines()[-1].startswith("error: verification failed (onnxruntime width 0.5: FAILED: max abs nan")
    assert "nan" in stdout and "FAILED" in stdout
    doc = json.loads((out / "local" / "cifar_resnet18-switchable-onnx-fp32.failed" / "manifest.json").read_text())
    assert doc["valid"] is False
    assert doc["model"]["per_width"][1]["verification"]["onnxruntime"]["max_abs_error"] is None


@pytest.mark.parametrize(("given", "name"), [(["onnxruntime"], "onnx"), (["ort"], "onnx"), (["OV"], "openvino"),
                                             (["onnx,"], "onnx")])
def test_backend_aliases_and_lists_are_read_as_profile_reads_them(given: list[str], name: str, tmp_path: Path) -> None:
    """`us3l profile --backend onnxruntime` profiles onnx; `us3l export --backend onnxruntime` said 'unknown
    backend'."""
    args = [x for b in given for x in ("--backend", b)]
    assert main(["export", *args, "--model", MODEL, "--width", "0.25", "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "local" / f"cifar_resnet18-w0.25-{name}-fp32" / "manifest.json").is_file()


def test_a_comma_list_of_backends_is_the_repeated_flag_usage_error(tmp_path: Path, capsys) -> None:
    code = main(["export", "--backend", "onnx,ov", "--width", "0.25", "--model", MODEL, "--out", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err == (
        "error: export takes one --backend, got onnx, openvino: run us3l export once per backend\n"
    )


def test_switchable_checks_the_device_files_precisions_as_a_one_width_export(tmp_path: Path, capsys) -> None:
    """intel-npu runs fp16/int8 on openvino: a one-width fp32 export for it is refused; --switchable (fp32) exported
    one into intel-npu/ without a word."""
    args = ["export", "--backend", "openvino", "--model", MODEL, "--device", "intel-npu", "--out", str(tmp_path / "o")]
    assert main([*args, "--width", "0.25"]) == 1
    one_width = capsys.readouterr().err
    assert main([*args, "--switchable", "--widths", "0.5,0.25"]) == 1
    assert capsys.readouterr().err == one_width
    assert one_width.startswith("error: device 'intel-npu' does not run fp32 on openvino")  # and nothing before:
    assert one_width.count("\n") == 1  # no 'note: OpenVINO device NPU ... verified on the CPU plugin' first
    assert not (tmp_path / "o").exists()


def test_selection_checks_every_devices_precision_before_the_first_export(write_profile, tmp_path: Path,
                                                                           capsys) -> None:
    """The [precisions] check ran inside each export: a selection for cpu and intel-npu exported cpu's width, then
    refused intel-npu's fp32."""
    from .conftest import latency

    profiles = [write_profile([{"width": 0.25, "latency": latency(1.0, 1.0, 1.0)}], device=d, model=MODEL,
                              backend="openvino") for d in ("cpu", "intel-npu")]
    sel = tmp_path / "selection.json"
    assert main(["select", *[a for p in profiles for a in ("--profile", str(p))], "--latency-ms", "2",
                 "--out", str(sel)]) == 0
    out = tmp_path / "art"
    capsys.readouterr()
    code = main(["export", "--backend", "openvino", "--selection", str(sel), "--model", MODEL, "--out", str(out),
                 "--quiet"])
    assert code == 1
    assert capsys.readouterr().err.startswith("error: device 'intel-npu' does not run fp32 on openvino")
    assert not out.exists()


@pytest.mark.parametrize(("model", "extra"), [pytest.param("vit_tiny", "", marks=pytest.mark.slow),  # slow: ViT export
                                              (MODEL, "; placeholder BN statistics")])
def test_a_fresh_model_export_says_its_weights_are_random(model: str, extra: str, tmp_path: Path, capsys) -> None:
    """Red-team 2026-12-05: the note hung on uncalibrated BatchNorm, so a fresh ViT (no BatchNorm) was exported
    without a word about its random weights."""
    assert main(["export", "--backend", "onnx", "--model", model, "--width", "0.25", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"note: exported a fresh model (random initial weights, init_seed 0{extra}): the graph and latency are real, "
        "the embeddings are not meaningful")


@pytest.mark.parametrize(("device", "noted"), [("intel-igpu", True), ("cpu", False)])
def test_a_switchable_ir_for_a_gpu_says_it_is_verified_on_the_cpu(device: str, noted: bool, tmp_path: Path,
                                                                   capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Red-team 2026-12-06 (rtL): `--switchable --device intel-igpu` verified on the CPU plugin without the note a
    one-width export prints when the device's plugin does not run the verification."""
    import us3l.commands.export as export_cmd
    from us3l.errors import US3LError

    def stop(*_a: object, **_k: object) -> None:
        raise US3LError("stopped before the export")

    monkeypatch.setattr(export_cmd, "_source", stop)
    assert main(["export", "--backend", "openvino", "--model", MODEL, "--switchable", "--widths", "0.5,0.25",
                 "--device", device, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    note = ("note: a switchable IR is verified on the CPU plugin, not on GPU of 'intel-igpu'; `us3l profile --device "
            "intel-igpu --artifact ...` runs it there\n")
    assert (note in err) is noted and err.endswith("error: stopped before the export\n")
