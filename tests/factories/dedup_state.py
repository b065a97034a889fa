"""Factories for dedup's state, shared by the unit tests and bench/bench_dedup.py: JSON tables, synthetic
entries, and the memory a process takes (RSS: what the machine gives, whoever allocated it)."""

from __future__ import annotations

import base64
import os
import random
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson

from streams.codec import short_hash


class JsonTable(MutableMapping[str, Any]):
    """A dict of JSON text: every read decodes, every write encodes, like a Faust table's JSON values.

    Kept as str: a million live orjson.dumps() bytes objects fragment glibc's heap to ~8 KB each (orjson
    allocates a large buffer, then shrinks it in place), which would swamp memory figures.
    """

    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    def __getitem__(self, key: str) -> Any:
        return orjson.loads(self._data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = orjson.dumps(value).decode()

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def raw_bytes(self) -> int:
        """Bytes of JSON stored (values only)."""
        return sum(len(v) for v in self._data.values())


def prefill(
    n: int,
    articles: MutableMapping[str, Any],
    content: MutableMapping[str, Any],
    num_perm: int,
    *,
    base_ms: int,
    seed: int = 1,
) -> None:
    """Writes n synthetic entries (random signatures, the stage's entry fields) and their revisions.

    Ingestion times start at `base_ms` and advance 0.5 s per entry."""
    rng = random.Random(seed)
    for i in range(n):
        aid = f"{rng.getrandbits(128):032x}"
        rev = f"{rng.getrandbits(128):032x}"
        at = base_ms + i * 500
        articles[aid] = {
            "canonical_url": f"https://www.site{i % 997}.example/news/2025/08/{i}",
            "revision": rev,
            "revision_number": 1,
            "previous_revisions": [],
            "cluster_id": aid,
            "event_ms": at,
            "seen_ms": at,
            "source": f"site{i % 997}",
            "minhash": base64.b64encode(rng.randbytes(4 * num_perm)).decode("ascii"),
            "shingles": 200 + i % 400,
        }
        content[rev] = aid


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def archive_entry(i: int, now_ms: int, **fields: Any) -> tuple[str, str, dict[str, Any]]:
    """(article_id, revision, dedup-articles entry) of archived article `i`, as the integration tests write
    them straight into the changelogs; `fields` adds the signature fields a test needs."""
    url = f"https://archive.example/{i}"
    aid, rev = short_hash(url), short_hash(f"text {i}")
    entry = {
        "canonical_url": url,
        "revision": rev,
        "revision_number": 1,
        "previous_revisions": [],
        "cluster_id": aid,
        "event_ms": now_ms,
        "seen_ms": now_ms,
        "source": "archive",
        **fields,
    }
    return aid, rev, entry
