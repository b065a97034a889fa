"""The reorder hold in front of dedup's decisions: articles that reach the sequence close together are decided
in event-time order, not arrival order.

Why. A syndicated copy has its own URL, so it travels another partition of ``articles.normalized`` than its
original, and the two can reach dedup's single sequence in either order. Dedup cannot unpublish, so whichever
is decided first becomes the canonical. Holding each article for ``hold_ms`` after it reached the sequence
and deciding the held ones in canonical order (event time, then source priority) makes the canonical the
first by event time among copies that arrive within the hold of each other. A copy arriving later than
that still becomes a duplicate of what was already published (the README says so).

Rules (held articles sorted in canonical order):
- An article is *due* once the watermark (the highest sequence timestamp seen, from articles or ticks) is at
  least its arrival plus ``hold_ms``.
- ``release()`` returns the longest prefix of the sorted held articles that are all due: an article leaves
  only when it has waited the whole hold *and* nothing held before it in canonical order is still waiting.
  So of two copies that arrive within the hold of each other, the later-published one cannot leave before
  the earlier-published one is here, and then it leaves after it.
- Bounded wait: an article due for ``max_wait_ms`` (default twice the hold) leaves whatever sorts before it,
  taking those along first; without this, a steady flow of articles published earlier would hold a fresh one
  back indefinitely. Only there can the order above give way, and only for articles that waited that long.
- Per-article order never changes: the events of one article_id (a re-send, a revision) sort as one group,
  at the place of the first of them in the sequence, and keep their sequence order inside it. Sequence order
  is the offset (the key), not the timestamp, which comes from whichever worker forwarded the record.
- Everything is a function of the records (offsets, timestamps), never of the clock: replaying the log after
  a crash releases the same articles in the same order.

Ticks. On a quiet sequence no article arrives to move the watermark and release the last held ones, so the
worker that owns the sequence sends a tick record (``TICK_KEY``, ``{"tick_ms"}``, `tick_record`) when
`ReorderHold.tick_due` says so; it carries no data and only moves the watermark.

The held articles live in a Faust table (``key`` → ``{"article", "arrival_ms"}``, key = the zero-padded offset
in the sequence), so a crash loses nothing; this class is the in-memory order over them, rebuilt from the
table after recovery.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.codec import dumps

TICK_KEY = b"\x00reorder-hold-tick"  # the key of a tick record in the sequence (no article_id starts with NUL)


@dataclass(order=True)
class Held:
    """One held article; sorts by its key, i.e. its offset in the sequence."""

    key: str
    arrival_ms: int = field(compare=False)
    article: dict[str, Any] = field(compare=False)
    order: tuple[int, int] = field(compare=False, default=(0, 0))  # (event ms, source rank), computed once


def is_tick(key: bytes | None, value: Any) -> bool:
    """Whether a record of the sequence (key, decoded value) is a tick of the reorder hold rather than an article."""
    return key == TICK_KEY and isinstance(value, dict) and "tick_ms" in value


def tick_record(now_ms: int) -> tuple[bytes, bytes]:
    """(key, value) of a tick sent into the sequence at `now_ms`; send it with timestamp `now_ms` as well."""
    return TICK_KEY, dumps({"tick_ms": now_ms})


def tick_due(hold: ReorderHold | None, now_ms: int, slack_ms: int) -> bool:
    """`hold.tick_due(now_ms, slack_ms)`, False before there is a hold (before the first rebuild)."""
    return hold is not None and hold.tick_due(now_ms, slack_ms)


def sequence_key(offset: int) -> str:
    """The hold table's key for the record at `offset` of the sequence: sorts like the offsets."""
    return f"{offset:020d}"


class ReorderHold:
    """Held articles and the order they are released in. `order_of(article)` gives the canonical order
    (event time in ms, source rank): dedup's own, so that the hold and the decision agree.

    The release order is kept sorted as articles come and go (bisect), and the oldest arrival in a heap, so
    a record costs O(log n) plus a list shift, not a sort of everything held (a backlog holds thousands)."""

    def __init__(
        self, hold_ms: int, order_of: Callable[[dict[str, Any]], tuple[int, int]], max_wait_ms: int | None = None
    ) -> None:
        if hold_ms < 0:
            raise ValueError(f"the reorder hold must be >= 0 ms, got {hold_ms}")
        self.hold_ms = hold_ms
        self.max_wait_ms = 2 * hold_ms if max_wait_ms is None else max(max_wait_ms, hold_ms)
        self._order_of = order_of
        self._held: dict[str, Held] = {}
        self._groups: dict[str, list[str]] = {}  # article_id -> keys held, in sequence order
        self._group_rank: dict[str, tuple[int, int, str]] = {}  # article_id -> rank of its first held event
        self._sorted: list[tuple[tuple[int, int, str], str]] = []  # (group rank, key), in release order
        self._arrivals: list[tuple[int, str]] = []  # heap of (arrival, key); stale entries skipped lazily
        self.watermark_ms: int | None = None

    def __len__(self) -> int:
        return len(self._held)

    @staticmethod
    def _article_id(h: Held) -> str:
        return str(h.article.get("article_id", h.key))

    def add(self, key: str, article: dict[str, Any], arrival_ms: int) -> None:
        if key in self._held:
            self._remove(self._held[key])
        h = self._held[key] = Held(key, arrival_ms, article, self._order_of(article))
        aid = self._article_id(h)
        keys = self._groups.setdefault(aid, [])
        bisect.insort(keys, key)
        if keys[0] == key:  # the first event of this article held: it places the group
            self._set_rank(aid, (*h.order, key))
        else:
            bisect.insort(self._sorted, (self._group_rank[aid], key))
        heapq.heappush(self._arrivals, (arrival_ms, key))
        self.observe(arrival_ms)

    def _set_rank(self, aid: str, rank: tuple[int, int, str]) -> None:
        old = self._group_rank.get(aid)
        for key in self._groups[aid]:
            if old is not None:
                i = bisect.bisect_left(self._sorted, (old, key))
                if i < len(self._sorted) and self._sorted[i] == (old, key):
                    del self._sorted[i]
            bisect.insort(self._sorted, (rank, key))
        self._group_rank[aid] = rank

    def _remove(self, h: Held) -> None:
        """Drops one held article that is not at the head of the order (a replaced key)."""
        aid = self._article_id(h)
        rank = self._group_rank[aid]
        i = bisect.bisect_left(self._sorted, (rank, h.key))
        if i < len(self._sorted) and self._sorted[i] == (rank, h.key):
            del self._sorted[i]
        del self._held[h.key]
        self._forget(aid, h.key)

    def _forget(self, aid: str, key: str) -> None:
        self._groups[aid].remove(key)
        self._reanchor(aid)

    def _reanchor(self, aid: str) -> None:
        """After events of `aid` left: drop its group when empty; if its first event left, the next one places it."""
        keys = self._groups[aid]
        if not keys:
            del self._groups[aid], self._group_rank[aid]
        elif self._group_rank[aid][2] not in self._held:
            first = self._held[keys[0]]
            self._set_rank(aid, (*first.order, first.key))

    def observe(self, timestamp_ms: int) -> None:
        """Advances the watermark (a sequence record's timestamp: an article's or a tick's)."""
        if self.watermark_ms is None or timestamp_ms > self.watermark_ms:
            self.watermark_ms = timestamp_ms

    def oldest_arrival_ms(self) -> int | None:
        while self._arrivals:
            arrival_ms, key = self._arrivals[0]
            h = self._held.get(key)
            if h is not None and h.arrival_ms == arrival_ms:
                return arrival_ms
            heapq.heappop(self._arrivals)
        return None

    def ordered(self) -> list[Held]:
        """Every held article in release order (canonical order, one article_id's events kept together)."""
        return [self._held[key] for _, key in self._sorted]

    def release(self) -> list[Held]:
        """Remove and return, in order, what may leave at the current watermark (see the module's rules)."""
        oldest = self.oldest_arrival_ms()
        if oldest is None or self.watermark_ms is None:
            return []
        due_limit = self.watermark_ms - self.hold_ms
        if oldest > due_limit:  # nothing due: the common case costs O(1)
            return []
        cut = 0
        while cut < len(self._sorted) and self._held[self._sorted[cut][1]].arrival_ms <= due_limit:
            cut += 1
        forced_limit = self.watermark_ms - self.max_wait_ms
        if oldest <= forced_limit:
            last = max(i for i, (_, key) in enumerate(self._sorted) if self._held[key].arrival_ms <= forced_limit)
            cut = max(cut, last + 1)
        out = [self._held[key] for _, key in self._sorted[:cut]]
        del self._sorted[:cut]
        touched: set[str] = set()
        for h in out:
            del self._held[h.key]
            aid = self._article_id(h)
            self._groups[aid].remove(h.key)
            touched.add(aid)
        for aid in touched:
            self._reanchor(aid)
        return out

    def tick_due(self, now_ms: int, slack_ms: int) -> bool:
        """Whether a tick should be sent into the sequence now (`now_ms`: the wall clock).

        A tick is needed while articles are held, the oldest is due by the clock, and no record has brought the
        watermark within `slack_ms` of the clock (on a busy sequence the articles themselves move it; ticks are
        for quiet ones). Ticks continue once per interval until the hold is empty: an article due may still
        wait for one that sorts before it."""
        if not len(self):
            return False
        oldest = self.oldest_arrival_ms()
        if oldest is None or now_ms < oldest + self.hold_ms:
            return False
        return self.watermark_ms is None or self.watermark_ms < now_ms - slack_ms

    def reorders(self, released: Iterable[Held]) -> int:
        """How many of `released` are decided after an article that reached the sequence later than them."""
        count, latest = 0, ""
        for h in released:
            if h.key < latest:
                count += 1
            latest = max(latest, h.key)
        return count

    def rebuild(self, table: Iterable[tuple[str, Any]]) -> int:
        """Re-reads the held articles from the hold table after a recovery; returns how many are held."""
        self._held.clear()
        self._groups.clear()
        self._group_rank.clear()
        self._sorted.clear()
        self._arrivals.clear()
        watermark = self.watermark_ms
        for key, value in sorted(table, key=lambda kv: str(kv[0])):
            if isinstance(value, dict) and isinstance(value.get("article"), dict):
                self.add(key, value["article"], int(value.get("arrival_ms") or 0))
        # the watermark starts again from the next sequence record; held articles are never released early
        self.watermark_ms = watermark
        return len(self._held)
