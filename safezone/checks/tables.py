"""Tables: reading (CSV, TSV, Parquet, XLSX), the role of each column found by content
(key, count, magnitude) and the frequency rules on counts.

A count column is any integer-valued, non-negative numeric column that is not a key: a
name can add duties (a magnitude name asks for dominance evidence) but never remove one.
Vectorised with pyarrow: a 1 M-row table is checked in about the time it takes to read.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .cells import identifier_findings
from .findings import MAX_CELL_FINDINGS, Finding, RuleBook

__all__ = ["Roles", "column_roles", "frequency_findings", "identifier_findings", "read_tables"]


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


@dataclass(frozen=True)
class Roles:
    """What each column of a table is, decided from its content."""

    keys: tuple[str, ...]        # labels of the cells (categorical, or numeric keys)
    counts: tuple[str, ...]      # integer-valued, non-negative, not a key
    magnitudes: tuple[str, ...]  # need dominance evidence (may also be counts)
    duplicate_share: float       # share of rows whose key repeats an earlier row's


def is_numeric(data_type: pa.DataType) -> bool:
    return pa.types.is_integer(data_type) or pa.types.is_floating(data_type) \
        or pa.types.is_decimal(data_type)


def _integer_valued(column: pa.ChunkedArray) -> bool:
    """Every value a whole number >= 0 (nulls aside)."""
    if column.null_count == len(column):
        return False
    if pc.min(column).as_py() < 0:
        return False
    if pa.types.is_integer(column.type):
        return True
    values = pc.cast(column, pa.float64())
    finite = pc.is_finite(values)
    return bool(pc.all(pc.and_kleene(finite, pc.equal(pc.floor(values), values))).as_py())


def _distinct_rows(table: pa.Table, keys: list[str]) -> int:
    if not keys:
        return min(table.num_rows, 1)
    return table.select(keys).group_by(keys).aggregate([]).num_rows


def _numeric_key(name: str, column: pa.ChunkedArray, rules: RuleBook) -> bool:
    """A numeric column that may label cells: key-like name and every value in range."""
    if column.null_count == len(column):
        return False
    low, high = pc.min(column).as_py(), pc.max(column).as_py()
    return any(re.search(spec["pattern"], name, re.IGNORECASE)
               and spec["min"] <= low and high <= spec["max"]
               for spec in rules.tables["numeric_keys"])


def column_roles(table: pa.Table, rules: RuleBook, max_count: int | None = None) -> Roles:
    """Keys, counts and magnitudes. ``max_count``: the largest count possible (rows of the
    biggest attached dataset); a column with larger values is a magnitude."""
    numeric = [f.name for f in table.schema if is_numeric(f.type)]
    keys = [f.name for f in table.schema
            if f.name not in numeric and _groupable(f.type)]
    rows = table.num_rows
    distinct = _distinct_rows(table, keys) if rows else 0
    if rows and distinct < rows:  # labels alone do not tell the cells apart: numeric keys?
        candidates = [c for c in numeric if _numeric_key(c, table[c], rules)]
        candidates.sort(key=lambda c: pc.count_distinct(table[c]).as_py())
        for column in candidates:
            keys.append(column)
            distinct = _distinct_rows(table, keys)
            if distinct == rows:
                break
    patterns = [re.compile(p, re.IGNORECASE) for p in rules.tables["magnitude_column_patterns"]]
    counts, magnitudes = [], []
    for column in (c for c in numeric if c not in keys):
        whole = _integer_valued(table[column])
        if whole:
            counts.append(column)
        largest = pc.max(table[column]).as_py() if table[column].null_count < rows else None
        if not whole or any(p.search(column) for p in patterns) or (
                max_count is not None and largest is not None and largest > max_count):
            magnitudes.append(column)
    share = 1 - distinct / rows if rows else 0.0
    return Roles(tuple(keys), tuple(counts), tuple(magnitudes), share)


def _groupable(data_type: pa.DataType) -> bool:
    return not (pa.types.is_nested(data_type) or pa.types.is_null(data_type))


def cells_where(mask_array: pa.Array | pa.ChunkedArray) -> tuple[list[int], int]:
    """Row indexes (0-based) where the mask is true, at most MAX_CELL_FINDINGS, and how
    many rows it is true on in all."""
    if isinstance(mask_array, pa.ChunkedArray):
        mask_array = mask_array.combine_chunks()
    where = pc.indices_nonzero(pc.fill_null(mask_array, False))
    return where[:MAX_CELL_FINDINGS].to_pylist(), len(where)


def _listed(rules: RuleBook, rule: str, name: str, column: str, mask_array: pa.Array,
            **params: object) -> Iterator[Finding]:
    """One finding per cell for the first MAX_CELL_FINDINGS, then a tally of the rest."""
    rows, total = cells_where(mask_array)
    for row in rows:
        yield rules.finding(rule, name, row=row + 1, column=column, **params)
    if total > len(rows):
        yield rules.tally(rule, name, total - len(rows), column)


def frequency_findings(name: str, table: pa.Table, roles: Roles, rules: RuleBook
                       ) -> Iterator[Finding]:
    """Small cells (T001), zeros (T002), rounding (T003) on every count column."""
    cfg = rules.tables
    if not roles.counts:
        yield rules.finding("T005", name)
        return
    threshold, base = cfg["min_count"], cfg["rounding_base"]
    for column in roles.counts:
        values = table[column]
        small = pc.and_(pc.greater(values, 0), pc.less(values, threshold))
        yield from _listed(rules, "T001", name, column, small, min=threshold)
        if cfg["zeros_are_disclosive"]:
            yield from _listed(rules, "T002", name, column, pc.equal(values, 0))
        if base:
            as_float = pc.cast(values, pa.float64())
            remainder = pc.subtract(as_float, pc.multiply(pc.floor(pc.divide(as_float, base)),
                                                          base))
            yield from _listed(rules, "T003", name, column, pc.not_equal(remainder, 0),
                               base=base)
