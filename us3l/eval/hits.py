"""Per-test-image top-1 hits of an accuracy, stored beside it in ``accuracy.json`` (``knn_top1_hits``,
``linear_top1_hits``).

Every width of one evaluation is scored on the same test images in the same order, so two widths can be
compared image by image (a paired test, ``us3l.deploy.tie_test``) instead of through their two intervals: the
widths of one slimmable network mostly get the same images right, so the noise of their *difference* is far
smaller than two independent intervals suggest.

Encoding: the hits as bits, first test image in the most significant bit of the first byte (``numpy.packbits``),
base64 (RFC 4648, with padding). 1000 test images take 168 characters; 50,000 take 8,336.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from us3l.errors import US3LError


def encode_hits(hits: Any) -> str:
    """``hits`` (one bool per test image: a tensor, array or list) as a base64 string of packed bits."""
    bits = np.asarray(hits.cpu() if hasattr(hits, "cpu") else hits, dtype=bool).reshape(-1)
    return base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")


def decode_hits(text: Any, num_test: Any, where: str) -> np.ndarray:
    """The bool array that ``encode_hits`` wrote for ``num_test`` images; one-line ``US3LError`` (naming ``where``)
    for anything else: not a string, not base64, another length, or bits set past the last image."""
    if isinstance(num_test, bool) or not isinstance(num_test, int) or num_test < 1:
        raise US3LError(f"{where} needs the file's num_test (a positive integer), got {num_test!r}")
    if not isinstance(text, str):
        raise US3LError(f"{where} must be a base64 string of packed bits, got {type(text).__name__}")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise US3LError(f"{where} is not valid base64") from None
    if len(raw) != (num_test + 7) // 8:
        raise US3LError(f"{where} holds {len(raw) * 8} bits, not the {num_test} test images of the file "
                        f"({(num_test + 7) // 8} bytes)")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits[num_test:].any():
        raise US3LError(f"{where} has bits set past its {num_test} test images")
    return bits[:num_test].astype(bool)


def check_hits(text: Any, num_test: Any, accuracy: Any, where: str) -> None:
    """``text`` decodes for ``num_test`` images and holds exactly the hits behind ``accuracy`` (hits / num_test):
    hits that disagree with their accuracy would decide a selection the accuracy does not support."""
    bits = decode_hits(text, num_test, where)
    if accuracy is None:
        raise US3LError(f"{where} is given without the accuracy it belongs to")
    count, expected = int(bits.sum()), round(float(accuracy) * num_test)
    if count != expected:
        raise US3LError(f"{where} counts {count} hits of {num_test}, but the accuracy says {expected} "
                        f"({float(accuracy):.4g})")
