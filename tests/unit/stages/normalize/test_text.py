"""Text cleaning and HTML extraction of normalize: mojibake, controls, NFC, paragraphs, sanitising."""

from __future__ import annotations

import re

import lxml.html
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from streams.stages.normalize import html, text

BASE = "https://partner.example.org/news/42"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("It\u00e2\u20ac\u2122s here", "It\u2019s here"),  # â€™ -> ’
        ("caf\u00c3\u00a9 culture", "café culture"),
        ("\u00e2\u20ac\u0153quoted\u00e2\u20ac\u009d", "\u201cquoted\u201d"),
        ("\u00d0\u00bf\u00d1\u20ac\u00d0\u00b8\u00d0\u00b2\u00d0\u00b5\u00d1\u201a", "привет"),
        ("It\x92s a cp1252 apostrophe read as Latin-1", "It\u2019s a cp1252 apostrophe read as Latin-1"),
    ],
)
def test_mojibake_is_repaired_and_flagged(raw: str, clean: str) -> None:
    result = text.clean(raw)
    assert result.text == clean
    assert result.mojibake_fixed


@pytest.mark.parametrize(
    "raw",
    [
        "Zelenskyy\u2019s \u201cplan\u201d \u2013 naïve café",  # curly quotes and accents are the author's
        "阅读中文版 Привет мир ＡＢＣ ﬁne",  # CJK, Cyrillic, full-width forms, ligatures kept
        "£600m and 90,000 km²",
        "plain ASCII text",
    ],
)
def test_good_text_is_left_alone(raw: str) -> None:
    result = text.clean(raw)
    assert result.text == raw
    assert not result.mojibake_fixed


def test_control_characters_are_removed_but_newlines_kept() -> None:
    raw = "A\x00B\x01C\x07\x1b[31mD\x7f\u200bE\ufeff\u00adF\r\nG\rH\u2028I"
    assert text.clean(raw).text == "ABCDEF\nG\nH\nI"


def test_text_is_nfc() -> None:
    assert text.clean("Cafe\u0301").text == "Café"


@pytest.mark.parametrize(
    ("body", "blocks"),
    [
        ("One.\n\nTwo.", [("One.",), ("Two.",)]),
        ("One\nstill one.\n\n\n\nTwo.", [("One", "still one."), ("Two.",)]),
        ("  spaced   out\t words  \n \t \nNext", [("spaced out words",), ("Next",)]),
        ("Line one.\nLine two.\nLine three.", [("Line one.",), ("Line two.",), ("Line three.",)]),
        ("\n\nLine one.\nLine two.\n\n", [("Line one.",), ("Line two.",)]),
        ("Only one line", [("Only one line",)]),
        ("\n\n  \n", []),
        ("", []),
        ("A\u00a0\u3000B", [("A B",)]),
    ],
)
def test_text_blocks(body: str, blocks: list[tuple[str, ...]]) -> None:
    assert [b.lines for b in text.text_blocks(body)] == blocks


@pytest.mark.parametrize(
    ("raw", "tag"),
    [("en", "en"), ("EN-gb", "en-GB"), ("zh_hant_tw", "zh-Hant-TW"), ("pt-BR", "pt-BR"), ("", None)],
)
def test_language_tag(raw: str, tag: str | None) -> None:
    assert text.language_tag(raw) == tag


@pytest.mark.parametrize("raw", ["x", "not a tag", "en--gb", "12"])
def test_language_tag_refuses_junk(raw: str) -> None:
    assert text.language_tag(raw) is None


NASTY = """<html><head><title>Rates held</title><script>var secret = "SCRIPT_SECRET";</script>
<style>body { color: red } .STYLE_SECRET {}</style></head>
<body onload="boot()"><nav><a href="/">Home</a> <a href="/markets">Markets</a></nav>
<article><h1>Rates held</h1>
<p>The central bank held interest rates on Tuesday, citing stubborn inflation in services prices.</p>
<script>alert("INLINE_SCRIPT")</script>
<p onclick="steal()">Economists had expected the pause. <a href="javascript:alert('JS_LINK')">Read more</a> in
our <a href="/analysis/rates" onmouseover="x()">analysis</a> of the decision.</p>
<iframe src="https://evil.example/frame">IFRAME_TEXT</iframe>
<noscript>NOSCRIPT_TEXT</noscript>
<p style="position:fixed">Markets barely moved after the announcement, traders said in the afternoon.</p>
</article><footer>Copyright Partner 2025</footer></body></markup>"""


def extracted_text(content: html.HtmlContent) -> str:
    return "\n\n".join(" ".join(b.lines) for b in content.blocks)


def test_html_extraction_keeps_article_paragraphs_only() -> None:
    content = html.extract_html(NASTY, base_url=BASE)
    body = extracted_text(content)
    assert content.extractor == "trafilatura"
    assert "The central bank held interest rates on Tuesday" in body
    assert "Markets barely moved" in body
    assert "Home" not in body and "Copyright" not in body
    assert content.title == "Rates held"


@pytest.mark.parametrize("secret", ["SCRIPT_SECRET", "STYLE_SECRET", "INLINE_SCRIPT", "IFRAME_TEXT", "NOSCRIPT_TEXT"])
def test_script_style_and_iframe_content_never_reach_text_or_html(secret: str) -> None:
    content = html.extract_html(NASTY, base_url=BASE)
    assert secret not in extracted_text(content)
    assert secret not in (html.render_html(content, drop=[], base_url=BASE) or "")
    assert secret not in " ".join(html.page_lines(content))


@pytest.mark.parametrize("danger", ["<script", "<iframe", "<style", "onclick", "onmouseover", "onload", "javascript:"])
def test_rendered_html_is_sanitised(danger: str) -> None:
    markup = html.render_html(html.extract_html(NASTY, base_url=BASE), drop=[], base_url=BASE)
    assert markup is not None
    assert danger not in markup.lower()


def test_rendered_html_resolves_relative_links() -> None:
    markup = html.render_html(html.extract_html(NASTY, base_url=BASE), drop=[], base_url=BASE)
    assert 'href="https://partner.example.org/analysis/rates"' in (markup or "")


@pytest.mark.parametrize(
    "dirty",
    [
        '<p onclick="x()">a</p>',
        '<a href="javascript:alert(1)">a</a>',
        '<a href="data:text/html,hi">a</a>',
        "<script>alert(1)</script>",
        '<iframe src="https://e.example"></iframe>',
        '<img src="x" onerror="alert(1)">',
        "<style>p{}</style>",
        '<p style="color:red">a</p>',
        "<svg><script>alert(1)</script></svg>",
        '<form action="/x"><input name="q"></form>',
    ],
)
def test_sanitize_html_removes_active_content(dirty: str) -> None:
    clean = html.sanitize_html(dirty).lower()
    for danger in ("<script", "onclick", "onerror", "javascript:", "data:", "<iframe", "<style", "style=", "<svg"):
        assert danger not in clean
    assert "<img" not in clean and "<form" not in clean and "<input" not in clean


def test_short_fragment_is_extracted() -> None:
    content = html.extract_html("<p>Rates held.</p><p>More later.</p>", base_url=BASE)
    assert [b.lines for b in content.blocks] == [("Rates held.",), ("More later.",)]


def test_fragment_trafilatura_refuses_goes_through_the_lxml_fallback() -> None:
    # trafilatura drops a block it takes for reader comments; a partner fragment may still be exactly that
    content = html.extract_html("<div class='comments'><p>Partner text.</p><script>x()</script></div>", base_url=BASE)
    assert content.extractor == "fallback"
    assert [b.lines for b in content.blocks] == [("Partner text.",)]


def test_line_breaks_split_lines_within_a_paragraph() -> None:
    content = html.extract_html("<p>First line<br>second line</p><p>Next paragraph.</p>", base_url=BASE)
    assert [b.lines for b in content.blocks] == [("First line", "second line"), ("Next paragraph.",)]


def test_html_blocks_walks_nested_markup() -> None:
    root = html._parse_fragment("<div>Lead text<p>Para <b>bold</b>\n  wrapped</p>tail text<ul><li>One</li></ul></div>")
    blocks = html.html_blocks(root)
    assert [b.lines for b in blocks] == [("Lead text",), ("Para bold wrapped",), ("tail text",), ("One",)]
    assert blocks[1].element is not None and blocks[1].element.tag == "p"
    assert blocks[0].element is None  # text beside nested blocks belongs to no single element


def test_deeply_nested_html_does_not_exhaust_the_stack() -> None:
    markup = "<div>" * 5000 + "<p>Deep text here.</p>" + "</div>" * 5000
    content = html.extract_html(markup, base_url=BASE)
    assert extracted_text(content) == "Deep text here."


@pytest.mark.parametrize("markup", ["", "   ", "<html></html>", "<script>alert(1)</script>", "<!-- comment -->"])
def test_empty_or_script_only_html_yields_no_blocks(markup: str) -> None:
    assert html.extract_html(markup, base_url=BASE).blocks == []


def test_stray_angle_brackets_are_text() -> None:
    assert extracted_text(html.extract_html("<<<>>>", base_url=BASE)) == "<<<>>>"


def test_encoding_declaration_in_a_string_is_handled() -> None:
    markup = '<?xml version="1.0" encoding="ISO-8859-1"?><html><body><p>Déjà vu in the newsroom.</p></body></html>'
    content = html.extract_html(markup, base_url=BASE)
    assert "Déjà vu in the newsroom." in extracted_text(content)


def test_page_language_and_hreflang_links_are_collected() -> None:
    markup = """<html lang="fr-fr"><head><link rel="alternate" hreflang="en" href="/en/a"></head><body>
    <p>Le texte de l'article est ici.</p><a href="/de/a" hreflang="de">Deutsch</a></body></markup>"""
    content = html.extract_html(markup, base_url=BASE)
    assert content.language == "fr-FR"
    assert {(link.hreflang, link.href) for link in content.links if link.hreflang} == {("en", "/en/a"), ("de", "/de/a")}


@pytest.mark.parametrize(
    ("href", "resolved"),
    [
        ("/zh/a", "https://partner.example.org/zh/a"),
        ("https://other.example/x", "https://other.example/x"),
        ("javascript:alert(1)", None),
        ("data:text/html,x", None),
        ("mailto:a@b.c", None),
        ("", None),
        (None, None),
    ],
)
def test_resolve_url(href: str | None, resolved: str | None) -> None:
    assert html.resolve_url(href, BASE) == resolved


_LATIN1_AROUND = st.characters(min_codepoint=0x60, max_codepoint=0x110, exclude_categories=())
_SPECIALS = st.sampled_from(
    list("\x00\x08\t\n\x0b\x1f\x7f\x80\x9f\xa0\xad\u200b\u200c\u2060\ufeff\ufffd\ufffe\uffff\ud800\udfff")
)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.one_of(_LATIN1_AROUND, _SPECIALS, st.characters()), max_size=40))
def test_byte_tests_are_the_character_class_tests(raw: str) -> None:
    data = raw.encode("utf-8", "surrogatepass")
    on_chars = re.search("[\u0080-\u009f\u00c2-\u00f4]", raw) is not None
    assert any(r.search(data) for r in text._MOJIBAKE_FIRST_UTF8) == on_chars
    assert text.has_control(data) == (text._CONTROL.search(raw) is not None)


# --- plain-text fields carry no markup -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        ("<script>alert(1)</script> Headline", "Headline"),
        ("Profits < forecast", "Profits < forecast"),
        ("3 < 5 > 2, and 3<5", "3 < 5 > 2, and 3<5"),
        ("AT&amp;T &amp; Verizon", "AT&T & Verizon"),
        ("AT&T, M&S and P&O", "AT&T, M&S and P&O"),
        ("&#163;1.8m fine &#x2014; for Viacom", "£1.8m fine — for Viacom"),
        ("&lt;script&gt;alert(1)&lt;/script&gt;Headline", "Headline"),
        ("&#60;script&#62;alert(1)&#60;/script&#62;Headline", "Headline"),
        ("&amp;lt;b&amp;gt; tag", "&lt;b&gt; tag"),
        ("<img src=x onerror=alert(1)>Headline", "Headline"),
        ("<svg onload=alert(1)><script>alert(2)</script></svg>Headline", "Headline"),
        ('<a href="javascript:alert(1)" onclick="x()">Click</a> here', "Click here"),
        ("<iframe src=//evil.example>fallback</iframe>Headline", "Headline"),
        ("<object data=x.swf><embed src=x.swf></object>Headline", "Headline"),
        ('<div style="width: expression(alert(1))">Headline</div>', "Headline"),
        ("<style>body{background:url(javascript:alert(1))}</style>Headline", "Headline"),
        ("<!-- a comment -->Head<br>line", "Head line"),
        ("<b>Bold</b> move by <i>the</i> council", "Bold move by the council"),
        ("<title>Page</title>Headline", "Headline"),
        ("Headline <script>alert(1)", "Headline"),
        ("<scr<script>ipt>alert(1)</script>Headline", "ipt>alert(1)Headline"),
        ("Tom &amp Jerry &copy; 2020", "Tom & Jerry © 2020"),
    ],
)
def test_one_line_fields_are_plain_text(raw: str, plain: str) -> None:
    assert text.clean_inline(raw).text == plain


def test_markup_in_a_text_body_keeps_its_paragraphs() -> None:
    body = "<p>First paragraph.</p><p>Second<br>line.</p><script>alert(1)</script>"
    assert text.text_blocks(text.strip_markup(body, paragraphs=True)) == [
        text.Block(("First paragraph.",)),
        text.Block(("Second", "line.")),
    ]


def test_text_already_decoded_by_a_parser_is_not_decoded_again() -> None:
    assert text.strip_markup("Write &amp; for &", entities=False) == "Write &amp; for &"
    assert text.strip_markup("<b>bold</b> &lt;", entities=False) == "bold &lt;"


_MARKUP_BITS = st.sampled_from(
    ["<", ">", "&", ";", "/", "!", "?", "-", "=", '"', "'", " ", "\n", "script", "img", "b", "p", "svg", "a",
     "onerror", "javascript:", "&lt;", "&gt;", "&amp;", "&#60;", "&#x3c;", "<!--", "-->", "<![CDATA[", "]]>",
     "title", "textarea", "x", "1"]
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.lists(st.one_of(_MARKUP_BITS, st.text(max_size=3)), max_size=30).map("".join))
def test_no_markup_survives_plain_text_whatever_the_input(raw: str) -> None:
    for plain in (text.strip_markup(raw), text.strip_markup(raw, entities=False), text.clean_inline(raw).text):
        assert not text.TAG_START.search(plain)
        assert not _elements_a_parser_sees(plain), plain


@settings(max_examples=300, deadline=None)
@given(st.text().filter(lambda s: "<" not in s and "&" not in s))
def test_text_without_markup_characters_is_untouched(raw: str) -> None:
    assert text.strip_markup(raw) == raw


def _elements_a_parser_sees(value: str) -> list[str]:
    """Elements an independent HTML parser (libxml2, through lxml) builds from `value`, if any."""
    if not value.strip():
        return []
    try:
        root = lxml.html.fragment_fromstring(value, create_parent="div")
    except (etree.ParserError, ValueError):
        return []
    return [el.tag for el in root.iterdescendants() if isinstance(el.tag, str)]
