"""Plain-text cleaning for normalize: mojibake, NFC, control characters, paragraphs, language tags.

A body becomes a list of `Block`s (paragraphs), each a tuple of lines with whitespace collapsed. Lines matter
to find aggregator marks (a credit line under a title line); normalize joins a block's lines with a space
(text: hard wrapping) or a newline (HTML: a <br>), and blocks with a blank line. HTML bodies go through
`streams.stages.normalize.html` first, which yields the same blocks.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import ftfy

# Newline spellings other than \n: CRLF, CR, NEL, LINE/PARAGRAPH SEPARATOR. Applied before control stripping,
# since NEL (U+0085) is itself a C1 control.
_NEWLINES = re.compile("\r\n?|[\u0085\u2028\u2029]")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# C0/C1 controls except \t and \n, lone surrogates, noncharacters, and invisible format characters that only
# split words (soft hyphen, zero-width space, word joiner, BOM). ZWJ/ZWNJ and bidi marks carry meaning: kept.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b\u2060\ufeff\ufffe\uffff\ud800-\udfff]")
# ftfy costs ~0.2 ms per 3 KB, so it runs only when the text shows what UTF-8 read as Latin-1/Windows-1252
# looks like: a lead byte (U+00C2..U+00F4) followed by a continuation byte (U+0080..U+00BF or its
# Windows-1252 spelling), a lost U+00A0 ("Ã "), or a stray C1 control (Windows-1252 read as Latin-1).
_CP1252_CONTINUATION = "\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d"
_CP1252_CONTINUATION += "\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178"
_MOJIBAKE_HINT = re.compile(f"[\u00c2-\u00f4][\u0080-\u00bf{_CP1252_CONTINUATION}]|\u00c3 |[\u0080-\u009f]")
# A cheap first test, mostly "no": is there any character in U+0080..U+009F or U+00C2..U+00F4 at all? Asked of
# the UTF-8 bytes (C2 80..9F and C3 82..B4; C2 and C3 are never continuation bytes), which costs half a str scan
# on a page. Lone surrogates pass as ED A0..BF sequences, which hold neither byte.
_MOJIBAKE_FIRST_UTF8 = re.compile(b"\xc2[\x80-\x9f]|\xc3[\x82-\xb4]")
# Only the encoding repairs: curly quotes, full-width forms and ligatures are the author's, not damage, and
# this keeps `mojibake_fixed` meaning exactly that.
_FTFY = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=False,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    fix_line_breaks=False,
    remove_control_chars=False,
    normalization=None,
    explain=False,
)

_LANG_TAG = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")


@dataclass(frozen=True)
class CleanText:
    """Text after repair; `mojibake_fixed` says whether ftfy changed anything."""

    text: str
    mojibake_fixed: bool = False


@dataclass(frozen=True)
class Block:
    """One paragraph: its non-empty lines (whitespace collapsed) and, for HTML, the element it came from."""

    lines: tuple[str, ...]
    element: Any = None  # the lxml element holding exactly this paragraph, so marks can be dropped from HTML


def clean(raw: str) -> CleanText:
    """Repairs mojibake, drops control characters (newlines kept, spelt \\n) and normalises to NFC."""
    text = raw
    if "\r" in text or "\u0085" in text or "\u2028" in text or "\u2029" in text:
        text = _NEWLINES.sub("\n", text)
    fixed = False
    if (
        not text.isascii()
        and _MOJIBAKE_FIRST_UTF8.search(text.encode("utf-8", "surrogatepass"))
        and _MOJIBAKE_HINT.search(text)
    ):
        repaired = ftfy.fix_text(text, _FTFY)
        fixed = repaired != text
        text = repaired
    if "\x1b" in text:
        text = _ANSI_ESCAPE.sub("", text)
    text = _CONTROL.sub("", text)
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return CleanText(text, fixed)


def collapse(text: str) -> str:
    """Runs of whitespace (any Unicode space, tabs, newlines) become one space; ends trimmed."""
    return " ".join(text.split())


def clean_inline(raw: str | None) -> CleanText:
    """A one-line field (title, author, source name): cleaned and collapsed."""
    if not raw:
        return CleanText("")
    cleaned = clean(raw)
    return CleanText(collapse(cleaned.text), cleaned.mojibake_fixed)


def text_blocks(text: str) -> list[Block]:
    """Paragraphs of a plain-text body: blank lines separate paragraphs.

    A body without any blank line but with several lines ("para\\npara\\npara", as many feeds send) has one
    paragraph per line.
    """
    lines = [collapse(line) for line in text.split("\n")]
    filled = [i for i, line in enumerate(lines) if line]
    if not filled:
        return []
    inner = lines[filled[0] : filled[-1] + 1]  # blank lines around the text decide nothing
    if "" not in inner:
        return [Block((line,)) for line in inner]
    blocks: list[Block] = []
    current: list[str] = []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            blocks.append(Block(tuple(current)))
            current = []
    if current:
        blocks.append(Block(tuple(current)))
    return blocks


def language_tag(raw: str | None) -> str | None:
    """A BCP 47 tag in its usual case ("pt-BR", "zh-Hant"), or None when it is not one."""
    if not raw:
        return None
    tag = raw.strip().replace("_", "-")
    if not _LANG_TAG.fullmatch(tag):
        return None
    parts = tag.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 2 and part.isalpha():
            out.append(part.upper())
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())
        else:
            out.append(part.lower())
    return "-".join(out)
