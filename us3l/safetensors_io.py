"""Writing safetensors files byte-for-byte reproducibly.

``safetensors`` lays the tensor data out deterministically (by dtype, then name) but serialises the
``__metadata__`` map from a Rust hash map, so the same tensors and metadata give header JSON whose key order
(and therefore file sha256) varies from process to process. Every digest us3l records (``weights_sha256``,
the ``checkpoint_sha256`` of each derived file) is a digest of these bytes, so two identical runs must write
identical files: :func:`safetensors_bytes` rewrites the header in a canonical form.

Format (https://github.com/huggingface/safetensors#format): 8 bytes little-endian u64 ``N``, then ``N`` bytes
of UTF-8 JSON (padded with trailing spaces; safetensors pads ``N`` to a multiple of 8 so the data that follows
stays aligned), then the data. Tensor ``data_offsets`` are relative to the start of the data, so reordering
the header's keys leaves them valid.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from us3l.io import atomic_write_bytes

_ALIGN = 8


def _tensors_for_safetensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage and non-contiguous tensors: store independent contiguous copies
    # (in name order; safetensors orders the data by dtype and name itself).
    return {k: tensors[k].detach().to("cpu").contiguous().clone() for k in sorted(tensors)}


def _parse_header(blob: bytes) -> tuple[Any, int]:
    """(the parsed header JSON, its length in bytes) of ``blob``; ``ValueError`` where the 8-byte length prefix or
    the length it gives does not fit the bytes."""
    if len(blob) < 8:
        raise ValueError("not a safetensors file: shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError("not a safetensors file: header length past the end of the data")
    return json.loads(blob[8 : 8 + n].decode("utf-8")), n


def canonical_header(blob: bytes) -> bytes:
    """``blob`` (a safetensors file's bytes) with its header JSON re-serialised canonically.

    Keys sorted at every level (tensor entries and ``__metadata__``), compact separators, UTF-8, padded with
    spaces to a multiple of 8 bytes. The data section is kept as it is.
    """
    header, n = _parse_header(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % _ALIGN)
    return struct.pack("<Q", len(text)) + text + blob[8 + n :]


def read_header(blob: bytes) -> dict[str, Any]:
    """The header JSON of ``blob`` (a safetensors file's bytes): tensor name -> ``{"dtype", "shape",
    "data_offsets"}``, plus ``__metadata__`` (string -> string) when present. ``ValueError`` for bytes that are no
    safetensors file (also a ``__metadata__`` that is not an object of strings).
    Only the header is parsed; ``safetensors.torch.load(blob)`` checks the rest when the tensors are read."""
    header, _ = _parse_header(blob)
    if not isinstance(header, dict):
        raise ValueError("not a safetensors file: its header is not a JSON object")
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        # the format's __metadata__ maps strings to strings; a list or number here reached the callers' .get()
        raise ValueError("not a safetensors file: its __metadata__ is not a JSON object of strings")
    return header


def safetensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """The safetensors file of ``tensors`` with ``metadata``, identical bytes for identical input.

    The insertion order of ``tensors`` and ``metadata`` does not matter. Tensors are copied to contiguous CPU
    tensors first (safetensors refuses shared or strided storage).
    """
    from safetensors.torch import save

    meta = None if metadata is None else dict(metadata)
    return canonical_header(save(_tensors_for_safetensors(tensors), metadata=meta))


def write_safetensors(
    path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> Path:
    """Write :func:`safetensors_bytes` to ``path`` atomically (``us3l.io.atomic_write_bytes``)."""
    return atomic_write_bytes(path, safetensors_bytes(tensors, metadata))
