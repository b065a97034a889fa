"""Plain-text cleaning for normalize: mojibake, NFC, control characters, paragraphs, language tags.

A body becomes a list of `Block`s (paragraphs), each a tuple of lines with whitespace collapsed. Lines matter
to find aggregator marks (a credit line under a title line); normalize joins a block's lines with a space
(text: hard wrapping) or a newline (HTML: a <br>), and blocks with a blank line. HTML bodies go through
`streams.stages.normalize.html` first, which yields the same blocks.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, NamedTuple

import ftfy
import nh3

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
# Cheap first tests on the UTF-8 bytes, mostly "no" (C2..F4 are lead bytes, never continuation bytes, and lone
# surrogates pass as ED A0..BF sequences). One regex per lead byte: sre finds a literal first byte fast, while an
# alternation costs ~3 µs per KB. Is there any character in U+0080..U+009F or U+00C2..U+00F4 (mojibake's marks)?
_MOJIBAKE_FIRST_UTF8 = (re.compile(b"\xc2[\x80-\x9f]"), re.compile(b"\xc3[\x82-\xb4]"))
# Is there any character _CONTROL removes? C0 and DEL are single bytes; the rest by their lead byte.
_C0_AND_DEL = bytes(c for c in range(0x20) if c not in (0x09, 0x0A)) + b"\x7f"
_CONTROL_UTF8 = (
    re.compile(b"\xc2[\x80-\x9f\xad]"),  # C1 controls, soft hyphen
    re.compile(b"\xe2(?:\x80\x8b|\x81\xa0)"),  # zero-width space, word joiner
    re.compile(b"\xef(?:\xbb\xbf|\xbf[\xbe\xbf])"),  # BOM, U+FFFE, U+FFFF
    re.compile(b"\xed[\xa0-\xbf]"),  # lone surrogates
)
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

# Markup in plain-text fields. For an HTML parser (and a browser) "<" opens markup only before a letter, "/" and
# a letter, "!" or "?"; any other "<" ("Profits < forecast", "3<5") is a literal character and stays.
TAG_START = re.compile(r"<(?:[A-Za-z]|/[A-Za-z]|!|\?)")
_CHAR_REF = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# Elements whose content is never text (a script's code, a style sheet, an embedded document...).
_NO_TEXT = frozenset(
    {
        "script", "style", "noscript", "template", "iframe", "frame", "frameset", "object", "embed", "applet",
        "svg", "math", "textarea", "select", "title", "xmp", "noembed", "noframes", "plaintext", "head",
    }
)  # fmt: skip
# Elements that end a paragraph (or, for <br>, a line) when markup in a text body is turned into text.
_BREAK_TAGS = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
        "pre", "table", "tr", "section", "article", "header", "footer", "aside", "figure", "figcaption", "hr",
    }
)  # fmt: skip
# html5ever (through nh3) parses as browsers do; kept break tags come out bare (`<p>`, `</p>`, `<br>`).
_PLAIN_CLEANER = nh3.Cleaner(
    tags=set(_BREAK_TAGS), clean_content_tags=set(_NO_TEXT), attributes={}, strip_comments=True, link_rel=None
)
_BREAK_MARKUP = re.compile("<(/?)(" + "|".join(sorted(_BREAK_TAGS)) + ")>")
_MARKUP_ROUNDS = 4  # decoding "&lt;b&gt;" yields a tag, stripped in the next round; deeper nesting is an attack


@dataclass(frozen=True)
class CleanText:
    """Text after repair; `mojibake_fixed` says whether ftfy changed anything."""

    text: str
    mojibake_fixed: bool = False


class Block(NamedTuple):
    """One paragraph: its non-empty lines (whitespace collapsed) and, for HTML, the element it came from.

    A NamedTuple, not a frozen dataclass: an article makes dozens, and one costs 0.3 µs instead of 1.2 µs.
    """

    lines: tuple[str, ...]
    element: Any = None  # the lxml element holding exactly this paragraph, so marks can be dropped from HTML


def clean(raw: str) -> CleanText:
    """Repairs mojibake, drops control characters (newlines kept, spelt \\n) and normalises to NFC."""
    text = raw
    if "\r" in text or "\u0085" in text or "\u2028" in text or "\u2029" in text:
        text = _NEWLINES.sub("\n", text)
    fixed = False
    data = text.encode("utf-8", "surrogatepass")
    if not text.isascii() and any(r.search(data) for r in _MOJIBAKE_FIRST_UTF8) and _MOJIBAKE_HINT.search(text):
        repaired = ftfy.fix_text(text, _FTFY)
        fixed = repaired != text
        if fixed:
            text = repaired
            data = text.encode("utf-8", "surrogatepass")
    if "\x1b" in text:
        text = _ANSI_ESCAPE.sub("", text)
        data = text.encode("utf-8", "surrogatepass")
    if has_control(data):  # the test costs a third of the substitution, which almost never has work
        text = _CONTROL.sub("", text)
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return CleanText(text, fixed)


def has_control(data: bytes) -> bool:
    """Does the UTF-8 (surrogatepass) `data` hold a character _CONTROL removes?"""
    if len(data.translate(None, _C0_AND_DEL)) != len(data):
        return True
    return not data.isascii() and any(r.search(data) for r in _CONTROL_UTF8)


def collapse(text: str) -> str:
    """Runs of whitespace (any Unicode space, tabs, newlines) become one space; ends trimmed."""
    return " ".join(text.split())


def clean_inline(raw: str | None, *, entities: bool = True) -> CleanText:
    """A one-line field (title, author, source name): cleaned, plain text (see strip_markup) and collapsed.

    entities=False for text an HTML parser already decoded (a page's <title>), so "&amp;lt;" stays "&lt;".
    """
    if not raw:
        return CleanText("")
    cleaned = clean(raw)
    return CleanText(collapse(strip_markup(cleaned.text, entities=entities)), cleaned.mojibake_fixed)


def has_markup(value: str, *, entities: bool = True) -> bool:
    """Would an HTML parser see a tag, comment or (with `entities`) a character reference in `value`?"""
    if "<" in value and TAG_START.search(value):
        return True
    return entities and "&" in value and _CHAR_REF.search(value) is not None


def strip_markup(value: str, *, entities: bool = True, paragraphs: bool = False) -> str:
    """The plain text of `value`, which should be plain text but may carry markup.

    Tags and comments go, and the content of script, style, iframe, svg and the like with them; character
    references are decoded when `entities` (values from producers; not for text lxml already decoded); a "<"
    that opens no tag stays. With `paragraphs`, block tags become blank lines and <br> a newline (a text body),
    else a space. The result holds nothing an HTML parser would read as markup, so a consumer that pastes it
    into a page unescaped still shows text:

        "<script>alert(1)</script> Headline"  ->  " Headline"
        "Profits < forecast &amp; costs"      ->  "Profits < forecast & costs"
        "&lt;img src=x onerror=alert(1)&gt;"  ->  ""   (decoding makes a tag, which goes in the next round)
    """
    if not has_markup(value, entities=entities):
        return value
    current = value
    for attempt in range(_MARKUP_ROUNDS):
        decode = entities and attempt == 0
        cleaned = str(_PLAIN_CLEANER.clean(current if decode else current.replace("&", "&amp;")))
        cleaned = _BREAK_MARKUP.sub(_break if paragraphs else " ", cleaned)
        result = html.unescape(cleaned)  # undoes nh3's escaping (and decodes the input's references, if decode)
        if result == current or not TAG_START.search(result):
            current = result
            break
        current = result
    # Only reached with markup left after _MARKUP_ROUNDS decodings of itself: what is left cannot open a tag.
    return TAG_START.sub(lambda m: m.group()[1:], current) if TAG_START.search(current) else current


def _break(m: re.Match[str]) -> str:
    return "\n" if m.group(2) == "br" else "\n\n"


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
