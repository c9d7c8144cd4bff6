"""``us3l profile --precision LIST``: one sweep per precision, each with its own profile file and table, every entry
checked (value, repeats, the device file's ``[precisions]``) before any model is built (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from us3l.cli import main
from us3l.commands.profile import parse_precisions
from us3l.errors import US3LError
from us3l.profiler.profile_file import load_profile

FAST = ["--threads", "1", "--max-seconds", "0.2", "--target-ci", "0.2"]


def test_parse_precisions() -> None:
    assert parse_precisions(None) == [None]
    assert parse_precisions("int8") == ["int8"]
    assert parse_precisions("fp32, int8") == ["fp32", "int8"]
    assert parse_precisions("FP32,Int8") == ["fp32", "int8"]  # as --backend ONNX is onnx (red-team 2026-12-05)
    for text, bad in (("fp32,int4", "'int4'"), ("fp32,", "''")):
        with pytest.raises(US3LError) as info:
            parse_precisions(text)
        assert str(info.value) == f"--precision must be fp32, fp16 or int8, got {bad}"
    with pytest.raises(US3LError) as info:
        parse_precisions("fp32,int8,fp32")
    assert str(info.value) == "--precision lists fp32 more than once, got 'fp32,int8,fp32'"


def _assert_refused(device: list[str], extra: list[str], message: str, tmp_path: Path, capsys) -> None:
    """``us3l profile`` on one width exits 1 with exactly ``message`` on stderr and writes nothing."""
    out = tmp_path / "p"
    argv = ["profile", *device, "--model", "cifar_resnet18", "--widths", "0.25", *extra,
            "--calib-data", "builtin", "--out", str(out)]
    assert main(argv) == 1
    assert capsys.readouterr().err == message + "\n"
    assert not out.exists()


@pytest.mark.parametrize(
    ("precision", "backend", "message"),
    [
        ("fp32,int4", "onnx", "error: --precision must be fp32, fp16 or int8, got 'int4'"),  # as a single bad value
        ("int8,int8", "onnx", "error: --precision lists int8 more than once, got 'int8,int8'"),
        ("int8,fp16", "onnx", "error: device 'cpu' does not run fp16 on onnx: its device file allows fp32, int8 "
                              "([precisions] onnx in built-in (cpu.toml))"),
        ("fp32,fp16", "torch", "error: device 'cpu' does not run fp16 on torch: its device file allows fp32 "
                               "([precisions] torch in built-in (cpu.toml))"),
        ("fp32,int8", "torch", "error: the torch backend times eager PyTorch in fp32; profile int8 with --backend "
                               "onnx or openvino"),
    ],
)
def test_a_bad_entry_is_refused_before_any_work(precision: str, backend: str, message: str, tmp_path: Path,
                                                capsys) -> None:
    _assert_refused(["--device", "cpu"], ["--backend", backend, "--precision", precision], message, tmp_path, capsys)


@pytest.mark.parametrize("precision", [[], ["--precision", "fp32"]])
def test_calibration_flags_without_int8_are_refused(precision: list[str], tmp_path: Path, capsys) -> None:
    """Red-team 2026-12-06 (rtL): `--calib-data` / `--calib-images` on a sweep without int8 (the device's own
    precision, or --precision fp32) were dropped without a word; us3l export --switchable refuses them."""
    _assert_refused(["--device", "cpu"], ["--backend", "onnx", *precision],
                    "error: --precision has no int8: drop --calib-data (int8 calibration), or add int8 to --precision",
                    tmp_path, capsys)


def test_int8_on_a_device_whose_file_does_not_allow_it(tmp_path: Path, capsys) -> None:
    dev = tmp_path / "edge.toml"
    dev.write_text('name = "edge"\nbackends = ["onnx"]\n[precisions]\nonnx = ["fp32"]\n')
    _assert_refused(
        ["--device-file", str(dev)], ["--precision", "int8"],
        f"error: device 'edge' does not run int8 on onnx: its device file allows fp32 ([precisions] onnx in {dev})",
        tmp_path, capsys,
    )


@pytest.mark.slow  # three whole profiles; the backend list stays fast
def test_a_list_writes_one_profile_and_one_table_per_precision(tmp_path: Path, capsys) -> None:
    # a device file at 8 px keeps the two OpenVINO sweeps cheap
    dev = tmp_path / "tiny.toml"
    dev.write_text('name = "tiny"\nbackends = ["openvino"]\ninput_size = 8\n')
    out = tmp_path / "p"
    argv = ["profile", "--device-file", str(dev), "--model", "cifar_resnet18", "--widths", "0.25,0.5",
            "--precision", "fp16,fp32", "--out", str(out), *FAST]
    assert main(argv) == 0
    captured = capsys.readouterr()
    titles = [line.strip() for line in captured.out.splitlines() if line.strip().startswith("cifar_resnet18 on tiny")]
    assert titles == [
        "cifar_resnet18 on tiny (openvino, fp16, input 1x3x8x8, 1 threads)",
        "cifar_resnet18 on tiny (openvino, fp32, input 1x3x8x8, 1 threads)",
    ]  # the results, in the order asked, one table each
    wrote = [line for line in captured.err.splitlines() if line.startswith("wrote ")]
    assert wrote == [f"wrote {out}/cifar_resnet18-tiny-openvino-{p}.json and {out}/cifar_resnet18-tiny-openvino-{p}.csv"
                     for p in ("fp16", "fp32")]
    for p in ("fp16", "fp32"):
        prof = load_profile(out / f"cifar_resnet18-tiny-openvino-{p}.json")
        assert prof.precision == p and sorted(r.width for r in prof.records) == [0.25, 0.5]
        assert all(r.latency.n >= 2 for r in prof.records)
    w16, w32 = (sorted(load_profile(out / f"cifar_resnet18-tiny-openvino-{p}.json").records, key=lambda r: r.width)
                for p in ("fp16", "fp32"))
    for a, b in zip(w16, w32, strict=True):  # each file is its own precision's sweep: fp16 weights, ~half the bytes
        assert 0.5 <= a.weight_bytes / b.weight_bytes < 0.51


@pytest.mark.slow  # 1.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_list_with_json_prints_one_document(tmp_path: Path, capsys) -> None:
    out = tmp_path / "p"
    argv = ["profile", "--device", "cpu", "--model", "cifar_resnet18", "--widths", "0.25", "--backend", "onnx",
            "--precision", "int8,fp32", "--calib-data", "builtin", "--calib-images", "32", "--out", str(out),
            "--json", *FAST]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)  # exactly one JSON document
    assert list(doc) == ["profiles"]
    assert [(p["kind"], p["precision"]) for p in doc["profiles"]] == [("profile", "int8"), ("profile", "fp32")]
    int8, fp32 = doc["profiles"]
    assert int8["extra"]["int8_calibration"]["size"] == 32 and "int8_calibration" not in (fp32.get("extra") or {})
    for p in doc["profiles"]:
        assert json.loads((out / f"cifar_resnet18-cpu-onnx-{p['precision']}.json").read_text())["records"] \
            == p["records"]


@pytest.mark.slow  # 1.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_file_of_the_users_where_the_profile_would_go_is_refused_before_measuring(tmp_path: Path, capsys) -> None:
    """Red-team 2026-12-05: select and report refused to replace a user's file, profile overwrote it."""
    out = tmp_path / "p"
    out.mkdir()
    mine = out / "cifar_resnet18-cpu-onnx-fp32.csv"
    mine.write_text("my,csv\n")
    argv = ["profile", "--device", "cpu", "--backend", "onnx", "--model", "cifar_resnet18", "--widths", "0.25",
            *FAST, "--out", str(out)]
    assert main(argv) == 1
    assert capsys.readouterr().err == (f"error: refusing to replace {mine}: it is not a us3l profile table; "
                                       "choose another --out\n")
    assert mine.read_text() == "my,csv\n" and sorted(p.name for p in out.iterdir()) == [mine.name]
    mine.unlink()
    assert main(argv) == 0 and main(argv) == 0  # its own earlier output is replaced
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "cifar_resnet18-cpu-onnx-fp32.csv", "cifar_resnet18-cpu-onnx-fp32.json"]


def test_a_backend_that_cannot_run_the_devices_default_precision_says_what_it_profiles(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    devs = tmp_path / "devs"
    devs.mkdir()
    (devs / "prec.toml").write_text('name = "prec"\nbackends = ["openvino", "onnx"]\nprecision = "fp16"\n')
    monkeypatch.setenv("US3L_DEVICES_DIR", str(devs))
    out = tmp_path / "p"
    assert main(["profile", "--device", "prec", "--backend", "onnx", "--model", "cifar_resnet18", "--widths",
                 "0.25", *FAST, "--out", str(out)]) == 0
    assert "onnx does not run the device's precision fp16: profiling fp32" in capsys.readouterr().err
    assert load_profile(out / "cifar_resnet18-prec-onnx-fp32.json").precision == "fp32"
