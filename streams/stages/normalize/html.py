"""HTML for normalize: main content through trafilatura, sanitised HTML through nh3, links and captions.

HTML goes through trafilatura (main content only: no navigation, ads, footers), with a plain lxml walk of
the nh3-sanitised HTML as the fallback for fragments trafilatura returns nothing for. What it yields are
`Block`s, as for plain text, so the aggregator marks are found the same way in both.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit

import lxml.html
import nh3
import trafilatura
import trafilatura.core
from lxml import etree
from trafilatura.baseline import html2txt
from trafilatura.htmlprocessing import convert_to_html
from trafilatura.metadata import extract_title
from trafilatura.settings import Extractor, use_config

from streams.stages.normalize.text import Block, clean_inline, collapse, language_tag, strip_markup

# Elements dropped with their content before anything reads the page: their text is never article text.
DROP_WITH_CONTENT = frozenset(
    {
        "script", "style", "noscript", "template", "iframe", "frame", "frameset", "object", "embed", "applet",
        "svg", "math", "canvas", "audio", "video", "textarea", "select", "button", "head", "title",
    }
)  # fmt: skip
_SCRIPTS = ("script", "style", "noscript", "template")
# The fallback also drops page furniture, which trafilatura drops on its own.
_FALLBACK_DROP = DROP_WITH_CONTENT | {"nav", "aside", "footer", "form", "option"}
# What sanitised article HTML may contain: text structure and links, nothing active.
SAFE_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd", "blockquote",
        "q", "pre", "code", "em", "strong", "b", "i", "u", "s", "sub", "sup", "small", "mark", "del", "ins",
        "abbr", "cite", "a", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "figure",
        "figcaption",
    }
)  # fmt: skip
_SAFE_ATTRIBUTES = {
    "a": {"href", "hreflang", "title"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
_URL_SCHEMES = {"http", "https", "mailto"}
# Tags that end a paragraph when walking HTML to text.
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
        "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
# trafilatura falls back to a flat "baseline" (every paragraph merged into one) when the main extraction is
# under 250 characters; short partner fragments are normal here, so any non-empty extraction is accepted.
_TRAFILATURA_CONFIG = use_config()
_TRAFILATURA_CONFIG.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
# Built once and only read afterwards (trafilatura copies it before changing anything): building one per call
# costs ~0.15 ms of config parsing. No url: links are resolved here, and metadata is not wanted.
_EXTRACTOR = Extractor(
    config=_TRAFILATURA_CONFIG,
    output_format="python",
    fast=True,  # no readability/justext second opinion: faster, and the lxml fallback covers fragments
    comments=False,
    tables=True,
    images=False,
    links=True,
    dedup=False,
    with_metadata=False,
)
# trafilatura 2.3.1 ends its cascade with a "recall escalation": when an extraction is under 3,000 characters
# (most articles) it measures the whole page's text (html2txt: a copy of the tree, a cleaning XPath and a spaced
# text walk, ~250 µs a page, a quarter of the extraction) to retry in recall mode if the extraction covers under
# a fifth of it, which few article pages need. `_trafilatura_body` runs the cascade without that test (under a
# focus name trafilatura treats as "balanced" everywhere else: only the escalation asks for focus == "balanced"),
# then takes the same decision itself: a cheap upper bound of the page's text settles almost every page, and
# the rest run trafilatura's whole extraction again. The result is what bare_extraction returns (tested); on
# any other trafilatura version it is bare_extraction itself.
_TRAFILATURA_WRITTEN_FOR = "2.3.1"
_TEXT_OF = etree.XPath("string()")
_COUNT_ELEMENTS = etree.XPath("count(descendant-or-self::*)")
_NO_ESCALATION = copy.copy(_EXTRACTOR)
_NO_ESCALATION.focus = "balanced (escalation decided by streams)"


class Link(NamedTuple):
    """An anchor (or <link rel=alternate>) of the page: where translation links come from in HTML bodies.

    A NamedTuple: a page has dozens of anchors, and a frozen dataclass costs four times as much to make.
    """

    text: str
    href: str | None
    hreflang: str | None


@dataclass
class HtmlContent:
    """What an HTML body yields: the main-content blocks, page-level hints and the trees to render from."""

    blocks: list[Block]
    title: str | None = None
    language: str | None = None
    links: list[Link] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)  # figure captions and credit elements of the whole page
    extractor: str = "none"  # trafilatura, fallback or none: which path produced `blocks`
    content: Any = None  # lxml element holding the main content (mutated by render_html)
    page_text: str = ""  # the whole page's text (no scripts, styles...), for a cheap page-wide disclaimer test
    source: str = ""  # the HTML, to parse the page again for `page_lines` (trafilatura consumed the first tree)


def resolve_url(href: str | None, base_url: str) -> str | None:
    """An absolute http(s) URL for a link, or None (javascript:, data:, mailto:, unparsable...)."""
    if not href:
        return None
    try:
        absolute = urljoin(base_url, href.strip())
        scheme = urlsplit(absolute).scheme.lower()
    except ValueError:
        return None
    return absolute if scheme in ("http", "https") else None


def _cleaner(drop: frozenset[str]) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(SAFE_TAGS),
        clean_content_tags=set(drop),
        attributes={k: set(v) for k, v in _SAFE_ATTRIBUTES.items()},
        url_schemes=set(_URL_SCHEMES),
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    )


# Built once: passing the options to nh3.clean converts them on every call (~20 µs a page).
_CLEANERS = {False: _cleaner(DROP_WITH_CONTENT), True: _cleaner(_FALLBACK_DROP)}


def sanitize_html(html: str, *, drop_furniture: bool = False) -> str:
    """HTML restricted to SAFE_TAGS: no script, iframe, style, event handlers or javascript: URLs."""
    return str(_CLEANERS[drop_furniture].clean(html))


def extract_html(html: str, *, base_url: str, want_title: bool = True) -> HtmlContent:
    """Main content of an HTML page or fragment as blocks, plus the page's title, language and links.

    want_title=False leaves `title` None (the event has its own title; trafilatura's title search costs ~40 µs).
    """
    page = _parse_document(html)
    if page is None:
        return HtmlContent(blocks=[])
    # scripts go first, so that no label or title can pick up their text; the head goes after the title
    etree.strip_elements(page, *_SCRIPTS, with_tail=False)
    out = HtmlContent(blocks=[], source=html)
    if want_title:
        out.title = clean_inline(extract_title(page), entities=False).text or None
    out.language = language_tag(page.get("lang")) or _meta_language(page)
    out.links = _links(page)
    etree.strip_elements(page, *DROP_WITH_CONTENT, with_tail=False)
    out.captions = _captions(page)
    out.page_text = str(page.text_content())

    # trafilatura may have the tree itself (no copy, ~15 µs): later page-wide searches parse the page again
    bound = _page_text_bound(out.page_text, html)
    body = _trafilatura_body(page, pristine=lambda: _prepared_page(html), page_text_bound=bound)
    if body is not None:
        body = convert_to_html(body)[0]  # trafilatura's own XML (p, head, list, ref...) as HTML tags
        out.blocks = html_blocks(body)
        out.content, out.extractor = body, "trafilatura"
    if not out.blocks:
        fragment = _parse_fragment(sanitize_html(html, drop_furniture=True))
        if fragment is not None:
            out.blocks = html_blocks(fragment)
            out.content, out.extractor = fragment, "fallback"
    return out


def _page_text_bound(page_text: str, html: str) -> int:
    """What html2txt can measure on the page once trafilatura pruned it, at most: the page's text, plus two
    spaces for each element, of which there are at most two per "<" (a tag, and a <p> the parser may wrap
    around the text after it) and a few the parser adds (html, head, body)."""
    return len(page_text) + 2 * (2 * html.count("<") + 8)


def _prepared_page(html: str) -> Any:
    """The page as extract_html hands it to trafilatura: parsed, without scripts and content-less elements."""
    page = _parse_document(html)
    if page is not None:
        etree.strip_elements(page, *_SCRIPTS, with_tail=False)
        etree.strip_elements(page, *DROP_WITH_CONTENT, with_tail=False)
    return page


def _trafilatura_body(
    tree: Any, *, pristine: Callable[[], Any] | None = None, page_text_bound: int | None = None
) -> Any:
    """What `trafilatura.bare_extraction(tree, options=_EXTRACTOR).body` is (None when it finds nothing).

    The cascade prunes `tree` in place (bare_extraction would copy it first); `pristine` gives an unpruned
    tree again for the rare page that needs trafilatura's escalation (default: a copy made up front).
    bare_extraction rather than extract(output_format="html"): the latter also computes a content fingerprint
    (simhash) we do not use, which costs more than the extraction itself. See _NO_ESCALATION for the rest.
    """
    if trafilatura.__version__ != _TRAFILATURA_WRITTEN_FOR:
        return getattr(trafilatura.bare_extraction(tree, options=_EXTRACTOR), "body", None)
    if pristine is None:
        kept = copy.copy(tree)  # a deep copy, as bare_extraction makes of an element
        pristine = lambda: kept  # noqa: E731
    try:
        body, text, _, comments = trafilatura.core.trafilatura_sequence(tree, _NO_ESCALATION, None)
    except (TypeError, ValueError):  # what bare_extraction turns into None
        return None
    if _would_escalate(text, tree, page_text_bound):
        return getattr(trafilatura.bare_extraction(pristine(), options=_EXTRACTOR), "body", None)
    if len(text) < _EXTRACTOR.min_output_size and len(comments) < _EXTRACTOR.min_output_comm_size:
        return None  # bare_extraction's size check
    return body


def _would_escalate(text: str, tree: Any, bound: int | None = None) -> bool:
    """trafilatura_sequence's escalation test for extraction `text` on the pruned raw `tree`, html2txt mostly spared.

    html2txt's length is at most the page's text plus two spaces per element (it only deletes elements, puts a
    space before each block element's text and tail, and collapses whitespace), so when the extraction reaches
    the share of that bound, it reaches the share of html2txt's length too. `bound`, when given, is such a
    bound computed from the page before trafilatura pruned it (cheaper than measuring the tree).
    """
    size = len(text)
    if not 0 < size < trafilatura.core.ESCALATION_MAX_LENGTH:
        return False
    share = trafilatura.core.ESCALATION_PAGE_SHARE
    if bound is None:
        body = tree.find(".//body")
        root = body if body is not None else tree
        bound = len(_TEXT_OF(root)) + 2 * int(_COUNT_ELEMENTS(root))
    if size >= share * bound:
        return False
    return size < share * len(html2txt(tree))


def html_blocks(root: Any) -> list[Block]:
    """Walks an element in document order: a block element (p, li, h1...) ends a paragraph, <br> a line.

    A newline in the markup is only whitespace (trafilatura also writes one between flattened inline parts).
    Iterative (lxml.etree.iterwalk), so deeply nested pages cannot exhaust the Python stack.
    """
    blocks: list[Block] = []
    buf: list[str] = []
    starts: list[int] = []
    block_tags = _BLOCK_TAGS
    for event, el in etree.iterwalk(root, events=("start", "end")):
        tag = el.tag  # a function for comments and processing instructions: neither a block nor text
        if event == "start":
            if tag in block_tags:
                if buf:
                    _flush(buf, blocks, None)
                starts.append(len(blocks))
            if tag == "br":
                buf.append("\n")
            elif isinstance(tag, str) and (text := el.text):
                buf.append(text.replace("\n", " "))
        else:
            if tag in block_tags:
                # the element owns the paragraph only when nothing else was emitted since it opened
                start = starts.pop()
                if buf:
                    _flush(buf, blocks, el if len(blocks) == start else None)
            if el is not root and (tail := el.tail):
                buf.append(tail.replace("\n", " "))
    if buf:
        _flush(buf, blocks, None)
    return blocks


def page_lines(content: HtmlContent) -> Iterable[str]:
    """Every line of text on the whole page (scripts and styles gone), for page-wide searches.

    Parses the page again (~50 µs): asked only when `page_text` says a disclaimer may be there.
    """
    page = _prepared_page(content.source) if content.source else None
    if page is None:
        return ()
    body = page.find("body")
    root = body if body is not None else page
    return (line for block in html_blocks(root) for line in block.lines)


def page_text(content: HtmlContent) -> str:
    """The page's text in one string, for a cheap pre-check before `page_lines`."""
    return content.page_text


def render_html(content: HtmlContent, *, drop: Sequence[Any], base_url: str) -> str | None:
    """Sanitised HTML of the main content, without the elements in `drop` (marks removed from the text)."""
    root = content.content
    if root is None:
        return None
    for el in drop:
        if el is not root:
            _remove_keeping_tail(el)
    for el in root.iter():
        if el.tag in _BLOCK_TAGS and (el.tail is None or not el.tail.strip()):
            el.tail = "\n"  # one newline between blocks, whatever indentation the source had
        if el.tag == "a" and el.get("href"):
            # relative links would point at our host once the article leaves its page
            absolute = resolve_url(el.get("href"), base_url)
            if absolute is None:
                del el.attrib["href"]
            else:
                el.set("href", absolute)
    inner = (root.text or "") + "".join(
        etree.tostring(child, encoding="unicode", method="html", with_tail=True) for child in root
    )
    cleaned = sanitize_html(inner).strip()
    return cleaned or None


def _remove_keeping_tail(el: Any) -> None:
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        previous = el.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


def _flush(buf: list[str], blocks: list[Block], owner: Any) -> None:
    text = "".join(buf)
    buf.clear()
    # lxml decoded the page's references: "&lt;script&gt;" in a paragraph is text that reads as a tag, not kept
    if "\n" not in text:  # most paragraphs: one line
        line = _plain_line(text)
        if line:
            blocks.append(Block((line,), owner))
        return
    lines = tuple(line for line in (_plain_line(part) for part in text.split("\n")) if line)
    if lines:
        blocks.append(Block(lines, owner))


# Every element is an lxml.html.HtmlElement, as trafilatura expects, but chosen in C: lxml.html's own parser asks a
# Python method for each element's class (FormElement, InputElement... which nothing here uses), ~0.3 µs per
# element touched from Python, some 50 µs a page across trafilatura and this module.
_LOOKUP = etree.ElementDefaultClassLookup(
    element=lxml.html.HtmlElement,
    comment=lxml.html.HtmlComment,
    pi=lxml.html.HtmlProcessingInstruction,
    entity=lxml.html.HtmlEntity,
)


def _plain_line(part: str) -> str:
    return collapse(strip_markup(part, entities=False) if "<" in part else part)


def _parser(encoding: str | None = None) -> Any:
    # One per call: lxml parsers must not be shared between threads, and creating one costs microseconds.
    parser = etree.HTMLParser(
        remove_comments=True, remove_pis=True, collect_ids=False, default_doctype=False, encoding=encoding
    )
    parser.set_element_class_lookup(_LOOKUP)
    return parser


def _parse_document(html: str) -> Any:
    if not html.strip():
        return None
    try:
        return lxml.html.document_fromstring(html, parser=_parser())
    except ValueError:
        # "Unicode strings with encoding declaration are not supported": parse the UTF-8 bytes instead,
        # telling lxml they are UTF-8 whatever a <meta charset> claims (the event was JSON, hence UTF-8).
        try:
            return lxml.html.document_fromstring(html.encode("utf-8"), parser=_parser("utf-8"))
        except (ValueError, etree.ParserError):
            return None
    except etree.ParserError:
        return None  # "Document is empty"


def _parse_fragment(html: str) -> Any:
    if not html.strip():
        return None
    try:
        return lxml.html.fragment_fromstring(html, create_parent="div", parser=_parser())
    except (ValueError, etree.ParserError):
        return None


def _meta_language(page: Any) -> str | None:
    for meta in page.iter("meta"):
        if (meta.get("http-equiv") or "").lower() == "content-language":
            return language_tag((meta.get("content") or "").split(",")[0])
    return None


def _links(page: Any) -> list[Link]:
    links: list[Link] = []
    for el in page.iter("a", "link"):
        hreflang = el.get("hreflang")
        if el.tag == "link":
            # <link rel=alternate hreflang=..> in the head names translations of this very page
            if not hreflang or "alternate" not in (el.get("rel") or "").lower().split():
                continue
            links.append(Link(text="", href=el.get("href"), hreflang=hreflang))
            continue
        text = _plain_line(el.text_content())
        if text or hreflang:
            links.append(Link(text=text, href=el.get("href"), hreflang=hreflang))
    return links


# Caption elements: figcaption, or a class containing "credit" in any case, in document order. translate()
# lower-cases ASCII only, which is all "credit" needs: no other character lower-cases to one of its letters.
_CAPTION_XPATH = etree.XPath(
    "//*[self::figcaption or contains(translate(@class, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', "
    "'abcdefghijklmnopqrstuvwxyz'), 'credit')]"
)
_CLASS_XPATH = etree.XPath("//@class")


def _caption_elements(page: Any) -> Any:
    # Reading the class values is 5x cheaper than _CAPTION_XPATH; without a "credit" class, it is the figcaptions.
    if any("credit" in value.lower() for value in _CLASS_XPATH(page)):
        return _CAPTION_XPATH(page)
    return page.iter("figcaption")


def _captions(page: Any) -> list[str]:
    # trafilatura drops figures, yet their credits ("Image from The Guardian") are the attribution we need.
    found: list[str] = []
    for el in _caption_elements(page):
        for part in (el, *el.iterdescendants()):
            if isinstance(part.tag, str):
                line = _plain_line(part.text_content())
                if line and line not in found:
                    found.append(line)
    return found
