"""Batched, vectorised augmentations on image tensors (CPU or GPU), without torchvision.

Every transform takes a uint8 (B,3,H,W) batch (a float batch is taken as already in [0,1]) and returns a
normalised float32 (B,3,S,S) batch. Random parameters are drawn per sample, only from the ``torch.Generator``
passed in, so the same generator state gives the same output. Random-resized-crop and horizontal flip are one
per-sample affine grid and a single ``F.grid_sample`` call. Differences from torchvision are listed in
``docs/data.md``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from us3l.errors import US3LError

Stats = tuple[float, float, float]
Range = tuple[float, float]
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale


# --------------------------------------------------------------------------------------------- helpers


def _rand(n: int, generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    """Uniform [0,1) draws on the generator's device (CPU for ``None``)."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(n, *shape, generator=generator, device=device)


def _uniform(
    n: int, lo: float, hi: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    return (lo + (hi - lo) * _rand(n, generator)).to(device)


def _to_float(images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B,3,H,W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def _normalize(x: torch.Tensor, mean: Stats, std: Stats) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) -> (B,1,H,W) luma."""
    r, g, b = x.unbind(1)
    return (_GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g + _GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _check_range(name: str, r: Range, lo: float, hi: float) -> Range:
    a, b = float(r[0]), float(r[1])
    if not (lo <= a <= b <= hi):
        raise US3LError(f"{name} must satisfy {lo} <= min <= max <= {hi}, got {r}")
    return a, b


# ----------------------------------------------------------------------------- random resized crop + flip


def sample_crop_boxes(
    batch: int,
    height: int,
    width: int,
    scale: Range,
    ratio: Range,
    generator: torch.Generator | None,
    attempts: int = 10,
) -> torch.Tensor:
    """Per-sample RandomResizedCrop boxes as a float (B,4) tensor ``(top, left, h, w)`` in pixels.

    Same rule as torchvision: up to ``attempts`` tries of area fraction ~ U(scale) and log-aspect ~
    U(log ratio); the first box that fits wins, at a uniformly random integer position; if none fits, the
    center crop of the whole image clamped to ``ratio``. All tries are drawn at once (vectorised).
    """
    area = float(height * width)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    target = area * (scale[0] + (scale[1] - scale[0]) * _rand(batch, generator, attempts))
    aspect = torch.exp(log_lo + (log_hi - log_lo) * _rand(batch, generator, attempts))
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # first True (0 if none)
    w, h, ok = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1), fits.any(dim=1)
    # fallback: whole image, clamped to the ratio range
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = float(width), float(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = float(round(height * ratio[1])), float(height)
    else:
        fw, fh = float(width), float(height)
    w = torch.where(ok, w, torch.full_like(w, fw))
    h = torch.where(ok, h, torch.full_like(h, fh))
    u_top, u_left = _rand(batch, generator), _rand(batch, generator)
    top = torch.minimum(torch.floor(u_top * (height - h + 1)), height - h)
    left = torch.minimum(torch.floor(u_left * (width - w + 1)), width - w)
    top = torch.where(ok, top, torch.floor((height - h) / 2))
    left = torch.where(ok, left, torch.floor((width - w) / 2))
    return torch.stack([top, left, h, w], dim=1)


def resample_boxes(
    x: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, size: int, mode: str = "bilinear"
) -> torch.Tensor:
    """Crop ``boxes`` (B,4: top, left, h, w in pixels) out of ``x`` (B,C,H,W), mirror horizontally where
    ``flip`` (bool (B,)), and resize to ``size`` x ``size`` -- one ``affine_grid`` + one ``grid_sample`` call.

    Output pixel centres map to the crop's pixel-centre grid, so a full-image box at the same size is the
    identity (and a flipped one an exact mirror). No antialiasing when shrinking.
    """
    b, _, height, width = x.shape
    boxes = boxes.to(device=x.device, dtype=torch.float32)
    top, left, h, w = boxes.unbind(1)
    sign = 1.0 - 2.0 * flip.to(device=x.device, dtype=torch.float32)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=torch.float32)
    theta[:, 0, 0] = sign * w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    out = F.grid_sample(x.float(), grid, mode=mode, padding_mode="border", align_corners=False)
    return out.clamp_(0.0, 1.0) if mode == "bicubic" else out


# ------------------------------------------------------------------------------------------ colour jitter


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, _grayscale(x), factor)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) RGB in [0,1] -> HSV in [0,1] (hue as a fraction of a turn), as torchvision's tensor code."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(dim=1), x.amin(dim=1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    crd = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack([h, s, maxc], dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp_(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp_(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp_(0.0, 1.0)
    sector = (i.unsqueeze(1) == torch.arange(6, device=x.device).view(1, -1, 1, 1)).to(x.dtype)  # (B,6,H,W)
    r = torch.stack([v, q, p, p, t, v], dim=1)
    g = torch.stack([t, v, v, q, p, p], dim=1)
    b = torch.stack([p, p, t, v, v, q], dim=1)
    return torch.stack([(sector * c).sum(dim=1) for c in (r, g, b)], dim=1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shift`` (fraction of a turn, per sample) through RGB -> HSV -> RGB."""
    hsv = rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 1.0)
    return hsv_to_rgb(torch.stack([h, hsv[:, 1], hsv[:, 2]], dim=1))


def color_jitter(
    x: torch.Tensor,
    strengths: tuple[float, float, float, float],
    p: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """torchvision-style ColorJitter(brightness, contrast, saturation, hue) applied with probability ``p``.

    Factors are drawn per sample (brightness/contrast/saturation ~ U[max(0, 1-s), 1+s], hue ~ U[-h, h]);
    the order of the four operations is one random permutation per batch. A zero strength skips its op.
    """
    n = x.shape[0]
    apply = (_rand(n, generator) < p).to(x.device)
    bri, con, sat, hue = strengths
    factors = [_uniform(n, max(0.0, 1 - s), 1 + s, generator, x.device) for s in (bri, con, sat)] + [
        _uniform(n, -hue, hue, generator, x.device)
    ]
    order = torch.randperm(4, generator=generator, device=generator.device if generator else "cpu").tolist()
    if not bool(apply.any()):
        return x
    ops = [(adjust_brightness, bri), (adjust_contrast, con), (adjust_saturation, sat), (adjust_hue, hue)]
    y = x
    for k in order:
        fn, strength = ops[k]
        if strength > 0:
            y = fn(y, factors[k])
    return torch.where(apply.view(-1, 1, 1, 1), y, x)


def random_grayscale(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Replace a sample by its 3-channel luma with probability ``p``."""
    apply = (_rand(x.shape[0], generator) < p).to(x.device)
    if not bool(apply.any()):
        return x
    return torch.where(apply.view(-1, 1, 1, 1), _grayscale(x).expand_as(x), x)


# ------------------------------------------------------------------------------------------------- blur


def blur_kernel_size(image_size: int) -> int:
    """About 10 % of the image side, odd, at least 3 (23 for 224, 3 for 32)."""
    k = int(0.1 * image_size)
    return max(3, k + 1 if k % 2 == 0 else k)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample ``sigma`` (B,), reflect padding, grouped convolutions."""
    b, c, h, w = x.shape
    half = kernel_size // 2
    pos = torch.arange(kernel_size, device=x.device, dtype=x.dtype) - half
    kern = torch.exp(-(pos.view(1, -1) ** 2) / (2 * sigma.to(x).view(-1, 1) ** 2))
    kern = (kern / kern.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, k)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(
        F.pad(y, (half, half, 0, 0), mode="reflect"), kern.view(b * c, 1, 1, kernel_size), groups=b * c
    )
    y = F.conv2d(
        F.pad(y, (0, 0, half, half), mode="reflect"), kern.view(b * c, 1, kernel_size, 1), groups=b * c
    )
    return y.view(b, c, h, w)


def random_solarize(
    x: torch.Tensor, p: float, generator: torch.Generator | None, threshold: float = 0.5
) -> torch.Tensor:
    """Solarize with probability ``p`` per sample: values >= ``threshold`` become ``1 - value`` (x in [0, 1])."""
    pick = (_rand(x.shape[0], generator) < p).to(x.device).view(-1, 1, 1, 1)
    return torch.where(pick & (x >= threshold), 1.0 - x, x)


def random_blur(
    x: torch.Tensor, p: float, sigma: Range, kernel_size: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Gaussian blur with probability ``p`` per sample, sigma ~ U(sigma)."""
    n = x.shape[0]
    apply = (_rand(n, generator) < p).to(x.device)
    sig = _uniform(n, sigma[0], sigma[1], generator, x.device)
    idx = apply.nonzero().squeeze(1)
    if idx.numel() == 0:
        return x
    out = x.clone()
    out[idx] = gaussian_blur(x[idx], sig[idx], kernel_size)
    return out


# ------------------------------------------------------------------------------------------ pipelines


class SSLAugment:
    """The SSL view pipeline (method.md section 6), batched.

    RandomResizedCrop(image_size, crop_scale, crop_ratio) + horizontal flip (one grid_sample), ColorJitter
    with probability ``jitter_p``, grayscale with probability ``gray_p``, Gaussian blur with probability
    ``blur_p`` (sigma ~ U(blur_sigma), kernel ~10 % of image_size), solarization with probability
    ``solarize_p``, then normalisation with ``mean``/``std``.
    ``__call__(images, generator)``: uint8 (B,3,H,W) -> float32 (B,3,S,S) on the images' device.
    """

    def __init__(
        self,
        image_size: int,
        mean: Stats,
        std: Stats,
        crop_scale: Range = (0.2, 1.0),
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
        jitter_p: float = 0.8,
        gray_p: float = 0.2,
        blur_p: float = 0.0,
        blur_sigma: Range = (0.1, 2.0),
        flip_p: float = 0.5,
        crop_ratio: Range = (3 / 4, 4 / 3),
        interpolation: str = "bilinear",
        solarize_p: float = 0.0,
    ) -> None:
        if image_size < 1:
            raise US3LError(f"image_size must be positive, got {image_size}")
        self.image_size = int(image_size)
        self.mean, self.std = tuple(mean), tuple(std)
        self.crop_scale = _check_range("crop_scale", crop_scale, 1e-6, 1.0)
        self.crop_ratio = _check_range("crop_ratio", crop_ratio, 1e-6, math.inf)
        if any(s < 0 for s in jitter) or jitter[3] > 0.5:
            raise US3LError(f"jitter strengths must be >= 0 (hue <= 0.5), got {jitter}")
        self.jitter = tuple(float(s) for s in jitter)
        probabilities = (
            ("jitter_p", jitter_p), ("gray_p", gray_p), ("blur_p", blur_p), ("flip_p", flip_p),
            ("solarize_p", solarize_p),
        )
        for name, p in probabilities:
            if not 0.0 <= p <= 1.0:
                raise US3LError(f"{name} must be in [0, 1], got {p}")
        self.jitter_p, self.gray_p, self.blur_p, self.flip_p = jitter_p, gray_p, blur_p, flip_p
        self.solarize_p = solarize_p
        self.blur_sigma = _check_range("blur_sigma", blur_sigma, 1e-6, math.inf)
        self.blur_kernel = blur_kernel_size(self.image_size)
        if interpolation not in ("bilinear", "bicubic", "nearest"):
            raise US3LError(f"interpolation must be bilinear, bicubic or nearest, got {interpolation!r}")
        self.interpolation = interpolation

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = _to_float(images)
        b, _, h, w = x.shape
        boxes = sample_crop_boxes(b, h, w, self.crop_scale, self.crop_ratio, generator)
        flip = _rand(b, generator) < self.flip_p
        x = resample_boxes(x, boxes, flip, self.image_size, self.interpolation)
        return self._photometric(x, generator)

    def after_crop(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Everything but the crop and flip, on (B,3,S,S) crops taken per image beforehand (folder data:
        ``us3l.data.folder``): colour jitter, grayscale, blur, solarize, normalise."""
        return self._photometric(_to_float(images), generator)

    def _photometric(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = color_jitter(x, self.jitter, self.jitter_p, generator)
        x = random_grayscale(x, self.gray_p, generator)
        if self.blur_p > 0:
            x = random_blur(x, self.blur_p, self.blur_sigma, self.blur_kernel, generator)
        if self.solarize_p > 0:
            x = random_solarize(x, self.solarize_p, generator)
        return _normalize(x, self.mean, self.std)

    def __repr__(self) -> str:
        return (
            f"SSLAugment(image_size={self.image_size}, crop_scale={self.crop_scale}, jitter={self.jitter}, "
            f"jitter_p={self.jitter_p}, gray_p={self.gray_p}, blur_p={self.blur_p}, flip_p={self.flip_p}, "
            f"solarize_p={self.solarize_p})"
        )


def two_views(
    images: torch.Tensor, aug: SSLAugment | tuple[SSLAugment, SSLAugment], generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently augmented views of the same batch: one pipeline called twice (symmetric), or a
    pair of pipelines, one per view (asymmetric, e.g. ``byol_augment_pair``)."""
    first, second = aug if isinstance(aug, tuple) else (aug, aug)
    return first(images, generator), second(images, generator)


#: ``augment`` config values: the recipe's symmetric pipeline, or BYOL's asymmetric pair (MoCo v3 recipe).
AUGMENTS = ("symmetric", "byol")


def byol_augment_pair(
    image_size: int, mean: Stats, std: Stats, crop_min: float | None = None
) -> tuple[SSLAugment, SSLAugment]:
    """BYOL's asymmetric views as MoCo v3 uses them (method.md: blur 1.0 / 0.1, solarize 0 / 0.2), with
    ColorJitter(0.4, 0.4, 0.2, 0.1) at p 0.8 and grayscale p 0.2 on both views; crops of at least
    ``crop_min`` of the image (default 0.08, the recipe's)."""
    crop = (0.08 if crop_min is None else float(crop_min), 1.0)
    common = {"crop_scale": crop, "jitter": (0.4, 0.4, 0.2, 0.1), "jitter_p": 0.8, "gray_p": 0.2}
    return (
        SSLAugment(image_size, mean, std, blur_p=1.0, solarize_p=0.0, **common),
        SSLAugment(image_size, mean, std, blur_p=0.1, solarize_p=0.2, **common),
    )


_NO_BLUR_KINDS = ("cifar", "builtin")
_BLUR_KINDS = ("folder", "imagenet")


def data_kind(name_or_spec: str) -> str:
    """``"cifar"``, ``"builtin"`` or ``"folder"`` for a dataset name (``ImageDataset.name``) or data spec."""
    key = name_or_spec.strip().lower()
    if key == "digits":
        return "builtin"
    for kind in _NO_BLUR_KINDS + _BLUR_KINDS:
        if key.startswith(kind):
            return "folder" if kind == "imagenet" else kind
    raise US3LError(
        f"unknown dataset kind {name_or_spec!r} (expected a name or spec starting with builtin, cifar10, "
        "cifar100, folder or imagenet)"
    )


def ssl_augment_for(dataset_name_or_kind: str, image_size: int, mean: Stats, std: Stats) -> SSLAugment:
    """The method's SSL recipe for a dataset: blur p=0.5 for ImageNet/folder data, none for CIFAR/builtin."""
    blur_p = 0.5 if data_kind(dataset_name_or_kind) == "folder" else 0.0
    return SSLAugment(image_size, mean, std, blur_p=blur_p)


class EvalTransform:
    """Deterministic evaluation transform: resize the shorter side to ``resize_size``, center-crop
    ``image_size``, normalise.

    ``resize_size`` defaults to 36 for ``image_size`` 32 (CIFAR: Resize(36)+CenterCrop(32)) and to
    ``round(image_size * 8 / 7)`` otherwise (ImageNet: Resize(256)+CenterCrop(224)). Resizing is bilinear
    with antialiasing (``F.interpolate``); ``__call__(images)``: uint8 (B,3,H,W) -> float32 (B,3,S,S).
    """

    def __init__(self, image_size: int, mean: Stats, std: Stats, resize_size: int | None = None) -> None:
        if image_size < 1:
            raise US3LError(f"image_size must be positive, got {image_size}")
        self.image_size = int(image_size)
        if resize_size is None:
            resize_size = 36 if image_size == 32 else int(round(image_size * 8 / 7))
        if resize_size < image_size:
            raise US3LError(f"resize_size ({resize_size}) must be >= image_size ({image_size})")
        self.resize_size = int(resize_size)
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = _to_float(images)
        h, w = x.shape[-2:]
        r, s = self.resize_size, self.image_size
        nh, nw = (r, int(r * w / h)) if h <= w else (int(r * h / w), r)
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        top, left = int(round((nh - s) / 2.0)), int(round((nw - s) / 2.0))
        return _normalize(x[..., top : top + s, left : left + s].clamp(0.0, 1.0), self.mean, self.std)

    def __repr__(self) -> str:
        return f"EvalTransform(resize={self.resize_size}, center_crop={self.image_size})"


class LinearTrainAugment:
    """Linear-probe training transform: RandomResizedCrop(scale (0.8, 1), bicubic) + flip, normalise."""

    def __init__(
        self,
        image_size: int,
        mean: Stats,
        std: Stats,
        crop_scale: Range = (0.8, 1.0),
        flip_p: float = 0.5,
        interpolation: str = "bicubic",
    ) -> None:
        self._aug = SSLAugment(
            image_size,
            mean,
            std,
            crop_scale=crop_scale,
            jitter=(0.0, 0.0, 0.0, 0.0),
            jitter_p=0.0,
            gray_p=0.0,
            blur_p=0.0,
            flip_p=flip_p,
            interpolation=interpolation,
        )
        self.image_size = self._aug.image_size

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self._aug(images, generator)

    def after_crop(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Normalisation only: the crop and flip were taken per image beforehand (folder data)."""
        return self._aug.after_crop(images, generator)

    def __repr__(self) -> str:
        return f"LinearTrainAugment(image_size={self.image_size}, crop_scale={self._aug.crop_scale})"
