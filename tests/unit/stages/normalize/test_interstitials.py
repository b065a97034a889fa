"""Stand-in pages (cookie walls, bot checks, ad-blocker walls, paywalls) are refused; articles never are.

The walls below are written for these tests in the shape such pages have; the real ones measured in
BENCHMARKS.md (bench/eval_interstitials.py) stay in ../shared/data.
"""

from __future__ import annotations

import pytest

from streams import schemas
from streams.stages.normalize import interstitials
from tests.factories.raw import OWN_PARAGRAPHS, raw_event, rejection, run

HEADLINE = "Harbour council rejects pier sale"
WALLS = {
    "cookie_wall": [
        f"{HEADLINE}\nOK\n\nWe use cookies to give you the best experience on our website. By continuing to use this "
        "site you consent to the use of cookies as described in our Cookie Policy. You can change your cookie "
        "settings at any time.",
        f"{HEADLINE}\n\nWir verwenden auf unserer Webseite Cookies und ähnliche Technologien. Durch die weitere "
        "Nutzung erklären Sie sich mit dem Einsatz von Cookies einverstanden. Weitere Informationen, auch zur "
        "Deaktivierung von Cookies, finden Sie in unserer Datenschutzerklärung.",
        f"{HEADLINE} Szanowny Czytelniku! Korzystamy z plików cookies. Klikając Zaakceptuj i zamknij wyrażasz "
        "zgodę na przetwarzanie danych osobowych. Zgodę możesz wycofać w polityce prywatności.",
    ],
    "bot_check": [
        "Checking your browser before accessing harbour.example. This process is automatic. Your browser will "
        "redirect to your requested content shortly. DDoS protection by Cloudflare. Ray ID: 7a1b2c3d4e5f6a7b",
        "We have seen unusual traffic from your computer network. Please verify you are a human to continue: "
        "complete the captcha below.",
        "Przepraszamy, z Twojego adresu odnotowaliśmy ogromną liczbę połączeń. Jeśli chcesz kontynuować, zaznacz "
        '"Nie jestem robotem". Twój adres IP: 192.0.2.10',
    ],
    "adblock_wall": [
        f"{HEADLINE}\nWe noticed you're blocking ads!\n\nKeep supporting local journalism by turning off your "
        "ad blocker, or purchase a subscription for unlimited access.",
        "Harbour.example\nWyłącz AdBlocka\n\nAby czytać nasze artykuły wyłącz AdBlocka lub dodaj wyjątek dla naszej "
        "domeny.",
    ],
    "paywall": [
        f"{HEADLINE}\nYou have reached the limit of free articles this month.\n\nSubscribe now to continue reading "
        "and get unlimited digital access. Already a subscriber? Log in to your subscriber account.",
        f"{HEADLINE}\nOnce registered, you can:\n\n- Read additional free articles each month\n\n- Comment on "
        "articles\n\nRegister Now\n\nBy registering you agree to our privacy policy and terms of use.",
    ],
}
ARTICLE = "\n\n".join(OWN_PARAGRAPHS)
ARTICLES = {
    "an article about cookie law": (
        "The data regulator said on Monday that websites must ask before they set third-party cookies, and that "
        "a cookie policy hidden behind a link is not consent. Sites that say 'we use cookies' and carry on "
        "regardless face fines of up to 4% of turnover.\n\n" + ARTICLE
    ),
    "an article ending with a consent banner": (
        ARTICLE + "\n\nWe use cookies to improve your experience. By continuing to use this site you consent to "
        "the use of cookies. Read our privacy policy."
    ),
    "an article starting with a video notice": "Please enable JavaScript to watch this video.\n\n" + ARTICLE,
    "an article about captchas": (
        "Researchers showed that a captcha can be solved by software in under a second, and that asking users "
        "whether they are a robot says little about them. " + ARTICLE
    ),
    "an article ending with a subscription line": (
        ARTICLE + "\n\nSupport local journalism: subscribe today for unlimited digital access."
    ),
    "a short article with a newsletter box": (
        "Councillors voted 7 to 5 to keep the pier.\n\nSign up to our newsletter. See our privacy policy."
    ),
}


@pytest.mark.parametrize(("kind", "body"), [(kind, body) for kind, bodies in WALLS.items() for body in bodies])
def test_a_stand_in_page_is_refused_as_not_an_article(kind: str, body: str) -> None:
    result = rejection(raw_event(title=None, body=body))
    assert result.reason == "not_an_article"
    assert result.details["kind"] == kind
    assert 2 <= len(result.details["signals"]) <= 5


@pytest.mark.parametrize("name", sorted(ARTICLES))
def test_an_article_that_mentions_these_things_is_not_refused(name: str) -> None:
    outcome = run(raw_event(body=ARTICLES[name]))
    assert getattr(outcome, "reason", None) != "not_an_article", outcome


def test_a_wall_in_an_html_page_is_refused_too() -> None:
    page = (
        "<html><body><div class='consent'><h2>Your privacy</h2><p>We use cookies to give you the best experience. "
        "By continuing to use this site you consent to the use of cookies.</p><p>Read our Cookie Policy and "
        "privacy policy.</p><button>Accept all cookies</button></div></body></html>"
    )
    assert rejection(raw_event(body=page, body_format="html")).details["kind"] == "cookie_wall"


def test_a_long_text_is_never_a_wall() -> None:
    body = WALLS["cookie_wall"][0] + "\n\n" + "Council news follows. " * 200
    assert interstitials.detect(body) is None


def test_kinds_are_the_ones_the_rejection_schema_lists() -> None:
    assert interstitials.kinds() == schemas.enum("rejection.v1.json", "details", "kind")


def test_not_an_article_is_a_reason_of_the_rejection_schema() -> None:
    assert "not_an_article" in schemas.enum("rejection.v1.json", "reason")


def test_every_signal_group_has_a_lower_case_keyword_and_valid_regexes() -> None:
    for group in interstitials.rules().groups:
        assert group.keyword and group.keyword == group.keyword.lower()
        assert group.regexes
