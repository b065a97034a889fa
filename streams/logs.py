"""Structured logging: one JSON object per line (or plain text), level from STREAMS_LOG_LEVEL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

_STD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}  # Formatter.format adds the last two


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STD and not k.startswith("_"):
                doc[k] = v
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    """One line per record; an event's fields follow its name as key=value, so text logs say as much as JSON."""

    def __init__(self) -> None:
        super().__init__("[%(asctime)s] %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STD and not k.startswith("_") and k != "event"}
        if not fields:
            return line
        extra = " ".join(f"{k}={orjson.dumps(v, default=str).decode()}" for k, v in fields.items())
        head, sep, tail = line.partition("\n")  # a traceback stays below the first line
        return f"{head} {extra}{sep}{tail}"


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    formatter = {"()": JsonFormatter} if fmt == "json" else {"()": TextFormatter}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        # Faust and aiokafka are chatty at INFO; our own events are what operators read.
        "loggers": {
            "aiokafka": {"level": "WARNING"},
            "faust": {"level": "WARNING"},
            "mode": {"level": "WARNING"},
            "streams": {"level": level.upper()},
        },
    }


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one notable event (start, assignment, recovery done, rejection summary) with its fields."""
    logger.log(level, name, extra={"event": name, **fields})
