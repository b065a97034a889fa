"""The normalize stage: one raw article event (bytes) in, a clean article.v1 document or a reasoned refusal.

Rule: parse with orjson, validate against raw_article.v1, refuse bad input with a rejection.v1 reason, else
canonicalise the URL, extract and clean the text, strip aggregator marks into attribution, alternates and
flags, and stamp ids. For example

    {"url": "HTTPS://News.Example.com/a?utm_source=x#top", "title": "Talks open",
     "body": "Talks open\\n\\nImage from The Guardian\\n\\nDelegations met.\\n\\nRead in English"}

becomes an article with canonical_url "https://news.example.com/a", domain "example.com", title "Talks open",
text "Delegations met.", attribution.image_credits ["The Guardian"], alternates [{"language": "en", ...}],
article_id = short_hash(canonical_url) and revision = short_hash(text); while `b'{"url": 42, "body": "x"}'`
becomes Rejected("schema_violation", "...", {"pointer": "/url", "keyword": "type"}).

Pure: no I/O, no clock (ingested_at is the record's timestamp, else the injected `now`), same output for the
same input. Every bad input is a Rejected value; only a bug in this code can raise.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import orjson
from dateutil import parser as dateparser

from streams import codec
from streams.outcomes import Normalized, Rejected
from streams.schemas import first_violation
from streams.stages.normalize import html, interstitials, marks, text, urls

if TYPE_CHECKING:
    from streams.settings import Settings

NORMALIZE_VERSION = "2"  # bump when the same input would give a different article (2: plain-text fields, walls)
RAW_SCHEMA = "raw_article.v1.json"
# Levels of nesting the carried metadata may have. orjson reads 1,024 but writes 254 (the article adds one), and
# no producer needs more than a handful: deeper events are refused as too_large, so every article encodes.
MAX_METADATA_DEPTH = 64
_UTF8_BOM = b"\xef\xbb\xbf"  # RFC 8259 lets parsers ignore it; some producers (.NET, PowerShell) write it
_MESSAGE_CHARS = 300
_URL_DETAIL_CHARS = 500
# Zone names dateutil may meet in feed dates; RFC 822 ones (EST, PDT...) are handled by email.utils first.
# An ambiguous name (IST: India, Ireland or Israel) takes its most common newsroom meaning.
_ZONES = {
    name: timezone(timedelta(hours=hours))
    for name, hours in {
        "UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "BST": 1, "CET": 1, "CEST": 2, "WEST": 1, "EET": 2,
        "EEST": 3, "MSK": 3, "IST": 5.5, "HKT": 8, "SGT": 8, "JST": 9, "KST": 9, "AEST": 10, "AEDT": 11,
        "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    }.items()
}  # fmt: skip
# Two defaults that differ in every date field: a date parsed the same under both was fully given
# ("12 Aug 2025"), one that differs was missing a part ("12 Aug" would take the year from the default).
_DEFAULTS = (datetime(2000, 1, 1), datetime(2001, 2, 2))
_RFC822 = re.compile(r"(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}")
# The shape almost every feed uses ("Tue, 12 Aug 2025 09:30:00 +0200"), read without email.utils (~15 µs):
# _rfc822_plain gives exactly what email.utils gives for it (tested), and leaves every other spelling to it.
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_RFC822_PLAIN = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"([1-9]\d{3}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})"  # years under 100 email.utils moves
)


@dataclass(frozen=True)
class NormalizeConfig:
    """What normalize needs from the settings."""

    max_event_bytes: int = 2 * 1024 * 1024  # larger raw events are refused as too_large, before decoding

    @classmethod
    def from_settings(cls, s: Settings) -> NormalizeConfig:
        return cls(max_event_bytes=s.max_event_bytes)


def normalize(
    payload: bytes, *, origin: dict[str, Any], now: datetime, config: NormalizeConfig
) -> Normalized | Rejected:
    """One raw article event -> Normalized(article.v1 document) or Rejected(reason, message, details)."""
    if payload is None:  # a tombstone reaches us as a record without value
        return Rejected("invalid_json", "The record has no value (a tombstone), so there is no event.", {"position": 0})
    size = len(payload)
    if size > config.max_event_bytes:
        return Rejected(
            "too_large",
            f"The event is {size} bytes, over the limit of {config.max_event_bytes} bytes.",
            {"size": size, "limit": config.max_event_bytes},
        )
    parsed = _parse(payload)
    if isinstance(parsed, Rejected):
        return parsed
    violation = first_violation(RAW_SCHEMA, parsed)
    if violation is not None:
        where = violation.pointer or "the event"
        return Rejected(
            "schema_violation",
            _sentence(f"The event does not match raw_article.v1 at {where}: {violation.message}"),
            {"pointer": violation.pointer, "keyword": violation.keyword},
        )
    return _article(parsed, origin=origin, now=now)


def parse_published(value: str | None) -> datetime | None:
    """A feed date in UTC: RFC 3339/ISO 8601 (no zone = UTC), RFC 822, or what dateutil reads unambiguously.

    None when missing or unreadable: a wrong date is worse than none, and "now" would be a lie.
    """
    if not value or not value.strip():
        return None
    raw = value.strip()
    parsed = _iso(raw) or _rfc822(raw) or _dateutil(raw)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None  # year 1 minus an offset, and the like


def _article(raw: dict[str, Any], *, origin: dict[str, Any], now: datetime) -> Normalized | Rejected:
    url_text: str = raw["url"]
    canonical = urls.canonicalize(url_text)
    if isinstance(canonical, urls.BadUrl):
        return Rejected(
            "bad_url",
            _sentence(f"The url is not usable: {canonical.reason}"),
            {"url": _refused_url(url_text)},
        )
    metadata = _safe_metadata(raw["metadata"]) if isinstance(raw.get("metadata"), dict) else None
    if isinstance(metadata, int):
        return Rejected(
            "too_large",
            f"The event's metadata nests {metadata} levels deep, over the limit of {MAX_METADATA_DEPTH}.",
            {"depth": metadata, "depth_limit": MAX_METADATA_DEPTH},
        )
    base_url = url_text.strip()
    body = text.clean(raw["body"])
    raw_title = text.clean_inline(raw.get("title"))
    content: html.HtmlContent | None = None
    if raw.get("body_format") == "html":
        content = html.extract_html(body.text, base_url=base_url, want_title=not raw_title.text)
        blocks = content.blocks
        title = raw_title.text or content.title
    else:
        # a text body is plain text: markup a scraper left in it is not (see text.strip_markup)
        blocks = text.text_blocks(text.strip_markup(body.text, paragraphs=True))
        title = raw_title.text
    found = marks.strip_marks([block.lines for block in blocks], title or None)
    # In HTML a line break is a <br> the author wrote; in plain text it is mostly hard wrapping.
    joiner = "\n" if content is not None else " "
    article_text = "\n\n".join(joiner.join(lines) for lines in found.blocks if lines)
    # a one-line bot check ("Checking your browser ... Ray ID: 7a1b") reads as a headline and leaves no text
    stand_in = interstitials.detect(article_text or found.title)
    if stand_in is not None:
        return Rejected(
            "not_an_article",
            f"The text is a {stand_in.kind.replace('_', ' ')} the site served instead of the article; "
            "fetch the article again.",
            {"kind": stand_in.kind, "signals": list(stand_in.signals)},
        )
    if not article_text:
        return Rejected(
            "empty_text",
            "The event has no article text left after extraction and cleaning"
            + (" (only a title)." if found.title_repeats_removed else "."),
        )

    rendered: str | None = None
    disclaimer = found.disclaimer
    alternates = list(found.alternates)
    credits = list(found.image_credits)
    publishers = list(found.original_publishers)
    if content is not None:
        # marks removed from the text leave the HTML too, when they were a whole element
        drop = [b.element for b, kept in zip(blocks, found.blocks, strict=True) if b.element is not None and not kept]
        rendered = html.render_html(content, drop=drop, base_url=base_url)
        if disclaimer is None and marks.may_hold_disclaimer(html.page_text(content)):
            disclaimer = marks.find_disclaimer(html.page_lines(content))  # e.g. in a footer trafilatura dropped
        alternates = _with_links(alternates, content.links, base_url=base_url, own=canonical.url)
        for caption in content.captions:
            if (credit := marks.image_credit(caption)) is not None:
                credits.append(credit[0])
                if credit[1]:
                    publishers.append(credit[0])

    source = raw.get("source") or {}
    language = text.language_tag(raw.get("language")) or (content.language if content is not None else None)
    published = parse_published(raw.get("published_at"))
    article: dict[str, Any] = {
        "schema": "article.v1",
        "article_id": codec.short_hash(canonical.url),
        "revision": codec.short_hash(article_text),
        "event_id": _plain_id(raw.get("event_id")),
        "url": urls.public_spelling(url_text),
        "canonical_url": canonical.url,
        "host": canonical.host,
        "domain": canonical.domain,
        "title": found.title,
        "text": article_text,
        "html": rendered,
        "published_at": codec.rfc3339(published) if published is not None else None,
        "ingested_at": codec.rfc3339(_ingested_at(origin, now)),
        "language_hint": language,
        "authors": list(_unique(text.clean_inline(a).text for a in raw.get("authors") or ())),
        "source": {
            "name": text.clean_inline(source.get("name")).text or canonical.domain,
            "id": _plain_id(source.get("id")),
            "url": _web_link(source.get("url")),
            "priority": source.get("priority"),
        },
        "attribution": {
            "image_credits": list(_unique(credits)),
            "original_publishers": list(_unique(publishers)),
        },
        "alternates": [
            {"language": a.language, "label": a.label, "url": urls.public_spelling(a.url) if a.url else None}
            for a in alternates
        ],
        "flags": {
            "aggregated": disclaimer is not None,
            "disclaimer": disclaimer,
            "title_repeats_removed": found.title_repeats_removed,
            "mojibake_fixed": body.mojibake_fixed or raw_title.mojibake_fixed,
        },
        "origin": {k: origin.get(k) for k in ("topic", "partition", "offset", "timestamp_ms")},
        "pipeline": {"normalize": NORMALIZE_VERSION},
    }
    if metadata is not None:
        article["metadata"] = metadata
    return Normalized(article)


def _parse(payload: bytes) -> Any:
    offset = 0
    data: Any = payload
    if isinstance(payload, bytes | bytearray) and payload[:3] == _UTF8_BOM:
        data, offset = payload[3:], 3
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        position = exc.pos
        if isinstance(data, bytes | bytearray | memoryview):
            try:
                decoded = bytes(data).decode("utf-8")
            except UnicodeDecodeError as bad:
                return Rejected(
                    "invalid_utf8",
                    f"The event is not valid UTF-8: byte {bad.start + offset} cannot be decoded.",
                    {"position": bad.start + offset},
                )
            # orjson counts characters; a byte offset is what a tool replaying the payload can use
            position = len(decoded[: exc.pos].encode("utf-8")) + offset
        return Rejected(
            "invalid_json",
            _sentence(f"The event is not valid JSON: {exc.msg} at byte {position}"),
            {"position": position},
        )


def _ingested_at(origin: dict[str, Any], now: datetime) -> datetime:
    ms = origin.get("timestamp_ms")
    # Kafka says "no timestamp" with -1; bool is an int to Python but never a timestamp
    if isinstance(ms, int) and not isinstance(ms, bool) and ms >= 0:
        try:
            return codec.utc_from_ms(ms)
        except (OverflowError, OSError, ValueError):
            pass
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _with_links(
    alternates: list[marks.Alternate], links: list[html.Link], *, base_url: str, own: str
) -> list[marks.Alternate]:
    """Text alternates get their URL from the page's anchor with the same label; hreflang links add more."""
    unresolved = {a.label for a in alternates if a.url is None}
    by_label: dict[str, str] = {}
    extra: list[marks.Alternate] = []
    for link in links:
        language = text.language_tag(link.hreflang) if link.hreflang else marks.translation_language(link.text)
        if language is None and link.text not in unresolved:
            continue  # most anchors: navigation, related stories
        url = html.resolve_url(link.href, base_url)
        if url is not None and link.text in unresolved:
            by_label.setdefault(link.text, url)
        if language is None or language.lower() == "x-default":
            continue
        if url is not None:
            same = urls.canonicalize(url)
            if isinstance(same, urls.CanonicalUrl) and same.url == own:
                continue  # the page naming itself in its own language
        extra.append(marks.Alternate(language=language, label=link.text or language, url=url))
    merged = [a if a.url else marks.Alternate(a.language, a.label, by_label.get(a.label)) for a in alternates]
    seen = {(a.language, a.url) for a in merged}
    for alt in extra:
        if (alt.language, alt.url) not in seen:
            seen.add((alt.language, alt.url))
            merged.append(alt)
    return merged


def _iso(raw: str) -> datetime | None:
    try:
        return datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in "Zz" else raw)
    except ValueError:
        return None


def _rfc822(raw: str) -> datetime | None:
    # email.utils reads almost anything, silently dropping a zone it does not know: only RFC 822 shapes
    # ("Tue, 12 Aug 2025 09:30:00 +0200") go to it, and an unknown zone name is left to dateutil.
    plain = _rfc822_plain(raw)
    if plain is not None:
        return plain
    if not _RFC822.match(raw):
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None and raw.rsplit(None, 1)[-1].isalpha():
        return None
    return parsed


def _rfc822_plain(raw: str) -> datetime | None:
    """The common RFC 822 spelling with a numeric zone, or None (then email.utils decides, also on bad values)."""
    m = _RFC822_PLAIN.fullmatch(raw)
    if m is None:
        return None
    day, month, year, hour, minute, second, sign, zh, zm = m.groups()
    if sign == "-" and zh == zm == "00":
        return None  # "-0000": "no zone information" to email.utils, a naive time
    offset = (int(zh) * 3600 + int(zm) * 60) * (-1 if sign == "-" else 1)
    try:
        zone = timezone(timedelta(seconds=offset))
        return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=zone)
    except ValueError:
        return None


def _dateutil(raw: str) -> datetime | None:
    results = []
    for default in _DEFAULTS:
        try:
            results.append(dateparser.parse(raw, default=default, tzinfos=_zone))
        except (ValueError, OverflowError, TypeError):
            return None
    first, second = results
    if first.date() != second.date():
        return None  # a date part was missing and would have come from the default
    return first


def _zone(name: str | None, offset: int | None) -> Any:
    # Unknown names read as UTC (as a naive time would), not as the host's local zone, and without a warning.
    if offset is not None:
        return offset
    return _ZONES.get((name or "").upper(), UTC)


def _sentence(message: str) -> str:
    # messages quote the event's values (a schema violation names the bad value): no markup in them either
    message = " ".join(text.strip_markup(message, entities=False).split())
    if len(message) > _MESSAGE_CHARS:
        message = message[: _MESSAGE_CHARS - 1] + "…"
    return message if message.endswith((".", "…")) else message + "."


def _plain_id(value: Any) -> Any:
    """An identifier as sent (ids never hold markup; tags are removed from one that does)."""
    return text.strip_markup(value, entities=False) if isinstance(value, str) else value


def _web_link(value: Any) -> str | None:
    """A link to a web page as sent, publicly spelt; None for other schemes (javascript:, data:, file: ...)."""
    if not isinstance(value, str) or not value.strip():
        return None
    if urls.scheme_of(value) not in (None, "http", "https"):
        return None
    return urls.public_spelling(value.strip())


_ACTIVE_SCHEMES = frozenset({"javascript", "vbscript", "livescript"})


def _refused_url(value: str) -> str:
    """A refused URL as details.url shows it: its first characters, publicly spelt, and a script URL made inert by
    escaping the colon of its scheme ("javascript%3Aalert(1)"), since whatever shows rejections may render the
    field as a link. The payload keeps the original."""
    shown = urls.public_spelling(value[:_URL_DETAIL_CHARS])
    if urls.scheme_of(shown) in _ACTIVE_SCHEMES | {"data"}:
        shown = shown.replace(":", "%3A", 1)
    return shown


_INERT_DATA = re.compile(r"\s*data:image/(?:png|jpe?g|gif|webp|avif)[;,]", re.IGNORECASE)


def _safe_metadata(metadata: dict[str, Any]) -> dict[str, Any] | int:
    """The producer's metadata, unchanged except where it could turn active in a consumer's page; or, when it
    nests deeper than MAX_METADATA_DEPTH, that depth.

    Strings and keys holding markup lose their tags; a string that is a script URL (javascript:, vbscript:,
    a data: URL other than a plain image) becomes null. Iterative: orjson reads 1,024 levels, past Python's
    recursion limit.
    """
    out: dict[str, Any] = {}
    stack: list[tuple[Any, Any, int]] = [(metadata, out, 1)]
    deepest = 1
    while stack:
        source, target, depth = stack.pop()
        deepest = max(deepest, depth)
        for key, value in source.items() if isinstance(source, dict) else enumerate(source):
            copied: Any
            if isinstance(value, dict):
                copied = {}
                stack.append((value, copied, depth + 1))
            elif isinstance(value, list):
                copied = []
                stack.append((value, copied, depth + 1))
            elif isinstance(value, str):
                copied = _safe_string(value)
            else:
                copied = value
            if isinstance(target, dict):
                target[text.strip_markup(str(key), entities=False)] = copied
            else:
                target.append(copied)
    return out if deepest <= MAX_METADATA_DEPTH else deepest


def _safe_string(value: str) -> str | None:
    scheme = urls.scheme_of(value) if ":" in value else None
    if scheme in _ACTIVE_SCHEMES or (scheme == "data" and not _INERT_DATA.match(value)):
        return None
    return text.strip_markup(value, entities=False)


def _unique(values: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))
