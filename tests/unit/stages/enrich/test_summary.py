"""The summary enricher: two or three sentences, verbatim, in text order; and the sentence splitter under it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stages.enrich import keywords
from streams.stages.enrich.summary import sentences, summarise
from tests.factories.enrich import OWN_PARAGRAPHS

OWN_TEXT = "\n\n".join(OWN_PARAGRAPHS)


def summary_of(text: str, count: int = 3) -> dict:
    return summarise(text, keywords.ranked(text, "en"), count)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith went to Washington. He met officials.", ["Mr. Smith went to Washington.", "He met officials."]),
        ("He met U.S. officials. Then he left.", ["He met U.S. officials.", "Then he left."]),
        ("J. R. Smith said 3.5 per cent. Done.", ["J. R. Smith said 3.5 per cent.", "Done."]),
        ('She said "Go." Then she went.', ['She said "Go."', "Then she went."]),
        ('"Hello." she said. Done', ['"Hello." she said.', "Done"]),
        ("First line\nSecond line", ["First line", "Second line"]),
        ("Is it? Yes! Fine…", ["Is it?", "Yes!", "Fine…"]),
        ("prices rose 3.5 percent. e.g. more", ["prices rose 3.5 percent. e.g. more"]),  # lower case: no end
    ],
)
def test_sentences(text: str, expected: list[str]) -> None:
    assert [text[s:e] for s, e in sentences(text)] == expected


def test_summary_is_verbatim_sentences_in_text_order() -> None:
    gist = summary_of(OWN_TEXT)
    spans = gist["sentences"]
    assert 2 <= len(spans) <= 3
    assert spans == sorted(spans)
    parts = [OWN_TEXT[s:e] for s, e in spans]
    assert gist["text"] == " ".join(parts)
    assert all(p in OWN_TEXT for p in parts)


def test_the_lede_leads_the_summary() -> None:
    gist = summary_of(OWN_TEXT)
    assert gist["sentences"][0][0] == 0


@pytest.mark.parametrize("count", [1, 2, 3])
def test_summary_has_at_most_the_sentences_asked_for(count: int) -> None:
    assert len(summary_of(OWN_TEXT, count)["sentences"]) <= count


def test_a_text_shorter_than_a_summary_sentence_is_its_own_summary() -> None:
    assert summary_of("Short note.")["text"] == "Short note."


def test_empty_text_has_an_empty_summary() -> None:
    assert summary_of("") == {"text": "", "sentences": []}


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abc ABC.!?\n\"'“”…0123 ")), max_size=200))
def test_every_sentence_span_is_a_verbatim_slice(text: str) -> None:
    spans = sentences(text)
    assert spans == sorted(spans)
    for s, e in spans:
        assert 0 <= s < e <= len(text)
        assert text[s:e] == text[s:e].strip()
    gist = summary_of(text)
    assert gist["text"] == " ".join(text[s:e] for s, e in gist["sentences"])
