"""The figures enricher: numbers with unit, kind and normalised value; never a bare number."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stages.enrich.figures import extract


@pytest.mark.parametrize(
    ("text", "surface", "kind", "value", "unit", "normalized"),
    [
        # the seed's figures, as the issue lists them
        ("spans approximately 90,000 square kilometers and", "approximately 90,000 square kilometers", "area",
         90000, "km²", (90000, "km²")),
        ("concentrated around 110,000 troops in", "around 110,000 troops", "people", 110000, "people",
         (110000, "people")),
        ("estimated at 1,000 per day, while", "estimated at 1,000 per day", "rate", 1000, "per day",
         (1000, "per day")),
        ("advanced about 10 kilometers in", "about 10 kilometers", "distance", 10, "km", (10, "km")),
        ("advancing approximately six miles in", "approximately six miles", "distance", 6, "mi", (9.66, "km")),
        # our own
        ("offer of about 4.2 million pounds did", "about 4.2 million pounds", "money", 4200000, "GBP",
         (4200000, "GBP")),
        ("it cost $5bn last", "$5bn", "money", 5000000000, "USD", (5000000000, "USD")),
        ("a profit of £600m in", "£600m", "money", 600000000, "GBP", (600000000, "GBP")),
        ("a levy of 2 per cent on", "2 per cent", "percent", 2, "%", (2, "%")),
        ("won 55.5% of the vote", "55.5%", "percent", 55.5, "%", (55.5, "%")),
        ("lands 300 tonnes a year", "300 tonnes a year", "rate", 300, "t per year", (300000, "kg per year")),
        ("moved roughly 12 centimetres since", "roughly 12 centimetres", "distance", 12, "cm", (0.00012, "km")),
        ("Twenty-five miles away", "Twenty-five miles", "distance", 25, "mi", (40.23, "km")),
        ("an area of 40 km² was", "40 km²", "area", 40, "km²", (40, "km²")),
        ("a farm of 250 square miles", "250 square miles", "area", 250, "mi²", (647.5, "km²")),
        ("500 refugees a day crossed", "500 refugees a day", "rate", 500, "people per day",
         (500, "people per day")),
        ("some 90\u00a0000 km of roads", "some 90\u00a0000 km", "distance", 90000, "km", (90000, "km")),
        ("over 2.5 million people live", "over 2.5 million people", "people", 2500000, "people",
         (2500000, "people")),
    ],
)  # fmt: skip
def test_figure_with_unit_kind_and_normalised_value(text, surface, kind, value, unit, normalized) -> None:
    found = extract(text)
    assert len(found) == 1, found
    f = found[0]
    assert (f["surface"], f["kind"], f["value"], f["unit"]) == (surface, kind, value, unit)
    assert (f["normalized"]["value"], f["normalized"]["unit"]) == normalized
    assert text[f["start"] : f["end"]] == surface


@pytest.mark.parametrize(
    "text",
    [
        "the first meeting since 2018",
        "across three sections of the frontline",
        "in three days",
        "a 10m high wall",  # metres or million? not reported
        "release v1.2 km",  # a number inside a word
        "A4 paper",
        "call 0800 123 456",
    ],
)
def test_numbers_without_a_unit_are_not_figures(text: str) -> None:
    assert extract(text) == []


@pytest.mark.parametrize(
    ("text", "approximate"),
    [
        ("about 10 km", True),
        ("nearly 10 km", True),
        ("at least 10 km", True),
        ("10 km", False),
        ("Tabout 10 km", False),
    ],
)
def test_qualifiers_make_a_figure_approximate(text: str, approximate: bool) -> None:
    (f,) = extract(text)
    assert f["approximate"] is approximate


def test_figures_come_in_text_order_without_overlap() -> None:
    text = "They walked six miles, then 10 km, paid $5bn and lost 3% of 200 people a week."
    found = extract(text)
    assert [f["kind"] for f in found] == ["distance", "distance", "money", "percent", "rate"]
    ends = [(f["start"], f["end"]) for f in found]
    assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:], strict=False))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 ,.$£%kmKMabout sixmileperday\u00a0²-")), max_size=80))
def test_extract_never_raises_and_surfaces_match_offsets(text: str) -> None:
    for f in extract(text):
        assert text[f["start"] : f["end"]] == f["surface"]
        assert isinstance(f["value"], int | float)


@pytest.mark.parametrize(
    "text",
    [
        f"Inspectors counted {'9' * 400} km of roads",  # float() of 400 digits is inf
        f"a bill of ${'9' * 400}bn",
        f"about {'9' * 308}.5 million pounds",  # finite, until scaled by a million
    ],
)
def test_a_number_beyond_a_float_is_no_figure_and_no_error(text: str) -> None:
    assert extract(text) == []


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=300, max_value=2000), st.sampled_from(["km", "bn pounds", "people", "%", "per day"]))
def test_extract_never_raises_on_huge_numbers(digits: int, unit: str) -> None:
    for f in extract(f"counted {'7' * digits} {unit} then 12 km"):
        assert f["value"] == f["value"] and abs(f["value"]) != float("inf")  # finite: JSON has no inf nor NaN
