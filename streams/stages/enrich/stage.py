"""The enrich stage: a batch of article.v1 documents in, each with an `enrichment` object added, or a refusal out.

Rule: for every article, in order: its language (title + text); named entities with the spaCy model configured
for that language (all articles of one language of the batch go through one `nlp.pipe`), merged by name and with
places resolved to countries; figures with units; keywords; an extractive summary; word count and reading time.
Everything else of the article (attribution, alternates, dedup ...) goes through untouched; `pipeline["enrich"]`
and `enrichment.versions` say which code and which libraries and models produced the fields. For example the
seed becomes its article with

    enrichment = {"language": {"code": "en", ...}, "entities": [{"name": "Volodymyr Zelenskyy", "type": "person",
                  "mentions": 7, "first_offset": 20, ...}, {"name": "Kharkiv", "type": "place", "country_code":
                  "UA", ...}, ...], "figures": [{"surface": "approximately 90,000 square kilometers", "kind": "area",
                  "value": 90000, "unit": "km²", ...}, ...], "keywords": [...], "summary": {...}, "word_count": 505,
                  "reading_time_seconds": 128, "versions": {...}}

An article in a language without a model gets every other enrichment and `entities_skipped: "no model for uk"`.
Pure and deterministic: no clock, no I/O after the models are loaded; the same article gives the same enrichment
in any batch, in this process or in the pool. An article whose enrichment raises becomes
Rejected("internal_error", ...) and the others of its batch are unaffected.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from streams.outcomes import Enriched, Rejected
from streams.stages.enrich import entities, figures, keywords, language, places, reading, summary
from streams.stages.enrich.language import Language, LanguageDetector
from streams.stages.enrich.ner import Mention, NerModels, NerPool
from streams.stages.enrich.places import Gazetteer

if TYPE_CHECKING:
    from streams.settings import Settings

ENRICH_VERSION = "1"  # bump when the same article would get a different enrichment
ENRICHERS = ("language", "ner", "entities", "figures", "keywords", "summary", "reading")
_MESSAGE_CHARS = 300


@dataclass(frozen=True)
class EnrichConfig:
    """What enrich needs from the settings (no defaults here: they live in Settings)."""

    models: tuple[tuple[str, str], ...]  # (ISO 639-1 language, spaCy package), e.g. (("en", "en_core_web_sm"),)
    ner: bool  # False: no model is loaded and no article goes through NER (benchmarks: --ner off)
    ner_processes: int  # 0: NER in this process; N: a pool of N processes for aenrich_batch
    batch_size: int  # texts per nlp.pipe batch
    ner_max_chars: int  # longer texts are cut here before NER (entities past the cut are not found)
    language_sample_chars: int
    language_confidence: float
    keywords: int
    summary_sentences: int
    reading_wpm: int

    @classmethod
    def from_settings(cls, s: Settings) -> EnrichConfig:
        return cls(
            models=parse_models(s.enrich_models),
            ner=s.enrich_ner,
            ner_processes=s.enrich_ner_processes,
            batch_size=s.enrich_batch_size,
            ner_max_chars=s.enrich_ner_max_chars,
            language_sample_chars=s.enrich_language_sample_chars,
            language_confidence=s.enrich_language_confidence,
            keywords=s.enrich_keywords,
            summary_sentences=s.enrich_summary_sentences,
            reading_wpm=s.enrich_reading_wpm,
        )

    @property
    def model_map(self) -> dict[str, str]:
        return dict(self.models) if self.ner else {}


def parse_models(value: str) -> tuple[tuple[str, str], ...]:
    """ "en:en_core_web_sm, de:de_core_news_sm" -> (("en", "en_core_web_sm"), ("de", "de_core_news_sm"))."""
    out: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        lang, sep, package = item.partition(":")
        if not sep or not lang.strip() or not package.strip():
            raise ValueError(f"STREAMS_ENRICH_MODELS item {item.strip()!r} is not language:package")
        out[lang.strip().lower()] = package.strip()
    return tuple(sorted(out.items()))


@dataclass(frozen=True)
class EnrichStats:
    """What the enricher did since the previous `stats()` call, for the agent's metrics."""

    articles: int = 0
    rejected: int = 0
    seconds: Mapping[str, float] = field(default_factory=dict)  # enricher -> seconds, summed over articles
    ner_batches: tuple[float, ...] = ()  # seconds of each nlp.pipe call (one per language per batch)
    without_model: Mapping[str, int] = field(default_factory=dict)  # detected language -> articles skipped
    entities: Mapping[str, int] = field(default_factory=dict)  # person/organisation/place -> entities found
    figures: Mapping[str, int] = field(default_factory=dict)  # kind -> figures found


class _Tally:
    def __init__(self) -> None:
        self.articles = 0
        self.rejected = 0
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.ner_batches: list[float] = []
        self.without_model: Counter[str] = Counter()
        self.entities: Counter[str] = Counter()
        self.figures: Counter[str] = Counter()

    def freeze(self) -> EnrichStats:
        return EnrichStats(
            self.articles,
            self.rejected,
            {k: self.seconds.get(k, 0.0) for k in ENRICHERS},
            tuple(self.ner_batches),
            dict(sorted(self.without_model.items())),
            {k: self.entities.get(k, 0) for k in ("person", "organisation", "place")},
            dict(sorted(self.figures.items())),
        )


@dataclass
class _Work:
    """One article on its way through the enrichers."""

    article: dict[str, Any]
    text: str = ""
    language: Language | None = None
    enrichment: dict[str, Any] = field(default_factory=dict)
    mentions: tuple[Mention, ...] | None = None
    error: Rejected | None = None


class Enricher:
    """Loads the detectors, the gazetteer and the spaCy models once; enriches batches of articles.

    Not for concurrent use: one batch at a time (the agent awaits each batch before the next).
    """

    def __init__(self, config: EnrichConfig) -> None:
        self.config = config
        self._language = LanguageDetector(
            sample_chars=config.language_sample_chars, threshold=config.language_confidence
        )
        self._gazetteer = Gazetteer()
        self._ner = NerModels(config.model_map, config.batch_size)
        self._pool: NerPool | None = None
        self._tally = _Tally()
        self._versions = self._build_versions()

    # -- public --------------------------------------------------------------------------------------------
    def enrich_batch(self, articles: Sequence[dict[str, Any]]) -> list[Enriched | Rejected]:
        """One outcome per article, in order; NER in this process."""
        work = self._prepare(articles)
        for lang, items in self._ner_jobs(work).items():
            self._run_ner(lang, items, lambda texts, lang=lang: self._ner.run(lang, texts))
        return self._finish(work)

    async def aenrich_batch(self, articles: Sequence[dict[str, Any]]) -> list[Enriched | Rejected]:
        """As `enrich_batch`; NER in the process pool when `ner_processes` > 0, else in a thread."""
        if self.config.ner_processes <= 0:
            return await asyncio.to_thread(self.enrich_batch, articles)
        if self._pool is None:
            self._pool = await asyncio.to_thread(
                NerPool, self.config.model_map, self.config.batch_size, self.config.ner_processes
            )
        pool = self._pool
        work = self._prepare(articles)
        jobs = self._ner_jobs(work)
        started = time.perf_counter()
        futures = {lang: asyncio.ensure_future(pool.arun(lang, [w.text[: self.config.ner_max_chars] for w in items]))
                   for lang, items in jobs.items()}  # fmt: skip
        broken = False
        for lang, items in jobs.items():
            try:
                results = await futures[lang]
            except Exception:  # the pool failed this batch: find the article that fails, alone, here
                results, broken = None, True
            self._ner_results(lang, items, results, time.perf_counter() - started)
        if broken:  # a worker may have died (BrokenProcessPool): the next batch starts a fresh pool
            self._pool = None
            await asyncio.to_thread(pool.close)
        return self._finish(work)

    def versions(self) -> dict[str, str]:
        """Enricher -> "version (libraries and models it uses)", for every configured model."""
        return dict(self._versions)

    def stats(self) -> EnrichStats:
        """Timings and counts since the previous call (then starts counting afresh)."""
        frozen = self._tally.freeze()
        self._tally = _Tally()
        return frozen

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- steps ----------------------------------------------------------------------------------------------
    def _prepare(self, articles: Sequence[dict[str, Any]]) -> list[_Work]:
        """Language and every enricher that does not need NER, article by article."""
        work = []
        for article in articles:
            w = _Work(article)
            try:
                self._before_ner(w)
            except Exception as exc:  # a bug, or input that is not an article: refuse this one alone
                w.error = _internal_error(exc, article)
            work.append(w)
        return work

    def _before_ner(self, w: _Work) -> None:
        cfg, tally, article = self.config, self._tally, w.article
        text = article["text"]
        title = article.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise TypeError("the article's text and title must be strings")
        w.text = text
        t0 = time.perf_counter()
        w.language = self._language.detect(title, text)
        t1 = time.perf_counter()
        found_figures = figures.extract(text)
        t2 = time.perf_counter()
        pool = keywords.ranked(text, w.language.code)
        t3 = time.perf_counter()
        gist = summary.summarise(text, pool, cfg.summary_sentences)
        t4 = time.perf_counter()
        words = reading.word_count(text)
        t5 = time.perf_counter()
        spent = {"language": t1 - t0, "figures": t2 - t1, "keywords": t3 - t2, "summary": t4 - t3, "reading": t5 - t4}
        for name, seconds in spent.items():
            tally.seconds[name] += seconds
        w.enrichment = {
            "language": w.language.as_dict(),
            "entities": [],
            "entities_skipped": None,
            "countries": [],
            "figures": found_figures,
            "keywords": pool[: cfg.keywords] if cfg.keywords > 0 else [],
            "summary": gist,
            "word_count": words,
            "reading_time_seconds": reading.reading_time_seconds(words, cfg.reading_wpm),
        }

    def _ner_jobs(self, work: list[_Work]) -> dict[str, list[_Work]]:
        """Articles to send through NER, grouped by language (sorted, so batches are formed the same every run)."""
        jobs: dict[str, list[_Work]] = {}
        for w in work:
            if w.error is not None or w.language is None:
                continue
            code = w.language.code
            if code is not None and code in self._ner.pipelines:
                jobs.setdefault(code, []).append(w)
            else:
                w.enrichment["entities_skipped"] = (
                    "NER off" if not self.config.ner else f"no model for {code}" if code else "no language detected"
                )
                self._tally.without_model[code or "none"] += 1
        return dict(sorted(jobs.items()))

    def _run_ner(self, lang: str, items: list[_Work], run: Any) -> None:
        started = time.perf_counter()
        try:
            results = run([w.text[: self.config.ner_max_chars] for w in items])
        except Exception:
            results = None
        self._ner_results(lang, items, results, time.perf_counter() - started)

    def _ner_results(self, lang: str, items: list[_Work], results: list[Any] | None, seconds: float) -> None:
        self._tally.ner_batches.append(seconds)
        self._tally.seconds["ner"] += seconds
        if results is not None and len(results) == len(items):
            for w, mentions in zip(items, results, strict=True):
                w.mentions = mentions
            return
        for w in items:  # the batch failed: each article alone, so only the one that fails is refused
            try:
                w.mentions = self._ner.run(lang, [w.text[: self.config.ner_max_chars]])[0]
            except Exception as exc:
                w.error = _internal_error(exc, w.article)

    def _finish(self, work: list[_Work]) -> list[Enriched | Rejected]:
        out: list[Enriched | Rejected] = []
        for w in work:
            if w.error is None:
                try:
                    out.append(self._complete(w))
                    continue
                except Exception as exc:
                    w.error = _internal_error(exc, w.article)
            assert w.error is not None
            self._tally.rejected += 1
            out.append(w.error)
        return out

    def _complete(self, w: _Work) -> Enriched:
        tally, enrichment = self._tally, w.enrichment
        if w.mentions is not None:
            t0 = time.perf_counter()
            found = entities.merge(w.text, w.mentions, self._gazetteer)
            tally.seconds["entities"] += time.perf_counter() - t0
            enrichment["entities"] = found
            countries: list[str] = []
            for e in found:
                code = e.get("country_code")
                if code and code not in countries:
                    countries.append(code)
            enrichment["countries"] = countries
            tally.entities.update(entities.counts(found))
        tally.figures.update(f["kind"] for f in enrichment["figures"])
        tally.articles += 1
        code = w.language.code if w.language else None
        enrichment["versions"] = self._article_versions(code if w.mentions is not None else None, code)
        article = dict(w.article)
        article["enrichment"] = enrichment
        article["pipeline"] = {**(article.get("pipeline") or {}), "enrich": ENRICH_VERSION}
        return Enriched(article)

    # -- versions -------------------------------------------------------------------------------------------
    def _build_versions(self) -> dict[str, str]:
        spacy_version = f"spacy {version('spacy')}"
        models = self._ner.versions()
        aliases = files("streams").joinpath("data", places.ALIASES_FILE).read_bytes()
        digest = hashlib.sha256(aliases).hexdigest()[:12]
        out = {
            "enrich": ENRICH_VERSION,
            language.NAME: f"{language.VERSION} ({self._language.uses()})",
            entities.NAME: f"{entities.VERSION} ({spacy_version}; "
            + "; ".join(f"{lang}: {models[lang]}" for lang in sorted(models))
            + ")",
            places.NAME: f"{places.VERSION} ({Gazetteer.uses()} sha256:{digest})",
            figures.NAME: figures.VERSION,
            keywords.NAME: f"{keywords.VERSION} ({spacy_version} stop words)",
            summary.NAME: summary.VERSION,
            reading.NAME: reading.VERSION,
        }
        self._spacy_version = spacy_version
        self._models = models
        return out

    def _article_versions(self, ner_lang: str | None, detected: str | None) -> dict[str, str]:
        versions = dict(self._versions)
        if ner_lang is not None:
            versions[entities.NAME] = f"{entities.VERSION} ({self._spacy_version}, {self._models[ner_lang]})"
        else:
            versions[entities.NAME] = f"{entities.VERSION} (no model for {detected or 'an unknown language'})"
        return versions


def _internal_error(exc: BaseException, article: Any) -> Rejected:
    article_id = article.get("article_id") if isinstance(article, dict) else None
    message = f"enrich raised {type(exc).__name__}: {exc}"
    if len(message) > _MESSAGE_CHARS:
        message = message[: _MESSAGE_CHARS - 1] + "…"
    return Rejected(
        "internal_error", message, {"stage": "enrich", "exception": type(exc).__name__, "article_id": article_id}
    )
