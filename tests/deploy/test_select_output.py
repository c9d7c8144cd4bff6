"""``us3l select`` output conventions (issue 13): the table on stdout, notes on stderr, key columns whole at
80 columns, ``--out`` a folder, ``--plot`` a switch, old spellings still working with a note, exit 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from us3l.cli import legacy_argv, main
from us3l.cli_output import EXIT_INFEASIBLE, EXIT_USAGE

from .conftest import latency

ROWS = ((0.25, 1.0), (0.5, 2.0), (0.75, 3.25), (1.0, 4.5))


@pytest.fixture
def setup(write_profile, write_accuracy, tmp_path: Path) -> tuple[Path, Path]:
    prof = write_profile([{"width": w, "latency": latency(p, p * 1.1, p * 1.2)} for w, p in ROWS])
    return prof, write_accuracy({0.25: 50.0, 0.5: 60.0, 0.75: 70.5, 1.0: 80.0})


def test_table_on_stdout_notes_on_stderr_key_columns_whole_at_80(setup, tmp_path, monkeypatch, capsys) -> None:
    prof, acc = setup
    monkeypatch.setenv("COLUMNS", "80")
    args = ["select", "--profile", str(prof), "--accuracy", str(acc), "--latency-ms", "4", "--out", str(tmp_path)]
    assert main(args) == 0
    cap = capsys.readouterr()
    assert "…" not in cap.out and max(len(line) for line in cap.out.splitlines()) <= 80
    assert "0.75" in cap.out and "70.5" in cap.out and "3.575" in cap.out  # width, accuracy, latency (p90 bound)
    assert f"wrote {tmp_path / 'selection.json'}" in cap.err and "wrote" not in cap.out
    assert "--wide shows every column" in cap.err
    assert json.loads((tmp_path / "selection.json").read_text())["kind"] == "selection"
    assert main([*args, "--wide"]) == 0
    cap = capsys.readouterr()
    assert "runner-up" in cap.out and "p99" in cap.out and "--wide" not in cap.err


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_out_is_a_folder_plot_a_switch_old_spellings_still_work(setup, tmp_path, capsys) -> None:
    prof, acc = setup
    base = ["select", "--profile", str(prof), "--accuracy", str(acc), "--latency-ms", "4"]
    assert main([*base, "--out", str(tmp_path / "new"), "--plot"]) == 0
    assert (tmp_path / "new" / "selection.json").is_file()
    assert (tmp_path / "new" / "selection.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    old_file, old_png = tmp_path / "old" / "mine.json", tmp_path / "p.png"
    assert main([*base, "--out", str(old_file), "--plot", str(old_png)]) == 0
    err = capsys.readouterr().err
    assert old_file.is_file() and old_png.is_file()
    assert f"note: `us3l select --out {old_file}` is deprecated; use --out {old_file.parent}" in err
    assert f"note: `us3l select --plot {old_png}` is deprecated; use --plot (a switch" in err


def test_an_old_out_file_with_an_upper_case_suffix_is_the_file(setup, tmp_path, capsys) -> None:
    """`--out mine.JSON` (the old file spelling) made a folder mine.JSON holding selection.json, exit 0, where
    `report --out page.HTML` writes that file: the suffix is matched whatever its case."""
    prof, acc = setup
    old_file = tmp_path / "mine.JSON"
    assert main(["select", "--profile", str(prof), "--accuracy", str(acc), "--latency-ms", "4", "--quiet",
                 "--out", str(old_file)]) == 0
    assert old_file.is_file() and json.loads(old_file.read_text())["kind"] == "selection"
    assert capsys.readouterr().err.splitlines()[0] == (f"note: `us3l select --out {old_file}` is deprecated; use "
                                                       f"--out {old_file.parent} (the folder; the file is always "
                                                       "selection.json)")


@pytest.mark.parametrize("spelling", ["same", "dotted"])
def test_an_old_plot_path_that_is_the_selection_file_is_refused(spelling: str, setup, tmp_path, monkeypatch,
                                                               capsys) -> None:
    """``--plot FILE`` (old spelling) naming the selection file this command writes, not there yet: refused before
    any work. It passed the file checks (nothing there yet), and the PNG was written over the selection just
    written, exit 0 and "wrote" both."""
    prof, acc = setup
    monkeypatch.chdir(tmp_path)
    sel = Path("out") / "selection.json"
    plot = str(sel) if spelling == "same" else f"./out/../out/{sel.name}"
    (tmp_path / "out").mkdir()
    rc = main(["select", "--profile", str(prof), "--accuracy", str(acc), "--latency-ms", "4", "--out", "out",
               "--plot", plot])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.splitlines()[-1] == (f"error: --plot {Path(plot)} is the selection file this command writes (--out): "
                                    "give the plot another name, or use --plot alone (it writes the PNG next to the "
                                    "selection)")
    assert list((tmp_path / "out").iterdir()) == []


def test_legacy_argv_rewrites_only_select_plot_paths() -> None:
    assert legacy_argv(["select", "--plot", "a.png", "--json"]) == ["select", "--plot-file", "a.png", "--json"]
    assert legacy_argv(["select", "--plot=a.png"]) == ["select", "--plot-file=a.png"]
    assert legacy_argv(["select", "--plot", "--json"]) == ["select", "--plot", "--json"]
    assert legacy_argv(["eval", "--plot", "--ckpt", "run"]) == ["eval", "--plot", "--ckpt", "run"]


def test_infeasible_is_exit_3_and_a_mistyped_flag_exit_2(setup, tmp_path, capsys) -> None:
    prof, acc = setup
    base = ["select", "--profile", str(prof), "--accuracy", str(acc), "--out", str(tmp_path)]
    assert main([*base, "--latency-ms", "0.1"]) == EXIT_INFEASIBLE == 3
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: infeasible budget: ")
    assert main([*base, "--latency-msx", "0.1"]) == EXIT_USAGE == 2
    assert "No such option: --latency-msx" in capsys.readouterr().err


def test_export_of_an_infeasible_selection_is_exit_3(setup, tmp_path, capsys) -> None:
    prof, acc = setup
    assert main(["select", "--profile", str(prof), "--latency-ms", "0.1", "--out", str(tmp_path)]) == 3
    capsys.readouterr()
    sel = tmp_path / "selection.json"
    rc = main(["export", "--backend", "onnx", "--selection", str(sel), "--model", "cifar_resnet18",
               "--out", str(tmp_path / "art")])
    assert rc == 3
    assert capsys.readouterr().err == (
        f"error: {sel}: no width fits the budget on device 'cpu'; nothing to export\n"
    )


def test_one_profile_given_twice_is_refused(setup, tmp_path, capsys) -> None:
    """Red-team 2026-12-05: the device got two identical answers, and export --selection would export it twice."""
    prof, acc = setup
    args = ["select", "--profile", str(prof), "--profile", str(prof), "--accuracy", str(acc), "--latency-ms", "4",
            "--out", str(tmp_path / "s")]
    assert main(args) == 1
    assert capsys.readouterr().err == (f"error: profile {prof} is given twice (--profile and --device find the "
                                       "same files too)\n")
    assert not (tmp_path / "s").exists()


def test_the_slack_under_a_huge_budget_is_a_short_number(setup, tmp_path, capsys) -> None:
    """Red-team 2026-12-06: --latency-ms 1e308 printed the slack as a 309-digit number (``.3f``)."""
    prof, acc = setup
    args = ["select", "--profile", str(prof), "--accuracy", str(acc), "--latency-ms", "1e308", "--wide",
            "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert " 1e+308 " in out and "0000000" not in out
    assert json.loads((tmp_path / "selection.json").read_text())["devices"][0]["slack"]["latency_ms"] == 1e308


def test_two_profiles_of_one_device_name_are_refused(setup, tmp_path, capsys) -> None:
    """Red-team 2026-12-06: two boards profiled under one device name (here the same device, model, backend and
    precision from two hosts) gave two indistinguishable "cpu onnx/fp32" rows with different widths, and export
    --selection --device cpu exported both widths into artifacts/cpu/."""
    prof, acc = setup
    doc = json.loads(prof.read_text())
    doc["fingerprint"] = {"hostname": "board-b"}
    for rec in doc["records"]:  # the other board is 3x slower: a different answer under the same name
        rec["latency"] = latency(*(3 * rec["latency"][k] for k in ("p50_ms", "p90_ms", "p99_ms")))
    other = tmp_path / "board-b" / prof.name
    other.parent.mkdir()
    other.write_text(json.dumps(doc))
    prof.write_text(json.dumps({**json.loads(prof.read_text()), "fingerprint": {"hostname": "board-a"}}))
    args = ["select", "--profile", str(prof), "--profile", str(other), "--accuracy", str(acc), "--latency-ms", "4",
            "--out", str(tmp_path / "s")]
    assert main(args) == 1
    assert capsys.readouterr().err == (
        f"error: profiles {prof} and {other} both answer for device 'cpu' (tiny, onnx, fp32) (one measured on host "
        "board-a, the other on host board-b): one selection has one answer per device; select from one of them, or "
        "profile the other machine under its own device name (a --device-file)\n"
    )
    assert not (tmp_path / "s").exists()
    other.write_text(json.dumps({**doc, "device": "cpu-b"}))  # the same board under its own name: two answers
    assert main(args) == 0
    sel = json.loads((tmp_path / "s" / "selection.json").read_text())
    assert [(d["device"], d["chosen"]["width"]) for d in sel["devices"]] == [("cpu", 0.75), ("cpu-b", 0.25)]


@pytest.mark.parametrize(("metric", "message"), [
    ("bogus", "error: unknown accuracy metric 'bogus' (choose auto, linear, knn)"),
    ("linear", "error: --metric linear needs --accuracy (without it MACs stand in for accuracy)"),
])
def test_metric_is_checked_without_an_accuracy_file(setup, tmp_path, capsys, metric: str, message: str) -> None:
    """Red-team 2026-12-05: without --accuracy any --metric was accepted and silently replaced by MACs."""
    prof, _ = setup
    assert main(["select", "--profile", str(prof), "--latency-ms", "4", "--metric", metric,
                 "--out", str(tmp_path / "s")]) == 1
    assert capsys.readouterr().err == message + "\n"


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_plot_never_replaces_a_png_of_the_users(setup, tmp_path, monkeypatch, capsys) -> None:
    """Red-team 2026-12-05: selection.json was protected, selection.png silently replaced any file there."""
    import importlib
    import io

    from matplotlib.figure import Figure

    solver = importlib.import_module("us3l.deploy.select")  # the module (the package exports a function so named)
    prof, acc = setup
    out = tmp_path / "sel"
    out.mkdir()
    argv = ["select", "--profile", str(prof), "--accuracy", str(acc), "--latency-ms", "4", "--out", str(out), "--plot"]
    png, fig, buf = out / "selection.png", Figure(figsize=(1, 1)), io.BytesIO()
    fig.add_subplot().plot([0, 1])
    fig.savefig(buf, format="png")  # drawn with matplotlib directly (Software: Matplotlib version…)
    for mine in (buf.getvalue(), b"my own notes\n"):
        png.write_bytes(mine)
        with monkeypatch.context() as m:  # refused before anything is selected
            m.setattr(solver, "select", lambda *a, **k: pytest.fail("selected"))
            assert main(argv) == 1
        assert capsys.readouterr().err == (f"error: refusing to replace {png}: it is not a us3l plot; "
                                           "choose another --out\n")
        assert png.read_bytes() == mine and [p.name for p in out.iterdir()] == ["selection.png"]
    png.unlink()
    assert main(argv) == 0
    first = png.read_bytes()
    assert main(argv) == 0 and png.read_bytes() == first  # its own PNG is replaced, byte for byte the same
    png.write_bytes(buf.getvalue())  # what us3l wrote before its plots were marked, beside its selection.json
    assert main(argv) == 0 and png.read_bytes() == first


def test_without_an_accuracy_file_the_decision_is_named_by_macs(write_profile, tmp_path, capsys) -> None:
    """The "decided by" cell read "accuracy" when MACs stood in for it (no --accuracy)."""
    prof = write_profile([{"width": w, "latency": latency(p, p * 1.1, p * 1.2)} for w, p in ROWS])
    assert main(["select", "--profile", str(prof), "--latency-ms", "4", "--out", str(tmp_path), "--wide"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if " 0.75 " in line)
    assert "MACs (proxy)" in row and "accuracy" not in row


def test_a_static_and_a_switchable_profile_of_one_device_are_refused(setup, tmp_path, capsys) -> None:
    """Red-team 2026-12-06: a static profile and a switchable artifact's profile (model "<model>-switchable") of
    the same device gave two answers for that device, told apart only by the model name; one is chosen."""
    prof, acc = setup
    doc = json.loads(prof.read_text())
    widths = [rec["width"] for rec in doc["records"]]
    doc.update(model="tiny-switchable", extra={"switchable": {"artifact": "a", "sha256": "0" * 64, "widths": widths}})
    for rec in doc["records"]:  # a different answer from the static artifacts'
        rec["latency"] = latency(*(3 * rec["latency"][k] for k in ("p50_ms", "p90_ms", "p99_ms")))
    switchable = prof.with_name("tiny-switchable-cpu-onnx-fp32.json")
    switchable.write_text(json.dumps(doc))
    expected = (
        f"error: profiles {prof} (static widths) and {switchable} (a switchable artifact) both answer for device "
        "'cpu' (tiny, onnx, fp32): one selection has one answer per device; select from the static profile (a "
        "per-width artifact) or the switchable one (one artifact, the width chosen per call), not both (keep them "
        "in separate folders)\n"
    )
    for given in (["--profile", str(prof), "--profile", str(switchable)],
                  ["--device", "cpu", "--profiles-dir", str(prof.parent)]):
        args = [*given, "--accuracy", str(acc), "--latency-ms", "4", "--out", str(tmp_path / "s")]
        assert main(["select", *args]) == 1
        assert capsys.readouterr().err == expected
        assert not (tmp_path / "s").exists()
    assert main(["select", "--profile", str(switchable), "--accuracy", str(acc), "--latency-ms", "20", "--out",
                 str(tmp_path / "s")]) == 0  # either alone is one answer


def test_a_devices_notes_carry_the_note_prefix_and_quiet_drops_them(write_profile, write_accuracy, tmp_path,
                                                                    capsys) -> None:
    """A device's notes (a width excluded, no 95% intervals) printed on stderr as "cpu: width 0.75 has no accuracy:
    excluded", without the `note:` every other command's notes start with; `-q` still drops them."""
    prof = write_profile([{"width": w, "latency": latency(p, p * 1.1, p * 1.2)} for w, p in ROWS])
    acc = write_accuracy({0.25: 50.0, 0.5: 60.0, 1.0: 80.0})  # no 0.75
    args = ["select", "--profile", str(prof), "--accuracy", str(acc), "--latency-ms", "4", "--out", str(tmp_path)]
    assert main(args) == 0
    err = capsys.readouterr().err.splitlines()
    assert "note: cpu: width 0.75 has no accuracy: excluded" in err
    assert not any(line.startswith("cpu: ") for line in err)
    assert main([*args, "-q"]) == 0
    assert "excluded" not in capsys.readouterr().err
