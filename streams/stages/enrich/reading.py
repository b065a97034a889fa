"""Reading enricher: word count and reading time of the article text.

Rule: a word is a run of letters or digits, with inner apostrophes, hyphens, dots or commas ("don't",
"Trump-Putin", "90,000" are one word each); reading time is words / `wpm` minutes, rounded up to whole seconds.
For example 612 words at 238 words per minute -> {"word_count": 612, "reading_time_seconds": 155}.
Text without spaces between words (Chinese, Japanese, Thai) counts each letter run as one word: an undercount.
"""

from __future__ import annotations

import math
import re

NAME = "reading"
VERSION = "1"
_WORD = re.compile(r"\w+(?:['’.,-]\w+)*")


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def reading_time_seconds(words: int, wpm: int) -> int:
    return math.ceil(words * 60 / wpm) if words else 0
