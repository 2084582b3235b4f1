"""Table rules: frequency threshold, zeros, rounding, record-level shape, dominance (with an
evidence sidecar), identifiers in cells, and differencing against earlier releases.

Vectorised with pyarrow: a 1 M-row table is checked in about the time it takes to read.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .findings import Finding, RuleBook, mask
from .identifiers import PREFILTER, scan_text

MAX_CELL_FINDINGS = 50  # per rule and file; the record counts the rest


def read_tables(name: str, kind: str, data: bytes, rules: RuleBook
                ) -> tuple[list[tuple[str, pa.Table]], list[Finding]]:
    """The tables inside a CSV, TSV, Parquet or XLSX file (one per sheet)."""
    if kind == "csv":
        return [(name, pacsv.read_csv(io.BytesIO(data)))], []
    if kind == "tsv":
        return [(name, pacsv.read_csv(io.BytesIO(data),
                                      parse_options=pacsv.ParseOptions(delimiter="\t")))], []
    if kind == "parquet":
        return [(name, pq.read_table(io.BytesIO(data)))], []
    if kind == "xlsx":
        return _read_xlsx(name, data, rules)
    raise ValueError(f"not a table kind: {kind}")


def _read_xlsx(name: str, data: bytes, rules: RuleBook
               ) -> tuple[list[tuple[str, pa.Table]], list[Finding]]:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    tables, findings = [], []
    for sheet in book.worksheets:
        if sheet.sheet_state != "visible":
            findings.append(rules.finding("T011", name, sheet=sheet.title))
        rows = list(sheet.iter_rows(values_only=True))
        if not rows:
            continue
        header = [str(h) if h is not None else f"col{i}" for i, h in enumerate(rows[0])]
        columns = {h: [r[i] if i < len(r) else None for r in rows[1:]]
                   for i, h in enumerate(header)}
        try:
            table = pa.table(columns)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            table = pa.table({h: [None if v is None else str(v) for v in col]
                              for h, col in columns.items()})
        tables.append((f"{name}!{sheet.title}", table))
    return tables, findings


def count_columns(table: pa.Table, rules: RuleBook) -> list[str]:
    patterns = [re.compile(p, re.IGNORECASE) for p in rules.tables["count_column_patterns"]]
    return [f.name for f in table.schema
            if (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
            and any(p.search(f.name) for p in patterns)]


def _cells(mask_array: pa.Array) -> pa.Array:
    return pc.indices_nonzero(pc.fill_null(mask_array, False))


def frequency_findings(name: str, table: pa.Table, rules: RuleBook) -> Iterator[Finding]:
    cfg = rules.tables
    if table.num_rows > cfg["max_rows"]:
        yield rules.finding("T004", name, rows=table.num_rows)
    columns = count_columns(table, rules)
    if not columns:
        yield rules.finding("T005", name)
        return
    threshold, base = cfg["min_count"], cfg["rounding_base"]
    for column in columns:
        values = table[column].combine_chunks()
        small = pc.and_(pc.greater(values, 0), pc.less(values, threshold))
        for row in _cells(small)[:MAX_CELL_FINDINGS].to_pylist():
            yield rules.finding("T001", name, row=row + 1, column=column, min=threshold)
        if cfg["zeros_are_disclosive"]:
            for row in _cells(pc.equal(values, 0))[:MAX_CELL_FINDINGS].to_pylist():
                yield rules.finding("T002", name, row=row + 1, column=column)
        if base:
            as_float = pc.cast(values, pa.float64())
            remainder = pc.subtract(as_float, pc.multiply(pc.floor(pc.divide(as_float, base)),
                                                          base))
            off = pc.not_equal(remainder, 0)
            for row in _cells(off)[:MAX_CELL_FINDINGS].to_pylist():
                yield rules.finding("T003", name, row=row + 1, column=column, base=base)


SHORTEST_IDENTIFIER = 6  # "a@b.kr"; every other pattern is longer
SMALLEST_NUMERIC_ID = 10**8  # numbers below this cannot hold a phone, card or RRN


def _candidate_rows(column: pa.Array) -> list[int]:
    """Rows whose text may hold an identifier: length and distinct-value shortcuts first,
    then the RE2 pre-filter (over distinct values when the column repeats itself)."""
    if len(column) == 0 or (pc.max(pc.utf8_length(column)).as_py() or 0) < SHORTEST_IDENTIFIER:
        return []
    distinct = pc.unique(column)
    if len(distinct) * 2 < len(column):
        suspicious = distinct.filter(pc.fill_null(
            pc.match_substring_regex(distinct, PREFILTER), False))
        if len(suspicious) == 0:
            return []
        return _cells(pc.is_in(column, value_set=suspicious)).to_pylist()
    return _cells(pc.match_substring_regex(column, PREFILTER)).to_pylist()


def identifier_findings(name: str, table: pa.Table, rules: RuleBook) -> Iterator[Finding]:
    """Scan text cells (and big integers, where RRNs and phones hide without their hyphens)."""
    for field in table.schema:
        column = table[field.name].combine_chunks()
        if pa.types.is_integer(field.type):
            largest = pc.max(pc.abs(column)).as_py() if len(column) else None
            if largest is None or largest < SMALLEST_NUMERIC_ID:
                continue
            column = pc.cast(column, pa.string())
        elif not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        for row in _candidate_rows(column)[:MAX_CELL_FINDINGS * 4]:
            for match in scan_text(column[row].as_py()):
                yield rules.finding(match.rule, name, row=row + 1, column=field.name,
                                    excerpt=mask(match.text))
    for field in table.schema:  # a header can be an identifier too
        for match in scan_text(field.name):
            yield rules.finding(match.rule, name, row=0, column=field.name,
                                excerpt=mask(match.text))


def dominance_findings(name: str, evidence: dict[str, Any] | None, rules: RuleBook
                       ) -> Iterator[Finding]:
    """n-k dominance and p% on magnitude cells, from the in-zone evidence sidecar."""
    if evidence is None:
        return
    n, k = rules.tables["dominance"]["n"], rules.tables["dominance"]["k"]
    p = rules.tables["p_percent"]
    for cell in evidence.get("cells", []):
        row, column = cell.get("row"), cell.get("column")
        total, top = cell.get("total"), sorted(cell.get("top") or [], reverse=True)
        if cell.get("negatives") or total is None or not top or total <= 0:
            yield rules.finding("T010", name, row=row, column=column)
            continue
        share = sum(top[:n]) / total
        if share >= k:
            yield rules.finding("T006", name, row=row, column=column, n=n, share=share)
        second = top[1] if len(top) > 1 else 0
        if top[0] > 0 and (total - top[0] - second) / top[0] < p:
            yield rules.finding("T007", name, row=row, column=column, p=p)


def differencing_findings(name: str, table: pa.Table, released: list[tuple[str, pa.Table]],
                          rules: RuleBook) -> Iterator[Finding]:
    """Subtracting an earlier released table from this one must not reveal a small cell."""
    threshold = rules.tables["min_count"]
    counts = set(count_columns(table, rules))
    keys = [c for c in table.column_names if c not in counts]
    if not counts or not keys:
        return
    for other_name, other in released:
        shared = [c for c in counts if c in other.column_names]
        if not shared or not set(keys) <= set(other.column_names):
            continue
        right = other.select(keys + shared).rename_columns(keys + [f"__old_{c}" for c in shared])
        joined = table.select(keys + shared).join(right, keys=keys, join_type="inner")
        for column in shared:
            diff = pc.abs(pc.subtract(joined[column], joined[f"__old_{column}"]))
            small = pc.and_(pc.greater(diff, 0), pc.less(diff, threshold))
            for row in _cells(small.combine_chunks())[:MAX_CELL_FINDINGS].to_pylist():
                yield rules.finding("T009", name, row=row + 1, column=column,
                                    other=other_name, diff=diff[row].as_py())
