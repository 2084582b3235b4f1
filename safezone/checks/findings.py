"""Findings and the rule book they are made from (``policies/disclosure/rules.yaml``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..config import POLICIES_DIR

SEVERITIES = ("fail", "warn", "info")


@dataclass(frozen=True)
class Finding:
    """One rule hit: where (file, row, column) and a message in English and Korean."""

    rule: str
    severity: str
    message_en: str
    message_ko: str
    file: str = ""
    row: int | None = None
    column: str | None = None
    excerpt: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class RuleBook:
    tables: dict[str, Any]
    files: dict[str, Any]
    archives: dict[str, Any]
    identifiers: dict[str, Any]
    messages: dict[str, dict[str, str]]

    def finding(self, rule: str, file: str = "", row: int | None = None,
                column: str | None = None, excerpt: str | None = None,
                **params: Any) -> Finding:
        spec = self.messages[rule]
        return Finding(rule, spec["severity"], spec["en"].format(**params),
                       spec["ko"].format(**params), file, row, column, excerpt)


@cache
def load_rules(policies_dir: Path = POLICIES_DIR) -> RuleBook:
    raw = yaml.safe_load((policies_dir / "disclosure" / "rules.yaml").read_text())
    for rule, spec in raw["messages"].items():
        if spec["severity"] not in SEVERITIES:
            raise ValueError(f"rule {rule}: unknown severity {spec['severity']!r}")
    return RuleBook(raw["tables"], raw["files"], raw["archives"], raw["identifiers"],
                    raw["messages"])


def mask(value: str) -> str:
    """Never copy a found identifier into the record: keep its shape only."""
    return "".join("#" if ch.isdigit() else ("x" if ch.isalpha() else ch) for ch in value)[:40]
