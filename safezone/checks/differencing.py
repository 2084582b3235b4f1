"""Differencing against earlier releases, from compact indexes stored at release time.

An index holds, per released table, its key columns, its count columns and the cells
(key values -> counts). A new table is compared with every earlier table whose keys are
the same, a subset or a superset (the finer table summed up to the coarser keys); counts
are paired by name, or every pair when no name is shared (a renamed column).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from .findings import MAX_CELL_FINDINGS, Finding, RuleBook
from .tables import Roles, column_roles

Cells = dict[tuple[str, ...], list[float]]


def _label(value: Any) -> str:
    return "" if value is None else str(value)


def index_of(table_name: str, table: pa.Table, roles: Roles, rules: RuleBook) -> dict:
    """The compact, JSON-serialisable summary of one table."""
    limit = rules.tables.get("index_max_rows", 20000)
    part = table.slice(0, limit).select([*roles.keys, *roles.counts])
    columns = [part[c].to_pylist() for c in roles.keys]
    counts = [part[c].to_pylist() for c in roles.counts]
    cells = [[*(_label(col[i]) for col in columns), *(cnt[i] for cnt in counts)]
             for i in range(part.num_rows)]
    return {"table": table_name, "keys": list(roles.keys), "counts": list(roles.counts),
            "rows": table.num_rows, "cells": cells}


def table_index(path: str, data: bytes, rules: RuleBook | None = None) -> list[dict]:
    """Indexes of every table in a released file ([] for files that hold no table)."""
    from .filetypes import sniff
    from .findings import load_rules
    from .tables import read_tables

    rules = rules or load_rules()
    kind = sniff(path, data)
    if kind not in {"csv", "tsv", "parquet", "xlsx"}:
        return []
    try:
        tables, _ = read_tables(path, kind, data, rules)
    except Exception:  # an unreadable file has nothing to compare with
        return []
    return [index_of(name, table, column_roles(table, rules), rules)
            for name, table in tables]


def _grouped(keys: list[str], counts: list[str], cells: list[list], wanted: list[str]
             ) -> Cells:
    """Cells summed up to the ``wanted`` subset of ``keys`` (nulls count as zero)."""
    width = len(keys)
    if wanted == keys:  # nothing to sum unless a key repeats
        direct = {tuple(cell[:width]): cell[width:] for cell in cells}
        if len(direct) == len(cells):
            return direct
    picks = [keys.index(k) for k in wanted]
    out: Cells = defaultdict(lambda: [0.0] * len(counts))
    for cell in cells:
        sums = out[tuple(cell[i] for i in picks)]
        for j in range(len(counts)):
            value = cell[width + j]
            sums[j] += value if isinstance(value, int | float) else 0
    return out


def _pairs(mine: list[str], theirs: list[str]) -> list[tuple[int, int]]:
    shared = [(mine.index(c), theirs.index(c)) for c in mine if c in theirs]
    return shared or [(i, j) for i in range(len(mine)) for j in range(len(theirs))]


def differencing_findings(name: str, index: dict, released: Iterable[dict],
                          rules: RuleBook, memo: dict | None = None) -> Iterator[Finding]:
    """T009 where a count differs from an earlier release's by less than ``min_count``.
    ``memo``: earlier cells regrouped so far (share one across the tables of a request)."""
    memo = {} if memo is None else memo
    threshold = rules.tables["min_count"]
    keys, counts = index["keys"], index["counts"]
    if not counts:
        return
    rows = {tuple(cell[:len(keys)]): i for i, cell in enumerate(index["cells"])}
    mine_by: dict[tuple[str, ...], Cells] = {}
    reported = 0
    for other in released:
        theirs, other_counts = other.get("keys", []), other.get("counts", [])
        if not other_counts or not (set(theirs) <= set(keys) or set(keys) <= set(theirs)):
            continue
        common = [k for k in keys if k in theirs]
        if len(common) != min(len(keys), len(theirs)):
            continue
        signature = tuple(common)
        if signature not in mine_by:
            mine_by[signature] = _grouped(keys, counts, index["cells"], common)
        mine = mine_by[signature]
        remembered = (id(other), signature)
        if remembered not in memo:
            memo[remembered] = _grouped(theirs, other_counts, other.get("cells", []), common)
        old = memo[remembered]
        direct = len(common) == len(keys)
        for label, values in mine.items():
            before = old.get(label)
            if before is None:
                continue
            for i, j in _pairs(counts, other_counts):
                if not isinstance(values[i], int | float) or \
                        not isinstance(before[j], int | float):
                    continue
                diff = abs(values[i] - before[j])
                if 0 < diff < threshold:
                    reported += 1
                    if reported <= MAX_CELL_FINDINGS:  # the rest are counted, then tallied
                        yield rules.finding(
                            "T009", name, row=rows[label] + 1 if direct else None,
                            column=counts[i], other=other.get("table", "?"),
                            diff=int(diff) if diff == int(diff) else diff)
    if reported > MAX_CELL_FINDINGS:
        yield rules.tally("T009", name, reported - MAX_CELL_FINDINGS)
