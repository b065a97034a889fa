"""URL rules of normalize: canonical form, refusals, registered domain from the offline public-suffix list."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stages.normalize import urls


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTPS://WWW.Example.COM/World/Story", "https://www.example.com/World/Story"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/a#comments", "https://example.com/a"),
        ("https://example.com/a?utm_source=rss&utm_medium=feed&utm_campaign=x", "https://example.com/a"),
        ("https://example.com/a?UTM_Source=rss&id=7", "https://example.com/a?id=7"),
        ("https://example.com/a?fbclid=1&gclid=2&dclid=3&msclkid=4&id=7", "https://example.com/a?id=7"),
        ("https://example.com/a?mc_cid=1&mc_eid=2&_ga=3&yclid=4&igshid=5&ref_src=6", "https://example.com/a"),
        ("https://example.com/a?b=2&a=1&c=3", "https://example.com/a?a=1&b=2&c=3"),
        ("https://example.com/a?page=", "https://example.com/a?page="),
        ("https://example.com", "https://example.com/"),
        ("https://example.com.", "https://example.com/"),
        ("https://user:secret@example.com/a", "https://example.com/a"),
        ("https://bücher.example/ä", "https://xn--bcher-kva.example/%C3%A4"),
        ("https://example.com/a%7Eb", "https://example.com/a~b"),
        ("https://example.com/a b", "https://example.com/a%20b"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("http://[2001:DB8::1]:8080/a", "http://[2001:db8::1]:8080/a"),
        ("http://192.0.2.7/a", "http://192.0.2.7/a"),
    ],
)
def test_canonical_form(url: str, canonical: str) -> None:
    result = urls.canonicalize(url)
    assert isinstance(result, urls.CanonicalUrl), result
    assert result.url == canonical


def canonical(url: str) -> str:
    result = urls.canonicalize(url)
    assert isinstance(result, urls.CanonicalUrl), result
    return result.url


def test_spellings_of_one_page_share_a_canonical_url() -> None:
    spellings = [
        "https://www.example.com/news/1?b=2&a=1",
        "HTTPS://WWW.EXAMPLE.COM:443/news/1?a=1&b=2&utm_source=x#top",
        "https://www.example.com/news/1?fbclid=abc&a=1&b=2",
    ]
    assert len({canonical(u) for u in spellings}) == 1


def test_path_case_is_kept() -> None:
    assert canonical("https://example.com/News/A") != canonical("https://example.com/news/a")


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "ftp://example.com/file.txt",
        "mailto:editor@example.com",
        "file:///etc/passwd",
        "http://",
        "https://",
        "https:///path/only",
        "http://:80/",
        "//example.com/no-scheme",
        "example.com/no-scheme",
        "/relative/path",
        "",
        "   ",
        "http://exa mple.com/",
        "http://example..com/",
        "http://ex<ample>.com/",
        "http://[::1/",
        "http://[not-an-ip]/",
        "http://example.com:99999/",
        "http://example.com:port/",
        "http://" + "a" * 64 + ".com/",
    ],
)
def test_bad_url_is_refused(url: str) -> None:
    result = urls.canonicalize(url)
    assert isinstance(result, urls.BadUrl), result
    assert result.reason


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("www.bbc.co.uk", "bbc.co.uk"),
        ("news.example.com", "example.com"),
        ("example.com", "example.com"),
        ("sub.example.co.jp", "example.co.jp"),
        ("myblog.blogspot.com", "blogspot.com"),  # private suffixes off: the platform is the domain
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("192.0.2.7", "192.0.2.7"),
        ("[2001:db8::1]", "[2001:db8::1]"),
        ("localhost", "localhost"),
    ],
)
def test_registered_domain(host: str, domain: str) -> None:
    assert urls.registered_domain(host) == domain


def test_canonical_url_carries_host_and_domain() -> None:
    result = urls.canonicalize("https://News.BBC.co.uk/2/hi/business/1.stm")
    assert isinstance(result, urls.CanonicalUrl)
    assert (result.host, result.domain) == ("news.bbc.co.uk", "bbc.co.uk")


def test_public_suffix_list_is_read_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network call attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    urls._extractor.cache_clear()  # build a fresh extractor while the network is unavailable
    try:
        assert urls.registered_domain("www.theguardian.com") == "theguardian.com"
        assert urls.registered_domain("a.b.example.com.au") == "example.com.au"
    finally:
        urls._extractor.cache_clear()


def test_tracking_params_file_lists_the_usual_ones() -> None:
    tracking = urls.tracking_params()
    for name in ("utm_source", "utm_anything", "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "_ga", "yclid"):
        assert name in tracking
    assert "id" not in tracking and "page" not in tracking and "q" not in tracking
    assert all(name == name.lower() for name in tracking.exact)


# --- the ASCII fast path gives exactly what the general path gives -------------------------------------------

_SAFE = "abcXYZ019-._~"
_segment = st.text(alphabet=_SAFE + "/.", max_size=12)
_word = st.text(alphabet=_SAFE, max_size=6)
_pair = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", _word, _word),
    _word,
    st.sampled_from(["utm_source=rss", "UTM_Medium=x", "fbclid=1", "gclid", "=v", "a=b=c", "", "_ga=2"]),
)
_simple_urls = st.builds(
    lambda scheme, host, port, path, query, fragment: f"{scheme}://{host}{port}{path}{query}{fragment}",
    st.sampled_from(["http", "https", "HTTPS", "Http"]),
    st.sampled_from(["example.com", "WWW.Example.COM", "news.bbc.co.uk", "a_b.example", "-x.example", "example.com.",
                     "192.0.2.7", "localhost", "a..b", "x" * 64 + ".com", "xn--bcher-kva.example"]),
    st.sampled_from(["", ":80", ":443", ":8080", ":0443", ":65535", ":70000", ":"]),
    st.one_of(st.just(""), st.builds(lambda s: "/" + s, _segment)),
    st.one_of(st.just(""), st.builds(lambda ps: "?" + "&".join(ps), st.lists(_pair, max_size=5))),
    st.sampled_from(["", "#", "#top", "#a/b?c"]),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(_simple_urls)
def test_ascii_fast_path_agrees_with_the_general_path(url: str) -> None:
    fast = urls._canonicalize_simple(url)
    if fast is not None:
        assert fast == urls._canonicalize_general(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.bbc.co.uk/news/business/12?utm_source=bench&utm_medium=rss",
        "https://example.com",
        "https://example.com/a?b=2&a=1&a=0&c",
        "HTTP://Example.COM:80/World/Story#x",
    ],
)
def test_typical_article_urls_take_the_fast_path(url: str) -> None:
    fast = urls._canonicalize_simple(url)
    assert fast is not None and fast == urls._canonicalize_general(url)
