"""Thin Faust agents: each wires one stage's pure logic to its topics on the shared runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from streams.agents import dedup, enrich, normalize, takedown

if TYPE_CHECKING:
    from streams.app import Pipeline

# Stage name -> the function that registers its agents on a Pipeline, in flow order.
STAGES: dict[str, Callable[[Pipeline], None]] = {
    "normalize": normalize.register,
    "dedup": dedup.register,
    "enrich": enrich.register,
    "takedown": takedown.register,
}
