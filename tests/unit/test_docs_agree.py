"""The README says what the code does: every setting's default as Settings has it, and the exactly-once
corrections listed alike in README, streams/eos.py's docstring and `eos.CORRECTIONS`."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from streams import eos
from streams.settings import Settings, _text

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\| `(STREAMS_[A-Z0-9_]+)` \| (.*?) \|", re.MULTILINE)


def test_every_setting_in_the_readme_table_with_the_default_settings_has() -> None:
    documented = {name: cell.strip() for name, cell in ROW.findall(README)}
    defaults = Settings()
    wrong, missing = [], []
    for f in fields(Settings):
        name = "STREAMS_" + f.name.upper()
        if name not in documented:
            missing.append(name)
            continue
        cell, value = documented[name], _text(getattr(defaults, f.name))
        # "(empty)" for an empty default; a home directory's default is written with ~
        if value == "" and cell == "(empty)" or cell.startswith("`~") or f.name == "kafka_home":
            continue
        if cell != f"`{value}`" and not _same_number(cell.strip("`"), value):
            wrong.append(f"{name}: README {cell}, Settings `{value}`")
    assert missing == [], f"README's configuration table lacks {missing}"
    assert wrong == [], "\n".join(wrong)


def _same_number(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)  # "60" documents 60.0
    except ValueError:
        return False


def test_the_exactly_once_corrections_are_the_same_list_everywhere() -> None:
    doc = eos.__doc__ or ""
    in_doc = [t.rstrip(".").lower() for t in re.findall(r"^\d+\. \*\*(.+?)\*\*", doc, re.MULTILINE)]
    section = README.split("**What it corrects in faust-streaming")[1].split("\n\n**")[0]
    in_readme = re.findall(r"^\d+\. (.+?)(?::|;| \()", section, re.MULTILINE)
    assert len(in_doc) == len(in_readme) == len(eos.CORRECTIONS), (in_doc, in_readme, eos.CORRECTIONS)
    for number, (name, titled, listed) in enumerate(zip(eos.CORRECTIONS, in_doc, in_readme, strict=True), 1):
        assert name.startswith(titled), f"{number}: docstring says {titled!r}, CORRECTIONS {name!r}"
        assert name.startswith(listed) or listed.startswith(name), f"{number}: README {listed!r}, CORRECTIONS {name!r}"
