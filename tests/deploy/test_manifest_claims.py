"""A hand-edited manifest's claims are checked: ``passed``/``valid`` against the recorded numbers and the
precision's tolerance, ``backend.precision`` against what the artifact's graph holds (red-team, untrusted files 2).
Real exports, onnxruntime and OpenVINO."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.deploy.conftest import copy_artifact, edit_manifest, switchable_exports_of
from us3l import deploy
from us3l.deploy.export import ExportResult, export_width
from us3l.deploy.verify import TOLERANCES
from us3l.errors import US3LError

if TYPE_CHECKING:
    from us3l.deploy.switchable_export import SwitchableResult

MODEL = "cifar_resnet18"


@pytest.fixture(scope="module")
def exports(run: Path, exported: ExportResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExportResult]:
    """Width 0.25 of the shared calibrated ``run`` exported to ONNX (the shared ``exported``) and to OpenVINO fp32
    and fp16."""
    out = tmp_path_factory.mktemp("out")
    return {"onnx-fp32": exported, **{f"openvino-{p}": export_width(run, 0.25, "openvino", out, precision=p,
                                                                     device_name="cpu") for p in ("fp32", "fp16")}}


def _refused(d: Path) -> str:
    with pytest.raises(US3LError) as info:
        deploy.load(d)
    text = str(info.value)
    assert "\n" not in text
    return text


def _tolerance(precision: str) -> dict[str, Any]:
    tol = TOLERANCES[precision]
    doc = {k: v for k, v in dataclasses.asdict(tol).items() if v is not None or k == "max_abs"}
    return {**doc, "describe": tol.describe()}


def test_real_exports_pass_the_checks(exports: dict[str, ExportResult]) -> None:
    for res in exports.values():
        with deploy.load(res.directory) as r:
            assert r.manifest["backend"]["precision"] == res.manifest["backend"]["precision"]


@pytest.mark.slow  # 2.6 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_every_claim_reads_the_graph_from_one_parse(exports: dict[str, ExportResult],
                                                   switchable_exports: Callable[[str], SwitchableResult],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Precision, inputs, output shape and the width's layers each parsed the ONNX model again (five parses of a
    94 MB resnet50 per load); one parse serves them all now, also with the caller's network checked beside. A
    switchable file's own records (grid, feature dims, index input, per-width facts) were read from a parse of
    their own, outside that scope: one parse for them and the graph's claims too."""
    import xml.etree.ElementTree as ET

    import onnx

    from us3l import create_model

    parses = {"onnx": 0, "xml": 0}
    real_onnx, real_xml = onnx.load_model_from_string, ET.fromstring

    def counting(kind: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def parse(*args: Any, **kwargs: Any) -> Any:
            parses[kind] += 1
            return real(*args, **kwargs)
        return parse

    switchable = switchable_exports("onnx")  # exported before the count
    monkeypatch.setattr(onnx, "load_model_from_string", counting("onnx", real_onnx))
    monkeypatch.setattr(ET, "fromstring", counting("xml", real_xml))
    network = create_model(MODEL, **exports["onnx-fp32"].manifest["model"]["model_kwargs"])
    with deploy.load(exports["onnx-fp32"].directory, network=network):
        pass
    with deploy.load(exports["openvino-fp32"].directory):
        pass
    assert parses == {"onnx": 1, "xml": 1}
    with deploy.load_switchable(switchable.directory):
        pass
    assert parses == {"onnx": 2, "xml": 1}


def test_a_failed_verification_edited_to_passed_is_refused(exports: dict[str, ExportResult], tmp_path: Path) -> None:
    d = copy_artifact(exports["onnx-fp32"], tmp_path)

    def failed(doc: dict[str, Any]) -> None:  # what a failed export records
        doc["verification"].update(min_cosine=0.5, passed=False)
        doc["valid"] = False

    path = edit_manifest(d, failed)
    assert _refused(d) == f"{path}: this artifact did not pass verification (valid: false); re-export it"
    edit_manifest(d, lambda doc: (doc["verification"].update(passed=True), doc.update(valid=True)))
    assert _refused(d) == (
        f"{path}: verification.passed is true but its recorded numbers fail the fp32 tolerance (min_cosine 0.5 < "
        "0.9999): the manifest was edited; re-export the artifact"
    )
    edit_manifest(d, lambda doc: doc["verification"].update(passed=False))  # valid alone turned true
    assert _refused(d) == (
        f"{path}: valid is true but verification.passed is false (the manifest was edited); re-export the artifact"
    )


def test_a_failed_verification_deleted_to_pass_is_refused(exports: dict[str, ExportResult], tmp_path: Path) -> None:
    """Red-team 2026-12-06 (rtL): a failed export's manifest with its verification section deleted and valid turned
    true loaded (a manifest without verification was left as it was); every export records one."""
    d = copy_artifact(exports["onnx-fp32"], tmp_path)
    edit_manifest(d, lambda doc: (doc["verification"].update(min_cosine=0.5, passed=False), doc.update(valid=False)))
    path = edit_manifest(d, lambda doc: (doc.pop("verification"), doc.update(valid=True)))
    assert _refused(d) == (f"{path}: valid is true but the manifest records no verification (the manifest was "
                           "edited); re-export the artifact")
    edit_manifest(d, lambda doc: doc.update(valid=False))  # a failed one without it is refused for being failed
    assert _refused(d) == f"{path}: this artifact did not pass verification (valid: false); re-export it"


def test_passed_false_with_passing_numbers_and_a_loosened_tolerance_are_refused(
    exports: dict[str, ExportResult], tmp_path: Path
) -> None:
    d = copy_artifact(exports["onnx-fp32"], tmp_path)
    path = edit_manifest(d, lambda doc: (doc["verification"].update(passed=False), doc.update(valid=False)))
    with pytest.raises(US3LError) as info:
        deploy.load(d)
    assert str(info.value) == (f"{path}: verification.passed is false but its recorded numbers meet the fp32 "
                               "tolerance (the manifest was edited); re-export the artifact")
    d = copy_artifact(exports["onnx-fp32"], tmp_path / "b")

    def loosened(doc: dict[str, Any]) -> None:
        doc["verification"]["min_cosine"] = 0.5
        doc["verification"]["tolerance"]["min_cosine"] = 0.1

    path = edit_manifest(d, loosened)
    assert _refused(d) == (f"{path}: verification.tolerance.min_cosine is 0.1, the fp32 tolerance is 0.9999 (the "
                           "manifest was edited); re-export the artifact")


def test_a_precision_edited_alone_is_refused(exports: dict[str, ExportResult], tmp_path: Path) -> None:
    d = copy_artifact(exports["onnx-fp32"], tmp_path)
    path = edit_manifest(d, lambda doc: doc["backend"].update(precision="int8"))
    assert _refused(d) == (f"{path}: verification.precision 'fp32' differs from backend.precision 'int8' (the "
                           "manifest was edited); re-export the artifact")


def _claim(precision: str) -> Any:
    """Edit a manifest to claim ``precision`` throughout (backend, and a verification that passes its tolerance:
    what a careful hand edit would write)."""

    def edit(doc: dict[str, Any]) -> None:
        doc["backend"]["precision"] = precision
        doc["verification"].update(precision=precision, tolerance=_tolerance(precision), max_abs_error=0.0,
                                   mean_abs_error=0.0, min_cosine=1.0, mean_cosine=1.0)
        if precision == "int8":
            doc["verification"]["topk_agreement"] = 1.0

    return edit


def test_an_onnx_precision_the_graph_contradicts_is_refused(exports: dict[str, ExportResult], tmp_path: Path) -> None:
    d = copy_artifact(exports["onnx-fp32"], tmp_path)
    path = edit_manifest(d, _claim("int8"))
    assert _refused(d) == (f"{path}: backend.precision is 'int8' but model.onnx holds an fp32 graph (the manifest "
                           "was edited); re-export the artifact")


@pytest.mark.parametrize(("real", "claimed"), [("fp32", "fp16"), ("fp16", "fp32"), ("fp32", "int8")])
def test_an_openvino_precision_the_ir_contradicts_is_refused(
    exports: dict[str, ExportResult], tmp_path: Path, real: str, claimed: str
) -> None:
    d = copy_artifact(exports[f"openvino-{real}"], tmp_path)
    path = edit_manifest(d, _claim(claimed))
    assert _refused(d) == (f"{path}: backend.precision is {claimed!r} but model.xml holds an {real} graph (the "
                           "manifest was edited); re-export the artifact")


def _graph(qdq: bool = False, half: bool = False) -> bytes:
    """A one-node ONNX model (Identity), with a Q/DQ pair and/or a float16 initializer."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    nodes = [helper.make_node("Identity", ["x"], ["y"])]
    inits = [numpy_helper.from_array(np.ones(1, np.float16), "h")] if half else []
    if qdq:
        inits += [numpy_helper.from_array(np.ones((), np.float32), "s"),
                  numpy_helper.from_array(np.zeros((), np.int8), "z")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])], inits)
    return helper.make_model(g).SerializeToString()


def test_precision_facts_of_qdq_and_half_graphs() -> None:
    """The ONNX rule on hand-built graphs: Q/DQ nodes mean int8, a float16 initializer fp16."""
    from us3l.deploy.manifest_claims import onnx_precision_facts

    assert onnx_precision_facts(_graph()) == (False, False)
    assert onnx_precision_facts(_graph(half=True)) == (False, True)
    assert onnx_precision_facts(_graph(qdq=True)) == (True, False)


def test_a_tensorrt_precision_is_checked_against_the_onnx_it_was_built_from() -> None:
    """The engine is opaque here; its ONNX (hashed with it) has Q/DQ nodes exactly when it is int8."""
    from us3l.deploy.manifest_claims import check_precision

    def doc(precision: str) -> dict[str, Any]:
        return {"backend": {"name": "tensorrt", "precision": precision}, "artifact": {"file": "model.engine"}}

    plain = {"model.engine": b"engine", "model.onnx": _graph()}
    qdq = {"model.engine": b"engine", "model.onnx": _graph(qdq=True)}
    check_precision(doc("fp16"), "m.json", plain)  # fp16 and fp32 are not told apart
    check_precision(doc("fp32"), "m.json", plain)
    check_precision(doc("int8"), "m.json", qdq)
    with pytest.raises(US3LError) as info:
        check_precision(doc("int8"), "m.json", plain)
    assert str(info.value) == ("m.json: backend.precision is 'int8' but model.engine holds an fp16 or fp32 graph (the "
                               "manifest was edited); re-export the artifact")
    with pytest.raises(US3LError) as info:
        check_precision(doc("fp16"), "m.json", qdq)
    assert str(info.value) == ("m.json: backend.precision is 'fp16' but model.engine holds an int8 graph (the manifest "
                               "was edited); re-export the artifact")


@pytest.fixture(scope="module")
def switchable_exports(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], SwitchableResult]:
    """``switchable_exports(backend)``: the switchable export of the shared ``run`` (calibrated at widths 0.25 and
    1.0), made once per module for each backend; tests edit a copy (``copy_artifact``)."""
    return switchable_exports_of(run, tmp_path_factory)


@pytest.mark.slow  # 4.0 s (a switchable export) on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_switchable_verification_edited_to_passed_is_refused(
    switchable_exports: Callable[[str], SwitchableResult], tmp_path: Path
) -> None:
    res = switchable_exports("onnx")
    d = copy_artifact(res, tmp_path)
    mode = res.manifest["verification"]["modes"][0]
    path = edit_manifest(d, lambda doc: doc["model"]["per_width"][1]["verification"][mode].update(min_cosine=0.5))
    with pytest.raises(US3LError) as info:
        deploy.load_switchable(d)
    assert str(info.value) == (
        f"{path}: model.per_width[1].verification[{mode!r}].passed is true but its recorded numbers fail the fp32 "
        "tolerance (min_cosine 0.5 < 0.9999): the manifest was edited; re-export the artifact"
    )
    edit_manifest(d, lambda doc: doc["model"]["per_width"][1]["verification"][mode].update(passed=False))
    with pytest.raises(US3LError) as info:
        deploy.load_switchable(d)
    assert str(info.value) == (
        f"{path}: valid / verification.passed say true / true, the per-width verifications say false (the manifest "
        "was edited); re-export the artifact"
    )


@pytest.mark.parametrize("backend", ["onnx", pytest.param("openvino", marks=pytest.mark.slow)])  # slow: OpenVINO
@pytest.mark.slow  # 0.7 s beside the switchable export above on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_switchable_verification_deleted_to_pass_is_refused(
    switchable_exports: Callable[[str], SwitchableResult], tmp_path: Path, backend: str
) -> None:
    """Red-team 2026-12-06 (rtL): a switchable manifest whose failed width's verification (or one runtime mode of
    it) was deleted, valid left true, loaded: only the checks present were compared."""
    res = switchable_exports(backend)
    d = copy_artifact(res, tmp_path)
    modes = res.manifest["verification"]["modes"]
    deploy.load_switchable(d).close()  # the real export passes
    path = edit_manifest(d, lambda doc: doc["model"]["per_width"][1].pop("verification"))
    with pytest.raises(US3LError) as info:
        deploy.load_switchable(d)
    assert str(info.value) == (f"{path}: valid is true but model.per_width[1] records no verification (the manifest "
                               "was edited); re-export the artifact")
    edit_manifest(d, lambda doc: doc["model"]["per_width"][1].update(verification=res.manifest["model"]["per_width"][1][
        "verification"]))
    deploy.load_switchable(d).close()
    path = edit_manifest(d, lambda doc: doc["model"]["per_width"][0]["verification"].pop(modes[-1]))
    with pytest.raises(US3LError) as info:
        deploy.load_switchable(d)
    assert str(info.value) == (f"{path}: valid is true but model.per_width[0].verification has no {modes[-1]!r} "
                               "check (the manifest was edited); re-export the artifact")


def _trt_doc(precision: str, **trt: Any) -> dict[str, Any]:
    return {"backend": {"name": "tensorrt", "precision": precision}, "artifact": {"file": "model.engine"},
            "tensorrt": {"version": "10.3.0", "compute_capability": "8.7", **trt}}


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_a_tensorrt_export_records_its_build_and_the_record_names_its_precision(
    precision: str, dynamic: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Red-team 2026-12-06 (rtO): an fp16 and an fp32 engine had the same manifest but for backend.precision (both
    are built from the same fp32 ONNX), so an edited precision went unnoticed. The export now records the builder
    flags and the trtexec command of the same build; TensorRT itself is faked (no GPU here)."""
    import torch

    from us3l.deploy.backends import tensorrt as trt_mod
    from us3l.deploy.backends.tensorrt import BACKEND, build_precision
    from us3l.deploy.graph import deployable_module
    from us3l.models import create_model

    calls: list[str] = []
    monkeypatch.setattr(trt_mod, "_build_engine", lambda onnx, fp16, shape, dyn, prec: calls.append(prec) or b"e")
    monkeypatch.setattr(BACKEND, "_require_here", lambda: None)
    monkeypatch.setattr(BACKEND, "runtime_version", lambda: "10.3.0")
    monkeypatch.setattr(trt_mod, "current_compute_capability", lambda: "8.7")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "fake GPU")
    monkeypatch.setattr(BACKEND, "check_int8_inputs", lambda *a: None)
    if precision == "int8":  # the Q/DQ export needs calibration images: the fp32 ONNX stands in for it here
        from us3l.deploy.backends import onnx as onnx_mod

        monkeypatch.setattr(onnx_mod, "export_onnx_int8",
                            lambda m, x, path, cal, dyn, **kw: onnx_mod.export_onnx(m, x, path, dyn))
    static, _ = deployable_module(create_model(MODEL, num_classes=0, base_channels=8), 0.25)
    art = BACKEND.export(static, torch.zeros(2, 3, 32, 32), tmp_path, precision=precision, dynamic_batch=dynamic)
    rec = art.extras["tensorrt"]
    assert calls == [precision] and build_precision(rec) == precision
    assert rec["builder_flags"] == {"fp32": [], "fp16": ["FP16"], "int8": ["INT8"]}[precision]
    cmd = rec["trtexec_command"]
    assert cmd[:3] == ["trtexec", "--onnx=model.onnx", "--saveEngine=model.engine"]
    assert ("--minShapes=input:1x3x32x32" in cmd and "--maxShapes=input:64x3x32x32" in cmd) if dynamic else \
        not any(a.startswith("--shapes") for a in cmd)  # static ONNX: trtexec refuses --shapes


def test_a_tensorrt_precision_is_checked_against_the_recorded_build() -> None:
    """fp16 and fp32 engines are told apart by the build their manifest records (builder flags, trtexec flags)."""
    from us3l.deploy.backends.tensorrt import build_record
    from us3l.deploy.manifest_claims import check_precision

    data = {"model.engine": b"engine", "model.onnx": _graph()}
    fp16 = build_record("fp16", (1, 3, 32, 32), False)
    check_precision(_trt_doc("fp16", **fp16), "m.json", data)
    check_precision(_trt_doc("fp32", **build_record("fp32", (1, 3, 32, 32), False)), "m.json", data)
    check_precision(_trt_doc("fp32"), "m.json", data)  # a manifest from before the build was recorded still loads
    with pytest.raises(US3LError) as info:
        check_precision(_trt_doc("fp32", **fp16), "m.json", data)
    assert str(info.value) == ("m.json: backend.precision is 'fp32' but the build it records (tensorrt.builder_flags, "
                               "tensorrt.trtexec_command) is fp16 (the manifest was edited); re-export the artifact")
    only_flags = {"builder_flags": ["FP16"]}
    with pytest.raises(US3LError, match="is fp16 .the manifest was edited"):
        check_precision(_trt_doc("fp32", **only_flags), "m.json", data)
    edited = [
        {**fp16, "builder_flags": []},  # the flags made fp32, the command still fp16
        {**fp16, "trtexec_command": [a for a in fp16["trtexec_command"] if a != "--fp16"]},
        {**fp16, "trtexec_command": [*fp16["trtexec_command"], "--best"]},
        {**fp16, "builder_flags": ["FP16", "INT8"]},
        {**fp16, "builder_flags": "FP16"},
        {**fp16, "trtexec_command": "trtexec --fp16"},
        {**fp16, "builder_flags": [{}]},  # was a TypeError (unhashable) traceback
        {"trtexec_command": []},  # no build at all: not read as an fp32 one
    ]
    for trt in edited:
        with pytest.raises(US3LError, match=r"^m\.json: tensorrt\.(builder_flags|trtexec_command).*the manifest was "
                                            r"edited\); re-export the artifact$"):
            check_precision(_trt_doc("fp16", **trt), "m.json", data)
    with pytest.raises(US3LError, match="model.onnx, the graph model.engine was built from, has float16 initializers"):
        check_precision(_trt_doc("fp16", **fp16), "m.json", {**data, "model.onnx": _graph(half=True)})


def test_a_tensorrt_artifact_without_tensorrt_is_one_line_and_its_claims_are_checked_without_it(
    exports: dict[str, ExportResult], tmp_path: Path
) -> None:
    """No TensorRT here: loading an engine says so in one line; the report's precision check (pure file reads) still
    refuses an fp16 build claimed as fp32."""
    import shutil

    from us3l.deploy.backends.tensorrt import build_record
    from us3l.deploy.manifest import read_manifest
    from us3l.deploy.manifest_claims import check_precision
    from us3l.io import file_sha256

    d = copy_artifact(exports["onnx-fp32"], tmp_path)
    shutil.copy(d / "model.onnx", d / "model.engine")  # stands in for the engine: opaque bytes, hashed

    def to_trt(precision: str) -> Any:
        def edit(doc: dict[str, Any]) -> None:
            doc["backend"].update(name="tensorrt", runtime="tensorrt", runtime_version="10.3.0", precision=precision)
            doc["verification"]["precision"] = precision
            doc["verification"]["tolerance"] = _tolerance(precision)
            doc["tensorrt"] = {"version": "10.3.0", "compute_capability": "8.7",
                               **build_record("fp16", (1, 3, 32, 32), False)}
            doc["artifact"] = {"file": "model.engine", "sha256": file_sha256(d / "model.engine"),
                               "files": {n: file_sha256(d / n) for n in ("model.engine", "model.onnx")}}
        return edit

    edit_manifest(d, to_trt("fp16"))
    assert "TensorRT is not installed here" in _refused(d)
    doc, _ = read_manifest(d)
    data = {n: (d / n).read_bytes() for n in ("model.engine", "model.onnx")}
    check_precision(doc, d / "manifest.json", data)
    edit_manifest(d, to_trt("fp32"))
    doc, _ = read_manifest(d)
    with pytest.raises(US3LError, match="backend.precision is 'fp32' but the build it records"):
        check_precision(doc, d / "manifest.json", data)


# ------------------------------------------------------------------------------------------------ output shape


@pytest.mark.parametrize(("export", "shape"), [
    ("onnx-fp32", [1, 64]),  # another embedding size
    ("onnx-fp32", ["batch", 128]),  # a dynamic batch claimed for a batch-1 graph
    ("onnx-fp32", [True, 128]),  # true is not 1
    ("openvino-fp32", [1, 256]),
])
def test_an_output_shape_the_graph_contradicts_is_refused(
    exports: dict[str, ExportResult], tmp_path: Path, export: str, shape: list[Any]
) -> None:
    """Red-team 2026-12-07: an edited `output.shape` loaded, and `us3l eval --artifact` filed its accuracy under the
    manifest's claim; the shape is read from the hash-checked graph (the ONNX output, the IR's Result layer)."""
    d = copy_artifact(exports[export], tmp_path)
    path = edit_manifest(d, lambda doc: doc["output"].update(shape=shape))
    file = exports[export].manifest["artifact"]["file"]
    assert _refused(d) == (f"{path}: output.shape is {shape!r} but {file} outputs [1, 128] (the manifest was edited); "
                           "re-export the artifact")


def _embedding_graph(batch: int | str) -> bytes:
    """A one-node ONNX model (Identity) from (batch, 4) to (batch, 4); a string ``batch`` is a symbolic axis."""
    import onnx
    from onnx import helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [batch, 4])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [batch, 4])])
    return helper.make_model(g).SerializeToString()


def test_a_symbolic_batch_axis_is_batch_and_a_tensorrt_shape_is_read_from_its_onnx() -> None:
    from us3l.deploy.manifest_claims import check_output_shape

    def doc(backend: str, file: str, shape: list[Any] | None) -> dict[str, Any]:
        return {"backend": {"name": backend}, "artifact": {"file": file},
                **({} if shape is None else {"output": {"shape": shape}})}

    dynamic = {"model.onnx": _embedding_graph("N")}
    check_output_shape(doc("onnx", "model.onnx", ["batch", 4]), "m.json", dynamic)
    check_output_shape(doc("onnx", "model.onnx", None), "m.json", dynamic)  # no claim, nothing to check
    with pytest.raises(US3LError) as info:
        check_output_shape(doc("onnx", "model.onnx", [1, 4]), "m.json", dynamic)
    assert str(info.value) == ("m.json: output.shape is [1, 4] but model.onnx outputs ['batch', 4] (the manifest was "
                               "edited); re-export the artifact")
    engine = {"model.engine": b"engine", "model.onnx": _embedding_graph(2)}
    check_output_shape(doc("tensorrt", "model.engine", [2, 4]), "m.json", engine)
    with pytest.raises(US3LError, match=r"^m.json: output.shape is \[2, 8\] but model.onnx outputs \[2, 4\]"):
        check_output_shape(doc("tensorrt", "model.engine", [2, 8]), "m.json", engine)


@pytest.mark.parametrize(("export", "key", "value", "actual"), [
    ("onnx-fp32", "shape", [1, 3, 16, 16], [1, 3, 32, 32]),  # another image size
    ("onnx-fp32", "shape", ["batch", 3, 32, 32], [1, 3, 32, 32]),  # a dynamic batch claimed for a batch-1 graph
    ("onnx-fp32", "dtype", "float16", "float32"),
    ("openvino-fp16", "shape", [4, 3, 32, 32], [1, 3, 32, 32]),  # an fp16 IR takes float32 images too
])
def test_an_input_the_graph_contradicts_is_refused(
    exports: dict[str, ExportResult], tmp_path: Path, export: str, key: str, value: Any, actual: Any
) -> None:
    """`input.shape` was compared with nothing: `us3l.deploy.load(input_shape=)` and quickstart's reuse accepted the
    edited claim, the first call then failed on the graph's real shape, and `us3l eval --artifact` compared the
    edited size with the checkpoint's ("the artifact takes 16 px images"). Read from the hash-checked graph now."""
    d = copy_artifact(exports[export], tmp_path)
    path = edit_manifest(d, lambda doc: doc["input"].update({key: value}))
    file = exports[export].manifest["artifact"]["file"]
    assert _refused(d) == (f"{path}: input.{key} is {value!r} but {file}'s input 'input' is {actual!r} (the manifest "
                           "was edited); re-export the artifact")


def test_an_input_name_the_graph_lacks_is_refused(exports: dict[str, ExportResult], tmp_path: Path) -> None:
    d = copy_artifact(exports["openvino-fp32"], tmp_path)
    path = edit_manifest(d, lambda doc: doc["input"].update(name="image"))
    assert _refused(d) == (f"{path}: input.name 'image' is not an input of model.xml (its inputs: 'input') (the "
                           "manifest was edited); re-export the artifact")


@pytest.mark.parametrize("version", ["2024.0.0", None])
def test_an_openvino_runtime_version_the_ir_contradicts_is_refused(
    exports: dict[str, ExportResult], tmp_path: Path, version: str | None
) -> None:
    """The installed OpenVINO is compared with backend.runtime_version (not older than the writer): a lowered or
    deleted claim let an older release read a newer IR. The IR records the release that wrote it (rt_info)."""
    d = copy_artifact(exports["openvino-fp32"], tmp_path)
    path = edit_manifest(d, lambda doc: doc["backend"].update(runtime_version=version))
    wrote = exports["openvino-fp32"].manifest["backend"]["runtime_version"]
    assert _refused(d) == (f"{path}: backend.runtime_version is {version!r} but model.xml was written by OpenVINO "
                           f"{wrote} (the manifest was edited); re-export the artifact")


def test_a_symbolic_input_batch_is_batch_and_a_tensorrt_input_is_read_from_its_onnx() -> None:
    from us3l.deploy.manifest_claims import check_inputs

    def doc(backend: str, file: str, shape: list[Any]) -> dict[str, Any]:
        return {"backend": {"name": backend}, "artifact": {"file": file},
                "input": {"name": "x", "dtype": "float32", "shape": shape}}

    dynamic = {"model.onnx": _embedding_graph("N")}
    check_inputs(doc("onnx", "model.onnx", ["batch", 4]), "m.json", dynamic)
    with pytest.raises(US3LError, match=r"^m.json: input.shape is \[1, 4\] but model.onnx's input 'x' is "
                                        r"\['batch', 4\] \(the manifest was edited\); re-export the artifact$"):
        check_inputs(doc("onnx", "model.onnx", [1, 4]), "m.json", dynamic)
    engine = {"model.engine": b"engine", "model.onnx": _embedding_graph(2)}
    check_inputs(doc("tensorrt", "model.engine", [2, 4]), "m.json", engine)
    with pytest.raises(US3LError, match=r"^m.json: input.shape is \[2, 8\] but model.onnx's input 'x' is \[2, 4\]"):
        check_inputs(doc("tensorrt", "model.engine", [2, 8]), "m.json", engine)
    check_inputs(doc("tensorrt", "model.engine", [2, 8]), "m.json", {"model.engine": b"engine"})  # nothing to read


@pytest.mark.parametrize(("edit", "why"), [
    (lambda doc: doc["model"].update(name="cifar_resnet50"),  # its graph is not cifar_resnet50's (check_model)
     "model.onnx is not cifar_resnet50 (as model.model_kwargs builds it) at model.width 0.25: it has a 16x16x1x1 "
     "convolution the graph lacks; the graph has a 16x16x3x3 convolution it lacks; it outputs 512 features, the graph "
     "128 (the manifest was edited); re-export the artifact"),
    (lambda doc: doc["output"].update(shape=[1, 64]),
     "output.shape is [1, 64] but model.onnx outputs [1, 128] (the manifest was edited); re-export the artifact"),
    (lambda doc: doc["input"].update(shape=[1, 3, 16, 16]),  # was "the artifact takes 16 px images, the checkpoint 32"
     "input.shape is [1, 3, 16, 16] but model.onnx's input 'input' is [1, 3, 32, 32] (the manifest was edited); "
     "re-export the artifact"),
    (lambda doc: doc["input"]["normalization"].update(std=[0.5, 0.5, 0.5]),  # std was not compared, mean was
     "the artifact expects another input normalisation than the checkpoint's (input.normalization.std [0.5, 0.5, "
     "0.5], the checkpoint's [0.25, 0.25, 0.25])"),
    (lambda doc: doc["input"]["normalization"].update(mean=[0.4, 0.5, 0.5]),
     "the artifact expects another input normalisation than the checkpoint's (input.normalization.mean [0.4, 0.5, "
     "0.5], the checkpoint's [0.5, 0.5, 0.5])"),
], ids=["model.name", "output.shape", "input.shape", "input.normalization.std", "input.normalization.mean"])
def test_eval_artifact_refuses_an_edited_model_name_or_output_shape(
    exported: ExportResult, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    edit: Callable[[dict[str, Any]], Any], why: str,
) -> None:
    """Red-team 2026-12-07: `us3l eval --artifact` of an export whose manifest names another model or another output
    shape ran the real artifact and stored its accuracy under those claims; refused in one line, nothing written.
    The normalisation a deployment feeds (the graph does not hold it) was compared with the checkpoint's by its mean
    only: an edited std passed."""
    from us3l.cli import main

    d = copy_artifact(exported, tmp_path)
    path = edit_manifest(d, edit)
    out = tmp_path / "acc"
    assert main(["eval", "--ckpt", str(run), "--artifact", str(d), "--data", "builtin", "--out", str(out)]) == 1
    assert capsys.readouterr().err == f"error: {path}: {why}\n"
    assert not out.exists()


@pytest.mark.slow  # 4.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_eval_artifact_records_the_networks_macs_and_params_not_the_manifests(
    exported: ExportResult, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`us3l eval --artifact` into a fresh folder wrote the width's row with the manifest's model.macs and params,
    which nothing checks: an edited manifest's numbers went into accuracy.json, whose MACs `us3l select` compares
    with the profile's. The row's costs are the checkpoint network's, as `us3l eval` counts them."""
    from us3l.cli import main
    from us3l.eval.accuracy import load_accuracy

    d = copy_artifact(exported, tmp_path)
    edit_manifest(d, lambda doc: doc["model"].update(macs=1, params=2))
    out = tmp_path / "acc"
    assert main(["eval", "--ckpt", str(run), "--artifact", str(d), "--data", "builtin", "--protocol", "knn",
                 "--knn-max-train", "500", "--out", str(out)]) == 0
    capsys.readouterr()
    (row,) = load_accuracy(out)["widths"]
    assert (row["macs"], row["params"]) == (exported.manifest["model"]["macs"], exported.manifest["model"]["params"])


# ------------------------------------------------------------------------------------------------ model and width

_NOT_WIDTH_1 = ("model.onnx is not cifar_resnet18 (as model.model_kwargs builds it) at model.width 1: it has a "
                "64x3x3x3 convolution the graph lacks; the graph has a 16x3x3x3 convolution it lacks; it outputs 512 "
                "features, the graph 128 (the manifest was edited); re-export the artifact")
_WIDTH_1 = {"width": 1.0, "canonical_width": 1.0}


@pytest.mark.parametrize(("backend", "edit", "why"), [
    ("onnx-fp32", lambda m: m.update(_WIDTH_1), _NOT_WIDTH_1),
    ("openvino-fp32", lambda m: m.update(_WIDTH_1), _NOT_WIDTH_1.replace("model.onnx", "model.xml")),
    ("onnx-fp32", lambda m: m.update(canonical_width=1.0), "model.canonical_width 1.0 (its canonical width is 0.25) "
     "does not describe cifar_resnet18 (as model.model_kwargs builds it) at model.width 0.25 (the manifest was "
     "edited); re-export the artifact"),
    ("onnx-fp32", lambda m: m.update(feature_dim=512), "model.feature_dim 512 (it outputs 128) does not describe"),
    ("onnx-fp32", lambda m: m["channel_config"][0].__setitem__(1, 64), "model.channel_config (not its channels) does "
     "not describe"),
    ("onnx-fp32", lambda m: m.update(model_kwargs={"base_channels": "x"}), "cannot build cifar_resnet18 from "
     "model.model_kwargs {'base_channels': 'x'}"),
], ids=["width", "width-openvino", "canonical_width", "feature_dim", "channel_config", "model_kwargs"])
def test_a_width_the_graph_contradicts_is_refused_on_every_read(
    exports: dict[str, ExportResult], tmp_path: Path, backend: str, edit: Callable[[dict[str, Any]], Any], why: str,
) -> None:
    """Audit 2026-12-07: a plain artifact's model.width was taken on its word: width 0.25 relabelled 1 loaded as
    width 1 (load(width=1.0) too), quickstart reused it as the width-1 export and the report listed it as a valid
    width-1 artifact. Nothing in the graph records a width, but its layer sizes are one: the graph's weight layers
    and output size must be those of the network the manifest names (model.name, model.model_kwargs) at that width."""
    assert exports[backend].manifest["model"]["model_kwargs"] == {"num_classes": 0}  # what built the checkpoint's model
    d = copy_artifact(exports[backend], tmp_path)
    path = edit_manifest(d, lambda doc: edit(doc["model"]))
    assert _refused(d).startswith(f"{path}: {why}")


def test_a_width_expected_of_a_manifest_without_model_kwargs_needs_a_network(exported: ExportResult, run: Path,
                                                                             tmp_path: Path) -> None:
    """A manifest without model.model_kwargs (exported before 2026-12-07, or the record deleted along with the width
    edit) cannot be checked by itself: load(width=) / load(model=) refuse it rather than trust the width, unless
    the caller passes the network to check the graph against (eval --artifact and quickstart pass theirs)."""
    from us3l.checkpoint import load_backbone

    network = load_backbone(run).model
    d = copy_artifact(exported, tmp_path)
    path = edit_manifest(d, lambda doc: doc["model"].pop("model_kwargs", None))
    deploy.load(d).close()  # no expectation: loads, as before
    deploy.load(d, width=0.25, network=network).close()
    with pytest.raises(US3LError, match=rf"^{re.escape(str(path))}: cannot confirm that the artifact is width 0.25: "
                                        r"the manifest records no model.model_kwargs"):
        deploy.load(d, width=0.25)
    edit_manifest(d, lambda doc: doc["model"].update(_WIDTH_1))
    with pytest.raises(US3LError) as info:
        deploy.load(d, width=1.0, network=network)
    assert str(info.value) == f"{path}: " + _NOT_WIDTH_1.replace("cifar_resnet18 (as model.model_kwargs builds it)",
                                                                  "the given cifar_resnet18 network")


def test_the_report_checks_a_width_against_the_run(exported: ExportResult, run: Path, tmp_path: Path) -> None:
    """The report listed a width-0.25 artifact relabelled 1 as a valid width-1 artifact. A manifest that records its
    network is checked on its own (every read); one that does not, exported from the run's weights, against the
    run's architecture (checkpoint.json): valid no, the manifest edited."""
    import shutil

    from us3l.report.collect import collect_pipeline

    root = tmp_path / "qs"
    shutil.copytree(run, root / "run")
    for drop in (False, True):
        d = copy_artifact(exported, root / "artifacts" / "cpu")
        edit_manifest(d, lambda doc, drop=drop: (doc["model"].update(width=1.0, canonical_width=1.0),
                                                 drop and doc["model"].pop("model_kwargs", None)))
        (man,) = collect_pipeline(root).manifests
        assert man.doc["valid"] is False and man.doc["report_rehash"]["reason"] == "manifest edited"
        what = "the run's cifar_resnet18" if drop else "cifar_resnet18 (as model.model_kwargs builds it)"
        assert man.doc["report_rehash"]["detail"] == _NOT_WIDTH_1.replace(
            "cifar_resnet18 (as model.model_kwargs builds it)", what)
        shutil.rmtree(d)


@pytest.mark.parametrize("record", ["absent", "null"])
def test_the_report_marks_a_width_it_cannot_check(exported: ExportResult, run: Path, tmp_path: Path, record: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest without model.model_kwargs (key absent, or null as an export of a module not built by create_model
    writes it) in a folder whose run did not make it: nothing rebuilds its network, and the report listed its width
    as a checked fact. The page marks it "(unchecked)", `us3l report` says so on stderr once, --json lists it. From
    the run's weights, a null record is checked against the run's architecture (it was skipped: only an absent key
    was)."""
    import json
    import shutil

    from us3l.cli import main
    from us3l.report import render_report

    def drop(doc: dict[str, Any]) -> None:
        if record == "absent":
            doc["model"].pop("model_kwargs")
        else:
            doc["model"]["model_kwargs"] = None

    root = tmp_path / "qs"
    d = copy_artifact(exported, root / "artifacts" / "cpu")
    path = edit_manifest(d, drop)
    rep = render_report(root)  # no run folder: no network to check the width against
    line = (f"{path}: width 0.25 not checked against the graph: the manifest records no model.model_kwargs to "
            "rebuild its network from, and it is not of this folder's run weights, whose architecture could check "
            "it; re-export it to have it checked")
    assert rep.unchecked_widths() == [line] and not any("not checked" in e for e in rep.errors())
    assert rep.files.manifests[0].doc["valid"] is True
    assert '0.25 <span class="bad" title="the manifest records no model.model_kwargs' in rep.html
    assert main(["report", str(root)]) == 0
    err = capsys.readouterr().err
    assert err.count("not checked against the graph") == 1 and line in " ".join(err.split())
    assert main(["report", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchecked_widths"] == [line]

    shutil.copytree(run, root / "run")  # the run that made it: checked against its architecture
    assert render_report(root).unchecked_widths() == []
    edit_manifest(d, lambda doc: doc["model"].update(width=1.0, canonical_width=1.0))
    (man,) = collect_pipeline_of(root)
    assert man.doc["valid"] is False and man.doc["report_rehash"]["reason"] == "manifest edited"


def collect_pipeline_of(root: Path) -> list[Any]:
    from us3l.report.collect import collect_pipeline

    return collect_pipeline(root).manifests
