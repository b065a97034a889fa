"""Keywords enricher: the phrases an article is about, by frequency, length, position and capitals (RAKE-like).

Rule: candidate phrases are runs of one to four words between stop words (spaCy's list for the language) and
punctuation, without numbers; a phrase scores its count times the mean frequency of its words, times 1.5 per
extra word, times a bonus for appearing early (first sentence x2, fading with the sentence index) and for being
capitalised mid-sentence (names: x1.5). The best `limit` phrases are kept, skipping one whose words are all in a
better one ("Zelenskyy" after "Volodymyr Zelenskyy"); scores are scaled so the best is 1.0. For example on the seed
-> ["Russia", "Ukraine", "Trump", "Russian President Vladimir Putin", "ceasefire", ...].

Why not yake: yake 0.7.3 takes 14.6 ms per BBC article and yake-rust 1.2.1 2.5 ms (and panics on Czech), against
a budget of 1 ms for every enricher but NER together; this takes ~0.45 ms (BENCHMARKS.md).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from streams.stages.enrich.stopwords import stop_words

NAME = "keywords"
VERSION = "1"
# Words (letters, inner apostrophes and hyphens), sentence marks, other punctuation, numbers: one C-level pass.
_TOKEN = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|[.!?…]+(?=\s|$)|\n|[,;:()\[\]\"“”«»—–/]|\s-\s|\d[\w.,]*")
_SENTENCE_MARKS = frozenset(".!?…\n")
# Reporting verbs fill news text ("said" is in most BBC articles) without saying what it is about.
_REPORTING = {"en": frozenset("said says say told tells added according asked announced reported".split())}
_MAX_WORDS = 4  # a longer run between stop words is a clause, not a keyword (its words still count)


def extract(text: str, lang: str | None, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` keywords of `text` as {"text", "score"}, best first."""
    return ranked(text, lang)[:limit] if limit > 0 else []


def ranked(text: str, lang: str | None, pool: int = 20) -> list[dict[str, Any]]:
    """The best `pool` keywords, best first (the summary scores sentences with them)."""
    stops = stop_words(lang) | _REPORTING.get(lang or "", frozenset())
    words: Counter[str] = Counter()
    runs: list[tuple[str, bool, int]] = []  # (phrase as written, capitalised mid-sentence, sentence index)
    append = runs.append
    sentence = 0
    run: list[str] = []
    run_caps = True
    at_sentence_start = True
    # One pass over the tokens, kept lean: it is most of this enricher's time (~500 tokens per BBC article).
    for tok in _TOKEN.findall(text):
        if tok[0].isalpha():
            low = tok.lower()
            if low in stops:
                if run:
                    append((" ".join(run), run_caps, sentence))
                    run = []
                at_sentence_start = False
                continue
            words[low] += 1
            if not run:
                run_caps = True
            # Capitals mid-sentence mark a name; the first word of a sentence is capitalised anyway.
            run_caps = run_caps and tok[0].isupper() and not at_sentence_start
            run.append(tok)
            at_sentence_start = False
            continue
        if run:
            append((" ".join(run), run_caps, sentence))
            run = []
        if tok[0] in _SENTENCE_MARKS:
            sentence += 1
            at_sentence_start = True
    if run:
        append((" ".join(run), run_caps, sentence))
    phrases: Counter[str] = Counter()
    forms: dict[str, str] = {}
    first_sentence: dict[str, int] = {}
    capitalised: Counter[str] = Counter()
    for form, caps, at in runs:
        n_words = form.count(" ") + 1
        if n_words > _MAX_WORDS or (n_words == 1 and len(form) < 3):
            continue
        key = form.lower()
        phrases[key] += 1
        if key not in forms:
            forms[key] = form  # the first form seen: deterministic, and usually the fullest capitalisation
            first_sentence[key] = at
        if caps:
            capitalised[key] += 1
    scored = []
    for key, count in phrases.items():
        parts = key.split()
        tf = sum(words[w] for w in parts) / len(parts)
        position = 1.0 + 1.0 / (1.0 + first_sentence[key])
        caps_bonus = 1.5 if capitalised[key] * 2 >= count else 1.0
        score = count * tf * (1.5 ** (len(parts) - 1)) * position * caps_bonus
        scored.append((score, first_sentence[key], key))
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    chosen: list[tuple[float, str]] = []
    taken_by_word: dict[str, list[set[str]]] = {}  # a phrase inside another shares a word with it
    for score, _, key in scored:
        words_of = set(key.split())
        near = [t for w in words_of for t in taken_by_word.get(w, ())]
        if any(words_of <= t or t <= words_of for t in near):
            continue
        for w in words_of:
            taken_by_word.setdefault(w, []).append(words_of)
        chosen.append((score, forms[key]))
        if len(chosen) == pool:
            break
    top = chosen[0][0] if chosen else 1.0
    return [{"text": form, "score": round(score / top, 4)} for score, form in chosen]
