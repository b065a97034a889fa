"""A refused URL shown in a rejection's details.url: never a script URL a page could follow."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from streams.outcomes import Rejected
from streams.settings import Settings
from streams.stages.normalize import NormalizeConfig, normalize
from streams.stages.normalize.urls import scheme_of

ORIGIN = {"topic": "articles.raw", "partition": 0, "offset": 7, "timestamp_ms": 1754983862000}
NOW = datetime(2025, 8, 12, 7, 31, 2, tzinfo=UTC)


def refused(url: str) -> Rejected:
    payload = orjson.dumps({"url": url, "body": "The council voted."})
    result = normalize(payload, origin=ORIGIN, now=NOW, config=NormalizeConfig.from_settings(Settings()))
    assert isinstance(result, Rejected) and result.reason == "bad_url", result
    return result


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("javascript:alert(1)", "javascript%3Aalert(1)"),
        (" JaVaScRiPt:alert(document.cookie)", " JaVaScRiPt%3Aalert(document.cookie)"),
        ("vbscript:msgbox(1)", "vbscript%3Amsgbox(1)"),
        ("livescript:x", "livescript%3Ax"),
        ("data:text/html,<script>x</script>", "data%3Atext/html,%3Cscript%3Ex%3C/script%3E"),
        ("java\tscript:alert(1)", "java%09script:alert(1)"),  # the tab is escaped: no browser reads a scheme
    ],
)
def test_a_refused_script_url_is_shown_inert(url: str, shown: str) -> None:
    details = refused(url).details
    assert details["url"] == shown
    assert scheme_of(details["url"]) not in {"javascript", "vbscript", "livescript", "data"}


@pytest.mark.parametrize(
    "url", ["ftp://files.example.com/a", "file:///etc/passwd", "https://news example.com/a", "/world/story"]
)
def test_other_refused_urls_are_shown_as_sent(url: str) -> None:
    assert refused(url).details["url"] == url
