"""Aggregator marks: each pattern of streams/data/aggregator_marks.json, and where marks may (not) be taken."""

from __future__ import annotations

import re

import pytest

from streams.stages.normalize import marks, text

BODY = "Delegations from both sides met in Geneva on Tuesday for the first direct talks in months."
BODY2 = "The talks are expected to last three days, officials said."


def blocks(*paragraphs: str) -> list[tuple[str, ...]]:
    """Paragraphs as normalize hands them over: blank lines between, lines within."""
    return [b.lines for b in text.text_blocks("\n\n".join(paragraphs))]


def kept_text(found: marks.Marks) -> str:
    return "\n\n".join(" ".join(lines) for lines in found.blocks if lines)


@pytest.mark.parametrize(
    ("line", "credit", "publisher"),
    [
        ("Image from The Guardian", "The Guardian", True),
        ("Image from the Guardian", "the Guardian", True),
        ("Photo via Agence France-Presse", "Agence France-Presse", True),
        ("Images courtesy of NASA", "NASA", True),
        ("Photo: Reuters", "Reuters", False),
        ("Photo: Reuters.", "Reuters", False),
        ("Image: AFP/Getty Images", "AFP/Getty Images", False),
        ("Photograph: Sean Smith/The Guardian", "Sean Smith/The Guardian", False),
        ("Credit: Kyodo News via AP", "Kyodo News via AP", False),
        ("Photo credit: Jane Doe", "Jane Doe", False),
        ("Foto: dpa", "dpa", False),
        ("Fotos: Privat", "Privat", False),
        ("Crédit photo : Le Monde", "Le Monde", False),
        ("Фото: ТАСС", "ТАСС", False),
        ("图片来源：新华社", "新华社", False),
        ("(Photo: Reuters)", "Reuters", False),
        ("[Image: EPA]", "EPA", False),
        ("Photo by John Smith", "John Smith", False),
    ],
)
def test_image_credit_lines(line: str, credit: str, publisher: bool) -> None:
    assert marks.image_credit(line) == (credit, publisher)


@pytest.mark.parametrize(
    "line",
    [
        "Image from the summit showed the leaders smiling at each other.",
        "Photo opportunities were what Putin wanted from the summit, Zelenskyy said.",
        "The photo was taken in Kyiv on Monday.",
        "Credit card spending rose 4% in July.",
        "Credit: the bank extended new lines to small firms across the whole of the region this year.",
        "Images from Reuters show the damage to the bridge.",
        "Photo by photo, the archive was rebuilt.",
        "An image from the drone footage shows the crater.",
    ],
)
def test_sentences_mentioning_photos_are_not_credits(line: str) -> None:
    assert marks.image_credit(line) is None


@pytest.mark.parametrize(
    ("line", "language"),
    [
        ("阅读中文版 (Read Chinese Version)", "zh"),
        ("阅读中文版", "zh"),
        ("閱讀中文版", "zh"),
        ("中文版", "zh"),
        ("Read Chinese Version", "zh"),
        ("Read in English", "en"),
        ("Read this article in English", "en"),
        ("English version", "en"),
        ("阅读英文版", "en"),
        ("Versión en español", "es"),
        ("Leer en español", "es"),
        ("Read in Spanish", "es"),
        ("Lire en français", "fr"),
        ("Version française", "fr"),
        ("Auf Deutsch lesen", "de"),
        ("Deutsche Version", "de"),
        ("Читать на русском", "ru"),
        ("Читать на русском языке", "ru"),
        ("Читати українською", "uk"),
        ("日本語で読む", "ja"),
        ("한국어로 읽기", "ko"),
        ("Ler em português", "pt"),
        ("اقرأ بالعربية", "ar"),
        ("Leggi in italiano", "it"),
        ("Czytaj po polsku", "pl"),
        ("Türkçe oku", "tr"),
        ("» Read in English", "en"),
        ("This article is also available in Ukrainian", "uk"),
        ("Read in Traditional Chinese", "zh"),
    ],
)
def test_translation_link_lines(line: str, language: str) -> None:
    assert marks.translation_language(line) == language


@pytest.mark.parametrize(
    "line",
    [
        "The Chinese version of the agreement differs from the English one in two clauses.",
        "He said he could read in English but preferred to speak Ukrainian.",
        "English",
        "Spanish officials declined to comment.",
    ],
)
def test_sentences_about_languages_are_not_translation_links(line: str) -> None:
    assert marks.translation_language(line) is None


@pytest.mark.parametrize(
    "line",
    [
        "Disclaimer: This content is aggregated from public sources online. Please verify information "
        "independently. If you believe your rights have been infringed, contact us for removal.",
        "Disclaimer",
        "DISCLAIMER: views are the author's own.",
        "This article was aggregated from various sources.",
        "This content is aggregated from public sources online.",
        "If you believe your rights have been infringed, contact us.",
        "If you believe your copyright has been violated, please write to us.",
        "Please contact us for removal.",
        "Contact us to request removal of any content.",
        "We do not own this content; all rights belong to the original owners.",
        "This story was republished from The Example Times.",
    ],
)
def test_disclaimer_lines(line: str) -> None:
    assert marks.is_disclaimer(line)


@pytest.mark.parametrize(
    "line",
    [
        "The minister said the removal of the statue had been approved by the council.",
        "Critics said the content of the bill was unclear.",
        "Google received a takedown request from the studio last year.",
        "The data was compiled from police reports.",
    ],
)
def test_ordinary_sentences_are_not_disclaimers(line: str) -> None:
    assert not marks.is_disclaimer(line)


@pytest.mark.parametrize(
    ("line", "publisher"),
    [
        ("Source: Reuters", "Reuters"),
        ("Originally published by The Conversation", "The Conversation"),
        ("This article first appeared in Le Monde.", "Le Monde"),
        ("Republished with permission from Example Wire", "Example Wire"),
    ],
)
def test_original_publisher_lines(line: str, publisher: str) -> None:
    assert marks.original_publisher(line) == publisher


@pytest.mark.parametrize("line", ["Sources say the talks failed.", "Source: officials familiar with the talks"])
def test_sentences_are_not_publisher_lines(line: str) -> None:
    assert marks.original_publisher(line) is None


@pytest.mark.parametrize("repeats", [1, 2, 3, 4, 7])
def test_title_repeated_at_the_top_is_removed_whatever_the_count(repeats: int) -> None:
    title = "Talks open in Geneva"
    found = marks.strip_marks(blocks(*([title] * repeats), BODY, BODY2), title)
    assert found.title == title
    assert found.title_repeats_removed == repeats
    assert kept_text(found) == f"{BODY}\n\n{BODY2}"


def test_title_then_credit_on_the_next_line_are_both_removed() -> None:
    title = "Talks open in Geneva"
    found = marks.strip_marks(blocks(title, f"{title}\nImage from The Guardian", BODY), title)
    assert found.title_repeats_removed == 2
    assert found.image_credits == ("The Guardian",)
    assert found.original_publishers == ("The Guardian",)
    assert kept_text(found) == BODY


def test_title_match_ignores_case_spacing_and_final_punctuation() -> None:
    found = marks.strip_marks(blocks("TALKS  open in Geneva.", BODY), "Talks open in Geneva")
    assert found.title_repeats_removed == 1
    assert kept_text(found) == BODY


def test_title_in_the_middle_of_the_text_stays() -> None:
    title = "Talks open"
    found = marks.strip_marks(blocks(BODY, title, BODY2), title)
    assert found.title_repeats_removed == 0
    assert kept_text(found) == f"{BODY}\n\n{title}\n\n{BODY2}"


def test_missing_title_is_the_first_line() -> None:
    found = marks.strip_marks(blocks("Talks open in Geneva", "Talks open in Geneva", BODY), None)
    assert found.title == "Talks open in Geneva"
    assert found.title_repeats_removed == 2
    assert kept_text(found) == BODY


def test_missing_title_skips_a_leading_credit_line() -> None:
    found = marks.strip_marks(blocks("Photo: Reuters", "Talks open in Geneva", BODY), None)
    assert found.title == "Talks open in Geneva"
    assert found.image_credits == ("Reuters",)
    assert kept_text(found) == BODY


def test_first_line_that_is_a_sentence_stays_in_the_text_and_titles_the_article() -> None:
    found = marks.strip_marks(blocks(BODY, BODY2), None)
    assert found.title == BODY
    assert found.title_repeats_removed == 0
    assert kept_text(found) == f"{BODY}\n\n{BODY2}"


def test_long_first_paragraph_gives_a_shortened_title() -> None:
    long = " ".join(["word"] * 100) + "."
    found = marks.strip_marks(blocks(long), None)
    assert found.title.endswith("…") and len(found.title) <= 201
    assert kept_text(found) == long


def test_title_only_leaves_nothing() -> None:
    found = marks.strip_marks(blocks("Talks open", "Talks open"), "Talks open")
    assert kept_text(found) == ""
    assert found.title_repeats_removed == 2


def test_translation_link_and_disclaimer_at_the_end_are_removed() -> None:
    disclaimer = "Disclaimer: This content is aggregated from public sources online. Contact us for removal."
    found = marks.strip_marks(blocks(BODY, "阅读中文版 (Read Chinese Version)", disclaimer), "T")
    assert kept_text(found) == BODY
    assert found.alternates == (marks.Alternate("zh", "阅读中文版 (Read Chinese Version)"),)
    assert found.disclaimer == disclaimer


def test_disclaimer_over_several_lines_is_kept_whole_in_order() -> None:
    found = marks.strip_marks(blocks(BODY, "Disclaimer:\nThis article was aggregated from various sources."), "T")
    assert found.disclaimer == "Disclaimer: This article was aggregated from various sources."
    assert kept_text(found) == BODY


def test_disclaimer_like_sentence_in_the_middle_stays() -> None:
    middle = "If you believe your rights have been infringed, lawyers said, you should act quickly."
    found = marks.strip_marks(blocks(BODY, middle, BODY2), "T")
    assert found.disclaimer is None
    assert kept_text(found) == f"{BODY}\n\n{middle}\n\n{BODY2}"


def test_disclaimer_at_the_top_is_not_taken() -> None:
    # only the end of the text holds the disclaimer; a lead paragraph about removals is news
    lead = "Contact us for removal, the sign on the statue read, before the council took it down."
    found = marks.strip_marks(blocks(lead, BODY), "T")
    assert found.disclaimer is None
    assert lead in kept_text(found)


def test_translation_link_at_the_top_is_removed() -> None:
    found = marks.strip_marks(blocks("Talks open", "Read in English", BODY), "Talks open")
    assert [a.language for a in found.alternates] == ["en"]
    assert kept_text(found) == BODY


def test_caption_credit_between_paragraphs_is_removed() -> None:
    found = marks.strip_marks(blocks(BODY, "Photo: Reuters", BODY2), "T")
    assert found.image_credits == ("Reuters",)
    assert kept_text(found) == f"{BODY}\n\n{BODY2}"


def test_prose_mentioning_photos_in_the_middle_stays() -> None:
    prose = [
        "Image from the summit showed the leaders smiling.",
        "Photo opportunities mattered to the Kremlin, Zelenskyy said.",
    ]
    found = marks.strip_marks(blocks(BODY, *prose, BODY2), "T")
    assert found.image_credits == ()
    assert kept_text(found) == "\n\n".join([BODY, *prose, BODY2])


def test_source_line_at_the_end_is_an_original_publisher() -> None:
    found = marks.strip_marks(blocks(BODY, "Source: The Example Times"), "T")
    assert found.original_publishers == ("The Example Times",)
    assert kept_text(found) == BODY


def test_credits_are_unique_and_in_document_order() -> None:
    found = marks.strip_marks(blocks("Photo: AFP", BODY, "Photo: Reuters", BODY2, "Photo: AFP"), "T")
    assert found.image_credits == ("AFP", "Reuters")


def test_empty_input() -> None:
    found = marks.strip_marks([], None)
    assert (found.title, found.blocks, found.disclaimer) == ("", (), None)


def test_find_disclaimer_on_page_lines() -> None:
    lines = ["Home", "We use cookies.", "Disclaimer: This content is aggregated from public sources."]
    assert marks.find_disclaimer(lines) == "Disclaimer: This content is aggregated from public sources."
    assert marks.find_disclaimer(["Home", "News"]) is None


def test_patterns_file_compiles_and_names_valid_languages() -> None:
    p = marks.patterns()
    assert p.credits and p.translations and p.publishers
    for _, language in p.translations:
        assert language is None or text.language_tag(language) == language
    for code in p.language_names.values():
        assert re.fullmatch(r"[a-z]{2,3}", code)
    assert all(k == k.lower() for k in p.disclaimer_keywords)
