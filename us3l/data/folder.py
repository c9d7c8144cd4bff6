"""Per-image Pillow transforms for folder (ImageFolder) data, run in ``DataLoader`` workers.

Folder images keep their original size and aspect ratio until a per-image transform takes a crop out of
them, as torchvision's pipelines do (method.md §6, §7, §10):

- **evaluation** (``eval_crop``): Resize(shorter side to ``round(S * 256 / 224)``) + CenterCrop(S) of the
  original, i.e. Resize(256) + CenterCrop(224) at S = 224, with torchvision's size and rounding rules and
  Pillow's antialiased bilinear resize;
- **training** (``random_resized_crop``): RandomResizedCrop(S, scale, ratio) sampled on the original image
  (torchvision's ``get_params`` rule: 10 tries, then the ratio-clamped centre crop), antialiased Pillow resize,
  horizontal flip.

The batched tensor augmentations (``us3l.data.augment``) then do the rest on the (B,3,S,S) crops
(``after_crop``: colour jitter, grayscale, blur, solarize, normalise); in-memory data sets keep the fully
batched path. Random crops are drawn from ``numpy.random.default_rng([seed, index])``, so they do not depend on
the number of workers or the batch a sample lands in; callers pass a fresh ``seed`` per epoch (and rank).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from us3l.data.augment import EvalTransform, LinearTrainAugment, SSLAugment
from us3l.errors import US3LError

Range = tuple[float, float]
Stats = tuple[float, float, float]

#: torchvision's ImageNet evaluation: Resize(256) + CenterCrop(224), scaled to other crop sizes.
EVAL_RESIZE_RATIO = 256 / 224


def eval_resize_size(image_size: int) -> int:
    """The shorter-side resize before the centre crop: ``round(S * 256 / 224)`` (256 for 224)."""
    return int(round(image_size * EVAL_RESIZE_RATIO))


def _resample(name: str) -> Any:
    from PIL import Image

    modes = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
             "nearest": Image.Resampling.NEAREST}
    if name not in modes:
        raise US3LError(f"interpolation must be bilinear, bicubic or nearest, got {name!r}")
    return modes[name]


#: The Pillow formats of the image extensions a folder data set reads (``us3l.data.tree.IMAGE_EXTENSIONS``; PGM is
#: Pillow's PPM; the JPEG decoder also opens a camera's multi-picture JPEG, MPO). Pillow picks a decoder by the
#: file's content, not its name: without this list a file named ``x.jpg`` reached any of its 40-odd decoders, EPS
#: among them, which runs Ghostscript (a separate program with a history of code-execution bugs) on the file.
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "PPM", "TIFF")


def open_rgb(path: Path) -> Any:
    """Decode ``path`` at its original size as an RGB ``PIL.Image`` (one-line ``US3LError`` if unreadable)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # a decompression-bomb-sized image is refused, not decoded with warnings
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as im:
                return _as_rgb(im, path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(path, exc) from None
    except UnidentifiedImageError:
        formats = ", ".join(IMAGE_FORMATS)
        raise US3LError(f"cannot read image {path}: not an image in a format read here ({formats}); a damaged "
                        "file, or another format named like an image") from None
    except (OSError, ValueError) as exc:
        raise US3LError(f"cannot read image {path}: {exc}") from None
    except US3LError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder's own failure on a damaged file (PNG: SyntaxError)
        raise US3LError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None


def check_first_images(ds: Any) -> None:
    """Open the first image of every class of a folder data set (``ds.samples``, in class order), so that a
    folder of files that only look like images (right extension, other bytes) is one ``cannot read image PATH``
    line before training or calibration starts, not after the resolved config, the model and the first batch.
    Every image is read in every epoch, so an unreadable one would stop the run anyway; only one per class is
    opened here (the rest would cost a full pass over the data). In-memory data sets are not checked."""
    if not is_folder(ds):
        return
    seen: set[int] = set()
    for path, label in ds.samples:
        if label not in seen:
            seen.add(label)
            open_rgb(path)


def _too_many_pixels(path: Path, exc: Exception) -> US3LError:
    """The refusal of an image over Pillow's ``MAX_IMAGE_PIXELS`` (its decompression-bomb guard: a small file
    can declare billions of pixels), saying what to do. Pillow's own text names twice the limit for the largest
    images (where it raises instead of warning), so only the size is taken from it and the limit restated."""
    from PIL import Image

    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"Image size ({found[1]} pixels)" if found else "the image"
    return US3LError(f"cannot read image {path}: {size} exceeds the limit of {Image.MAX_IMAGE_PIXELS} pixels "
                     "(Pillow's guard against decompression bombs); downscale the image below it")


def _as_rgb(im: Any, path: Path) -> Any:
    """``im`` as 8-bit RGB. Pillow's ``convert("RGB")`` clips 16-bit grey to 255 (every 16-bit image white) and
    maps float pixels in [0, 1] to black: 16-bit grey is scaled (x / 257), and 32-bit integer or float pixels,
    whose range no file states, are refused. A palette image with transparency goes through RGBA (same
    colours), where a direct conversion prints Pillow's warning about transparency expressed in bytes."""
    from PIL import Image

    if _is_16_bit_grey(im):
        grey = np.asarray(im).astype(np.float32) / 257.0
        return Image.fromarray(np.rint(grey.clip(0, 255)).astype(np.uint8), mode="L").convert("RGB")
    if im.mode in ("I", "F"):
        kind = "32-bit integer" if im.mode == "I" else "floating-point"
        raise US3LError(f"cannot read image {path}: {kind} pixels (Pillow mode {im.mode}) have no fixed range; "
                        "save the images as 8- or 16-bit")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    return im.convert("RGB")


def _is_16_bit_grey(im: Any) -> bool:
    """Pillow's ``I;16`` modes (PNG, TIFF), or mode ``I`` from a PGM with a maxval over 255, whose samples
    Pillow (every version us3l supports, >= 10) rescales to 0..65535 (the maxval to 65535), so x / 257 maps
    the maxval to 255. A 32-bit TIFF is mode ``I`` too, but not a PPM: it stays refused."""
    return bool(im.mode.startswith("I;16") or (im.mode == "I" and im.format == "PPM"))


def to_tensor(im: Any) -> torch.Tensor:
    """A ``PIL.Image`` (RGB) as a uint8 (3,H,W) tensor."""
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def resize_shorter(im: Any, size: int, interpolation: str = "bilinear") -> Any:
    """torchvision ``Resize(size)`` on a PIL image: shorter side to ``size``, longer side
    ``int(size * long / short)`` (truncated, as torchvision), antialiased Pillow resize."""
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    if short == size:
        return im
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return im.resize((new_w, new_h), _resample(interpolation))


def check_eval_resize(im: Any, image_size: int, path: Path) -> None:
    """Refuse (one line) an image so elongated that the evaluation's Resize (shorter side to
    ``round(S * 256 / 224)``) would make it larger than Pillow's pixel limit: a 1 x 40,000 strip of 40,000 pixels
    becomes 256 x 10,240,000 at S = 224, about 8 GB, in every ``DataLoader`` worker at once."""
    from PIL import Image

    w, h = im.size
    short, long = min(w, h), max(w, h)
    size = eval_resize_size(image_size)
    pixels = size * int(size * long / short) if short != size else w * h
    if Image.MAX_IMAGE_PIXELS and pixels > Image.MAX_IMAGE_PIXELS:
        raise US3LError(f"cannot read image {path}: at {w}x{h} its evaluation resize (shorter side to {size}) "
                        f"would have {pixels} pixels, over the limit of {Image.MAX_IMAGE_PIXELS}; crop or drop it")


def center_crop(im: Any, size: int) -> Any:
    """torchvision ``CenterCrop(size)``: offsets ``int(round((H - size) / 2))``; pads nothing (the image is
    at least ``size`` on both sides after :func:`resize_shorter`)."""
    w, h = im.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def eval_crop(im: Any, image_size: int, resize_size: int | None = None) -> Any:
    """Resize(``resize_size``, default ``round(S*256/224)``) + CenterCrop(S) of the original image."""
    return center_crop(resize_shorter(im, resize_size or eval_resize_size(image_size)), image_size)


def crop_box(
    height: int, width: int, scale: Range, ratio: Range, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """torchvision ``RandomResizedCrop.get_params`` on an ``height`` x ``width`` image: ``(top, left, h, w)``."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@dataclass(frozen=True)
class CropSpec:
    """One random view: RandomResizedCrop(``size``, ``scale``, ``ratio``, ``interpolation``) + flip(``flip_p``)."""

    size: int
    scale: Range = (0.2, 1.0)
    ratio: Range = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    interpolation: str = "bilinear"

    @classmethod
    def of(cls, aug: SSLAugment | LinearTrainAugment) -> CropSpec:
        """The geometric half of a batched pipeline (its crop and flip settings)."""
        a = aug._aug if isinstance(aug, LinearTrainAugment) else aug
        return cls(a.image_size, tuple(a.crop_scale), tuple(a.crop_ratio), a.flip_p, a.interpolation)  # type: ignore[arg-type]


def random_resized_crop(im: Any, spec: CropSpec, rng: np.random.Generator) -> tuple[Any, tuple[int, int, int, int]]:
    """A random crop of the original image resized to ``spec.size`` (antialiased) and maybe mirrored;
    returns (image, box ``(top, left, h, w)`` in original pixels)."""
    from PIL import Image

    width, height = im.size
    top, left, h, w = crop_box(height, width, spec.scale, spec.ratio, rng)
    out = im.crop((left, top, left + w, top + h)).resize((spec.size, spec.size), _resample(spec.interpolation))
    if rng.random() < spec.flip_p:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out, (top, left, h, w)


class FolderViews(Dataset):
    """Random views of a ``FolderDataset``: item ``i`` is (uint8 (V,3,S,S), label), one crop per ``specs``
    entry, all taken from one decode of the original image, drawn from ``default_rng([seed, i])``."""

    def __init__(self, ds: Any, specs: tuple[CropSpec, ...], seed: int) -> None:
        if not specs:
            raise ValueError("FolderViews needs at least one CropSpec")
        self.ds, self.specs, self.seed = ds, tuple(specs), int(seed)

    def __len__(self) -> int:
        return len(self.ds)

    @property
    def labels(self) -> torch.Tensor:
        return self.ds.labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.ds.samples[index]
        im = open_rgb(path)
        rng = np.random.default_rng([self.seed, int(index)])
        return torch.stack([to_tensor(random_resized_crop(im, s, rng)[0]) for s in self.specs]), label


class FolderEvalTransform(EvalTransform):
    """The batch half of folder evaluation: the per-image Resize + CenterCrop already happened in the data
    set (:func:`eval_crop`), so the (B,3,S,S) crops are only normalised."""

    def __init__(self, image_size: int, mean: Stats, std: Stats) -> None:
        super().__init__(image_size, mean, std, resize_size=eval_resize_size(image_size))

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if tuple(images.shape[-2:]) != (self.image_size, self.image_size):
            raise US3LError(
                f"folder evaluation expects {self.image_size}x{self.image_size} crops from the data set, "
                f"got {tuple(images.shape[-2:])}"
            )
        return EvalTransform(self.image_size, self.mean, self.std, resize_size=self.image_size)(images)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (f"FolderEvalTransform(per-image Pillow Resize({self.resize_size}, bilinear antialiased) + "
                f"CenterCrop({self.image_size}) of the original)")


def is_folder(ds: Any) -> bool:
    """True for a lazily loaded folder data set (per-image Pillow transforms; ``samples`` of paths)."""
    from us3l.data.datasets import FolderDataset

    return isinstance(ds, FolderDataset)


def eval_transform_for(ds: Any, image_size: int, mean: Stats, std: Stats) -> EvalTransform:
    """The evaluation transform for ``ds``: batched Resize+CenterCrop for in-memory sets, normalisation only
    for folder sets (whose items already are Resize(round(S*256/224)) + CenterCrop(S) of the original)."""
    if is_folder(ds):
        if int(ds.image_size) != int(image_size):
            raise US3LError(f"folder data set loaded at {ds.image_size} px but evaluated at {image_size} px")
        return FolderEvalTransform(image_size, mean, std)
    return EvalTransform(image_size, mean, std)


def _pipelines(aug: Any) -> tuple[Any, ...]:
    return tuple(aug) if isinstance(aug, tuple) else (aug,)


def augmented_views(ds: Any, aug: Any, num_views: int, seed: int) -> FolderViews:
    """``ds`` (a folder set) as ``num_views`` random crops per image, with the crop settings of ``aug`` (one
    pipeline for every view, or a tuple with one pipeline per view)."""
    pipes = _pipelines(aug)
    if len(pipes) not in (1, num_views):
        raise ValueError(f"{len(pipes)} pipelines for {num_views} views")
    specs = tuple(CropSpec.of(pipes[i if len(pipes) > 1 else 0]) for i in range(num_views))
    return FolderViews(ds, specs, seed)


def finish_views(views: torch.Tensor, aug: Any, generator: torch.Generator | None) -> list[torch.Tensor]:
    """The batched non-geometric half (``after_crop``) of each pipeline on its view of a (B,V,3,S,S) batch."""
    pipes = _pipelines(aug)
    return [pipes[i if len(pipes) > 1 else 0].after_crop(views[:, i], generator) for i in range(views.shape[1])]
