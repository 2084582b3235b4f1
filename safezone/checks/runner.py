"""Run every check on the frozen files of one export request: the check record, the exact
bytes to release and the reviewers' previews, all made once, at check time."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .content import archive_problem, notebook_findings
from .differencing import differencing_findings, index_of, table_index
from .encoded import table_encoded_findings
from .evidence import TableRoles, evidence_findings
from .filetypes import ARCHIVES, EXECUTABLE, admissible, extension, extension_matches, sniff
from .findings import Finding, RuleBook, hits, load_rules, worst
from .images import Sanitised, jpeg_findings, png_findings, sanitise
from .pdf import PdfText, extract, pdf_findings
from .shape import DatasetShape, record_level_findings
from .sidecars import EVIDENCE_SUFFIX, is_evidence
from .tables import column_roles, frequency_findings, identifier_findings, read_tables
from .text import text_findings
from .texttables import tables_in_text

__all__ = ["CheckContext", "CheckOutcome", "DatasetShape", "FileInput", "admissible",
           "check_file", "check_request", "is_evidence", "table_index"]

RECORD_SCHEMA = "safezone.check-record/1"
TABLE_KINDS = {"csv", "tsv", "parquet", "xlsx"}
IMAGE_KINDS = {"png", "jpeg"}


@dataclass(frozen=True)
class FileInput:
    path: str
    data: bytes
    sha256: str


@dataclass(frozen=True)
class CheckContext:
    """What the checks know of the project: its datasets and earlier releases."""

    datasets: tuple[DatasetShape, ...] = ()
    released: tuple[dict, ...] = ()  # indexes of earlier released tables (table_index)


@dataclass
class CheckOutcome:
    record: dict                     # schema policies/disclosure/check-record.schema.json
    release_bytes: dict[str, bytes]  # path -> the bytes to release (never evidence)
    previews: dict[str, dict] = field(default_factory=dict)


@dataclass
class FileResult:
    """What checking one file produced, besides its findings."""

    kind: str
    findings: list[Finding]
    sanitised: Sanitised | None = None
    pdf: PdfText | None = None
    tables: list[TableRoles] = field(default_factory=list)


def check_file(item: FileInput, rules: RuleBook, evidence: dict | None = None,
               context: CheckContext | None = None, memo: dict | None = None) -> FileResult:
    """Kind, findings and by-products (sanitised image, PDF text, tables) of one file.
    ``evidence``: the parsed sidecar of this file, None when there is none; ``memo``:
    earlier releases regrouped so far in this request (differencing)."""
    name, data = item.path, item.data
    kind = sniff(name, data)
    result = FileResult(kind, [])
    if len(data) > rules.files["max_file_bytes"]:
        result.findings.append(rules.finding("F003", name, limit=rules.files["max_file_bytes"]))
        return result
    if kind in EXECUTABLE:
        result.findings.append(rules.finding("F005", name, kind=kind))
        return result
    if kind in ARCHIVES or kind == "zip":
        why = archive_problem(data, rules.archives) if kind == "zip" else None
        result.findings.append(rules.finding("F004", name, why=why or f"{kind} archives are "
                                             "not accepted: export the files themselves"))
        return result
    if kind == "xlsx" and (why := archive_problem(data, rules.archives)):
        result.findings.append(rules.finding("F004", name, why=why))
        return result
    if not rules.exportable(kind):
        result.findings.append(rules.finding("F001", name, kind=kind))
        return result
    if not extension_matches(name, kind):
        result.findings.append(rules.finding("F002", name, kind=kind, ext=extension(name)))
    try:
        _content(item, result, rules, evidence, context or CheckContext(),
                 {} if memo is None else memo)
    except Exception as exc:  # unreadable content is itself a finding, never a crash
        result.findings.append(rules.finding("F010", name, kind=kind, why=str(exc)[:200]))
    return result


def _content(item: FileInput, result: FileResult, rules: RuleBook, evidence: dict | None,
             context: CheckContext, memo: dict) -> None:
    name, data, kind, out = item.path, item.data, result.kind, result.findings
    if kind in TABLE_KINDS:
        tables, findings = read_tables(name, kind, data, rules)
        out.extend(findings)
        _tables(name, tables, result, rules, evidence, context, memo)
    elif kind in IMAGE_KINDS:
        out.extend((png_findings if kind == "png" else jpeg_findings)(name, data, rules))
        result.sanitised = sanitise(name, data, rules)
        out.extend(result.sanitised.findings)
    elif kind == "ipynb":
        out.extend(notebook_findings(name, data, rules))
    elif kind in {"txt", "md", "json"}:
        text = data.decode("utf-8-sig")
        out.extend(text_findings(name, text, rules))
        if tables := tables_in_text(name, kind, text):  # a table under another name
            _tables(name, tables, result, rules, evidence, context, memo)
    elif kind == "pdf":
        result.pdf = extract(data, rules)
        out.extend(pdf_findings(name, result.pdf, rules))


def _tables(name: str, tables: list[tuple[str, pa.Table]], result: FileResult,
            rules: RuleBook, evidence: dict | None, context: CheckContext, memo: dict
            ) -> None:
    """Every table rule on the tables of one file, then its evidence sidecar."""
    largest = max((d.rows for d in context.datasets), default=None)
    for table_name, table in tables:
        roles = column_roles(table, rules, largest)
        result.tables.append((table_name, table, roles))
        result.findings.extend(frequency_findings(table_name, table, roles, rules))
        result.findings.extend(record_level_findings(table_name, table, roles,
                                                     context.datasets, rules))
        result.findings.extend(identifier_findings(table_name, table, rules))
        result.findings.extend(table_encoded_findings(table_name, table, rules))
        if context.released:
            result.findings.extend(differencing_findings(
                table_name, index_of(table_name, table, roles, rules), context.released,
                rules, memo))
    result.findings.extend(evidence_findings(name, result.tables, evidence, rules))


def _sidecars(files: list[FileInput]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for f in files:
        if is_evidence(f.path):
            try:
                doc = json.loads(f.data)
            except ValueError:
                doc = {"cells": "unreadable"}
            out[f.path.removesuffix(EVIDENCE_SUFFIX)] = doc if isinstance(doc, dict) else {}
    return out


def check_request(request_id: str, files: list[FileInput],
                  context: CheckContext | None = None,
                  rules: RuleBook | None = None) -> CheckOutcome:
    """The check record (schema ``safezone.check-record/1``), the bytes to release and the
    previews of a request."""
    from ..web.preview import make_preview, preview_gap

    rules = rules or load_rules()
    context = context or CheckContext()
    sidecars = _sidecars(files)
    entries: list[dict[str, Any]] = []
    totals: Counter[str] = Counter()
    release: dict[str, bytes] = {}
    previews: dict[str, dict] = {}
    request_findings: list[Finding] = []
    if sum(len(f.data) for f in files) > rules.files["max_request_bytes"]:
        request_findings.append(rules.finding("F003", "(request)",
                                              limit=rules.files["max_request_bytes"]))
    if len(files) > rules.files["max_files"]:
        request_findings.append(rules.finding("F014", "(request)", files=len(files),
                                              limit=rules.files["max_files"]))
    memo: dict = {}
    for item in files:
        result = check_file(item, rules, sidecars.get(item.path), context, memo)
        released = _release_bytes(item, result)
        if released is not None:
            release[item.path] = released
        previews[item.path] = make_preview(item.path, item.data, result, rules)
        unseen = preview_gap(previews[item.path])
        if unseen and not is_evidence(item.path):  # what leaves must be what was seen
            result.findings.append(rules.finding("P001", item.path, what=unseen))
        totals.update(_weighted(result.findings))
        entries.append({
            "path": item.path, "sha256": item.sha256, "size": len(item.data),
            "kind": result.kind, "evidence": is_evidence(item.path),
            "release_sha256": hashlib.sha256(released).hexdigest() if released is not None
            else None,
            "findings": [f.as_dict() for f in result.findings],
            "worst": worst(result.findings)})
    totals.update(_weighted(request_findings))
    record = {
        "schema": RECORD_SCHEMA,
        "request": request_id,
        "files": entries,
        "request_findings": [f.as_dict() for f in request_findings],
        "summary": {"fail": totals["fail"], "warn": totals["warn"], "info": totals["info"]},
        "flagged": bool(totals["fail"] or totals["warn"]),
    }
    return CheckOutcome(record, release, previews)


def _weighted(findings: list[Finding]) -> Counter[str]:
    """Hits by severity, tallies counted at their true number (``findings.hits``)."""
    out: Counter[str] = Counter()
    for finding in findings:
        out[finding.severity] += hits(finding)
    return out


def _release_bytes(item: FileInput, result: FileResult) -> bytes | None:
    """Images: their sanitised re-encoding (None when there is none: not releasable);
    notebooks: rebuilt from exactly what the preview shows (sources and text outputs; no
    metadata, attachments or other output types); evidence: never; everything else: the
    frozen bytes."""
    if is_evidence(item.path):
        return None
    if result.kind in IMAGE_KINDS:
        return result.sanitised.png if result.sanitised else None
    if result.kind == "ipynb":
        from ..web.preview import normalised_notebook

        try:
            return normalised_notebook(item.data)
        except ValueError:
            return None
    return item.data

