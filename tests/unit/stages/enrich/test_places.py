"""The places enricher: names to ISO 3166 country codes, kinds and coordinates, offline."""

from __future__ import annotations

import pytest

from streams.stages.enrich.places import Gazetteer, load_aliases, place_key

SEED_PLACES = {
    "Ukraine": ("UA", "country"),
    "Russia": ("RU", "country"),
    "Alaska": ("US", "region"),
    "Donbas": ("UA", "region"),
    "Dnipro": ("UA", "city"),
    "Zaporizhzhia": ("UA", "city"),
    "Kharkiv": ("UA", "city"),
    "Moscow": ("RU", "city"),
    "US": ("US", "country"),
}


@pytest.mark.parametrize(("name", "expected"), SEED_PLACES.items())
def test_every_place_of_the_seed_resolves_to_its_country(gazetteer: Gazetteer, name: str, expected: tuple) -> None:
    place = gazetteer.resolve(name)
    assert place is not None
    assert (place.country_code, place.kind) == expected


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Britain", "GB"),
        ("the United Kingdom", "GB"),
        ("Lisbon", "PT"),
        ("Madrid", "ES"),
        ("Kraków", "PL"),
        ("Krakow", "PL"),
        ("KHARKIV", "UA"),
        ("Kiev", "UA"),
        ("Bayern", "DE"),
        ("Georgia", "GE"),
        ("Russia's", "RU"),
    ],
)
def test_names_resolve_whatever_their_case_accents_article_or_possessive(gazetteer: Gazetteer, name, code) -> None:
    place = gazetteer.resolve(name)
    assert place is not None and place.country_code == code


@pytest.mark.parametrize("name", ["Narnia", "Institute for the Study of War", "Ukrainian", "", "   "])
def test_unknown_names_do_not_resolve(gazetteer: Gazetteer, name: str) -> None:
    assert gazetteer.resolve(name) is None


def test_cities_carry_coordinates(gazetteer: Gazetteer) -> None:
    kharkiv = gazetteer.resolve("Kharkiv")
    assert kharkiv is not None and kharkiv.latitude is not None and kharkiv.longitude is not None
    assert 49.5 < kharkiv.latitude < 50.5 and 35.5 < kharkiv.longitude < 37.0
    assert kharkiv.geonames_id is not None


def test_the_most_populous_city_wins_without_context(gazetteer: Gazetteer) -> None:
    moscow = gazetteer.resolve("Moscow")
    assert moscow is not None and moscow.country_code == "RU"  # not Moscow, Idaho


def test_a_city_in_a_country_the_article_names_wins(gazetteer: Gazetteer) -> None:
    assert {p.country_code for p in gazetteer.candidates("Moscow")} >= {"RU", "US"}
    moscow = gazetteer.resolve("Moscow", context=["US"])
    assert moscow is not None and moscow.country_code == "US"


def test_a_region_named_like_its_city_is_the_city(gazetteer: Gazetteer) -> None:
    paris = gazetteer.resolve("Paris")
    assert paris is not None and (paris.country_code, paris.kind) == ("FR", "city")
    assert paris.latitude is not None


def test_every_curated_alias_resolves_to_its_entry(gazetteer: Gazetteer) -> None:
    data = load_aliases()
    assert data["places"], "the alias file is empty"
    for entry in data["places"]:
        for name in (entry["name"], *entry["aliases"]):
            place = gazetteer.resolve(name)
            assert place is not None, name
            assert (place.country_code, place.kind) == (entry["country"], entry["kind"]), name


def test_alias_entries_are_well_formed() -> None:
    for entry in load_aliases()["places"]:
        assert len(entry["country"]) == 2 and entry["country"].isupper()
        assert entry["kind"] in ("country", "region", "city")
        if "latitude" in entry:
            assert -90 <= entry["latitude"] <= 90 and -180 <= entry["longitude"] <= 180


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("The Hague", "hague"),
        ("Kraków", "krakow"),
        ("Russia’s", "russia"),
        ("  New   York ", "new york"),
        ("The", "the"),
    ],
)
def test_place_key(name: str, key: str) -> None:
    assert place_key(name) == key
