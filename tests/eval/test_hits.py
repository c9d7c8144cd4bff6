"""Per-image hits in accuracy.json (``us3l.eval.hits``): encoding, checks, and the evaluation that writes them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from us3l.errors import US3LError
from us3l.eval.hits import check_hits, decode_hits, encode_hits
from us3l.train.knn import accuracy_and_hits, topk_accuracy


@pytest.mark.parametrize("n", [1, 7, 8, 9, 1000])
def test_hits_round_trip_for_any_image_count(n: int) -> None:
    bits = np.random.default_rng(n).random(n) < 0.6
    text = encode_hits(torch.from_numpy(bits))
    assert np.array_equal(decode_hits(text, n, "x"), bits)
    assert len(text) == 4 * (((n + 7) // 8 + 2) // 3)  # base64 of ceil(n / 8) bytes


@pytest.mark.parametrize(
    ("text", "n", "message"),
    [
        (5, 8, "x must be a base64 string of packed bits, got int"),
        ("**", 8, "x is not valid base64"),
        (encode_hits([True] * 16), 8, "x holds 16 bits, not the 8 test images of the file (1 bytes)"),
        (encode_hits([True] * 8), 7, "x has bits set past its 7 test images"),
        (encode_hits([True] * 8), None, "x needs the file's num_test (a positive integer), got None"),
    ],
)
def test_malformed_hits_are_refused_in_one_line(text: object, n: object, message: str) -> None:
    with pytest.raises(US3LError) as e:
        decode_hits(text, n, "x")
    assert str(e.value) == message


def test_hits_must_count_exactly_their_accuracy() -> None:
    text = encode_hits([True, True, False, False])
    check_hits(text, 4, 0.5, "x")
    with pytest.raises(US3LError, match=r"^x counts 2 hits of 4, but the accuracy says 3 \(0\.75\)$"):
        check_hits(text, 4, 0.75, "x")
    with pytest.raises(US3LError, match="^x is given without the accuracy it belongs to$"):
        check_hits(text, 4, None, "x")


def test_the_stored_hits_are_the_ones_the_accuracy_counts_ties_included() -> None:
    scores = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    labels = torch.tensor([1, 2, 0, 2])
    for y in (labels, torch.tensor([0, 1, 0, 0])):
        top1, top5, hits = accuracy_and_hits(scores, y)
        assert int(hits.sum()) / 4 == top1 == topk_accuracy(scores, y, (1,))[0] and top5 == 1.0
        assert hits[2] == bool(y[2] == 0)  # no tie in row 2: right exactly when the label is class 0


def test_a_tampered_hit_is_refused_when_the_file_loads(tmp_path) -> None:
    from us3l.eval.accuracy import load_accuracy
    from us3l.eval.intervals import wilson_interval
    from us3l.io import header

    bits = [True] * 60 + [False] * 40
    doc = header("accuracy", 2)
    doc.update(checkpoint_sha256="0" * 64, model="tiny", data="synthetic", num_test=100, protocols={},
               baselines=None, widths=[{"width": 1.0, "knn_top1": 0.6, "knn_top1_ci": wilson_interval(0.6, 100),
                                        "knn_top1_hits": encode_hits(bits)}])
    path = tmp_path / "accuracy.json"
    path.write_text(json.dumps(doc))
    assert load_accuracy(path)["widths"][0]["knn_top1_hits"] == encode_hits(bits)
    doc["widths"][0]["knn_top1_hits"] = encode_hits([False] + bits[1:])  # one image flipped: 59 hits, not 60
    path.write_text(json.dumps(doc))
    with pytest.raises(US3LError, match=r"widths\[0\]\.knn_top1_hits counts 59 hits of 100, but the accuracy says 60"):
        load_accuracy(path)
