"""``select`` combines accuracies and latencies of one checkpoint only (issue 11.1: derived files are bound to
the checkpoint they were computed from)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.conftest import latency
from us3l.deploy.select import Budget, select
from us3l.errors import US3LError


def _rows() -> list[dict]:
    return [{"width": w, "latency": latency(w, w * 1.1, w * 1.2)} for w in (0.25, 0.5, 1.0)]


def test_accuracy_and_profile_of_different_checkpoints_are_refused(
    write_profile: Callable[..., Path], write_accuracy: Callable[..., Path]
) -> None:
    prof = write_profile(_rows())
    acc = write_accuracy({0.25: 0.3, 0.5: 0.4, 1.0: 0.5})
    assert select([prof], Budget(latency_ms=10.0), accuracy=acc).devices  # a profile without a hash: not compared
    doc = json.loads(prof.read_text())
    doc["checkpoint_sha256"] = "0" * 64  # the accuracy file's checkpoint
    prof.write_text(json.dumps(doc))
    assert select([prof], Budget(latency_ms=10.0), accuracy=acc).devices
    doc["checkpoint_sha256"] = "1" * 64
    prof.write_text(json.dumps(doc))
    with pytest.raises(US3LError, match=r"profiled from checkpoint 111111111111… but .*accuracy.json was computed "
                                        r"for 000000000000…; re-run us3l eval or us3l profile") as exc:
        select([prof], Budget(latency_ms=10.0), accuracy=acc)
    assert "\n" not in str(exc.value)


@pytest.mark.slow  # 1.3 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_accuracy_and_profile_of_different_networks_are_refused(
    write_profile: Callable[..., Path], write_accuracy: Callable[..., Path]
) -> None:
    acc = write_accuracy({0.25: 30.0, 0.5: 40.0, 1.0: 50.0})  # model "tiny", no MACs recorded
    other = write_profile(_rows(), model="cifar_mobilenetv2")
    with pytest.raises(US3LError, match=r"profiles model cifar_mobilenetv2 but .*accuracy.json is for model tiny$"):
        select([other], Budget(latency_ms=10.0), accuracy=acc)
    prof = write_profile(_rows())
    doc = json.loads(acc.read_text())
    doc["widths"][0]["macs"] = 12345  # width 0.25 with another network's MACs
    acc.write_text(json.dumps(doc))
    with pytest.raises(US3LError, match=r"describe different networks: width 0.25 has \d+ MACs in one and 12345"):
        select([prof], Budget(latency_ms=10.0), accuracy=acc)


def test_a_switchable_artifacts_profile_matches_its_models_accuracy(
    write_profile: Callable[..., Path], write_accuracy: Callable[..., Path]
) -> None:
    acc = write_accuracy({0.25: 30.0, 0.5: 40.0, 1.0: 50.0})  # model "tiny"
    prof = write_profile(_rows(), model="tiny-switchable")
    doc = json.loads(prof.read_text())
    doc["extra"] = {"switchable": {"artifact": "a", "sha256": "0" * 64, "widths": [1.0, 0.5, 0.25]}}
    prof.write_text(json.dumps(doc))
    assert select([prof], Budget(latency_ms=10.0), accuracy=acc).devices[0].chosen is not None
