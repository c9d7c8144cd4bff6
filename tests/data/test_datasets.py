"""Tests for us3l.data.datasets: builtin shapes, digits, fake CIFAR pickles, a tiny ImageFolder, batching, errors."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from us3l.data import (
    BUILTIN_MEAN,
    BUILTIN_STD,
    CIFAR_MEAN,
    IMAGENET_MEAN,
    FolderDataset,
    ImageDataset,
    as_torch_dataset,
    iterate_batches,
    load_dataset,
)
from us3l.data.datasets import (
    BUILTIN_TEST,
    BUILTIN_TRAIN,
    DIGITS_MEAN,
    _digits_split_indices,
    safe_unpickle,
    stratified_split,
)
from us3l.data.shapes import CLASSES as SHAPE_CLASSES
from us3l.data.shapes import generate_shapes
from us3l.errors import US3LError

# ------------------------------------------------------------------------------------------ builtin


def test_builtin_shapes_and_dtypes():
    train, test = load_dataset("builtin", "train"), load_dataset("builtin", "test")
    assert isinstance(train, ImageDataset)
    assert (len(train), len(test)) == (BUILTIN_TRAIN, BUILTIN_TEST)
    for ds in (train, test):
        assert ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (3, 32, 32)
        assert ds.labels.dtype == torch.int64 and ds.labels.shape == (len(ds),)
        assert ds.classes == list(SHAPE_CLASSES) and ds.num_classes == 10
        assert ds.name == "builtin-shapes" and ds.image_size == 32
        counts = torch.bincount(ds.labels, minlength=10)
        assert int(counts.max() - counts.min()) <= 1  # balanced classes
    t1, t2 = load_dataset("builtin", "test"), load_dataset("builtin", "val")
    assert torch.equal(t1.images, t2.images) and torch.equal(t1.labels, t2.labels)


def test_builtin_is_seeded_and_splits_are_independent():
    a_img, a_lab = generate_shapes(50, 32, seed=3)
    b_img, b_lab = generate_shapes(50, 32, seed=3)
    assert torch.equal(a_img, b_img) and torch.equal(a_lab, b_lab)
    c_img, _ = generate_shapes(50, 32, seed=4)
    assert not torch.equal(a_img, c_img)
    train, test = load_dataset("builtin", "train"), load_dataset("builtin", "test")
    flat_train = {bytes(x.numpy().tobytes()) for x in train.images[:200]}
    assert not any(bytes(x.numpy().tobytes()) in flat_train for x in test.images[:200])


def test_builtin_class_is_in_the_shape_not_the_nuisances():
    """Each class appears at every grey level pair; the shape is drawn (foreground covers part of the image)."""
    img, lab = generate_shapes(400, 32, seed=0)
    grey = img.float().mean(dim=1)  # (N,32,32)
    brightness = grey.mean(dim=(1, 2))
    per_class = torch.stack([brightness[lab == c].mean() for c in range(10)])
    # mean brightness hardly depends on the class (it is a nuisance), while within a class it varies a lot
    assert float(per_class.std()) < 0.5 * float(brightness.std())
    # the foreground differs from the background: every image has real contrast
    spread = grey.flatten(1).quantile(0.95, dim=1) - grey.flatten(1).quantile(0.05, dim=1)
    assert bool((spread > 40).all())


def test_generate_shapes_rejects_bad_sizes():
    with pytest.raises(ValueError):
        generate_shapes(0)
    with pytest.raises(ValueError):
        generate_shapes(10, size=2)


def test_digits_still_available():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) + len(test) == 1797
    assert 0.18 < len(test) / 1797 < 0.22
    assert train.name == "builtin-digits" and train.classes == [str(i) for i in range(10)]
    assert torch.equal(train.images[:, 0], train.images[:, 1])
    tr, te = _digits_split_indices()
    assert not set(tr.tolist()) & set(te.tolist()) and len(tr) + len(te) == 1797
    labels = torch.cat([train.labels, test.labels]).numpy()
    a = stratified_split(labels, 0.2, 0)
    b = stratified_split(labels, 0.2, 0)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(stratified_split(labels, 0.2, 1)[1], a[1])
    x = train.images.double() / 255
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.tensor(DIGITS_MEAN, dtype=torch.double), atol=1e-4)


def test_builtin_normalisation_constants_match_train_split():
    x = load_dataset("builtin", "train").images.double() / 255
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3), correction=0)
    assert torch.allclose(mean, torch.tensor(BUILTIN_MEAN, dtype=torch.double), atol=1e-4)
    assert torch.allclose(std, torch.tensor(BUILTIN_STD, dtype=torch.double), atol=1e-4)


# ------------------------------------------------------------------------------------------- CIFAR


def _dump(path: Path, obj: object, protocol: int = 2) -> None:
    data = pickle.dumps(obj, protocol=protocol)
    if (
        protocol == 2
    ):  # the real files are protocol-2 pickles naming numpy.core.multiarray (text GLOBAL opcode)
        data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(data)


def _batch(n: int, num_classes: int, seed: int, label_key: bytes) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"fake",
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        label_key: [int(v) for v in rng.integers(0, num_classes, size=n)],
    }


def _fake_cifar10(root: Path, protocol: int = 2) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        _dump(folder / f"data_batch_{i}", _batch(4, 10, i, b"labels"), protocol)
    _dump(folder / "test_batch", _batch(4, 10, 9, b"labels"), protocol)
    names = [n.encode() for n in "airplane car bird cat deer dog frog horse ship truck".split()]
    _dump(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072}, protocol)
    return folder


def test_cifar10_parent_and_folder(tmp_path: Path):
    folder = _fake_cifar10(tmp_path)
    for spec in (f"cifar10:{tmp_path}", f"cifar10:{folder}"):
        train = load_dataset(spec, "train")
        assert (
            len(train) == 20 and train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8
        )
        assert train.labels.dtype == torch.int64 and train.classes[1] == "car" and train.name == "cifar10"
        assert train.mean == CIFAR_MEAN
    raw = _batch(4, 10, 1, b"labels")
    assert np.array_equal(train.images[:4].reshape(4, -1).numpy(), raw[b"data"])  # row = R plane, G, B
    assert train.labels[:4].tolist() == raw[b"labels"]
    assert len(load_dataset(f"cifar10:{tmp_path}", "test")) == 4


@pytest.mark.parametrize("protocol", [4, 5])
def test_cifar_newer_pickle_protocols(tmp_path: Path, protocol: int):
    _fake_cifar10(tmp_path, protocol)
    assert len(load_dataset(f"cifar10:{tmp_path}", "train")) == 20


def test_cifar100(tmp_path: Path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _dump(folder / "train", _batch(6, 100, 1, b"fine_labels") | {b"coarse_labels": [0] * 6})
    _dump(folder / "test", _batch(2, 100, 2, b"fine_labels") | {b"coarse_labels": [0] * 2})
    _dump(folder / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)]})
    ds = load_dataset(f"cifar100:{tmp_path}", "train")
    assert len(ds) == 6 and ds.num_classes == 100 and ds.name == "cifar100"
    assert len(load_dataset(f"cifar100:{folder}", "test")) == 2


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda b: {b"labels": b[b"labels"]}, "needs keys"),
        (lambda b: b | {b"data": b[b"data"][:, :100]}, "uint8 \\(N, 3072\\)"),
        (lambda b: b | {b"labels": b[b"labels"][:2]}, "4 images but 2 labels"),
        (lambda b: b | {b"labels": [99, 0, 0, 0]}, "labels outside"),
        (lambda b: [1, 2, 3], "needs keys"),
        # each of these was cast to int64: classes 0, 1, 2, 3 read from 0.5, 1.9, ...; an OverflowError traceback
        (lambda b: b | {b"labels": [0.5, 1.9, 2.2, 3.7]}, "'labels' must be a flat list of integers, got float64"),
        (lambda b: b | {b"labels": [[0, 1], [2, 3]]}, "must be a flat list of integers, got a nested list"),
        (lambda b: b | {b"labels": ["1", "2", "3", "4"]}, "must be a flat list of integers, got <U1"),
        (lambda b: b | {b"labels": [True, False, True, True]}, "must be a flat list of integers, got bool"),
        (lambda b: b | {b"labels": [2**70, 1, 2, 3]}, "must be a flat list of integers, got object"),
    ],
)
def test_cifar_malformed(tmp_path: Path, corrupt, match):
    folder = _fake_cifar10(tmp_path)
    _dump(folder / "data_batch_3", corrupt(_batch(4, 10, 3, b"labels")))
    with pytest.raises(US3LError, match=match):
        load_dataset(f"cifar10:{tmp_path}", "train")


def test_a_cifar_folder_given_as_an_image_folder_names_the_cifar_spec(tmp_path: Path) -> None:
    """Red-team 2026-12-06: `--data /data/cifar-10-batches-py` (a bare path is an image folder) said 'has no class
    subfolders', and its parent 'class folder(s) without images: cifar-10-batches-py'."""
    folder = _fake_cifar10(tmp_path / "c10")
    for path in (folder, folder.parent):
        for spec in (str(path), f"folder:{path}"):
            with pytest.raises(US3LError, match=f"^{path} holds cifar10 python batches, not an image folder: use "
                                                f"--data cifar10:{path}$"):
                load_dataset(spec, "train")
    c100 = tmp_path / "c100" / "cifar-100-python"
    c100.mkdir(parents=True)
    for name in ("train", "test", "meta"):
        _dump(c100 / name, {})
    with pytest.raises(US3LError, match="holds cifar100 python batches, not an image folder: use --data cifar100:"):
        load_dataset(str(c100.parent), "test")


def test_an_array_dtype_with_forged_flags_is_refused(tmp_path: Path) -> None:
    """Red-team 2026-12-06: a pickled dtype's state carries numpy's internal flags. uint8 pixels whose dtype claimed
    to hold object references (flags 1) loaded and trained, and every time such an array was freed numpy printed a
    "RuntimeError: Internal error, `get_clear_loop` not set" traceback."""
    folder = _fake_cifar10(tmp_path)
    forged = _Call(np.dtype, "u1", False, True)
    forged.state = (3, "|", None, None, None, -1, -1, 1)
    state = (1, (4, 3072), forged, False, bytes(4 * 3072))
    data = _Call(np.zeros(1).__reduce__()[0], np.ndarray, (0,), b"b")
    data.state = state
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": [0, 1, 2, 3]}, protocol=2))
    with pytest.raises(US3LError, match=r"test_batch: refusing to unpickle an array of dtype dtype\('uint8'\) "
                                        r"\(flags 1\): only plain numeric arrays are read"):
        load_dataset(f"cifar10:{folder}", "test")


def test_cifar_missing_files(tmp_path: Path):
    folder = _fake_cifar10(tmp_path)
    (folder / "data_batch_5").unlink()
    with pytest.raises(US3LError, match="missing CIFAR file"):
        load_dataset(f"cifar10:{tmp_path}", "train")
    (folder / "batches.meta").write_bytes(b"not a pickle")
    with pytest.raises(US3LError, match="not a valid pickle"):
        load_dataset(f"cifar10:{tmp_path}", "test")
    with pytest.raises(US3LError, match="no cifar100 data"):
        load_dataset(f"cifar100:{tmp_path}", "test")


def test_a_cifar_split_without_images_is_refused(tmp_path: Path) -> None:
    """Red-team 2026-12-07: a test batch of 0 images loaded as an empty split; ``us3l train`` then stopped with
    "error: torch.cat(): expected a non-empty list of Tensors", naming neither the file nor the problem."""
    folder = _fake_cifar10(tmp_path)
    _dump(folder / "test_batch", _batch(0, 10, 9, b"labels"), 4)  # protocol 2 pickles empty bytes by a call
    assert len(load_dataset(f"cifar10:{tmp_path}", "train")) == 20
    with pytest.raises(US3LError, match=r"no images for split 'test' in .*test_batch \(0 rows\)$"):
        load_dataset(f"cifar10:{tmp_path}", "test")


class _Evil:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_restricted_unpickler_refuses_code(tmp_path: Path):
    marker = tmp_path / "pwned"
    folder = _fake_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(str(marker)), b"labels": []}))
    with pytest.raises(US3LError, match="refusing to unpickle") as info:
        load_dataset(f"cifar10:{folder}", "test")
    assert "\n" not in str(info.value)
    assert not marker.exists()
    evil_eval = tmp_path / "eval.pkl"
    evil_eval.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(US3LError, match="builtins.eval"):
        safe_unpickle(evil_eval)


class _Call:
    """Pickles as ``func(*args)`` (then BUILD with ``state``, if set): how a crafted file calls a global the
    unpickler allows."""

    def __init__(self, func, *args) -> None:
        self.func, self.args, self.state = func, args, None

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


@pytest.mark.parametrize("data", [
    _Call(np.ndarray, (50, 3072), "u1"),  # a direct call: any size, uninitialised, from a few bytes of file
    _Call(np.zeros(1).__reduce__()[0], np.ndarray, (50, 3072), b"B"),  # not numpy's (0,): the same, unfilled
], ids=["ndarray", "reconstruct"])
def test_an_array_the_file_does_not_hold_is_refused(tmp_path: Path, data) -> None:
    """A crafted batch whose 'data' is an array allocated by the unpickler (not read from the file) was accepted:
    garbage or zero pixels, and at (10**7, 3072) a 30 GB memory bomb from a file of a few hundred bytes."""
    folder = _fake_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": [0] * 50}, protocol=2))
    assert len((folder / "test_batch").read_bytes()) < 400
    with pytest.raises(US3LError, match="test_batch: refusing to unpickle a call of 'numpy.*' that makes an array"):
        load_dataset(f"cifar10:{folder}", "test")


# ------------------------------------------------------------------------------------------ folder


def _png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_folder_without_splits(tmp_path: Path):
    for c, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        for i in range(5):
            _png(tmp_path / c / f"{i}.png", (20 + i, 12), color)
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    train = load_dataset(f"folder:{tmp_path}", "train", image_size=8)
    test = load_dataset(str(tmp_path), "test", image_size=8)
    assert isinstance(train, FolderDataset) and train.classes == ["cat", "dog"]
    assert len(train) == 8 and len(test) == 2
    assert not {p for p, _ in train.samples} & {p for p, _ in test.samples}
    assert train.mean == IMAGENET_MEAN and train.name.startswith("folder:")
    img, label = train[0]
    assert img.dtype == torch.uint8 and img.shape == (3, 8, 8)
    expected = torch.tensor((255, 0, 0) if label == 0 else (0, 0, 255), dtype=torch.uint8)
    assert torch.equal(img[:, 4, 4], expected)
    assert test.labels.tolist() == [0, 1]
    assert [p for p, _ in load_dataset(str(tmp_path), "test").samples] == [p for p, _ in test.samples]
    assert load_dataset(str(tmp_path), "test").image_size == 224


def test_folder_with_splits_and_batches(tmp_path: Path):
    for split, n in (("train", 3), ("val", 1)):
        for c in ("a", "b", "c"):
            for i in range(n):
                _png(tmp_path / split / c / f"{i}.jpg", (10, 16), (10, 20, 30))
    train = load_dataset(f"folder:{tmp_path}", "train", image_size=6)
    test = load_dataset(f"folder:{tmp_path}", "test", image_size=6)
    assert len(train) == 9 and len(test) == 3 and test.classes == ["a", "b", "c"]
    batches = list(iterate_batches(train, 4, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert [b[0].shape[0] for b in batches] == [4, 4, 1]
    assert batches[0][0].dtype == torch.uint8 and batches[0][0].shape[1:] == (3, 6, 6)
    assert batches[0][1].dtype == torch.int64
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == sorted(train.labels.tolist())
    again = list(iterate_batches(train, 4, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert all(torch.equal(x[1], y[1]) for x, y in zip(batches, again, strict=True))
    loader = torch.utils.data.DataLoader(as_torch_dataset(test), batch_size=3)
    images, labels = next(iter(loader))
    assert images.shape == (3, 3, 6, 6) and labels.tolist() == [0, 1, 2]


def test_folder_errors(tmp_path: Path):
    with pytest.raises(US3LError, match="no class subfolders"):
        load_dataset(f"folder:{tmp_path}", "train")
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "x.txt").write_text("no image")
    with pytest.raises(US3LError, match="no images found"):
        load_dataset(f"folder:{tmp_path}", "train")
    (tmp_path / "cls" / "broken.png").write_bytes(b"not a png")
    ds = load_dataset(f"folder:{tmp_path}", "train")
    with pytest.raises(US3LError, match="cannot read image"):
        ds[0]


def test_hidden_files_and_synology_thumbnails_are_skipped_at_every_level(tmp_path: Path):
    """Red-team 2026-12-06: a macOS AppleDouble file (._0.png) inside a class folder was read as an image and
    stopped the run, and thumbnails in .thumbnails/ or Synology's @eaDir/ became extra training images."""
    for c in ("a", "b"):
        for i in range(2):
            _png(tmp_path / c / f"{i}.png", (8, 8), (200, 100, 0))
    (tmp_path / "a" / "._0.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    _png(tmp_path / "a" / ".thumbnails" / "0.png", (4, 4), (0, 0, 0))
    _png(tmp_path / "b" / "@eaDir" / "0.png" / "SYNOPHOTO_THUMB_S.jpg", (4, 4), (0, 0, 0))
    _png(tmp_path / "@eaDir" / "a" / "x.jpg", (4, 4), (0, 0, 0))
    _png(tmp_path / ".hidden" / "x.png", (4, 4), (0, 0, 0))
    train, test = (load_dataset(f"folder:{tmp_path}", split, image_size=4) for split in ("train", "test"))
    assert train.classes == ["a", "b"]
    found = sorted(str(p.relative_to(tmp_path)) for ds in (train, test) for p, _ in ds.samples)
    assert found == ["a/0.png", "a/1.png", "b/0.png", "b/1.png"]
    assert all(ds[i][0].shape == (3, 4, 4) for ds in (train, test) for i in range(len(ds)))


# ---------------------------------------------------------------------------------- batching, specs


def test_iterate_batches_in_memory():
    ds = load_dataset("digits", "test")
    batches = list(iterate_batches(ds, 100, shuffle=False))
    assert [b[0].shape[0] for b in batches] == [100, 100, 100, 59]
    assert torch.equal(batches[1][0], ds.images[100:200])
    dropped = list(iterate_batches(ds, 100, True, torch.Generator().manual_seed(0), drop_last=True))
    assert len(dropped) == 3
    same = list(iterate_batches(ds, 100, True, torch.Generator().manual_seed(0), drop_last=True))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(dropped, same, strict=True))
    assert not torch.equal(dropped[0][1], batches[0][1])
    item = as_torch_dataset(ds)[3]
    assert torch.equal(item[0], ds.images[3]) and item[1] == int(ds.labels[3])


@pytest.mark.parametrize(
    "spec, split, match",
    [
        ("imagenet:/x", "train", "unknown data spec.*cifar10:PATH"),
        ("nonsense", "train", "unknown data spec"),
        ("cifar10:", "train", "no path"),
        ("cifar10:/definitely/not/here", "train", "not found"),
        ("folder:/definitely/not/here", "train", "not found"),
        ("builtin", "validation", "unknown split"),
        # Red-team 2026-12-07: an empty spec (`data: ""` in a config) read the working directory as an image folder
        ("", "train", "empty data spec"),
        (" ", "test", "empty data spec"),
    ],
)
def test_bad_specs_are_one_line_errors(spec: str, split: str, match: str):
    with pytest.raises(US3LError, match=match) as info:
        load_dataset(spec, split)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("side", [10000, 50000])  # over the limit (Pillow warns), over twice it (Pillow raises)
def test_a_decompression_bomb_is_refused_naming_the_file_the_limit_and_what_to_do(tmp_path, side: int) -> None:
    """Red-team 2026-12-06: the refusal quoted Pillow's "could be decompression bomb DOS attack" with twice the
    real limit for the largest images, and said nothing of what to do."""
    import struct
    import zlib

    from us3l.data.folder import open_rgb

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # a PNG header claiming side x side pixels (no pixel data needed to be refused)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
    path = tmp_path / "bomb.png"
    path.write_bytes(png + chunk(b"IEND", b""))
    with pytest.raises(US3LError) as info:
        open_rgb(path)
    assert str(info.value) == (f"cannot read image {path}: Image size ({side * side} pixels) exceeds the limit of "
                               f"{Image.MAX_IMAGE_PIXELS} pixels (Pillow's guard against decompression bombs); "
                               "downscale the image below it")
    assert Image.MAX_IMAGE_PIXELS == 89478485  # the number docs/data.md states


def test_16_bit_grey_images_are_scaled_and_float_images_refused(tmp_path: Path) -> None:
    """Red-team 2026-12-05: Pillow's convert("RGB") clipped 16-bit grey to 255, so a dark and a bright class became
    identical white images, and float pixels in [0, 1] became black, without a word."""
    from us3l.data.folder import open_rgb

    for name, level in (("dark", 8000), ("bright", 50000)):
        Image.fromarray(np.full((4, 4), level, np.uint16)).save(tmp_path / f"{name}.png")
    dark, bright = (np.asarray(open_rgb(tmp_path / f"{n}.png")) for n in ("dark", "bright"))
    assert dark.shape == (4, 4, 3) and dark.dtype == np.uint8
    assert (dark == round(8000 / 257)).all() and (bright == round(50000 / 257)).all()
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(US3LError) as info:
        open_rgb(tmp_path / "f.tiff")
    assert str(info.value) == (f"cannot read image {tmp_path / 'f.tiff'}: floating-point pixels (Pillow mode F) have "
                               "no fixed range; save the images as 8- or 16-bit")


def _pgm(path: Path, maxval: int, values: np.ndarray) -> None:
    path.write_bytes(f"P5\n{values.shape[1]} {values.shape[0]}\n{maxval}\n".encode() + values.astype(">u2").tobytes())


def test_16_bit_pgm_is_scaled_by_its_maxval_and_32_bit_tiff_refused(tmp_path: Path) -> None:
    """Red-team 2026-12-06: Pillow opens a PGM with maxval > 255 as mode I (its samples rescaled so that the maxval
    is 65535), which was refused as 32-bit integer pixels, though 16-bit grey is documented and .pgm listed."""
    from us3l.data.folder import open_rgb

    full = np.arange(400).reshape(20, 20) * 150
    _pgm(tmp_path / "g16.pgm", 65535, full)
    assert np.array_equal(np.asarray(open_rgb(tmp_path / "g16.pgm"))[..., 0], np.rint(full / 257))
    twelve = np.array([[0, 1, 2048, 4094, 4095]])
    _pgm(tmp_path / "g12.pgm", 4095, twelve)
    got = np.asarray(open_rgb(tmp_path / "g12.pgm"))
    assert got.shape == (1, 5, 3) and got[0, 0, 0] == 0 and got[0, -1, 0] == 255
    assert np.abs(got[..., 0].astype(float) - twelve * 255 / 4095).max() <= 0.51
    (tmp_path / "plain.pgm").write_bytes(b"P2\n2 1\n1000\n1000 500\n")
    assert np.asarray(open_rgb(tmp_path / "plain.pgm"))[0, :, 0].tolist() == [255, 128]
    Image.fromarray(np.full((4, 4), 70000, np.int32)).save(tmp_path / "i32.tiff")
    with pytest.raises(US3LError, match=r"i32.tiff: 32-bit integer pixels \(Pillow mode I\) have no fixed range"):
        open_rgb(tmp_path / "i32.tiff")


def test_a_palette_png_with_alpha_bytes_reads_without_a_warning(tmp_path: Path) -> None:
    """Red-team 2026-12-06: Pillow's convert("RGB") printed a two-line UserWarning on stderr for every palette PNG
    whose transparency is a byte string (per-entry alpha)."""
    import warnings

    from us3l.data.folder import open_rgb

    im = Image.fromarray(np.array([[0, 1], [2, 3]], np.uint8), mode="P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    im.save(tmp_path / "p.png", transparency=bytes([0, 128, 255, 255]))
    assert isinstance(Image.open(tmp_path / "p.png").info["transparency"], bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = open_rgb(tmp_path / "p.png")
    assert np.asarray(rgb).tolist() == [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [9, 9, 9]]]


def test_class_folder_without_images_is_refused(tmp_path: Path):
    """Red-team 2026-12-05: an empty class folder counted as a class (chance 1/3 for two real classes; one real
    class plus an empty folder passed eval's two-class check and scored 100 %)."""
    for c in ("a", "b"):
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", (8, 8), (200, 100, 0))
    (tmp_path / "c_empty").mkdir()
    (tmp_path / "c_empty" / "readme.txt").write_text("no image")
    for split in ("train", "test"):
        with pytest.raises(US3LError, match=r"class folder\(s\) without images: c_empty \(extensions") as info:
            load_dataset(f"folder:{tmp_path}", split)
        assert "\n" not in str(info.value)
    # with split folders: an empty class in train is refused; a class the test split lacks is fine
    root = tmp_path / "split"
    for c in ("a", "b"):
        _png(root / "train" / c / "0.png", (8, 8), (0, 0, 0))
    _png(root / "val" / "a" / "0.png", (8, 8), (0, 0, 0))
    (root / "val" / "b").mkdir()
    assert load_dataset(f"folder:{root}", "test").classes == ["a", "b"]
    (root / "train" / "z").mkdir()
    with pytest.raises(US3LError, match="without images: z"):
        load_dataset(f"folder:{root}", "train")


def test_a_test_class_folder_of_files_that_are_not_images_is_refused(tmp_path: Path) -> None:
    """Red-team 2026-12-07: a test-split class folder whose files all had another extension (an iPhone's .heic, a
    .jfif) was left out without a word: the accuracy covered the other classes only. An empty folder, like an
    absent one, is still a class the test split lacks."""
    for split in ("train", "val"):
        for c in ("a", "b"):
            _png(tmp_path / split / c / "0.png", (8, 8), (0, 0, 0))
    (tmp_path / "val" / "c").mkdir()
    _png(tmp_path / "train" / "c" / "0.png", (8, 8), (0, 0, 0))
    assert load_dataset(f"folder:{tmp_path}", "test").labels.tolist() == [0, 1]
    (tmp_path / "val" / "c" / "x").mkdir()
    (tmp_path / "val" / "c" / "x" / "0.heic").write_bytes(b"\0")
    (tmp_path / "val" / "b" / "notes.txt").write_text("a class with an image keeps its other files")
    with pytest.raises(US3LError, match=r"val: class folder\(s\) without images: c \(extensions: .*\)") as info:
        load_dataset(f"folder:{tmp_path}", "test")
    assert "\n" not in str(info.value)


def test_a_class_named_train_is_explained(tmp_path: Path):
    """Red-team 2026-12-05: a split-less folder with a class named 'train' (bus, car, train) was read as the split
    layout and refused as '.../train has no class subfolders'."""
    for c in ("bus", "car", "train"):
        for i in range(2):
            _png(tmp_path / c / f"{i}.png", (8, 8), (0, 0, 0))
    for split in ("train", "test"):
        with pytest.raises(US3LError, match=r"train holds images, not class folders: a folder named 'train' is read "
                                            r"as the training split .*rename a class folder named 'train'"):
            load_dataset(f"folder:{tmp_path}", split)


@pytest.mark.parametrize("splits", [("val",), ("test", "val"), ("Train", "val")])
def test_split_folders_without_a_train_folder_are_refused(tmp_path: Path, splits: tuple[str, ...]) -> None:
    """Red-team 2026-12-06: a folder with `val/<class>/...` but no `train/` (ImageNet's val alone, or `Train/`) read
    as the flat layout: every image became one class named "val" (or classes "test" and "val"), silently."""
    for split in splits:
        for c in ("cat", "dog"):
            for i in range(3):
                _png(tmp_path / split / c / f"{i}.png", (8, 8), (i * 40, 0, 0))
    for split in ("train", "test"):
        with pytest.raises(US3LError, match=r"has a .*'val' folder but no 'train' folder: split folders need") as info:
            load_dataset(f"folder:{tmp_path}", split)
        assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)
    _png(tmp_path / "train" / "cat" / "0.png", (8, 8), (0, 0, 0))  # with the train split: the split layout
    _png(tmp_path / "train" / "dog" / "0.png", (8, 8), (0, 0, 0))
    assert load_dataset(f"folder:{tmp_path}", "test").classes == ["cat", "dog"]


@pytest.mark.parametrize("splits", [("Training", "Test"), ("Train", "Val"), ("training", "validation")])
def test_split_folders_under_other_names_are_refused(tmp_path: Path, splits: tuple[str, ...]) -> None:
    """Red-team 2026-12-06: Fruits-360's Training/ + Test/ (or Train/ + Val/: the split layout needs lower-case
    'train') read as two classes named after the splits, each image's real class ignored."""
    for split in splits:
        for c in ("apple", "pear"):
            _png(tmp_path / split / c / "0.png", (8, 8), (0, 0, 0))
    first, second = sorted(splits)
    with pytest.raises(US3LError, match=f"'{first}' and '{second}' hold class folders, so they look like "
                                        "split folders, which must be named 'train' and 'test' or 'val'"):
        load_dataset(f"folder:{tmp_path}", "train")
    flat = tmp_path / "flat"  # a class named like a split, holding its images: a class
    for c in ("Training", "other"):
        _png(flat / c / "0.png", (8, 8), (0, 0, 0))
        _png(flat / c / "1.png", (8, 8), (0, 0, 0))
    assert load_dataset(f"folder:{flat}", "train").classes == ["Training", "other"]


def _two_classes(root: Path) -> None:
    for c in ("a", "b"):
        for i in range(3):
            _png(root / c / f"{i}.png", (8, 8), (i * 40, 0, 0))


def test_a_linked_folder_inside_a_class_is_read(tmp_path: Path) -> None:
    """Red-team 2026-12-06: Path.rglob did not follow a link to a folder inside a class folder: a class assembled
    from linked folders (a symlink farm) silently lost their images."""
    _two_classes(tmp_path / "data")
    for i in range(5):
        _png(tmp_path / "elsewhere" / f"{i}.png", (8, 8), (0, 0, 0))
    (tmp_path / "data" / "a" / "more").symlink_to(tmp_path / "elsewhere")
    train, test = (load_dataset(f"folder:{tmp_path / 'data'}", split) for split in ("train", "test"))
    linked = [p for p, _ in train.samples + test.samples if p.parent.name == "more"]
    assert len(linked) == 5 and len(train) + len(test) == 11


@pytest.mark.parametrize("link, target", [("a/loop", ".."), ("a", "."), ("a/self", ".")])
def test_a_link_loop_is_refused(tmp_path: Path, link: str, target: str) -> None:
    """A link to a folder that contains it (or that the walk has read) would never end or read other classes'
    images into this one."""
    _two_classes(tmp_path)
    if link == "a":
        shutil.rmtree(tmp_path / "a")
    else:  # and b links back to a: a loop through two links
        (tmp_path / "b" / "y").symlink_to("../a")
    (tmp_path / link).symlink_to(target)
    with pytest.raises(US3LError, match=r"is a symbolic link to .*\(a loop\); remove the link") as info:
        load_dataset(f"folder:{tmp_path}", "train")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("link", "target", "where"), [
    ("a/x", "../b", "the class folder {root}/b"),  # a folder link to a sibling class (alone: no loop)
    ("a/x", "../b/sub", "inside the class folder {root}/b"),
    ("a/z.png", "../b/0.png", "inside the class folder {root}/b"),  # one image
])
def test_a_link_into_another_class_folder_is_refused(tmp_path: Path, link: str, target: str, where: str) -> None:
    """Red-team 2026-12-07: ``a/x -> ../b`` alone (no link back, so no loop) was read: every image of b also
    labelled a, and b's test images in the training split under a's name, kNN scores meaningless."""
    _two_classes(tmp_path)
    _png(tmp_path / "b" / "sub" / "9.png", (8, 8), (0, 0, 0))
    (tmp_path / link).symlink_to(target)
    with pytest.raises(US3LError) as info:
        load_dataset(f"folder:{tmp_path}", "train")
    real = Path(os.path.realpath(tmp_path))
    assert str(info.value) == (f"{tmp_path / link} is a symbolic link to {real / Path(target).relative_to('..')}, "
                               f"{where.format(root=real)}: its images would be read with two labels; remove the link")


def test_a_class_folder_linked_to_another_or_across_splits_is_refused(tmp_path: Path) -> None:
    _two_classes(tmp_path / "flat")
    (tmp_path / "flat" / "c").symlink_to("a")  # class c is class a
    with pytest.raises(US3LError, match=r"flat/c and .*flat/a are the same folder \(.*; a symbolic link\): its images "
                                        "would be read with two labels; remove the link"):
        load_dataset(f"folder:{tmp_path / 'flat'}", "train")
    _two_classes(tmp_path / "split" / "train")
    _two_classes(tmp_path / "split" / "test")
    (tmp_path / "split" / "train" / "a" / "more").symlink_to("../../test")  # the test split inside train/a
    with pytest.raises(US3LError, match=r"train/a/more is a symbolic link to .*/split/test, a folder that holds "
                                        "the class folder .*/split/test/a: its images would be read with two "
                                        "labels; remove the link"):
        load_dataset(f"folder:{tmp_path / 'split'}", "train")
    (tmp_path / "split" / "train" / "a" / "more").unlink()
    (tmp_path / "split" / "train" / "a" / "more").symlink_to(tmp_path / "elsewhere")  # a link outside: read
    _png(tmp_path / "elsewhere" / "0.png", (8, 8), (0, 0, 0))
    assert len(load_dataset(f"folder:{tmp_path / 'split'}", "train")) == 7


def test_a_broken_link_to_a_class_folder_is_refused(tmp_path: Path) -> None:
    """Red-team 2026-12-06: a class folder linked from a place that is gone (train/cat -> /mnt/old/cat) was not a
    folder, so the class silently vanished (the others' labels shifted), in both splits when val's link broke too."""
    _two_classes(tmp_path / "data" / "train")
    _two_classes(tmp_path / "data" / "val")
    for split in ("train", "val"):
        (tmp_path / "data" / split / "cat").symlink_to(tmp_path / "gone" / split / "cat")
    for split in ("train", "test"):
        with pytest.raises(US3LError, match=r"data/train: broken symbolic link\(s\) cat: the folder each points to "
                                            "is gone"):
            load_dataset(f"folder:{tmp_path / 'data'}", split)


def test_an_unreadable_folder_is_an_error_not_a_silent_gap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Path.rglob skipped a subfolder (or a test split's class folder) it had no permission to read: its images
    were silently missing. (Simulated: the tests may run as root, who reads every folder.)"""
    _two_classes(tmp_path)
    for i in range(3):
        _png(tmp_path / "a" / "sub" / f"{i}.png", (8, 8), (0, 0, 0))
    real_scandir = os.scandir

    def scandir(path=".", *args):
        if Path(path) == tmp_path / "a" / "sub":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path, *args)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(US3LError, match=f"cannot read folder {tmp_path / 'a' / 'sub'}: Permission denied"):
        load_dataset(f"folder:{tmp_path}", "test")


def test_an_image_name_that_is_no_regular_file_is_refused(tmp_path: Path) -> None:
    """A dangling link named like an image was dropped without a word; a FIFO must never reach a worker (its open
    blocks forever): both are one-line errors naming the path."""
    _two_classes(tmp_path)
    (tmp_path / "a" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(US3LError, match=f"cannot read image {tmp_path / 'a' / 'gone.png'}: a broken symbolic link"):
        load_dataset(f"folder:{tmp_path}", "train")
    (tmp_path / "a" / "gone.png").unlink()
    os.mkfifo(tmp_path / "b" / "pipe.jpg")
    with pytest.raises(US3LError, match="pipe.jpg: not a regular file"):
        load_dataset(f"folder:{tmp_path}", "train")


def test_one_data_set_under_several_spellings_is_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Red-team 2026-12-06: stored BN statistics and accuracy files compared data specs as text, so `folder:/x`,
    `/x` and `/x/` were 'other data' and `us3l calibrate` said to delete the run's statistics."""
    from us3l.data.datasets import anchored_data_spec, same_data_spec

    folder = tmp_path / "imgs"
    folder.mkdir()
    (tmp_path / "link").symlink_to(folder)
    monkeypatch.chdir(tmp_path)
    for other in (str(folder), f"{folder}/", anchored_data_spec("imgs"), anchored_data_spec("folder:imgs"),
                  f"folder:{tmp_path / 'link'}"):
        assert same_data_spec(f"folder:{folder}", other), other
    assert anchored_data_spec("folder:imgs") == f"folder:{folder}" and anchored_data_spec("imgs/") == str(folder)
    assert anchored_data_spec("bultin") == "bultin" and anchored_data_spec("digits") == "digits"
    # a relative spec recorded by an earlier version: the directory it was typed in is unknown
    assert not same_data_spec(f"folder:{folder}", "folder:imgs") and same_data_spec("folder:imgs", "folder:imgs")
    assert not same_data_spec(f"folder:{folder}", f"cifar10:{folder}")
    assert not same_data_spec(f"folder:{folder}", "builtin") and same_data_spec("builtin", " builtin")
    assert not same_data_spec("builtin", "digits")
    assert not same_data_spec(f"folder:{tmp_path / 'gone'}", f"{tmp_path / 'gone'}/")  # no path: compared as text
