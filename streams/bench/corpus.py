"""Raw article events for benchmarks, made from the BBC corpus in ../shared/data (read in place, never copied).

`Corpus.load()` reads the rows (the 100 natural exact duplicates left out); `Corpus.events(start, n, ...)` makes
the raw_article.v1 events `start .. start+n-1` of one run, a pure function of the index:

- 1 in 100 is a bad event (invalid JSON, no URL, an ftp: URL, an empty body, in turn), refused by normalize;
- 12 in 100 are syndicated copies of an article sent 29 articles earlier: half verbatim on a partner's site
  (dedup: same content), half lightly edited (a dateline and a sign-off: a near duplicate);
- the rest are articles with URLs of their own: the corpus as published on the first pass over it, then, so
  that N may exceed the corpus and still give new stories, every later pass alternates each article's even
  sentences with as many odd sentences of another (half of the mix from either: not a copy of either).

With `html` each body is the page a scraper fetches (`html_page`: navigation, ads, scripts, footer).
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from streams.codec import rfc3339

ROOT = Path(__file__).resolve().parents[2]  # the checkout
DEFAULT_PATH = ROOT.parent / "shared" / "data" / "bbc_news_fulltext.jsonl"
BAD_EVERY = 100  # one bad event in this many
BAD_AT = 57
COPY_SLOTS = frozenset({3, 11, 19, 27, 35, 43, 51, 67, 75, 83, 91, 99})  # 12 in 100 are copies
COPY_LAG = 29  # a copy repeats the article sent this many articles earlier
BAD_KINDS = ("invalid_json", "no_url", "ftp_url", "empty_body")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


class CorpusMissing(FileNotFoundError):
    """The BBC corpus is not where the benchmark reads it; the message says where and why."""


@dataclass(frozen=True)
class Event:
    """One raw event: its record key and value, what it is meant to be, and its event_id."""

    key: bytes | None
    value: bytes
    kind: str  # article, copy_exact, copy_near, or one of BAD_KINDS
    event_id: str | None


class Corpus:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            raise ValueError("the corpus has no rows")
        self.rows = rows

    @classmethod
    def load(cls, path: Path | None = None) -> Corpus:
        path = Path(path) if path is not None else DEFAULT_PATH
        if not path.is_file():
            raise CorpusMissing(
                f"{path} is missing: streams bench reads the BBC corpus from ../shared/data beside the checkout "
                "(real news text, read in place and never copied into the repository); pass --corpus PATH to "
                "read it from elsewhere"
            )
        rows = []
        with path.open("rb") as fh:
            for line in fh:
                row = orjson.loads(line)
                if not row.get("exact_duplicate_of") and row.get("body", "").strip():
                    rows.append(row)
        return cls(rows)

    # -- the plan: what event i is -------------------------------------------------------------------------
    @staticmethod
    def kind_of(i: int) -> str:
        slot = i % BAD_EVERY
        if slot == BAD_AT:
            return BAD_KINDS[(i // BAD_EVERY) % len(BAD_KINDS)]
        if slot in COPY_SLOTS:
            return "copy_exact" if (i // BAD_EVERY + slot) % 2 == 0 else "copy_near"
        return "article"

    @classmethod
    def article_number(cls, i: int) -> int:
        """How many articles (not copies, not bad events) come before event i."""
        full, rest = divmod(i, BAD_EVERY)
        per_block = BAD_EVERY - 1 - len(COPY_SLOTS)
        return full * per_block + sum(1 for s in range(rest) if s != BAD_AT and s not in COPY_SLOTS)

    def story(self, k: int) -> tuple[dict[str, Any], str, str]:
        """(row, title, body) of article number k: the corpus row on the first pass, a mix of two later."""
        n = len(self.rows)
        row = self.rows[k % n]
        p = k // n
        if p == 0:
            return row, row["title"], row["body"]
        other = self.rows[(k * 7 + p * 131 + 1) % n]
        if other is row:
            other = self.rows[(k + 1) % n]
        mine, theirs = _sentences(row["body"]), _sentences(other["body"])
        # as many of one's sentences as of the other's, alternating: neither text holds most of the mix
        mixed = [s for pair in zip(mine[0::2], theirs[1::2], strict=False) for s in pair]
        title = f"{row['title']}: {other['title']}"
        return row, title, "\n\n".join(" ".join(mixed[j : j + 3]) for j in range(0, len(mixed), 3))

    # -- the events ----------------------------------------------------------------------------------------------
    def events(
        self, start: int, n: int, *, html: bool, tag: str, now: datetime | None = None, articles_only: bool = False
    ) -> list[Event]:
        """Events start .. start+n-1 of this run (`tag` makes the URLs and event ids unique to it).

        `articles_only` (the latency phase): every event an article of its own, none refused or dropped."""
        now = now or datetime.now(UTC)
        return list(self._iter(start, n, html=html, tag=tag, now=now, articles_only=articles_only))

    def _iter(self, start: int, n: int, *, html: bool, tag: str, now: datetime, articles_only: bool) -> Iterator[Event]:
        for i in range(start, start + n):
            kind = "article" if articles_only else self.kind_of(i)
            k = i if articles_only else self.article_number(i)
            eid = f"{tag}-{i}"
            if kind in BAD_KINDS:
                yield self._bad(kind, i, eid, tag, now)
                continue
            copy = kind != "article"
            number = max(0, k - COPY_LAG) if copy else k
            row, title, body = self.story(number)
            # published a second apart in the order they are sent (a feed's order; a copy after its original),
            # so the reorder hold in front of dedup waits its hold and not for articles sorting before
            published = now - timedelta(minutes=5, seconds=start + n - i)
            if copy:
                site, source = f"www.partner{i % 7}.example", {"name": f"Partner {i % 7}", "id": f"partner{i % 7}"}
                if kind == "copy_near":
                    body = f"LONDON (Wire) - {body}\n\nAdditional reporting by Wire."
            else:
                site, source = "www.bbc.co.uk", {"name": "BBC News", "id": "bbc"}
            url = f"https://{site}/news/{row['category']}/{tag}-{i}?utm_source=bench&utm_medium=rss"
            event = {
                "event_id": eid,
                "url": url,
                "title": title,
                "body": html_page({**row, "title": title, "body": body}) if html else body,
                "body_format": "html" if html else "text",
                "source": source,
                "published_at": rfc3339(published),
                "language": "en",
            }
            yield Event(url.encode(), orjson.dumps(event), kind, eid)

    def _bad(self, kind: str, i: int, eid: str, tag: str, now: datetime) -> Event:
        row = self.rows[i % len(self.rows)]
        url = f"https://www.bbc.co.uk/news/{row['category']}/{tag}-{i}"
        event: dict[str, Any] = {
            "event_id": eid,
            "url": url,
            "title": row["title"],
            "body": row["body"],
            "body_format": "text",
            "source": {"name": "BBC News", "id": "bbc"},
            "published_at": rfc3339(now),
            "language": "en",
        }
        if kind == "invalid_json":
            return Event(url.encode(), orjson.dumps(event)[:-40], kind, eid)  # cut short: not JSON
        if kind == "no_url":
            del event["url"]
        elif kind == "ftp_url":
            event["url"] = url.replace("https://", "ftp://")
        elif kind == "empty_body":
            event["body"] = "   "
        return Event(url.encode(), orjson.dumps(event), kind, eid)


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(" ".join(text.split())) if s]


def html_page(row: dict[str, Any]) -> str:
    """A page as a scraper fetches it: scripts, nav, ads, the article, related links, banner, footer.

    The corpus keeps some characters as HTML references ("caf&#233;"); in the page they stay references.
    """
    title = html_lib.escape(html_lib.unescape(row["title"]))
    paragraphs = "\n".join(
        f"<p>{html_lib.escape(html_lib.unescape(p))}</p>" for p in row["body"].split("\n\n") if p.strip()
    )
    return f"""<!DOCTYPE html>
<html lang="en-GB"><head><meta charset="utf-8"><title>{title} - BBC News</title>
<meta property="og:title" content="{title}"><link rel="stylesheet" href="/static/site.css">
<script>window.dataLayer=[];
function trackPageView(){{dataLayer.push({{event:"view"}});}}trackPageView();</script>
<style>.ad{{display:block}} .cookie{{position:fixed}}</style></head>
<body class="{row["category"]}">
<a class="skip" href="#main">Skip to content</a>
<header><nav class="site-nav"><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/business">Business</a></li>
<li><a href="/tech">Technology</a></li>
</ul></nav></header>
<div class="ad ad-leaderboard" id="ad-top">Advertisement<iframe src="https://ads.example/slot1"></iframe></div>
<main id="main"><article>
<h1>{title}</h1>
<div class="byline">By BBC News staff</div>
{paragraphs}
<script>trackPageView("article-end")</script>
</article>
<aside class="related"><h2>Related stories</h2><ul><li><a href="/news/1">Markets rally on rate hopes</a></li>
<li><a href="/news/2">Minister resigns over expenses</a></li>
<li><a href="/news/3">Storm warning for the north</a></li></ul>
</aside></main>
<div class="newsletter"><h3>Newsletter</h3><form><input type="email"><button>Sign up</button></form></div>
<div class="cookie-banner" id="cookies">
<p>We use cookies to give you the best online experience. Accept all cookies?</p>
<button onclick="acceptCookies()">Accept</button></div>
<footer><p>Copyright 2025 BBC. All rights reserved.
The BBC is not responsible for the content of external sites.</p>
<ul><li><a href="/terms">Terms of Use</a></li><li><a href="/privacy">Privacy Policy</a></li></ul></footer>
</body></html>"""
