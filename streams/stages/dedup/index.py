"""dedup's in-memory index over its tables: LSH over the stored signatures, slots, the expiry heap, its size.

`DedupState` wraps the injected mappings (``articles``: article_id → entry, ``content``: revision →
article_id; Faust tables in production, dicts in tests) and keeps in memory only what finds candidates fast:
the LSH index (rensa, keyed by small integer slots), the slot ↔ article_id maps and a heap for expiry.
`rebuild()` recreates them from ``articles`` after a restart.

Expiry (`expire()`) evicts by ingestion time (``seen_ms``: older than ``window_days`` before the watermark,
the highest ingestion time seen, clamped to the clock so one record dated 2099 cannot flush the index) and by
``max_entries`` (oldest first). For example, with a 30-day window, an entry ingested on 1 August leaves once
an article ingested after 31 August has been seen. Nothing due costs O(1).
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterator, MutableMapping
from typing import Any

import rensa

from streams.stages.dedup import article as fields
from streams.stages.dedup.config import DedupConfig
from streams.stages.dedup.shingles import MinHasher, decode_signature, similarity

_SLOT_BITS = 32  # a heap item is seen_ms << 32 | slot
_SLOT_MASK = (1 << _SLOT_BITS) - 1

# Memory of the in-memory index, fitted to RSS measurements of rensa 0.5.0 (bench/bench_dedup.py and 100k-1.5M
# keys): each band is a hash table whose buckets cost ~67 bytes, with capacity the next power of two above
# n * 8/7, plus ~8 bytes per key; so 95-165 bytes per band per article depending on where n falls between
# two doublings. Python side (CPython 3.11): slot dicts, slot list, event-time array, heap ~220 bytes.
LSH_BYTES_PER_BUCKET = 67
LSH_BYTES_PER_KEY = 8
PY_BYTES_PER_ENTRY = 220


def index_bytes(n: int, bands: int) -> int:
    """Estimated memory of an index of n articles with `bands` LSH bands (see the constants above)."""
    if n <= 0:
        return 0
    buckets = 1 << max(2, (n * 8 // 7).bit_length())
    return bands * (LSH_BYTES_PER_BUCKET * buckets + LSH_BYTES_PER_KEY * n) + PY_BYTES_PER_ENTRY * n


class DedupState:
    """The injected mappings plus the in-memory LSH index over them, the expiry heap and the eviction counters."""

    def __init__(
        self,
        config: DedupConfig,
        articles: MutableMapping[str, Any],
        content: MutableMapping[str, Any],
    ) -> None:
        self.config = config
        self.articles = articles
        self.content = content
        self.hasher = MinHasher(config.num_perm, config.shingle_size)
        self.num_bands = config.bands
        self._rank = {name: i for i, name in enumerate(config.source_priority)}
        self.evictions: dict[str, int] = {"window": 0, "capacity": 0}  # cumulative, for metrics
        self.truncated_queries = 0  # articles whose LSH candidates exceeded max_candidates
        self.watermark_ms: int | None = None
        self._reset_index()

    def _reset_index(self) -> None:
        self._lsh = rensa.RMinHashLSH(self.config.threshold, self.config.num_perm, self.num_bands)
        self._slot_of: dict[str, int] = {}
        self._id_of: list[str | None] = []
        self._free: list[int] = []
        self._slot_ms = array("q")  # ingestion time (ms) of the article in each slot
        self._heap: list[int] = []  # seen_ms << 32 | slot, the expiry order; stale items skipped when popped

    # --- size ----------------------------------------------------------------------------------------------

    def size(self) -> int:
        """Articles in the index."""
        return len(self._slot_of)

    def slots(self) -> int:
        """Slots allocated (live + free): stays near the largest size the index has had."""
        return len(self._id_of)

    def index_bytes_estimate(self) -> int:
        """Estimated bytes of the in-memory index (the mappings are on disk and not counted)."""
        return index_bytes(self.size(), self.num_bands)

    def __contains__(self, article_id: object) -> bool:
        """Whether `article_id` is in the in-memory index (its entry may be in the mapping without it)."""
        return article_id in self._slot_of

    # --- building ------------------------------------------------------------------------------------------

    def rebuild(self) -> int:
        """Recreates the LSH index and the expiry heap from ``articles`` (after a restart); returns the count.

        Entries that cannot be read (not a dict, bad signature) are left in the mapping but not indexed.
        """
        self._reset_index()
        watermark: int | None = None
        heap, id_of, slot_of, slot_ms = self._heap, self._id_of, self._slot_of, self._slot_ms
        batch: list[rensa.RMinHash] = []
        start = 0
        for article_id, entry in self.articles.items():
            try:
                seen = int(entry.get("seen_ms", entry["event_ms"]))  # the retention clock
                sig = entry.get("signature")
                mh = self.hasher.from_values(decode_signature(sig)) if sig else None
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            slot = len(id_of)
            id_of.append(article_id)
            slot_of[article_id] = slot
            slot_ms.append(max(seen, 0))
            heap.append(_heap_item(seen, slot))
            watermark = seen if watermark is None else max(watermark, seen)
            if mh is None:  # no words: known by URL and content only
                self._flush(batch, start)
                batch, start = [], slot + 1
            else:
                batch.append(mh)
                if len(batch) >= 4096:
                    self._flush(batch, start)
                    batch, start = [], slot + 1
        self._flush(batch, start)
        heapq.heapify(heap)
        self.watermark_ms = watermark
        return len(id_of)

    def _flush(self, batch: list[rensa.RMinHash], start: int) -> None:
        if batch:
            self._lsh.insert_many(batch, start)

    def add(self, article_id: str, seen_ms: int, mh: rensa.RMinHash | None) -> None:
        """Indexes a new entry (`mh` None: no words, known by URL and content only)."""
        if article_id in self._slot_of:  # its entry vanished from the mapping behind our back
            self._release(self._slot_of[article_id])
        seen_ms = max(seen_ms, 0)
        slot = self._free.pop() if self._free else len(self._id_of)
        if slot == len(self._id_of):
            self._id_of.append(article_id)
            self._slot_ms.append(seen_ms)
        else:
            self._id_of[slot] = article_id
            self._slot_ms[slot] = seen_ms
        self._slot_of[article_id] = slot
        heapq.heappush(self._heap, _heap_item(seen_ms, slot))
        if mh is not None:
            self._lsh.insert(slot, mh)

    def replace_signature(self, article_id: str, mh: rensa.RMinHash | None) -> None:
        """A new revision of an indexed article: its old signature leaves the LSH index, the new one enters."""
        slot = self._slot_of[article_id]
        self._lsh.remove(slot)
        if mh is not None:
            self._lsh.insert(slot, mh)

    def adopt(self, article_id: str, entry: dict[str, Any]) -> None:
        """Indexes an entry found in the mapping but not in memory (rebuild() was not called)."""
        sig = entry.get("signature")
        try:
            mh = self.hasher.from_values(decode_signature(sig)) if sig else None
        except ValueError:
            mh = None
        try:
            seen = int(entry.get("seen_ms", entry.get("event_ms", 0)))
        except (TypeError, ValueError):
            seen = 0  # unreadable: first to leave
        self.add(article_id, seen, mh)

    def _release(self, slot: int) -> str:
        article_id = self._id_of[slot]
        assert article_id is not None
        self._lsh.remove(slot)
        self._id_of[slot] = None
        del self._slot_of[article_id]
        self._free.append(slot)
        return article_id

    # --- queries -------------------------------------------------------------------------------------------

    def rank(self, source_key: str) -> int:
        """Position of a source (source.id, else source.name) in source_priority; unlisted sources rank last."""
        return self._rank.get(source_key, len(self._rank))

    def order_of(self, article: dict[str, Any], default_ms: int = 2**62) -> tuple[int, int]:
        """Canonical order of an incoming article: (event time in ms, source rank); the reorder hold uses it.
        Without a usable time the article sorts at `default_ms`."""
        return (fields.event_ms(article, default_ms), self.rank(fields.source_key(article)))

    def observe(self, seen_ms: int, now_ms: int) -> None:
        """Advances the watermark (the highest ingestion time seen, never past the clock)."""
        seen = min(seen_ms, now_ms)
        if self.watermark_ms is None or seen > self.watermark_ms:
            self.watermark_ms = seen

    def candidates(self, mh: rensa.RMinHash, exclude: str | None = None) -> Iterator[tuple[str, dict[str, Any], float]]:
        """(article_id, entry, estimated similarity) of LSH candidates at or above the threshold, but `exclude`."""
        slots = self._lsh.query(mh)
        if len(slots) > self.config.max_candidates:
            self.truncated_queries += 1
            slots = sorted(slots)[: self.config.max_candidates]
        if not slots:
            return
        digest = mh.digest()
        for slot in slots:
            if slot >= len(self._id_of):
                continue
            article_id = self._id_of[slot]
            if article_id is None or article_id == exclude:
                continue
            entry = self.articles.get(article_id)
            if not isinstance(entry, dict) or not entry.get("signature"):
                continue
            try:
                sim = similarity(digest, decode_signature(entry["signature"]))
            except ValueError:
                continue
            if sim >= self.config.threshold:
                yield article_id, entry, sim

    # --- expiry --------------------------------------------------------------------------------------------

    def expire(self, *, watermark_ms: int | None = None) -> list[str]:
        """Evicts entries older than the window before the watermark, then the oldest beyond max_entries.

        `watermark_ms` (ingestion time, ms) raises the watermark when given. Returns the evicted article_ids;
        `evictions` counts them by cause ("window", "capacity").
        """
        if watermark_ms is not None and (self.watermark_ms is None or watermark_ms > self.watermark_ms):
            self.watermark_ms = watermark_ms
        evicted: list[str] = []
        heap = self._heap
        if self.watermark_ms is not None:
            cutoff = self.watermark_ms - self.config.window_ms
            while heap and (heap[0] >> _SLOT_BITS) < cutoff:
                item = heapq.heappop(heap)
                if self._is_live(item):
                    evicted.append(self._evict(item & _SLOT_MASK))
                    self.evictions["window"] += 1
        while self.size() > self.config.max_entries and heap:
            item = heapq.heappop(heap)
            if self._is_live(item):
                evicted.append(self._evict(item & _SLOT_MASK))
                self.evictions["capacity"] += 1
        return evicted

    def _evict(self, slot: int) -> str:
        article_id = self._release(slot)
        entry = self.articles.pop(article_id, None)
        if isinstance(entry, dict):
            for rev in [entry.get("revision"), *entry.get("previous_revisions", ())]:
                if rev is not None and self.content.get(rev) == article_id:
                    del self.content[rev]
        return article_id

    def _is_live(self, item: int) -> bool:
        """Whether a heap item still describes its slot's article (a released slot leaves a stale item)."""
        slot = item & _SLOT_MASK
        return self._id_of[slot] is not None and self._slot_ms[slot] == item >> _SLOT_BITS


def _heap_item(seen_ms: int, slot: int) -> int:
    if slot > _SLOT_MASK:
        raise OverflowError("more than 2**32 slots")
    return (max(seen_ms, 0) << _SLOT_BITS) | slot
