"""What identifies a training run's data set, so that ``--resume`` can refuse other data of the same shape.

Class count, split sizes and normalisation (``checkpoint.json``'s ``data``) do not tell two image folders of
the same size apart: folder and CIFAR data are normalised with fixed constants, not statistics of their images.
The fingerprint hashes the class names and, per split, what each sample is: a folder image's label and its
path below its class folder (names only: no image is opened, and a data set moved elsewhere keeps them), an
in-memory image's pixels and label.
"""

from __future__ import annotations

import hashlib
from typing import Any

#: Bumped when what the fingerprint covers changes (a run saved with another version is not compared).
FINGERPRINT_VERSION = 1


def data_fingerprint(train_ds: Any, test_ds: Any) -> str:
    """``v<FINGERPRINT_VERSION>:<sha256>`` of the class names and both splits' samples."""
    h = hashlib.sha256()
    h.update("\n".join(train_ds.classes).encode("utf-8", "surrogateescape") + b"\0")
    for ds in (train_ds, test_ds):
        _update(h, ds)
        h.update(b"\0split\0")
    return f"v{FINGERPRINT_VERSION}:{h.hexdigest()}"


def _update(h: Any, ds: Any) -> None:
    samples = getattr(ds, "samples", None)
    if samples is not None:  # a folder: (path, label) per image, in a fixed order
        keys = sorted(f"{label}\t{_below_class(path, ds.classes[label])}" for path, label in samples)
        h.update("\n".join(keys).encode("utf-8", "surrogateescape"))
        return
    h.update(ds.labels.contiguous().numpy().tobytes())
    h.update(ds.images.contiguous().numpy().tobytes())


def _below_class(path: Any, class_name: str) -> str:
    """``path`` from its class folder on (``cat/sub/1.png``), whatever the data set's own location."""
    parts = path.parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == class_name:
            return "/".join(parts[i:])
    return path.name
