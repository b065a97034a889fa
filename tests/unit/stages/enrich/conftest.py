"""One Enricher for the enrich tests (the spaCy model and the gazetteer take seconds to load), production defaults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.settings import Settings
from streams.stages.enrich import EnrichConfig, Enricher
from streams.stages.enrich.places import Gazetteer


@pytest.fixture(scope="session")
def enricher() -> Iterator[Enricher]:
    e = Enricher(EnrichConfig.from_settings(Settings()))
    yield e
    e.close()


@pytest.fixture(scope="session")
def gazetteer() -> Gazetteer:
    return Gazetteer()
