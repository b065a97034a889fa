"""Summary enricher: two or three sentences taken verbatim from the article, in text order (extractive).

Rule: the text is cut into sentences (at . ! ? … followed by a space and a capital, digit or quote, but not after
an abbreviation such as "Mr." or an initial; and at every line break); each sentence of 6 to 80 words scores the
keyword scores (`keywords.ranked`) of the keywords it contains, divided by the square root of its length in words,
and the first sentence (the lede) counts 1.5 times. The best `sentences` go out in the order they are written in,
with their character offsets, so `text[start:end]` is each sentence exactly. For example on the seed -> its first
sentence ("Ukrainian President Volodymyr Zelenskyy has firmly stated ...") and two later ones.
"""

from __future__ import annotations

import math
import re
from typing import Any

NAME = "summary"
VERSION = "1"
_MIN_WORDS, _MAX_WORDS = 6, 80  # shorter: a caption or a fragment; longer: a run-on list, not a summary sentence
_LEDE_BONUS = 1.5
_CANDIDATE_END = re.compile(r"[.!?…]+[\"'”’»)]*(?=\s+[\"'“‘«(]?[^\W_])|\n+")
# Words after which a full stop does not end a sentence (English news abbreviations; initials are caught apart).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st mt gen col lt sgt capt cmdr adm gov sen rep pres jr sr vs no nos fig approx est inc ltd "
    "co corp dept univ jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k e.g i.e etc".split()
)


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of every sentence, surrounding spaces excluded."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _CANDIDATE_END.finditer(text):
        if m.group(0)[0] == ".":
            word = text[max(start, m.start() - 12) : m.start()].rsplit(None, 1)[-1:] or [""]
            w = word[0].lower().lstrip("(\"'“‘")
            if w in _ABBREVIATIONS or (len(w) == 1 and w.isalpha()):
                continue
            following = text[m.end() :].lstrip()[:1]
            if following and not (following.isupper() or following.isdigit() or following in "\"'“‘«("):
                continue
        _push(text, start, m.end() if m.group(0)[0] != "\n" else m.start(), spans)
        start = m.end()
    _push(text, start, len(text), spans)
    return spans


def _push(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def summarise(text: str, keywords: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """{"text": the chosen sentences joined by a space, "sentences": [[start, end], ...]} in text order."""
    spans = sentences(text)
    lowered = [(k["text"].lower(), k["score"]) for k in keywords]
    low_text = text.lower()
    same_offsets = len(low_text) == len(text)  # a few letters ("İ") lower-case to two characters
    scored: list[tuple[float, int]] = []
    for i, (start, end) in enumerate(spans):
        sentence = text[start:end]
        n_words = sentence.count(" ") + 1  # a sentence has no line break; runs of spaces were collapsed upstream
        if not _MIN_WORDS <= n_words <= _MAX_WORDS:
            continue
        low = low_text[start:end] if same_offsets else sentence.lower()
        score = sum(weight for kw, weight in lowered if kw in low) / math.sqrt(n_words)
        if not scored:  # the first sentence of a summary's length: the lede
            score *= _LEDE_BONUS
        scored.append((score, i))
    best = sorted(scored, key=lambda s: (-s[0], s[1]))[:count]
    chosen = sorted(i for _, i in best)
    if not chosen and spans:  # nothing of a summary's length: the first sentence, as it is
        chosen = [0]
    picked = [spans[i] for i in chosen]
    return {"text": " ".join(text[s:e] for s, e in picked), "sentences": [[s, e] for s, e in picked]}
