"""Pages that stand in for an article: cookie walls, bot checks, paywalls, ad-blocker walls (never canonicals).

The signals are data (streams/data/interstitials.json); this module only measures how much of a text they
cover. A text is such a page when it is short, holds at least two signals close together, and almost nothing
outside the stretch they cover but a headline. For example

    Grüne: Regierung muss bei Schienen-Elektrifizierung zulegen / OK / Wir setzen auf unserer Website Cookies
    und andere Technologien ein, ... Weitere Informationen, auch zur Deaktivierung der Cookies, finden Sie in
    unserer Datenschutzerklärung. / Datenschutz

is a cookie_wall (signals "setzen auf unserer Website Cookies", "Deaktivierung der Cookies",
"Datenschutzerklärung"; outside them only the headline and "OK"), while an article that mentions cookies,
or ends with a consent banner after its paragraphs, is not: its paragraphs lie outside the signals.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from streams import schemas

_SIGNALS_SHOWN = 5  # signals quoted in a rejection's details
_SIGNAL_CHARS = 80
_HEADLINE_MAX_CHARS = 250  # a first line up to this long, before the first signal, is the page's headline


@dataclass(frozen=True)
class Interstitial:
    """What a text was found to be: its kind and the signals found, in text order."""

    kind: str
    signals: tuple[str, ...]


@dataclass(frozen=True)
class _Group:
    keyword: str
    regexes: tuple[re.Pattern[str], ...]
    kind: str | None  # None: a shared signal


@dataclass(frozen=True)
class _Rules:
    kinds: tuple[str, ...]
    groups: tuple[_Group, ...]
    by_keyword: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]  # every regex under its keyword, for the gate
    max_chars: int
    max_residue_chars: int
    min_signals: int
    max_chars_per_signal: int
    window_chars: int


@functools.cache
def rules() -> _Rules:
    """The compiled rules of streams/data/interstitials.json (read once; immutable)."""
    raw: dict[str, Any] = json.loads(
        resources.files("streams").joinpath("data/interstitials.json").read_text(encoding="utf-8")
    )
    flags = re.IGNORECASE | re.MULTILINE

    def groups(entries: list[dict[str, Any]], kind: str | None) -> list[_Group]:
        return [_Group(e["keyword"].lower(), tuple(re.compile(r, flags) for r in e["regexes"]), kind) for e in entries]

    allowed = schemas.enum("rejection.v1.json", "details", "kind")  # the contract lists the kinds, not this file
    if tuple(raw["kinds"]) != allowed:
        raise ValueError(f"interstitials.json kinds {tuple(raw['kinds'])} differ from rejection.v1 {allowed}")
    compiled: list[_Group] = []
    for kind, entries in raw["kinds"].items():
        compiled += groups(entries, kind)
    compiled += groups(raw["shared"], None)
    by_keyword: dict[str, tuple[re.Pattern[str], ...]] = {}
    for group in compiled:
        by_keyword[group.keyword] = by_keyword.get(group.keyword, ()) + group.regexes
    return _Rules(
        kinds=tuple(raw["kinds"]),
        groups=tuple(compiled),
        by_keyword=tuple(by_keyword.items()),
        max_chars=int(raw["max_chars"]),
        max_residue_chars=int(raw["max_residue_chars"]),
        min_signals=int(raw["min_signals"]),
        max_chars_per_signal=int(raw["max_chars_per_signal"]),
        window_chars=int(raw["window_chars"]),
    )


def kinds() -> tuple[str, ...]:
    """The kinds the rules know, in their order (cookie_wall, bot_check, paywall, adblock_wall)."""
    return rules().kinds


def detect(text: str) -> Interstitial | None:
    """The kind of stand-in page `text` (a cleaned article text) is, or None for an article."""
    r = rules()
    if len(text) > r.max_chars:
        return None
    # Cheap tests first (an article costs ~10 µs here): a signal must start near the top, another end near the end.
    newline = text.find("\n")
    head_end = (newline if 0 <= newline <= _HEADLINE_MAX_CHARS else 0) + r.window_chars
    if not _signal_within(text, 0, head_end) or not _signal_within(text, max(0, len(text) - r.window_chars), len(text)):
        return None
    lowered = text.lower()
    found: list[tuple[int, int, str | None]] = []
    for group in r.groups:
        if group.keyword in lowered:
            for regex in group.regexes:
                found += [(m.start(), m.end(), group.kind) for m in regex.finditer(text) if m.end() > m.start()]
    if len(found) < r.min_signals:
        return None
    spans = _merged(found)
    if len(spans) < r.min_signals:
        return None
    start, end = spans[0][0], spans[-1][1]
    if (end - start) / len(spans) > r.max_chars_per_signal:
        return None  # signals scattered through a long text: an article that talks about these things
    if _residue(text, start, end) > r.max_residue_chars:
        return None  # paragraphs outside the signals: an article with a banner, not a banner
    votes = {kind: 0 for kind in r.kinds}
    for _, _, kinds_in_span in spans:
        for kind in kinds_in_span:
            votes[kind] += 1
    best = max(r.kinds, key=lambda k: votes[k])  # max keeps the first of equals: the file's order
    if votes[best] == 0:
        return None  # only shared signals (privacy policy, terms): not enough to name a kind
    shown = tuple(" ".join(text[s:e].split())[:_SIGNAL_CHARS] for s, e, _ in spans[:_SIGNALS_SHOWN])
    return Interstitial(best, shown)


def _signal_within(text: str, start: int, end: int) -> bool:
    """Does a signal lie in text[start:end] (give or take the length of a phrase at either edge)?"""
    lo, hi = max(0, start - _SIGNAL_CHARS), min(len(text), end + _SIGNAL_CHARS)
    window = text[lo:hi].lower()
    # a plain loop over (keyword, regexes) pairs: ~0.1 µs a keyword, the cost of an article here
    for keyword, regexes in rules().by_keyword:
        if keyword in window:
            for regex in regexes:
                if regex.search(text, lo, hi):
                    return True
    return False


def _merged(found: list[tuple[int, int, str | None]]) -> list[tuple[int, int, set[str]]]:
    """Overlapping matches (two regexes on one phrase) count once; each span keeps the kinds that matched it."""
    spans: list[tuple[int, int, set[str]]] = []
    for start, end, kind in sorted(found):
        if spans and start < spans[-1][1]:
            last_start, last_end, last_kinds = spans[-1]
            spans[-1] = (last_start, max(last_end, end), last_kinds | ({kind} if kind else set()))
        else:
            spans.append((start, end, {kind} if kind else set()))
    return spans


def _residue(text: str, start: int, end: int) -> int:
    """Letters and digits outside [start, end), a headline line before the first signal not counted."""
    before = text[:start]
    newline = before.find("\n")
    first_line = before if newline < 0 else before[:newline]
    if newline >= 0 and len(first_line) <= _HEADLINE_MAX_CHARS:
        before = before[newline:]
    elif newline < 0 and len(before) <= _HEADLINE_MAX_CHARS:
        before = ""  # "Headline - News Cookie-Informationen...": the headline runs into the wall
    return sum(ch.isalnum() for ch in before) + sum(ch.isalnum() for ch in text[end:])
