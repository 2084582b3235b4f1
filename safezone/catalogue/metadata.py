"""A dataset's catalogue entry: its fields, their checks, and the data dictionary.

The entry is what a person writes (title, description, keywords, publisher, period, update
cycle, licence, what each column means); the facts of the run (rows, k and l achieved,
column types, the technique applied to each column) are read from the attestation.
Its shape is ``$defs/catalogue`` of ``policies/deid/recipe.schema.json``: the recipe's
``catalogue:`` block and ``PUT /api/datasets/{name}/catalogue`` share it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ..config import POLICIES_DIR
from ..deid.report import TECHNIQUE_KO
from ..errors import InvalidInput

# what publishing needs (licence.url is recommended, not required)
REQUIRED = ("title", "description", "keywords", "publisher", "temporal.start", "temporal.end",
            "accrual_periodicity", "licence.title")
EU_FREQUENCY = "http://publications.europa.eu/resource/authority/frequency/"
# update cycle: the EU frequency vocabulary's code, and data.go.kr's 업데이트 주기
FREQUENCIES: dict[str, tuple[str, str]] = {
    "continuous": ("UPDATE_CONT", "실시간"), "daily": ("DAILY", "일간"),
    "weekly": ("WEEKLY", "주간"), "monthly": ("MONTHLY", "월간"),
    "quarterly": ("QUARTERLY", "분기"), "semiannual": ("ANNUAL_2", "반기"),
    "annual": ("ANNUAL", "연간"), "irregular": ("IRREG", "수시"), "never": ("NEVER", "없음"),
}


@cache
def _schema(policies_dir: Path) -> dict[str, Any]:
    recipe = json.loads((policies_dir / "deid" / "recipe.schema.json").read_text())
    return {"$schema": recipe["$schema"], "$defs": recipe["$defs"],
            "$ref": "#/$defs/catalogue"}


def dates_as_text(entry: Any) -> Any:
    """YAML reads an unquoted ``2024-01-01`` as a date: the entry keeps dates as text."""
    if isinstance(entry, dict) and isinstance(entry.get("temporal"), dict):
        temporal = {k: v.isoformat() if isinstance(v, dt.date) else v
                    for k, v in entry["temporal"].items()}
        return {**entry, "temporal": temporal}
    return entry


def check(entry: Any, policies_dir: Path = POLICIES_DIR) -> dict[str, Any]:
    """The entry, validated (it may be incomplete: publishing asks for the rest)."""
    entry = dates_as_text(entry)
    try:
        jsonschema.validate(entry, _schema(policies_dir))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "entry"
        raise InvalidInput(f"catalogue {where}: {exc.message} (카탈로그 항목 오류)") from None
    check_period(entry.get("temporal", {}))
    return entry


def check_period(temporal: dict[str, str]) -> None:
    try:
        start, end = (dt.date.fromisoformat(temporal[k]) if k in temporal else None
                      for k in ("start", "end"))
    except ValueError as exc:
        raise InvalidInput(f"catalogue temporal: {exc} (날짜 형식 오류)") from None
    if start and end and start > end:
        raise InvalidInput("catalogue temporal: start is after end "
                           "(시작일이 종료일보다 늦습니다)")


def _present(entry: dict[str, Any], path: str) -> bool:
    value: Any = entry
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return bool(value)


def missing(entry: dict[str, Any] | None, attestation: dict[str, Any] | None) -> list[str]:
    """The fields publishing still needs: the entry's, then each output column's."""
    entry = entry or {}
    absent = [path for path in REQUIRED if not _present(entry, path)]
    described = entry.get("columns", {})
    for column in (attestation or {}).get("columns_out", []):
        if not _present(described.get(column, {}), "description"):
            absent.append(f"columns.{column}.description")
        if not column_type(entry, attestation or {}, column):
            absent.append(f"columns.{column}.type")
    return absent


def column_type(entry: dict[str, Any], attestation: dict[str, Any], column: str) -> str | None:
    """The type the run wrote, else the one the entry declares (older attestations)."""
    written = attestation.get("column_types", {}).get(column)
    return written or entry.get("columns", {}).get(column, {}).get("type")


def data_dictionary(entry: dict[str, Any] | None, attestation: dict[str, Any]
                    ) -> list[dict[str, Any]]:
    """Per output column: name, type, description, and the technique applied to it."""
    entry = entry or {}
    recipe = yaml.safe_load(attestation.get("recipe") or "{}") or {}
    techniques = recipe.get("columns", {})
    rows = []
    for column in attestation.get("columns_out", []):
        technique = techniques.get(column, {}).get("technique")
        rows.append({"name": column, "type": column_type(entry, attestation, column),
                     "description": entry.get("columns", {}).get(column, {}).get("description"),
                     "technique": technique, "technique_ko": TECHNIQUE_KO.get(technique or "")})
    return rows


def texts(value: str | dict[str, str] | None) -> dict[str | None, str]:
    """Text by language tag: ``{"ko": …, "en": …}``, or ``{None: …}`` for untagged text."""
    if value is None:
        return {}
    return {None: value} if isinstance(value, str) else dict(value)


def words(value: list[str] | dict[str, list[str]] | None) -> dict[str | None, list[str]]:
    if value is None:
        return {}
    return {None: value} if isinstance(value, list) else dict(value)


def digest(entry: dict[str, Any]) -> str:
    """SHA-256 of the entry's canonical JSON (what the audit trail keeps of it)."""
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
