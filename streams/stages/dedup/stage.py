"""dedup: drop exact and near copies of articles already seen; pass first sightings and updates through.

Rule, applied to each normalised article in sequence (the agent feeds one single-partition topic, so a copy
is caught whichever input partition it arrived on):

1. same article_id (canonical URL) and a revision already seen → Duplicate ``same_url``, similarity 1.0,
   ``duplicate_of`` = the canonical of its cluster (the article itself when it was published: a re-send;
   an older revision re-sent after a correction counts too, so ingestion stays idempotent);
2. same article_id, new revision → an update: Unique with ``dedup = {cluster_id kept, revision_number + 1,
   previous_revision, is_update: true}``; never compared with its own older text. (If that URL had been
   dropped as a copy, its new text is checked again against the *other* articles: still a copy → Duplicate,
   otherwise Unique as a first publication, ``is_update: false``, in a cluster of its own.)
3. another URL, identical normalised text (same ``revision``) → Duplicate ``same_content`` (syndication);
4. another URL, Jaccard similarity of word 3-shingles of title + text at or above ``threshold``, estimated
   by MinHash and found by LSH → Duplicate ``near``, similarity = the estimate (4 decimals);
5. otherwise first seen → Unique, ``dedup = {cluster_id: article_id, revision_number: 1,
   previous_revision: null, is_update: false}``.

Example (threshold 0.8): A = "https://a.example/x" with text T at 10:00 is Unique (cluster A). B at
"https://b.example/y" with text T is Duplicate(same_content, duplicate_of=A). C at "https://c.example/z" with
a new headline and an agency dateline on T (J ≈ 0.9) is Duplicate(near, similarity≈0.9, duplicate_of=A,
cluster_id=A).
A again with T is Duplicate(same_url, duplicate_of=A); A with T' (a correction) is Unique(revision_number=2).

Canonical and clusters. A cluster is named by its canonical's article_id (``cluster_id`` == the canonical's
article_id), and the canonical is the first article of the story that dedup *emitted*. Copies are indexed
too, so C near B near A joins A's cluster, but ``duplicate_of`` always names A. Canonical order is event
time (``published_at``, else ``ingested_at``) then ``source_priority`` (earlier in the tuple wins), and it is
applied when the decision is made: when a copy matches several clusters, it joins the one whose canonical
comes first in that order (then the higher similarity). Dedup cannot unpublish, so a copy that arrives later
with an *earlier* event time, or with the same event time from a preferred source, is still the duplicate;
the reorder hold in front of this function (``streams.stages.dedup.reorder``) makes that rare by deciding articles
that arrive close together in this same order.

State. ``articles`` (article_id → entry) and ``content`` (revision → article_id) are injected mappings of
JSON values (Faust tables in production, dicts in tests); an entry is about 0.9 KB (the 128-value signature
is 684 base64 characters). In memory there is only the LSH index (rensa, keyed by small integer slots), the
slot ↔ article_id maps and a heap for expiry; `DedupState.rebuild` recreates them from ``articles`` after a
restart. `expire` evicts by ingestion time (``ingested_at``, the raw record's Kafka timestamp: older than
``window_days`` before the watermark, the highest ingestion time seen, clamped to the clock so one record
dated 2099 cannot flush the index) and by ``max_entries`` (oldest first). Retention runs on ingestion rather
than publication time so that an archive article published years ago but ingested today still catches its
re-sends for the whole window; publication time orders canonicals. The agent calls it after each article;
it costs O(1) when nothing is due.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rensa

from streams.codec import parse_rfc3339, rfc3339, short_hash
from streams.outcomes import Duplicate, Unique
from streams.stages.dedup.shingles import (
    MinHasher,
    decode_signature,
    encode_signature,
    optimal_num_bands,
    similarity,
)

VERSION = "1"  # recorded under article["pipeline"]["dedup"]
MAX_KEPT_REVISIONS = 8  # older revisions of one URL remembered for re-sends and syndicated copies
_DAY_MS = 86_400_000
_SLOT_BITS = 32  # a heap item is event_ms << 32 | slot
_SLOT_MASK = (1 << _SLOT_BITS) - 1

# Memory of the in-memory index, fitted to RSS measurements of rensa 0.5.0 (bench/bench_dedup.py and 100k-1.5M
# keys): each band is a hash table whose buckets cost ~67 bytes, with capacity the next power of two above
# n * 8/7, plus ~8 bytes per key; so 95-165 bytes per band per article depending on where n falls between
# two doublings. Python side (CPython 3.11): slot dicts, slot list, event-time array, heap ~220 bytes.
LSH_BYTES_PER_BUCKET = 67
LSH_BYTES_PER_KEY = 8
PY_BYTES_PER_ENTRY = 220


@dataclass(frozen=True)
class DedupConfig:
    """Thresholds and bounds of the dedup stage (from Settings.dedup_* and source_priority)."""

    threshold: float = 0.8  # estimated Jaccard similarity at or above which a copy is a near duplicate
    window_days: float = 30.0  # entries ingested longer ago than this (before the watermark) leave the index
    max_entries: int = 2_000_000  # hard bound on the index; the oldest leave first
    num_perm: int = 128
    shingle_size: int = 3  # words per shingle
    source_priority: tuple[str, ...] = ()  # source ids/names; earlier wins ties on event time
    num_bands: int | None = None  # LSH bands; None chooses from the threshold (optimal_num_bands)
    max_candidates: int = 256  # LSH candidates verified per article at most (bounds latency on floods)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"dedup threshold must be in (0, 1], got {self.threshold}")
        if self.window_days <= 0 or self.max_entries < 1 or self.max_candidates < 1:
            raise ValueError("dedup window_days, max_entries and max_candidates must be positive")
        if self.num_bands is not None and (self.num_bands < 1 or self.num_perm % self.num_bands):
            raise ValueError(f"num_bands must divide num_perm ({self.num_perm}), got {self.num_bands}")

    @classmethod
    def from_settings(cls, s: Any) -> DedupConfig:
        return cls(
            threshold=float(s.dedup_threshold),
            window_days=float(s.dedup_window_days),
            max_entries=int(s.dedup_max_entries),
            num_perm=int(s.dedup_num_perm),
            shingle_size=int(s.dedup_shingle_size),
            source_priority=tuple(s.source_priority_list),
        )

    @property
    def window_ms(self) -> int:
        return int(self.window_days * _DAY_MS)

    @property
    def bands(self) -> int:
        return self.num_bands or optimal_num_bands(self.threshold, self.num_perm)


class DedupState:
    """The injected mappings (``articles``: article_id → entry, ``content``: revision → article_id) plus the
    in-memory LSH index over them, the expiry heap and the eviction counters."""

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
        self.lsh = rensa.RMinHashLSH(self.config.threshold, self.config.num_perm, self.num_bands)
        self._slot_of: dict[str, int] = {}
        self._id_of: list[str | None] = []
        self._free: list[int] = []
        self._slot_ms = array("q")  # event time (ms) of the article in each slot
        self._heap: list[int] = []  # event_ms << 32 | slot, the expiry order; stale items skipped when popped

    # --- in-memory index ---------------------------------------------------------------------------------

    def size(self) -> int:
        """Articles in the index."""
        return len(self._slot_of)

    def index_bytes_estimate(self) -> int:
        """Estimated bytes of the in-memory index (the mappings are on disk and not counted)."""
        return index_bytes(self.size(), self.num_bands)

    def rebuild(self) -> int:
        """Recreates the LSH index and the expiry heap from ``articles`` (after a restart); returns the count.

        Entries that cannot be read (not a dict, bad signature) are left in the mapping but not indexed.
        """
        self._reset_index()
        watermark: int | None = None
        heap = self._heap
        id_of = self._id_of
        slot_of = self._slot_of
        slot_ms = self._slot_ms
        batch: list[rensa.RMinHash] = []
        start = 0
        for article_id, entry in self.articles.items():
            try:
                event_ms = int(entry.get("seen_ms", entry["event_ms"]))  # the retention clock
                sig = entry.get("signature")
                mh = self.hasher.from_values(decode_signature(sig)) if sig else None
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            slot = len(id_of)
            id_of.append(article_id)
            slot_of[article_id] = slot
            slot_ms.append(max(event_ms, 0))
            heap.append(_heap_item(event_ms, slot))
            watermark = event_ms if watermark is None else max(watermark, event_ms)
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
            self.lsh.insert_many(batch, start)

    def _add(self, article_id: str, event_ms: int, mh: rensa.RMinHash | None) -> int:
        if article_id in self._slot_of:  # its entry vanished from the mapping behind our back
            self._release(self._slot_of[article_id])
        event_ms = max(event_ms, 0)
        slot = self._free.pop() if self._free else len(self._id_of)
        if slot == len(self._id_of):
            self._id_of.append(article_id)
            self._slot_ms.append(event_ms)
        else:
            self._id_of[slot] = article_id
            self._slot_ms[slot] = event_ms
        self._slot_of[article_id] = slot
        heapq.heappush(self._heap, _heap_item(event_ms, slot))
        if mh is not None:
            self.lsh.insert(slot, mh)
        return slot

    def _replace_signature(self, slot: int, mh: rensa.RMinHash | None) -> None:
        self.lsh.remove(slot)
        if mh is not None:
            self.lsh.insert(slot, mh)

    def _release(self, slot: int) -> str:
        article_id = self._id_of[slot]
        assert article_id is not None
        self.lsh.remove(slot)
        self._id_of[slot] = None
        del self._slot_of[article_id]
        self._free.append(slot)
        return article_id

    def _adopt(self, article_id: str, entry: dict[str, Any]) -> None:
        """Indexes an entry found in the mapping but not in memory (rebuild() was not called)."""
        sig = entry.get("signature")
        try:
            mh = self.hasher.from_values(decode_signature(sig)) if sig else None
        except ValueError:
            mh = None
        try:
            event_ms = int(entry.get("seen_ms", entry.get("event_ms", 0)))
        except (TypeError, ValueError):
            event_ms = 0  # unreadable: first to leave
        self._add(article_id, event_ms, mh)

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

    # --- decisions ---------------------------------------------------------------------------------------

    def rank(self, source_key: str) -> int:
        """Position of a source (source.id, else source.name) in source_priority; unlisted sources rank last."""
        return self._rank.get(source_key, len(self._rank))

    def order_of(self, article: dict[str, Any], default_ms: int = 2**62) -> tuple[int, int]:
        """Canonical order of an incoming article: (event time in ms, source rank); the reorder hold uses it.
        Without a usable time the article sorts at `default_ms`."""
        return (_event_ms(article, default_ms), self.rank(_source_key(article)))

    def observe(self, event_ms: int, now_ms: int) -> None:
        """Advances the watermark (the highest event time seen, never past the clock)."""
        seen = min(event_ms, now_ms)
        if self.watermark_ms is None or seen > self.watermark_ms:
            self.watermark_ms = seen

    def candidates(self, mh: rensa.RMinHash, exclude: int | None = None) -> Iterable[tuple[str, dict, float]]:
        """(article_id, entry, estimated similarity) of LSH candidates at or above the threshold."""
        slots = self.lsh.query(mh)
        if len(slots) > self.config.max_candidates:
            self.truncated_queries += 1
            slots = sorted(slots)[: self.config.max_candidates]
        if not slots:
            return
        digest = mh.digest()
        for slot in slots:
            if slot == exclude or slot >= len(self._id_of):
                continue
            article_id = self._id_of[slot]
            entry = self.articles.get(article_id) if article_id is not None else None
            if not isinstance(entry, dict) or not entry.get("signature"):
                continue
            try:
                sim = similarity(digest, decode_signature(entry["signature"]))
            except ValueError:
                continue
            if sim >= self.config.threshold:
                yield article_id, entry, sim  # type: ignore[misc]


def index_bytes(n: int, bands: int) -> int:
    """Estimated memory of an index of n articles with `bands` LSH bands (see the constants above)."""
    if n <= 0:
        return 0
    buckets = 1 << max(2, (n * 8 // 7).bit_length())
    return bands * (LSH_BYTES_PER_BUCKET * buckets + LSH_BYTES_PER_KEY * n) + PY_BYTES_PER_ENTRY * n


def _heap_item(event_ms: int, slot: int) -> int:
    if slot > _SLOT_MASK:
        raise OverflowError("more than 2**32 slots")
    return (max(event_ms, 0) << _SLOT_BITS) | slot


def dedup(article: dict[str, Any], *, state: DedupState, now: datetime) -> Unique | Duplicate:
    """Decides whether `article` (article.v1) is new, an update, or a copy; records it in `state`."""
    now_ms = _ms(now)
    article_id = str(article.get("article_id") or short_hash(str(article.get("canonical_url", ""))))
    text = str(article.get("text") or "")
    title = str(article.get("title") or "")
    revision = str(article.get("revision") or short_hash(text))
    event_ms = _event_ms(article, now_ms)
    seen_ms = _seen_ms(article, now_ms)
    source = _source_key(article)
    state.observe(seen_ms, now_ms)

    entry = state.articles.get(article_id)
    if isinstance(entry, dict):
        if article_id not in state._slot_of:
            state._adopt(article_id, entry)
        if revision == entry.get("revision") or revision in entry.get("previous_revisions", ()):
            number = int(entry.get("revision_number", 1))
            cluster = str(entry.get("cluster_id", article_id))
            return _duplicate(article, state, now, "same_url", 1.0, cluster, number, None)
        return _new_revision(article, state, now, entry, article_id, revision, title, text)

    mh = state.hasher.minhash(title, text)
    cluster_id, match, sim = _find_copy(state, revision, article_id, mh, exclude=None)
    new_entry = {
        "canonical_url": str(article.get("canonical_url", "")),
        "revision": revision,
        "revision_number": 1,
        "previous_revisions": [],
        "cluster_id": cluster_id or article_id,
        "event_ms": event_ms,
        "seen_ms": seen_ms,
        "source": source,
        "signature": encode_signature(mh.digest()) if mh is not None else "",
    }
    state.articles[article_id] = new_entry
    state._add(article_id, seen_ms, mh)
    if revision not in state.content:
        state.content[revision] = article_id
    if cluster_id is None:
        return Unique(_with_dedup(article, article_id, 1, None, False))
    return _duplicate(article, state, now, match, sim, cluster_id, 1, None)


def _new_revision(
    article: dict[str, Any],
    state: DedupState,
    now: datetime,
    entry: dict[str, Any],
    article_id: str,
    revision: str,
    title: str,
    text: str,
) -> Unique | Duplicate:
    slot = state._slot_of[article_id]
    mh = state.hasher.minhash(title, text)
    old_revision = str(entry.get("revision"))
    number = int(entry.get("revision_number", 1)) + 1
    kept = [*entry.get("previous_revisions", ()), old_revision]
    for dropped in kept[:-MAX_KEPT_REVISIONS]:
        if state.content.get(dropped) == article_id:
            del state.content[dropped]
    cluster_id = str(entry.get("cluster_id", article_id))
    was_published = cluster_id == article_id
    match, sim, copy_of = "near", 0.0, None
    if not was_published:
        # This URL was dropped as a copy; its new text may have become original.
        copy_of, match, sim = _find_copy(state, revision, article_id, mh, exclude=slot)
        cluster_id = copy_of or article_id
    state.articles[article_id] = {
        **entry,
        "revision": revision,
        "revision_number": number,
        "previous_revisions": kept[-MAX_KEPT_REVISIONS:],
        "cluster_id": cluster_id,
        "signature": encode_signature(mh.digest()) if mh is not None else "",
    }
    state._replace_signature(slot, mh)
    if revision not in state.content:
        state.content[revision] = article_id
    if copy_of is not None:
        return _duplicate(article, state, now, match, sim, copy_of, number, old_revision)
    return Unique(_with_dedup(article, cluster_id, number, old_revision, was_published))


def _find_copy(
    state: DedupState, revision: str, article_id: str, mh: rensa.RMinHash | None, exclude: int | None
) -> tuple[str | None, str, float]:
    """(cluster_id, match kind, similarity) of the cluster this text copies, or (None, "", 0.0)."""
    other = state.content.get(revision)
    if other is not None and other != article_id:
        other_entry = state.articles.get(other)
        if isinstance(other_entry, dict):
            return str(other_entry.get("cluster_id", other)), "same_content", 1.0
    if mh is None:
        return None, "", 0.0
    best: dict[str, float] = {}  # cluster_id -> best similarity of a member
    for _, entry, sim in state.candidates(mh, exclude=exclude):
        cluster = str(entry["cluster_id"])
        if sim > best.get(cluster, -1.0):
            best[cluster] = sim
    if not best:
        return None, "", 0.0
    chosen = min(best, key=lambda c: (*_canonical_order(state, c), -best[c], c))
    return chosen, "near", round(best[chosen], 4)


def _canonical_order(state: DedupState, cluster_id: str) -> tuple[int, int]:
    """(event time, source rank) of a cluster's canonical; an evicted canonical sorts last."""
    canon = state.articles.get(cluster_id)
    if not isinstance(canon, dict):
        return (2**62, len(state.config.source_priority))
    return (int(canon.get("event_ms", 0)), state.rank(str(canon.get("source", ""))))


def _with_dedup(
    article: dict[str, Any], cluster_id: str, number: int, previous: str | None, is_update: bool
) -> dict[str, Any]:
    out = dict(article)
    out["dedup"] = {
        "cluster_id": cluster_id,
        "revision_number": number,
        "previous_revision": previous,
        "is_update": is_update,
    }
    pipeline = article.get("pipeline")
    out["pipeline"] = {**(pipeline if isinstance(pipeline, dict) else {}), "dedup": VERSION}
    return out


def _duplicate(
    article: dict[str, Any],
    state: DedupState,
    now: datetime,
    match: str,
    sim: float,
    cluster_id: str,
    number: int,
    previous: str | None,
) -> Duplicate:
    canon = state.articles.get(cluster_id)
    canon_url = canon.get("canonical_url") if isinstance(canon, dict) else None
    record = {
        "schema": "duplicate.v1",
        "article_id": str(article.get("article_id", "")),
        "canonical_url": str(article.get("canonical_url", "")),
        "duplicate_of": cluster_id,
        "duplicate_of_url": canon_url,
        "match": match,
        "similarity": sim,
        "cluster_id": cluster_id,
        "revision": str(article.get("revision", "")),
        "detected_at": rfc3339(now),
        "article": _with_dedup(article, cluster_id, number, previous, False),
    }
    return Duplicate(record)


def expire(state: DedupState, *, watermark_ms: int | None = None) -> list[str]:
    """Evicts entries older than the window before the watermark, then the oldest beyond max_entries.

    `watermark_ms` (event time, ms) raises the state's watermark when given. Returns the evicted
    article_ids; `state.evictions` counts them by cause ("window", "capacity").
    """
    if watermark_ms is not None and (state.watermark_ms is None or watermark_ms > state.watermark_ms):
        state.watermark_ms = watermark_ms
    evicted: list[str] = []
    heap = state._heap
    if state.watermark_ms is not None:
        cutoff = state.watermark_ms - state.config.window_ms
        while heap and (heap[0] >> _SLOT_BITS) < cutoff:
            item = heapq.heappop(heap)
            if state._is_live(item):
                evicted.append(state._evict(item & _SLOT_MASK))
                state.evictions["window"] += 1
    while state.size() > state.config.max_entries and heap:
        item = heapq.heappop(heap)
        if state._is_live(item):
            evicted.append(state._evict(item & _SLOT_MASK))
            state.evictions["capacity"] += 1
    return evicted


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _first_time_ms(article: dict[str, Any], fields: tuple[str, ...], now_ms: int) -> int:
    """The first of `fields` that holds an RFC 3339 time, in ms since the epoch; else the clock."""
    for field in fields:
        value = article.get(field)
        if isinstance(value, str) and value:
            try:
                return _ms(parse_rfc3339(value))
            except (ValueError, OverflowError):
                continue
    return now_ms


def _event_ms(article: dict[str, Any], now_ms: int) -> int:
    """published_at, else ingested_at, else the clock: orders canonicals."""
    return _first_time_ms(article, ("published_at", "ingested_at"), now_ms)


def _seen_ms(article: dict[str, Any], now_ms: int) -> int:
    """When the pipeline first saw the article (ingested_at, else the clock): the retention clock."""
    return _first_time_ms(article, ("ingested_at",), now_ms)


def _source_key(article: dict[str, Any]) -> str:
    source = article.get("source")
    if not isinstance(source, dict):
        return ""
    return str(source.get("id") or source.get("name") or "")
