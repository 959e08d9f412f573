"""The README documents every setting, as the settings class defines it, and points at nothing
outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, ROOT / "docs" / "design.md"]
PREFIX = Settings.model_config["env_prefix"]


def settings_rows() -> list[tuple[list[str], list[str]]]:
    """Each row of the README's settings table: (its variables, the backticked defaults)."""
    rows = []
    for line in README.read_text().splitlines():
        if not line.startswith(f"| `{PREFIX}"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        names = re.findall(rf"`({PREFIX}[A-Z0-9_]+)`", cells[0])
        rows.append((names, re.findall(r"`([^`]*)`", cells[1])))
    return rows


def documented() -> dict[str, str | None]:
    """Every variable of the table, with its default as written when the row gives one per
    variable (`60`, or `256` / `0`), else None."""
    found: dict[str, str | None] = {}
    for names, defaults in settings_rows():
        for i, name in enumerate(names):
            found[name] = defaults[i] if len(defaults) == len(names) else None
    return found


def test_every_setting_is_in_the_readme_table_and_nothing_else_is() -> None:
    fields = {f"{PREFIX}{name.upper()}" for name in Settings.model_fields}
    table = set(documented())
    assert sorted(fields - table) == [], "settings missing from the README's settings table"
    assert sorted(table - fields) == [], "README settings that the settings class lacks"


def plain_defaults() -> list[str]:
    """The settings whose README row gives one default per variable, and whose default is a
    plain value (the others, `cores − 1` or `metrics/` in the data dir, are in words)."""
    written = documented()
    return [
        name
        for name, field in sorted(Settings.model_fields.items())
        if written[f"{PREFIX}{name.upper()}"] is not None
        and field.default is not None
        and isinstance(field.default, bool | int | float | str)
    ]


def test_most_settings_give_their_default_plainly() -> None:
    # A guard on the guard below: a table reformatted so no default parses would pass it.
    assert len(plain_defaults()) >= len(Settings.model_fields) // 2


@pytest.mark.parametrize("name", plain_defaults())
def test_the_readme_gives_each_plain_default_as_the_settings_class_has_it(name: str) -> None:
    written = documented()[f"{PREFIX}{name.upper()}"]
    default = Settings.model_fields[name].default
    if isinstance(default, bool):
        assert written == str(default).lower()
    elif isinstance(default, int | float):
        assert float(written) == float(default)
    else:
        assert written == default


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_docs_refer_to_nothing_outside_the_repository(doc: Path) -> None:
    text = doc.read_text()
    # `.../cancel` is an elided path; `../x` leaves the folder.
    assert re.findall(r"(?<![.\w])\.\./", text) == []
    assert "/work/" not in text
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://|#|mailto:", target):
            continue
        assert (doc.parent / target.split("#")[0]).resolve().is_relative_to(ROOT), target
        assert (doc.parent / target.split("#")[0]).exists(), f"{doc.name} links to {target}"
