"""Fixtures shared by every tier: paths to the seed and to ../shared/data; the integration marker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SEED = SHARED / "seed" / "aggregated_article.txt"
DATA = SHARED / "data"
INTEGRATION = Path(__file__).resolve().parent / "integration"


def need_shared(path: Path) -> Path:
    """The path under ../shared, which a clone outside this workplace lacks: those tests skip there and say
    why, but in CI (CI set) ../shared must be present, so a missing one fails instead of skipping silently."""
    if not path.exists():
        message = f"{path} is missing: this test needs ../shared beside the checkout (seed and real news data)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def bbc_rows(n: int) -> list[dict[str, Any]]:
    """The first n rows of the BBC corpus (../shared/data), its 100 natural exact duplicates left out."""
    rows = []
    with open(need_shared(DATA / "bbc_news_fulltext.jsonl"), "rb") as f:
        for line in f:
            row = orjson.loads(line)
            if row.get("exact_duplicate_of") is None:
                rows.append(row)
            if len(rows) == n:
                break
    assert len(rows) == n, f"the BBC corpus has {len(rows)} rows, not {n}"
    return rows


@pytest.fixture
def seed_text() -> str:
    return need_shared(SEED).read_text(encoding="utf-8")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration talks to the real broker: mark it so (`-m "not integration"`)."""
    for item in items:
        if INTEGRATION in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
