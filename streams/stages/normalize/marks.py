"""Aggregator marks around an article: repeated titles, image credits, translation links and disclaimers.

The patterns are data (streams/data/aggregator_marks.json); this module only decides where they apply. Marks
are whole lines, and only in three places, so prose that mentions a photo or a removal stays text:

- the top: lines equal to the title (whatever their count), credit lines, translation links, "Source: X";
- the end: disclaimers, translation links, credit and source lines, read backwards until the first body line;
- anywhere: a credit line in the strict shape "Photo: Reuters" / "Image from The Guardian" (a caption).

For example, with the title "Talks open",

    Talks open / Talks open / Image from The Guardian / <body> / 阅读中文版 (Read Chinese Version) /
    Disclaimer: This content is aggregated from public sources ... contact us for removal.

keeps only <body>, counts 2 title repeats, credits "The Guardian" (also an original publisher), records the
alternate (zh) and the disclaimer.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

# Decoration around a mark line ("» Read in English", "[Photo: AFP]", "• Source: X") that is not its text.
_TRIM = " \t•·*→←»«>|–—-_~[]{}"
# Words a name may contain in lower case ("Agence France-Presse via Getty Images", "Le Monde", "dpa" is not
# one: lower-case names need the explicit "Photo:" form).
_NAME_JOINERS = frozenset(
    "of the and de du des la le les el los las y e di da del van von der den und et via for at in on & + / -"
    " a an".split()
)
_TRIM_CHARS = frozenset(_TRIM)
_TITLE_TRIM = " .:;,!?\"'“”‘’«»-–—|"
_TITLE_MAX_CHARS = 250  # a first line longer than this is a paragraph, not a headline
_TITLE_FALLBACK_CHARS = 200
_TRAILING_TRANSLATION = r"(?:\s*[(（][^()（）]{1,80}[)）])?"  # "阅读中文版 (Read Chinese Version)"


@dataclass(frozen=True)
class Alternate:
    """The same article in another language: BCP 47 tag, the link's text, and its URL when known."""

    language: str
    label: str
    url: str | None = None


@dataclass(frozen=True)
class Marks:
    """What strip_marks found. `blocks` has one entry per input block: the lines kept (maybe none)."""

    title: str
    blocks: tuple[tuple[str, ...], ...]
    title_repeats_removed: int = 0
    image_credits: tuple[str, ...] = ()
    original_publishers: tuple[str, ...] = ()
    alternates: tuple[Alternate, ...] = ()
    disclaimer: str | None = None


@dataclass(frozen=True)
class _Credit:
    regex: re.Pattern[str]
    publisher: bool
    name_like: bool


@dataclass(frozen=True)
class _Patterns:
    credits: tuple[_Credit, ...]
    credit_max_words: int
    credit_max_chars: int
    publishers: tuple[re.Pattern[str], ...]
    publisher_max_words: int
    translations: tuple[tuple[re.Pattern[str], str | None], ...]  # (regex, language or None: use `name`)
    language_names: dict[str, str]
    disclaimer: re.Pattern[str]
    disclaimer_max_chars: int
    disclaimer_keywords: tuple[str, ...]


@functools.cache
def patterns() -> _Patterns:
    """The compiled patterns of streams/data/aggregator_marks.json (read once; immutable)."""
    raw: dict[str, Any] = json.loads(
        resources.files("streams").joinpath("data/aggregator_marks.json").read_text(encoding="utf-8")
    )
    flags = re.IGNORECASE
    credits = raw["image_credits"]
    links = raw["translation_links"]
    names: dict[str, str] = {k.lower(): v for k, v in links["language_names"].items()}
    alternation = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    translations: list[tuple[re.Pattern[str], str | None]] = [
        (re.compile(f"(?:{p['regex']}){_TRAILING_TRANSLATION}", flags), p["language"]) for p in links["patterns"]
    ]
    translations += [
        (re.compile(f"(?:{t.replace('{names}', alternation)}){_TRAILING_TRANSLATION}", flags), None)
        for t in links["templates"]
    ]
    disclaimers = raw["disclaimers"]
    return _Patterns(
        credits=tuple(
            _Credit(re.compile(p["regex"], flags), bool(p.get("publisher")), bool(p.get("name_like")))
            for p in credits["patterns"]
        ),
        credit_max_words=int(credits["max_words"]),
        credit_max_chars=int(credits["max_chars"]),
        publishers=tuple(re.compile(p["regex"], flags) for p in raw["original_publishers"]["patterns"]),
        publisher_max_words=int(raw["original_publishers"]["max_words"]),
        translations=tuple(translations),
        language_names=names,
        disclaimer=re.compile("|".join(f"(?:{p})" for p in disclaimers["patterns"]), flags),
        disclaimer_max_chars=int(disclaimers["max_chars"]),
        disclaimer_keywords=tuple(k.lower() for k in disclaimers["keywords"]),
    )


def image_credit(line: str) -> tuple[str, bool] | None:
    """("The Guardian", True) for "Image from The Guardian": the credit, and whether it names a publisher."""
    p = patterns()
    for candidate in _candidates(line, p.credit_max_chars):
        for credit in p.credits:
            m = credit.regex.fullmatch(candidate)
            if not m:
                continue
            value = _value(m["credit"])
            if _acceptable(value, p.credit_max_words, name_like=credit.name_like):
                return value, credit.publisher
    return None


def original_publisher(line: str) -> str | None:
    """ "Reuters" for "Source: Reuters" or "Originally published by Reuters"."""
    p = patterns()
    for candidate in _candidates(line, p.credit_max_chars):
        for regex in p.publishers:
            m = regex.fullmatch(candidate)
            if m:
                value = _value(m["publisher"])
                if _acceptable(value, p.publisher_max_words, name_like=True):
                    return value
    return None


def translation_language(line: str) -> str | None:
    """The language a translation link points to ("阅读中文版 (Read Chinese Version)" -> "zh"), or None."""
    if len(line) > patterns().credit_max_chars and not _has_trim_ends(line):
        return None  # a paragraph, not a link: no candidate (and kept out of the cache)
    return _translation_language(line)


@functools.lru_cache(maxsize=8192)  # anchor texts repeat on every page of a site ("Home", "News", ...); short
def _translation_language(line: str) -> str | None:
    p = patterns()
    for candidate in _candidates(line, p.credit_max_chars):
        for regex, language in p.translations:
            m = regex.fullmatch(candidate)
            if m:
                return language or p.language_names.get(m["name"].lower())
    return None


def is_disclaimer(line: str) -> bool:
    """True for an aggregation disclaimer line ("... contact us for removal.")."""
    p = patterns()
    if len(line) > p.disclaimer_max_chars or not _has_keyword(line, p):
        return False
    return p.disclaimer.search(line.strip(_TRIM)) is not None


def may_hold_disclaimer(text: str) -> bool:
    """Cheap test on a whole page: could any of its lines be a disclaimer?"""
    return _has_keyword(text, patterns())


def _has_keyword(text: str, p: _Patterns) -> bool:
    # The regexes cost ~0.1 ms on a long paragraph; a substring test rules out almost every line first.
    lowered = text.lower()
    return any(k in lowered for k in p.disclaimer_keywords)


def find_disclaimer(lines: Iterable[str]) -> str | None:
    """The disclaimer lines among `lines` (e.g. a whole HTML page), joined, or None."""
    found: list[str] = []
    for line in lines:
        if is_disclaimer(line) and line not in found:
            found.append(line)
    return " ".join(found) or None


def strip_marks(blocks: Sequence[Sequence[str]], title: str | None) -> Marks:
    """Removes the marks from `blocks` (paragraphs of lines) and reports them.

    `title` is the article's title; when None, the first line that is not itself a mark is the title (removed
    from the text when it reads like a headline, else kept and shortened into a title).
    """
    flat = [(b, line) for b, block in enumerate(blocks) for line in block]
    removed: set[int] = set()
    credits: dict[int, tuple[str, bool]] = {}
    publishers: dict[int, str] = {}
    alternates: dict[int, Alternate] = {}
    disclaimers: dict[int, str] = {}

    title, title_key = _choose_title(flat, title)
    repeats = 0

    def take_mark(i: int, line: str, *, top: bool) -> bool:
        if (credit := image_credit(line)) is not None:
            credits[i] = credit
        elif (language := translation_language(line)) is not None:
            alternates[i] = Alternate(language=language, label=line)
        elif (publisher := original_publisher(line)) is not None:
            publishers[i] = publisher
        elif not top and is_disclaimer(line):
            disclaimers[i] = line
        else:
            return False
        removed.add(i)
        return True

    top = 0
    while top < len(flat):
        line = flat[top][1]
        if title_key and _title_key(line) == title_key:
            repeats += 1
            removed.add(top)
        elif not take_mark(top, line, top=True):
            break
        top += 1
    end = len(flat) - 1
    while end >= top and take_mark(end, flat[end][1], top=False):
        end -= 1
    longest = patterns().credit_max_chars
    for i in range(top, end + 1):  # captions between paragraphs: only the strict credit shape
        line = flat[i][1]
        if len(line) > longest and not _has_trim_ends(line):
            continue  # a paragraph: longer than any credit, whatever decoration is trimmed
        if (credit := image_credit(line)) is not None:
            credits[i] = credit
            removed.add(i)

    kept: list[list[str]] = [[] for _ in blocks]
    for i, (b, line) in enumerate(flat):
        if i not in removed:
            kept[b].append(line)
    ordered_credits = [credits[i] for i in sorted(credits)]
    return Marks(
        title=title,
        blocks=tuple(tuple(lines) for lines in kept),
        title_repeats_removed=repeats,
        image_credits=_unique(value for value, _ in ordered_credits),
        original_publishers=_unique(
            [value for value, is_publisher in ordered_credits if is_publisher]
            + [publishers[i] for i in sorted(publishers)]
        ),
        alternates=tuple(alternates[i] for i in sorted(alternates)),
        disclaimer=" ".join(disclaimers[i] for i in sorted(disclaimers)) or None,
    )


def _choose_title(flat: Sequence[tuple[int, str]], title: str | None) -> tuple[str, str]:
    """(title, key of lines to remove as repeats); an empty key removes nothing."""
    if title:
        return title, _title_key(title)
    for _, line in flat:
        if image_credit(line) or translation_language(line) or original_publisher(line):
            continue
        if _headline_like(line):
            return line, _title_key(line)
        return _shorten(line), ""  # a paragraph, not a headline: it stays in the text
    return "", ""


def _headline_like(line: str) -> bool:
    # Headlines are short and do not end like a sentence or a lead-in ("Delegations met on Tuesday.").
    return len(line) <= _TITLE_MAX_CHARS and not line.rstrip().endswith((".", ",", ";", ":"))


def _shorten(line: str) -> str:
    if len(line) <= _TITLE_FALLBACK_CHARS:
        return line
    cut = line[:_TITLE_FALLBACK_CHARS].rsplit(" ", 1)[0]
    return cut.rstrip(_TITLE_TRIM) + "…"


def _title_key(text: str) -> str:
    return " ".join(text.split()).casefold().strip(_TITLE_TRIM)


def _has_trim_ends(line: str) -> bool:
    """Could stripping the decoration change the length of `line`? (Else a long line has no candidate.)"""
    return line[:1] in _TRIM_CHARS or line[-1:] in _TRIM_CHARS


def _candidates(line: str, max_chars: int) -> list[str]:
    text = line.strip(_TRIM)
    if not text or len(text) > max_chars:
        return []
    if text.startswith("(") and text.endswith(")"):
        return [text, text[1:-1].strip()]  # "(Photo: Reuters)"
    return [text]


def _value(text: str) -> str:
    return text.strip().rstrip(".").strip(_TRIM)


def _acceptable(value: str, max_words: int, *, name_like: bool) -> bool:
    words = value.split()
    if not words or len(words) > max_words:
        return False
    return not name_like or all(_name_word(w) for w in words)


def _name_word(word: str) -> bool:
    first = word.lstrip("\"'“‘(")[:1]
    if not first:
        return True
    # capitalised, a digit, or a script without case (CJK, Arabic...): names; else only the joiners
    return not first.islower() or word.lower() in _NAME_JOINERS


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))
