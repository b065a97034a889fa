"""spaCy named-entity recognition for the entities enricher: one pipeline per language, run in batches.

Rule: a language's pipeline is the spaCy package configured for it (STREAMS_ENRICH_MODELS), loaded once with every
component but `ner` left out: in en_core_web_sm the recogniser has its own embedding layer, so the shared `tok2vec`
(which only tagger and parser listen to) is dropped too when nothing listens to it (same entities, ~1.8x faster,
BENCHMARKS.md). Texts go through `nlp.pipe` in batches; the answer per text is a tuple of plain
(label, start_char, end_char) mentions, which crosses a process boundary cheaply. For example
"Kyiv said on Monday" -> (("GPE", 0, 4), ("DATE", 10, 19)).

`NerPool` runs the same in worker processes (spawned, so a parent's event loop and threads are not forked), each
loading the models once; the caller gets the mentions in input order whatever process computed them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from typing import Any

Mention = tuple[str, int, int]  # (spaCy label, start character, end character) in the text given
# Components of spaCy's trained pipelines that entity recognition never needs.
_UNUSED = (
    "tagger",
    "parser",
    "attribute_ruler",
    "lemmatizer",
    "trainable_lemmatizer",
    "senter",
    "morphologizer",
    "textcat",
    "textcat_multilabel",
    "entity_linker",
    "spancat",
    "span_finder",
)


class ModelUnavailable(RuntimeError):
    """A configured spaCy package is not installed or is not a pipeline with `ner`."""


def load_pipeline(package: str) -> Any:
    """The spaCy pipeline of `package` with only what `ner` needs."""
    import spacy

    try:
        nlp = spacy.load(package, exclude=list(_UNUSED))
    except OSError as exc:
        raise ModelUnavailable(
            f"spaCy model package {package!r} is not installed (see README: enrich models): {exc}"
        ) from exc
    if "ner" not in nlp.pipe_names:
        raise ModelUnavailable(f"spaCy model package {package!r} has no ner component")
    shared: Any = nlp.get_pipe("tok2vec") if "tok2vec" in nlp.pipe_names else None
    if shared is not None and not shared.listening_components:
        nlp.remove_pipe("tok2vec")
    for name in nlp.pipe_names:
        if name not in ("ner", "tok2vec", "transformer"):
            nlp.disable_pipe(name)
    return nlp


def model_version(package: str, nlp: Any | None = None) -> str:
    """ "<package> <version>", from the installed distribution, else from the pipeline's meta."""
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        meta = getattr(nlp, "meta", {}) or {}
        return f"{package} {meta.get('version', 'unknown')}"


class NerModels:
    """The configured pipelines, loaded once, in this process."""

    def __init__(self, models: Mapping[str, str], batch_size: int) -> None:
        self.packages = dict(models)
        self.batch_size = batch_size
        self.pipelines = {lang: load_pipeline(package) for lang, package in self.packages.items()}

    def versions(self) -> dict[str, str]:
        return {lang: model_version(pkg, self.pipelines.get(lang)) for lang, pkg in self.packages.items()}

    def run(self, lang: str, texts: Sequence[str]) -> list[tuple[Mention, ...]]:
        nlp = self.pipelines[lang]
        return [
            tuple((ent.label_, ent.start_char, ent.end_char) for ent in doc.ents)
            for doc in nlp.pipe(texts, batch_size=self.batch_size)
        ]

    def run_jobs(self, jobs: Iterable[tuple[str, Sequence[str]]]) -> list[list[tuple[Mention, ...]]]:
        return [self.run(lang, texts) for lang, texts in jobs]


# -- the pool -----------------------------------------------------------------------------------------------
_WORKER_MODELS: NerModels | None = None  # one per worker process, set by _init_worker


def _init_worker(models: dict[str, str], batch_size: int) -> None:
    global _WORKER_MODELS
    # One BLAS/OpenMP thread per process: the processes already use the cores.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    _WORKER_MODELS = NerModels(models, batch_size)


def _worker_run(lang: str, texts: list[str]) -> list[tuple[Mention, ...]]:
    assert _WORKER_MODELS is not None, "NER worker used before its initializer ran"
    return _WORKER_MODELS.run(lang, texts)


def _worker_ready() -> bool:
    return _WORKER_MODELS is not None


class NerPool:
    """`processes` worker processes, each with every configured pipeline; a batch is split across them."""

    def __init__(self, models: Mapping[str, str], batch_size: int, processes: int) -> None:
        self.processes = processes
        self._executor = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(dict(models), batch_size),
        )
        # Start every worker now (and load its models), so the first batch does not pay for it.
        for f in [self._executor.submit(_worker_ready) for _ in range(processes)]:
            f.result()

    def _submit(self, lang: str, texts: Sequence[str]) -> list[tuple[int, Future[list[tuple[Mention, ...]]]]]:
        """Contiguous chunks of `texts`, one per process: (offset, future)."""
        n = len(texts)
        size = max(1, -(-n // self.processes))
        return [(i, self._executor.submit(_worker_run, lang, list(texts[i : i + size]))) for i in range(0, n, size)]

    def run(self, lang: str, texts: Sequence[str]) -> list[tuple[Mention, ...]]:
        out: list[tuple[Mention, ...]] = []
        for _, future in self._submit(lang, texts):
            out.extend(future.result())
        return out

    async def arun(self, lang: str, texts: Sequence[str]) -> list[tuple[Mention, ...]]:
        out: list[tuple[Mention, ...]] = []
        chunks = self._submit(lang, texts)
        for result in await asyncio.gather(*(asyncio.wrap_future(f) for _, f in chunks)):
            out.extend(result)
        return out

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
