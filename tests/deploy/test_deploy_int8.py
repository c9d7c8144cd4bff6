"""INT8 export (issue 15): calibration set, Q/DQ ONNX and NNCF OpenVINO artifacts from one width of a real
checkpoint, their verification and manifest, the TensorRT INT8 pure parts, and the one-line refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.script_module import ROOT
from us3l import deploy
from us3l.deploy import quantize
from us3l.deploy.export import export_width
from us3l.deploy.quantize import CalibrationSet, calibration_set, check_calibration
from us3l.deploy.verify import TOLERANCES, compare, topk_agreement
from us3l.errors import US3LError

MODEL = "cifar_resnet18"
SIZE = 16
CALIB = 40


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cifar_resnet18 (base 8 channels, 16 px) trained for one epoch on 'builtin' (~10 s), BN statistics
    calibrated at width 0.25 only.

    A trained network, because a random-init one embeds every image in nearly the same direction: its
    neighbours are decided by differences as small as int8 rounding, so top-5 agreement sits near the 0.8 bound
    (0.82-0.89 measured) and would test the quantizer's luck, not its correctness (trained: 0.88-0.99, the 0.88
    with 7-bit weights on an AVX2 CPU without VNNI)."""
    from us3l.eval.calibrate import CalibrationSettings
    from us3l.eval.runner import calibrate_checkpoint, open_checkpoint
    from us3l.train import make_config, run_training

    out = tmp_path_factory.mktemp("int8") / "run"
    cfg = make_config({
        "method": "single", "model": MODEL, "model_kwargs": {"base_channels": 8}, "data": "builtin",
        "image_size": SIZE, "epochs": 1, "batch_size": 64, "lr": 0.2, "proj_hidden": 64, "pred_hidden": 64,
        "knn_every": 0, "knn_widths": (), "save_every": 1, "threads": 1, "quiet": True, "out": str(out),
    })
    assert run_training(cfg).status == "completed"
    calibrate_checkpoint(open_checkpoint(out), None, [0.25], CalibrationSettings(batches=2, batch_size=64))
    return out


@pytest.fixture(scope="module")
def norm(run_dir: Path) -> tuple[list[float], list[float]]:
    meta = json.loads((run_dir / "checkpoint.json").read_text())["normalization"]
    return meta["mean"], meta["std"]


@pytest.fixture(scope="module")
def onnx_int8(run_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return export_width(run_dir, 0.25, "onnx", tmp_path_factory.mktemp("out"), "int8", "cpu", calib_images=CALIB)


# ------------------------------------------------------------------------------------------ calibration set


def test_calibration_set_is_seeded_stratified_and_reproducible() -> None:
    from us3l.data import EvalTransform, load_dataset

    ms = ([0.5] * 3, [0.25] * 3)
    a = calibration_set("builtin", SIZE, *ms, size=50, seed=0)
    b = calibration_set("builtin", SIZE, *ms, size=50, seed=0)
    c = calibration_set("builtin", SIZE, *ms, size=50, seed=1)
    assert a.sha256 == b.sha256 and a.indices == b.indices and np.array_equal(a.inputs, b.inputs)
    assert c.sha256 != a.sha256 and c.indices != a.indices
    assert a.inputs.shape == (50, 3, SIZE, SIZE) and a.inputs.dtype == np.float32
    assert sorted(a.per_class.values()) == [5] * 10  # builtin: 10 balanced classes -> 5 each
    ds = load_dataset("builtin", "train")
    assert np.bincount(ds.labels[list(a.indices)].numpy(), minlength=10).tolist() == [5] * 10
    # the evaluation transform of exactly those training images, not random tensors
    expected = EvalTransform(SIZE, *ms)(ds.images[list(a.indices)]).numpy()
    np.testing.assert_array_equal(a.inputs, expected)
    # held-out verification images: other training images, also stratified
    assert a.holdout is not None and len(a.holdout) == quantize.VERIFY_IMAGES
    doc = a.describe()
    assert doc["size"] == 50 and doc["sha256"] == a.sha256 and doc["seed"] == 0 and doc["split"] == "train"
    assert doc["data"] == "builtin" and "stratified" in doc["selection"]


def test_a_fixed_batch_larger_than_the_calibration_set_is_one_line() -> None:
    """Red-team 2026-12-05: `export --precision int8 --batch-size 400` with 300 calibration images ended in NNCF's
    `error: No data is collected.`"""
    from us3l.deploy.quantize import split_batches

    x = np.zeros((300, 3, SIZE, SIZE), np.float32)
    assert [len(b) for b in split_batches(x, 128)] == [128, 128]
    with pytest.raises(US3LError, match=r"^the artifact's fixed batch of 400 is larger than its 300 calibration "
                                        r"images: give --calib-images 400 or more, or a smaller --batch-size$"):
        split_batches(x, 400)


@pytest.mark.slow  # an int8 export for one message
def test_int8_fixed_batch_verification_says_how_many_images_it_ran(run_dir: Path, tmp_path: Path) -> None:
    """A fixed batch of 12 runs the 64 held-out images as 5 whole batches: the manifest said "64 held-out
    training images" beside samples 60 (docs truth pass)."""
    res = export_width(run_dir, 0.25, "onnx", tmp_path, "int8", "cpu", calib_images=CALIB, batch=12)
    v = json.loads((res.directory / "manifest.json").read_text())["verification"]
    assert v["samples"] == 60 and v["passed"]
    assert v["inputs"].startswith("64 held-out training images") and v["inputs"].endswith(
        "; the first 60 of them were run (whole batches of 12)"), v["inputs"]


def test_calibration_refusals() -> None:
    # worded as us3l export and us3l profile word --calib-images 10 (one check, us3l.deploy.quantize)
    with pytest.raises(US3LError, match=r"^--calib-images must be >= 32 \(stable INT8 activation ranges\), got 10$"):
        calibration_set("builtin", SIZE, [0.5] * 3, [0.25] * 3, size=10)
    with pytest.raises(US3LError, match=r"^--calib-images must be an integer >= 32 .*got 64.0$"):
        calibration_set("builtin", SIZE, [0.5] * 3, [0.25] * 3, size=64.0)  # type: ignore[arg-type]
    x = np.zeros((40, 3, 32, 32), np.float32)
    with pytest.raises(US3LError) as err:
        check_calibration(CalibrationSet(x, "provided array"), (1, 3, SIZE, SIZE))
    assert str(err.value) == (
        "calibration images are 3x32x32 but the model takes 3x16x16: calibrate with images of the model's "
        "input size (its evaluation transform)"
    )
    small = CalibrationSet(np.zeros((8, 3, SIZE, SIZE), np.float32), "provided array")
    with pytest.raises(US3LError, match=r"^calibration set too small: 8 image\(s\) from provided array, need at "
                                        r"least 32 "):
        check_calibration(small, (1, 3, SIZE, SIZE))
    blank = CalibrationSet(np.zeros((40, 3, SIZE, SIZE), np.float32), "folder:/black")
    with pytest.raises(US3LError, match=r"^calibration images from folder:/black are mostly identical \(1 distinct "
                                        r"of 40\): INT8 activation ranges and their verification need varied"):
        check_calibration(blank, (1, 3, SIZE, SIZE))


# --------------------------------------------------------------------------------------------- verification


def test_int8_tolerance_is_cosine_and_neighbour_agreement() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((32, 24))
    ok = compare(ref, ref + 0.01 * rng.standard_normal(ref.shape), "int8")
    assert ok and ok.topk_agreement is not None and ok.topk_agreement > 0.9
    assert not compare(ref, rng.permutation(ref), "int8")  # rows shuffled: same values, wrong embeddings
    doc = ok.to_dict()
    assert doc["tolerance"]["rule"] == "quantization" and doc["tolerance"]["max_abs"] is None
    assert doc["tolerance"]["describe"] == "mean cosine >= 0.99, min cosine >= 0.95, top-5 neighbour agreement >= 0.8"
    with pytest.raises(ValueError, match="at least 16 samples"):
        compare(ref[:8], ref[:8], "int8")
    fp32 = compare(ref, ref, "fp32").to_dict()
    assert "topk_agreement" not in fp32 and fp32["tolerance"]["max_abs"] == 1e-4
    assert fp32["tolerance"]["rule"] == "elementwise"
    assert topk_agreement(ref, ref, 5) == 1.0
    assert TOLERANCES["int8"].min_mean_cosine == 0.99


def test_a_repeated_image_does_not_count_in_the_neighbour_agreement() -> None:
    """Red-team 2026-12-06: a dynamic-batch artifact is verified on the whole batch and then on its first image
    alone, and the two outputs were compared as one array: the first image and its copy were each other's nearest
    neighbour in both, which lifted the top-5 agreement, and the manifest said 65 samples for 64 images."""
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((20, 16))
    out = ref + 0.6 * rng.standard_normal(ref.shape)  # noisy enough that neighbour sets differ
    twice_ref, twice_out = np.concatenate([ref, ref[:1]]), np.concatenate([out, out[:1]])
    alone = compare(ref, out, "int8")
    both = compare(twice_ref, twice_out, "int8", distinct=len(ref))
    assert both.samples == 20 and both.topk_agreement == alone.topk_agreement
    assert compare(twice_ref, twice_out, "int8").topk_agreement != alone.topk_agreement  # what it was before
    assert both.min_cosine == alone.min_cosine  # the repeated row is still compared


# ----------------------------------------------------------------------------------------------- ONNX Q/DQ


def test_onnx_int8_is_explicit_qdq_with_per_channel_weights(onnx_int8) -> None:
    import onnx

    res = onnx_int8
    assert res.valid and res.directory.name == "cifar_resnet18-w0.25-onnx-int8"
    model = onnx.load(str(res.artifact.path))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {t.name: t for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    producers = {o: n for n in model.graph.node for o in n.output}
    assert convs
    for conv in convs:  # every conv weight: int8, dequantized with one scale per output channel (axis 0)
        dq = producers[conv.input[1]]
        assert dq.op_type == "DequantizeLinear"
        weight, scale = inits[dq.input[0]], inits[dq.input[1]]
        assert weight.data_type == onnx.TensorProto.INT8
        assert list(scale.dims) == [weight.dims[0]] and weight.dims[0] > 1
        assert {a.name: a.i for a in dq.attribute}.get("axis", 1) == 0
    # 7-bit weights with uint8 activations: no VPMADDUBSW saturation on x86 CPUs without VNNI (8-bit weights,
    # reaching 127, failed verification on an AVX2 EPYC: top-5 agreement 0.72)
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(inits[producers[c.input[1]].input[0]]) for c in convs]
    assert max(int(np.abs(w).max()) for w in weights) == 64


def test_symmetric_activations_keep_8_bit_weights(run_dir: Path, tmp_path: Path) -> None:
    """TensorRT's symmetric int8 activations (no VPMADDUBSW on a GPU) keep the weights' full 8 bits."""
    import onnx
    from onnx import numpy_helper

    from us3l.deploy.quantize import quantize_onnx_qdq

    fp32 = export_width(run_dir, 0.25, "onnx", tmp_path / "fp32", device_name="cpu").artifact.path
    calib = calibration_set("builtin", SIZE, [0.5] * 3, [0.25] * 3, size=CALIB)
    facts = quantize_onnx_qdq(fp32, tmp_path / "q.onnx", calib, 1, symmetric_activations=True)
    assert facts["weights"]["range"] == "8-bit [-127, 127]" and facts["activations"]["dtype"] == "int8"
    w = [numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "q.onnx")).graph.initializer if t.data_type == 3]
    assert max(int(np.abs(a).max()) for a in w if a.ndim == 4) == 127


def test_onnx_int8_runs_in_plain_onnxruntime_within_cosine_tolerance(onnx_int8, run_dir: Path, norm) -> None:
    import onnxruntime as ort

    from us3l.checkpoint import load_backbone
    from us3l.slim import materialize

    calib = calibration_set("builtin", SIZE, *norm, size=CALIB)
    x = calib.holdout
    sess = ort.InferenceSession(str(onnx_int8.artifact.path), providers=["CPUExecutionProvider"])
    out = np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])
    static = materialize(load_backbone(run_dir).model, 0.25).eval()
    with torch.no_grad():
        ref = static(torch.from_numpy(x)).numpy()
    v = compare(ref, out, "int8")
    assert v, v.summary()
    assert v.max_abs_error > 1e-5  # really quantized: not the FP32 graph
    with deploy.load(onnx_int8.directory) as runner:  # manifest checks pass for an int8 artifact
        assert np.array_equal(runner.infer(x[:1]), out[:1])


def test_onnx_int8_manifest_records_quantizer_calibration_and_rule(onnx_int8, norm) -> None:
    import onnxruntime as ort

    m = json.loads(onnx_int8.manifest_path.read_text())
    assert m["backend"]["precision"] == "int8" and m["valid"] is True
    q = m["quantization"]
    assert q["quantizer"] == "onnxruntime.quantization.quantize_static" and q["quantizer_version"] == ort.__version__
    assert q["weights"] == {"dtype": "int8", "symmetric": True, "granularity": "per-channel (output channel)",
                            "range": "7-bit [-64, 64]"}
    assert q["activations"]["granularity"] == "per-tensor"
    assert q["qdq"]["per_channel_weights"] >= 1
    expected = calibration_set("builtin", SIZE, *norm, size=CALIB)
    assert q["calibration"]["size"] == CALIB and q["calibration"]["sha256"] == expected.sha256
    assert q["calibration"]["seed"] == 0 and q["calibration"]["data"] == "builtin"
    v = m["verification"]
    assert v["tolerance"]["rule"] == "quantization" and v["passed"] is True and v["samples"] == 64
    assert v["mean_cosine"] >= 0.99 and v["topk_agreement"] >= 0.8
    assert "held-out training images" in v["inputs"]
    # the graph hashes describe the Q/DQ graph that runs, the FP32 one is kept beside them
    assert m["model"]["graph"]["graph_sha256"] == m["backend"]["onnx_sha256"] != m["backend"]["fp32_onnx_sha256"]


# ----------------------------------------------------------------------------------------------- OpenVINO


@pytest.mark.slow  # NNCF quantization; ONNX int8 stays fast
def test_openvino_int8_is_nncf_quantized_and_verified(run_dir: Path, tmp_path: Path) -> None:
    import nncf
    import openvino as ov

    res = export_width(run_dir, 0.25, "openvino", tmp_path, "int8", "cpu", calib_images=CALIB)
    assert res.valid, res.verification.summary()
    ir = ov.Core().read_model(str(res.artifact.path))
    types = [op.get_type_name() for op in ir.get_ops()]
    assert "FakeQuantize" in types
    assert any(op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8 for op in ir.get_ops())
    m = json.loads(res.manifest_path.read_text())
    assert m["quantization"]["quantizer_version"] == nncf.__version__
    assert m["quantization"]["calibration"]["size"] == CALIB
    assert m["backend"]["weights"] == "int8 (NNCF)" and m["verification"]["tolerance"]["rule"] == "quantization"
    with deploy.load(res.directory) as r:  # the IR's FakeQuantize / i8 constants agree with precision int8
        assert r.manifest["backend"]["precision"] == "int8"


def test_onnx_int8_loads_and_a_claim_of_fp32_is_refused(onnx_int8, tmp_path: Path) -> None:
    """The Q/DQ graph agrees with precision int8 (us3l.deploy.manifest_claims); edited to fp32 it is refused."""
    import shutil

    from us3l.deploy.verify import TOLERANCES

    with deploy.load(onnx_int8.directory) as r:
        assert r.manifest["backend"]["precision"] == "int8"
    d = tmp_path / "a"
    shutil.copytree(onnx_int8.directory, d)
    doc = json.loads((d / "manifest.json").read_text())
    doc["backend"]["precision"] = "fp32"
    tol = TOLERANCES["fp32"]
    doc["verification"].update(precision="fp32", max_abs_error=0.0, min_cosine=1.0,
                               tolerance={"max_abs": tol.max_abs, "min_cosine": tol.min_cosine})
    (d / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(US3LError) as info:
        deploy.load(d)
    assert str(info.value) == (f"{d / 'manifest.json'}: backend.precision is 'fp32' but model.onnx holds an int8 "
                               "graph (the manifest was edited); re-export the artifact")


# ------------------------------------------------------------------------------------------------ refusals


def test_int8_width_without_bn_statistics_is_refused_before_reading_data(tmp_path: Path, monkeypatch) -> None:
    import us3l.deploy.export as export_mod
    from tests.deploy.conftest import calibrated_run

    run = calibrated_run(tmp_path / "run", (0.25,), batch=4)  # BN statistics at 0.25 only (no running stats)

    def boom(*a, **k):
        raise AssertionError("calibration data must not be read for a width without BN statistics")

    monkeypatch.setattr(export_mod, "calibration_set", boom)
    with pytest.raises(US3LError, match=r"^width 0.5 has no calibrated BN statistics"):
        export_width(run, 0.5, "onnx", tmp_path / "out", "int8")


def test_int8_on_a_runtime_that_cannot_run_it(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(US3LError, match="asymmetric uint8 activations, which onnxruntime's TensorRT provider"):
        export_width(run_dir, 0.25, "onnx", tmp_path, "int8", runtime_device="tensorrt")
    if not deploy.get_backend("tensorrt").available():
        with pytest.raises(US3LError, match="^the tensorrt backend needs TensorRT and an NVIDIA GPU"):
            export_width(run_dir, 0.25, "tensorrt", tmp_path, "int8")


def test_int8_calibration_of_another_input_size_is_refused(run_dir: Path, tmp_path: Path, norm) -> None:
    wrong = calibration_set("builtin", 32, *norm, size=CALIB)
    with pytest.raises(US3LError, match=r"^calibration images are 3x32x32 but the model takes 3x16x16"):
        export_width(run_dir, 0.25, "onnx", tmp_path, "int8", calibration=wrong)
    assert not any(tmp_path.rglob("*.onnx"))


def test_int8_without_calibration_images_is_refused(tiny_net, tmp_path: Path) -> None:
    be = deploy.get_backend("onnx")
    with pytest.raises(US3LError, match="^INT8 export to 'onnx' needs calibration images"):
        be.export(tiny_net, torch.zeros(1, 3, 8, 8), tmp_path, precision="int8")
    with pytest.raises(US3LError, match=r"^backend 'onnx' exports precision fp32/int8, not 'fp16'$"):
        be.export(tiny_net, torch.zeros(1, 3, 8, 8), tmp_path, precision="fp16")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--calib-images", "10"], "error: --calib-images must be >= 32 (stable INT8 activation ranges), got 10"),
        (["--model", MODEL], "error: INT8 needs calibration images and a fresh --model has no training data: "
                             "pass --calib-data SPEC (e.g. builtin)"),
    ],
)
def test_int8_cli_errors_are_one_line(args, message, tmp_path: Path, capsys) -> None:
    from us3l.cli import main

    base = ["export", "--backend", "onnx", "--width", "0.25", "--precision", "int8", "--out", str(tmp_path)]
    if "--model" not in args:
        base += ["--model", MODEL]
    code = main(base + args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1] == message


# --------------------------------------------------------------------------------------- TensorRT, pure parts


def test_tensorrt_int8_build_flags_and_command() -> None:
    from us3l.deploy.backends.tensorrt import builder_flags, check_fast_int8, trtexec_build_command

    assert builder_flags("int8") == ("INT8",) and builder_flags("fp16") == ("FP16",) and builder_flags("fp32") == ()
    cmd = trtexec_build_command("m.onnx", "m.engine", fp16=False, int8=True, shapes={"input": (1, 3, 16, 16)})
    assert cmd == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine", "--skipInference", "--int8",
                   "--shapes=input:1x3x16x16"]
    assert "--int8" not in trtexec_build_command("m.onnx", "m.engine")

    class NoFastInt8:  # the one builder attribute the check reads (TensorRT's platform_has_fast_int8)
        platform_has_fast_int8 = False

    with pytest.raises(US3LError, match=r"^this GPU \(compute capability 5.3\) has no fast INT8"):
        check_fast_int8(NoFastInt8(), "5.3")
    assert "int8" in deploy.get_backend("tensorrt").precisions


# ----------------------------------------------------------------------------- accuracy of the artifact itself


def _documented_precision_fields() -> tuple[set[str], set[str]]:
    """The fields of an accuracy.json ``precisions`` entry and of its ``artifact`` as docs/evaluation.md lists them."""
    text = " ".join((ROOT / "docs" / "evaluation.md").read_text(encoding="utf-8").split())
    start = text.index("`precisions: {<precision>: {<backend>: {") + len("`precisions: {<precision>: {<backend>: {")
    fields = text[start : text.index("}}}}`", start)]
    outer, artifact = fields.split("artifact: {")
    return {f.strip() for f in outer.split(",") if f.strip()} | {"artifact"}, {f.strip() for f in artifact.split(",")}


@pytest.mark.slow  # 5.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_int8_artifact_accuracy_beside_fp32_is_stored_and_kept_by_eval(onnx_int8, run_dir: Path, tmp_path, capsys):
    from us3l.cli import main
    from us3l.eval.accuracy import load_accuracy
    from us3l.eval.intervals import wilson_interval

    out = tmp_path / "acc"
    base = ["eval", "--ckpt", str(run_dir), "--knn-max-train", "500", "--out", str(out), "--json"]
    assert main([*base, "--artifact", str(onnx_int8.directory)]) == 0
    res = json.loads(capsys.readouterr().out)["results"][0]
    assert (res["width"], res["precision"], res["backend"]) == (0.25, "int8", "onnx")
    doc = load_accuracy(out)
    row = doc["widths"][0]
    entry = row["precisions"]["int8"]["onnx"]
    assert entry["knn_top1"] == res["knn_top1"] and entry["knn_top1_ci"] == wilson_interval(entry["knn_top1"], 1000)
    assert entry["fp32_knn_top1"] == row["knn_top1"] and doc["num_test"] == 1000  # FP32 measured in the same run
    from us3l.eval.hits import decode_hits  # the artifact's own per-image hits, paired with the FP32 row's by select

    assert decode_hits(entry["knn_top1_hits"], 1000, "int8").sum() == round(entry["knn_top1"] * 1000)
    assert decode_hits(row["knn_top1_hits"], 1000, "fp32").sum() == round(row["knn_top1"] * 1000)
    # a 1-epoch network: weak, near-tied kNN votes flip easily; the accuracy itself moves little
    assert abs(entry["knn_top1_drop"]) <= 0.05 and 0.5 <= entry["prediction_agreement"] <= 1.0
    assert entry["artifact"]["calibration_sha256"] == onnx_int8.manifest["quantization"]["calibration"]["sha256"]
    assert entry["artifact"]["quantizer"] == "onnxruntime.quantization.quantize_static"
    documented, documented_artifact = _documented_precision_fields()
    assert set(entry) == documented and set(entry["artifact"]) == documented_artifact

    # `us3l eval` of that width with the same protocol: the same FP32 number, and the artifact entry is kept
    assert main([*base, "--widths", "0.25", "--no-baselines"]) == 0
    capsys.readouterr()
    again = load_accuracy(out)["widths"][0]
    assert again["knn_top1"] == entry["fp32_knn_top1"] and again["precisions"] == row["precisions"]

    # another kNN protocol cannot be stored beside it: one line, exit 1
    assert main([*base, "--artifact", str(onnx_int8.directory), "--knn-k", "3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "cannot add the artifact accuracies, its kNN protocol differs (k " in err

    # a linear probe the file does not record, or another one's settings, cannot be stored either (red-team
    # 2026-12-05: a 1-epoch probe's numbers were stored under the 20-epoch probe's recorded settings)
    linear = [*base, "--artifact", str(onnx_int8.directory), "--protocol", "both", "--linear-epochs", "1"]
    assert main(linear) == 1
    assert "it records no linear probe" in capsys.readouterr().err
    # --plot has no curve to draw for artifacts: refused, not silently skipped
    assert main([*base, "--artifact", str(onnx_int8.directory), "--plot"]) == 1
    assert "--plot draws the checkpoint's accuracy over its widths" in capsys.readouterr().err


def test_two_artifacts_of_one_accuracy_entry_are_refused_before_any_work(onnx_int8, tmp_path, capsys):
    """Red-team 2026-12-06 (rtL): `--artifact A --artifact B` of the same width, precision and backend (a copy, or
    a batch-1 and a dynamic-batch export) evaluated both, and accuracy.json kept the second without a word."""
    from us3l.cli import main

    copy = tmp_path / "copy"
    shutil.copytree(onnx_int8.directory, copy)
    out = tmp_path / "acc"
    argv = ["eval", "--ckpt", str(onnx_int8.manifest["source"]["checkpoint"]), "--out", str(out),
            "--artifact", str(onnx_int8.directory), "--artifact", str(copy)]
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        f"error: --artifact {onnx_int8.directory} and {copy} are both onnx/int8 at width 0.25: accuracy.json keeps "
        "one accuracy per width, precision and backend; evaluate them with different --out folders\n"
    )
    assert not out.exists()


# ------------------------------------------------------------------------------- profile --precision int8


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_profile_int8_times_the_graph_export_ships(onnx_int8, run_dir: Path, tmp_path: Path, capsys) -> None:
    from us3l.cli import main

    fast = ["--threads", "1", "--max-seconds", "0.2", "--target-ci", "0.2"]
    argv = ["profile", "--device", "cpu", "--ckpt", str(run_dir), "--widths", "0.25", "--backend", "onnx",
            "--precision", "int8", "--calib-images", str(CALIB), "--out", str(tmp_path), "--json", *fast]
    assert main(argv) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["precision"] == "int8" and (tmp_path / "cifar_resnet18-cpu-onnx-int8.json").is_file()
    (rec,) = prof["records"]
    graph = onnx_int8.manifest["model"]["graph"]
    # the same calibration set (seed, size, data) -> the same Q/DQ file, byte for byte
    assert rec["graph_sha256"] == graph["graph_sha256"]
    assert rec["graph_structure_sha256"] == graph["graph_structure_sha256"]
    assert prof["extra"]["int8_calibration"]["sha256"] == onnx_int8.manifest["quantization"]["calibration"]["sha256"]
    assert rec["params"] <= rec["weight_bytes"] < 2 * rec["params"]  # int8: one byte per weight (fp32 would be 4)


def test_an_artifact_whose_embeddings_are_another_networks_is_not_scored() -> None:
    import torch

    from us3l.deploy.accuracy import _check_same_network
    from us3l.errors import US3LError

    g = torch.Generator().manual_seed(0)
    ref = torch.randn(50, 128, generator=g)
    _check_same_network(ref + 0.05 * torch.randn(50, 128, generator=g), ref, 0.25, Path("a"))  # int8-like noise
    with pytest.raises(US3LError, match=r"^a: the artifact's embeddings are \(256,\), width 0.25 of this checkpoint "
                                        r"gives \(128,\): the manifest names another width$"):
        _check_same_network(torch.randn(50, 256, generator=g), ref, 0.25, Path("a"))
    with pytest.raises(US3LError, match=r"are not those of width 0.25 of this checkpoint \(mean cosine -?0\.0\d\d"):
        _check_same_network(torch.randn(50, 128, generator=g), ref, 0.25, Path("a"))


def test_an_artifact_whose_embeddings_are_not_finite_is_not_scored() -> None:
    # an artifact whose arithmetic overflows (NaN or inf embeddings) passed the mean-cosine check (nan < 0.9 is
    # False) and its kNN over NaN scored a number, written to accuracy.json as the artifact's accuracy
    import numpy as np
    import torch

    from us3l.data import load_dataset
    from us3l.deploy.accuracy import runner_features
    from us3l.errors import US3LError
    from us3l.train.knn import subset_dataset

    class Overflowing:
        def infer(self, x: np.ndarray) -> np.ndarray:
            out = np.ones((len(x), 4), dtype=np.float32)
            out[0, 1] = np.inf
            return out

    ds = subset_dataset(load_dataset("digits", "test"), torch.arange(10))
    with pytest.raises(US3LError, match=r"^the artifact gives non-finite embeddings \(NaN or inf\) for 2 of 10 images"):
        runner_features(Overflowing(), ds, lambda x: x.float(), 5)  # a fixed batch of 5: two calls


@pytest.mark.slow  # 1.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_quickstart_int8_line_times_the_bytes_it_checked(onnx_int8, run_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit 2026-12-07: the quickstart's INT8 step read each manifest again and opened both ONNX files by path for
    its timing, after the export step had checked their hashes: a file replaced in between was what got timed. It
    reads and checks each artifact once now and builds both runtimes from those bytes; a file replaced on disk after
    the check is not what runs, and the INT8 artifact scored is the one timed."""
    import dataclasses
    import importlib

    import us3l.commands.quickstart as qs
    import us3l.deploy.accuracy as accuracy
    import us3l.deploy.manifest as manifest
    from us3l.deploy.backends.onnx import OnnxBackend

    fp32 = export_width(run_dir, 0.25, "onnx", tmp_path / "out", device_name="cpu")
    dirs = {p: tmp_path / "art" / r.directory.name for p, r in (("fp32", fp32), ("int8", onnx_int8))}
    for p, r in (("fp32", fp32), ("int8", onnx_int8)):
        shutil.copytree(r.directory, dirs[p])
    monkeypatch.setattr(qs, "_artifact", lambda run, art, device, model, w, backend, precision, force, network: (
        "reused", dirs[precision]))
    select_mod = importlib.import_module("us3l.deploy.select")  # the module (us3l.deploy.select is the function)
    monkeypatch.setattr(select_mod, "read_selection", lambda path: {"devices": [
        {"device": "cpu", "backend": "onnx", "model": MODEL, "chosen": {"width": 0.25}}]})

    checked: dict[str, bytes] = {}
    real_read = manifest.read_artifact_files

    def read_then_replace(doc, directory):  # the files as checked, then replaced on disk
        data = real_read(doc, directory)
        checked[str(directory)] = data["model.onnx"]
        (Path(directory) / "model.onnx").write_bytes(b"replaced after its hash was checked")
        return data

    loads: list[object] = []
    real_load = OnnxBackend.load

    def spy(self, path, *args, **kwargs):
        loads.append(kwargs.get("data"))
        return real_load(self, path, *args, **kwargs)

    sha = onnx_int8.manifest["artifact"]["sha256"]
    scored = {"entry": {"knn_top1": 0.5, "knn_top1_ci": [0.4, 0.6], "knn_top1_drop": 0.0, "prediction_agreement": 1.0,
                        "artifact": {"file_sha256": sha}},
              "fp32": {"knn_top1": 0.5, "knn_top1_ci": [0.4, 0.6]}, "num_test": 10}
    monkeypatch.setattr(manifest, "read_artifact_files", read_then_replace)
    monkeypatch.setattr(OnnxBackend, "load", spy)
    monkeypatch.setattr(accuracy, "evaluate_artifact", lambda *a, **k: scored)
    opts = dataclasses.replace(qs.QuickstartOptions(out=tmp_path / "qs"), threads=1, max_seconds=0.1)
    entry: dict = {}
    run = qs._run_checkpoint(run_dir)
    assert qs._int8(opts, run_dir, tmp_path / "selection.json", tmp_path / "art", entry, run)[0] == "ran", entry
    assert entry["status"] == "ok" and entry["inputs"]["int8_sha256"] == sha
    assert [d["model.onnx"] for d in loads] == [checked[str(dirs["fp32"])], checked[str(dirs["int8"])]]

    # the INT8 file scored is not the one timed (replaced in between): no INT8 line, a warning
    scored["entry"]["artifact"]["file_sha256"] = "0" * 64
    for p, r in (("fp32", fp32), ("int8", onnx_int8)):
        shutil.rmtree(dirs[p])
        shutil.copytree(r.directory, dirs[p])
    entry = {}
    assert qs._int8(dataclasses.replace(opts, force=True), run_dir, tmp_path / "selection.json", tmp_path / "art",
                    entry, run)[0] == "failed"
    assert entry["error"].startswith(f"{dirs['int8']} was replaced while the INT8 line measured it")
