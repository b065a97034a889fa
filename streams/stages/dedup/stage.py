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
4. another URL, and word 3-shingles of title + text that resemble an indexed article's (estimated Jaccard
   similarity J at or above ``threshold``) or are mostly contained in it, or contain it (estimated containment
   at or above ``containment_threshold`` with J at least ``containment_min_similarity``: a copy cut for
   length, or extended with other text) → Duplicate ``near``, with the estimated ``similarity`` and
   ``containment`` (4 decimals). Containment comes from J and the two shingle-set sizes:
   |A ∩ B| = J (|A| + |B|) / (1 + J). Candidates are found by LSH and screened in memory (`index`);
5. otherwise first seen → Unique, ``dedup = {cluster_id: article_id, revision_number: 1,
   previous_revision: null, is_update: false}``.

Example (threshold 0.6): A = "https://a.example/x" with text T at 10:00 is Unique (cluster A). B at
"https://b.example/y" with text T is Duplicate(same_content, duplicate_of=A). C at "https://c.example/z" with
a new headline and an agency dateline on T (J ≈ 0.9) is Duplicate(near, similarity≈0.9, duplicate_of=A,
cluster_id=A). D with T's first half only (J ≈ 0.5, containment ≈ 1.0 with containment threshold 0.7) is
Duplicate(near, similarity≈0.5, containment≈1.0, duplicate_of=A).
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
JSON values (Faust tables in production, dicts in tests); an entry is about 0.6 KB (a 64-value signature is
344 base64 characters). The in-memory index over them is `streams.stages.dedup.index.DedupState`; `expire`
evicts by ingestion time (``ingested_at``, the raw record's Kafka timestamp) and by ``max_entries``.
Retention runs on ingestion rather than publication time so that an archive article published years ago but
ingested today still catches its re-sends for the whole window; publication time orders canonicals.

`Deduplicator` is the whole stage as one object for the agent: one record of the sequence in (an article or
a reorder-hold tick), the decisions it releases out, in order, with the hold and expiry applied.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams import schemas
from streams.codec import rfc3339
from streams.outcomes import Duplicate, Rejected, Unique
from streams.stages.dedup import article as fields
from streams.stages.dedup.config import DedupConfig
from streams.stages.dedup.index import DedupState
from streams.stages.dedup.reorder import ReorderHold, is_tick, sequence_key
from streams.stages.dedup.shingles import Signature
from streams.stages.dedup.snapshot import Snapshot

__all__ = [
    "MATCHES",
    "VERSION",
    "DedupConfig",
    "DedupState",
    "DedupStats",
    "Deduplicator",
    "dedup",
    "expire",
]

VERSION = "1"  # recorded under article["pipeline"]["dedup"]
MAX_KEPT_REVISIONS = 8  # older revisions of one URL remembered for re-sends and syndicated copies
log = logging.getLogger("streams.dedup")


@functools.cache
def _matches() -> tuple[str, ...]:
    return tuple(schemas.load("duplicate.v1.json")["properties"]["match"]["enum"])


MATCHES = _matches()  # the match kinds of duplicate.v1 (same_url, same_content, near), read from the schema file


def dedup(article: dict[str, Any], *, state: DedupState, now: datetime) -> Unique | Duplicate:
    """Decides whether `article` (article.v1) is new, an update, or a copy; records it in `state`."""
    now_ms = fields.ms(now)
    article_id = fields.article_id(article)
    text = str(article.get("text") or "")
    title = str(article.get("title") or "")
    revision = fields.revision(article, text)
    seen_ms = fields.seen_ms(article, now_ms)
    state.observe(seen_ms, now_ms)

    entry = state.articles.get(article_id)
    if entry is not None and isinstance(entry, dict):
        if article_id not in state:
            state.adopt(article_id, entry)
        if revision == entry.get("revision") or revision in entry.get("previous_revisions", ()):
            number = int(entry.get("revision_number", 1))
            cluster = str(entry.get("cluster_id", article_id))
            return _duplicate(article, state, now, ("same_url", 1.0, 1.0), cluster, number, None)
        return _new_revision(article, state, now, entry, article_id, revision, title, text)

    sig = state.hasher.signature(title, text)
    cluster_id, found, canon = _find_copy(state, revision, article_id, sig, exclude=None)
    state.articles[article_id] = {
        "canonical_url": str(article.get("canonical_url", "")),
        "revision": revision,
        "revision_number": 1,
        "previous_revisions": [],
        "cluster_id": cluster_id or article_id,
        "event_ms": fields.event_ms(article, now_ms),
        "seen_ms": seen_ms,
        "source": fields.source_key(article),
        **_stored(sig),
    }
    state.add(article_id, seen_ms, sig)
    if found[0] != "same_content" and revision not in state.content:
        state.content[revision] = article_id
    if cluster_id is None:
        return Unique(_with_dedup(article, article_id, 1, None, False))
    return _duplicate(article, state, now, found, cluster_id, 1, None, canon)


def _stored(sig: Signature | None) -> dict[str, Any]:
    """The signature's fields of an entry: values (base64) and distinct shingles; empty without words."""
    return {"minhash": sig.encode(), "shingles": sig.shingles} if sig is not None else {"minhash": "", "shingles": 0}


def expire(state: DedupState, *, watermark_ms: int | None = None) -> list[str]:
    """Evicts what left the window or exceeds max_entries (`DedupState.expire`); returns the evicted ids."""
    return state.expire(watermark_ms=watermark_ms)


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
    sig = state.hasher.signature(title, text)
    old_revision = str(entry.get("revision"))
    number = int(entry.get("revision_number", 1)) + 1
    kept = [*entry.get("previous_revisions", ()), old_revision]
    for dropped in kept[:-MAX_KEPT_REVISIONS]:
        if state.content.get(dropped) == article_id:
            del state.content[dropped]
    cluster_id = str(entry.get("cluster_id", article_id))
    was_published = cluster_id == article_id
    found: tuple[str, float, float] = ("near", 0.0, 0.0)
    copy_of = None
    if not was_published:
        # This URL was dropped as a copy; its new text may have become original.
        copy_of, found, _ = _find_copy(state, revision, article_id, sig, exclude=article_id)
        cluster_id = copy_of or article_id
    updated = {
        **entry,
        "revision": revision,
        "revision_number": number,
        "previous_revisions": kept[-MAX_KEPT_REVISIONS:],
        "cluster_id": cluster_id,
        **_stored(sig),
    }
    updated.pop("signature", None)  # a scheme-1 (rensa) signature is not carried over
    state.articles[article_id] = updated
    state.replace_signature(article_id, sig)
    if revision not in state.content:
        state.content[revision] = article_id
    if copy_of is not None:
        return _duplicate(article, state, now, found, copy_of, number, old_revision)
    return Unique(_with_dedup(article, cluster_id, number, old_revision, was_published))


def _find_copy(
    state: DedupState, revision: str, article_id: str, sig: Signature | None, exclude: str | None
) -> tuple[str | None, tuple[str, float, float], Any]:
    """(cluster_id, (match kind, similarity, containment), the canonical's entry if read) of the cluster this
    text copies, or (None, ("", 0, 0), None)."""
    none = ("", 0.0, 0.0)
    other = state.content.get(revision)
    if other is not None and other != article_id:
        other_entry = state.articles.get(other)
        if isinstance(other_entry, dict):
            cluster = str(other_entry.get("cluster_id", other))
            return cluster, ("same_content", 1.0, 1.0), other_entry if cluster == other else None
    if sig is None:
        return None, none, None
    best: dict[str, tuple[float, float]] = {}  # cluster_id -> (best similarity, best containment) of a member
    canons: dict[str, Any] = {}  # cluster_id -> the canonical's entry (None: evicted)
    for m in state.candidates(sig, exclude=exclude):
        cluster = str(m.entry.get("cluster_id", m.article_id))
        sim, contained = best.get(cluster, (-1.0, -1.0))
        best[cluster] = (max(sim, m.similarity), max(contained, m.containment))
        if cluster == m.article_id:
            canons[cluster] = m.entry
    if not best:
        return None, none, None
    for cluster in best:
        if cluster not in canons:
            canons[cluster] = state.articles.get(cluster)
    chosen = min(best, key=lambda c: (*_canonical_order(state, canons[c]), -best[c][0], -best[c][1], c))
    sim, contained = best[chosen]
    return chosen, ("near", round(sim, 4), round(contained, 4)), canons[chosen]


def _canonical_order(state: DedupState, canon: Any) -> tuple[int, int]:
    """(event time, source rank) of a cluster's canonical entry; an evicted canonical sorts last."""
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
    found: tuple[str, float, float],
    cluster_id: str,
    number: int,
    previous: str | None,
    canon: Any = None,
) -> Duplicate:
    match, sim, contained = found
    if canon is None:
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
        "containment": contained,
        "cluster_id": cluster_id,
        "revision": str(article.get("revision", "")),
        "detected_at": rfc3339(now),
        "article": _with_dedup(article, cluster_id, number, previous, False),
    }
    return Duplicate(record)


# --- the stage as one object ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DedupStats:
    """What the agent exports as metrics. Totals are cumulative over the Deduplicator's life (across
    rebuilds), so the agent increments its counters by the difference from the previous stats."""

    index_articles: int
    index_bytes: int
    held_articles: int
    evictions: dict[str, int]  # cause ("window", "capacity") -> total
    reordered_total: int
    truncated_queries: int
    internal_errors: int  # articles whose decision raised (a bug): let through as Unique, see on_record
    ignored_records: int  # sequence records that are neither an article (a JSON object) nor a tick


class Deduplicator:
    """dedup for the single-partition sequence: the reorder hold in front of `dedup`, then `expire`.

    `articles`, `content` and `held` are the three tables (article_id → entry, revision → article_id,
    sequence key → held article); the in-memory index and hold are rebuilt from them by `rebuild()` (the
    first `on_record` does it when nobody did). Construct a new one when the partition moves to this worker
    again. Example, hold off: ``on_record(key=b"id", value=article, offset=7, timestamp_ms=t)`` →
    ``[Unique(...)]``; hold 2 s: ``[]`` now, and ``[Unique(...)]`` from the first record stamped ≥ t + 2000.
    """

    def __init__(
        self,
        *,
        articles: MutableMapping[str, Any],
        content: MutableMapping[str, Any],
        held: MutableMapping[str, Any],
        config: DedupConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self._articles, self._content, self._held = articles, content, held
        self._clock = clock
        self._state: DedupState | None = None
        self._hold: ReorderHold | None = None
        self._evicted_before = {"window": 0, "capacity": 0}  # totals of the states replaced by rebuild()
        self._truncated_before = 0
        self._reordered = 0
        self._errors = 0
        self._ignored = 0

    def rebuild(self, *, snapshot: Snapshot | None = None, changed: Iterable[str] = ()) -> int:
        """Recreates the in-memory index and the hold from the three tables; returns the articles indexed.

        With `snapshot` (whose entries `snapshot.load_tables` has written into the tables), the index is
        built from its columns instead of reading every entry back: several times faster. `changed` names
        the articles whose entries changed in the tables since (see `DedupState.rebuild_from_snapshot`)."""
        if self._state is not None:
            for cause, total in self._state.evictions.items():
                self._evicted_before[cause] = self._evicted_before.get(cause, 0) + total
            self._truncated_before += self._state.truncated_queries
        self._state = self._hold = None
        state = DedupState(self.config, self._articles, self._content)
        count = state.rebuild() if snapshot is None else state.rebuild_from_snapshot(snapshot, changed)
        hold = ReorderHold(self.config.reorder_hold_ms, state.order_of)
        hold.rebuild(self._held.items())
        self._state, self._hold = state, hold
        return count

    def _ready(self) -> tuple[DedupState, ReorderHold]:
        if self._state is None or self._hold is None:
            self.rebuild()
        assert self._state is not None and self._hold is not None
        return self._state, self._hold

    def on_record(
        self, *, key: bytes | None, value: Any, offset: int, timestamp_ms: int
    ) -> list[Unique | Duplicate | Rejected]:
        """One record of articles.dedup-sequenced (value JSON-decoded): the decisions it releases, in order.

        The record's timestamp, not the clock, drives the hold, so a replay releases the same way. With the
        hold off (and nothing held from an earlier setting) an article is decided on arrival.
        """
        state, hold = self._ready()
        tick = is_tick(key, value)
        if not tick and not isinstance(value, dict):
            self._ignored += 1
            return []
        if not tick and self.config.reorder_hold_ms == 0 and not len(hold):
            return [self._decide(value, state)]
        if tick:
            hold.observe(timestamp_ms)
        else:
            held_key = sequence_key(offset)
            self._held[held_key] = {"article": value, "arrival_ms": timestamp_ms}
            hold.add(held_key, value, timestamp_ms)
        released = hold.release()
        self._reordered += hold.reorders(released)
        out = []
        for h in released:
            out.append(self._decide(h.article, state))
            del self._held[h.key]
        return out

    def _decide(self, article: dict[str, Any], state: DedupState) -> Unique | Duplicate | Rejected:
        try:
            outcome: Unique | Duplicate | Rejected = dedup(article, state=state, now=self._clock())
        except Exception as exc:  # a bug, not bad data: refuse this article (kept whole), decide the others
            log.exception("dedup failed on %s", article.get("article_id"))
            self._errors += 1
            outcome = Rejected(
                "internal_error",
                f"dedup raised {type(exc).__name__}: {exc}"[:300],
                {"stage": "dedup", "error": type(exc).__name__},
                article=article,
            )
        state.expire()
        return outcome

    def tick_due(self, now_ms: int, slack_ms: int) -> bool:
        """Whether a tick should be sent into the sequence now (`ReorderHold.tick_due`); False before rebuild."""
        return self._hold is not None and self._hold.tick_due(now_ms, slack_ms)

    def stats(self) -> DedupStats:
        state, hold = self._state, self._hold
        evictions = dict(self._evicted_before)
        if state is not None:
            for cause, total in state.evictions.items():
                evictions[cause] = evictions.get(cause, 0) + total
        return DedupStats(
            index_articles=state.size() if state is not None else 0,
            index_bytes=state.index_bytes_estimate() if state is not None else 0,
            held_articles=len(hold) if hold is not None else 0,
            evictions=evictions,
            reordered_total=self._reordered,
            truncated_queries=self._truncated_before + (state.truncated_queries if state is not None else 0),
            internal_errors=self._errors,
            ignored_records=self._ignored,
        )
