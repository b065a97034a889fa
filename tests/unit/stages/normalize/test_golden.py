"""Golden outputs: the seed and our own articles normalise to exactly the documents stored in tests/fixtures/golden.

These pin every field, so a speed-up (or a new dependency) that changes any output byte fails here. The seed's
text is not copied into the repository: its golden documents hold the SHA-256 of `text` and `html` instead
(`revision` already hashes the text). Regenerate after an intended change with

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/stages/normalize/test_golden.py

and say in the commit why the output changed.
"""

from __future__ import annotations

import hashlib
import html
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import SEED, need_shared
from tests.factories.raw import OWN_TITLE, article, own_aggregated_html, own_aggregated_text, raw_event

GOLDEN = Path(__file__).resolve().parents[3] / "fixtures" / "golden"
SEED_URL = "https://aggregator.example.com/world/zelenskyy-rejects-land-cession?utm_source=x#top"
HASHED = ("text", "html")


def seed() -> str:
    return need_shared(SEED).read_text(encoding="utf-8")


def seed_page(text: str) -> str:
    """The seed as a scraper would fetch it: a page with furniture around one <p> per paragraph."""
    paragraphs = "\n".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip())
    title = html.escape(text.splitlines()[0])
    return (
        f'<!DOCTYPE html><html lang="en"><head><title>{title} | Aggregator</title>'
        '<script>var t = "TRACKER";</script></head><body><nav><a href="/">Home</a></nav>'
        f"<article>{paragraphs}</article><footer><p>Copyright Aggregator</p></footer></body></html>"
    )


def hashed(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    for name in HASHED:
        if isinstance(out.get(name), str):
            out[name] = {"sha256": hashlib.sha256(out[name].encode()).hexdigest(), "chars": len(out[name])}
    return out


CASES: dict[str, Callable[[], tuple[dict[str, Any], bool]]] = {
    # name -> (raw event, whether the stored document hashes text and html)
    "seed_text": lambda: (raw_event(url=SEED_URL, title=seed().splitlines()[0], body=seed(), event_id=None), True),
    "seed_text_untitled": lambda: (raw_event(url=SEED_URL, title=None, body=seed()), True),
    "seed_html_page": lambda: (raw_event(url=SEED_URL, title=None, body=seed_page(seed()), body_format="html"), True),
    "own_text": lambda: (raw_event(title=OWN_TITLE, body=own_aggregated_text()), False),
    "own_html": lambda: (raw_event(title=None, body=own_aggregated_html(), body_format="html"), False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_is_byte_for_byte_the_golden_document(name: str) -> None:
    event, hash_fields = CASES[name]()
    doc = article(event)
    got = hashed(doc) if hash_fields else doc
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(orjson.dumps(got, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    expected = orjson.loads(path.read_bytes())
    assert got == expected
