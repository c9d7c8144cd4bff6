"""The run-folder checkpoint: round trip, weights-only train state, load_backbone and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from us3l import checkpoint as ckpt
from us3l.errors import US3LError
from us3l.models import create_model

KW = {"base_channels": 8}


class _NotAllowed:
    """An arbitrary class: weights_only loading must refuse to unpickle it."""


def _save(run: Path, model: torch.nn.Module, epoch: int = 3, method: str = "us3l", **meta_kw) -> None:
    meta = ckpt.checkpoint_meta(
        model="cifar_resnet18",
        model_kwargs=KW,
        width_range={"min": 0.25, "max": 1.0, "divisor": 8},
        method=method,
        normalization={"mean": [0.5] * 3, "std": [0.25] * 3},
        input_size=16,
        data={"spec": "builtin"},
        epoch=epoch,
        config={"method": "us3l"},
        **meta_kw,
    )
    state = {
        "optimizer": {"state": {0: {"momentum_buffer": torch.ones(2)}}, "param_groups": [{"lr": 0.1}]},
        "rng": {"torch": torch.arange(5, dtype=torch.uint8)},
        "sampler": {"version": 3, "gauss": None},
    }
    ckpt.save_checkpoint(
        run, backbone_state=model.state_dict(), train_tensors={"head.w": torch.zeros(3)}, meta=meta, train_state=state
    )


def test_round_trip_and_load_backbone(tmp_path: Path) -> None:
    model = create_model("cifar_resnet18", num_classes=0, **KW)
    _save(tmp_path, model)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.json",
        "checkpoint.safetensors",
        "train_state.pt",
    ]  # no temporary files left behind
    loaded = ckpt.load_backbone(tmp_path / "checkpoint.safetensors")
    assert not loaded.model.training and loaded.meta["epoch"] == 3 and loaded.meta["kind"] == "checkpoint"
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v)
    assert ckpt.load_backbone(tmp_path).sha256 == loaded.sha256
    assert ckpt.read_tensors(tmp_path, ckpt.TRAIN_PREFIX)["head.w"].shape == (3,)
    assert ckpt.read_weights_epoch(tmp_path) == 3
    state = ckpt.load_train_state(tmp_path)  # weights_only=True
    assert state["epoch"] == 3 and torch.equal(state["rng"]["torch"], torch.arange(5, dtype=torch.uint8))


def _refusal(path: Path, why: str) -> str:
    return (
        f"{path} is not a safe us3l training state ({why}); delete it and start over with "
        f"`us3l train --out {path.parent} --overwrite`, or put back the train_state.pt that us3l wrote"
    )


def test_train_state_refuses_arbitrary_objects(tmp_path: Path) -> None:
    torch.save({"x": _NotAllowed()}, tmp_path / "train_state.pt")
    with pytest.raises(US3LError) as info:
        ckpt.load_train_state(tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 'train_state.pt'} is not a safe us3l training state (")
    assert msg == _refusal(
        tmp_path / "train_state.pt", f"it refers to {__name__}._NotAllowed, which a weights-only file may not"
    )


class _Exploit:
    """A pickle that would run a command when unpickled without weights_only."""

    def __reduce__(self) -> tuple:
        import os

        return (os.system, ("touch PWNED",))


def test_malicious_train_state_is_one_line_saying_what_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "train_state.pt"
    torch.save({"epoch": 1, "x": _Exploit()}, p)
    with pytest.raises(US3LError) as info:
        ckpt.load_train_state(tmp_path)
    why = "it refers to posix.system, which a weights-only file may not"
    assert str(info.value) == _refusal(p, why)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    ("state", "why"),
    [
        ([1, 2], "it holds a list, not a dict"),
        ({"optimizer": {}}, "no 'epoch' entry"),
        ({"epoch": "3"}, "'epoch' is a str, not a int"),
        ({"epoch": 3, "scaler": {}}, "no 'optimizer' entry"),
    ],
)
def test_train_state_without_what_us3l_writes_is_refused(tmp_path: Path, state: object, why: str) -> None:
    p = tmp_path / "train_state.pt"
    torch.save(state, p)
    with pytest.raises(US3LError) as info:
        ckpt.load_train_state(tmp_path, {"optimizer": dict})
    assert str(info.value) == _refusal(p, why)


def test_checkpoint_json_without_model_key(tmp_path: Path) -> None:
    import json

    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    meta_path = tmp_path / "checkpoint.json"
    doc = json.loads(meta_path.read_text())
    del doc["model"]
    meta_path.write_text(json.dumps(doc))
    fix = "it was not written by us3l train or was edited; re-train or restore the original"
    with pytest.raises(US3LError) as info:
        ckpt.load_backbone(tmp_path)
    assert str(info.value) == f"{meta_path} has no 'model' key ({fix})"
    doc["model"], doc["model_kwargs"] = "cifar_resnet18", [1]
    meta_path.write_text(json.dumps(doc))
    with pytest.raises(US3LError) as info:
        ckpt.load_backbone(tmp_path)
    assert str(info.value) == f"{meta_path}: 'model_kwargs' must be dict or null, got [1] ({fix})"


def test_int64_weights_are_refused_not_cast(tmp_path: Path) -> None:
    model = create_model("cifar_resnet18", num_classes=0, **KW)
    _save(tmp_path, model)
    from safetensors.torch import load_file, save_file

    w = tmp_path / "checkpoint.safetensors"
    tensors = load_file(str(w))
    key = next(k for k, v in tensors.items() if k.startswith("backbone.") and v.is_floating_point())
    tensors[key] = tensors[key].round().to(torch.int64)
    save_file(tensors, str(w), metadata={"format": "pt", "epoch": "3"})
    with pytest.raises(US3LError) as info:
        ckpt.load_backbone(tmp_path)
    name = key.removeprefix("backbone.")
    assert str(info.value) == (
        f"checkpoint {w}: tensor {name!r} is int64, the model expects float32 (not a us3l checkpoint, or edited); "
        "re-train or restore the original"
    )


def test_damaged_weights_are_one_line(tmp_path: Path) -> None:
    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    w = tmp_path / "checkpoint.safetensors"
    w.write_bytes(b"\xff" * 64)
    with pytest.raises(US3LError, match=r"^checkpoint .* is damaged \(.*\); re-train or restore it$"):
        ckpt.load_backbone(tmp_path)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_checkpoint_files_follow_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    import os

    old = os.umask(mask)
    try:
        _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    finally:
        os.umask(old)
    for name in ("checkpoint.json", "checkpoint.safetensors", "train_state.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(US3LError, match="no checkpoint found"):
        ckpt.load_backbone(tmp_path)
    model = create_model("cifar_resnet18", num_classes=0, base_channels=16)  # does not match KW
    _save(tmp_path, model)
    with pytest.raises(US3LError, match="does not match"):
        ckpt.load_backbone(tmp_path)


@pytest.mark.parametrize("path", [None, 3])
def test_a_path_that_is_no_path_is_one_line(path: object) -> None:
    with pytest.raises(US3LError) as err:  # None reached Path() and its TypeError
        ckpt.load_backbone(path)  # type: ignore[arg-type]
    assert str(err.value) == f"checkpoint path must be a run folder or its checkpoint.safetensors, got {path!r}"


@pytest.mark.parametrize("device", ["nope", None, "cuda:99", "meta"])  # meta: the weights dropped
def test_a_device_torch_does_not_have_is_one_line(device: object, tmp_path: Path) -> None:
    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    with pytest.raises(US3LError) as err:  # was torch's RuntimeError, after the whole checkpoint was loaded
        ckpt.load_backbone(tmp_path, device=device)  # type: ignore[arg-type]
    assert str(err.value) == f"device must be a torch device available here (cpu, cuda, cuda:N), got {device!r}"


@pytest.mark.parametrize("choice", ["ignroe", None, True])
def test_stale_bn_stats_must_be_refuse_or_ignore(choice: object, tmp_path: Path) -> None:
    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    with pytest.raises(US3LError) as err:  # any other value was read as "refuse" without a word
        ckpt.load_backbone(tmp_path, stale_bn_stats=choice)  # type: ignore[arg-type]
    assert str(err.value) == f"stale_bn_stats must be one of refuse, ignore, got {choice!r}"


def test_bn_stats_are_loaded_when_present(tmp_path: Path) -> None:
    from us3l.eval.calibrate import save_bn_stats
    from us3l.slim import calibrated_widths, calibrating

    model = create_model("cifar_resnet18", num_classes=0, **KW)
    _save(tmp_path, model)
    with torch.no_grad(), calibrating(model, 0.5):
        model(torch.randn(4, 3, 16, 16))
    save_bn_stats(model, tmp_path)  # bound to the checkpoint's sha256
    assert calibrated_widths(ckpt.load_backbone(tmp_path).model) == calibrated_widths(model)


def test_load_backbone_restores_the_trained_width_range(tmp_path: Path) -> None:
    """A run trained with width_min 0.5 must come back with that range, not the architecture's default."""
    model = create_model("cifar_resnet18", num_classes=0, width_min=0.5, **KW)
    meta_kw = {"width_range": {"min": 0.5, "max": 1.0, "divisor": 8}}
    meta = ckpt.checkpoint_meta(
        model="cifar_resnet18",
        model_kwargs=KW,
        method="us3l",
        normalization={"mean": [0.5] * 3, "std": [0.25] * 3},
        input_size=16,
        data={"spec": "builtin"},
        epoch=1,
        config={"method": "us3l"},
        **meta_kw,
    )
    ckpt.save_checkpoint(tmp_path, backbone_state=model.state_dict(), train_tensors={}, meta=meta, train_state={})
    loaded = ckpt.load_backbone(tmp_path)
    assert (loaded.model.width_range.min, loaded.model.width_range.max) == (0.5, 1.0)
    with pytest.raises(ValueError, match="0.5"):
        loaded.model.width_range.check(0.25)


def test_corrupt_bn_stats_is_reported_as_bn_stats_not_as_the_checkpoint(tmp_path: Path) -> None:
    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    bn = tmp_path / "bn_stats.safetensors"
    bn.write_bytes(b"\x00" * 50)
    with pytest.raises(US3LError) as info:
        ckpt.load_backbone(tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"BN statistics {bn} ") and "us3l calibrate" in msg and "\n" not in msg


def test_a_commit_killed_between_its_renames_is_rolled_forward(tmp_path: Path) -> None:
    """SIGKILL between the renames of _commit: weights at the new epoch, state and metadata still at the old one,
    their new versions complete under their temporary names (no finally runs). Resume finishes the commit."""
    import shutil

    model = create_model("cifar_resnet18", num_classes=0, **KW)
    run, newer = tmp_path / "run", tmp_path / "newer"
    _save(run, model, epoch=3)
    _save(newer, model, epoch=4)
    shutil.copy(newer / ckpt.WEIGHTS_FILE, run / ckpt.WEIGHTS_FILE)  # renamed before the kill
    shutil.copy(newer / ckpt.STATE_FILE, run / f".{ckpt.STATE_FILE}.abc123.tmp")  # not yet renamed
    shutil.copy(newer / ckpt.META_FILE, run / f".{ckpt.META_FILE}.def456.tmp")
    (run / f".{ckpt.META_FILE}.zzz.tmp").write_text("{partial")  # a write the kill cut short: never used
    with pytest.raises(US3LError) as info:  # a reader before the resume: told what happened and what to run
        ckpt.load_backbone(run)
    assert str(info.value) == (
        f"checkpoint in {run} was cut off while it was being saved (its weights are from a later epoch than "
        f"checkpoint.json, whose new version waits under a temporary name): run us3l train --resume {run} to "
        "finish the save, or wait if that run is still training"
    )
    assert ckpt.finish_interrupted_commit(run) is True
    ckpt.load_backbone(run)
    assert ckpt.read_meta(run)["epoch"] == 4 and ckpt.load_train_state(run)["epoch"] == 4
    assert ckpt.read_weights_epoch(run) == 4
    assert ckpt.finish_interrupted_commit(run) is False  # consistent: nothing to do


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_signal_between_the_renames_of_a_commit_lands_after_the_last(signum: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C or SIGTERM right after the weights' rename: the commit still renames checkpoint.json and
    train_state.pt, then the signal goes on. It landed between the renames: the new weights beside the old
    checkpoint.json ("is damaged or was replaced: its sha256 ... differs"), the new metadata removed by the clean-up,
    and neither the old nor the new checkpoint could be loaded or resumed."""
    import os
    import signal

    from tests.signals import Interrupted

    model = create_model("cifar_resnet18", num_classes=0, **KW)
    run = tmp_path / "run"
    _save(run, model, epoch=3)
    real = os.replace
    renames: list[str] = []

    def replace_then_signal(src, dst) -> None:  # type: ignore[no-untyped-def]
        real(src, dst)
        renames.append(Path(dst).name)
        if len(renames) == 1:
            signal.raise_signal(getattr(signal, signum))

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(getattr(signal, signum), handler)
    monkeypatch.setattr(os, "replace", replace_then_signal)
    try:
        with pytest.raises(Interrupted):
            _save(run, model, epoch=4)
    finally:
        monkeypatch.setattr(os, "replace", real)
        signal.signal(getattr(signal, signum), previous)
    assert renames == [ckpt.WEIGHTS_FILE, ckpt.STATE_FILE, ckpt.META_FILE]
    ckpt.load_backbone(run)  # weights and metadata agree
    assert ckpt.read_meta(run)["epoch"] == 4 and ckpt.load_train_state(run)["epoch"] == 4
    assert ckpt.read_weights_epoch(run) == 4
    assert sorted(p.name for p in run.iterdir()) == sorted([ckpt.WEIGHTS_FILE, ckpt.STATE_FILE, ckpt.META_FILE])


def test_a_commit_without_its_new_files_is_not_guessed(tmp_path: Path) -> None:
    import shutil

    model = create_model("cifar_resnet18", num_classes=0, **KW)
    run, newer = tmp_path / "run", tmp_path / "newer"
    _save(run, model, epoch=3)
    _save(newer, model, epoch=4)
    shutil.copy(newer / ckpt.WEIGHTS_FILE, run / ckpt.WEIGHTS_FILE)  # no temporary files left: cannot roll forward
    assert ckpt.finish_interrupted_commit(run) is False
    assert ckpt.read_meta(run)["epoch"] == 3 and ckpt.read_weights_epoch(run) == 4
    with pytest.raises(US3LError, match="is damaged or was replaced"):  # nothing to finish: not called a cut save
        ckpt.load_backbone(run)


def test_weights_digest_is_recorded_and_checked(tmp_path: Path) -> None:
    import json

    from us3l.io import file_sha256

    model = create_model("cifar_resnet18", num_classes=0, **KW)
    _save(tmp_path, model)
    w, meta_path = tmp_path / "checkpoint.safetensors", tmp_path / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    assert meta["weights_sha256"] == file_sha256(w) == ckpt.load_backbone(tmp_path).sha256
    # bytes inside a tensor changed, same length, header intact: safetensors itself reads it without complaint
    blob = bytearray(w.read_bytes())
    blob[len(blob) // 2 : len(blob) // 2 + 16] = bytes(16)
    w.write_bytes(bytes(blob))
    ckpt.read_tensors(tmp_path)
    expected = (
        f"checkpoint {w} is damaged or was replaced: its sha256 {file_sha256(w)[:12]}... differs from the "
        f"{meta['weights_sha256'][:12]}... recorded in checkpoint.json when it was saved; re-train or restore it"
    )
    with pytest.raises(US3LError) as info:
        ckpt.load_backbone(tmp_path)
    assert str(info.value) == expected
    # a checkpoint from before the digest was recorded is read as it is
    del meta["weights_sha256"]
    meta_path.write_text(json.dumps(meta))
    assert ckpt.load_backbone(tmp_path).sha256 == file_sha256(w)


@pytest.mark.parametrize("name", ["checkpoint.json", "train_state.pt"])
def test_a_sibling_file_given_as_the_checkpoint_is_named_not_called_damaged(name: str, tmp_path: Path) -> None:
    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    with pytest.raises(US3LError, match=f"is the run's {name}, not its weights: pass the run folder or its "
                                        "checkpoint.safetensors$"):
        ckpt.load_backbone(tmp_path / name)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("input_size", -5, "'input_size' must be 8 to 4096 pixels, got -5"),
        ("normalization", {"mean": [0], "std": [0, 0, 0]}, r"normalization.mean must be 3 finite numbers, got \[0\]"),
        ("normalization", {"mean": [0, 0, 0], "std": [1, 0, 1]}, "normalization.std must be 3 positive finite"),
    ],
)
def test_edited_sizes_and_normalization_are_refused(key: str, value: object, message: str, tmp_path: Path) -> None:
    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    meta[key] = value
    (tmp_path / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(US3LError, match=message):
        ckpt.load_backbone(tmp_path)


def test_model_kwargs_of_the_wrong_type_are_named_in_one_line(tmp_path: Path) -> None:
    import json

    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    meta_path = tmp_path / ckpt.META_FILE
    doc = json.loads(meta_path.read_text())
    doc["model_kwargs"] = {"base_channels": "16"}  # a hand edit: a string where a number belongs
    meta_path.write_text(json.dumps(doc))
    with pytest.raises(US3LError) as info:
        ckpt.load_backbone(tmp_path)
    msg = str(info.value)
    assert msg == (f"checkpoint {tmp_path / ckpt.WEIGHTS_FILE}: cannot build model 'cifar_resnet18' from "
                   "checkpoint.json (model 'cifar_resnet18': base_channels must be an integer, got '16')")


def _edit_meta(run: Path, **changes: object) -> None:
    meta_path = run / "checkpoint.json"
    doc = json.loads(meta_path.read_text())
    doc.update(changes)
    meta_path.write_text(json.dumps(doc))


def test_edited_model_kwargs_are_refused_before_the_model_is_allocated(tmp_path: Path) -> None:
    """checkpoint.json asks for a network of petabytes: the shapes are compared on the meta device first, so the
    error names the first mismatching tensor instead of an allocation failure (or a machine out of memory)."""
    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    _edit_meta(tmp_path, model_kwargs={"base_channels": 10**8})  # beyond what torch can even size
    with pytest.raises(US3LError, match=r"^checkpoint .*: cannot build model 'cifar_resnet18' from checkpoint\.json "
                                        r"\(Storage size calculation overflowed"):
        ckpt.load_backbone(tmp_path)
    _edit_meta(tmp_path, model_kwargs={"base_channels": 2**20})
    with pytest.raises(US3LError, match=r"^checkpoint .* does not match model 'cifar_resnet18': 'conv1\.weight' "
                                        r"has shape \[8, 3, 3, 3\] in the file, the model built from checkpoint\.json "
                                        r"expects \[1048576, 3, 3, 3\]$"):
        ckpt.load_backbone(tmp_path)


def test_a_model_far_larger_than_its_weights_is_refused(tmp_path: Path) -> None:
    """A ViT's position embedding is computed, not stored: an edited img_size leaves every stored shape intact
    but would allocate 71.5 GiB; the model's size on the meta device is held against the stored weights'."""
    vit = create_model("vit_tiny", num_classes=0, width_min=0.25, img_size=32)
    meta = ckpt.checkpoint_meta(
        model="vit_tiny", model_kwargs={"img_size": 32}, width_range={"min": 0.25, "max": 1.0, "divisor": 8},
        method="us3l_mocov3", normalization={"mean": [0.5] * 3, "std": [0.25] * 3}, input_size=32,
        data={"spec": "builtin"}, epoch=1, config={"method": "us3l_mocov3"},
    )
    ckpt.save_checkpoint(tmp_path, backbone_state=vit.state_dict(), train_tensors={}, meta=meta,
                         train_state={"rng": {}})
    assert ckpt.load_backbone(tmp_path).model.input_size == 32
    _edit_meta(tmp_path, model_kwargs={"img_size": 160000})
    with pytest.raises(US3LError, match=r"^checkpoint .*: checkpoint\.json describes a 'vit_tiny' of 71\.5 GiB for "
                                        r"2\d\.\d MiB of stored weights \(its model_kwargs were edited\?\); re-train "
                                        r"or restore the original$"):
        ckpt.load_backbone(tmp_path)


def test_train_state_with_compressed_entries_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    """Red-team: torch.load inflates deflated zip entries, so a 260 kB train_state.pt unpacked to 256 MB of
    tensors (a few MB to many GB); torch.save never compresses, so such a file is refused unread."""
    import zipfile

    plain = tmp_path / "plain.pt"
    torch.save({"epoch": 1, "x": torch.zeros(2**20, dtype=torch.uint8)}, plain)
    state = tmp_path / "train_state.pt"
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(state, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    big = max(zipfile.ZipFile(state).infolist(), key=lambda e: e.file_size)
    assert big.file_size == 2**20 and big.compress_size < 2**14
    loads: list[object] = []
    real_load = torch.load
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
        with pytest.raises(US3LError) as info:
            ckpt.load_train_state(tmp_path)
    assert not loads
    first = zipfile.ZipFile(state).infolist()[0]
    assert str(info.value) == _refusal(state, f"its entry {first.filename!r} is compressed ({first.compress_size} "
                                              f"bytes unpacking to {first.file_size}); torch.save stores every entry "
                                              "uncompressed")


def test_only_regular_temporary_files_are_read_when_a_save_looks_cut_off(tmp_path: Path) -> None:
    """Red-team: with the weights ahead of checkpoint.json, every `.checkpoint.json.*` was read to find the cut
    save's metadata: a FIFO there hung us3l eval / profile / train --resume forever (and a link to /dev/zero
    filled the memory). _commit writes only regular files, so nothing else is read."""
    import os
    import shutil
    import threading

    model = create_model("cifar_resnet18", num_classes=0, **KW)
    run, newer = tmp_path / "run", tmp_path / "newer"
    _save(run, model, epoch=3)
    _save(newer, model, epoch=4)
    shutil.copy(newer / ckpt.WEIGHTS_FILE, run / ckpt.WEIGHTS_FILE)
    fifos = [run / f".{ckpt.META_FILE}.a.tmp", run / f".{ckpt.STATE_FILE}.b.tmp"]
    for fifo in fifos:
        os.mkfifo(fifo)
    (run / f".{ckpt.META_FILE}.c.tmp").symlink_to(newer / ckpt.META_FILE)  # complete, but no file _commit made
    outcome: list[object] = []

    def load() -> None:
        try:
            outcome.append(ckpt.finish_interrupted_commit(run))
            ckpt.load_backbone(run)
        except US3LError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(60)
    blocked = thread.is_alive()
    for fifo in fifos:  # let a blocked reader go (end of file)
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    thread.join(10)
    assert not blocked
    assert outcome[0] is False and "is damaged or was replaced" in str(outcome[1])


# ------------------------------------------------------------------ weights hashed and loaded from the same bytes


def test_weights_swapped_between_load_and_hash_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights were loaded with one open and hashed with another: a file replaced in between (other weights
    loaded, then the saved file put back for the hash) passed the digest check. Now one read is hashed and loaded."""
    import hashlib

    from us3l.io import file_sha256

    model = create_model("cifar_resnet18", num_classes=0, **KW)
    _save(tmp_path, model)
    w = tmp_path / "checkpoint.safetensors"
    saved = w.read_bytes()
    evil = create_model("cifar_resnet18", num_classes=0, **KW)
    with torch.no_grad():
        for p in evil.parameters():
            p.fill_(0.5)
    _save(tmp_path / "evil", evil)
    w.write_bytes((tmp_path / "evil" / "checkpoint.safetensors").read_bytes())  # the weights now are the evil ones
    real = ckpt.read_tensors

    def read_then_put_back(*args, **kwargs):
        out = real(*args, **kwargs)
        w.write_bytes(saved)  # the saved file is back before the digest is taken
        return out

    monkeypatch.setattr(ckpt, "read_tensors", read_then_put_back)
    evil_sha = file_sha256(tmp_path / "evil" / "checkpoint.safetensors")
    with pytest.raises(US3LError) as info:
        ckpt.load_backbone(tmp_path)
    assert str(info.value) == (
        f"checkpoint {w} is damaged or was replaced: its sha256 {evil_sha[:12]}... differs from the "
        f"{file_sha256(w)[:12]}... recorded in checkpoint.json when it was saved; re-train or restore it"
    )
    # and the other way round: the saved file hashed, another swapped in before the tensors are read
    monkeypatch.setattr(ckpt, "read_tensors", real)
    real_bytes = ckpt.read_weights_bytes

    def read_then_swap(path):
        out = real_bytes(path)
        w.write_bytes((tmp_path / "evil" / "checkpoint.safetensors").read_bytes())
        return out

    monkeypatch.setattr(ckpt, "read_weights_bytes", read_then_swap)
    loaded = ckpt.load_backbone(tmp_path)  # exactly the bytes that were hashed
    assert loaded.sha256 == hashlib.sha256(saved).hexdigest()
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k


# ------------------------------------------------------------------ settings that give the weights their meaning


def test_an_edited_width_range_or_normalization_is_refused(tmp_path: Path) -> None:
    """width_range (and model, model_kwargs, normalization, input_size, method) are saved in the weights' metadata
    too: a hand edit of checkpoint.json that leaves every shape intact is refused, naming the field."""
    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    w = tmp_path / "checkpoint.safetensors"
    original = (tmp_path / "checkpoint.json").read_text()
    assert ckpt.load_backbone(tmp_path).model.width_range.min == 0.25
    _edit_meta(tmp_path, width_range={"min": 0.5, "max": 1.0, "divisor": 8})
    with pytest.raises(US3LError) as info:
        ckpt.load_backbone(tmp_path)
    assert str(info.value) == (
        f'checkpoint {w}: checkpoint.json records width_range {{"divisor":8,"max":1.0,"min":0.5}}, the weights were '
        'saved with {"divisor":8,"max":1.0,"min":0.25} (checkpoint.json was edited); restore the original '
        "checkpoint.json or re-train"
    )
    (tmp_path / "checkpoint.json").write_text(original)
    _edit_meta(tmp_path, normalization={"mean": [0.4] * 3, "std": [0.25] * 3})
    with pytest.raises(US3LError, match=r"checkpoint\.json records normalization .*checkpoint\.json was edited"):
        ckpt.load_backbone(tmp_path)


def test_weights_saved_before_the_settings_were_recorded_load_as_before(tmp_path: Path) -> None:
    import hashlib

    from safetensors.torch import load_file

    from us3l.safetensors_io import safetensors_bytes

    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    w = tmp_path / "checkpoint.safetensors"
    blob = safetensors_bytes(load_file(str(w)), {"epoch": "3", "format": "pt"})  # what us3l wrote until now
    w.write_bytes(blob)
    _edit_meta(tmp_path, weights_sha256=hashlib.sha256(blob).hexdigest(),
               width_range={"min": 0.5, "max": 1.0, "divisor": 8})
    assert ckpt.load_backbone(tmp_path).model.width_range.min == 0.5  # unchecked, as before


def test_an_edited_single_width_is_refused(tmp_path: Path) -> None:
    """Review 2026-12-08: a `single` run's single_width (the one width it trained, where eval and calibrate run by
    default) was read from checkpoint.json unchecked: an edit from 0.5 to 1.0 evaluated the run at a width it never
    trained, without a word. It is saved with the weights now, like width_range; so is its null for other runs."""
    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW), method="single", single_width=0.5)
    w = tmp_path / "checkpoint.safetensors"
    assert ckpt.load_backbone(tmp_path).meta["single_width"] == 0.5
    _edit_meta(tmp_path, single_width=1.0)
    with pytest.raises(US3LError) as info:
        ckpt.load_backbone(tmp_path)
    assert str(info.value) == (
        f"checkpoint {w}: checkpoint.json records single_width 1.0, the weights were saved with 0.5 (checkpoint.json "
        "was edited); restore the original checkpoint.json or re-train"
    )
    _save(tmp_path / "us3l", create_model("cifar_resnet18", num_classes=0, **KW))  # no single_width: null
    _edit_meta(tmp_path / "us3l", single_width=0.5)
    with pytest.raises(US3LError) as info:
        ckpt.load_backbone(tmp_path / "us3l")
    assert str(info.value) == (
        f"checkpoint {tmp_path / 'us3l' / 'checkpoint.safetensors'}: checkpoint.json records single_width 0.5, the "
        "weights were saved with null (checkpoint.json was edited); restore the original checkpoint.json or re-train"
    )


def test_weights_saved_before_single_width_was_bound_load_as_before(tmp_path: Path) -> None:
    """Weights whose us3l.settings predate single_width (the six settings only) load, single_width unchecked; the
    settings they do record are still compared."""
    from tests.checkpoint_header import rewrite_header

    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW), method="single", single_width=0.5)

    def older(header: dict) -> None:
        settings = json.loads(header["__metadata__"][ckpt.BOUND_KEY])
        del settings["single_width"]
        header["__metadata__"][ckpt.BOUND_KEY] = json.dumps(settings, sort_keys=True, separators=(",", ":"))

    rewrite_header(tmp_path, older)
    assert "single_width" not in ckpt.read_weights_bytes(tmp_path)[:4096].decode("latin-1")
    _edit_meta(tmp_path, single_width=1.0)
    assert ckpt.load_backbone(tmp_path).meta["single_width"] == 1.0  # not recorded: read as before
    _edit_meta(tmp_path, input_size=32)
    with pytest.raises(US3LError, match=r"checkpoint\.json records input_size 32, the weights were saved with 16 "):
        ckpt.load_backbone(tmp_path)


@pytest.mark.parametrize("metadata", [[1], "epoch", 5, {"epoch": 3}])
def test_a_metadata_map_that_is_not_strings_is_a_damaged_checkpoint(metadata: object, tmp_path: Path) -> None:
    """Red-team 2026-12-06: weights whose safetensors ``__metadata__`` was a list or a string (the format allows an
    object of strings only) reached ``.get`` on it and ended in `error: AttributeError: 'list' object has no
    attribute 'get'`, also with a matching ``weights_sha256``."""
    from tests.checkpoint_header import rewrite_header

    _save(tmp_path, create_model("cifar_resnet18", num_classes=0, **KW))
    w = tmp_path / "checkpoint.safetensors"
    crafted = rewrite_header(tmp_path, lambda header: header.update(__metadata__=metadata))
    with pytest.raises(US3LError, match=r"^checkpoint .* is damaged \(.*__metadata__.*\); re-train or restore it$"):
        ckpt.load_backbone(tmp_path)
    with pytest.raises(US3LError, match=r"is damaged \(.*__metadata__"):
        ckpt.read_weights_epoch(w, data=crafted)


def test_a_save_removes_the_temporary_files_killed_saves_left(tmp_path: Path) -> None:
    """Red-team 2026-12-06: `us3l train` killed (SIGKILL) while it wrote a checkpoint left its temporary files in
    the run folder (a partial or whole weights file each), and no later save or resume removed them: one more
    weights-sized file per killed save."""
    model = create_model("cifar_resnet18", num_classes=0, **KW)
    _save(tmp_path, model, epoch=3)
    left = [tmp_path / f".{ckpt.WEIGHTS_FILE}.dead01.tmp", tmp_path / f".{ckpt.STATE_FILE}.dead02.tmp",
            tmp_path / f".{ckpt.META_FILE}.dead03.tmp"]
    for p in left:
        p.write_bytes(b"partial")
    mine = [tmp_path / "notes.tmp", tmp_path / f".{ckpt.META_FILE}.bak", tmp_path / "checkpoint.json.1.tmp"]
    for p in mine:
        p.write_text("the user's")
    (tmp_path / f".{ckpt.WEIGHTS_FILE}.folder.tmp").mkdir()
    _save(tmp_path, model, epoch=4)
    assert not any(p.exists() for p in left)
    assert all(p.read_text() == "the user's" for p in mine)
    assert (tmp_path / f".{ckpt.WEIGHTS_FILE}.folder.tmp").is_dir()
    assert ckpt.read_meta(tmp_path)["epoch"] == 4 and ckpt.load_train_state(tmp_path)["epoch"] == 4


def test_a_signal_just_after_a_temporary_is_made_leaves_no_temporary(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint's temporaries are made and listed for removal as one step too (see tests/test_io.py): a
    SIGTERM landing right after one is made is raised once it is listed, and the save leaves nothing behind."""
    from tests.signals import sigterm_once_a_temporary_exists
    from us3l import io

    model = create_model("cifar_resnet18", num_classes=0, **KW)
    _save(tmp_path, model, epoch=3)
    before = sorted(p.name for p in tmp_path.iterdir())
    with sigterm_once_a_temporary_exists(io, monkeypatch):  # the commit makes its temporaries by io.temp_for
        _save(tmp_path, model, epoch=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert ckpt.read_meta(tmp_path)["epoch"] == 3
