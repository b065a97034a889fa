"""Language enricher: ISO 639-1 code, confidence and script of an article, from its title and the start of its text.

Rule: cheap first, a better detector only when unsure. On a sample of title + text (up to
`sample_chars`), CLD2 answers when the sample is long enough (>= 200 characters) and it calls its answer
reliable with >= 90 % of the text; else py3langid (restricted to languages that have an ISO 639-1 code) answers
when its probability is >= `threshold`; else lingua (high accuracy) scores py3langid's five best candidates and
the two opinions are multiplied. A sample without letters (a title that is only a date) has no language.
For example the seed's title and text -> Language("en", 0.99, "Latn", "cld2"), and the (invented) Bulgarian title
"Рибарите поискаха помощ от правителството" (py3langid: bg 0.69) -> Language("bg", 0.99, "Cyrl", "lingua").

Measured on ../shared/data's Slavic news (BENCHMARKS.md, bench/bench_enrich.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import pycld2
from lingua import Language as LinguaLanguage
from lingua import LanguageDetectorBuilder
from py3langid.langid import MODEL_FILE, LanguageIdentifier

NAME = "language"
VERSION = "1"
_CLD2_MIN_CHARS = 200  # CLD2 is unreliable on shorter text (titles: 0.87 accuracy, mostly "unknown")
_CLD2_MIN_PERCENT = 90  # share of the text CLD2 gives its top language, in percent
_CANDIDATES = 5  # py3langid's best candidates lingua chooses between
_EPS = 1e-4  # floor of each opinion in the product, so one detector's 0 does not veto the other outright
# CLD2 refuses C0/C1 control characters as "invalid UTF-8"; normalize removes them, enrich must not rely on it.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# ISO 15924 codes of the scripts a news article is commonly written in, by Unicode character name prefix.
_SCRIPTS = {
    "LATIN": "Latn",
    "CYRILLIC": "Cyrl",
    "GREEK": "Grek",
    "ARABIC": "Arab",
    "HEBREW": "Hebr",
    "DEVANAGARI": "Deva",
    "BENGALI": "Beng",
    "CJK": "Hani",
    "HIRAGANA": "Jpan",
    "KATAKANA": "Jpan",
    "HANGUL": "Kore",
    "THAI": "Thai",
    "GEORGIAN": "Geor",
    "ARMENIAN": "Armn",
    "ETHIOPIC": "Ethi",
    "TAMIL": "Taml",
    "GUJARATI": "Gujr",
    "GURMUKHI": "Guru",
}


@dataclass(frozen=True)
class Language:
    """The language of one article; `code` is None when the sample has no letters."""

    code: str | None
    confidence: float  # 0..1: the detector's probability (CLD2: its share of the text)
    script: str | None  # ISO 15924 of most letters, e.g. "Latn", "Cyrl"
    method: str  # cld2, py3langid, lingua, or none

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "confidence": self.confidence, "script": self.script, "method": self.method}


class LanguageDetector:
    """Holds the detectors (py3langid's model: ~0.3 s to load, ~60 MB; lingua's models load on first need)."""

    def __init__(self, *, sample_chars: int, threshold: float) -> None:
        self.sample_chars = sample_chars
        self.threshold = threshold
        self._langid = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self._langid.set_languages([code for code in self._langid.labels if len(code) == 2])
        self._lingua_languages = {lang.iso_code_639_1.name.lower(): lang for lang in LinguaLanguage.all()}
        self._lingua: dict[tuple[str, ...], Any] = {}  # one small detector per candidate set; models are shared

    @staticmethod
    def uses() -> str:
        return ", ".join(f"{p} {version(p)}" for p in ("pycld2", "py3langid", "lingua-language-detector"))

    def detect(self, title: str, text: str) -> Language:
        sample = _sample(title, text, self.sample_chars)
        script = dominant_script(sample)
        if script is None:
            return Language(None, 0.0, None, "none")
        if len(sample) >= _CLD2_MIN_CHARS:
            found = _cld2(sample)
            if found is not None:
                return Language(found[0], found[1], script, "cld2")
        ranked = self._langid.rank(sample)[:_CANDIDATES]
        best, probability = ranked[0]
        if probability >= self.threshold:
            return Language(best, round(float(probability), 4), script, "py3langid")
        code, combined = self._lingua_vote(sample, ranked)
        return Language(code, round(combined, 4), script, "lingua")

    def _lingua_vote(self, sample: str, ranked: list[tuple[str, float]]) -> tuple[str, float]:
        candidates = tuple(sorted(code for code, _ in ranked if code in self._lingua_languages))
        if len(candidates) < 2:
            return ranked[0][0], float(ranked[0][1])
        detector = self._lingua.get(candidates)
        if detector is None:
            languages = [self._lingua_languages[c] for c in candidates]
            detector = self._lingua[candidates] = LanguageDetectorBuilder.from_languages(*languages).build()
        theirs = {
            v.language.iso_code_639_1.name.lower(): v.value for v in detector.compute_language_confidence_values(sample)
        }
        ours = dict(ranked)
        scores = {c: (ours.get(c, 0.0) + _EPS) * (theirs.get(c, 0.0) + _EPS) for c in candidates}
        total = sum(scores.values())
        # Ties go to the code first in alphabetical order, so the answer never depends on dict order.
        code = min(scores, key=lambda c: (-scores[c], c))
        return code, scores[code] / total


def _sample(title: str, text: str, limit: int) -> str:
    sample = f"{title}\n{text}" if title else text
    if len(sample) > limit:
        cut = sample.rfind(" ", 0, limit)
        sample = sample[: cut if cut > limit // 2 else limit]
    return _CONTROL.sub(" ", sample)


def _cld2(sample: str) -> tuple[str, float] | None:
    try:
        reliable, _, details = pycld2.detect(sample)
    except pycld2.error:
        return None
    _, code, percent, _ = details[0]
    if reliable and percent >= _CLD2_MIN_PERCENT and len(code) == 2:
        return code, percent / 100
    return None


def dominant_script(sample: str) -> str | None:
    """ISO 15924 code of the script most letters of `sample` are in; None without letters, "Zyyy" if unknown."""
    if sample.isascii():  # most news: no need to look at each character (str.isascii is C, ~0.1 µs)
        return "Latn" if any(ch.isalpha() for ch in sample) else None
    counts: dict[str, int] = {}
    for ch, n in Counter(sample).items():  # distinct characters only: ~100 in a 1,000-character sample
        if not ch.isalpha():
            continue
        if ch < "\u0250":  # Basic Latin to Latin Extended-B
            script = "Latn"
        else:
            script = _SCRIPTS.get(unicodedata.name(ch, "").split(" ", 1)[0], "Zyyy")
        counts[script] = counts.get(script, 0) + n
    if not counts:
        return None
    return min(counts, key=lambda s: (-counts[s], s))
