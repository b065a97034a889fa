"""Unit tests of the partition stage: blocking and retroactive retraction for every scope, clusters, lift and
expiry with reinstatement, retention, partition-scoped state, rebuilding, and that every record validates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from streams.outcomes import Audited, Published, Rejected, Retracted
from streams.stages.takedown import TakedownStage
from tests.factories.takedowns import (
    NOW,
    Topology,
    actions,
    assert_valid,
    config,
    enriched,
    lift,
    of,
    request,
    revised,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def topo(partitions: int = 2, **settings: Any) -> Topology:
    return Topology(partitions=partitions, cfg=config(**settings))


async def send(t: Topology, record: dict[str, Any], now=NOW) -> list[Any]:
    out = await t.send(record, now=now)
    assert_valid(out)
    return out


def post(t: Topology, art: dict[str, Any], now=NOW) -> list[Any]:
    out = t.article(art, now=now)
    assert_valid(out)
    return out


def published_ids(outcomes: list[Any]) -> list[str]:
    return [o.article["article_id"] for o in outcomes if isinstance(o, Published)]


def retracted_ids(outcomes: list[Any]) -> list[str]:
    return sorted(o.record["article_id"] for o in outcomes if isinstance(o, Retracted))


# (scope, value, an article it covers, an article it does not cover)
SCOPES = [
    ("url", "https://www.example-news.com/news/1",
     lambda: enriched(1), lambda: enriched(2)),
    ("domain", "example-news.com",
     lambda: enriched(3, url="https://live.news.example-news.com/x"),
     lambda: enriched(4, url="https://www.notexample-news.com/x")),
    ("domain", "example-news.com",
     lambda: enriched(5, url="https://example-news.com/x"),
     lambda: enriched(6, url="https://example-news.com.evil.net/x")),
    ("source", "Example News",
     lambda: enriched(7, source="example-news"),
     lambda: enriched(8, source="other-news")),
    ("source", "wire-7",
     lambda: enriched(9, source="wire-7"),
     lambda: enriched(10, source="wire-77")),
    ("fingerprint", enriched(11)["revision"],
     lambda: enriched(12, url="https://www.copy.com/a", text=enriched(11)["text"]),
     lambda: enriched(13)),
    ("cluster", "c" * 32,
     lambda: enriched(14, cluster="c" * 32),
     lambda: enriched(15, cluster="d" * 32)),
]  # fmt: skip
SCOPE_IDS = ["url", "domain-subdomain", "domain-apex", "source-name-any-case", "source-id", "fingerprint", "cluster"]


@pytest.mark.parametrize(("scope", "value", "covered", "other"), SCOPES, ids=SCOPE_IDS)
async def test_an_active_takedown_blocks_what_it_covers_and_nothing_else(scope, value, covered, other):
    t = topo()
    td = request(scope, value)
    await send(t, td)
    art, free = covered(), other()
    out = post(t, art)
    assert not of(Published, out)
    assert actions(out) == ["blocked"]
    entry = out[0].record
    assert (entry["takedown_id"], entry["scope"], entry["article_id"]) == (td["takedown_id"], scope, art["article_id"])
    assert entry["origin"] == art["origin"] and entry["title"] == art["title"]
    assert entry["enriched"] == {"partition": t.partition_of(art["article_id"]), "offset": 0}
    assert published_ids(post(t, free)) == [free["article_id"]]


@pytest.mark.parametrize(("scope", "value", "covered", "other"), SCOPES, ids=SCOPE_IDS)
async def test_a_new_takedown_retracts_the_published_articles_it_covers(scope, value, covered, other):
    t = topo()
    art, free = covered(), other()
    assert published_ids(post(t, art)) == [art["article_id"]]
    post(t, free)
    td = request(scope, value)
    out = await send(t, td, now=NOW + HOUR)
    assert retracted_ids(out) == [art["article_id"]]
    retraction = of(Retracted, out)[0].record
    assert retraction["takedown_id"] == td["takedown_id"] and retraction["scope"] == scope
    assert retraction["reason"] == "Copyright claim" and retraction["retracted_at"] == "2025-08-13T08:30:00Z"
    assert retraction["origin"] == art["origin"] and retraction["ground"] == "legal"
    assert actions(out) == ["requested", "retracted"]


async def test_source_name_matches_in_any_case():
    t = topo()
    await send(t, request("source", "EXAMPLE news"))
    assert actions(post(t, enriched(1, source="example-news", source_name="Example News"))) == ["blocked"]


async def test_cluster_scope_retracts_every_published_member_on_every_partition():
    t = topo(partitions=4)
    cluster = "e" * 32
    members = [enriched(i, url=f"https://site{i}.com/story", cluster=cluster) for i in range(20)]
    for m in members:
        post(t, m)
    assert len({t.partition_of(m["article_id"]) for m in members}) == 4  # the members span every partition
    out = await send(t, request("cluster", cluster))
    assert retracted_ids(out) == sorted(m["article_id"] for m in members)
    later = enriched(99, url="https://late.com/story", cluster=cluster)
    assert actions(post(t, later)) == ["blocked"]


async def test_a_url_takedown_of_a_canonical_withdraws_only_that_url():
    # Copies of the canonical never reach this stage (dedup sent them to articles.duplicates), so a URL
    # takedown of the canonical leaves the story unpublished; other published articles of the cluster stay.
    t = topo()
    cluster_id = enriched(1)["article_id"]
    canonical = enriched(1, cluster=cluster_id)
    member = enriched(2, url="https://www.licensed.com/story", cluster=cluster_id)
    post(t, canonical)
    post(t, member)
    out = await send(t, request("url", canonical["canonical_url"]))
    assert retracted_ids(out) == [canonical["article_id"]]
    resent = post(t, canonical, now=NOW + HOUR)
    assert actions(resent) == ["blocked"]
    assert published_ids(post(t, member, now=NOW + HOUR)) == [member["article_id"]]


async def test_a_retraction_follows_the_publication_on_the_articles_own_partition():
    t = topo(partitions=3)
    arts = [enriched(i, url=f"https://www.example-news.com/{i}") for i in range(12)]
    for a in arts:
        post(t, a)
    await send(t, request("domain", "example-news.com"))
    published_at = {o.article["article_id"]: i for i, o in enumerate(t.outcomes) if isinstance(o, Published)}
    for i, o in enumerate(t.outcomes):
        if isinstance(o, Retracted):
            assert published_at[o.record["article_id"]] < i


async def test_an_update_of_a_published_article_that_a_takedown_covers_retracts_the_publication():
    t = topo()
    original = enriched(1)
    post(t, original)
    update = revised(original, "A corrected text that now carries the contested passage.")
    await send(t, request("fingerprint", update["revision"]))
    out = post(t, update, now=NOW + HOUR)
    assert actions(out) == ["blocked", "retracted"]
    assert of(Retracted, out)[0].record["revision"] == original["revision"]


async def test_applying_the_same_takedown_twice_retracts_once():
    t = topo(partitions=1)
    post(t, enriched(1))
    td = request("url", enriched(1)["canonical_url"])
    out = await send(t, td)
    fan = of(type(out[1]), out)[0]  # the FannedOut
    again = await t.stage.on_fanout(fan.record, partition=0, now=NOW, fetch=t.fetch)
    assert again == [] and len(of(Retracted, t.outcomes)) == 1


# --- lift and expiry ---------------------------------------------------------------------------------------


async def test_a_lift_reinstates_what_the_takedown_blocked_and_retracted():
    t = topo()
    old = enriched(1, url="https://www.example-news.com/old")
    post(t, old)
    td = request("domain", "example-news.com")
    await send(t, td)
    new = enriched(2, url="https://news.example-news.com/new")
    post(t, new, now=NOW + HOUR)
    out = await send(t, lift(td, now=NOW + DAY), now=NOW + DAY)
    assert sorted(published_ids(out)) == sorted([old["article_id"], new["article_id"]])
    for o in of(Published, out):
        mark = o.article["takedown"]
        assert mark["reinstated"] is True and mark["takedown_ids"] == [td["takedown_id"]]
        assert mark["previously"] == ("retracted" if o.article["article_id"] == old["article_id"] else "blocked")
        assert o.article["text"] == (old if o.article["article_id"] == old["article_id"] else new)["text"]
    assert sorted(actions(out)) == ["lifted", "reinstated", "reinstated"]
    assert published_ids(post(t, enriched(3, url="https://www.example-news.com/3"), now=NOW + DAY)) != []


async def test_a_lift_does_not_reinstate_what_another_takedown_still_covers():
    t = topo(partitions=1)
    art = enriched(1, url="https://www.example-news.com/a", source="example-news")
    by_domain = request("domain", "example-news.com", tid="TD-domain")
    by_source = request("source", "example-news", tid="TD-source")
    await send(t, by_domain)
    post(t, art)
    await send(t, by_source)
    out = await send(t, lift(by_domain, now=NOW + HOUR), now=NOW + HOUR)
    assert not of(Published, out)
    held = [o.record for o in out if isinstance(o, Audited) and o.record["action"] == "not_reinstated"]
    assert held[0]["details"]["why"] == "still_covered" and held[0]["details"]["still_covered_by"] == ["TD-source"]
    out = await send(t, lift(by_source, now=NOW + 2 * HOUR), now=NOW + 2 * HOUR)
    assert published_ids(out) == [art["article_id"]]


async def test_a_takedown_arriving_for_an_article_already_blocked_holds_it_too():
    t = topo(partitions=1)
    art = enriched(1, url="https://www.example-news.com/a", source="example-news")
    first = request("source", "example-news", tid="TD-1")
    second = request("domain", "example-news.com", tid="TD-2")
    await send(t, first)
    post(t, art)
    assert actions(await send(t, second)) == ["requested"]  # nothing published: nothing to retract
    assert t.articles[art["article_id"]]["held_by"] == ["TD-1", "TD-2"]
    assert not of(Published, await send(t, lift(first, now=NOW + HOUR), now=NOW + HOUR))
    assert published_ids(await send(t, lift(second, now=NOW + HOUR), now=NOW + HOUR)) == [art["article_id"]]


async def test_expiry_by_the_injected_tick_reinstates():
    t = topo()
    art = enriched(1)
    td = request("url", art["canonical_url"], expires_in="12h")
    await send(t, td)
    post(t, art)
    assert await t.tick(NOW + 11 * HOUR) == []
    out = await t.tick(NOW + 12 * HOUR)
    assert_valid(out)
    assert published_ids(out) == [art["article_id"]]
    assert actions(out) == ["expired", "reinstated"]
    assert of(Audited, out)[1].record["details"]["because"] == "expire"


async def test_a_record_gone_from_articles_enriched_is_not_reinstated_and_says_so():
    t = topo(partitions=1)
    art = enriched(1)
    td = request("url", art["canonical_url"])
    await send(t, td)
    post(t, art)
    t.expire_log()
    out = await send(t, lift(td, now=NOW + HOUR), now=NOW + HOUR)
    assert not of(Published, out)
    entry = [o.record for o in out if o.record.get("action") == "not_reinstated"][0]
    assert entry["details"]["why"] == "record_gone" and entry["article_id"] == art["article_id"]
    assert art["article_id"] not in t.articles


async def test_republish_on_lift_false_keeps_articles_withheld():
    t = topo(partitions=1)
    art = enriched(1)
    td = request("url", art["canonical_url"], republish_on_lift=False)
    await send(t, td)
    post(t, art)
    out = await send(t, lift(td, now=NOW + HOUR), now=NOW + HOUR)
    assert not of(Published, out)
    assert [o.record["details"]["why"] for o in out if o.record.get("action") == "not_reinstated"] == ["not_requested"]
    assert published_ids(post(t, art, now=NOW + 2 * HOUR)) == [art["article_id"]]  # no longer blocked


async def test_articles_blocked_longer_ago_than_the_window_are_not_reinstated():
    t = topo(partitions=1)  # the default window: 30 days
    art = enriched(1)
    td = request("url", art["canonical_url"])
    await send(t, td)
    post(t, art)
    late = NOW + timedelta(days=31)
    post(t, enriched(2), now=late)  # any event moves the partition's time on
    out = await send(t, lift(td, now=late), now=late)
    assert actions(out) == ["lifted"] and not of(Published, out)


async def test_articles_published_longer_ago_than_the_retention_are_not_retracted():
    t = topo(partitions=1, takedown_published_retention_days=7.0)  # shorter than the default, to keep the test small
    art = enriched(1)
    post(t, art)
    out = await send(t, request("url", art["canonical_url"]), now=NOW + timedelta(days=8))
    assert not of(Retracted, out)
    assert len(t.stage.partition(0)) == 0


async def test_the_record_of_published_articles_is_bounded():
    t = topo(partitions=1, takedown_published_max_entries=3)  # a small bound so the test stays small
    arts = [enriched(i) for i in range(5)]
    for i, a in enumerate(arts):
        post(t, a, now=NOW + i * HOUR)
    state = t.stage.partition(0)
    assert len(state) == 3 and state.evictions["capacity"] == 2
    assert set(t.articles) == {a["article_id"] for a in arts[2:]}


# --- state -------------------------------------------------------------------------------------------------


async def test_partition_state_keys_are_scoped_by_partition():
    t = topo(partitions=3)
    td = request("domain", "example-news.com", tid="TD-1")
    await send(t, td)
    assert sorted(t.takedowns) == ["0/TD-1", "1/TD-1", "2/TD-1"]
    art = enriched(1)
    post(t, art)
    assert list(t.articles) == [art["article_id"]]
    assert t.articles[art["article_id"]]["partition"] == t.partition_of(art["article_id"])
    assert "text" not in t.articles[art["article_id"]]


async def test_one_shared_dict_serves_every_partition_and_a_lift_on_one_leaves_the_others():
    t = topo(partitions=2)
    td = request("domain", "example-news.com", tid="TD-1")
    await send(t, td)
    await t.stage.partition(0).release(td, op="lift", now=NOW, fetch=t.fetch)
    assert sorted(t.takedowns) == ["1/TD-1"]
    assert "TD-1" in t.stage.partition(1).active and "TD-1" not in t.stage.partition(0).active


async def test_state_rebuilt_from_the_tables_gives_the_same_decisions():
    t = topo(partitions=2)
    await send(t, request("domain", "example-news.com", tid="TD-1"))
    await send(t, request("source", "wire-7", tid="TD-2"))
    arts = [enriched(i, url=f"https://www.example-news.com/{i}") for i in range(4)]
    arts += [enriched(10 + i, source="wire-7") for i in range(4)]
    arts += [enriched(20 + i, url=f"https://free{i}.com/a", cluster="f" * 32) for i in range(4)]
    for a in arts:
        post(t, a)
    probes = [enriched(30, url="https://m.example-news.com/x"), enriched(31, source="wire-7"), enriched(32)]
    fresh = TakedownStage(t.cfg, dict(t.takedowns), dict(t.articles))
    for p in range(2):
        before, after = t.stage.partition(p), fresh.partition(p)
        assert before.active.scope_of == after.active.scope_of
        assert before.held_by == after.held_by and len(before) == len(after)
    for probe in probes:
        p = t.partition_of(probe["article_id"])
        assert actions(t.stage.on_article(probe, partition=p, offset=99, now=NOW)) == actions(
            fresh.on_article(probe, partition=p, offset=99, now=NOW)
        )
    cluster_td = request("cluster", "f" * 32, tid="TD-3")
    got = []
    for stage in (t.stage, fresh):
        record = {
            "schema": "takedown_fanout.v1", "op": "apply", "takedown_id": "TD-3", "takedown": cluster_td,
            "at": "2025-08-13T07:30:00Z", "partition": 0, "partitions": 2,
        }  # fmt: skip
        out = []
        for p in range(2):
            out += await stage.on_fanout(record, partition=p, now=NOW, fetch=t.fetch)
        got.append(retracted_ids(out))
    assert got[0] == got[1] and len(got[0]) == 4


async def test_a_bad_article_is_rejected_not_raised():
    t = topo(partitions=1)
    assert isinstance(t.stage.on_article({"title": "no id"}, partition=0, offset=0, now=NOW)[0], Rejected)
    assert isinstance(t.stage.on_article("not a dict", partition=0, offset=1, now=NOW)[0], Rejected)
    assert await t.stage.on_fanout({"op": "apply"}, partition=0, now=NOW, fetch=t.fetch) == []


async def test_a_published_article_carries_the_stage_version():
    t = topo(partitions=1)
    (out,) = post(t, enriched(1))
    assert out.article["pipeline"]["takedown"] == "1" and "takedown" not in out.article


async def test_every_scope_lifecycle_emits_only_valid_records():
    t = topo(partitions=2)
    arts = [enriched(i, url=f"https://www.example-news.com/{i}", source="wire-7", cluster="a" * 32) for i in range(6)]
    for a in arts[:3]:
        post(t, a)
    tds = [
        request("url", arts[0]["canonical_url"]),
        request("domain", "example-news.com", expires_in="2h"),
        request("source", "wire-7"),
        request("fingerprint", arts[1]["revision"]),
        request("cluster", "a" * 32),
    ]
    for td in tds:
        await send(t, td)
    for a in arts[3:]:
        post(t, a)
    assert_valid(await t.tick(NOW + 3 * HOUR))
    for td in tds:
        if td["scope"] != "domain":
            await send(t, lift(td, now=NOW + 4 * HOUR), now=NOW + 4 * HOUR)
    assert_valid(t.outcomes)
    assert {o.record["action"] for o in of(Audited, t.outcomes)} >= {
        "requested", "blocked", "retracted", "expired", "lifted", "reinstated", "not_reinstated"
    }  # fmt: skip
    # Only the domain takedown (expired) and the lifts remain: everything is out again, every revision current.
    assert {e["status"] for e in t.articles.values()} == {"published"}


def test_default_windows_fit_the_topics_they_rely_on():
    from streams import topics

    cfg = config()
    assert cfg.reinstate_window_ms <= topics.ENRICHED.retention_ms  # a reinstatement re-reads articles.enriched
    assert cfg.published_retention_ms == topics.PUBLISHED.retention_ms


@pytest.mark.parametrize(
    "overrides",
    [{"takedown_reinstate_window_days": 0.0}, {"takedown_published_max_entries": 0}, {"takedown_max_request_bytes": 0}],
)
def test_nonsense_settings_fail_at_start(overrides):
    with pytest.raises(ValueError):
        config(**overrides)
