"""us3l.script_cli: the benchmark scripts' argument types and error policy (one line, exit 1 or 2, no traceback)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.script_module import ROOT
from tests.script_runs import ScriptRun, run_scripts
from us3l import script_cli
from us3l.errors import US3LError


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (script_cli.positive_int, "0", "must be >= 1, got '0'"),
        (script_cli.positive_int, "2.5", "expects a whole number, got '2.5'"),
        (script_cli.nonnegative_int, "-1", "must be >= 0, got '-1'"),
        # ASCII decimals only: int() and float() read "1_0" as 10 and "\u0663" (Arabic-Indic 3) as 3
        (script_cli.positive_int, "1_0", "expects a whole number, got '1_0'"),
        (script_cli.nonnegative_int, "\u0663", "expects a whole number, got '\u0663'"),
        (script_cli.positive_float, "1_0.5", "expects a number, got '1_0.5'"),
        (script_cli.widths, "0.5,0.\u0665", "expects a number, got '0.\u0665' (in '0.5,0.\u0665')"),
        (script_cli.positive_float, "nan", "expects a finite number, got 'nan'"),
        (script_cli.positive_float, "-0.0", "must be > 0, got '-0.0'"),
        (script_cli.nonnegative_float, "inf", "expects a finite number, got 'inf'"),
        (script_cli.width, "1.01", "must be in (0, 1], got '1.01'"),
        (script_cli.width, "x", "expects a number, got 'x'"),
        (script_cli.widths, "abc", "expects a number, got 'abc'"),
        (script_cli.widths, "1,x", "expects a number, got 'x' (in '1,x')"),
        (script_cli.widths, "2.0", "must be in (0, 1], got '2.0'"),
        (script_cli.widths, "0.5,nan", "expects a finite number, got 'nan' (in '0.5,nan')"),
        (script_cli.widths, "", "expects widths in (0, 1], comma-separated, got ''"),
        (script_cli.widths, "1,,0.5", "has an empty entry, got '1,,0.5' (expects widths in (0, 1], comma-separated)"),
        (script_cli.widths, "0.5,0.50", "lists 0.50 twice, got '0.5,0.50'"),
        (script_cli.seeds, "1,-1", "must be >= 0, got '-1' (in '1,-1')"),
        (script_cli.seeds, "1,1", "lists 1 twice, got '1,1'"),
        (script_cli.backends, "onnx,foo",
         "unknown backend 'foo'; choose from onnx, openvino, tensorrt (in 'onnx,foo')"),
    ],
)
def test_bad_values_are_refused_with_a_message(kind, text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as err:
        kind(text)
    assert str(err.value) == message


def test_good_values_pass() -> None:
    assert script_cli.positive_int(" 3") == 3 and script_cli.nonnegative_int("0") == 0
    assert script_cli.positive_float("+1E-3") == 1e-3 and script_cli.positive_int("+10") == 10
    assert script_cli.positive_float("1e-3") == 1e-3 and script_cli.nonnegative_float("0") == 0.0
    assert script_cli.width("0.25") == 0.25 and script_cli.width("1") == 1.0
    assert script_cli.widths(" 1, 0.5 ,0.25") == [1.0, 0.5, 0.25] and script_cli.seeds("100,1,2") == [100, 1, 2]
    assert script_cli.models("cifar_resnet18,resnet50") == ["cifar_resnet18", "resnet50"]
    assert script_cli.comma_list(script_cli.model, "models", empty_ok=True)("") == []


def test_an_unknown_model_is_refused_naming_the_registered_ones() -> None:
    from us3l.models import list_models

    with pytest.raises(argparse.ArgumentTypeError) as err:
        script_cli.models("cifar_resnet18,foo")
    assert str(err.value) == f"unknown model 'foo'; choose from {', '.join(list_models())} (in 'cifar_resnet18,foo')"


def test_a_usage_error_is_one_line_naming_the_help(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Like the us3l CLI's usage errors (``error: ... (see: us3l CMD --help)``), not argparse's usage block."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "roofline.py"), "--threads", "-1"])
    ap = script_cli.ArgumentParser(description="Roofline.")
    ap.add_argument("--threads", type=script_cli.positive_int, default=None, help="torch threads")
    with pytest.raises(SystemExit) as exc:
        ap.parse_args()
    assert exc.value.code == 2
    assert capsys.readouterr().err == (
        "error: argument --threads: must be >= 1, got '-1' (see: python benchmarks/roofline.py --help)\n")
    with pytest.raises(SystemExit) as exc:
        ap.parse_args(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and out.startswith("usage: benchmarks/roofline.py [-h] [--threads THREADS]\n")
    assert "Roofline." in out and "torch threads" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--threads", "2", "--threads=3"], "--threads given twice (2, 3)"),
        (["-w", "1,0.5", "--widths", "0.25"], "--widths given twice (1,0.5, 0.25)"),
        (["--quiet", "--quiet"], "--quiet given twice"),
        (["--quiet", "--no-quiet"], "--quiet given twice (--quiet, --no-quiet)"),
    ],
)
def test_an_option_given_twice_is_a_usage_error(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the us3l commands: argparse kept the last of an option given twice, silently."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "roofline.py")])
    ap = script_cli.ArgumentParser()
    ap.add_argument("--threads", type=script_cli.positive_int)
    ap.add_argument("-w", "--widths", type=script_cli.widths)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--no-quiet", dest="quiet", action="store_false")
    ap.add_argument("--tag", action="append", default=[])
    with pytest.raises(SystemExit) as exc:
        ap.parse_args(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err == f"error: {message}: give it once (see: python benchmarks/roofline.py --help)\n"
    # a list option stays repeatable, and each command line is read afresh
    args = ap.parse_args(["--tag", "a", "--tag", "b", "--threads", "2"])
    assert (args.tag, args.threads) == (["a", "b"], 2)
    assert ap.parse_args(["--threads", "3"]).threads == 3


def _raising(exc: Exception) -> Callable[[], int]:
    """A script ``main`` that raises ``exc``."""
    def main() -> int:
        raise exc
    return main


def test_run_script_turns_errors_into_one_line(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from us3l.cli import run_script

    monkeypatch.delenv("US3L_DEBUG", raising=False)

    assert run_script(lambda: None) == 0 and run_script(lambda: 4) == 4
    assert run_script(_raising(US3LError("no such run\nfolder"))) == 1
    assert capsys.readouterr().err == "error: no such run\\nfolder\n"
    assert run_script(_raising(ZeroDivisionError("float division by zero"))) == 1
    assert capsys.readouterr().err == (
        "error: ZeroDivisionError: float division by zero (set US3L_DEBUG=1 for the traceback)\n")
    assert run_script(_raising(NotADirectoryError(20, "Not a directory", "/dev/null/x"))) == 1
    assert capsys.readouterr().err == "error: Not a directory: /dev/null/x\n"
    monkeypatch.setenv("US3L_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        run_script(_raising(ZeroDivisionError("x")))


def test_run_script_words_every_os_error_alike(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from us3l.cli import run_script

    monkeypatch.delenv("US3L_DEBUG", raising=False)

    cases = [
        (FileNotFoundError(2, "No such file or directory", "/proc/report.html"),
         "No such file or directory: /proc/report.html"),
        (PermissionError(13, "Permission denied", "/ro/selection.json"), "Permission denied: /ro/selection.json"),
        (OSError(28, "No space left on device"), "No space left on device"),
        (OSError(18, "Invalid cross-device link", "/a", None, "/b"), "Invalid cross-device link: /a -> /b"),
        (FileNotFoundError("no checkpoint in /x"), "no checkpoint in /x"),  # a message of our own stays as it is
    ]
    for exc, text in cases:
        assert run_script(_raising(exc)) == 1
        assert capsys.readouterr().err == f"error: {text}\n"


def test_every_benchmark_uses_the_policy_and_typed_numbers() -> None:
    """A new benchmark argument declared ``type=int`` / ``type=float`` takes 0, negatives and nan unchecked; a list
    split by hand (``args.widths.split(",")``) is read after the parser, where a typo fails late (``collapse.py
    --eval-widths abc`` after 30 minutes of training) and not as a usage error; argparse's own parser prints its
    usage block before the error."""
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        text = script.read_text()
        assert text.rstrip().endswith("script_cli.run(main)"), script.name
        assert "argparse.ArgumentParser(" not in text, script.name  # script_cli.ArgumentParser: one line
        # README: "the scripts write their date, commit and machine" (printed first, or in the result file)
        assert "provenance_line()" in text or "git_commit()" in text, script.name
        by_hand = re.findall(r"""\.split\(\s*(?:",\s*"|',\s*')\s*\)|\bargs\.\w+\.split\(""", text)
        assert not by_hand, (script.name, by_hand)  # a comma list is a type: script_cli.comma_list, .widths, ...
        untyped = [m for m in re.findall(r'add_argument\("(--[\w-]*widths)",([^)]*)', text)
                   if "type=script_cli.widths" not in m[1]]
        assert not untyped, (script.name, untyped)
        model_types = {m.group(1): m.group(2) for m in re.finditer(r'add_argument\("(--models?)",([^)]*)', text)
                       if "SUPPRESS" not in m.group(2)}  # export_time.py's --child gets checked names
        for flag, rest in model_types.items():  # script_cli.model(s), or a list type made of script_cli.model
            kind = re.search(r"type=([\w.]+)", rest)
            assert kind, (script.name, flag)  # a typo is a usage error, before anything runs
            assert kind.group(1).startswith("script_cli.model") or re.search(
                rf"^{re.escape(kind.group(1))} = .*script_cli\.model\b", text, re.M), (script.name, flag)
        loose = [m for m in re.findall(r'add_argument\("(--[\w-]+)", type=(?:int|float)\b', text)
                 if (script.name, m) not in {("collapse.py", "--eval-share"), ("collapse.py", "--us3l-stage1")}]
        assert not loose, (script.name, loose)


BAD_INPUT = [
        (["benchmarks/slim_overhead.py", "--rounds", "0"], 2,
         "error: argument --rounds: must be >= 1, got '0' (see: python benchmarks/slim_overhead.py --help)"),
        (["benchmarks/export_speed.py", "--widths", "1,2.0"], 2,
         "error: argument --widths: must be in (0, 1], got '2.0' (in '1,2.0') "
         "(see: python benchmarks/export_speed.py --help)"),
        (["benchmarks/export_time.py", "--configs", "foo"], 2,
         "error: argument --configs: expects MODEL:WIDTH (e.g. cifar_resnet18:0.5), got 'foo' "
         "(see: python benchmarks/export_time.py --help)"),
        (["benchmarks/collapse.py", "--eval-widths", "abc"], 2,
         "error: argument --eval-widths: expects a number, got 'abc' (see: python benchmarks/collapse.py --help)"),
        (["benchmarks/roofline.py", "--model", "resnet05"], 2,
         "error: argument --model: unknown model 'resnet05'; choose from cifar_mobilenetv2, cifar_resnet18, "
         "cifar_resnet50, mobilenetv2, resnet18, resnet50, vit_small, vit_tiny (see: python benchmarks/roofline.py "
         "--help)"),
        (["benchmarks/int8_vs_fp32.py", "--models", ""], 2,  # printed an empty table, exit 0
         "error: nothing to measure: --models '' needs --ckpt RUN (see: python benchmarks/int8_vs_fp32.py --help)"),
        (["benchmarks/int8_vs_fp32.py", "--calib-images", "20"], 2,
         "error: argument --calib-images: must be >= 32 (stable INT8 activation ranges), got '20' "
         "(see: python benchmarks/int8_vs_fp32.py --help)"),
        (["benchmarks/collapse.py", "--quick", "--out", "README.md"], 1,
         "error: --out must be a folder, got the file README.md"),  # was 'error: File exists: README.md'
        (["benchmarks/denormal.py", "--out", "README.md"], 1, "error: --out must be a folder, got the file README.md"),
        (["benchmarks/switchable.py", "--ckpt", "/nonexistent/run"], 1,
         "error: no checkpoint found at /nonexistent/run (expected a run folder or checkpoint.safetensors)"),
]
OUT_OF_RANGE = ["export_latency", "export_speed", "int8_vs_fp32", "slim_overhead", "profiler_vs_benchmark_app",
                "switchable"]


def _out_of_range_argv(script: str) -> list[str]:
    return [f"benchmarks/{script}.py", "--widths", "1,0.1"]


@pytest.fixture(scope="module")
def script_runs() -> dict[tuple[str, ...], ScriptRun]:
    """Every command line of the two tests below, run as ``python ARGV`` from the repository root: all of them in
    one fresh interpreter (tests/script_runs.py), which pays torch's import once instead of once per line."""
    argvs = [argv for argv, _, _ in BAD_INPUT] + [_out_of_range_argv(s) for s in OUT_OF_RANGE]
    return {tuple(a): run for a, run in zip(argvs, run_scripts(argvs, cwd=ROOT), strict=True)}


@pytest.mark.parametrize(("argv", "rc", "last_line"), BAD_INPUT)
def test_a_benchmark_given_bad_input_exits_without_a_traceback(script_runs, argv: list[str], rc: int,
                                                               last_line: str) -> None:
    proc = script_runs[tuple(argv)]
    assert proc.returncode == rc, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stderr.strip().splitlines()[-1] == last_line
    if rc == 2:
        assert proc.stderr == last_line + "\n" and not proc.stdout  # one line: no usage block, nothing ran


@pytest.mark.parametrize("script", OUT_OF_RANGE)
def test_a_width_outside_the_models_range_is_one_line_naming_the_flag(script_runs, script: str) -> None:
    """Five benchmarks said 'error: width must be in [0.25, 1], got 0.1' (only switchable.py named --widths), some
    after exporting the widths before it; docs/cli.md quotes the line with the flag."""
    proc = script_runs[tuple(_out_of_range_argv(script))]
    assert proc.returncode == 1 and not proc.stdout.strip(), proc.stderr[-2000:]
    assert proc.stderr == "error: --widths: width must be in [0.25, 1], got 0.1\n"


def test_check_model_widths_names_the_flag() -> None:
    from us3l.models import create_model

    model = create_model("cifar_resnet18", num_classes=0, base_channels=8)
    script_cli.check_model_widths(model, [1.0, 0.25])
    with pytest.raises(US3LError, match=r"^--eval-widths: width must be in \[0\.25, 1\], got 1\.5$"):
        script_cli.check_model_widths(model, [1.5], flag="--eval-widths")


def test_a_training_process_whose_peer_died_says_so_in_one_line(capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Red-team 2026-12-05: the surviving DDP rank printed gloo's 'Connection closed by peer ... GLHF!' text
    before the launcher's 'rank 1 was killed by SIGKILL'."""
    from us3l.cli import report_error

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    gloo = RuntimeError("[../gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:31972. This "
                        "is typically caused by a remote worker crashing. GLHF!")
    assert report_error(gloo) == 1
    assert capsys.readouterr().err == "error: training process rank 0 stopped: another training process is gone\n"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert report_error(gloo) == 1 and "RuntimeError: [../gloo" in capsys.readouterr().err


# Every benchmark reads its arguments before torch is imported: ``--help`` or a bad value used to cost a second of
# CPU importing torch first (and every such command line in the tests above paid it again). A bad value is
# ``--threads 0`` where the script has --threads (an unknown option is no probe: argparse reads a --model default,
# which imports the model registry, before it reports one).
BENCHMARKS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py"))
_TORCH_PROBE = """\
import os, runpy, sys
script = sys.argv[1]
sys.path.insert(0, os.path.dirname(script))
for args in sys.argv[2:]:
    sys.argv = [script, *args.split()]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        print(f"TORCH {'torch' in sys.modules} EXIT {exc.code}", file=sys.stderr)
"""


@pytest.mark.parametrize("script", BENCHMARKS)
def test_help_and_a_bad_value_are_answered_before_torch_is_imported(script: str) -> None:
    path = ROOT / "benchmarks" / f"{script}.py"
    bad = ["--threads 0"] if '"--threads"' in path.read_text() else []
    proc = subprocess.run([sys.executable, "-c", _TORCH_PROBE, str(path.relative_to(ROOT)), *bad, "--help"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    probes = [ln for ln in proc.stderr.splitlines() if ln.startswith("TORCH ")]
    assert probes == ["TORCH False EXIT 2"] * len(bad) + ["TORCH False EXIT 0"], proc.stderr[-2000:]


@pytest.mark.parametrize(("stderr", "said"), [
    ("progress\nerror: the checkpoint is not a file\n\n", "the checkpoint is not a file"),
    ("Traceback (most recent call last):\n  File \"x\", line 1\nValueError: bad\n", "ValueError: bad"),
    ("", "no output on stderr"),
    ("  \n\n", "no output on stderr"),
])
def test_last_words_is_a_failed_childs_last_line_without_error(stderr: str, said: str) -> None:
    assert script_cli.last_words(stderr) == said
