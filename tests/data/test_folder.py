"""Folder data keeps its originals: random crops on the full aspect ratio, Resize+CenterCrop evaluation."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from us3l.data import IMAGENET_MEAN, IMAGENET_STD, SSLAugment, iterate_batches, load_dataset
from us3l.data.folder import (
    CropSpec,
    FolderEvalTransform,
    FolderViews,
    augmented_views,
    crop_box,
    eval_resize_size,
    eval_transform_for,
    finish_views,
)

W, H = 80, 60  # 4:3 landscape; the old pipeline only ever saw the central 60x60 square


def _striped(path: Path, w: int = W, h: int = H) -> None:
    """Green image with a red band (x < 8) on the left and a blue band (x >= w - 8) on the right: both lie
    outside the central h x h square."""
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[:, :, 1] = 255
    arr[:, :8] = (255, 0, 0)
    arr[:, w - 8 :] = (0, 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _noise(path: Path, w: int, h: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


@pytest.fixture
def striped(tmp_path: Path) -> Path:
    for split in ("train", "test"):
        for c in ("a", "b"):
            for i in range(2):
                _striped(tmp_path / split / c / f"{i}.png")
    return tmp_path


def test_crop_boxes_cover_the_whole_original() -> None:
    rng = np.random.default_rng(0)
    boxes = np.array([crop_box(H, W, (0.2, 1.0), (3 / 4, 4 / 3), rng) for _ in range(4000)])
    top, left, h, w = boxes.T
    assert top.min() == 0 and left.min() == 0 and (top + h).max() == H and (left + w).max() == W
    area = h * w / (H * W)  # the scale range is relative to the original, not to a centre square
    assert area.min() >= 0.19 and area.max() <= 1.0 and area.max() > 0.9 and np.quantile(area, 0.05) < 0.3
    assert ((w / h) > 0.72).all() and ((w / h) < 1.38).all()  # 3/4..4/3 up to the rounding of the sides


def test_random_views_reach_the_image_borders(striped: Path) -> None:
    ds = load_dataset(f"folder:{striped}", "train", image_size=16)
    views = FolderViews(ds, (CropSpec(16), CropSpec(16)), seed=3)
    red = blue = 0
    for seed in range(40):
        views.seed = seed
        for i in range(len(ds)):
            v, _ = views[i]
            assert v.shape == (2, 3, 16, 16) and v.dtype == torch.uint8
            r, g, b = v[:, 0].int(), v[:, 1].int(), v[:, 2].int()
            red += int(((r > 200) & (g < 60)).any(dim=(1, 2)).sum())
            blue += int(((b > 200) & (g < 60)).any(dim=(1, 2)).sum())
    # the bands lie outside the central 60x60 square: a centre-cropped pipeline never shows them
    assert red > 20 and blue > 20
    center = ds[0][0]
    assert not ((center[0] > 200) & (center[1] < 60)).any()


def test_views_are_seeded_per_image_and_independent_of_workers(striped: Path) -> None:
    ds = load_dataset(f"folder:{striped}", "train", image_size=12)
    aug = SSLAugment(12, IMAGENET_MEAN, IMAGENET_STD)
    a = augmented_views(ds, aug, 2, seed=7)
    direct = torch.stack([a[i][0] for i in range(len(ds))])
    batched = torch.cat([x for x, _ in iterate_batches(a, 3)])
    assert torch.equal(direct, batched)
    shuffled = list(iterate_batches(a, 2, shuffle=True, generator=torch.Generator().manual_seed(0), num_workers=2))
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([x for x, _ in shuffled]), direct[order])
    assert not torch.equal(direct, torch.stack([augmented_views(ds, aug, 2, 8)[i][0] for i in range(len(ds))]))
    x1, x2 = finish_views(direct, aug, torch.Generator().manual_seed(0))
    assert x1.shape == x2.shape == (len(ds), 3, 12, 12) and x1.dtype == torch.float32


def _reference_eval(path: Path, size: int) -> torch.Tensor:
    """torchvision's Resize(r) + CenterCrop(size) on a PIL image, written out with Pillow."""
    im = Image.open(path).convert("RGB")
    r = round(size * 256 / 224)
    w, h = im.size
    if w <= h:
        nw, nh = r, int(r * h / w)
    else:
        nw, nh = int(r * w / h), r
    im = im.resize((nw, nh), Image.Resampling.BILINEAR)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    im = im.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


def test_eval_view_is_resize_then_center_crop_of_the_original(tmp_path: Path) -> None:
    for i, (w, h) in enumerate([(97, 61), (50, 90), (64, 64), (33, 120)]):
        _noise(tmp_path / "train" / "c" / f"{i}.png", w, h, i)
        _noise(tmp_path / "test" / "c" / f"{i}.png", w, h, 10 + i)
    assert eval_resize_size(224) == 256 and eval_resize_size(24) == 27
    for size in (24, 31):
        ds = load_dataset(f"folder:{tmp_path}", "train", image_size=size)
        for i, (path, _) in enumerate(ds.samples):
            assert torch.equal(ds[i][0], _reference_eval(path, size)), (path, size)
    ds = load_dataset(f"folder:{tmp_path}", "test", image_size=24)
    tf = eval_transform_for(ds, 24, IMAGENET_MEAN, IMAGENET_STD)
    assert isinstance(tf, FolderEvalTransform) and "Resize(27" in repr(tf)
    batch = torch.stack([ds[i][0] for i in range(len(ds))])
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(tf(batch), (batch.float() / 255 - mean) / std)  # normalisation only
    from us3l.errors import US3LError

    with pytest.raises(US3LError, match="24x24 crops"):
        tf(torch.zeros(1, 3, 30, 30, dtype=torch.uint8))


def test_an_image_too_elongated_for_the_evaluation_resize_is_refused(tmp_path: Path) -> None:
    """Red-team 2026-12-05: a 1 x 4,000 strip (4,000 pixels, far under the pixel limit) became 256 x 1,024,000 in
    the evaluation's Resize(256) at S = 224 (1.3 GB); a 1 x 40,000 one, 13 GB in every DataLoader worker."""
    from us3l.data.datasets import load_image
    from us3l.errors import US3LError

    Image.new("RGB", (4000, 1), (9, 9, 9)).save(tmp_path / "strip.png")
    with pytest.raises(US3LError, match=r"strip.png: at 4000x1 its evaluation resize \(shorter side to 256\) would "
                                        r"have 262144000 pixels, over the limit of \d+; crop or drop it$"):
        load_image(tmp_path / "strip.png", 224)
    assert load_image(tmp_path / "strip.png", 16).shape == (3, 16, 16)  # 18 x 72,000: under the limit
    Image.new("RGB", (300, 20), (9, 9, 9)).save(tmp_path / "wide.png")
    assert load_image(tmp_path / "wide.png", 224).shape == (3, 224, 224)


def test_only_the_formats_of_the_image_extensions_are_decoded(tmp_path: Path) -> None:
    """Red-team 2026-12-06: Pillow picks its decoder by content, so an EPS file named x.jpg reached the EPS decoder,
    which runs Ghostscript on the file ("Unable to locate Ghostscript" where it is not installed), and an ICO named
    x.png was read as an image. Only the formats of the documented extensions are decoded; a JPEG named .png too."""
    from us3l.data.folder import open_rgb
    from us3l.errors import US3LError

    (tmp_path / "x.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n")
    Image.new("RGB", (16, 16)).save(tmp_path / "icon.png", "ICO")
    for name in ("x.jpg", "icon.png"):
        with pytest.raises(US3LError) as info:
            open_rgb(tmp_path / name)
        assert str(info.value) == (f"cannot read image {tmp_path / name}: not an image in a format read here (JPEG, "
                                   "PNG, BMP, GIF, WEBP, PPM, TIFF); a damaged file, or another format named like an "
                                   "image")
    Image.new("RGB", (16, 16), (9, 9, 9)).save(tmp_path / "photo.png", "JPEG")
    assert open_rgb(tmp_path / "photo.png").size == (16, 16)


def _png_with_a_broken_chunk(path: Path) -> None:
    """A PNG whose image data continues in a second IDAT chunk with a damaged chunk type: Pillow's decoder raises
    SyntaxError ("broken PNG file") while loading the pixels, not an OSError."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    data, start = buf.getvalue(), 8 + 12 + 13  # signature, IHDR
    (length,), kind = struct.unpack(">I", data[start:start + 4]), data[start + 4:start + 8]
    assert kind == b"IDAT"
    pixels = data[start + 8:start + 8 + length]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    half = len(pixels) // 2
    path.write_bytes(data[:start] + chunk(b"IDAT", pixels[:half]) + chunk(b"\x00\x01\x02\x03", pixels[half:])
                     + chunk(b"IEND", b""))


def test_a_decoder_error_that_is_no_oserror_still_names_the_file(tmp_path: Path) -> None:
    """Red-team 2026-12-06 (found by fuzzing): a damaged PNG raised Pillow's SyntaxError, which open_rgb let through;
    from a DataLoader worker the run ended with 'error: SyntaxError: SyntaxError: broken PNG file (chunk ...)',
    naming no file."""
    from us3l.data.folder import open_rgb
    from us3l.errors import US3LError

    _png_with_a_broken_chunk(tmp_path / "broken.png")
    with pytest.raises(US3LError) as info:
        open_rgb(tmp_path / "broken.png")
    assert str(info.value).startswith(f"cannot read image {tmp_path / 'broken.png'}: SyntaxError: broken PNG file")


def test_exif_orientation_is_not_applied_and_an_animation_gives_its_first_frame(tmp_path: Path) -> None:
    """What docs/data.md says of EXIF and animations (as torchvision's ImageFolder reads them)."""
    from us3l.data.folder import open_rgb

    im = Image.new("RGB", (40, 20), (200, 0, 0))
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    im.save(tmp_path / "sideways.jpg", exif=exif)
    assert open_rgb(tmp_path / "sideways.jpg").size == (40, 20)
    frames = [Image.new("RGB", (8, 8), color) for color in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert open_rgb(tmp_path / "anim.gif").getpixel((0, 0)) == (255, 0, 0)
