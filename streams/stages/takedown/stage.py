"""The takedown stage of one partition: articles and fanned-out takedowns in, publications, retractions,
reinstatements and audit entries out.

Rule, for partition p, which reads articles.enriched p and takedowns.fanout p as one ordered stream:

- an article that an active takedown covers (`matching.covers`) → `Audited(blocked)` naming the article,
  the takedown (the first by id; the others in details.also_covered_by), its scope and the raw `origin`.
  If an earlier revision of the article is published, that publication is withdrawn too: `Retracted` and
  `Audited(retracted)`;
- any other article → `Published(article)`, remembered (compactly) for retroactive retraction;
- `apply` of a takedown new to p → every published article of p it covers is retracted (`Retracted`
  retraction.v1 + `Audited(retracted)`); with scope cluster, every published member of the cluster;
- `lift` / `expire` → it stops blocking; every article it held (blocked or retracted within the
  reinstatement window) is re-read from articles.enriched through the injected `fetch(partition, offset)`
  and published again marked `article["takedown"] = {"reinstated": true, ...}` with `Audited(reinstated)`
  — unless another active takedown still covers it (`Audited(not_reinstated)`, why: still_covered), the
  record is gone from articles.enriched (why: record_gone) or the takedown says republish_on_lift false
  (why: not_requested).

For example: "https://www.example.com/a" published; then TD-1 (domain example.com) arrives → Retracted(a)
and Audited(retracted); "https://news.example.com/b" arrives → Audited(blocked), not published; TD-1 is
lifted → Published(a, reinstated) and Published(b, reinstated) with two Audited(reinstated).

Copies of a cluster whose canonical is taken down by URL only stay where dedup put them: dedup dropped them
to articles.duplicates before this stage, so they were never published and none is published instead. A URL
takedown therefore withdraws the story from articles.published; the syndicated copies stay suppressed.

State of p (injected MutableMappings, Faust tables in production; one dict may hold every partition):
`takedowns` (f"{p}/{takedown_id}" → the takedown.v1 record p has applied) and `articles` (article_id →
a compact entry: canonical_url, host, domain, source id and name, revision, cluster_id, title,
published_at, raw origin, articles.enriched partition and offset, status published | blocked | retracted,
since_ms, held_by). No article text: a reinstatement re-reads the article. Published entries are kept
`published_retention_ms`, withheld ones `reinstate_window_ms` (both from `since_ms`), at most
`published_max_entries` per partition (oldest leave first). In memory: the matching indexes (`matching`),
takedown → held articles, and the retention heap, all rebuilt from the tables by `rebuild()`.

Time is the injected `now`; the stage never reads the clock. One partition's events must be handled one
at a time, in order (a lift awaits `fetch` between its decisions).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from datetime import datetime
from typing import Any

from streams.codec import rfc3339
from streams.outcomes import Audited, Published, Rejected, Retracted
from streams.stages.takedown.config import TakedownConfig
from streams.stages.takedown.matching import (
    ActiveIndex,
    ArticleIndex,
    Facts,
    covers,
    facts_of,
    facts_of_entry,
)
from streams.stages.takedown.records import article_entry, ms, retraction_record

VERSION = "1"  # recorded under article["pipeline"]["takedown"]
TITLE_CHARS = 300  # titles kept in the compact entry (for the audit's timeline), characters
_ARTICLE_ID = re.compile(r"[0-9a-f]{32}")
_MATCH_FIELDS = ("canonical_url", "host", "domain", "source_id", "source_name", "revision", "cluster_id")

StageOutcome = Published | Retracted | Audited | Rejected
Fetch = Callable[[int, int], Awaitable[dict[str, Any] | None]]


def entry_of(f: Facts, article: dict[str, Any], partition: int, offset: int) -> dict[str, Any]:
    """The compact record of an article (what matching needs, what the audit shows, where it is)."""
    source = article.get("source")
    name = source.get("name") if isinstance(source, dict) else None
    title = article.get("title")
    return {
        "partition": partition,
        "offset": offset,
        "canonical_url": f.url,
        "host": f.host,
        "domain": f.domain,
        "source_id": f.source_id or None,
        "source_name": name if isinstance(name, str) else None,
        "revision": f.revision,
        "cluster_id": f.cluster or None,
        "title": title[:TITLE_CHARS] if isinstance(title, str) else None,
        "published_at": article.get("published_at"),
        "origin": article.get("origin"),
        "status": "published",
        "since_ms": 0,
        "held_by": [],
    }


class PartitionState:
    """The takedown stage's state and decisions for one partition."""

    def __init__(
        self,
        partition: int,
        config: TakedownConfig,
        takedowns: MutableMapping[str, Any],
        articles: MutableMapping[str, Any],
    ) -> None:
        self.partition = partition
        self.config = config
        self.takedowns = takedowns
        self.articles = articles
        self.prefix = f"{partition}/"
        self.evictions = {"retention": 0, "capacity": 0}  # cumulative, for metrics
        self.rebuild()

    # --- in-memory indexes -------------------------------------------------------------------------------

    def rebuild(self) -> tuple[int, int]:
        """Recreates the indexes from the tables; returns (active takedowns, known articles) of this partition."""
        self.active = ActiveIndex()
        self.known = ArticleIndex()
        self.held_by: dict[str, set[str]] = {}
        self._deadline: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        prefix = self.prefix
        for key, td in self.takedowns.items():
            if isinstance(key, str) and key.startswith(prefix) and isinstance(td, dict):
                scope, value = td.get("scope"), td.get("value")
                if isinstance(scope, str) and isinstance(value, str):
                    self.active.add(key[len(prefix) :], scope, value)
        for aid, entry in self.articles.items():
            if isinstance(entry, dict) and entry.get("partition") == self.partition:
                self._index(str(aid), entry, push=False)
        heapq.heapify(self._heap)
        return len(self.active), len(self._deadline)

    def __len__(self) -> int:
        """Articles this partition remembers (published and withheld)."""
        return len(self._deadline)

    def held_count(self) -> int:
        """Articles withheld here (blocked or retracted) and still reinstatable."""
        return len({aid for ids in self.held_by.values() for aid in ids})

    def _index(
        self, aid: str, entry: dict[str, Any], *, push: bool = True, facts: Facts | None = None, match: bool = True
    ) -> None:
        if match:
            self.known.add(facts if facts is not None else facts_of_entry(aid, entry))
        published = entry.get("status") == "published"
        keep = self.config.published_retention_ms if published else self.config.reinstate_window_ms
        deadline = int(entry.get("since_ms") or 0) + keep
        self._deadline[aid] = deadline
        if push:
            heapq.heappush(self._heap, (deadline, aid))
        else:
            self._heap.append((deadline, aid))
        for tid in entry.get("held_by") or ():
            self.held_by.setdefault(tid, set()).add(aid)

    def _unindex(self, aid: str, entry: dict[str, Any], *, match: bool = True) -> None:
        if match:
            self.known.remove(facts_of_entry(aid, entry))
        self._deadline.pop(aid, None)
        for tid in entry.get("held_by") or ():
            ids = self.held_by.get(tid)
            if ids is not None:
                ids.discard(aid)
                if not ids:
                    del self.held_by[tid]

    def _put(self, aid: str, entry: dict[str, Any], old: dict[str, Any] | None, facts: Facts | None = None) -> None:
        # A change of status or holders keeps the matching fields: the article index is left as it is.
        match = old is None or any(old.get(k) != entry.get(k) for k in _MATCH_FIELDS)
        if old is not None:
            self._unindex(aid, old, match=match)
        self.articles[aid] = entry
        self._index(aid, entry, facts=facts, match=match)

    def _delete(self, aid: str, entry: dict[str, Any]) -> None:
        self._unindex(aid, entry)
        self.articles.pop(aid, None)

    def purge(self, now_ms: int) -> int:
        """Forgets entries past their retention, then the oldest beyond the bound; O(1) when nothing is due."""
        heap, deadlines, n = self._heap, self._deadline, 0
        while heap and heap[0][0] <= now_ms:
            deadline, aid = heapq.heappop(heap)
            if deadlines.get(aid) == deadline:
                self._forget(aid)
                self.evictions["retention"] += 1
                n += 1
        while len(deadlines) > self.config.published_max_entries and heap:
            deadline, aid = heapq.heappop(heap)
            if deadlines.get(aid) == deadline:
                self._forget(aid)
                self.evictions["capacity"] += 1
                n += 1
        return n

    def _maintain(self, now_ms: int) -> None:
        if (self._heap and self._heap[0][0] <= now_ms) or len(self._deadline) > self.config.published_max_entries:
            self.purge(now_ms)

    def _forget(self, aid: str) -> None:
        entry = self.articles.get(aid)
        if isinstance(entry, dict):
            self._delete(aid, entry)
        else:
            self._deadline.pop(aid, None)

    def _takedown(self, tid: str) -> dict[str, Any]:
        td = self.takedowns.get(self.prefix + tid)
        return td if isinstance(td, dict) else {"takedown_id": tid}

    # --- articles ----------------------------------------------------------------------------------------

    def on_article(self, article: Any, *, offset: int, now: datetime) -> list[StageOutcome]:
        """One article of articles.enriched (at `offset` of this partition) → Published, or Audited(blocked)
        (plus Retracted and Audited(retracted) when an earlier revision is out)."""
        aid = article.get("article_id") if isinstance(article, dict) else None
        if not isinstance(aid, str) or not _ARTICLE_ID.fullmatch(aid):
            return [Rejected("schema_violation", "The article has no valid article_id.", {"pointer": "/article_id"})]
        now_ms = ms(now)
        self._maintain(now_ms)
        f = facts_of(article)
        prev = self.articles.get(aid)
        if not isinstance(prev, dict):
            prev = None
        entry = entry_of(f, article, self.partition, offset)
        entry["since_ms"] = now_ms
        covering = self.active.covering(f)
        if not covering:
            self._put(aid, entry, prev, f)
            if prev is None:
                self._maintain(now_ms)  # the bound holds after every new entry
            return [Published(_published(article))]
        td = self._takedown(covering[0])
        was_out = prev is not None and prev.get("status") == "published"
        was_retracted = prev is not None and prev.get("status") == "retracted"
        entry["status"] = "retracted" if was_out or was_retracted else "blocked"
        entry["held_by"] = covering
        details = {"also_covered_by": covering[1:]} if len(covering) > 1 else {}
        out: list[StageOutcome] = [
            Audited(article_entry("blocked", td, article_id=aid, entry=entry, at=now, details=details))
        ]
        if was_out and prev is not None:
            # The published revision is superseded by one the takedown covers: consumers must not keep it.
            out.append(Retracted(retraction_record(td, article_id=aid, entry=prev, at=now)))
            why = {"superseded_by_revision": f.revision}
            out.append(Audited(article_entry("retracted", td, article_id=aid, entry=prev, at=now, details=why)))
        self._put(aid, entry, prev, f)
        if prev is None:
            self._maintain(now_ms)
        return out

    # --- takedowns ---------------------------------------------------------------------------------------

    async def on_fanout(self, record: Any, *, now: datetime, fetch: Fetch) -> list[StageOutcome]:
        """One takedown_fanout.v1 record of this partition: apply (retract what it covers), lift or expire
        (reinstate what it held)."""
        if not isinstance(record, dict) or not isinstance(record.get("takedown"), dict):
            return []
        td = record["takedown"]
        tid, scope, value = td.get("takedown_id"), td.get("scope"), td.get("value")
        if not (isinstance(tid, str) and isinstance(scope, str) and isinstance(value, str)):
            return []
        self._maintain(ms(now))
        op = record.get("op")
        if op == "apply":
            return self.apply(td, now=now)
        if op in ("lift", "expire"):
            return await self.release(td, op=op, now=now, fetch=fetch)
        return []

    def apply(self, td: dict[str, Any], *, now: datetime) -> list[StageOutcome]:
        """Makes `td` active here and retracts every published article of this partition it covers."""
        tid, scope, value = td["takedown_id"], td["scope"], td["value"]
        key = self.prefix + tid
        prev = self.takedowns.get(key)
        if isinstance(prev, dict) and (prev.get("scope"), prev.get("value")) == (scope, value):
            if prev != td:
                self.takedowns[key] = td  # an update (expiry, reason, statement): matching is unchanged
            return []
        self.takedowns[key] = td
        self.active.add(tid, scope, value)
        now_ms = ms(now)
        out: list[StageOutcome] = []
        for aid in sorted(self.known.candidates(scope, value)):
            entry = self.articles.get(aid)
            if not isinstance(entry, dict) or not covers(scope, value, facts_of_entry(aid, entry)):
                continue
            held = list(entry.get("held_by") or ())
            if entry.get("status") == "published":
                new = {**entry, "status": "retracted", "since_ms": now_ms, "held_by": [tid]}
                self._put(aid, new, entry)
                out.append(Retracted(retraction_record(td, article_id=aid, entry=entry, at=now)))
                out.append(Audited(article_entry("retracted", td, article_id=aid, entry=entry, at=now)))
            elif tid not in held:
                # Already withheld by another takedown: this one holds it too, so lifting only the other keeps it.
                self._put(aid, {**entry, "held_by": sorted([*held, tid])}, entry)
        return out

    async def release(self, td: dict[str, Any], *, op: str, now: datetime, fetch: Fetch) -> list[StageOutcome]:
        """`td` stops blocking here; the articles it held are reinstated unless something else holds them."""
        tid = td["takedown_id"]
        key = self.prefix + tid
        if key not in self.takedowns:
            return []  # never applied here, or already released
        del self.takedowns[key]
        self.active.remove(tid)
        republish = td.get("republish_on_lift", True) is not False
        now_ms = ms(now)
        out: list[StageOutcome] = []
        for aid in sorted(self.held_by.get(tid, ())):
            entry = self.articles.get(aid)
            if not isinstance(entry, dict):
                continue
            still = self.active.covering(facts_of_entry(aid, entry))
            if still:
                self._put(aid, {**entry, "held_by": still}, entry)
                out.append(self._not_reinstated(td, aid, entry, now, "still_covered", op, still))
                continue
            if not republish:
                self._delete(aid, entry)
                out.append(self._not_reinstated(td, aid, entry, now, "not_requested", op))
                continue
            article = await fetch(int(entry["partition"]), int(entry["offset"]))
            if not isinstance(article, dict) or article.get("article_id") != aid:
                self._delete(aid, entry)
                out.append(self._not_reinstated(td, aid, entry, now, "record_gone", op))
                continue
            f = facts_of(article)
            still = self.active.covering(f)
            if still:  # the record re-read differs from what was kept, and something covers it
                self._put(aid, {**entry, "held_by": still}, entry)
                out.append(self._not_reinstated(td, aid, entry, now, "still_covered", op, still))
                continue
            new = entry_of(f, article, int(entry["partition"]), int(entry["offset"]))
            new["since_ms"] = now_ms
            self._put(aid, new, entry)
            mark = {
                "reinstated": True,
                "reinstated_at": rfc3339(now),
                "previously": entry.get("status") if entry.get("status") in ("blocked", "retracted") else "blocked",
                "takedown_ids": [tid],
            }
            out.append(Published(_published(article, mark)))
            details = {"previously": mark["previously"], "because": op}
            if op == "lift" and td.get("lift_reason"):
                details["lift_reason"] = td["lift_reason"]
            out.append(Audited(article_entry("reinstated", td, article_id=aid, entry=new, at=now, details=details)))
        self.held_by.pop(tid, None)
        return out

    def _not_reinstated(
        self,
        td: dict[str, Any],
        aid: str,
        entry: dict[str, Any],
        now: datetime,
        why: str,
        op: str,
        still: list[str] | None = None,
    ) -> Audited:
        details: dict[str, Any] = {"why": why, "because": op, "previously": entry.get("status")}
        if still:
            details["still_covered_by"] = still
        return Audited(article_entry("not_reinstated", td, article_id=aid, entry=entry, at=now, details=details))


def _published(article: dict[str, Any], mark: dict[str, Any] | None = None) -> dict[str, Any]:
    out = dict(article)
    pipeline = article.get("pipeline")
    out["pipeline"] = {**(pipeline if isinstance(pipeline, dict) else {}), "takedown": VERSION}
    if mark is not None:
        out["takedown"] = mark
    return out


class TakedownStage:
    """The partitions of one worker: a `PartitionState` per partition, made (and rebuilt from the shared
    tables) when first used. Call `forget(partitions)` when partitions are revoked, so that a partition
    assigned again is rebuilt from what its new owner wrote meanwhile."""

    def __init__(
        self, config: TakedownConfig, takedowns: MutableMapping[str, Any], articles: MutableMapping[str, Any]
    ) -> None:
        self.config = config
        self.takedowns = takedowns
        self.articles = articles
        self._parts: dict[int, PartitionState] = {}

    def partition(self, p: int) -> PartitionState:
        state = self._parts.get(p)
        if state is None:
            state = self._parts[p] = PartitionState(p, self.config, self.takedowns, self.articles)
        return state

    def partitions(self) -> dict[int, PartitionState]:
        return dict(self._parts)

    def forget(self, partitions: Iterable[int] | None = None) -> None:
        """Drops the in-memory state of `partitions` (all when None)."""
        if partitions is None:
            self._parts.clear()
        else:
            for p in partitions:
                self._parts.pop(p, None)

    def on_article(self, article: Any, *, partition: int, offset: int, now: datetime) -> list[StageOutcome]:
        return self.partition(partition).on_article(article, offset=offset, now=now)

    async def on_fanout(self, record: Any, *, partition: int, now: datetime, fetch: Fetch) -> list[StageOutcome]:
        return await self.partition(partition).on_fanout(record, now=now, fetch=fetch)

    def active_by_scope(self) -> dict[str, int]:
        """Active takedowns per scope as the partitions of this worker have applied them (the maximum over
        partitions: every partition applies every takedown)."""
        out = {"url": 0, "domain": 0, "source": 0, "fingerprint": 0, "cluster": 0}
        for state in self._parts.values():
            for scope, n in state.active.count_by_scope().items():
                out[scope] = max(out.get(scope, 0), n)
        return out
