"""Switchable-width artifacts (issue 16): one file, every width of a grid, chosen per call by ``width_index``.

Real onnxruntime and OpenVINO sessions on a small cifar_resnet18 (base_channels 8, 16 px); every width is
compared with PyTorch's static network of that width.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tests.deploy.conftest import calibrated_run, copy_artifact, edit_manifest, switchable_exports_of
from tests.script_module import ROOT
from us3l.deploy.graph import deployable_module, fresh_model
from us3l.deploy.switchable import (
    INDEX_NAME,
    META_FEATURES,
    META_WIDTHS,
    SHARED_PREFIX,
    build_switchable,
    check_grid,
)
from us3l.deploy.switchable_export import SwitchableResult, check_widths, default_grid, export_switchable
from us3l.deploy.switchable_runtime import OrtSwitchable, OvSwitchable
from us3l.errors import US3LError

GRID = (1.0, 0.75, 0.5, 0.25, 0.375)  # not sorted: index i is the i-th width given
SHAPE = (2, 3, 16, 16)


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return fresh_model("cifar_resnet18", base_channels=8).eval()


@pytest.fixture(scope="module")
def built(net, tmp_path_factory) -> tuple[object, Path]:
    graph = build_switchable(net, GRID, SHAPE)
    path = tmp_path_factory.mktemp("sw") / "switchable.onnx"
    onnx.save(graph.model, str(path))
    return graph, path


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)


def reference(net, w: float, x: np.ndarray) -> np.ndarray:
    static, _ = deployable_module(net, w)
    with torch.no_grad():
        return static(torch.from_numpy(x)).numpy()


def _graphs(graph: onnx.GraphProto):
    """``graph`` and every subgraph in it (the If branches), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)


def _initializers(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    return [t for g in _graphs(graph) for t in g.initializer]


def _ops(graph: onnx.GraphProto, op: str) -> int:
    return sum(node.op_type == op for g in _graphs(graph) for node in g.node)


def test_one_copy_of_the_weights_and_only_bn_statistics_per_width(net, built) -> None:
    graph, _ = built
    proto = graph.model
    params = {n: p for n, p in net.state_dict().items() if p.dtype.is_floating_point}
    shared = [t for t in proto.graph.initializer if t.name.startswith(SHARED_PREFIX)]
    # every learned weight once, at full size; nothing else of that size anywhere
    assert {t.name[len(SHARED_PREFIX):] for t in shared} >= {n for n in params if n.endswith(("conv1.weight",))}
    for t in shared:
        assert tuple(t.dims) == tuple(params[t.name[len(SHARED_PREFIX):]].shape)
    total = sum(onnx.numpy_helper.to_array(t).nbytes for t in _initializers(proto.graph))
    slice_bounds = 3 * 8 * sum(graph.slices) * 4  # starts/ends/axes, at most 4 axes of int64 each
    assert total <= graph.shared_bytes + sum(graph.per_width_bytes) + slice_bounds + 8 * (len(GRID) + 8)
    assert sum(graph.per_width_bytes) < 0.05 * graph.shared_bytes  # the BN statistics, small
    assert graph.slices[0] == 0 and all(s > 0 for s in graph.slices[1:])  # the widest width reads the weights as is
    assert _ops(proto.graph, "If") == len(GRID) - 1  # a tree over n leaves has n - 1 tests
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta[META_WIDTHS] == list(GRID) and meta[META_FEATURES] == list(graph.feature_dims)
    assert graph.feature_dims == (64, 48, 32, 16, 24)
    # cheap widths near the root: 0.25 (index 3) and 0.375 (index 4) take fewer If tests than width 1
    assert graph.depths[3] < graph.depths[0] and graph.depths[4] < graph.depths[0]


def test_the_tree_puts_cheap_widths_near_the_root() -> None:
    from us3l.deploy.switchable import leaf_depths, split_point

    assert leaf_depths([1.0, 1.0, 1.0, 1.0]) == [2, 2, 2, 2]  # equal weights: the balanced tree
    assert leaf_depths([1 / w**2 for w in (1.0, 0.75, 0.5, 0.25)]) == [3, 3, 2, 1]  # 0.25 after one test
    assert split_point([1.0, 1.0, 8.0], 0, 3) == 2
    depths = leaf_depths([1 / w**2 for w in np.linspace(1.0, 0.25, 90)])
    assert max(depths) <= 10 and depths[-1] <= 4  # 90 widths: the narrowest after 4 tests, none after more than 10


def test_every_width_matches_its_static_network_in_onnxruntime(net, built, x) -> None:
    _, path = built
    sess = OrtSwitchable(path, len(GRID), threads=1)
    for k, w in enumerate(GRID):
        out = sess.infer(x, k)
        ref = reference(net, w, x)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    # switching back and forth on the one session gives the same numbers
    np.testing.assert_array_equal(sess.infer(x, 3), sess.infer(x, -2))
    np.testing.assert_array_equal(sess.infer(x, 0), OrtSwitchable(path, len(GRID)).infer(x, 0))


def test_an_index_outside_the_grid_is_refused(built, x) -> None:
    import onnxruntime as ort

    _, path = built
    raw = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="out of data bounds"):  # the graph itself refuses it
        raw.run(None, {"input": x, INDEX_NAME: np.array(len(GRID), np.int64)})
    sess = OrtSwitchable(path, len(GRID))
    with pytest.raises(US3LError, match=r"^width index must be an integer in \[-5, 5\) for this 5-width artifact, "
                                        r"got 5$"):
        sess.infer(x, 5)
    with pytest.raises(US3LError, match="got 0.5"):
        sess.infer(x, 0.5)  # type: ignore[arg-type]


@pytest.mark.slow  # 2.5 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_openvino_runs_it_with_the_index_as_input_and_bound(net, built, x) -> None:
    _, path = built
    as_input = OvSwitchable(path, len(GRID), threads=1, bound=False)
    bound = OvSwitchable(path, len(GRID), threads=1, bound=True)
    for k, w in enumerate(GRID):
        ref = reference(net, w, x)
        np.testing.assert_allclose(as_input.infer(x, k), ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bound.infer(x, k), ref, rtol=1e-4, atol=1e-5)


def test_grid_checks(net) -> None:
    with pytest.raises(US3LError, match="^a switchable artifact needs at least 2 widths, got 1$"):
        check_grid([0.5])
    with pytest.raises(US3LError, match="^width 0.5 is given twice$"):
        check_grid([0.5, 1.0, 0.5])
    with pytest.raises(US3LError, match=r"^widths 0.5 and 0.51 give the same network \(channels of width 0.4167\)$"):
        check_widths(net, [1.0, 0.5, 0.51])
    with pytest.raises(US3LError, match=r"width must be in \[0.25, 1\], got 0.1"):
        check_widths(net, [1.0, 0.1])
    assert default_grid(net) == (1.0, 0.75, 0.5, 0.25)  # a fresh model: no calibrated widths


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return calibrated_run(tmp_path_factory.mktemp("run"), (1.0, 0.5, 0.25), batch=8)


SharedExport = Callable[..., SwitchableResult]


@pytest.fixture(scope="module")
def shared_export(run_dir, tmp_path_factory) -> SharedExport:
    """``shared_export(backend, widths=None)``: the switchable export of ``run_dir`` for device cpu, made once per
    module for each (backend, widths)."""
    return switchable_exports_of(run_dir, tmp_path_factory, device_name="cpu")


def _documented_switchable_fields() -> dict[str, set[str]]:
    """section -> the names docs/deploy.md's switchable ``manifest.json`` list gives in that section's bullet."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    start = text.index('**`manifest.json`** has kind "switchable_manifest"')
    bullets = re.split(r"\n- ", text[start : text.index("\n\n", text.index("\n- ", start))])[1:]
    named: dict[str, set[str]] = {}
    for bullet in bullets:
        names = re.findall(r"`([a-z_0-9]+)(?:\[\])?`", bullet)
        for section in re.findall(r"^`([a-z_]+)`(?: \([^)]*\))?(?:, `([a-z_]+)` \([^)]*\))?", bullet)[0]:
            if section:
                named.setdefault(section, set()).update(names)
        if bullet.startswith("`target`"):
            for section in ("target", "verification", "artifact"):
                named.setdefault(section, set()).update(names)
    named["model.per_width"] = named["model"]
    return named


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
@pytest.mark.slow  # 2 cases, 4.9 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_export_from_a_checkpoint_verifies_every_width(shared_export, backend) -> None:
    res = shared_export(backend)
    doc = res.manifest
    assert res.valid and doc["kind"] == "switchable_manifest" and doc["schema_version"] == 1
    # the calibrated widths, widest first, as their canonical grid widths (0.5 of this model is the grid's 0.4922)
    assert doc["model"]["widths"] == [1.0, 0.4922, 0.25]
    assert [p["bn_stats"] for p in doc["model"]["per_width"]] == ["calibrated"] * 3
    modes = ["onnxruntime"] if backend == "onnx" else ["openvino (width_index input)", "openvino (bound per width)"]
    assert doc["verification"]["modes"] == modes
    for p in doc["model"]["per_width"]:
        assert list(p["verification"]) == modes
        assert all(v["passed"] and v["max_abs_error"] <= 1e-4 for v in p["verification"].values())
    sw = doc["switchable"]
    assert sw["size_ratio_to_static_widest"] <= 1.1  # OpenVINO IR too: the slices are not folded into copies
    documented = _documented_switchable_fields()
    fields = {f"{s}.{k}" for s, v in doc.items() if isinstance(v, dict) and s not in ("environment", "input")
              for k in v} | {f"model.per_width.{k}" for k in doc["model"]["per_width"][0]}
    assert sorted(f for f in fields if f.rsplit(".", 1)[1] not in documented[f.split(".")[0]]) == []
    files = sorted(p.name for p in res.directory.iterdir())
    stem = f"cifar_resnet18-switchable-{backend}-fp32"
    assert res.directory.name == stem and res.directory.parent.name == "cpu"
    assert files == (["manifest.json", "model.onnx"] if backend == "onnx"
                     else ["manifest.json", "model.bin", "model.xml"])
    assert not [p for p in res.directory.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_a_checkpoint_width_without_bn_statistics_is_refused(run_dir, tmp_path) -> None:
    with pytest.raises(US3LError, match="0.75"):
        export_switchable(run_dir, "onnx", tmp_path, widths=[1.0, 0.75])
    assert not list(tmp_path.rglob("*.onnx"))


@pytest.mark.slow  # 5.3 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_readme_snippet_runs_without_us3l(shared_export) -> None:
    """The README's snippet: plain onnxruntime, width switched between two calls on one session."""
    res = shared_export("onnx")
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("<!-- switchable-snippet:begin -->")
    code = readme[start:readme.index("<!-- switchable-snippet:end -->")].split("```python\n", 1)[1].split("```")[0]
    artifact = res.directory / res.manifest["artifact"]["file"]
    code = code.replace("artifacts/local/cifar_resnet18-switchable-onnx-fp32/model.onnx", artifact.as_posix())
    guard = "import sys; sys.modules['us3l'] = None  # any import of us3l fails\n"
    done = subprocess.run([sys.executable, "-c", guard + code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "width 1: (1, 512)" in done.stdout and "width 0.25: (1, 128)" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "tensorrt"], "error: --switchable exports to onnx or openvino, not 'tensorrt' (TensorRT: "
                                    "docs/deploy.md)"),
        (["--backend", "onnx", "--width", "0.5"], "error: --switchable exports a grid of widths: give --widths "
                                                  "W1,W2,... instead of --width/--selection"),
        (["--backend", "onnx", "--precision", "int8"], "error: --switchable exports fp32 only, got --precision int8"),
        (["--backend", "onnx", "--precision", "INT8"], "error: --switchable exports fp32 only, got --precision int8"),
        (["--backend", "onnx", "--widths", "1,x"], "error: --widths must be comma-separated numbers like "
                                                   "0.25,0.5,1.0, got '1,x'"),
        (["--backend", "onnx", "--widths", "1,1.5"], "error: --widths: width must be in [0.25, 1], got 1.5"),
        (["--backend", "onnx", "--widths", "0.5"], "error: a switchable artifact needs at least 2 widths, got 1"),
    ],
)
def test_cli_refuses_bad_switchable_flags_in_one_line(tmp_path, capsys, args, message) -> None:
    from us3l.cli import main

    code = main(["export", "--switchable", "--model", "cifar_resnet18", "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1] == message
    assert not list(tmp_path.rglob("*.onnx"))


def test_cli_widths_without_switchable_is_refused(tmp_path, capsys) -> None:
    from us3l.cli import main

    code = main(["export", "--backend", "onnx", "--widths", "1,0.5", "--model", "cifar_resnet18", "--out",
                 str(tmp_path)])
    assert code == 1 and capsys.readouterr().err.strip() == "error: --widths needs --switchable (one width: --width W)"


@pytest.mark.slow  # 3.4 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_cli_switchable_export_prints_every_width(run_dir, tmp_path, capsys) -> None:
    from us3l.cli import main

    code = main(["export", "--backend", "onnx", "--switchable", "--widths", "1,0.25", "--ckpt", str(run_dir),
                 "--out", str(tmp_path), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] and [p["width"] for p in doc["per_width"]] == [1.0, 0.25]
    assert [p["feature_dim"] for p in doc["per_width"]] == [512, 128]
    assert Path(doc["manifest"]).is_file()


@pytest.mark.slow  # an OpenVINO export and a process; the ONNX snippet stays fast
def test_the_openvino_snippet_runs_without_us3l(tmp_path) -> None:
    """docs/deploy.md's OpenVINO snippet (both ways of running the IR) with us3l made unimportable."""
    net = fresh_model("cifar_resnet18", base_channels=8)
    net.input_size = 16
    res = export_switchable(net, "openvino", tmp_path, [1.0, 0.5, 0.25], model_name="cifar_resnet18")
    doc = (Path(__file__).parents[2] / "docs" / "deploy.md").read_text()
    start = doc.index("<!-- switchable-openvino-snippet:begin -->")
    code = doc[start:doc.index("<!-- switchable-openvino-snippet:end -->")].split("```python\n", 1)[1].split("```")[0]
    code = code.replace("artifacts/local/cifar_resnet18-switchable-openvino-fp32/model.xml",
                        (res.directory / "model.xml").as_posix())
    guard = "import sys; sys.modules['us3l'] = None  # any import of us3l fails\n"
    done = subprocess.run([sys.executable, "-c", guard + code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # width 0.25 of base 8: 16 features both ways, the same numbers
    assert done.stdout.startswith("(1, 16) (1, 16) ") and float(done.stdout.split()[-1]) < 1e-5


@pytest.mark.slow  # a ViT export; the ResNet exports above stay fast
def test_vit_linears_are_sliced_from_the_shared_weights_too(tmp_path, x) -> None:
    """materialize wraps a ViT block Linear as Sequential(FirstFeatures, Linear): its static name gains a '.1'
    that must still find the shared weight, or every width would carry its own copy."""
    net = fresh_model("vit_tiny", img_size=16, patch_size=8).eval()  # 12 blocks of dim 192: small at 16 px
    graph = build_switchable(net, (1.0, 0.5), SHAPE)
    assert graph.per_width_bytes == (0, 0) and graph.slices[1] > 0
    path = tmp_path / "vit.onnx"
    onnx.save(graph.model, str(path))
    out = OrtSwitchable(path, 2).infer(x, 1)
    np.testing.assert_allclose(out, reference(net, 0.5, x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # 3.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_load_switchable_checks_the_manifest_and_runs_every_width(run_dir, shared_export, tmp_path, x) -> None:
    import us3l.deploy as deploy

    res = shared_export("onnx", [1.0, 0.25])
    runner = deploy.load_switchable(res.directory)
    assert runner.widths == (1.0, 0.25) and runner.manifest["kind"] == "switchable_manifest"
    x32 = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    assert runner.infer(x32, 0).shape == (1, 512) and runner.infer(x32, 1).shape == (1, 128)
    with deploy.load_switchable(res.directory) as r:  # like deploy.load's runners (red-team 2026-12-05)
        assert r.infer(x32, 1).shape == (1, 128)
        with pytest.raises(US3LError, match=r"^input of shape 1x3x16x16 does not fit this artifact's input 1x3x32x32"):
            r.infer(x32[:, :, :16, :16], 0)
    # the one-width loader and the switchable one each name the other
    with pytest.raises(US3LError, match=r"is a switchable artifact \(every width in one file\): open it with "
                                        r"us3l.deploy.load_switchable"):
        deploy.load(res.directory)
    static = deploy.export_width(run_dir, 0.25, "onnx", tmp_path / "static")
    with pytest.raises(US3LError, match="holds a one-width export"):
        deploy.load_switchable(static.directory)


@pytest.mark.parametrize(("backend", "what"), [("onnx", "the ONNX file's"),  # slow: an OpenVINO export of its own
                                             pytest.param("openvino", "the IR's", marks=pytest.mark.slow)])
def test_a_manifest_whose_grid_was_edited_is_refused(shared_export, tmp_path, backend, what) -> None:
    """Red-team 2026-12-06 (rtL): an OpenVINO IR's edited grid loaded and was profiled (index 0, width 1.0, reported
    as width 0.25): the grid was read from the ONNX metadata only, and the IR keeps it in its rt_info."""
    import json

    import us3l.deploy as deploy

    d = copy_artifact(shared_export(backend, [1.0, 0.25]), tmp_path)
    path = d / "manifest.json"
    doc = json.loads(path.read_text())
    doc["model"]["widths"] = [0.25, 1.0]  # index 0 would now be reported as width 0.25
    for i, w in enumerate(doc["model"]["widths"]):
        doc["model"]["per_width"][i]["width"] = w
    path.write_text(json.dumps(doc))
    with pytest.raises(US3LError, match=rf"model.widths \[0.25, 1.0\] differ from {what} own grid "
                                        r"\[1.0, 0.25\]; the manifest was edited: re-export"):
        deploy.load_switchable(d)


def _refused_after_edit(shared_export: SharedExport, tmp_path: Path, section: str, key: str, value: object,
                        message: str) -> None:
    """Copy a two-width switchable artifact, set ``manifest[section][key] = value`` and check that
    ``load_switchable`` refuses it with a line starting with ``<manifest path>: <message>``."""
    import json

    import us3l.deploy as deploy

    d = copy_artifact(shared_export("onnx", [1.0, 0.25]), tmp_path)
    path = d / "manifest.json"
    doc = json.loads(path.read_text())
    doc[section][key] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(US3LError, match=f"^{re.escape(f'{path}: {message}')}"):
        deploy.load_switchable(d)


@pytest.mark.parametrize(("backend", "what"), [("onnx", "the ONNX file's"),  # slow: an OpenVINO export of its own
                                             pytest.param("openvino", "the IR's", marks=pytest.mark.slow)])
def test_a_manifest_output_shape_the_file_contradicts_is_refused(shared_export, tmp_path, backend, what) -> None:
    """output.shape ([batch, "features"]) and model.per_width[].feature_dim (each width's "features") were checked
    nowhere: an edited one was loaded, profiled and reported as it was. The batch axis is the graph's (an IR's
    Result shows the first branch's size in the features axis: not compared); the sizes, the file's own record."""
    import us3l.deploy as deploy

    res = shared_export(backend, [1.0, 0.25])
    file = res.manifest["artifact"]["file"]
    assert res.manifest["output"]["shape"] == [1, "features"]
    deploy.load_switchable(res.directory).close()  # as exported: accepted (an IR's Result says [1, 512])

    def refused(edit: Callable[[dict], None], message: str) -> None:
        d = copy_artifact(res, tmp_path / str(len(list(tmp_path.iterdir()))))
        path = edit_manifest(d, edit)
        with pytest.raises(US3LError, match=f"^{re.escape(f'{path}: {message}')}$"):
            deploy.load_switchable(d)

    for shape in (["batch", "features"], [1, 512], [True, "features"]):
        refused(lambda doc, shape=shape: doc["output"].update(shape=shape),
                f"output.shape is {shape!r} but {file} outputs [1, 'features'] (the manifest was edited); "
                "re-export the artifact")
    refused(lambda doc: doc["model"]["per_width"][1].update(feature_dim=512),
            f"model.per_width[].feature_dim [512, 512] differ from {what} own feature dims [512, 128]; the manifest "
            "was edited: re-export")

    def no_feature_dims(doc: dict) -> None:  # 2026-12-08: accepted here while us3l report called it edited
        for p in doc["model"]["per_width"]:
            del p["feature_dim"]
        del doc["switchable"]["feature_dims"]

    refused(no_feature_dims, f"model.per_width[].feature_dim [None, None] differ from {what} own feature dims "
                             "[512, 128]; the manifest was edited: re-export")


@pytest.mark.parametrize(("key", "value", "field", "original"), [
    ("feature_dims", [512, 512], "model.per_width[].feature_dim", [512, 128]),
    ("feature_dims", [512.0, 128], "model.per_width[].feature_dim", [512, 128]),
    ("widths", [0.25, 1.0], "model.widths", [1.0, 0.25]),
])
def test_the_switchable_sections_copies_of_the_grid_must_be_the_models(shared_export, tmp_path, key, value, field,
                                                                        original) -> None:
    """The manifest writes each width's feature size (and the grid) twice, in model and in switchable; only the
    model section's was compared with the file's own record, so an edited switchable.feature_dims loaded (and was
    what a reader without us3l saw beside the checked one)."""
    _refused_after_edit(shared_export, tmp_path, "switchable", key, value,
                        f"switchable.{key} {value!r} differ from {field} {original!r} (the manifest was edited); "
                        "re-export the artifact")


@pytest.mark.parametrize(("backend", "what"), [("onnx", "the ONNX file's"),  # slow: an OpenVINO export of its own
                                             pytest.param("openvino", "the IR's", marks=pytest.mark.slow)])
def test_a_manifest_width_input_the_file_contradicts_is_refused(shared_export, tmp_path, backend, what) -> None:
    """width_input.name and switchable.index_input (the input a reader feeds the width's index through) were
    compared with nothing: an edited name loaded, and `us3l profile --artifact` recorded it as the profile's
    extra.switchable.index_input, while the graph's input is width_index. Now the name is the file's own
    us3l.switchable.index_input record, and name, dtype and shape the graph's int64 scalar input."""
    import us3l.deploy as deploy

    res = shared_export(backend, [1.0, 0.25])
    file = res.manifest["artifact"]["file"]

    def refused(edit: Callable[[dict], None], message: str) -> None:
        d = copy_artifact(res, tmp_path / str(len(list(tmp_path.iterdir()))))
        path = edit_manifest(d, edit)
        with pytest.raises(US3LError, match=f"^{re.escape(f'{path}: {message}')}$"):
            deploy.load_switchable(d)

    def rename(doc: dict) -> None:  # edited consistently: both places the manifest names the input
        doc["width_input"]["name"] = doc["switchable"]["index_input"] = "width"

    refused(rename, f"width_input.name 'width' differs from {what} own index input 'width_index'; the manifest was "
                    "edited: re-export")
    refused(lambda doc: doc["switchable"].update(index_input="width"),
            "switchable.index_input 'width' differs from width_input.name 'width_index' (the manifest was edited); "
            "re-export the artifact")
    refused(lambda doc: doc["width_input"].update(dtype="int32"),
            f"width_input.dtype is 'int32' but {file}'s input 'width_index' is 'int64' (the manifest was edited); "
            "re-export the artifact")
    refused(lambda doc: doc["width_input"].update(shape=[1]),
            f"width_input.shape is [1] but {file}'s input 'width_index' is [] (the manifest was edited); re-export "
            "the artifact")


def _without_record(res: SwitchableResult, tmp_path: Path, key: str) -> Path:
    """A copy of an ONNX switchable export whose file lacks the metadata ``key`` (as one exported before it was
    recorded), re-hashed into its manifest."""
    return _with_record(res, tmp_path, key, None)


def _with_record(res: SwitchableResult, tmp_path: Path, key: str, value: str | None) -> Path:
    """A copy of an ONNX switchable export whose file's metadata ``key`` holds ``value`` (``None``: removed),
    re-hashed into its manifest."""
    import hashlib

    d = copy_artifact(res, tmp_path)
    model = onnx.load(str(d / "model.onnx"))
    kept = [p for p in model.metadata_props if p.key != key]
    assert len(kept) == len(model.metadata_props) - 1
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    if value is not None:
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(d / "model.onnx"))
    sha = hashlib.sha256((d / "model.onnx").read_bytes()).hexdigest()
    edit_manifest(d, lambda doc: doc["artifact"].update(sha256=sha, files={"model.onnx": sha}))
    return d


@pytest.mark.parametrize("key", ["us3l.switchable.feature_dims", "us3l.switchable.index_input",
                                 "us3l.switchable.per_width", "us3l.switchable.widths"])
def test_a_file_record_that_is_not_json_is_refused_alike_by_every_check(shared_export, tmp_path, key) -> None:
    """The checks of the file's feature dims, index input and per-width facts each parsed their JSON with a fallback
    of its own: a malformed feature_dims record read as "differ from the file's own feature dims None; the manifest
    was edited", an index_input as the raw text compared with the manifest's name, a per_width as "not one record
    per width". One parser now, one line for each (the grid's own record too); the manifest is not to blame."""
    import us3l.deploy as deploy

    d = _with_record(shared_export("onnx", [1.0, 0.25]), tmp_path, key, "{not json")
    path = d / "manifest.json"
    with pytest.raises(US3LError) as info:
        deploy.load_switchable(d)
    assert str(info.value) == (f"{path}: the ONNX file's own {key} record is not JSON ('{{not json'); the file is "
                               "not as us3l wrote it: re-export")


@pytest.mark.slow  # 0.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_width_input_is_checked_against_the_graph_where_the_file_records_no_name(shared_export, tmp_path) -> None:
    """A file without its us3l.switchable.index_input record is still checked: the name must be one of the graph's
    inputs."""
    import us3l.deploy as deploy

    d = _without_record(shared_export("onnx", [1.0, 0.25]), tmp_path, "us3l.switchable.index_input")

    def edit(doc: dict) -> None:
        doc["width_input"]["name"] = doc["switchable"]["index_input"] = "width"

    path = edit_manifest(d, edit)
    with pytest.raises(US3LError, match=f"^{re.escape(str(path))}: width_input.name 'width' is not an input of "
                                        r"model.onnx \(its inputs: 'input', 'width_index'\) \(the manifest was "
                                        r"edited\); re-export the artifact$"):
        deploy.load_switchable(d)
    edit_manifest(d, lambda doc: doc["width_input"].update(name="width_index") or doc["switchable"].update(
        index_input="width_index"))
    deploy.load_switchable(d).close()  # as exported but for the record: accepted


@pytest.mark.parametrize(("backend", "what"), [("onnx", "the ONNX file's"),  # slow: an OpenVINO export of its own
                                             pytest.param("openvino", "the IR's", marks=pytest.mark.slow)])
def test_each_widths_costs_and_bn_statistics_are_the_files_own_record(shared_export, tmp_path, backend, what) -> None:
    """model.per_width[]'s MACs, params, channels, byte counts and BN facts were what `us3l profile --artifact`
    recorded for each width and `us3l select` budgeted on (--macs/--params/--memory-mb, and MACs as the accuracy
    proxy without an accuracy file), checked against nothing: an edited number was profiled and selected on. The
    export records them in the file (us3l.switchable.per_width), and a read refuses a manifest that differs."""
    import us3l.deploy as deploy
    from us3l.deploy.switchable import META_PER_WIDTH
    from us3l.deploy.switchable_runtime import _file_metadata

    res = shared_export(backend, [1.0, 0.25])
    file = res.directory / res.manifest["artifact"]["file"]
    _, _, meta = _file_metadata(file, file.read_bytes(), (META_PER_WIDTH,))
    recorded = json.loads(str(meta[META_PER_WIDTH]))
    skip = ("index", "width", "feature_dim", "verification")  # the grid's own records, and the checks
    assert recorded == [{k: v for k, v in p.items() if k not in skip} for p in res.manifest["model"]["per_width"]]
    assert set(recorded[0]) >= {"macs", "params", "channels", "weight_bytes", "activation_bytes", "bn_stats",
                                "bn_stats_sha256"}

    def refused(edit: Callable[[dict], None], message: str) -> None:
        d = copy_artifact(res, tmp_path / str(len(list(tmp_path.iterdir()))))
        path = edit_manifest(d, lambda doc: edit(doc["model"]["per_width"][1]))
        with pytest.raises(US3LError, match=f"^{re.escape(f'{path}: {message}')}$"):
            deploy.load_switchable(d)

    macs = recorded[1]["macs"]
    refused(lambda p: p.update(macs=1), f"model.per_width[1].macs 1 differs from {what} own record {macs}; the "
                                        "manifest was edited: re-export")
    refused(lambda p: p.update(macs=float(macs)), f"model.per_width[1].macs {float(macs)!r} differs from {what} own "
                                                  f"record {macs}; the manifest was edited: re-export")
    refused(lambda p: p.update(bn_stats="running"), f"model.per_width[1].bn_stats 'running' differs from {what} own "
                                                    "record 'calibrated'; the manifest was edited: re-export")
    refused(lambda p: p.pop("bn_stats_sha256"),  # a deleted digest hides a recalibration from load and the report
            f"model.per_width[1].bn_stats_sha256 None differs from {what} own record "
            f"{recorded[1]['bn_stats_sha256']!r}; the manifest was edited: re-export")


def test_a_file_exported_before_the_width_record_loads_unchecked(shared_export, tmp_path) -> None:
    import us3l.deploy as deploy

    d = _without_record(shared_export("onnx", [1.0, 0.25]), tmp_path, "us3l.switchable.per_width")
    edit_manifest(d, lambda doc: doc["model"]["per_width"][1].update(macs=1))
    deploy.load_switchable(d).close()


def test_a_manifest_input_shape_the_graph_contradicts_is_refused(shared_export, tmp_path) -> None:
    """`us3l profile --artifact` builds its timing input from input.shape: an edited one is the graph's or refused."""
    _refused_after_edit(shared_export, tmp_path, "input", "shape", [1, 3, 16, 16],
                        "input.shape is [1, 3, 16, 16] but model.onnx's input 'input' is [1, 3, 32, 32] (the manifest "
                        "was edited); re-export the artifact")


@pytest.mark.parametrize("shape", ["x", [1, 3, 32], [1, "3", 32, 32]])
def test_a_manifest_input_shape_that_is_not_a_shape_is_one_line(shared_export, tmp_path, shape) -> None:
    """Red-team 2026-12-05 (rtA): us3l profile --artifact built its timing input from it unchecked."""
    _refused_after_edit(shared_export, tmp_path, "input", "shape", shape,
                        "input.shape must be a list of positive integers")


@pytest.mark.slow  # an OpenVINO export of its own
def test_a_switchable_openvino_runtime_version_is_the_irs_writer(shared_export, tmp_path) -> None:
    import us3l.deploy as deploy

    res = shared_export("openvino", [1.0, 0.25])
    d = copy_artifact(res, tmp_path)
    path = edit_manifest(d, lambda doc: doc["backend"].update(runtime_version="2024.0.0"))
    with pytest.raises(US3LError, match=f"^{re.escape(str(path))}: backend.runtime_version is '2024.0.0' but "
                                        f"model.xml was written by OpenVINO "
                                        f"{re.escape(res.manifest['backend']['runtime_version'])} \\(the manifest"):
        deploy.load_switchable(d)


@pytest.mark.parametrize("version", [5, "abc", ["1.2.3"]])
def test_a_manifest_runtime_version_that_is_not_a_version_is_one_line(shared_export, tmp_path, version) -> None:
    """Red-team 2026-12-05 (rtA): `"runtime_version": 5` was an AttributeError traceback in load_switchable (and
    `us3l profile --artifact` timed every width before refusing it); "abc" read as 'install onnxruntime==.*'."""
    _refused_after_edit(shared_export, tmp_path, "backend", "runtime_version", version,
                        f'backend.runtime_version must be a version string like "1.2.3", got {version!r}; re-export')


@pytest.mark.parametrize("bound", [True, False])
@pytest.mark.slow  # 2 cases, 2.5 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_openvino_runner_refuses_a_wrong_input_shape_in_one_line(shared_export, bound) -> None:
    """Red-team 2026-12-05 (rtA): the onnxruntime switchable runner (and every one-width runner) names both shapes;
    the OpenVINO one passed the array on and OpenVINO's multi-line RuntimeError came out."""
    import us3l.deploy as deploy

    res = shared_export("openvino", [1.0, 0.25])
    x16 = np.zeros((1, 3, 16, 16), np.float32)
    with deploy.load_switchable(res.directory, bound=bound) as r:
        with pytest.raises(US3LError, match=r"^input of shape 1x3x16x16 does not fit this artifact's input 1x3x32x32"):
            r.infer(x16, 0)
        with pytest.raises(US3LError, match=r"^input of shape 1x3x16x16 does not fit this artifact's input 1x3x32x32"):
            r.time_once(x16, 1)
        assert r.infer(np.zeros((1, 3, 32, 32), np.float32), 1).shape == (1, 128)


@pytest.mark.slow  # a switchable export of its own for one message
def test_a_fixed_batch_that_does_not_divide_the_verification_images_says_so(run_dir, tmp_path) -> None:
    """Batch 3 runs 6 of the 8 seeded images (whole batches): the manifests said "8 smooth random images" beside
    6 samples (docs truth pass); the one-width export and the switchable one both say how many ran."""
    from us3l.deploy.export import export_width

    one = export_width(run_dir, 0.5, "onnx", tmp_path / "one", batch=3).manifest["verification"]
    assert one["samples"] == 6 and one["inputs"].endswith("; the first 6 of them were run (whole batches of 3)")
    sw = export_switchable(run_dir, "onnx", tmp_path / "sw", [1.0, 0.25], batch=3).manifest
    assert sw["verification"]["inputs"].endswith("; the first 6 of them were run (whole batches of 3)")
    assert {v["onnxruntime"]["samples"] for v in (p["verification"] for p in sw["model"]["per_width"])} == {6}


@pytest.mark.slow  # 1.5 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_switchable_file_swapped_after_its_hash_was_checked_is_not_what_runs(shared_export, tmp_path,
                                                                               monkeypatch) -> None:
    """load_switchable hashed the files, then the runtime opened the path again: a file swapped in between ran
    unchecked. Now the runtime is built from the bytes that were hashed."""
    from tests.deploy.test_deploy_loading import _other_weights
    from us3l import deploy
    from us3l.deploy import switchable_runtime as rt

    res = shared_export("onnx")
    d = copy_artifact(res, tmp_path)
    file = d / res.manifest["artifact"]["file"]
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with deploy.load_switchable(d) as r:
        checked = r.infer(x, 0)
    other = _other_weights(file)
    real = rt.open_switchable

    def swap_then_open(backend, path, *args, **kwargs):
        Path(path).write_bytes(other)
        return real(backend, path, *args, **kwargs)

    monkeypatch.setattr(rt, "open_switchable", swap_then_open)
    with deploy.load_switchable(d) as r:
        np.testing.assert_array_equal(r.infer(x, 0), checked)
    assert file.read_bytes() == other


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
@pytest.mark.slow  # 2 cases, 1.3 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_switchable_manifest_hashes_the_bytes_that_were_verified(backend, monkeypatch, tmp_path) -> None:
    """The artifact file is replaced right after every width was verified: the manifest's hash (and size) is still
    that of the bytes the runtime verified (one read), so the replaced file is refused on load. Verified from the
    path and hashed in a second read, the manifest vouched for bytes that never ran (as the plain export's test,
    test_deploy_export.test_the_manifest_hashes_the_bytes_that_were_verified)."""
    import hashlib

    from us3l import deploy
    from us3l.deploy import switchable_export

    verified: dict[str, bytes] = {}
    real_open, real_verify = switchable_export.open_switchable, switchable_export._verify

    def recording_open(backend, path, *args, data=None, **kwargs):  # what the runtime is built from
        name = Path(path).name
        verified[name] = data[name] if data and name in data else Path(path).read_bytes()
        return real_open(backend, path, *args, data=data, **kwargs)

    def verify_then_swap(backend, path, *args, **kwargs):
        out = real_verify(backend, path, *args, **kwargs)
        Path(path).write_bytes(b"not the graph that was verified")
        return out

    monkeypatch.setattr(switchable_export, "open_switchable", recording_open)
    monkeypatch.setattr(switchable_export, "_verify", verify_then_swap)
    res = export_switchable(fresh_model("cifar_resnet18", base_channels=8), backend, tmp_path, [0.5, 0.25],
                            model_name="cifar_resnet18")
    art = res.manifest["artifact"]
    main = art["file"]
    assert art["sha256"] == art["files"][main] == hashlib.sha256(verified[main]).hexdigest()
    sizes = len(verified[main]) + sum((res.directory / f).stat().st_size for f in art["files"] if f != main)
    assert res.manifest["switchable"]["artifact_bytes"] == sizes
    assert hashlib.sha256((res.directory / main).read_bytes()).hexdigest() != art["sha256"]
    with pytest.raises(US3LError, match="does not match its recorded sha256"):
        deploy.load_switchable(res.directory)
