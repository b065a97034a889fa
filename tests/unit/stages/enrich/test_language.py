"""The language enricher: ISO 639-1 code, confidence, script and which detector decided."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.settings import Settings
from streams.stages.enrich.language import Language, LanguageDetector, dominant_script

ENGLISH = (
    "The council voted on Monday against selling the old pier to a private developer, arguing that the town "
    "would lose its only deep-water berth for lifeboats and that repairs would take at least six weeks."
)
UKRAINIAN = (
    "Міська рада Харкова у вівторок ухвалила бюджет, який передбачає ремонт двадцяти шкіл до початку осені. "
    "Депутати зазначили, що роботи коштуватимуть близько сорока мільйонів гривень."
)
RUSSIAN = (
    "Городской совет во вторник утвердил бюджет, который предусматривает ремонт двадцати школ до начала осени. "
    "Депутаты отметили, что работы обойдутся примерно в сорок миллионов рублей."
)


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    s = Settings()
    return LanguageDetector(sample_chars=s.enrich_language_sample_chars, threshold=s.enrich_language_confidence)


@pytest.mark.parametrize(
    ("title", "text", "code", "script"),
    [
        ("Pier sale rejected", ENGLISH, "en", "Latn"),
        ("Рада ухвалила бюджет", UKRAINIAN, "uk", "Cyrl"),
        ("Совет утвердил бюджет", RUSSIAN, "ru", "Cyrl"),
        ("", ENGLISH, "en", "Latn"),
    ],
)
def test_language_of_title_and_text(detector: LanguageDetector, title: str, text: str, code: str, script: str) -> None:
    found = detector.detect(title, text)
    assert (found.code, found.script) == (code, script)
    assert 0.5 <= found.confidence <= 1.0


def test_long_text_is_decided_by_cld2_first(detector: LanguageDetector) -> None:
    assert detector.detect("Pier sale rejected", ENGLISH).method == "cld2"


def test_short_text_falls_back_to_py3langid_or_lingua(detector: LanguageDetector) -> None:
    found = detector.detect("", "Harbour council rejects pier sale")
    assert found.method in ("py3langid", "lingua")
    assert found.code == "en"


def test_unsure_title_asks_lingua(detector: LanguageDetector) -> None:
    # py3langid gives this (invented) Bulgarian title only 0.69, below the threshold; lingua is asked too.
    found = detector.detect("", "Рибарите поискаха помощ от правителството")
    assert (found.code, found.method) == ("bg", "lingua")
    assert found.confidence > 0.9


@pytest.mark.parametrize("text", ["08.11.2020", "", "   ", "12:30 — 14:00"])
def test_text_without_letters_has_no_language(detector: LanguageDetector, text: str) -> None:
    assert detector.detect("", text) == Language(None, 0.0, None, "none")


def test_control_characters_do_not_break_cld2(detector: LanguageDetector) -> None:
    text = ENGLISH.replace(" the town", " \x97 the town") * 2
    assert detector.detect("", text).code == "en"


@pytest.mark.parametrize("sample", ["Brexit da ali ne?", "Koronavirus: Všeobecná fackovačka", "eureth", "Ася Биби"])
def test_only_iso_639_1_codes_come_out(detector: LanguageDetector, sample: str) -> None:
    code = detector.detect("", sample).code
    assert code is None or (len(code) == 2 and code.isalpha())


@pytest.mark.parametrize(
    ("sample", "script"),
    [("Kyiv", "Latn"), ("Київ", "Cyrl"), ("Αθήνα", "Grek"), ("北京", "Hani"), ("とうきょう", "Jpan"), ("123", None)],
)
def test_dominant_script(sample: str, script: str | None) -> None:
    assert dominant_script(sample) == script


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=400), st.text(max_size=60))
def test_detect_never_raises_and_is_deterministic(detector: LanguageDetector, text: str, title: str) -> None:
    first = detector.detect(title, text)
    assert detector.detect(title, text) == first
    assert 0.0 <= first.confidence <= 1.0
