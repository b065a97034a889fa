"""HTML extraction internals: our trafilatura call returns exactly what bare_extraction returns, faster."""

from __future__ import annotations

import copy

import pytest
import trafilatura
import trafilatura.core
from lxml import etree

from streams.stages.normalize import html
from tests.factories.hostile import HOSTILE_HTML
from tests.factories.raw import OWN_PARAGRAPHS, own_aggregated_html

_FILLER = " ".join(f"Entry {i} of a long directory listing that is not wrapped in paragraphs." for i in range(80))
PAGES = {
    "own_article": own_aggregated_html(),
    "fragment": "<p>One short paragraph.</p>",
    "two_fragments": "<p>Council met.</p><p>It voted.</p>",
    "text_in_divs": "<html><body><div>Plain text in a div, no paragraph.</div><div>Another.</div></body></html>",
    "nav_only": '<html><body><nav><a href="/">Home</a> <a href="/a">A</a></nav></body></html>',
    "empty_body": "<html><body></body></html>",
    "table": "<html><body><table><tr><td>Seats</td><td>12</td></tr><tr><td>Votes</td><td>7</td></tr></table></body>",
    # a short article on a page of other text: trafilatura's recall escalation runs here
    "short_article_in_long_page": (
        f"<html><body><div class='list'>{_FILLER}</div><article><p>A short note of about a hundred characters "
        f"sits in one paragraph here, alone.</p><p>Second.</p></article><div>{_FILLER}</div></body></html>"
    ),
    "long_article": "<article>" + "".join(f"<p>{p}</p>" for p in OWN_PARAGRAPHS * 4) + "</article>",
}


def prepared(page: str) -> object:
    """The tree extract_html hands to trafilatura: scripts and other content-less elements gone."""
    tree = html._parse_document(page)
    etree.strip_elements(tree, *html._SCRIPTS, with_tail=False)
    etree.strip_elements(tree, *html.DROP_WITH_CONTENT, with_tail=False)
    return tree


def serialised(body: object) -> bytes | None:
    return None if body is None else etree.tostring(body)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_our_trafilatura_call_returns_what_bare_extraction_returns(name: str) -> None:
    tree = prepared(PAGES[name])
    document = trafilatura.bare_extraction(copy.copy(tree), options=html._EXTRACTOR)
    expected = serialised(getattr(document, "body", None))
    assert serialised(html._trafilatura_body(tree)) == expected


def test_the_escalation_test_runs_where_trafilatura_would_retry() -> None:
    tree = copy.copy(prepared(PAGES["short_article_in_long_page"]))
    _, text, _, _ = trafilatura.core.trafilatura_sequence(tree, html._NO_ESCALATION, None)
    assert html._would_escalate(text, tree)


def test_an_ordinary_article_needs_no_whole_page_measure(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = copy.copy(prepared(PAGES["own_article"]))
    _, text, _, _ = trafilatura.core.trafilatura_sequence(tree, html._NO_ESCALATION, None)
    monkeypatch.setattr(html, "html2txt", lambda _tree: pytest.fail("html2txt ran"))
    assert not html._would_escalate(text, tree)


def test_trafilatura_is_the_version_the_escalation_shortcut_was_written_for() -> None:
    # On another version _trafilatura_body is plain bare_extraction (correct, slower): check the shortcut against
    # the new trafilatura_sequence, then move _TRAFILATURA_WRITTEN_FOR.
    assert trafilatura.__version__ == html._TRAFILATURA_WRITTEN_FOR


@pytest.mark.parametrize("name", sorted(PAGES) + [f"hostile_{n}" for n in sorted(HOSTILE_HTML)])
def test_the_page_text_bound_is_never_below_what_trafilatura_measures(name: str) -> None:
    page = PAGES[name] if name in PAGES else HOSTILE_HTML[name.removeprefix("hostile_")]
    content = html.extract_html(page, base_url="https://partner.example.org/")
    tree = copy.copy(prepared(page))
    trafilatura.core.trafilatura_sequence(tree, html._NO_ESCALATION, None)  # prunes the tree as ours does
    assert len(html.html2txt(tree)) <= html._page_text_bound(content.page_text, page)
