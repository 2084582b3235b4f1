"""Check records in plain language: findings grouped per file and rule, with counts, each
rule's title, what it means and how to fix it (``policies/disclosure/help.yaml``), in one
language. Used by the request pages, the dry run's REST answer and so the notebook."""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..config import POLICIES_DIR
from .findings import SEVERITIES, RuleBook, hits, load_rules

LANGUAGES = ("ko", "en")
MAX_ROWS_LISTED = 20  # rows named per rule; the count says how many there are


@cache
def load_help(policies_dir: Path = POLICIES_DIR) -> dict[str, dict[str, dict[str, str]]]:
    raw = yaml.safe_load((policies_dir / "disclosure" / "help.yaml").read_text())
    return raw["rules"]


def _params(rules: RuleBook) -> dict[str, Any]:
    """The policy values help texts may name (never anything from a file)."""
    dominance = rules.tables["dominance"]
    return {"min_count": rules.tables["min_count"], "base": rules.tables["rounding_base"],
            "max_rows": rules.tables["max_rows"], "n": dominance["n"],
            "k": f"{dominance['k']:.0%}", "p": f"{rules.tables['p_percent']:.0%}",
            "max_file_mb": round(rules.files["max_file_bytes"] / 1e6, 1),
            "max_request_mb": round(rules.files["max_request_bytes"] / 1e6, 1),
            "max_files": rules.files["max_files"],
            "max_pixels": f"{rules.images.get('max_pixels', 0):,}",
            "preview_rows": rules.preview.get("max_rows", 0)}


def rule_help(rule: str, language: str, rules: RuleBook | None = None) -> dict[str, str]:
    """Title, meaning and fix of ``rule`` in ``language`` (English if unknown)."""
    language = language if language in LANGUAGES else "en"
    params = _params(rules or load_rules())
    texts = load_help().get(rule, {}).get(language)
    if not texts:
        return {"title": rule, "means": "", "fix": ""}
    return {key: texts[key].format(**params) for key in ("title", "means", "fix")}


def _groups(findings: list[dict[str, Any]], language: str, rules: RuleBook
            ) -> list[dict[str, Any]]:
    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for finding in findings:
        by_rule[finding["rule"]].append(finding)
    out = []
    for rule, found in by_rule.items():
        rows = sorted({f["row"] for f in found if isinstance(f.get("row"), int)})
        columns = sorted({f["column"] for f in found if f.get("column")})
        severity = min((f["severity"] for f in found), key=_rank)
        first = found[0]
        out.append({"rule": rule, "severity": severity, "count": sum(hits(f) for f in found),
                    "unexamined": sum(f.get("unexamined") or 0 for f in found),
                    "message": first.get(f"message_{language}") or first.get("message_en", ""),
                    "rows": rows[:MAX_ROWS_LISTED],
                    "more_rows": max(0, len(rows) - MAX_ROWS_LISTED),
                    "columns": columns, **rule_help(rule, language, rules)})
    return sorted(out, key=lambda g: (_rank(g["severity"]), g["rule"]))


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def explain(record: dict[str, Any] | None, language: str) -> dict[str, Any] | None:
    """``record`` (a check record, full or as the requester sees it) grouped per file and
    rule, in ``language`` only; None for no record."""
    if record is None:
        return None
    language = language if language in LANGUAGES else "en"
    rules = load_rules()
    files = [{"path": f.get("path"), "kind": f.get("kind"), "size": f.get("size"),
              "worst": f.get("worst", "pass"), "evidence": bool(f.get("evidence")),
              "rules": _groups(f.get("findings") or [], language, rules)}
             for f in record.get("files", [])]
    return {"summary": record.get("summary") or {}, "flagged": bool(record.get("flagged")),
            "files": files,
            "request": _groups(record.get("request_findings") or [], language, rules)}
