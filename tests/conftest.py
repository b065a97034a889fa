"""Fixtures shared by every tier: paths to the seed and to ../shared/data, and a fresh metrics registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SEED = SHARED / "seed" / "aggregated_article.txt"
DATA = SHARED / "data"
IN_CI = bool(os.environ.get("CI"))


def need_shared(path: Path) -> Path:
    """Skip (with the reason) when ../shared is absent, as in a clone outside this workplace."""
    if not path.exists():
        pytest.skip(f"{path} is missing: this test needs ../shared beside the checkout (seed and real news data)")
    return path


@pytest.fixture
def seed_text() -> str:
    return need_shared(SEED).read_text(encoding="utf-8")


@pytest.fixture
def data_dir() -> Path:
    return need_shared(DATA)
