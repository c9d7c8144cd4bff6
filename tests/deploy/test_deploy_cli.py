"""``us3l export`` / ``us3l select`` through the real CLI entry point: exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from us3l.cli import main

from .conftest import latency


def test_select_cli_writes_selection_and_plot(write_profile, write_accuracy, tmp_path: Path, capsys) -> None:
    write_profile([{"width": w, "latency": latency(p, p, p)} for w, p in ((0.25, 1.0), (0.5, 2.0))])
    acc = write_accuracy({0.25: 50.0, 0.5: 60.0})
    out, png = tmp_path / "selection.json", tmp_path / "sel.png"
    code = main(
        [
            "select",
            "--device",
            "cpu",
            "--profiles-dir",
            str(tmp_path / "profiles"),
            "--accuracy",
            str(acc),
            "--latency-ms",
            "3",
            "--out",
            str(out),
            "--plot",
            str(png),
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["devices"][0]["chosen"]["width"] == 0.5
    assert json.loads(out.read_text())["kind"] == "selection"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_select_cli_infeasible_exit_3(write_profile, tmp_path: Path, capsys) -> None:
    prof = write_profile([{"width": 0.25, "latency": latency(5, 5, 5)}])
    code = main(["select", "--profile", str(prof), "--latency-ms", "1", "--out", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert code == 3  # EXIT_INFEASIBLE: 2 stays Click's usage error
    assert "error: infeasible budget" in err and "smallest achievable latency is 5.000 ms" in err
    assert "MACs stand in for accuracy" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "--backend", "tflite", "--width", "0.5", "--model", "cifar_resnet18"], "unknown backend"),
        (["export", "--backend", "onnx", "--width", "0.5", "--model", "cifar_resnet18", "--dynamic-batch",
          "--batch-size", "4"], "--dynamic-batch makes the batch size symbolic: drop --batch-size"),
        (["export", "--backend", "onnx", "--width", "1.5", "--model", "cifar_resnet18"], "[0.25, 1]"),
        (["export", "--backend", "onnx", "--width", "0.5"], "exactly one of --ckpt PATH or --model NAME"),
        (["export", "--backend", "onnx", "--model", "cifar_resnet18"], "exactly one of --width W or --selection"),
        (["export", "--backend", "onnx", "--width", "0.5", "--ckpt", "/nonexistent"], "/nonexistent"),
        (
            ["export", "--backend", "onnx", "--selection", "/nonexistent.json", "--model", "cifar_resnet18"],
            "selection not found",
        ),
        (["select", "--profile", "/nonexistent.json", "--latency-ms", "1"], "profile not found"),
        (
            ["select", "--device", "cpu", "--profiles-dir", "/nonexistent", "--latency-ms", "1"],
            "profiles directory not found",
        ),
    ],
)
def test_bad_inputs_are_one_line_errors(args, message, tmp_path: Path, capsys) -> None:
    code = main([*args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err


@pytest.mark.slow  # 1.4 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_select_then_export_cli(write_profile, tmp_path: Path, capsys) -> None:
    prof = write_profile(
        [{"width": w, "latency": latency(p, p, p)} for w, p in ((0.25, 1.0), (0.5, 9.0))], model="cifar_resnet18"
    )
    sel = tmp_path / "selection.json"
    assert main(["select", "--profile", str(prof), "--latency-ms", "2", "--out", str(sel)]) == 0
    capsys.readouterr()  # select's table (stdout)
    assert main(["export", "--backend", "onnx", "--selection", str(sel), "--out", str(tmp_path / "art")]) == 1
    assert capsys.readouterr().err == ("error: --selection picks the width, not the weights: give the checkpoint it "
                                       "was made for with --ckpt RUN (or --model NAME for the fresh model it "
                                       "profiled)\n")
    assert not (tmp_path / "art").exists()
    code = main(
        [
            "export",
            "--backend",
            "onnx",
            "--selection",
            str(sel),
            "--model",
            "cifar_resnet18",
            "--out",
            str(tmp_path / "art"),
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    (exp,) = doc["exports"]
    assert exp["valid"] and exp["directory"].endswith("cpu/cifar_resnet18-w0.25-onnx-fp32")
    assert exp["verification"]["max_abs_error"] <= 1e-4


def test_export_from_selection_takes_the_choice_made_on_that_backend(write_profile, tmp_path: Path, capsys) -> None:
    """One device profiled with onnx and openvino: `--backend onnx` exports the onnx choice only."""
    from us3l.commands.export import _jobs

    fast_ov = ((0.25, 1.0), (0.5, 1.5), (0.75, 9.0))
    slow_ort = ((0.25, 1.0), (0.5, 9.0), (0.75, 9.0))
    profiles = [
        write_profile([{"width": w, "latency": latency(p, p, p)} for w, p in rows], backend=b)
        for b, rows in (("onnx", slow_ort), ("openvino", fast_ov))
    ]
    sel = tmp_path / "selection.json"
    args = ["select", *[a for p in profiles for a in ("--profile", str(p))], "--latency-ms", "2", "--out", str(sel)]
    assert main(args) == 0
    assert _jobs(None, sel, "cpu", "onnx") == [(0.25, "cpu")]
    assert _jobs(None, sel, "cpu", "openvino") == [(0.5, "cpu")]
    capsys.readouterr()
    from us3l.cli_output import set_quiet

    set_quiet(True)  # red-team 2026-12-07: a note, hidden by -q; the budget was never checked on this backend
    try:
        assert _jobs(None, sel, "cpu", "tensorrt") == [(0.25, "cpu"), (0.5, "cpu")]  # no tensorrt profile: both
    finally:
        set_quiet(False)
    assert ("warning: cpu: the width was chosen on onnx, openvino latencies, exported to tensorrt: its latency on "
            "tensorrt was not checked against the budget") in " ".join(capsys.readouterr().err.split())


def _selection_with(tmp_path: Path, write_profile, capsys, **changes) -> Path:
    prof = write_profile([{"width": 0.25, "latency": latency(1.0, 1.0, 1.0)}], model="cifar_resnet18")
    sel = tmp_path / "selection.json"
    assert main(["select", "--profile", str(prof), "--latency-ms", "2", "--out", str(sel)]) == 0
    capsys.readouterr()
    doc = json.loads(sel.read_text())
    doc["devices"][0].update(changes)
    sel.write_text(json.dumps(doc))
    return sel


@pytest.mark.parametrize("name", ["../../ESCAPED", "/tmp/abs", "..", "a/b", "x" * 300])
def test_export_device_names_cannot_leave_out(name: str, write_profile, tmp_path: Path, capsys) -> None:
    from us3l.validate import NAME_RULE

    out = tmp_path / "work" / "art"
    shown = repr(name) if len(name) <= 80 else repr(f"{name[:40]}…(300 characters)")
    code = main(["export", "--backend", "onnx", "--width", "0.5", "--model", "cifar_resnet18", "--device", name,
                 "--out", str(out)])
    assert code == 1
    assert capsys.readouterr().err == f"error: --device must be a name ({NAME_RULE}), got {shown}\n"
    sel = _selection_with(tmp_path, write_profile, capsys, device=name)
    code = main(["export", "--backend", "onnx", "--selection", str(sel), "--model", "cifar_resnet18",
                 "--out", str(out)])
    assert code == 1
    assert capsys.readouterr().err == f"error: {sel}: devices[0].device must be a name ({NAME_RULE}), got {shown}\n"
    assert not (tmp_path / "ESCAPED").exists() and not out.exists()


def test_export_refuses_a_nan_width_in_a_selection(write_profile, tmp_path: Path, capsys) -> None:
    sel = _selection_with(tmp_path, write_profile, capsys)
    doc = json.loads(sel.read_text())
    doc["devices"][0]["chosen"]["width"] = float("nan")
    sel.write_text(json.dumps(doc))
    code = main(["export", "--backend", "onnx", "--selection", str(sel), "--model", "cifar_resnet18",
                 "--out", str(tmp_path / "art")])
    assert code == 1
    assert capsys.readouterr().err == (
        f"error: {sel}: devices[0].chosen.width must be a finite positive number <= 1, got nan\n"
    )


def test_second_export_into_a_locked_folder_fails_naming_the_holder(tmp_path: Path, capsys) -> None:
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "art"
    hold = ("import sys, time\nfrom us3l.locking import folder_lock\nwith folder_lock(sys.argv[1]):\n"
            "    print('locked', flush=True)\n    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        code = main(["export", "--backend", "onnx", "--width", "0.5", "--model", "cifar_resnet18", "--out", str(out)])
        assert code == 1
        assert capsys.readouterr().err == (
            f"error: export folder {out} is in use by another us3l process (pid {proc.pid}); wait for it to finish "
            "or choose another folder\n"
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert sorted(p.name for p in out.iterdir()) == [".us3l.lock"]  # nothing written


def test_openvino_export_for_an_absent_igpu_is_verified_on_cpu_and_says_so(tmp_path: Path, capsys) -> None:
    from us3l.devices.check import openvino_device_present

    if openvino_device_present("GPU"):
        pytest.skip("this machine has an OpenVINO GPU device")
    code = main(["export", "--backend", "openvino", "--device", "intel-igpu", "--model", "cifar_resnet18",
                 "--width", "0.25", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "note: OpenVINO device GPU of 'intel-igpu' is not present here: the IR is verified on the CPU" in err
    (manifest,) = tmp_path.glob("intel-igpu/*/manifest.json")
    assert json.loads(manifest.read_text())["target"] == {"device": "intel-igpu", "runtime_device": "CPU"}


def test_openvino_export_for_a_cpu_device_is_silent_about_verification(tmp_path: Path, capsys) -> None:
    from us3l.commands.export import _verify_device

    assert _verify_device("openvino", "cpu", None) is None
    assert _verify_device("openvino", "my-own-target", None) is None  # a free target name: CPU, no note
    assert _verify_device("onnx", "intel-igpu", None) is None
    assert _verify_device("openvino", "intel-igpu", "CPU") == "CPU"  # --runtime-device wins
    assert "note:" not in capsys.readouterr().err


def test_select_never_replaces_a_file_that_is_not_a_selection(write_profile, write_accuracy, tmp_path: Path,
                                                              capsys) -> None:
    prof = write_profile([{"width": 0.25, "latency": latency(1, 1, 1)}])
    acc = write_accuracy({0.25: 50.0})
    before = acc.read_bytes()
    code = main(["select", "--profile", str(prof), "--accuracy", str(acc), "--latency-ms", "3", "--out", str(acc)])
    assert code == 1
    assert f"error: refusing to replace {acc}: it is not a us3l selection file; choose another --out" in (
        capsys.readouterr().err
    )
    assert acc.read_bytes() == before
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert main(["select", "--profile", str(prof), "--latency-ms", "3", "--out", str(plain)]) == 1
    assert f"error: --out must be a folder, got the file {plain}" in capsys.readouterr().err
    sel = tmp_path / "old.json"  # a previous selection (old spelling) is replaced
    assert main(["select", "--profile", str(prof), "--latency-ms", "3", "--out", str(sel)]) == 0
    assert main(["select", "--profile", str(prof), "--latency-ms", "3", "--out", str(sel)]) == 0


@pytest.mark.parametrize(
    ("model", "sha", "macs", "message"),
    [
        ("cifar_mobilenetv2", None, None, "chose widths of model cifar_mobilenetv2 on 'cpu', not cifar_resnet18"),
        ("cifar_resnet18", "1" * 64, None, "was made for checkpoint 111111111111… on 'cpu', this export is from a "
                                           "fresh model; run us3l select on this checkpoint's profile and accuracy"),
        # a profile of a fresh model with other options (here 16 base channels): no checkpoint to compare, the MACs
        # differ (was exported with a warning that the graph's structure differs)
        ("cifar_resnet18", None, 1_000_000, "chose width 0.25 on 'cpu' for a network of 1000000 MACs there; this "
                                            "export's network has 35045376 (other model options or input size?): "
                                            "run us3l select on a profile of this network"),
    ],
)
def test_export_refuses_a_selection_made_for_another_network(
    model: str, sha: str | None, macs: int | None, message: str, write_profile, tmp_path: Path, capsys
) -> None:
    row = {"width": 0.25, "latency": latency(1, 1, 1)} | ({} if macs is None else {"macs": macs})
    prof = write_profile([row], model=model)
    doc = json.loads(prof.read_text())
    doc["checkpoint_sha256"] = sha
    prof.write_text(json.dumps(doc))
    sel = tmp_path / "sel"
    assert main(["select", "--profile", str(prof), "--latency-ms", "2", "--out", str(sel), "-q"]) == 0
    capsys.readouterr()
    out = tmp_path / "art"
    args = ["export", "--backend", "onnx", "--selection", str(sel / "selection.json"), "--model", "cifar_resnet18"]
    assert main([*args, "--out", str(out)]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(message)
    assert not list(out.rglob("*.onnx"))


@pytest.mark.slow  # 0.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_select_by_device_takes_the_accuracy_files_model_from_a_shared_folder(
    write_profile, write_accuracy, tmp_path: Path, capsys
) -> None:
    """One profiles/ folder for two models: `select -d cpu --accuracy acc.json` refused the whole answer because
    the other model's profile was found too. That one is now left out, with a note."""
    mine = write_profile([{"width": w, "latency": latency(w, w, w)} for w in (0.5, 1.0)], model="tiny")
    other = write_profile([{"width": w, "latency": latency(w, w, w)} for w in (0.5, 1.0)], model="resnet18")
    acc = write_accuracy({0.5: 60.0, 1.0: 70.0})
    args = ["select", "-d", "cpu", "--profiles-dir", str(mine.parent), "--accuracy", str(acc), "--latency-ms", "2",
            "--out", str(tmp_path / "sel"), "--json"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert [d["model"] for d in doc["devices"]] == ["tiny"]
    assert f"note: left out {other}: it profiles model resnet18, the accuracy file is for tiny" in err
    mine.unlink()  # only the other model's profile is left: one line naming what the folder holds
    assert main(args) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: no profile of model tiny for device 'cpu' in {mine.parent}: it holds profiles of resnet18 "
        "(profile this model, or give --accuracy of the profiled one)"
    )


def test_select_reads_the_statistic_in_any_case(write_profile, tmp_path: Path, capsys) -> None:
    """`--statistic P50` was refused where `--backend ONNX` is accepted: names are read in lowercase."""
    prof = write_profile([{"width": w, "latency": latency(w, w, w)} for w in (0.5, 1.0)])
    assert main(["select", "--profile", str(prof), "--statistic", "P50", "--point", "--latency-ms", "2",
                 "--out", str(tmp_path / "sel"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_rule"]["statistic"] == "p50"


def test_select_reads_the_metric_in_any_case(write_profile, tmp_path: Path, capsys) -> None:
    """`--metric KNN` was 'unknown accuracy metric' while `--statistic P90` was read as p90."""
    prof = write_profile([{"width": w, "latency": latency(w, w, w)} for w in (0.5, 1.0)])
    assert main(["select", "--profile", str(prof), "--metric", "KNN", "--latency-ms", "2",
                 "--out", str(tmp_path / "sel")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --metric knn needs --accuracy (without it MACs stand in for accuracy)")


@pytest.mark.slow  # 1.5 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_export_reads_the_device_in_any_case(write_profile, tmp_path: Path, capsys) -> None:
    """`export -d CPU` wrote OUT/CPU/ with target.device "CPU", and `--selection --device CPU` was "has no device
    'CPU' (it has: cpu)", while `profile -d CPU` and `select -d CPU` read it as cpu."""
    sel = _selection_with(tmp_path, write_profile, capsys)
    out = tmp_path / "art"
    assert main(["export", "--backend", "onnx", "--selection", str(sel), "--device", "CPU", "--model",
                 "cifar_resnet18", "--out", str(out), "--json"]) == 0
    (exp,) = json.loads(capsys.readouterr().out)["exports"]
    assert Path(exp["directory"]) == out / "cpu" / "cifar_resnet18-w0.25-onnx-fp32"
    assert main(["export", "--backend", "onnx", "--width", "0.5", "--device", " Cpu", "--model", "cifar_resnet18",
                 "--out", str(out), "--json"]) == 0
    (exp,) = json.loads(capsys.readouterr().out)["exports"]
    assert Path(exp["directory"]) == out / "cpu" / "cifar_resnet18-w0.5-onnx-fp32"
    assert json.loads((Path(exp["directory"]) / "manifest.json").read_text())["target"]["device"] == "cpu"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["cpu"]
