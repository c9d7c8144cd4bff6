"""Tamper with a saved checkpoint's safetensors header the way a consistent forgery would: the header edited, the
tensor data kept, and checkpoint.json's ``weights_sha256`` updated to the new file, so that only the checks on the
header's content can refuse it."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any


def rewrite_header(run: Path, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """Apply ``edit`` to the header JSON of ``run/checkpoint.safetensors`` (in place), write the file back with the
    header re-padded to 8 bytes, record its sha256 in ``run/checkpoint.json``; return the new file's bytes."""
    weights = run / "checkpoint.safetensors"
    blob = weights.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    crafted = struct.pack("<Q", len(text)) + text + blob[8 + n :]
    weights.write_bytes(crafted)
    meta_path = run / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta["weights_sha256"] = hashlib.sha256(crafted).hexdigest()
    meta_path.write_text(json.dumps(meta))
    return crafted
