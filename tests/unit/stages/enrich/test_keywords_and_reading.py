"""The keywords and reading enrichers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stages.enrich import keywords, reading
from streams.stages.enrich.stopwords import stop_words
from tests.factories.enrich import OWN_PARAGRAPHS, UK_TEXT

OWN_TEXT = "\n\n".join(OWN_PARAGRAPHS)


def test_keywords_name_what_the_article_is_about() -> None:
    found = [k["text"] for k in keywords.extract(OWN_TEXT, "en", 10)]
    assert "European Commission" in found
    assert {"Lisbon", "reservoir"} <= set(found)


def test_keywords_are_scored_best_first_from_one() -> None:
    found = keywords.extract(OWN_TEXT, "en", 10)
    scores = [k["score"] for k in found]
    assert scores[0] == 1.0 and scores == sorted(scores, reverse=True)
    assert all(0 < s <= 1 for s in scores)


@pytest.mark.parametrize("limit", [0, 1, 5, 10])
def test_keywords_respect_the_limit(limit: int) -> None:
    assert len(keywords.extract(OWN_TEXT, "en", limit)) <= limit


def test_no_keyword_is_a_stop_word_or_a_number() -> None:
    stops = stop_words("en")
    for k in keywords.extract(OWN_TEXT, "en", 40):
        assert k["text"].lower() not in stops
        assert not any(ch.isdigit() for ch in k["text"])


def test_a_phrase_inside_a_better_one_is_not_repeated() -> None:
    found = [set(k["text"].lower().split()) for k in keywords.ranked(OWN_TEXT, "en")]
    for i, a in enumerate(found):
        for b in found[i + 1 :]:
            assert not (a <= b or b <= a)


def test_keywords_in_another_language_use_its_stop_words() -> None:
    found = [k["text"] for k in keywords.extract(UK_TEXT, "uk", 10)]
    assert found and all(w.lower() not in stop_words("uk") for w in found)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["en", "uk", None, "xx"]))
def test_keywords_never_raise_and_are_deterministic(text: str, lang: str | None) -> None:
    assert keywords.extract(text, lang, 10) == keywords.extract(text, lang, 10)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", 0),
        ("One two three.", 3),
        ("Don’t split the Trump-Putin summit of 90,000 km², e.g. here.", 10),
        ("  spaces   and\n\nlines  ", 3),
        ("— – -", 0),
    ],
)
def test_word_count(text: str, words: int) -> None:
    assert reading.word_count(text) == words


@pytest.mark.parametrize(("words", "wpm", "seconds"), [(0, 238, 0), (1, 238, 1), (238, 238, 60), (612, 238, 155)])
def test_reading_time_rounds_up_to_whole_seconds(words: int, wpm: int, seconds: int) -> None:
    assert reading.reading_time_seconds(words, wpm) == seconds
