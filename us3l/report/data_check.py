"""What an accuracy file's ``data_check`` record (``us3l.eval.accuracy``) says against its numbers: measured on the
run's own automatically split folder changed since training (``changed_since_training``), or on a test split holding
images byte-identical to training images (``train_test_overlaps``). The page notes each in the accuracy section,
``us3l report`` warns once per such file on stderr, and ``--json`` carries the fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The note for accuracies measured on the run's own automatically split folder changed since it trained.
CHANGED_NOTE = ("measured on data changed since training: the run's own automatically split folder holds other "
                "images, or images of other byte sizes, than it trained on (no training image is in its test split, "
                "but the test set is not exactly the run's)")


def _overlaps(doc: dict[str, Any]) -> int | None:
    n = (doc.get("data_check") or {}).get("train_test_overlaps")
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def data_check_notes(doc: dict[str, Any]) -> list[str]:
    """The notes for an accuracy document (validated by ``us3l.eval.accuracy.load_accuracy``), none when its data
    check found nothing or it records none (written before the record, or of data with nothing to compare)."""
    check = doc.get("data_check") or {}
    notes = [CHANGED_NOTE] if check.get("changed_since_training") is True else []
    n = _overlaps(doc)
    if n:
        num_test = doc.get("num_test")
        images = f"of {num_test} test images" if isinstance(num_test, int) else ("test image" if n == 1 else
                                                                                 "test images")
        same = "is identical to a training image" if n == 1 else "are identical to training images"
        notes.append(f"{n} {images} {same}: the kNN bank, the linear probe and a network trained on this data have "
                     "seen them, so the accuracies overstate")
    return notes


def data_check_record(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """``us3l report --json``'s entry for the accuracy file ``path``: its ``data_check`` fields (null where not
    recorded) and the notes the page shows."""
    check = doc.get("data_check") or {}
    changed = check.get("changed_since_training")
    return {
        "path": str(path),
        "changed_since_training": changed if isinstance(changed, bool) else None,
        "train_test_overlaps": _overlaps(doc),
        "notes": data_check_notes(doc),
    }
