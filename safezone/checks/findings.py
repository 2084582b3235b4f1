"""Findings and the rule book they are made from (``policies/disclosure/rules.yaml``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..config import POLICIES_DIR

SEVERITIES = ("fail", "warn", "info")
MAX_CELL_FINDINGS = 50  # per rule and column; the summary counts only what is reported


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
    """The parsed rules.yaml: one attribute per section, messages by rule id."""

    tables: dict[str, Any]
    files: dict[str, Any]
    archives: dict[str, Any]
    identifiers: dict[str, Any]
    messages: dict[str, dict[str, str]]
    shape: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    encoded: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)
    pdf: dict[str, Any] = field(default_factory=dict)
    preview: dict[str, Any] = field(default_factory=dict)

    def finding(self, rule: str, file: str = "", row: int | None = None,
                column: str | None = None, excerpt: str | None = None,
                **params: Any) -> Finding:
        spec = self.messages[rule]
        return Finding(rule, spec["severity"], spec["en"].format(**params),
                       spec["ko"].format(**params), file, row, column, excerpt)

    def exportable(self, kind: str) -> bool:
        return kind in self.files["exportable"]


SECTIONS = ("tables", "files", "archives", "identifiers", "messages", "shape", "evidence",
            "encoded", "images", "pdf", "preview")


@cache
def load_rules(policies_dir: Path = POLICIES_DIR) -> RuleBook:
    raw = yaml.safe_load((policies_dir / "disclosure" / "rules.yaml").read_text())
    for rule, spec in raw["messages"].items():
        if spec["severity"] not in SEVERITIES:
            raise ValueError(f"rule {rule}: unknown severity {spec['severity']!r}")
    return RuleBook(**{name: raw[name] for name in SECTIONS})


def mask(value: str) -> str:
    """Never copy a found identifier into the record: keep its shape only."""
    return "".join("#" if ch.isdigit() else ("x" if ch.isalpha() else ch) for ch in value)[:40]


def worst(findings: list[Finding]) -> str:
    """fail > warn > info > pass."""
    for severity in SEVERITIES:
        if any(f.severity == severity for f in findings):
            return severity
    return "pass"
