"""`streams worker` with a defect planted in the figures enricher, for tests of the internal_error rule.

An article whose body holds `MARK` makes `figures.extract` raise, as a bug in a stage would: the runner must
send it to articles.rejected with reason internal_error and its payload, and the stage must go on. Run as
`python -m tests.integration.planted_defect worker ...` (WorkerProcess(..., module=MODULE)).
"""

from __future__ import annotations

from typing import Any

from streams.stages.enrich import figures

MODULE = "tests.integration.planted_defect"
MARK = "PLANTED-DEFECT-7f3a"  # no real article says this
_extract = figures.extract


class PlantedDefect(RuntimeError):
    """The planted bug's exception: its name is in the rejection's message."""


def _defective_extract(text: str) -> list[dict[str, Any]]:
    if MARK in text:
        raise PlantedDefect("a defect planted in the figures enricher by the test")
    return _extract(text)


if __name__ == "__main__":
    figures.extract = _defective_extract  # type: ignore[assignment]
    from streams.cli import main

    main()
