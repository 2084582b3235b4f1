"""Run every check on the frozen files of one export request; produce the check record."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .content import (
    archive_problem,
    jpeg_findings,
    notebook_findings,
    png_findings,
    text_findings,
)
from .filetypes import ARCHIVES, EXECUTABLE, extension, extension_matches, sniff
from .findings import Finding, RuleBook, load_rules
from .tables import (
    differencing_findings,
    dominance_findings,
    frequency_findings,
    identifier_findings,
    read_tables,
)

RECORD_SCHEMA = "safezone.check-record/1"
EVIDENCE_SUFFIX = ".evidence.json"
TABLE_KINDS = {"csv", "tsv", "parquet", "xlsx"}


@dataclass(frozen=True)
class FileInput:
    path: str
    data: bytes
    sha256: str


def is_evidence(path: str) -> bool:
    """Evidence sidecars written by the notebook helper: checked, kept in the zone."""
    return path.endswith(EVIDENCE_SUFFIX)


def check_file(item: FileInput, rules: RuleBook, evidence: dict | None = None,
               released: list[tuple[str, pa.Table]] | None = None
               ) -> tuple[str, list[Finding]]:
    """(kind, findings) for one file."""
    name, data = item.path, item.data
    kind = sniff(name, data)
    findings: list[Finding] = []
    if len(data) > rules.files["max_file_bytes"]:
        return kind, [rules.finding("F003", name, limit=rules.files["max_file_bytes"])]
    if kind in EXECUTABLE:
        return kind, [rules.finding("F005", name, kind=kind)]
    if kind in ARCHIVES or kind == "zip":
        why = archive_problem(data, rules.archives) if kind == "zip" else None
        return kind, [rules.finding("F004", name, why=why or f"{kind} archives are not "
                                    "accepted: export the files themselves")]
    if kind == "xlsx":
        why = archive_problem(data, rules.archives)
        if why:
            return kind, [rules.finding("F004", name, why=why)]
    if kind not in rules.files["allowed"]:
        return kind, [rules.finding("F001", name, kind=kind)]
    if not extension_matches(name, kind):
        findings.append(rules.finding("F002", name, kind=kind, ext=extension(name)))
    try:
        findings.extend(_content_findings(name, kind, data, rules, evidence, released or []))
    except Exception as exc:  # unreadable content is itself a finding, never a crash
        findings.append(rules.finding("F010", name, kind=kind, why=str(exc)[:200]))
    return kind, findings


def _content_findings(name: str, kind: str, data: bytes, rules: RuleBook,
                      evidence: dict | None, released: list[tuple[str, pa.Table]]
                      ) -> Iterable[Finding]:
    if kind in TABLE_KINDS:
        tables, findings = read_tables(name, kind, data, rules)
        yield from findings
        for table_name, table in tables:
            yield from frequency_findings(table_name, table, rules)
            yield from identifier_findings(table_name, table, rules)
            yield from differencing_findings(table_name, table, released, rules)
        if evidence is None:
            yield rules.finding("T008", name)
        else:
            yield from dominance_findings(name, evidence, rules)
    elif kind == "png":
        yield from png_findings(name, data, rules)
    elif kind == "jpeg":
        yield from jpeg_findings(name, data, rules)
    elif kind == "ipynb":
        yield from notebook_findings(name, data, rules)
    elif kind in {"txt", "md", "json"}:
        yield from text_findings(name, data.decode("utf-8-sig"), rules)
    elif kind == "pdf":
        yield rules.finding("F009", name, kind="PDF")


def released_tables(files: Iterable[tuple[str, bytes]], rules: RuleBook
                    ) -> list[tuple[str, pa.Table]]:
    """Tables of earlier releases of the project, for the differencing rule."""
    out: list[tuple[str, pa.Table]] = []
    for name, data in files:
        kind = sniff(name, data)
        if kind in TABLE_KINDS:
            try:
                out.extend(read_tables(name, kind, data, rules)[0])
            except Exception:  # an unreadable earlier release cannot be compared
                continue
    return out


def check_request(request_id: str, files: list[FileInput],
                  released: list[tuple[str, pa.Table]] | None = None,
                  rules: RuleBook | None = None) -> dict[str, Any]:
    """The machine-readable check record of a request (schema ``safezone.check-record/1``)."""
    rules = rules or load_rules()
    evidence = {f.path.removesuffix(EVIDENCE_SUFFIX): f for f in files if is_evidence(f.path)}
    entries, totals = [], Counter()
    total_bytes = sum(len(f.data) for f in files)
    request_findings: list[Finding] = []
    if total_bytes > rules.files["max_request_bytes"]:
        request_findings.append(rules.finding("F003", "(request)",
                                              limit=rules.files["max_request_bytes"]))
    for item in files:
        sidecar = None
        if item.path in evidence:
            try:
                sidecar = json.loads(evidence[item.path].data)
            except ValueError:
                sidecar = {"cells": []}
        kind, findings = check_file(item, rules, sidecar, released)
        totals.update(f.severity for f in findings)
        entries.append({"path": item.path, "sha256": item.sha256, "size": len(item.data),
                        "kind": kind, "evidence": is_evidence(item.path),
                        "findings": [f.as_dict() for f in findings],
                        "worst": _worst(findings)})
    totals.update(f.severity for f in request_findings)
    return {
        "schema": RECORD_SCHEMA,
        "request": request_id,
        "files": entries,
        "request_findings": [f.as_dict() for f in request_findings],
        "summary": {"fail": totals["fail"], "warn": totals["warn"], "info": totals["info"]},
        "flagged": bool(totals["fail"] or totals["warn"]),
    }


def _worst(findings: list[Finding]) -> str:
    for severity in ("fail", "warn", "info"):
        if any(f.severity == severity for f in findings):
            return severity
    return "pass"
