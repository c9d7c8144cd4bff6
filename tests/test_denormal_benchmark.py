"""benchmarks/denormal.py: the two training commands, the tensor comparison and the per-epoch table."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from tests.script_module import load_script

dn = load_script("benchmarks/denormal.py", "denormal_bench")


def test_the_two_commands_differ_only_in_flush_denormal(tmp_path: Path) -> None:
    args = dn.parse_args(["--epochs", "8", "--set", "batch_size=16"])
    a = dn.train_command(args, tmp_path / "flushed", "true")
    b = dn.train_command(args, tmp_path / "ieee", "false")
    assert a[a.index("--epochs") + 1] == "8" and a[a.index("--threads") + 1] == "1"
    sets = [a[i + 1] for i, x in enumerate(a) if x == "--set"]
    assert sets == ["weight_decay=0.004", "lr=0.05", "lr_schedule=constant", "batch_size=16", "flush_denormal=true"]
    diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    flags = ("flush_denormal=true", "flush_denormal=false")
    assert diff == [(str(tmp_path / "flushed"), str(tmp_path / "ieee")), flags]
    plain = dn.train_command(dn.parse_args(["--no-stress", "--method", "us3l"]), tmp_path / "r", "true")
    assert [plain[i + 1] for i, x in enumerate(plain) if x == "--set"] == ["flush_denormal=true"]
    assert plain[plain.index("--method") + 1] == "us3l"


def test_same_tensors_compares_values_not_bytes(tmp_path: Path) -> None:
    t = {"a": torch.arange(4.0), "b": torch.ones(2, 2)}
    save_file(t, str(tmp_path / "x.safetensors"), metadata={"epoch": "1", "format": "pt"})
    save_file(dict(reversed(t.items())), str(tmp_path / "y.safetensors"), metadata={"format": "pt", "epoch": "1"})
    assert dn.same_tensors(tmp_path / "x.safetensors", tmp_path / "y.safetensors") == (True, 2)
    save_file({**t, "b": torch.ones(2, 2).nextafter(torch.tensor(2.0))}, str(tmp_path / "z.safetensors"))
    assert dn.same_tensors(tmp_path / "x.safetensors", tmp_path / "z.safetensors") == (False, 2)


def test_table_gives_the_ratio_per_epoch() -> None:
    curves = {
        "flushed": [{"epoch": 1, "cpu_seconds": 10.0, "backbone_std": {"1": 0.5}}, {"epoch": 2, "cpu_seconds": 8.0}],
        "ieee": [{"epoch": 1, "cpu_seconds": 10.0}, {"epoch": 2, "cpu_seconds": 12.0}],
    }
    ratios = dn.ratios_of(curves)
    assert ratios == [1.0, 1.5]
    lines = dn.table(curves, ratios)
    assert lines[1].split() == ["1", "10.00", "10.00", "1.00", "0.500"]
    assert lines[2].split() == ["2", "8.00", "12.00", "1.50"]


def test_needs_two_cores(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(dn.os, "cpu_count", lambda: 1)
    assert dn.main(["--out", "unused"]) == 1
    assert capsys.readouterr().err == "error: the two runs train side by side and need at least 2 cores\n"


class _FakeTrain:
    """A ``us3l train`` child that writes two epochs of metrics and a checkpoint into its ``--out`` at once."""

    def __init__(self, cmd: list[str], **_: object) -> None:
        assert cmd[1:4] == ["-m", "us3l", "train"], cmd
        run = Path(cmd[cmd.index("--out") + 1])
        run.mkdir(parents=True)
        slow = "flush_denormal=false" in cmd
        rows = [{"epoch": e, "cpu_seconds": 10.0 * (1.5 if slow and e == 2 else 1.0)} for e in (1, 2)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        save_file({"w": torch.ones(3)}, str(run / "checkpoint.safetensors"))
        self.returncode = 0

    def communicate(self) -> tuple[str, str]:
        return "", ""


def test_the_result_records_commit_date_and_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """denormal.json had no commit (docs/training.md names the training code's commit by hand) and only the
    processor field, which is empty on this VM."""
    from us3l.io import check_schema
    from us3l.version import __version__

    monkeypatch.setattr(dn.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(dn, "subprocess", SimpleNamespace(Popen=_FakeTrain, DEVNULL=None, PIPE=None))
    assert dn.main(["--out", str(tmp_path / "dn"), "--epochs", "2"]) == 0
    doc = json.loads((tmp_path / "dn" / "denormal.json").read_text())
    check_schema(doc, "denormal_benchmark", 1, "denormal.json")
    assert doc["tool_version"] == __version__ and doc["date"].endswith("Z")
    assert len(doc["git"]["commit"]) == 40 and doc["machine"]["cpu"] and doc["machine"]["cores"] == 2
    assert doc["ratios"] == [1.0, 1.5] and doc["bit_identical"] is True
    out = capsys.readouterr().out
    assert f"commit {doc['git']['commit'][:10]}" in out.splitlines()[0]
    # the median of an even count is the mean of the middle two: sorted(r)[n // 2] printed the upper one (1.50)
    assert out.splitlines()[-1].startswith("# ieee/flushed: median 1.25, max 1.50;")


def test_a_failed_run_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The child's own ``error:`` was repeated: ``error: the flushed run failed: error: ...``."""

    class Failing(_FakeTrain):
        def __init__(self, cmd: list[str], **_: object) -> None:
            self.returncode = 1

        def communicate(self) -> tuple[str, str]:
            return "", "Warning: something\nerror: unknown method 'foo'\n"

    monkeypatch.setattr(dn.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(dn, "subprocess", SimpleNamespace(Popen=Failing, DEVNULL=None, PIPE=None))
    assert dn.main(["--out", str(tmp_path / "dn"), "--method", "foo"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == "error: the flushed run failed: unknown method 'foo'"
