"""The data layer: datasets (``load_dataset`` specs, batching) and batched tensor augmentations."""

from us3l.data.augment import (
    AUGMENTS,
    EvalTransform,
    LinearTrainAugment,
    SSLAugment,
    byol_augment_pair,
    data_kind,
    ssl_augment_for,
    two_views,
)
from us3l.data.datasets import (
    BUILTIN_MEAN,
    BUILTIN_STD,
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    FolderDataset,
    ImageDataset,
    as_torch_dataset,
    iterate_batches,
    load_dataset,
    load_splits,
)

__all__ = [
    "BUILTIN_MEAN",
    "BUILTIN_STD",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EvalTransform",
    "FolderDataset",
    "ImageDataset",
    "LinearTrainAugment",
    "SSLAugment",
    "as_torch_dataset",
    "data_kind",
    "iterate_batches",
    "load_dataset",
    "load_splits",
    "ssl_augment_for",
    "AUGMENTS",
    "byol_augment_pair",
    "two_views",
]
