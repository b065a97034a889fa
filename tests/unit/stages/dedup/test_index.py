"""Unit tests of dedup's compact index and of containment matching: cut and extended copies, what stays
apart, and the index's bookkeeping (slots, generations, rehash, growth, ids) against a plain model."""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta
from typing import Any

import pytest

from streams.outcomes import Duplicate, Unique
from streams.settings import Settings
from streams.stages.dedup import kernels
from streams.stages.dedup.config import DedupConfig
from streams.stages.dedup.index import DedupState
from streams.stages.dedup.shingles import shingles, tokens
from streams.stages.dedup.stage import dedup
from tests.factories import stories as f

PRODUCTION = DedupConfig.from_settings(Settings())
NOW = f.T0 + timedelta(hours=6)


def state(**overrides: Any) -> DedupState:
    return DedupState(dataclasses.replace(PRODUCTION, **overrides), {}, {})


def long_article(seed: int, paragraphs: int = 12) -> dict[str, Any]:
    title, text = f.story(seed, paragraphs=paragraphs)
    return f.article(seed, title=title, text=text)


def exact(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float]:
    """(Jaccard, containment of the smaller in the larger) of two articles' shingle sets."""
    sa, sb = ({*shingles(tokens(f"{x['title']}\n{x['text']}"), 3)} for x in (a, b))
    common = len(sa & sb)
    return common / len(sa | sb), common / min(len(sa), len(sb))


# --- containment ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kept", [5, 6, 7])
def test_copy_cut_to_about_half_is_a_near_duplicate_by_containment(kept: int) -> None:
    a = long_article(1)
    paras = a["text"].split("\n\n")
    b = f.copy_of(a, url="https://cut.example/1", text="\n\n".join(paras[:kept]))
    j, c = exact(a, b)
    assert j < PRODUCTION.threshold and c > 0.95  # resemblance alone would miss it
    st = state()
    _, out = (dedup(x, state=st, now=NOW) for x in (a, b))
    assert isinstance(out, Duplicate)
    rec = out.record
    assert (rec["match"], rec["duplicate_of"]) == ("near", a["article_id"])
    assert rec["containment"] >= PRODUCTION.containment_threshold > rec["similarity"] >= 0.35


def test_copy_extended_with_other_text_is_a_near_duplicate_of_the_shorter_original() -> None:
    a = f.article(1)  # 8 paragraphs
    extra = f.story(99, paragraphs=7)[1]
    b = f.copy_of(a, url="https://extended.example/1", text=f"{a['text']}\n\n{extra}")
    j, c = exact(a, b)
    assert j < PRODUCTION.threshold and c > 0.95
    st = state()
    _, out = (dedup(x, state=st, now=NOW) for x in (a, b))
    assert isinstance(out, Duplicate) and out.record["duplicate_of"] == a["article_id"]


def test_an_extended_copy_indexed_first_catches_the_original_arriving_later() -> None:
    a = f.article(1)
    b = f.copy_of(a, url="https://extended.example/1", text=f"{a['text']}\n\n{f.story(99, paragraphs=7)[1]}")
    st = state()
    _, out = (dedup(x, state=st, now=NOW) for x in (b, a))
    assert isinstance(out, Duplicate) and out.record["duplicate_of"] == b["article_id"]


@pytest.mark.parametrize("kept", [1, 2])
def test_a_short_excerpt_of_a_long_article_is_not_its_copy(kept: int) -> None:
    # all of its shingles are in the long article, but its resemblance is under the floor
    a = long_article(1, paragraphs=16)
    b = f.copy_of(a, url="https://excerpt.example/1", text="\n\n".join(a["text"].split("\n\n")[:kept]))
    j, c = exact(a, b)
    assert c > 0.9 and j < PRODUCTION.containment_min_similarity
    st = state()
    _, out = (dedup(x, state=st, now=NOW) for x in (a, b))
    assert isinstance(out, Unique)


def test_two_articles_sharing_a_third_of_their_text_stay_apart() -> None:
    rng = random.Random(4)
    shared = "\n\n".join(f.paragraph(rng, 3) for _ in range(3))
    a = f.article(url="https://a.example/1", title="One", text=shared + "\n\n" + f.story(7, 6)[1])
    b = f.article(url="https://b.example/1", title="Two", text=shared + "\n\n" + f.story(8, 6)[1])
    j, c = exact(a, b)
    assert j < 0.35 and c < PRODUCTION.containment_threshold
    st = state()
    _, out = (dedup(x, state=st, now=NOW) for x in (a, b))
    assert isinstance(out, Unique)


# --- the index against a plain model ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_the_index_agrees_with_a_plain_model_through_adds_revisions_and_evictions(seed: int) -> None:
    rng = random.Random(seed)
    max_entries = rng.choice([5, 40, 300])
    st = state(max_entries=max_entries)
    model: dict[str, tuple[int, str]] = {}  # article_id -> (seen_ms, text) of what is indexed
    texts = {i: f.story(i, paragraphs=2)[1] for i in range(60)}
    readds = 0
    for step in range(700):
        aid = f"{rng.getrandbits(128):032x}" if rng.random() < 0.9 else f"odd-{rng.randint(0, 30)}"
        text = texts[rng.randrange(60)]
        sig = st.hasher.signature("", text)
        assert sig is not None
        if aid in model and rng.random() < 0.5:
            st.replace_signature(aid, sig)
            model[aid] = (model[aid][0], text)
        else:
            seen = 1_000 * step
            readds += aid in model  # the old slot waits in the expiry heap until its time comes
            st.add(aid, seen, sig)
            model[aid] = (seen, text)
        st.articles[aid] = {"minhash": sig.encode(), "shingles": sig.shingles}
        for gone in st.expire():
            del model[gone]
        assert st.size() == len(model) <= max_entries
        assert all(a in st for a in rng.sample(sorted(model), min(5, len(model))))
    # every live article is found by its own text; none that left
    for aid, (_, text) in model.items():
        sig = st.hasher.signature("", text)
        found = {m.article_id for m in st.candidates(sig)}
        assert aid in found
        assert found <= set(model)
    assert st.slots() <= max_entries + readds + 1


def test_stale_postings_are_dropped_by_a_rehash_and_nothing_live_is_lost() -> None:
    st = state()
    a = f.article(1)
    dedup(a, state=st, now=NOW)
    cells_before = st._cells.shape[1]  # noqa: SLF001 - the test watches the tables' size
    for i in range(400):  # each revision leaves 16 stale postings behind
        dedup(f.revised(a, f.story(1000 + i)[1]), state=st, now=NOW)
    last = f.story(1399)[1]
    assert st.size() == 1 and st._cells.shape[1] <= max(cells_before, 2048)  # noqa: SLF001
    copy = f.copy_of(a, url="https://copy.example/1", text=f.wrapped(last))
    out = dedup(copy, state=st, now=NOW)
    assert isinstance(out, Duplicate) and out.record["duplicate_of"] == a["article_id"]


def test_the_index_grows_past_its_first_capacity_without_a_rebuild() -> None:
    st = state()
    arts = [f.article(s) for s in range(700)]
    for x in arts:
        dedup(x, state=st, now=NOW)
    assert st.size() == 700 and st.slots() == 700
    for s in (0, 350, 699):
        copy = f.copy_of(arts[s], url=f"https://copy.example/{s}", text=f.agency_lines(arts[s]["text"]))
        out = dedup(copy, state=st, now=NOW)
        assert isinstance(out, Duplicate) and out.record["duplicate_of"] == arts[s]["article_id"]


def test_ids_that_are_not_hex_are_kept_and_evicted_like_any_other() -> None:
    st = state(max_entries=2)
    odd = dict(f.article(1), article_id="custom:id/1")
    dedup(odd, state=st, now=NOW)
    assert "custom:id/1" in st and "custom:id/1" in st.articles
    for s in (2, 3):
        dedup(
            f.article(s, published_at=f.T0 + timedelta(hours=s), ingested_at=NOW + timedelta(hours=s)),
            state=st,
            now=NOW,
        )
    assert "custom:id/1" in st.expire()
    assert "custom:id/1" not in st and st.size() == 2


def test_the_id_map_deletes_without_breaking_other_lookups() -> None:
    cap = 16
    ikeys = kernels.np.zeros(cap, dtype=kernels.np.uint64)
    ivals = kernels.np.zeros(cap, dtype=kernels.np.uint32)
    ids = kernels.np.zeros((12, 16), dtype=kernels.np.uint8)
    for slot in range(12):
        ids[slot, 0] = slot + 1
        kernels.id_insert(ikeys, ivals, kernels.np.uint64(slot % 3), slot)  # 3 keys: long shared runs
    for slot in (4, 0, 11, 7):
        assert kernels.id_delete(ikeys, ivals, kernels.np.uint64(slot % 3), slot)
    for slot in range(12):
        found = kernels.id_find(ikeys, ivals, ids, kernels.np.uint64(slot % 3), ids[slot])
        assert found == (-1 if slot in (4, 0, 11, 7) else slot)


class Unsized(dict):  # type: ignore[type-arg]
    """A table whose size is not known in advance (len() unsupported, as for some stores)."""

    def __len__(self) -> int:
        raise TypeError("no len")


def test_a_rebuild_that_outgrows_its_first_guess_maps_every_id_once() -> None:
    built = state()
    arts = [f.article(s) for s in range(600)]
    for x in arts:
        dedup(x, state=built, now=NOW)
    table = Unsized(built.articles)
    st = DedupState(dataclasses.replace(PRODUCTION, max_entries=100), table, dict(built.content))
    assert st.rebuild() == 600
    evicted = st.expire()
    assert len(evicted) == 500 and not any(a in st for a in evicted)
    assert all(x["article_id"] in st for x in arts if x["article_id"] not in evicted)
