"""The entities enricher's merging rules, on hand-made mentions (no model needed) and on the model's output."""

from __future__ import annotations

from typing import Any

import pytest

from streams.stages.enrich.entities import counts, merge
from streams.stages.enrich.places import Gazetteer


def mentions_of(text: str, *spans: tuple[str, str]) -> list[tuple[str, int, int]]:
    """(label, start, end) for each (label, surface), found left to right in `text`."""
    out, at = [], 0
    for label, surface in spans:
        start = text.index(surface, at)
        out.append((label, start, start + len(surface)))
        at = start + 1
    return out


def by_name(entities: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in entities}


def test_a_surname_joins_the_one_full_name_it_ends(gazetteer: Gazetteer) -> None:
    text = "Volodymyr Zelenskyy spoke in Kyiv. Later Zelenskyy said more. Zelenskyy left."
    found = merge(text, mentions_of(text, ("PERSON", "Volodymyr Zelenskyy"), ("GPE", "Kyiv"),
                                    ("PERSON", "Zelenskyy"), ("GPE", "Zelenskyy")), gazetteer)  # fmt: skip
    people = [e for e in found if e["type"] == "person"]
    assert [p["name"] for p in people] == ["Volodymyr Zelenskyy"]
    assert people[0]["mentions"] == 3  # the third, untagged by the "model", is found by name
    assert people[0]["first_offset"] == 0
    assert people[0]["forms"] == ["Volodymyr Zelenskyy", "Zelenskyy"]


def test_an_honorific_is_not_part_of_the_name(gazetteer: Gazetteer) -> None:
    text = "Darleen Druyun admitted it. Ms Druyun said sorry, and Mr. Sears did not."
    found = by_name(merge(text, mentions_of(text, ("PERSON", "Darleen Druyun"), ("PERSON", "Ms Druyun"),
                                            ("PERSON", "Mr. Sears")), gazetteer))  # fmt: skip
    assert set(found) == {"Darleen Druyun", "Sears"}
    assert found["Darleen Druyun"]["mentions"] == 2


def test_a_surname_shared_by_two_people_joins_neither(gazetteer: Gazetteer) -> None:
    text = "Anna Kowalska met Piotr Kowalska. Kowalska won."
    found = merge(text, mentions_of(text, ("PERSON", "Anna Kowalska"), ("PERSON", "Piotr Kowalska"),
                                    ("PERSON", "Kowalska")), gazetteer)  # fmt: skip
    assert sorted(e["name"] for e in found) == ["Anna Kowalska", "Kowalska", "Piotr Kowalska"]


def test_mislabelled_mentions_take_the_label_most_have(gazetteer: Gazetteer) -> None:
    text = "Ukrainian troops. Ukrainian officials. Ukrainian leaders met in Lviv."
    found = merge(text, mentions_of(text, ("NORP", "Ukrainian"), ("GPE", "Ukrainian"), ("NORP", "Ukrainian"),
                                    ("GPE", "Lviv")), gazetteer)  # fmt: skip
    assert [e["name"] for e in found] == ["Lviv"]  # nationalities are not entities


def test_a_hyphenated_pair_of_people_counts_for_both(gazetteer: Gazetteer) -> None:
    text = "Donald Trump and Vladimir Putin. The Trump-Putin summit."
    found = by_name(merge(text, mentions_of(text, ("PERSON", "Donald Trump"), ("PERSON", "Vladimir Putin"),
                                            ("ORG", "Trump-Putin")), gazetteer))  # fmt: skip
    assert set(found) == {"Donald Trump", "Vladimir Putin"}
    assert found["Donald Trump"]["mentions"] == 2 and found["Vladimir Putin"]["mentions"] == 2


def test_a_person_the_gazetteer_knows_as_a_city_of_the_articles_country_is_a_place(gazetteer: Gazetteer) -> None:
    text = "Ukraine fears attacks on cities like Dnipro, Zaporizhzhia, and Kharkiv."
    found = by_name(merge(text, mentions_of(text, ("GPE", "Ukraine"), ("GPE", "Dnipro"), ("PERSON", "Zaporizhzhia"),
                                            ("PERSON", "Kharkiv")), gazetteer))  # fmt: skip
    for city in ("Zaporizhzhia", "Kharkiv"):
        assert (found[city]["type"], found[city]["country_code"], found[city]["label"]) == ("place", "UA", "GPE")


def test_a_person_named_like_a_place_stays_a_person_without_that_country_in_the_article(gazetteer: Gazetteer) -> None:
    text = "Chad said the bakery in Leeds would open. Chad was pleased."
    found = by_name(merge(text, mentions_of(text, ("PERSON", "Chad"), ("GPE", "Leeds")), gazetteer))
    assert found["Chad"]["type"] == "person"
    assert found["Leeds"]["country_code"] == "GB"


def test_organisations_drop_the_leading_article(gazetteer: Gazetteer) -> None:
    text = "Reserves arrived, though the Institute for the Study of War noted it was too early."
    found = merge(text, mentions_of(text, ("ORG", "the Institute for the Study of War")), gazetteer)
    assert found[0]["name"] == "Institute for the Study of War"
    assert found[0]["first_offset"] == text.index("Institute")


def test_possessives_and_quotes_are_not_part_of_a_name(gazetteer: Gazetteer) -> None:
    text = "Russia’s army and “Moscow” officials."
    found = by_name(merge(text, mentions_of(text, ("GPE", "Russia’s"), ("GPE", "“Moscow”")), gazetteer))
    assert set(found) == {"Russia", "Moscow"}
    assert found["Moscow"]["first_offset"] == text.index("Moscow")


def test_unresolved_places_keep_null_codes(gazetteer: Gazetteer) -> None:
    text = "They met in Narnia."
    found = merge(text, mentions_of(text, ("GPE", "Narnia")), gazetteer)
    assert found[0]["type"] == "place" and found[0]["country_code"] is None and found[0]["place_kind"] is None


@pytest.mark.parametrize("label", ["DATE", "CARDINAL", "QUANTITY", "MONEY", "NORP", "EVENT"])
def test_other_labels_are_not_entities(gazetteer: Gazetteer, label: str) -> None:
    text = "On Monday 3 people paid 5 dollars."
    assert merge(text, [(label, 0, 9)], gazetteer) == []


def test_mentions_are_counted_as_written_between_word_boundaries(gazetteer: Gazetteer) -> None:
    text = "US officials. The US and the USSR; us, Russia, Russian, Russia’s."
    found = by_name(merge(text, mentions_of(text, ("GPE", "US"), ("GPE", "Russia")), gazetteer))
    assert found["US"]["mentions"] == 2  # not "USSR", not "us"
    assert found["Russia"]["mentions"] == 2  # "Russia" and "Russia’s", not "Russian"


def test_entities_come_in_order_of_first_mention_and_are_counted(gazetteer: Gazetteer) -> None:
    text = "Maria Santos flew from Madrid to Lisbon for the European Commission."
    found = merge(text, mentions_of(text, ("PERSON", "Maria Santos"), ("GPE", "Madrid"), ("GPE", "Lisbon"),
                                    ("ORG", "the European Commission")), gazetteer)  # fmt: skip
    assert [e["first_offset"] for e in found] == sorted(e["first_offset"] for e in found)
    assert counts(found) == {"person": 1, "organisation": 1, "place": 2}


def test_merge_is_deterministic_whatever_the_mention_order(gazetteer: Gazetteer) -> None:
    text = "Donald Trump met Vladimir Putin. Trump and Putin spoke in Alaska."
    spans = mentions_of(text, ("PERSON", "Donald Trump"), ("PERSON", "Vladimir Putin"), ("ORG", "Trump"),
                        ("PERSON", "Putin"), ("GPE", "Alaska"))  # fmt: skip
    assert merge(text, spans, gazetteer) == merge(text, list(reversed(spans)), gazetteer)
