"""Tests for us3l.data.augment: batched SSL / eval / linear-probe transforms."""

from __future__ import annotations

import pytest
import torch

from us3l.data import EvalTransform, LinearTrainAugment, SSLAugment, data_kind, ssl_augment_for, two_views
from us3l.data.augment import (
    adjust_hue,
    gaussian_blur,
    hsv_to_rgb,
    resample_boxes,
    rgb_to_hsv,
    sample_crop_boxes,
)
from us3l.errors import US3LError

MEAN = (0.5, 0.4, 0.3)
STD = (0.2, 0.25, 0.3)
ZERO = (0.0, 0.0, 0.0)
ONE = (1.0, 1.0, 1.0)


def _images(b: int = 8, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _plain(**kw) -> SSLAugment:
    """No randomness except what ``kw`` switches on; identity normalisation."""
    base = dict(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter=(0.0, 0.0, 0.0, 0.0), jitter_p=0.0,
        gray_p=0.0, blur_p=0.0, flip_p=0.0,
    )  # fmt: skip
    base.update(kw)
    return SSLAugment(16, ZERO, ONE, **base)


def test_shape_dtype_range_and_normalisation():
    x = _images(6, 20)
    aug = SSLAugment(12, MEAN, STD, blur_p=0.5)
    y = aug(x, _gen(0))
    assert y.shape == (6, 3, 12, 12) and y.dtype == torch.float32
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    raw = y * std + mean
    assert float(raw.min()) >= -1e-5 and float(raw.max()) <= 1 + 1e-5
    assert torch.isfinite(y).all()


def test_determinism_and_seed_dependence():
    x = _images()
    aug = SSLAugment(16, MEAN, STD, blur_p=0.5)
    a, b = aug(x, _gen(3)), aug(x, _gen(3))
    assert torch.equal(a, b)
    assert not torch.allclose(a, aug(x, _gen(4)))
    v1, v2 = two_views(x, aug, _gen(5))
    w1, w2 = two_views(x, aug, _gen(5))
    assert torch.equal(v1, w1) and torch.equal(v2, w2)
    assert not torch.allclose(v1, v2)


def test_identity_when_everything_is_off():
    x = _images()
    y = _plain(jitter=(0.4, 0.4, 0.4, 0.1))(x, _gen(0))  # jitter_p=0: strengths do not matter
    assert torch.allclose(y, x.float() / 255, atol=1e-5)
    y = _plain(jitter_p=1.0)(x, _gen(1))  # zero strengths: a no-op even when "applied"
    assert torch.allclose(y, x.float() / 255, atol=1e-5)


def test_flip_equals_mirrored_image():
    x = _images()
    y = _plain(flip_p=1.0)(x, _gen(0))
    assert torch.allclose(y, x.flip(-1).float() / 255, atol=1e-5)
    # default ratio range with scale 1 falls back to the full (square) image too
    y = SSLAugment(16, ZERO, ONE, crop_scale=(1.0, 1.0), jitter_p=0.0, gray_p=0.0, flip_p=1.0)(x, _gen(0))
    assert torch.allclose(y, x.flip(-1).float() / 255, atol=1e-5)


def test_flip_is_per_sample():
    x = _images(64)
    y = _plain(flip_p=0.5)(x, _gen(0))
    flipped = [torch.allclose(y[i], x[i].flip(-1).float() / 255, atol=1e-5) for i in range(64)]
    assert 10 < sum(flipped) < 54


def test_grayscale_gives_equal_channels():
    x = _images()
    y = _plain(gray_p=1.0)(x, _gen(0))
    assert torch.allclose(y[:, 0], y[:, 1], atol=1e-6) and torch.allclose(y[:, 1], y[:, 2], atol=1e-6)
    y = SSLAugment(16, ZERO, ONE, gray_p=1.0, blur_p=0.5)(x, _gen(0))
    assert torch.allclose(y[:, 0], y[:, 2], atol=1e-6)


def test_crop_boxes_follow_scale_and_ratio():
    boxes = sample_crop_boxes(512, 32, 48, (0.2, 1.0), (3 / 4, 4 / 3), _gen(0))
    top, left, h, w = boxes.unbind(1)
    assert bool((top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 48).all())
    assert bool((h >= 1).all() and (w >= 1).all())
    frac = h * w / (32 * 48)
    assert float(frac.min()) > 0.15 and float(frac.max()) <= 1.0
    assert boxes.unique(dim=0).shape[0] > 400  # per-sample parameters
    # impossible ratio: always the fallback center crop
    fb = sample_crop_boxes(4, 10, 40, (0.9, 1.0), (0.1, 0.2), _gen(0))
    assert fb.tolist() == [[0.0, 19.0, 10.0, 2.0]] * 4  # w = round(10 * 0.2), centred


def test_crop_resamples_the_box():
    x = torch.arange(16 * 16, dtype=torch.float32).view(1, 1, 16, 16).expand(1, 3, 16, 16) / 255
    boxes = torch.tensor([[4.0, 2.0, 8.0, 8.0]])
    y = resample_boxes(x, boxes, torch.tensor([False]), 8)
    assert torch.allclose(y, x[:, :, 4:12, 2:10], atol=1e-5)


def test_jitter_changes_colours_and_hue_roundtrip():
    x = _images().float() / 255
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5)
    assert torch.allclose(adjust_hue(x, torch.zeros(8)), x, atol=1e-5)
    assert torch.allclose(adjust_hue(x, torch.ones(8)), x, atol=1e-5)  # full turn
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    assert torch.allclose(adjust_hue(red, torch.tensor([1 / 3])), red.roll(1, dims=1), atol=1e-5)  # -> green
    y = _plain(jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=1.0)(_images(), _gen(0))
    assert not torch.allclose(y, x, atol=1e-2)
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_blur_reduces_high_frequencies():
    x = _images(4, 32).float() / 255
    blurred = gaussian_blur(x, torch.tensor([0.5, 1.0, 1.5, 2.0]), 5)
    assert blurred.shape == x.shape

    def hf(t: torch.Tensor) -> torch.Tensor:
        return (t[..., 1:] - t[..., :-1]).pow(2).mean(dim=(1, 2, 3)) + (t[..., 1:, :] - t[..., :-1, :]).pow(
            2
        ).mean(dim=(1, 2, 3))

    ratio = hf(blurred) / hf(x)
    assert bool((ratio < 0.5).all())
    assert bool((ratio[1:] <= ratio[:-1]).all())  # more sigma, less energy
    const = torch.full((1, 3, 8, 8), 0.3)
    assert torch.allclose(gaussian_blur(const, torch.tensor([1.0]), 3), const, atol=1e-6)
    y = _plain(blur_p=1.0)(_images(4, 16), _gen(0))
    assert bool((hf(y) < hf(_images(4, 16).float() / 255)).all())


def test_recipes():
    assert data_kind("builtin-digits") == "builtin" and data_kind("cifar100") == "cifar"
    assert data_kind("folder:imagenet") == "folder" and data_kind("imagenet") == "folder"
    assert ssl_augment_for("cifar10", 32, MEAN, STD).blur_p == 0.0
    assert ssl_augment_for("builtin-digits", 32, MEAN, STD).blur_p == 0.0
    imnet = ssl_augment_for("folder:x", 224, MEAN, STD)
    assert imnet.blur_p == 0.5 and imnet.blur_kernel == 23 and imnet.crop_scale == (0.2, 1.0)
    assert imnet.jitter == (0.4, 0.4, 0.4, 0.1) and imnet.jitter_p == 0.8 and imnet.gray_p == 0.2
    with pytest.raises(US3LError, match="unknown dataset kind"):
        ssl_augment_for("mnist", 32, MEAN, STD)
    with pytest.raises(US3LError, match="crop_scale"):
        SSLAugment(32, MEAN, STD, crop_scale=(0.5, 0.2))


def test_eval_transform():
    e = EvalTransform(32, ZERO, ONE)
    assert e.resize_size == 36 and EvalTransform(224, MEAN, STD).resize_size == 256
    x = _images(2, 32)
    y = e(x)
    assert y.shape == (2, 3, 32, 32) and torch.equal(e(x), y)
    const = torch.full((1, 3, 40, 64), 77, dtype=torch.uint8)
    assert torch.allclose(
        EvalTransform(16, ZERO, ONE)(const), torch.full((1, 3, 16, 16), 77 / 255), atol=1e-5
    )
    same = EvalTransform(16, ZERO, ONE, resize_size=16)(_images(2, 16))
    assert torch.allclose(same, _images(2, 16).float() / 255, atol=1e-6)
    # resize 20 -> center crop 16 of an image whose left and right halves differ
    half = torch.zeros(1, 3, 20, 20, dtype=torch.uint8)
    half[..., 10:] = 255
    z = EvalTransform(16, ZERO, ONE, resize_size=20)(half)
    assert torch.equal(z, half[..., 2:18, 2:18].float() / 255)


def test_linear_train_augment():
    aug = LinearTrainAugment(16, MEAN, STD)
    x = _images(4, 32)
    y = aug(x, _gen(0))
    assert y.shape == (4, 3, 16, 16) and torch.equal(y, aug(x, _gen(0)))
    assert aug._aug.crop_scale == (0.8, 1.0) and aug._aug.interpolation == "bicubic"
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    raw = y * std + mean
    assert float(raw.min()) >= -1e-5 and float(raw.max()) <= 1 + 1e-5


def test_solarize_inverts_only_bright_values_of_picked_samples():
    from us3l.data.augment import random_solarize

    x = torch.tensor([0.1, 0.5, 0.9]).view(1, 3, 1, 1).repeat(4, 1, 1, 1)
    assert torch.equal(random_solarize(x, 0.0, _gen(0)), x)
    out = random_solarize(x, 1.0, _gen(0))
    assert torch.allclose(out[:, :, 0, 0], torch.tensor([0.1, 0.5, 0.1]).expand(4, 3))  # 1 - 0.5 = 0.5, 1 - 0.9
    aug = _plain(solarize_p=1.0)
    img = torch.full((1, 3, 16, 16), 230, dtype=torch.uint8)
    assert torch.allclose(aug(img, _gen(0)), torch.full((1, 3, 16, 16), 1 - 230 / 255))
    with pytest.raises(US3LError, match="solarize_p must be in"):
        _plain(solarize_p=1.5)


def test_byol_pair_is_asymmetric():
    from us3l.data import byol_augment_pair

    first, second = byol_augment_pair(16, MEAN, STD)
    assert (first.blur_p, first.solarize_p) == (1.0, 0.0) and (second.blur_p, second.solarize_p) == (0.1, 0.2)
    assert first.crop_scale == second.crop_scale == (0.08, 1.0) and first.jitter == (0.4, 0.4, 0.2, 0.1)
    x = _images(8, 16)
    a, b = two_views(x, (first, second), _gen(3))
    g = _gen(3)
    assert torch.equal(a, first(x, g)) and torch.equal(b, second(x, g))  # view 1 by the first, view 2 by the second
