"""us3l.safetensors_io: the same tensors and metadata give the same bytes, which safetensors and us3l read."""

from __future__ import annotations

import itertools
import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from us3l.safetensors_io import canonical_header, safetensors_bytes, write_safetensors

META = {"format": "pt", "epoch": "3", "widths": "0.2500,1.0000", "checkpoint_sha256": "ab" * 32}


def _tensors() -> dict[str, torch.Tensor]:
    return {
        "b.weight": torch.arange(6.0).reshape(2, 3),
        "a.num_batches_tracked": torch.tensor(7),
        "c.half": torch.ones(3, dtype=torch.float16),
        "a.strided": torch.arange(12.0).reshape(3, 4).t(),  # not contiguous: stored as a contiguous copy
    }


def _header(blob: bytes) -> tuple[int, bytes]:
    (n,) = struct.unpack("<Q", blob[:8])
    return n, blob[8 : 8 + n]


def test_insertion_order_does_not_change_the_bytes() -> None:
    """safetensors itself writes ``__metadata__`` from a hash map whose order varies between calls (and
    processes): the old writers gave files with different sha256 for the same content."""
    tensors = _tensors()
    outputs = set()
    for perm in itertools.islice(itertools.permutations(META), 12):
        meta = {k: META[k] for k in perm}
        for t in (tensors, dict(reversed(tensors.items()))):
            outputs.add(safetensors_bytes(t, meta))
    assert len(outputs) == 1


def test_header_is_canonical_padded_and_readable(tmp_path: Path) -> None:
    tensors = _tensors()
    blob = safetensors_bytes(tensors, META)
    n, head = _header(blob)
    assert n % 8 == 0 and len(blob) == 8 + n + sum(t.numel() * t.element_size() for t in tensors.values())
    text = head.decode("utf-8")
    doc = json.loads(text)
    assert text.rstrip(" ") == json.dumps(doc, sort_keys=True, separators=(",", ":"))
    assert list(doc) == sorted(doc) and list(doc["__metadata__"]) == sorted(META)
    assert canonical_header(blob) == blob

    path = write_safetensors(tmp_path / "x.safetensors", tensors, META)
    assert path.read_bytes() == blob
    loaded = load_file(str(path))
    assert loaded.keys() == tensors.keys()
    for k, v in tensors.items():
        assert torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype, k
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        assert fh.metadata() == META
        assert sorted(fh.keys()) == sorted(tensors)
        assert torch.equal(fh.get_tensor("a.strided"), tensors["a.strided"])


def test_no_metadata_and_unicode_names() -> None:
    tensors = {"é/w": torch.zeros(2), "z": torch.ones(1, dtype=torch.int8)}
    blob = safetensors_bytes(tensors)
    assert "__metadata__" not in json.loads(_header(blob)[1])
    assert blob == safetensors_bytes(dict(reversed(tensors.items())))
    from safetensors.torch import load

    assert {k: v.tolist() for k, v in load(blob).items()} == {"é/w": [0.0, 0.0], "z": [1]}


def test_not_a_safetensors_file() -> None:
    with pytest.raises(ValueError, match="shorter"):
        canonical_header(b"\x01")
    with pytest.raises(ValueError, match="past the end"):
        canonical_header(struct.pack("<Q", 100) + b"{}")
