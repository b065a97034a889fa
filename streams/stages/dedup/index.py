"""dedup's in-memory index over its tables: compact LSH over the signatures, slots, the expiry heap, its size.

`DedupState` wraps the injected mappings (``articles``: article_id → entry, ``content``: revision →
article_id; Faust tables in production, dicts in tests) and keeps in memory only what finds and screens
candidates, in numpy arrays with no Python object per article (about 260 bytes per article at 1M):

- per slot (one per indexed article): its id (16 bytes), ingestion time (ms), generation, distinct-shingle
  count, and a 4-bit-per-value sketch of its signature (32 bytes for 64 values);
- LSH: ``lsh_bands`` open-addressing tables of 8-byte cells (band key, slot and generation), the band key a
  hash of ``lsh_rows`` consecutive signature values. Few rows per band make pairs with a Jaccard
  similarity as low as 0.4 candidates (containment, see `candidates`); the sketch screens them without a
  table read, exactly (a sketch never agrees less than the signature), and the survivors' full signatures
  are read from their entries;
- an article_id → slot map (open addressing, backward-shift deletion) and a binary heap of slots by
  ingestion time.

A revision or an eviction bumps the slot's generation instead of deleting postings; queries skip postings
of another generation, and a rehash drops them when the tables fill up.

Expiry (`expire()`) evicts by ingestion time (``seen_ms``: older than ``window_days`` before the watermark,
the highest ingestion time seen, clamped to the clock so one record dated 2099 cannot flush the index) and by
``max_entries`` (oldest first). For example, with a 30-day window, an entry ingested on 1 August leaves once
an article ingested after 31 August has been seen. Nothing due costs O(1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any, NamedTuple

import numpy as np

from streams.stages.dedup import article as fields
from streams.stages.dedup import kernels
from streams.stages.dedup.config import DedupConfig
from streams.stages.dedup.shingles import SCHEME, MinHasher, Signature, containment, decode_signature, similarity
from streams.stages.dedup.snapshot import Snapshot

_MIN_CAPACITY = 256  # slots allocated at first
_GROWTH = 1.5  # slot arrays and LSH tables grow by this factor
_LSH_LOAD = 0.75  # LSH cells per posting after a rebuild or a growth: 1 / 0.75
_LSH_MAX_LOAD = 0.85  # live + stale postings beyond this share of the cells trigger a rehash
_ID_LOAD = 0.7  # id-map cells per slot: 1 / 0.7
_REBUILD_CHUNK = 16_384  # entries decoded at once by rebuild()
_HEX32 = re.compile(r"[0-9a-f]{32}")
_NO_VALUES = np.empty(0, dtype=np.uint32)  # an article without a signature, for kernels.insert
_NO_KEYS = np.empty(0, dtype=np.uint32)


def _is_hex(text: str) -> bool:
    return _HEX32.fullmatch(text) is not None


class Match(NamedTuple):
    """A candidate that passed the rule: its entry, the estimated Jaccard similarity and containment."""

    article_id: str
    entry: dict[str, Any]
    similarity: float
    containment: float  # the larger of the two directions (copy in it, it in the copy)


def signature_of(entry: dict[str, Any], hasher: MinHasher) -> Signature | None:
    """The signature stored in an entry (scheme `SCHEME`), or None (no words, or another scheme)."""
    sig = entry.get("minhash")
    if not sig:
        return None
    return hasher.from_values(decode_signature(sig), int(entry.get("shingles") or 1))


class DedupState:
    """The injected mappings plus the in-memory index over them, the expiry heap and the eviction counters."""

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
        kernels.warm_up()
        self.num_bands = config.lsh_bands
        self._rows = config.lsh_rows
        self._rank = {name: i for i, name in enumerate(config.source_priority)}
        # a pair passes if J >= threshold, or J >= containment_min_similarity and containment >= its threshold;
        # a sketch agreeing on fewer values than the lower of the two J bounds cannot pass
        self._min_agree = math.ceil(min(config.threshold, config.containment_min_similarity) * config.num_perm - 1e-9)
        self.evictions: dict[str, int] = {"window": 0, "capacity": 0}  # cumulative, for metrics
        self.truncated_queries = 0  # articles whose LSH candidates exceeded max_candidates
        self.watermark_ms: int | None = None
        self._window_ms = config.window_ms
        self._last_keys: tuple[Signature, np.ndarray] | None = None
        self._rebuilding = False
        self._reset_index(_MIN_CAPACITY, 0)

    def _reset_index(self, capacity: int, postings: int) -> None:
        cap = max(capacity, _MIN_CAPACITY)
        if cap > kernels.MAX_SLOTS:
            raise OverflowError(f"the dedup index holds at most {kernels.MAX_SLOTS:,} articles")
        self._cap = cap
        self._ids = np.zeros((cap, 16), dtype=np.uint8)
        self._seen = np.zeros(cap, dtype=np.int64)  # ingestion time (ms) of each slot's article
        self._gen = np.zeros(cap, dtype=np.uint8)
        self._alive = np.zeros(cap, dtype=np.uint8)
        self._nsh = np.zeros(cap, dtype=np.uint16)  # distinct shingles (capped at 65,535), 0 = no signature
        self._sketch = np.zeros((cap, (self.config.num_perm + 1) // 2), dtype=np.uint8)
        self._heap = np.zeros(cap, dtype=np.int32)  # slots by ingestion time; dead slots leave when popped
        self._heap_n = 0
        self._free = np.zeros(cap, dtype=np.int32)  # a stack of freed slots
        self._free_n = 0
        self._used = 0  # slots ever handed out (the high-water mark)
        self._size = 0  # live articles
        icap = int(cap / _ID_LOAD) + 1
        self._ikeys = np.zeros(icap, dtype=np.uint64)
        self._ivals = np.zeros(icap, dtype=np.uint32)
        self._odd: dict[int, str] = {}  # slot -> article_id for ids that are not 32 hex digits
        self._cells = np.zeros((self.num_bands, max(int(postings / _LSH_LOAD) + 1, 64)), dtype=np.uint64)
        self._occupied = 0  # postings in the tables per band, live or stale
        self._live_postings = 0  # live slots with a signature

    # --- size ----------------------------------------------------------------------------------------------

    def size(self) -> int:
        """Articles in the index."""
        return self._size

    def slots(self) -> int:
        """Slots handed out (live, freed or waiting to be freed): stays near the largest size the index had."""
        return self._used

    def index_bytes_estimate(self) -> int:
        """Bytes of the in-memory index: every array it holds (the mappings are on disk and not counted)."""
        arrays = (
            self._ids,
            self._seen,
            self._gen,
            self._alive,
            self._nsh,
            self._sketch,
            self._heap,
            self._free,
            self._ikeys,
            self._ivals,
            self._cells,
        )
        return sum(a.nbytes for a in arrays)

    def __contains__(self, article_id: object) -> bool:
        """Whether `article_id` is in the in-memory index (its entry may be in the mapping without it)."""
        return isinstance(article_id, str) and self._find(article_id) >= 0

    # --- ids -------------------------------------------------------------------------------------------------

    @staticmethod
    def _id_bytes(article_id: str) -> tuple[np.ndarray, np.uint64, bool]:
        """(16 bytes, map key, whether the id is not 32 hex digits and is kept in `_odd` too)."""
        odd = not (len(article_id) == 32 and _is_hex(article_id))
        if not odd:
            raw = bytes.fromhex(article_id)
        else:
            raw = hashlib.blake2b(article_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        full = np.frombuffer(raw, dtype=np.uint8)
        # the map key folds all 16 bytes (ids that share a prefix must not share a home cell)
        return full, np.uint64(int.from_bytes(raw[:8], "little") ^ int.from_bytes(raw[8:], "little")), odd

    def _find(self, article_id: str) -> int:
        full, key, _ = self._id_bytes(article_id)
        return int(kernels.id_find(self._ikeys, self._ivals, self._ids, key, full))

    def _article_id(self, slot: int) -> str:
        odd = self._odd.get(slot)
        return odd if odd is not None else self._ids[slot].tobytes().hex()

    # --- building ------------------------------------------------------------------------------------------

    def rebuild(self) -> int:
        """Recreates the index and the expiry heap from ``articles`` (after a restart); returns the count.

        Entries that cannot be read (not a dict, no time) are left in the mapping but not indexed; an entry
        whose signature is unreadable or of another scheme is indexed without one (found by URL and content).
        Works in chunks, so that memory beyond the index itself stays a few MB whatever the count.
        """
        try:
            expected = len(self.articles)
        except TypeError:
            expected = _MIN_CAPACITY
        self._reset_index(int(expected * 1.02) + 16, expected)
        self._rebuilding = True
        self.watermark_ms = None
        p = self.config.num_perm
        values = np.zeros((_REBUILD_CHUNK, p), dtype=np.uint32)
        signed = np.zeros(_REBUILD_CHUNK, dtype=np.int64)
        hexes: list[str] = []
        first = 0  # the chunk's first slot
        n_signed = 0
        for article_id, entry in self.articles.items():
            try:
                seen = max(int(entry.get("seen_ms", entry["event_ms"])), 0)  # the retention clock
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            slot = self._alloc()
            article_id = str(article_id)
            if len(article_id) == 32 and _is_hex(article_id):
                hexes.append(article_id)
            else:
                hexes.append("00" * 16)  # placeholder, overwritten below
                self._odd[slot] = article_id
            self._seen[slot] = seen
            self._alive[slot] = 1
            try:
                sig = entry.get("minhash")
                raw = base64.b64decode(sig, validate=True) if sig else b""
            except (binascii.Error, TypeError, ValueError):
                raw = b""
            if len(raw) == 4 * p:
                values[n_signed] = np.frombuffer(raw, dtype="<u4")
                signed[n_signed] = slot
                n_signed += 1
                try:
                    self._nsh[slot] = min(max(int(entry.get("shingles") or 1), 1), 65_535)
                except (TypeError, ValueError):
                    self._nsh[slot] = 1
            if len(hexes) == _REBUILD_CHUNK or n_signed == _REBUILD_CHUNK:
                self._rebuilt_chunk(first, hexes, values[:n_signed], signed[:n_signed])
                first, hexes, n_signed = slot + 1, [], 0
        self._rebuilt_chunk(first, hexes, values[:n_signed], signed[:n_signed])
        return self._finish_rebuild()

    def rebuild_from_snapshot(self, snapshot: Snapshot, changed: Iterable[str] = ()) -> int:
        """Builds the index from a snapshot's columns (no JSON, no base64), as `rebuild` would from the
        tables the snapshot was written from; returns the count. The tables must hold the same entries
        (`snapshot.load_tables`): decisions read candidates' entries from them.

        `changed`: article_ids whose entries may differ in the tables from the snapshot's (the changelog
        records replayed after it: new articles, revisions, evictions). Each is indexed again from its
        table entry, or leaves the index when the table no longer has it, so the index is the one
        `rebuild` would make from the tables as they are now."""
        expected = int(snapshot.manifest["counts"]["articles"])
        self._reset_index(int(expected * 1.02) + 16, expected)
        self._rebuilding = True
        self.watermark_ms = None
        for cols in snapshot.articles():
            n = len(cols.keys)
            if self._used + n > self._cap:
                while self._used + n > self._cap:
                    self._grow_slots()
            first = self._used
            self._used += n
            seen = cols.seen_ms.astype(np.int64)
            no_seen = cols.header.get("missing", {}).get("seen_ms", [])
            if no_seen:
                seen[no_seen] = cols.arrays["event_ms"][no_seen]
            self._seen[first : first + n] = np.maximum(seen, 0)
            self._alive[first : first + n] = 1
            signed_rows = np.flatnonzero(cols.signed)
            self._nsh[first + signed_rows] = np.clip(cols.shingles[signed_rows], 1, 65_535)
            hexes = []
            for i, key in enumerate(cols.keys):
                if len(key) == 32 and _is_hex(key):
                    hexes.append(key)
                else:
                    hexes.append("00" * 16)
                    self._odd[first + i] = key
            values = np.ascontiguousarray(cols.minhash[signed_rows], dtype=np.uint32)
            self._rebuilt_chunk(first, hexes, values, (first + signed_rows).astype(np.int64))
        self._finish_rebuild()
        touched = False
        for article_id in dict.fromkeys(changed):  # each once, in order
            self._reindex(str(article_id))
            touched = True
        if touched:
            live = np.flatnonzero(self._alive[: self._used])
            self.watermark_ms = int(self._seen[live].max()) if live.shape[0] else None
        return self._size

    def _reindex(self, article_id: str) -> None:
        """Makes the index agree with the table entry of `article_id` (as `rebuild` would read it)."""
        slot = self._find(article_id)
        entry: Any = self.articles.get(article_id)
        if isinstance(entry, dict):
            try:
                int(entry["seen_ms"] if "seen_ms" in entry else entry["event_ms"])
            except (KeyError, TypeError, ValueError):
                entry = None
        if not isinstance(entry, dict):  # gone (evicted) or unreadable: rebuild() would not index it either
            if slot >= 0:
                self._kill(slot)
            return
        self.adopt(article_id, entry)  # a slot it had dies (`add`); the entry is indexed afresh

    def _finish_rebuild(self) -> int:
        self._rebuilding = False
        n = self._used
        self._size = n
        kernels.bulk_id_insert(self._ikeys, self._ivals, self._ids, np.arange(n, dtype=np.int64))
        self._heap[:n] = np.argsort(self._seen[:n], kind="stable").astype(np.int32)  # sorted: a valid min-heap
        self._heap_n = n
        self.watermark_ms = int(self._seen[:n].max()) if n else None
        return n

    def _rebuilt_chunk(self, first: int, hexes: list[str], values: np.ndarray, signed: np.ndarray) -> None:
        if hexes:
            ids = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=np.uint8).reshape(len(hexes), 16)
            self._ids[first : first + len(hexes)] = ids
            for slot in range(first, first + len(hexes)):
                if slot in self._odd:
                    self._ids[slot] = self._id_bytes(self._odd[slot])[0]
        if signed.shape[0]:
            if self._occupied + signed.shape[0] > _LSH_MAX_LOAD * self._cells.shape[1]:
                self._live_postings += signed.shape[0]  # size the tables for this chunk too
                self._rehash()
                self._live_postings -= signed.shape[0]
                self._occupied = self._live_postings
            kernels.bulk_index(self._cells, self._sketch, values, signed, self._gen, self._rows)
            self._occupied += signed.shape[0]
            self._live_postings += signed.shape[0]

    def _grow_slots(self) -> None:
        cap = int(self._cap * _GROWTH) + 1
        if cap > kernels.MAX_SLOTS:
            raise OverflowError(f"the dedup index holds at most {kernels.MAX_SLOTS:,} articles")

        def grown(a: np.ndarray) -> np.ndarray:
            out = np.zeros((cap, *a.shape[1:]), dtype=a.dtype)
            out[: a.shape[0]] = a
            return out

        self._ids, self._seen, self._gen = grown(self._ids), grown(self._seen), grown(self._gen)
        self._alive, self._nsh, self._sketch = grown(self._alive), grown(self._nsh), grown(self._sketch)
        self._heap, self._free = grown(self._heap), grown(self._free)
        self._cap = cap
        icap = int(cap / _ID_LOAD) + 1
        ikeys, ivals = np.zeros(icap, dtype=np.uint64), np.zeros(icap, dtype=np.uint32)
        self._ikeys, self._ivals = ikeys, ivals
        if not self._rebuilding:  # a rebuild maps every id once it has them all (_finish_rebuild)
            live = np.flatnonzero(self._alive[: self._used]).astype(np.int64)
            kernels.bulk_id_insert(ikeys, ivals, self._ids, live)

    def _rehash(self) -> None:
        """Drops stale postings, growing the tables when the live ones alone fill them past the target load."""
        cells = self._cells.shape[1]
        if self._live_postings / cells > _LSH_LOAD * 0.9:
            cells = int(max(cells * _GROWTH, self._live_postings / _LSH_LOAD)) + 1
        fresh = np.zeros((self.num_bands, cells), dtype=np.uint64)
        kernels.lsh_rehash(self._cells, fresh, self._gen, self._alive)
        self._cells = fresh
        self._occupied = self._live_postings

    def _alloc(self) -> int:
        if self._free_n:
            self._free_n -= 1
            return int(self._free[self._free_n])
        if self._used == self._cap:
            self._grow_slots()
        self._used += 1
        return self._used - 1

    def _band_keys(self, sig: Signature) -> np.ndarray:
        """The signature's band keys; the last one is remembered (a decision queries, then inserts it)."""
        last = self._last_keys
        if last is not None and last[0] is sig:
            return last[1]
        bkeys = kernels.band_keys(sig.values, self.num_bands, self._rows)
        self._last_keys = (sig, bkeys)
        return bkeys

    def _post(self, slot: int, sig: Signature) -> None:
        if (self._occupied + 1) > _LSH_MAX_LOAD * self._cells.shape[1]:
            self._rehash()
        self._nsh[slot] = min(sig.shingles, 65_535)
        posting = np.uint32(((slot + 1) << kernels.GEN_BITS) | int(self._gen[slot]))
        self._sketch[slot] = kernels.sketch_of(sig.values)
        kernels.lsh_insert(self._cells, self._band_keys(sig), posting)
        self._occupied += 1
        self._live_postings += 1

    def _unpost(self, slot: int) -> None:
        """Makes the slot's postings stale (they stay in the tables until a rehash)."""
        if self._nsh[slot]:
            self._live_postings -= 1
        self._gen[slot] = (int(self._gen[slot]) + 1) & 0xFF
        self._nsh[slot] = 0

    def add(self, article_id: str, seen_ms: int, sig: Signature | None) -> None:
        """Indexes a new entry (`sig` None: no words, known by URL and content only)."""
        full, key, odd = self._id_bytes(article_id)
        old = int(kernels.id_find(self._ikeys, self._ivals, self._ids, key, full))
        if old >= 0:  # its entry vanished from the mapping behind our back: the old slot dies
            self._kill(old)
        slot = self._alloc()
        if odd:
            self._odd[slot] = article_id
        if sig is not None:
            if (self._occupied + 1) > _LSH_MAX_LOAD * self._cells.shape[1]:
                self._rehash()
            values, bkeys, shingles = sig.values, self._band_keys(sig), sig.shingles
            self._occupied += 1
            self._live_postings += 1
        else:
            values, bkeys, shingles = _NO_VALUES, _NO_KEYS, 0
        self._heap_n = kernels.insert(
            self._ids,
            self._ikeys,
            self._ivals,
            self._heap,
            self._heap_n,
            self._seen,
            self._alive,
            self._gen,
            self._nsh,
            self._sketch,
            self._cells,
            slot,
            key,
            full,
            max(seen_ms, 0),
            values,
            bkeys,
            shingles,
        )
        self._size += 1

    def replace_signature(self, article_id: str, sig: Signature | None) -> None:
        """A new revision of an indexed article: its old signature leaves the LSH index, the new one enters."""
        slot = self._find(article_id)
        if slot < 0:
            raise KeyError(article_id)
        self._unpost(slot)
        if sig is not None:
            self._post(slot, sig)

    def adopt(self, article_id: str, entry: dict[str, Any]) -> None:
        """Indexes an entry found in the mapping but not in memory (rebuild() was not called)."""
        try:
            sig = signature_of(entry, self.hasher)
        except (TypeError, ValueError):
            sig = None
        try:
            seen = int(entry.get("seen_ms", entry.get("event_ms", 0)))
        except (TypeError, ValueError):
            seen = 0  # unreadable: first to leave
        self.add(article_id, seen, sig)

    def _kill(self, slot: int) -> str:
        """Takes a live slot out of the index; the slot itself is freed when the heap pops it."""
        article_id = self._article_id(slot)
        _, key, _ = self._id_bytes(article_id)
        kernels.id_delete(self._ikeys, self._ivals, key, slot)
        self._unpost(slot)
        self._alive[slot] = 0
        self._size -= 1
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

    def passes(self, sim: float, contained: float) -> bool:
        """The near-duplicate rule: resemblance at or above the threshold, or containment at or above its
        threshold with a resemblance no lower than containment_min_similarity (so that a short text is not
        the copy of every long one that quotes it)."""
        cfg = self.config
        return sim >= cfg.threshold or (
            sim >= cfg.containment_min_similarity and contained >= cfg.containment_threshold
        )

    def candidates(self, sig: Signature, exclude: str | None = None) -> Iterator[Match]:
        """Indexed articles that pass `passes` against `sig`, but `exclude`; each with its estimates."""
        bkeys = self._band_keys(sig)
        slots = kernels.lsh_query(self._cells, bkeys, self._gen, self._alive)
        if not slots.shape[0]:
            return
        if slots.shape[0] > self.config.max_candidates:
            self.truncated_queries += 1
            slots = slots[: self.config.max_candidates]
        agree = kernels.sketch_agreement(self._sketch, slots, kernels.sketch_of(sig.values))
        for slot in slots[agree >= self._min_agree]:
            article_id = self._article_id(int(slot))
            if article_id == exclude:
                continue
            entry = self.articles.get(article_id)
            if not isinstance(entry, dict):
                continue
            try:
                other = signature_of(entry, self.hasher)
            except (TypeError, ValueError):
                continue
            if other is None:
                continue
            sim = similarity(sig.values, other.values)
            contained = max(containment(sim, sig.shingles, other.shingles))
            if self.passes(sim, contained):
                yield Match(article_id, entry, sim, contained)

    # --- expiry --------------------------------------------------------------------------------------------

    def expire(self, *, watermark_ms: int | None = None) -> list[str]:
        """Evicts entries older than the window before the watermark, then the oldest beyond max_entries.

        `watermark_ms` (ingestion time, ms) raises the watermark when given. Returns the evicted article_ids;
        `evictions` counts them by cause ("window", "capacity").
        """
        if watermark_ms is not None and (self.watermark_ms is None or watermark_ms > self.watermark_ms):
            self.watermark_ms = watermark_ms
        evicted: list[str] = []
        if self.watermark_ms is not None:
            cutoff = self.watermark_ms - self._window_ms
            while self._heap_n and self._seen[self._heap[0]] < cutoff:
                if self._pop_evict(evicted):
                    self.evictions["window"] += 1
        while self._size > self.config.max_entries and self._heap_n:
            if self._pop_evict(evicted):
                self.evictions["capacity"] += 1
        return evicted

    def _pop_evict(self, evicted: list[str]) -> bool:
        """Pops the heap's oldest slot and frees it; evicts its article if it was live. Returns whether it was."""
        slot = int(self._heap[0])
        self._heap_n = kernels.heap_pop(self._heap, self._heap_n, self._seen)
        live = bool(self._alive[slot])
        if live:
            article_id = self._kill(slot)
            entry = self.articles.pop(article_id, None)
            if isinstance(entry, dict):
                for rev in [entry.get("revision"), *entry.get("previous_revisions", ())]:
                    if rev is not None and self.content.get(rev) == article_id:
                        del self.content[rev]
            evicted.append(article_id)
        self._odd.pop(slot, None)
        self._free[self._free_n] = slot
        self._free_n += 1
        return live


__all__ = ["SCHEME", "DedupState", "Match", "signature_of"]
