"""Findings and the rule book they are made from (``policies/disclosure/rules.yaml``)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..config import POLICIES_DIR

SEVERITIES = ("fail", "warn", "info")
MAX_CELL_FINDINGS = 50  # listed one by one per rule and column; the rest are tallied


@dataclass(frozen=True)
class Finding:
    """One rule hit: where (file, row, column) and a message in English and Korean.

    A *tally* (``more`` set, no row) is not one hit: it stands for ``more`` further hits
    of its rule in its table and column that are not listed one by one (the list is a
    bounded sample; the count is the true one). ``unexamined``: rows that matched a
    rule's pre-filter but were not examined one by one (how many hit is unknown).
    """

    rule: str
    severity: str
    message_en: str
    message_ko: str
    file: str = ""
    row: int | None = None
    column: str | None = None
    excerpt: str | None = None
    more: int | None = None
    unexamined: int | None = None

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

    def tally(self, rule: str, file: str, more: int, column: str | None = None,
              unexamined: bool = False) -> Finding:
        """``more`` hits of ``rule`` not listed one by one (``unexamined``: rows not
        looked at one by one, so not known to be hits); the message's details are left
        out."""
        spec = self.messages[rule]
        found = Finding(rule, spec["severity"], unfilled(spec["en"]), unfilled(spec["ko"]),
                        file, None, column)
        return replace(found, unexamined=more) if unexamined else replace(found, more=more)

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


def unfilled(template: str) -> str:
    """A rule's message with its details (``{…}``) left out."""
    return re.sub(r"\{[^}]*\}", "…", template)


def hits(finding: Finding | dict[str, Any]) -> int:
    """How many hits a finding stands for: one, or a tally's ``more`` (``unexamined``
    rows are not known hits: none)."""
    get = finding.get if isinstance(finding, dict) else (lambda k: getattr(finding, k))
    if get("more"):
        return int(get("more"))
    return 0 if get("unexamined") else 1


def mask(value: str) -> str:
    """Never copy a found identifier into the record: keep its shape only."""
    return "".join("#" if ch.isdigit() else ("x" if ch.isalpha() else ch) for ch in value)[:40]


def worst(findings: list[Finding]) -> str:
    """fail > warn > info > pass."""
    for severity in SEVERITIES:
        if any(f.severity == severity for f in findings):
            return severity
    return "pass"
