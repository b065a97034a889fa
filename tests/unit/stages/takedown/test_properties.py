"""Property tests of the takedown stage: random sequences of requests, lifts, expiries and articles.

Checked after every step, against a model written independently of the stage's indexes:
- an article is published iff no active takedown covers it at that moment;
- every retraction follows a publication of that article (it is out when it is retracted);
- what consumers hold (publications minus retractions) is exactly the known articles no active takedown
  covers: retraction and reinstatement keep the published view right, not only new arrivals.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.outcomes import Published, Retracted
from tests.factories.takedowns import NOW, Topology, assert_valid, config, enriched, lift, request

HOSTS = ["www.alpha.com", "news.alpha.com", "alpha.com", "www.beta.org", "gamma.net"]
SOURCES = ["wire-1", "wire-2", "Wire Three"]
TEXTS = [
    "The harbour council voted on Monday against the sale of the pier.",
    "Engineers said the southern supports had moved by twelve centimetres.",
    "The budget vote on Thursday will decide how the repairs are paid.",
]
CLUSTERS = ["a" * 32, "b" * 32]
N_ARTICLES = 6


def article(i: int, text: int) -> dict[str, Any]:
    """Article i keeps its URL, source and cluster; its text (so its revision) varies between events."""
    host = HOSTS[i % len(HOSTS)]
    return enriched(
        i,
        url=f"https://{host}/story/{i}",
        source=SOURCES[i % len(SOURCES)],
        source_name=SOURCES[i % len(SOURCES)].title(),
        cluster=CLUSTERS[i % len(CLUSTERS)],
        text=TEXTS[text],
    )


def value_for(scope: str, k: int) -> str:
    if scope == "url":
        i = k % N_ARTICLES
        return f"https://{HOSTS[i % len(HOSTS)]}/story/{i}"
    if scope == "domain":
        return ["alpha.com", "news.alpha.com", "beta.org", "gamma.net"][k % 4]
    if scope == "source":
        return ["wire-1", "WIRE-2", "wire three", "Wire Three"][k % 4]
    if scope == "fingerprint":
        return article(0, k % len(TEXTS))["revision"]
    return CLUSTERS[k % len(CLUSTERS)]


def model_covers(scope: str, value: str, art: dict[str, Any]) -> bool:
    host = art["host"]
    return {
        "url": art["canonical_url"] == value,
        "domain": host == value or host.endswith("." + value),
        "source": art["source"]["id"] == value or art["source"]["name"].lower() == value.lower(),
        "fingerprint": art["revision"] == value,
        "cluster": art["dedup"]["cluster_id"] == value,
    }[scope]


ops = st.one_of(
    st.tuples(st.just("article"), st.integers(0, N_ARTICLES - 1), st.integers(0, len(TEXTS) - 1)),
    st.tuples(
        st.just("request"),
        st.sampled_from(["url", "domain", "source", "fingerprint", "cluster"]),
        st.integers(0, 7),
        st.sampled_from([None, 1, 3]),  # expiry in hours
    ),
    st.tuples(st.just("lift"), st.integers(0, 20)),
    st.tuples(st.just("tick"), st.integers(1, 4)),  # hours forward
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=40), st.integers(1, 3))
def test_random_sequences_keep_published_exactly_what_no_active_takedown_covers(steps, partitions):
    asyncio.run(_run(steps, partitions))


async def _run(steps: list[tuple[Any, ...]], partitions: int) -> None:
    t = Topology(partitions=partitions, cfg=config())
    now = NOW
    requests: list[dict[str, Any]] = []
    active: dict[str, tuple[str, str, Any]] = {}  # model: takedown id → (scope, value, expires_at)
    latest: dict[str, dict[str, Any]] = {}  # article id → its latest revision seen
    out_now: set[str] = set()  # what consumers hold

    def covered(art: dict[str, Any]) -> bool:
        return any(model_covers(scope, value, art) for scope, value, _ in active.values())

    for n, step in enumerate(steps):
        now += timedelta(minutes=1)
        emitted: list[Any] = []
        if step[0] == "article":
            art = article(step[1], step[2])
            emitted = t.article(art, now=now)
            assert bool([o for o in emitted if isinstance(o, Published)]) == (not covered(art)), (step, active)
            latest[art["article_id"]] = art
        elif step[0] == "request":
            _, scope, k, hours = step
            td = request(scope, value_for(scope, k), now=now, tid=f"TD-{n}", expires_in=f"{hours}h" if hours else None)
            emitted = await t.send(td, now=now)
            requests.append(td)
            active[td["takedown_id"]] = (td["scope"], td["value"], now + timedelta(hours=hours) if hours else None)
        elif step[0] == "lift" and requests:
            td = requests[step[1] % len(requests)]
            if td["takedown_id"] in active:
                emitted = await t.send(lift(td, now=now), now=now)
                del active[td["takedown_id"]]
        elif step[0] == "tick":
            now += timedelta(hours=step[1])
            emitted = await t.tick(now)
            for tid, (_, _, expiry) in list(active.items()):
                if expiry is not None and expiry <= now:
                    del active[tid]
        assert_valid(emitted)
        for o in emitted:
            if isinstance(o, Published):
                out_now.add(o.article["article_id"])
            elif isinstance(o, Retracted):
                assert o.record["article_id"] in out_now, "a retraction without a publication before it"
                out_now.discard(o.record["article_id"])
        expected = {aid for aid, art in latest.items() if not covered(art)}
        assert out_now == expected, (step, sorted(active))
