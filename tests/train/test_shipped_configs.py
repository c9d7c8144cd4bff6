"""Every shipped recipe in configs/ resolves, and docs/training.md says which reference file it reproduces."""

from __future__ import annotations

from pathlib import Path

import pytest

from us3l.train import resolve_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_resolves_and_has_a_line_in_training_md(path: Path) -> None:
    resolve_config(path)  # validated, as `us3l train --config` would
    rows = [line for line in (ROOT / "docs" / "training.md").read_text(encoding="utf-8").splitlines()
            if line.startswith(f"| `{path.name}` |")]
    assert len(rows) == 1, f"docs/training.md has no (or several) recipe lines for {path.name}"
    reproduces = rows[0].split("|")[2].strip()
    assert reproduces, path.name
    if path.name != "default.yaml":
        assert "configs/" in reproduces or "ViT_experiments/" in reproduces, path.name


def test_configs_default_is_the_packaged_default() -> None:
    """configs/default.yaml is what `us3l train` runs without --config, byte for byte (it once went stale)."""
    shipped = (ROOT / "configs" / "default.yaml").read_bytes()
    packaged = (ROOT / "us3l" / "configs" / "default.yaml").read_bytes()
    assert shipped == packaged, "configs/default.yaml differs from us3l/configs/default.yaml: copy the packaged one"
