"""Entities enricher: spaCy's mentions of one article -> people, organisations and places, merged by name.

Rule: mentions (PERSON, ORG, GPE, LOC; NORP only as a vote) are cleaned ("the", a possessive "'s", quotes and
a person's honorific such as "Ms" dropped), a hyphenated pair of known people is split ("Trump-Putin summit"
-> Trump, Putin), mentions of one name take the label most of them have, a name that is the first or last part
of exactly one longer person's name joins that person ("Zelenskyy" -> "Volodymyr Zelenskyy"), places resolve
through the gazetteer (cities in a country the article already names win), and a "person" that the gazetteer
knows as a country, region or large city of a country the article names is a place (en_core_web_sm calls
Kharkiv and Zaporizhzhia PERSON on the seed). Each entity's mentions are then counted by finding its names in
the text (the model misses repeats), with the character offset of the first. For example in
"Volodymyr Zelenskyy spoke. Zelenskyy said Kharkiv ..." -> person "Volodymyr Zelenskyy" (2 mentions, offset 0),
place "Kharkiv" (UA, city).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from streams.stages.enrich.ner import Mention
from streams.stages.enrich.places import Gazetteer, Place, place_key

NAME = "entities"
VERSION = "1"
TYPES = {"PERSON": "person", "ORG": "organisation", "GPE": "place", "LOC": "place"}
_VOTING = {*TYPES, "NORP"}  # NORP (nationalities) never becomes an entity, but outvotes a stray GPE "Ukrainian"
# On a tie of label votes: a person beats a place beats an organisation (names of people are what NER gets most right).
_LABEL_PRIORITY = {"PERSON": 0, "GPE": 1, "LOC": 2, "ORG": 3, "NORP": 4}
_CORRECTION_MIN_POPULATION = 100_000  # a PERSON turns into a city only if the city is at least this large
_HONORIFICS = frozenset("mr mrs ms miss mx dr prof sir dame lord lady".split())
_QUOTES = "\"'“”‘’«»()[]"
_DASHES = ("-", "‐", "–")


@dataclass
class _Group:
    key: str
    mentions: list[tuple[str, int, str]] = field(default_factory=list)  # (surface, start, label)
    found: list[int] = field(default_factory=list)  # starts of the names found in the text by _recount

    @cached_property
    def label(self) -> str:
        votes = Counter(label for _, _, label in self.mentions)
        return min(votes, key=lambda lab: (-votes[lab], _LABEL_PRIORITY[lab]))

    @cached_property
    def name(self) -> str:
        forms = Counter(surface for surface, _, _ in self.mentions)
        first = {surface: start for surface, start, _ in reversed(self.mentions)}
        # The longest form is the full name; among equally long ones the most frequent, then the first seen.
        return min(forms, key=lambda f: (-len(f.split()), -forms[f], first[f]))

    @property
    def first(self) -> int:
        return min([start for _, start, _ in self.mentions] + self.found)

    @property
    def count(self) -> int:
        return max(len(self.found), len(self.mentions))

    @cached_property
    def tokens(self) -> list[str]:
        return self.key.split()


def _clean(text: str, start: int, label: str) -> tuple[str, int]:
    """Mention text without surrounding quotes, a leading "the" and a trailing possessive; start adjusted."""
    end = len(text)
    i = 0
    while i < end and (text[i] in _QUOTES or text[i].isspace()):
        i += 1
    while end > i and (text[end - 1] in _QUOTES or text[end - 1].isspace() or text[end - 1] in ".,;:"):
        end -= 1
    if label != "PERSON" and text[i : i + 4].lower() == "the ":
        i += 4
    if label == "PERSON":  # "Ms Druyun" is Druyun, who then joins "Darleen Druyun"
        head, _, rest = text[i:end].partition(" ")
        if rest and head.rstrip(".").lower() in _HONORIFICS:
            i += len(head) + 1
    for suffix in ("'s", "’s"):
        if text[i:end].endswith(suffix):
            end -= len(suffix)
    return text[i:end], start + i


def _key(surface: str) -> str:
    return place_key(surface)


def merge(text: str, mentions: Sequence[Mention], gazetteer: Gazetteer) -> list[dict[str, Any]]:
    """The entities of `text` from spaCy's `mentions`, ordered by first mention."""
    raw: list[tuple[str, int, str]] = []
    for label, start, end in mentions:
        if label not in _VOTING:
            continue
        surface, at = _clean(text[start:end], start, label)
        if surface and any(ch.isalpha() for ch in surface):
            raw.append((surface, at, label))
    person_tokens = {tok for surface, _, label in raw if label == "PERSON" for tok in _key(surface).split()}
    split: list[tuple[str, int, str]] = []
    for surface, at, label in raw:
        split.extend(_split_pair(surface, at, label, person_tokens))

    groups: dict[str, _Group] = {}
    for surface, at, label in split:
        key = _key(surface)
        groups.setdefault(key, _Group(key)).mentions.append((surface, at, label))

    _join_people(groups, gazetteer)
    kept = [g for g in groups.values() if g.label in TYPES]
    places: dict[str, Place | None] = {}
    context: list[str] = []
    for g in kept:  # countries and regions first: they are the context cities are chosen in
        if g.label in ("GPE", "LOC"):
            place = gazetteer.resolve(g.name)
            if place is not None and place.kind in ("country", "region") and place.country_code not in context:
                context.append(place.country_code)
    _recount(text, kept)
    entities: list[dict[str, Any]] = []
    for g in sorted(kept, key=lambda g: (g.first, g.key)):
        label = g.label
        place = None
        if label in ("GPE", "LOC"):
            place = gazetteer.resolve(g.name, context)
        elif label == "PERSON":
            place = _misread_place(g, gazetteer, context)
            if place is not None:
                label = "GPE"
        places[g.key] = place
        entity: dict[str, Any] = {
            "name": g.name,
            "type": TYPES[label],
            "label": label,
            "mentions": g.count,
            "first_offset": g.first,
            "forms": sorted({s for s, _, _ in g.mentions}, key=lambda s: (-len(s), s)),
        }
        if TYPES[label] == "place":
            entity.update(place.as_dict() if place is not None else _UNRESOLVED)
        entities.append(entity)
    return entities


_UNRESOLVED = {
    "country_code": None,
    "place_kind": None,
    "latitude": None,
    "longitude": None,
    "subdivision": None,
    "geonames_id": None,
}


def _recount(text: str, groups: list[_Group]) -> None:
    """Counts every occurrence of each entity's names in the text, longest names first, none counted twice.

    The model misses repeats (on the seed it tags 4 of the 7 "Zelenskyy"); the names it did tag find the rest.
    A name is matched as written (case-sensitive, "US" is not "us") between non-word characters.
    """
    claimed = bytearray(len(text))  # 1 where a counted name already is
    forms = sorted(
        ((form, g) for g in groups for form in {s for s, _, _ in g.mentions}),
        key=lambda fg: (-len(fg[0]), fg[0], fg[1].key),
    )
    for form, g in forms:
        at = text.find(form)
        while at != -1:
            end = at + len(form)
            bounded = (at == 0 or not text[at - 1].isalnum()) and (end == len(text) or not text[end].isalnum())
            if bounded and claimed.find(1, at, end) == -1:
                claimed[at:end] = b"\x01" * (end - at)
                g.found.append(at)
            at = text.find(form, at + 1)


def _split_pair(surface: str, at: int, label: str, person_tokens: set[str]) -> list[tuple[str, int, str]]:
    """ "Trump-Putin" -> the two people, when every part is a name of a person the article mentions."""
    if " " in surface:
        return [(surface, at, label)]
    for dash in _DASHES:
        parts = surface.split(dash)
        if len(parts) >= 2 and all(_key(p) in person_tokens for p in parts):
            out, offset = [], at
            for p in parts:
                out.append((p, offset, "PERSON"))
                offset += len(p) + len(dash)
            return out
    return [(surface, at, label)]


def _join_people(groups: dict[str, _Group], gazetteer: Gazetteer) -> None:
    """Moves the mentions of a partial name into the one longer person it is the first or last part of."""
    people = [g for g in groups.values() if g.label == "PERSON" and len(g.tokens) > 1]
    for key, g in list(groups.items()):
        tokens = g.tokens
        if len(tokens) > 1 and g.label == "PERSON":
            continue
        if g.label != "PERSON" and gazetteer.resolve(g.name) is not None:
            continue  # a known place that happens to share a surname stays a place
        owners = [p for p in people if p is not g and _is_part(tokens, p.tokens)]
        if len(owners) == 1:
            # The partial mentions vote as PERSON: spaCy's other labels for them were its mistakes.
            owners[0].mentions.extend((s, at, "PERSON") for s, at, _ in g.mentions)
            owners[0].__dict__.pop("label", None)  # cached_property: computed again from the new mentions
            owners[0].__dict__.pop("name", None)
            del groups[key]


def _is_part(part: list[str], whole: list[str]) -> bool:
    n = len(part)
    return 0 < n < len(whole) and (whole[-n:] == part or whole[:n] == part)


def _misread_place(g: _Group, gazetteer: Gazetteer, context: list[str]) -> Place | None:
    place = gazetteer.resolve(g.name, context)
    if place is None:
        return None
    if place.country_code not in context:
        return None  # "Chad said ..." in an article that names no place in Chad stays a person
    curated = place.geonames_id is None and place.kind == "city"  # from the alias file, which has no populations
    if place.kind in ("country", "region") or curated or place.population >= _CORRECTION_MIN_POPULATION:
        return place
    return None


def counts(entities: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Entities per type (person, organisation, place), for the metrics."""
    c = Counter(e["type"] for e in entities)
    return {t: c.get(t, 0) for t in ("person", "organisation", "place")}
