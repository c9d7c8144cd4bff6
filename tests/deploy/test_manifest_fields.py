"""Hand-edited manifest fields of the wrong type: one line naming the file and the field, never a raw Python error
(red-team: ``"runtime_device": 5`` reached ``AttributeError: 'int' object has no attribute 'lower'``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from us3l.deploy.export import export_width
from us3l.errors import US3LError

MODEL = "cifar_resnet18"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from us3l.models import create_model

    net = create_model(MODEL, num_classes=0, base_channels=8)
    return export_width(net, 0.25, "onnx", tmp_path_factory.mktemp("out"), model_name=MODEL).directory


@pytest.mark.parametrize(
    ("section", "field", "value", "message"),
    [
        ("target", "runtime_device", 5, "target.runtime_device must be a device name"),
        ("backend", "runtime_version", [1], 'backend.runtime_version must be a version string like "1.2.3"'),
        ("backend", "runtime_version", "abc", 'backend.runtime_version must be a version string like "1.2.3"'),
        ("backend", "name", "tensorrt", "tensorrt must be an object"),
        ("backend", "name", 7, "unknown backend 7 in backend.name"),
        ("backend", "precision", "int4", "backend.precision must be one of fp32, int8"),
        ("backend", "dynamic_batch", "no", "backend.dynamic_batch must be true or false"),
        ("model", "width", "0.25", "model.width must be a finite number > 0, got '0.25'"),
        # red-team 2026-12-05 (rtA): a missing width was a KeyError in us3l eval --artifact, NaN passed
        ("model", "width", None, "model.width must be a finite number > 0, got None"),
        ("model", "width", float("nan"), "model.width must be a finite number > 0, got nan"),
        ("model", "width", 0, "model.width must be a finite number > 0, got 0"),
        ("input", "shape", [1, "3", 32, 32], "input.shape must be a list of positive integers"),
        # red-team 2026-12-05 (rtA): without it us3l eval --artifact failed with 'error: KeyError: shape'
        ("input", "shape", None, "input.shape must be a list of positive integers"),
        # red-team 2026-12-06 (rtO): us3l eval --artifact compared these with numpy, an AttributeError or a numpy
        # broadcasting/ufunc traceback
        ("input", "normalization", 5, 'input.normalization must be {"mean": [3 numbers], "std": [3 numbers > 0]}'),
        ("input", "normalization", {"mean": "x"}, "input.normalization must be"),
        ("input", "normalization", {"mean": [0.5, 0.5]}, "input.normalization must be"),
        ("input", "normalization", {"mean": ["a", "b", "c"]}, "input.normalization must be"),
        ("input", "normalization", {"std": [0.2, 0.0, 0.2]}, "input.normalization must be"),
    ],
)
def test_a_hand_edited_field_of_the_wrong_type_is_one_line_naming_it(
    exported: Path, tmp_path: Path, section: str, field: str, value: object, message: str
) -> None:
    from us3l import deploy

    d = tmp_path / exported.name
    d.mkdir()
    for f in exported.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    doc = json.loads((d / "manifest.json").read_text())
    doc[section][field] = value
    (d / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(US3LError) as err:
        deploy.load(d)
    text = str(err.value)
    assert text.startswith(f"{d / 'manifest.json'}: ") and message in text and "\n" not in text


def test_a_tensorrt_section_with_wrong_types_is_refused(exported: Path) -> None:
    from us3l.deploy.manifest import validate_manifest

    doc = json.loads((exported / "manifest.json").read_text())
    doc["backend"].update(name="tensorrt", precision="fp16", runtime_version="10.3.0")
    # an fp16 verification: the fp32 one would contradict the fp16 precision (manifest_claims)
    doc["verification"].update(precision="fp16", tolerance={"max_abs": 1e-2, "min_cosine": 0.999})
    doc["tensorrt"] = {"version": "10.3.0", "compute_capability": 8.7}
    with pytest.raises(US3LError, match=r"m.json: tensorrt.compute_capability must be a string like \"8.7\""):
        validate_manifest(doc, "m.json")
    doc["tensorrt"] = {"version": "10.3.0", "compute_capability": "8.7"}
    validate_manifest(doc, "m.json")
    doc["backend"]["runtime_version"] = "2024.4.0-16579-c3152d32c9c-releases/2024/4"  # OpenVINO's spelling
    validate_manifest(doc, "m.json")


def test_a_manifest_without_its_input_section_is_refused(exported: Path, tmp_path: Path) -> None:
    """Red-team 2026-12-05 (rtA): us3l eval --artifact failed with 'error: KeyError: input'."""
    from us3l import deploy

    d = tmp_path / exported.name
    d.mkdir()
    for f in exported.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    doc = json.loads((d / "manifest.json").read_text())
    del doc["input"]
    (d / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(US3LError, match=r"manifest.json: input must be an object, got None$"):
        deploy.load(d)


def test_a_quantization_calibration_of_the_wrong_type_is_one_line(exported: Path, tmp_path: Path) -> None:
    """Red-team 2026-12-06 (rtO): `"quantization": {"calibration": 5}` passed the section check (an object) and was an
    AttributeError in quickstart's export reuse (which only catches US3LError: the quickstart stopped with a
    traceback), in `us3l eval --artifact` and in the export table."""
    from us3l import deploy

    d = tmp_path / exported.name
    d.mkdir()
    for f in exported.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    doc = json.loads((d / "manifest.json").read_text())
    doc["quantization"] = {"calibration": 5}
    (d / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(US3LError) as err:
        deploy.load(d)
    assert str(err.value) == (f"{d / 'manifest.json'}: quantization.calibration must be an object (the INT8 "
                              "calibration set) or null, got 5; re-export the artifact")
