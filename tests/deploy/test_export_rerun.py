"""Re-running ``us3l export`` after a failed verification (red-team 2026-12-06, rtO): what the user sees, with the
same and with other settings, and that neither a failure nor a half-finished clean-up loses or blocks anything."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from us3l.cli import main
from us3l.deploy.export import artifact_name

MODEL = "cifar_resnet18"
NAME = artifact_name(MODEL, 0.25, "onnx", "fp32")


def _export(out: Path, *extra: str) -> list[str]:
    return ["export", "--backend", "onnx", "--model", MODEL, "--width", "0.25", "--out", str(out), "--quiet", *extra]


@pytest.mark.slow  # 3.4 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_rerun_after_a_failure_with_the_same_or_other_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys) -> None:
    from us3l.deploy import verify

    good_tol = verify.TOLERANCES["fp32"]
    bad_tol = verify.Tolerance(max_abs=-1.0, min_cosine=2.0)
    out = tmp_path / "out"
    good, failed = out / "local" / NAME, out / "local" / f"{NAME}.failed"

    monkeypatch.setitem(verify.TOLERANCES, "fp32", bad_tol)
    assert main(_export(out)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: verification FAILED") and err.rstrip().endswith(f"kept for inspection in {failed}")
    # --overwrite is not an export option (an export replaces its own earlier one): one line, nothing touched
    assert main(_export(out, "--overwrite")) == 2
    assert capsys.readouterr().err.startswith("error: No such option: --overwrite")
    monkeypatch.setitem(verify.TOLERANCES, "fp32", good_tol)
    assert main(_export(out)) == 0  # the same settings, passing now: the failure goes
    assert sorted(p.name for p in good.parent.iterdir()) == [NAME]
    before = (good / "manifest.json").read_bytes()

    monkeypatch.setitem(verify.TOLERANCES, "fp32", bad_tol)
    assert main(_export(out, "--batch-size", "2")) == 1  # other settings, failing: the good artifact stays
    err = capsys.readouterr().err
    assert "\n" not in err.rstrip() and err.rstrip().endswith(
        f"kept for inspection in {failed}; the earlier artifact in {good} is left as it was (made by an earlier "
        "export, not this one)")
    assert (good / "manifest.json").read_bytes() == before and failed.is_dir()

    monkeypatch.setitem(verify.TOLERANCES, "fp32", good_tol)
    assert main(_export(out, "--batch-size", "2")) == 0  # other settings, passing: replaces both
    assert sorted(p.name for p in good.parent.iterdir()) == [NAME]
    assert (good / "manifest.json").read_bytes() != before


@pytest.mark.slow  # three exports for one recovery case
def test_a_failed_folder_whose_removal_stops_half_way_does_not_block_the_next_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The passed export removed `<name>.failed` in place; a removal that stopped half-way (a file held open on NFS,
    a subfolder without write permission) left the folder without its manifest, and every later export of the name
    was refused: 'refusing to replace ...failed: it is a folder without a us3l manifest.json'."""
    from us3l.deploy import verify

    out = tmp_path / "out"
    monkeypatch.setitem(verify.TOLERANCES, "fp32", verify.Tolerance(max_abs=-1.0, min_cosine=2.0))
    assert main(_export(out)) == 1
    monkeypatch.undo()

    real = shutil.rmtree

    def stops_half_way(path, ignore_errors=False, **kw):  # the manifest goes first, the rest stays
        p = Path(path)
        held = [f for f in p.rglob("*.onnx")] if ".failed" in str(p) else []
        if not held:
            return real(path, ignore_errors=ignore_errors, **kw)
        for f in p.rglob("manifest.json"):
            f.unlink()

    monkeypatch.setattr(shutil, "rmtree", stops_half_way)
    assert main(_export(out)) == 0
    monkeypatch.undo()
    visible = sorted(p.name for p in (out / "local").iterdir() if not p.name.startswith("."))
    assert visible == [NAME]  # the leftover is a hidden staging folder, which clean_stale removes later
    assert main(_export(out)) == 0  # and the next export is not blocked


@pytest.mark.slow  # 3.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_failed_switchable_export_beside_a_good_one_says_the_good_one_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from us3l.deploy import verify
    from us3l.deploy.switchable_export import SwitchableVerificationFailed, export_switchable
    from us3l.models import create_model

    net = create_model(MODEL, num_classes=0, base_channels=8)
    good = export_switchable(net, "onnx", tmp_path, [0.5, 0.25], model_name=MODEL).directory
    monkeypatch.setitem(verify.TOLERANCES, "fp32", verify.Tolerance(max_abs=-1.0, min_cosine=2.0))
    with pytest.raises(SwitchableVerificationFailed) as info:
        export_switchable(net, "onnx", tmp_path, [0.5, 0.25], model_name=MODEL)
    assert str(info.value).endswith(f"kept for inspection in {good}.failed; the earlier artifact in {good} is left as "
                                    "it was (made by an earlier export, not this one)")


@pytest.mark.slow  # 2.5 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_failed_folder_that_cannot_be_set_aside_does_not_fail_the_passed_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removing the old `<name>.failed` comes after the good artifact is in place: nothing there may turn the passed
    export into an error (it stays whole, a complete failure of ours that the next passed export removes)."""
    import us3l.deploy.export as export_mod
    from us3l.deploy import verify

    out = tmp_path / "out"
    monkeypatch.setitem(verify.TOLERANCES, "fp32", verify.Tolerance(max_abs=-1.0, min_cosine=2.0))
    assert main(_export(out)) == 1
    monkeypatch.undo()
    real = export_mod.temp_dir

    def no_room(directory, prefix):
        if ".failed" in prefix:
            raise OSError(28, "No space left on device")
        return real(directory, prefix)

    monkeypatch.setattr(export_mod, "temp_dir", no_room)
    assert main(_export(out)) == 0
    monkeypatch.undo()
    assert sorted(p.name for p in (out / "local").iterdir() if not p.name.startswith(".")) == [NAME, f"{NAME}.failed"]
    assert main(_export(out)) == 0
    assert sorted(p.name for p in (out / "local").iterdir() if not p.name.startswith(".")) == [NAME]
