"""Figures enricher: numbers with their unit and kind (area, distance, people, rate, money, percent, mass).

Rule: a number (digits with thousands separators and decimals, or an English number word up to ninety-nine, with
"thousand/million/billion"), an optional qualifier before it ("approximately", "about", "around", "nearly" ...
-> approximate), and a unit after it (or a currency before it); "per day / a week ..." after a number makes it a
rate. Each figure keeps its surface text and offset, its value in the unit written, and a normalised value in a
base unit (km² for area, km for distance, kg for mass). For example
"approximately 90,000 square kilometers" -> area 90000 km²; "six miles" -> distance 6 mi, normalised 9.66 km;
"around 110,000 troops" -> people 110000; "1,000 per day" -> rate 1000 per day; "£4.2m" -> money 4200000 GBP.
A bare number without a unit ("in 2018", "three sections") is not a figure.

Regular expressions over the text (no model, no network): about 200 µs for a 2 KB BBC article. Unit words are
English; symbols (%, $, €, £, km, km²) are found in any language.
"""

from __future__ import annotations

import math
import re
from typing import Any

NAME = "figures"
VERSION = "1"

_UNITS_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "a dozen": 12, "dozen": 12, "a hundred": 100,
    "a thousand": 1000, "hundred": 100,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12, "k": 1e3, "m": 1e6, "mn": 1e6, "bn": 1e9}
# unit text (lower case, spaces normalised) -> (kind, unit shown, factor to the base unit, base unit)
_UNITS: dict[str, tuple[str, str, float, str]] = {}
for words, spec in (
    (("square kilometres", "square kilometers", "square km", "sq km", "sq. km", "km²", "km2"), ("area", "km²", 1.0)),
    (("square miles", "square mile", "sq mi", "sq. mi", "mi²"), ("area", "mi²", 2.589988110336)),
    (("square metres", "square meters", "m²", "sq m"), ("area", "m²", 1e-6)),
    (("hectares", "hectare", "ha"), ("area", "ha", 0.01)),
    (("acres", "acre"), ("area", "acre", 0.00404685642)),
    (("kilometres", "kilometers", "kilometre", "kilometer", "km"), ("distance", "km", 1.0)),
    (("miles", "mile", "mi"), ("distance", "mi", 1.609344)),
    (("metres", "meters", "metre", "meter"), ("distance", "m", 0.001)),
    (("centimetres", "centimeters", "centimetre", "centimeter", "cm"), ("distance", "cm", 0.00001)),
    (("millimetres", "millimeters", "millimetre", "millimeter", "mm"), ("distance", "mm", 0.000001)),
    (("feet", "foot", "ft"), ("distance", "ft", 0.0003048)),
    (("tonnes", "tonne", "tons", "ton"), ("mass", "t", 1000.0)),
    (("kilograms", "kilogram", "kg"), ("mass", "kg", 1.0)),
    (("per cent", "percent", "%", "percentage points"), ("percent", "%", 1.0)),
):
    kind, shown, factor = spec
    base = {"area": "km²", "distance": "km", "mass": "kg", "percent": "%"}[kind]
    for w in words:
        _UNITS[w] = (kind, shown, factor, base)
_PEOPLE = (
    "troops soldiers people persons civilians refugees residents workers employees prisoners children casualties "
    "deaths dead migrants voters fighters patients students protesters passengers victims inhabitants"
).split()
_CURRENCY_PREFIX = {
    "$": "USD",
    "us$": "USD",
    "£": "GBP",
    "€": "EUR",
    "¥": "JPY",
    "usd": "USD",
    "eur": "EUR",
    "gbp": "GBP",
}
_CURRENCY_WORDS = {
    "dollars": "USD", "dollar": "USD", "euros": "EUR", "euro": "EUR", "pounds": "GBP", "pound": "GBP",
    "yen": "JPY", "roubles": "RUB", "rubles": "RUB", "hryvnias": "UAH", "hryvnia": "UAH", "usd": "USD",
    "eur": "EUR", "gbp": "GBP",
}  # fmt: skip
_QUALIFIERS = (
    "approximately|about|around|nearly|almost|roughly|some|over|more than|less than|fewer than|at least|up to|"
    "an estimated|estimated at|close to|just over|just under|as many as|as much as|upwards of"
)


def _alt(words: Any) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True))


_WORD_NUMBER = (
    rf"(?:(?:{_alt(_TENS)})(?:[-\s](?:{_alt(k for k, v in _UNITS_WORDS.items() if 0 < v < 10)}))?|{_alt(_UNITS_WORDS)})"
)
# Thousands separated by commas, or by the no-break and thin spaces typography uses ("90 000").
_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:[\u00a0\u202f\u2009]\d{3})+(?:[.,]\d+)?|\d+(?:\.\d+)?"
# A figure is found from its number. Numbers are searched for cheaply (digits by one character class; number words
# with `in` on the lower-cased text, then a regular expression for the words present), then the qualifier and the
# currency just before a number and the unit just after it are matched around it. One pattern matched at every
# position of the text cost twice as much (~400-540 µs for a 2 KB article).
_DIGIT_RUN = re.compile(r"\d[\d,.\u00a0\u202f\u2009]*")
_NUMBER_FORM = re.compile(rf"(?:{_DIGITS})")
_NUMBER_WORDS = sorted({*_UNITS_WORDS, *_TENS}, key=len, reverse=True)
_WORD_AT = re.compile(rf"(?:{_WORD_NUMBER})(?![\w-])", re.IGNORECASE)
_CURRENCY_BEFORE = re.compile(r"(?:US\$|[$£€¥]|USD|EUR|GBP)\s?$", re.IGNORECASE)
_QUALIFIER_LIST = sorted(_QUALIFIERS.split("|"), key=len, reverse=True)
_AFTER = re.compile(
    rf"""
    (?:\s?(?P<scale>thousand|million|billion|trillion|bn|mn|m|k)(?![\w²]))?
    (?:
        \s*(?P<unit>{_alt(_UNITS)})(?![\w²])
      | \s+(?P<curword>{_alt(_CURRENCY_WORDS)})(?!\w)
      | \s+(?:[A-Z][a-z]+\s+)?(?P<people>{_alt(_PEOPLE)})(?!\w)
    )?
    (?P<rate>\s+(?:per|a|an|each|every)\s+(?P<per>day|week|month|year|hour|minute|second))?
    (?![\w])
    """,
    re.VERBOSE | re.IGNORECASE,
)


def _anchors(text: str) -> list[tuple[int, int]]:
    """(start, end) of every number in `text`, digits or words, in text order."""
    found: list[tuple[int, int]] = []
    for m in _DIGIT_RUN.finditer(text):
        start = m.start()
        if start and (text[start - 1].isalnum() or text[start - 1] in ".,_"):
            continue  # inside a word or a longer number ("A4", "v1.2")
        if start > 1 and text[start - 1].isspace() and text[start - 2].isdigit():
            continue  # "000" of "90 000" with a plain space: not a number of its own
        form = _NUMBER_FORM.match(text, start, m.end())
        if form is not None:
            found.append((start, form.end()))
    low = text.lower()
    if len(low) == len(text):  # offsets agree (a few letters, like "İ", lower-case to two characters)
        for word in _NUMBER_WORDS:
            at = low.find(word)
            while at != -1:
                if not (at and (low[at - 1].isalnum() or low[at - 1] == "-")):
                    word_m = _WORD_AT.match(text, at)
                    if word_m is not None:
                        found.append((at, word_m.end()))
                at = low.find(word, at + len(word))
    found.sort()
    out: list[tuple[int, int]] = []
    for start, end in found:  # "twenty-five" was also found as "five": keep the longest, first
        if out and start < out[-1][1]:
            continue
        out.append((start, end))
    return out


def _before(text: str, start: int, floor: int) -> tuple[int, str | None, str | None]:
    """(start of the figure, qualifier, currency) from what precedes the number at `start`."""
    head = text[max(floor, start - 8) : start]
    cur_m = _CURRENCY_BEFORE.search(head)
    cur = cur_m.group(0).strip() if cur_m else None
    begin = start - (len(head) - cur_m.start()) if cur_m else start
    window = text[max(floor, begin - 24) : begin].lower()
    for q in _QUALIFIER_LIST:
        if window.endswith(q + " "):
            at = begin - len(q) - 1
            if at == 0 or not text[at - 1].isalnum():
                return at, q, cur
    return begin, None, cur


def _number(text: str) -> float | None:
    """The value `text` spells, or None; None too for digits beyond a float's range (400 nines is not a figure)."""
    t = " ".join(text.lower().replace("-", " ").split())
    if t[0].isdigit():
        digits = re.sub(r"[\u00a0\u202f\u2009]", "", text)
        if "," in digits and not re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", digits):
            digits = digits.replace(",", ".")  # "1 234,5": a decimal comma after spaced thousands
        value = float(digits.replace(",", ""))
        return value if math.isfinite(value) else None
    if t in _UNITS_WORDS:
        return float(_UNITS_WORDS[t])
    parts = t.split()
    if parts and parts[0] in _TENS:
        return float(_TENS[parts[0]] + (_UNITS_WORDS.get(parts[1], 0) if len(parts) > 1 else 0))
    return None


def _clean_number(value: float) -> int | float:
    """An integral value as an int (90000, not 90000.0), so the JSON reads as the text did."""
    return int(value) if value == int(value) and abs(value) < 2**53 else value


def _round(value: float) -> float:
    """Two decimals (9.656 km -> 9.66), or three significant digits below 1 (12 cm -> 0.00012 km)."""
    return round(value, 2) if abs(value) >= 1 or value == 0 else float(f"{value:.3g}")


def extract(text: str) -> list[dict[str, Any]]:
    """Every figure of `text` with a unit, in text order."""
    out: list[dict[str, Any]] = []
    last_end = 0
    for a_start, a_end in _anchors(text):
        if a_start < last_end:
            continue
        after = _AFTER.match(text, a_end)
        start, qual, cur = _before(text, a_start, last_end)
        if after is None:  # cannot fail (every part is optional), but mypy cannot know
            continue
        unit, curword, people, rate = after["unit"], after["curword"], after["people"], after["rate"]
        if not (cur or unit or curword or people or rate):
            continue  # a bare number
        number = _number(text[a_start:a_end])
        if number is None:
            continue
        scale = (after["scale"] or "").lower()
        if scale in ("m", "k", "bn", "mn") and not (cur or curword):
            continue  # "10m" or "5k" without a currency: metres? a race? too ambiguous to report
        value = number * _SCALES.get(scale, 1.0)
        end = after.end()
        figure: dict[str, Any] = {"surface": text[start:end], "start": start, "end": end}
        if cur or curword:
            code = _CURRENCY_PREFIX.get((cur or "").lower()) or _CURRENCY_WORDS[(curword or "").lower()]
            kind, shown, norm_value, base = "money", code, value, code
        elif unit:
            kind, shown, factor, base = _UNITS[" ".join(unit.lower().split())]
            norm_value = value * factor
        elif people:
            kind, shown, norm_value, base = "people", "people", value, "people"
        else:
            kind, shown, norm_value, base = "count", "", value, ""  # only with a rate: "1,000 per day"
        if rate:
            per = after["per"].lower()
            shown = f"{shown} per {per}".strip()
            base = f"{base} per {per}".strip()
            kind = "rate"
        if not (math.isfinite(value) and math.isfinite(norm_value)):
            continue  # "1e300 bn km" overflows a float once scaled: no figure anyone reported
        figure.update(
            {
                "kind": kind,
                "value": _clean_number(round(value, 6)),
                "unit": shown,
                "approximate": bool(qual),
                "normalized": {"value": _clean_number(_round(norm_value)), "unit": base},
            }
        )
        out.append(figure)
        last_end = end
    return out
