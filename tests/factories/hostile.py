"""Hostile raw events for normalize: a fixed corpus of what breaks parsers, and a check for active content.

`corpus()` returns (name, payload bytes, expected outcome) tuples; the outcome is "normalized" or
"rejected:<reason>" (a reason code of schemas/rejection.v1.json). The unit tests hold normalize to them
(tests/unit/stages/normalize/test_hostile.py); a broker-level storm can send the same payloads with
`streams produce --raw` (one per line: none holds a raw newline; "empty_payload" and "whitespace_only" are no
line at all, send those with a producer) and expect each on articles.normalized or articles.rejected with that
reason. The biggest payload is 10 MB, under articles.raw's max.message.bytes (10 MiB).

`active_content(document)` lists what could run in a consumer's page, anywhere in an output document: in
plain-text fields any markup at all (the field is text: nothing in it may read as a tag); in `html` a
script, iframe, object, embed or similar element, an on* handler or a javascript:/vbscript:/data: link; in
URL fields a scheme other than http(s); in metadata a script URL. Invented text throughout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

import lxml.html
import orjson
from lxml import etree

GOOD_URL = "https://news.example.com/world/2025/aug/12/harbour-vote"
BODY = "The harbour council voted on Monday to keep the north pier.\n\nRepairs start next month."


class HostileCase(NamedTuple):
    name: str
    payload: bytes
    expected: str  # "normalized" or "rejected:<reason>"


def event(**fields: Any) -> dict[str, Any]:
    """A valid raw event; keyword arguments override fields."""
    return {"url": GOOD_URL, "title": "Harbour vote", "body": BODY, **fields}


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


# HTML bodies that try every way we know to get something active through a sanitiser. Each has a paragraph of
# text, so each must come out normalized and clean.
HOSTILE_HTML = {
    "script_iframe_object_embed": (
        "<p>Council news.</p><script>alert(1)</script><iframe src='https://evil.example/'></iframe>"
        "<object data='x.swf'><param name=movie value=x.swf></object><embed src='x.swf'><applet code=x></applet>"
    ),
    "event_handlers": (
        "<body onload=alert(1)><p onclick=alert(2) onmouseover='alert(3)'>Council news.</p>"
        "<img src=x onerror=alert(4)><svg onload=alert(5)></svg><details open ontoggle=alert(6)>x</details>"
    ),
    "javascript_links": (
        "<p><a href='javascript:alert(1)'>one</a> <a href=' JaVaScRiPt:alert(2)'>two</a> "
        "<a href='&#106;avascript:alert(3)'>three</a> <a href='jav&#x09;ascript:alert(4)'>four</a> "
        "<a href='vbscript:msgbox(5)'>five</a> <a href='data:text/html;base64,PHNjcmlwdD4='>six</a> "
        "Council news.</p>"
    ),
    "svg_with_script": (
        "<p>Council news.</p><svg><script>alert(1)</script><a xlink:href='javascript:alert(2)'><text>x</text></a>"
        "<animate attributeName=href to=javascript:alert(3) /><foreignObject><iframe src=x></iframe>"
        "</foreignObject></svg>"
    ),
    "css_expressions": (
        "<style>@import 'javascript:alert(1)'; body{background:url(javascript:alert(2))}</style>"
        "<p style='width: expression(alert(3)); background:url(\"javascript:alert(4)\")'>Council news.</p>"
        "<div style='behavior:url(x.htc); -moz-binding:url(x.xml#x)'>More.</div>"
    ),
    "base_meta_form": (
        "<base href='javascript:alert(1)//'><meta http-equiv=refresh content='0;url=javascript:alert(2)'>"
        "<form action='javascript:alert(3)'><button formaction='javascript:alert(4)'>go</button></form>"
        "<p>Council news.</p>"
    ),
    "mutation_xss": (
        '<p>Council news.</p><noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>'
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(2)></style></mglyph></table></mtext></math>"
        '<svg></p><style><a id="</style><img src=1 onerror=alert(3)>"></svg>'
    ),
    "nested_and_broken_tags": (
        "<p>Council news.</p><<script>script>alert(1)<</script>/script><scr<script>ipt>alert(2)</script>"
        "<iframe srcdoc='<script>alert(3)</script>'></iframe><template><script>alert(4)</script></template>"
        "<textarea><script>alert(5)</script></textarea><!--<script>alert(6)</script>--><![CDATA[<script>x</script>]]>"
    ),
    "escaped_markup_as_text": "<p>Rates held &lt;script&gt;alert(1)&lt;/script&gt; &amp;lt;img src=x&amp;gt;.</p>",
    "title_element_with_script": (
        "<html><head><title><script>alert(1)</script>Page title</title></head><body><p>Council news.</p></body></html>"
    ),
}

# Plain-text fields with markup: all must come out as text.
HOSTILE_TEXT = {
    "title": "<script>alert(1)</script> Headline <img src=x onerror=alert(2)>",
    "escaped_title": "&lt;script&gt;alert(1)&lt;/script&gt;Headline",
    "authors": ["<svg onload=alert(1)>A. Reporter", "<a href='javascript:alert(2)'>B. Writer</a>"],
    "source": {"name": "<b>Example</b> News", "id": "<i>x</i>", "url": "javascript:alert(1)"},
    "body": "The council voted.<script>alert(1)</script>\n\n<iframe src=x></iframe><b>Repairs</b> start soon.",
    "metadata": {"link": "javascript:alert(1)", "<script>k</script>": "<img src=x onerror=alert(2)>"},
}


def corpus() -> list[HostileCase]:
    """The fixed corpus (about 90 payloads, one of 10 MB)."""
    cases: list[HostileCase] = list(_malformed()) + list(_wrong_types()) + list(_sizes()) + list(_numbers())
    cases += list(_urls()) + list(_markup()) + list(_stand_ins())
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return cases


def _malformed() -> Iterator[HostileCase]:
    good = _json(event())
    yield HostileCase("empty_payload", b"", "rejected:invalid_json")
    yield HostileCase("whitespace_only", b" \t  ", "rejected:invalid_json")
    yield HostileCase("truncated_json", good[: len(good) // 2], "rejected:invalid_json")
    yield HostileCase("trailing_comma", b'{"url": "' + GOOD_URL.encode() + b'", "body": "x",}', "rejected:invalid_json")
    yield HostileCase("single_quotes", b"{'url': 'https://a.example/', 'body': 'x'}", "rejected:invalid_json")
    yield HostileCase("not_json_at_all", b"<html><body>not an event</body></html>", "rejected:invalid_json")
    yield HostileCase("two_documents", good + b" " + good, "rejected:invalid_json")
    yield HostileCase("nan_literal", b'{"url": "https://a.example/", "body": "x", "n": NaN}', "rejected:invalid_json")
    yield HostileCase("invalid_utf8_in_string", good.replace(b"harbour", b"harb\xffour", 1), "rejected:invalid_utf8")
    yield HostileCase("overlong_utf8", good.replace(b"Harbour", b"\xc0\xafHarbour", 1), "rejected:invalid_utf8")
    yield HostileCase(
        "cesu_surrogate_bytes", good.replace(b"Harbour", b"\xed\xa0\x80Harbour", 1), "rejected:invalid_utf8"
    )
    yield HostileCase("latin1_bytes", _json(event(title="Caf")).replace(b"Caf", b"Caf\xe9", 1), "rejected:invalid_utf8")
    yield HostileCase("escaped_lone_surrogate", good.replace(b"Harbour", b"\\ud800Harbour", 1), "rejected:invalid_json")
    yield HostileCase("raw_nul_in_string", good.replace(b"Harbour", b"Har\x00bour", 1), "rejected:invalid_json")
    yield HostileCase("nul_bytes_around", b"\x00\x00" + good + b"\x00", "rejected:invalid_json")
    yield HostileCase("escaped_nul_in_body", _json(event(body="Council\u0000 voted.\u0000")), "normalized")
    yield HostileCase("escaped_nul_in_url", _json(event(url="https://exa\u0000mple.com/a")), "rejected:bad_url")
    yield HostileCase("control_characters", _json(event(body="Council\x07 voted\x1b[31m red\x7f.")), "normalized")
    yield HostileCase("utf8_bom", b"\xef\xbb\xbf" + good, "normalized")
    yield HostileCase("utf16_bom", b"\xff\xfe" + good.decode().encode("utf-16-le"), "rejected:invalid_utf8")
    yield HostileCase("deep_array_100k", b"[" * 100_000 + b"]" * 100_000, "rejected:invalid_json")
    yield HostileCase("deep_object_100k", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "rejected:invalid_json")
    deep_meta = b'{"url": "' + GOOD_URL.encode() + b'", "body": "Text.", "metadata": '
    yield HostileCase(
        "deep_metadata_100k", deep_meta + b'{"d":' * 100_000 + b"1" + b"}" * 100_001, "rejected:invalid_json"
    )
    yield HostileCase("deep_metadata_500", deep_meta + b'{"d":' * 500 + b"1" + b"}" * 501, "rejected:too_large")
    yield HostileCase(
        "duplicate_keys", b'{"url": "' + GOOD_URL.encode() + b'", "body": "x", "url": 42}', "rejected:schema_violation"
    )


def _wrong_types() -> Iterator[HostileCase]:
    for name, value in {
        "top_level_array": [event()],
        "top_level_null": None,
        "top_level_string": "https://a.example/",
        "top_level_number": 42,
        "url_number": event(url=42),
        "url_list": event(url=[GOOD_URL]),
        "url_null": event(url=None),
        "body_list": event(body=["a", "b"]),
        "body_missing": {"url": GOOD_URL},
        "url_missing": {"body": BODY},
        "title_object": event(title={"text": "x"}),
        "authors_string": event(authors="A. Reporter"),
        "authors_numbers": event(authors=[1, 2]),
        "source_string": event(source="Example"),
        "source_without_name": event(source={"id": "x"}),
        "priority_string": event(source={"name": "X", "priority": "high"}),
        "published_at_number": event(published_at=1754983862),
        "language_list": event(language=["en"]),
        "metadata_list": event(metadata=[1, 2]),
        "body_format_pdf": event(body_format="pdf"),
        "empty_url": event(url=""),
        "event_id_empty": event(event_id=""),
    }.items():
        yield HostileCase(f"wrong_type_{name}", _json(value), "rejected:schema_violation")


def _sizes() -> Iterator[HostileCase]:
    ten_mb = "x" * 10_000_000
    yield HostileCase("body_10mb", _json(event(body=ten_mb)), "rejected:too_large")
    yield HostileCase("title_3mb", _json(event(title="T" * 3_000_000)), "rejected:too_large")
    yield HostileCase("metadata_3mb", _json(event(metadata={"blob": "m" * 3_000_000})), "rejected:too_large")
    yield HostileCase("body_1mb_allowed", _json(event(body=("Council news. " * 75_000)[:1_000_000])), "normalized")
    yield HostileCase("title_over_schema_limit", _json(event(title="T" * 2001)), "rejected:schema_violation")
    yield HostileCase("url_over_schema_limit", _json(event(url=GOOD_URL + "a" * 8200)), "rejected:schema_violation")
    yield HostileCase("authors_100k", _json(event(authors=["A"] * 100_000)), "rejected:schema_violation")
    yield HostileCase("metadata_array_100k", _json(event(metadata={"ids": list(range(100_000))})), "normalized")
    yield HostileCase("empty_body", _json(event(body="")), "rejected:empty_text")
    yield HostileCase("whitespace_body", _json(event(body=" \n\u00a0\u2003\n ")), "rejected:empty_text")
    yield HostileCase(
        "script_only_html", _json(event(body="<script>alert(1)</script>", body_format="html")), "rejected:empty_text"
    )


def _numbers() -> Iterator[HostileCase]:
    base = b'{"url": "' + GOOD_URL.encode() + b'", "body": "Council news.", "source": {"name": "X", "priority": '
    yield HostileCase("priority_1e400", base + b"1e400}}", "rejected:invalid_json")
    yield HostileCase("priority_minus_1e400", base + b"-1e400}}", "rejected:invalid_json")
    yield HostileCase("priority_10e30", base + b"1000000000000000000000000000000}}", "normalized")
    yield HostileCase("priority_u64_max", base + b"18446744073709551615}}", "normalized")
    yield HostileCase("priority_below_i64", base + b"-9223372036854775809}}", "normalized")
    yield HostileCase("priority_fraction", base + b"1.5}}", "rejected:schema_violation")
    yield HostileCase("published_at_year_9999", _json(event(published_at="9999-12-31T23:59:59-23:59")), "normalized")
    yield HostileCase("published_at_year_0", _json(event(published_at="0000-01-01T00:00:00Z")), "normalized")
    yield HostileCase("published_at_garbage", _json(event(published_at="\u0000" * 90)), "normalized")


def _urls() -> Iterator[HostileCase]:
    for name, url in {
        "credentials": "https://editor:s3cret@news.example.com/a",
        "idn_host": "https://bücher.example/ärger?utm_source=x",
        "homoglyph_host": "https://аpple.com/news",  # Cyrillic а
        "fullwidth_host": "https://ｎｅｗｓ.example.com/a",
        "zero_width_in_host": "https://news\u200b.example.com/a",
        "markup_in_path": 'https://news.example.com/a"><script>alert(1)</script>',
        "javascript_in_path": "https://news.example.com/javascript:alert(1)",
        "ipv6_literal": "http://[2001:db8::1]:8080/a",
        "ipv4_literal": "http://192.0.2.7/a",
    }.items():
        yield HostileCase(f"url_{name}", _json(event(url=url)), "normalized")
    for name, url in {
        "javascript": "javascript:alert(1)",
        "javascript_mixed_case": " JaVaScRiPt:alert(document.cookie)",
        "javascript_with_tab": "java\tscript:alert(1)",
        "vbscript": "vbscript:msgbox(1)",
        "data_html": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "file": "file:///etc/passwd",
        "ftp": "ftp://files.example.com/a",
        "no_host": "https:javascript:alert(1)",
        "relative": "/world/story",
        "label_too_long": "https://" + "a" * 64 + ".example.com/",
        "bad_port": "https://news.example.com:99999/a",
        "bad_ipv6": "http://[2001:db8::zz]/a",
        "space_in_host": "https://news example.com/a",
    }.items():
        yield HostileCase(f"url_{name}", _json(event(url=url)), "rejected:bad_url")


def _markup() -> Iterator[HostileCase]:
    for name, body in HOSTILE_HTML.items():
        yield HostileCase(f"html_{name}", _json(event(body=body, body_format="html")), "normalized")
    yield HostileCase(
        "html_page_without_title",
        _json(event(title=None, body=HOSTILE_HTML["title_element_with_script"], body_format="html")),
        "normalized",
    )
    for field, value in HOSTILE_TEXT.items():
        yield HostileCase(f"text_field_{field}", _json(event(**{field: value})), "normalized")
    yield HostileCase("text_title_only_markup", _json(event(title="<script>alert(1)</script>")), "normalized")


def _stand_ins() -> Iterator[HostileCase]:
    wall = (
        "Harbour vote\nOK\n\nWe use cookies to give you the best experience. By continuing to use this site you "
        "consent to the use of cookies as described in our Cookie Policy."
    )
    yield HostileCase("cookie_wall", _json(event(title=None, body=wall)), "rejected:not_an_article")


# --- what may not survive into an output document -----------------------------------------------------------

_PLAIN_TAG = re.compile(r"<(?:[A-Za-z]|/[A-Za-z]|!|\?)")
_ACTIVE_ELEMENTS = frozenset(
    {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math", "style", "link",
     "meta", "base", "form", "input", "button", "textarea", "select", "template", "noscript", "img", "video",
     "audio", "source", "param"}
)  # fmt: skip
_SCRIPT_SCHEMES = ("javascript:", "vbscript:", "livescript:", "data:")
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_URL_FIELDS = {("url",), ("canonical_url",), ("source", "url"), ("alternates", "*", "url")}
_HTML_FIELDS = {("html",)}


def active_content(document: Any) -> list[str]:
    """Where `document` (an article or rejection) holds something that could run in a page; [] when clean."""
    problems: list[str] = []
    stack: list[tuple[tuple[str, ...], Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                if isinstance(key, str) and _PLAIN_TAG.search(key):
                    problems.append(f"{'/'.join(path)}: markup in key {key[:60]!r}")
                stack.append(((*path, str(key)), child))
        elif isinstance(value, list):
            stack.extend(((*path, "*"), child) for child in value)
        elif isinstance(value, str):
            problems += [f"{'/'.join(path)}: {p}" for p in _string_problems(path, value)]
    return problems


def _string_problems(path: tuple[str, ...], value: str) -> list[str]:
    if path in _HTML_FIELDS:
        return _html_problems(value)
    found = []
    scheme = _SCHEME.match(_scheme(value))
    if path in _URL_FIELDS and scheme and scheme.group(1) not in ("http", "https"):
        found.append(f"a {scheme.group(1)}: URL: {value[:60]!r}")
    if path and path[0] == "metadata" and _scheme(value).startswith(_SCRIPT_SCHEMES[:3]):
        found.append(f"script URL: {value[:60]!r}")
    if path[:1] != ("payload_b64",) and _PLAIN_TAG.search(value):
        found.append(f"markup: {value[_PLAIN_TAG.search(value).start() :][:60]!r}")  # type: ignore[union-attr]
    return found


def _scheme(value: str) -> str:
    return re.sub(r"[\t\n\r]", "", value).strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f ").lower()


def _html_problems(markup: str) -> list[str]:
    try:
        root = lxml.html.fragment_fromstring(markup, create_parent="div")
    except (etree.ParserError, ValueError):
        return []
    found = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag.lower() in _ACTIVE_ELEMENTS:
            found.append(f"<{el.tag}> element")
        for name, attr in el.attrib.items():
            if name.lower().startswith("on"):
                found.append(f"{name} handler on <{el.tag}>")
            if name.lower() in ("style", "srcdoc", "formaction", "action", "xlink:href"):
                found.append(f"{name} attribute on <{el.tag}>")
            if name.lower() in ("href", "src", "data") and _scheme(attr).startswith(_SCRIPT_SCHEMES):
                found.append(f"{attr[:40]!r} in {name} of <{el.tag}>")
    return found


def encode(event: Any) -> bytes:
    """JSON as a producer writes it; past orjson's 64-bit integers (generated ones can be), as Python's json does."""
    try:
        return orjson.dumps(event)
    except TypeError:
        return json.dumps(event).encode()


MUTATIONS = (
    "drop_url",
    "drop_body",
    "list",
    "nested",
    "number_url",
    "null_title",
    "null_body",
    "truncate",
    "flip_byte",
)


def broken_variant(event: dict[str, Any], how: str, cut: int) -> bytes:
    """A valid event broken one way (`how`, one of MUTATIONS; `cut` places a truncation or a flipped byte)."""
    broken: Any = dict(event)
    if how == "drop_url":
        broken.pop("url")
    elif how == "drop_body":
        broken.pop("body")
    elif how == "list":
        broken = [event]
    elif how == "nested":
        broken = {"event": event}
    elif how == "number_url":
        broken["url"] = 1e308
    elif how in ("null_title", "null_body"):
        broken[how.removeprefix("null_")] = None
    payload = encode(broken)
    if how == "truncate":
        payload = payload[: min(cut, len(payload) - 1)]
    elif how == "flip_byte":
        at = cut % len(payload)
        payload = payload[:at] + bytes([payload[at] ^ 0x80]) + payload[at + 1 :]
    return payload
