"""Loads the JSON Schema files in schemas/, checks them at start-up and validates events at the edges."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson


def _schema_dir() -> Path:
    """schemas/ of the checkout (editable install), else the copy a wheel installs under <prefix>/share."""
    in_repo = Path(__file__).resolve().parent.parent / "schemas"
    if in_repo.is_dir():
        return in_repo
    return Path(sys.prefix) / "share" / "article-streams" / "schemas"


SCHEMA_DIR = _schema_dir()


@dataclass(frozen=True)
class Violation:
    """The first schema violation of an event: where (JSON pointer), which keyword, and a sentence."""

    pointer: str
    keyword: str
    message: str


def schema_files() -> list[Path]:
    return sorted(SCHEMA_DIR.glob("*.json"))


@functools.cache
def load(name: str) -> dict[str, Any]:
    path = SCHEMA_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"schema {name} not found in {SCHEMA_DIR}")
    schema: dict[str, Any] = orjson.loads(path.read_bytes())
    jsonschema_rs.meta.validate(schema)  # raises on an invalid schema: fail at start-up, not per event
    return schema


@functools.cache
def validator(name: str) -> Any:
    return jsonschema_rs.Draft202012Validator(load(name), validate_formats=False)


def enum(name: str, *path: str) -> tuple[str, ...]:
    """The values a schema allows for a property: enum("rejection.v1.json", "reason") lists the reason codes,
    enum("rejection.v1.json", "details", "kind") the kinds of not_an_article. The file is the only list."""
    node: dict[str, Any] = load(name)
    for prop in path:
        node = node["properties"][prop]
    return tuple(node["enum"])


def _pointer(path: Any) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else ""


def first_violation(name: str, instance: Any) -> Violation | None:
    """None when `instance` is valid against schema `name`, else its first violation."""
    v = validator(name)
    if v.is_valid(instance):
        return None
    for err in v.iter_errors(instance):
        keyword = _keyword(err)
        return Violation(_pointer(err.instance_path), keyword, err.message)
    return None  # pragma: no cover - is_valid said invalid


def _keyword(err: Any) -> str:
    # jsonschema_rs reports the evaluation path, whose last segment is the keyword that failed.
    path = list(getattr(err, "schema_path", []) or [])
    for seg in reversed(path):
        if isinstance(seg, str):
            return seg
    return type(getattr(err, "kind", err)).__name__


def check_all() -> list[str]:
    """Loads every schema file; returns their names. Raises on the first invalid one."""
    names = [p.name for p in schema_files()]
    for n in names:
        validator(n)
    return names
