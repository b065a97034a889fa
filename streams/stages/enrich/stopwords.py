"""Stop words per language for keywords and the summary, from spaCy's language data (shipped with spaCy, no model)."""

from __future__ import annotations

import importlib
from functools import lru_cache


@lru_cache(maxsize=64)
def stop_words(lang: str | None) -> frozenset[str]:
    """spaCy's stop words of `lang` (ISO 639-1), lower case; empty when spaCy has none for it."""
    if not lang or not lang.isalpha():
        return frozenset()
    try:
        module = importlib.import_module(f"spacy.lang.{lang}.stop_words")
    except ImportError:
        return frozenset()
    words = getattr(module, "STOP_WORDS", ())
    return frozenset(w.lower() for w in words)
