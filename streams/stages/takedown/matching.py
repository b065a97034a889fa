"""What a takedown covers, and the two in-memory indexes that answer it fast in both directions.

The rule (`covers`), for an article's facts (`facts_of`):

    url          canonical_url == value            "https://example.com/a"
    domain       host == value or host ends with "." + value   "example.com" covers www.example.com
    source       source.id == value or source.name.casefold() == value.casefold()
    fingerprint  revision == value                 (normalize's content hash)
    cluster      dedup.cluster_id == value         (the canonical's article_id)

`ActiveIndex` goes from an arriving article to the active takedowns covering it (a few dict look-ups: one
per scope, one per label of the host for domains), so its cost does not grow with the number of takedowns.
`ArticleIndex` goes from a new takedown to the articles a partition knows that it covers (for retroactive
retraction), by URL, the host's last two labels → host, source id and name, revision and cluster. It keeps article
ids only; one id under a key is stored as a plain string, a set only when a key has several (most URLs and
revisions have one article), which keeps it at about 0.5 KB per article.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Members = str | set[str]  # one article id, or several


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 µs more per article
class Facts:
    """The fields of an article that takedowns match on (source_name is case-folded)."""

    article_id: str
    url: str
    host: str
    domain: str
    source_id: str
    source_name: str
    revision: str
    cluster: str


def facts_of(article: dict[str, Any]) -> Facts:
    """The facts of an article.v1 document; missing fields are empty strings (they match nothing)."""
    url = _text(article.get("canonical_url"))
    source = article.get("source")
    if isinstance(source, dict):
        sid, sname = _text(source.get("id")), _text(source.get("name")).casefold()
    else:
        sid = sname = ""
    dedup = article.get("dedup")
    cluster = _text(dedup.get("cluster_id")) if isinstance(dedup, dict) else ""
    host = _text(article.get("host")) or _host_of(url)
    return Facts(
        _text(article.get("article_id")),
        url,
        host,
        _text(article.get("domain")) or host,
        sid,
        sname,
        _text(article.get("revision")),
        cluster,
    )


def facts_of_entry(article_id: str, entry: dict[str, Any]) -> Facts:
    """The facts kept in a partition's article entry (see `stage.entry_of`)."""
    return Facts(
        article_id,
        entry.get("canonical_url") or "",
        entry.get("host") or "",
        entry.get("domain") or "",
        entry.get("source_id") or "",
        (entry.get("source_name") or "").casefold(),
        entry.get("revision") or "",
        entry.get("cluster_id") or "",
    )


def covers(scope: str, value: str, facts: Facts) -> bool:
    """Whether a takedown (scope, normalised value) covers an article: the rule, in one place."""
    if scope == "url":
        return facts.url == value
    if scope == "domain":
        host = facts.host or facts.domain
        return bool(host) and (host == value or host.endswith("." + value))
    if scope == "source":
        return facts.source_id == value or (bool(facts.source_name) and facts.source_name == value.casefold())
    if scope == "fingerprint":
        return facts.revision == value
    if scope == "cluster":
        return facts.cluster == value
    return False


class ActiveIndex:
    """Active takedowns by what they match: scope → value → takedown ids."""

    def __init__(self) -> None:
        self.url: dict[str, set[str]] = {}
        self.domain: dict[str, set[str]] = {}
        self.source_id: dict[str, set[str]] = {}
        self.source_name: dict[str, set[str]] = {}
        self.fingerprint: dict[str, set[str]] = {}
        self.cluster: dict[str, set[str]] = {}
        self.scope_of: dict[str, tuple[str, str]] = {}  # takedown id → (scope, value)

    def __len__(self) -> int:
        return len(self.scope_of)

    def __contains__(self, takedown_id: object) -> bool:
        return takedown_id in self.scope_of

    def _maps(self, scope: str, value: str) -> list[tuple[dict[str, set[str]], str]]:
        if scope == "source":
            return [(self.source_id, value), (self.source_name, value.casefold())]
        table = {"url": self.url, "domain": self.domain, "fingerprint": self.fingerprint, "cluster": self.cluster}
        return [(table[scope], value)] if scope in table else []

    def add(self, takedown_id: str, scope: str, value: str) -> None:
        self.remove(takedown_id)
        for mapping, key in self._maps(scope, value):
            mapping.setdefault(key, set()).add(takedown_id)
        self.scope_of[takedown_id] = (scope, value)

    def remove(self, takedown_id: str) -> tuple[str, str] | None:
        old = self.scope_of.pop(takedown_id, None)
        if old is not None:
            for mapping, key in self._maps(*old):
                ids = mapping.get(key)
                if ids is not None:
                    ids.discard(takedown_id)
                    if not ids:
                        del mapping[key]
        return old

    def count_by_scope(self) -> dict[str, int]:
        out = {"url": 0, "domain": 0, "source": 0, "fingerprint": 0, "cluster": 0}
        for scope, _ in self.scope_of.values():
            out[scope] = out.get(scope, 0) + 1
        return out

    def covering(self, f: Facts) -> list[str]:
        """The active takedowns covering the article, sorted (an empty list when none: the common case)."""
        hits: set[str] | None = None
        if self.url:
            ids = self.url.get(f.url)
            if ids:
                hits = set(ids)
        if self.domain:
            host = f.host or f.domain
            while host:
                ids = self.domain.get(host)
                if ids:
                    hits = hits | ids if hits else set(ids)
                dot = host.find(".")
                if dot < 0:
                    break
                host = host[dot + 1 :]
        if self.source_id and f.source_id:
            ids = self.source_id.get(f.source_id)
            if ids:
                hits = hits | ids if hits else set(ids)
        if self.source_name and f.source_name:
            ids = self.source_name.get(f.source_name)
            if ids:
                hits = hits | ids if hits else set(ids)
        if self.fingerprint:
            ids = self.fingerprint.get(f.revision)
            if ids:
                hits = hits | ids if hits else set(ids)
        if self.cluster and f.cluster:
            ids = self.cluster.get(f.cluster)
            if ids:
                hits = hits | ids if hits else set(ids)
        if not hits:
            return []
        return sorted(hits)


class ArticleIndex:
    """The articles a partition knows (published or withheld) by the fields takedowns match on."""

    def __init__(self) -> None:
        self.url: dict[str, Members] = {}
        self.hosts: dict[str, dict[str, Members]] = {}  # last two labels of the host → host → ids
        self.source_id: dict[str, Members] = {}
        self.source_name: dict[str, Members] = {}
        self.revision: dict[str, Members] = {}
        self.cluster: dict[str, Members] = {}
        self.size = 0

    def add(self, f: Facts) -> None:
        aid = f.article_id
        _put(self.url, f.url, aid)
        host = f.host or f.domain
        _put(self.hosts.setdefault(_group(host), {}), host, aid)
        if f.source_id:
            _put(self.source_id, f.source_id, aid)
        if f.source_name:
            _put(self.source_name, f.source_name, aid)
        _put(self.revision, f.revision, aid)
        if f.cluster:
            _put(self.cluster, f.cluster, aid)
        self.size += 1

    def remove(self, f: Facts) -> None:
        aid = f.article_id
        _drop(self.url, f.url, aid)
        host = f.host or f.domain
        group = _group(host)
        hosts = self.hosts.get(group)
        if hosts is not None:
            _drop(hosts, host, aid)
            if not hosts:
                del self.hosts[group]
        if f.source_id:
            _drop(self.source_id, f.source_id, aid)
        if f.source_name:
            _drop(self.source_name, f.source_name, aid)
        _drop(self.revision, f.revision, aid)
        if f.cluster:
            _drop(self.cluster, f.cluster, aid)
        self.size -= 1

    def candidates(self, scope: str, value: str) -> set[str]:
        """Article ids the takedown may cover: exact for every scope (domain: the hosts under the value)."""
        out: set[str] = set()
        if scope == "url":
            _collect(out, self.url.get(value))
        elif scope == "domain":
            hosts = self.hosts.get(_group(value))
            if hosts:
                suffix = "." + value
                for host, members in hosts.items():
                    if host == value or host.endswith(suffix):
                        _collect(out, members)
        elif scope == "source":
            _collect(out, self.source_id.get(value))
            _collect(out, self.source_name.get(value.casefold()))
        elif scope == "fingerprint":
            _collect(out, self.revision.get(value))
        elif scope == "cluster":
            _collect(out, self.cluster.get(value))
        return out


def _group(host: str) -> str:
    """The last two labels of a host: every host a domain value covers shares the value's last two labels
    (the value has at least two), whatever the public-suffix list says about them. "news.bbc.co.uk" → "co.uk"."""
    last = host.rfind(".")
    if last <= 0:
        return host
    before = host.rfind(".", 0, last)
    return host[before + 1 :] if before >= 0 else host


def _put(mapping: dict[str, Members], key: str, aid: str) -> None:
    current = mapping.get(key)
    if current is None:
        mapping[key] = aid
    elif isinstance(current, str):
        if current != aid:
            mapping[key] = {current, aid}
    else:
        current.add(aid)


def _drop(mapping: dict[str, Members], key: str, aid: str) -> None:
    current = mapping.get(key)
    if current is None:
        return
    if isinstance(current, str):
        if current == aid:
            del mapping[key]
        return
    current.discard(aid)
    if len(current) == 1:
        mapping[key] = next(iter(current))
    elif not current:
        del mapping[key]


def _collect(out: set[str], members: Members | None) -> None:
    if members is None:
        return
    if isinstance(members, str):
        out.add(members)
    else:
        out.update(members)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def sorted_ids(ids: Iterable[str]) -> list[str]:
    return sorted(set(ids))
