"""Dominance rules (n-k, p%) on magnitude cells, from the in-zone evidence sidecar, and the
sidecar checked against the table it describes: never trusted as written.

Per cell: the row and column exist; the total equals the table's value (or, for a mean,
total / count does); the count equals the row's count cell; the top contributors are no
more than the count and sum to no more than the total. Magnitude cells without consistent
evidence warn (T008, T013), so the request needs the flagged approval count.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from numbers import Real
from typing import Any

import pyarrow as pa

from .findings import MAX_CELL_FINDINGS, Finding, RuleBook
from .tables import Roles

TableRoles = tuple[str, pa.Table, Roles]


def _close(a: float, b: float, rules: RuleBook) -> bool:
    tol = rules.evidence["tolerance"]
    return math.isclose(a, b, rel_tol=tol["relative"], abs_tol=tol["absolute"])


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _pick(tables: list[TableRoles], cell: dict, sidecar: dict) -> TableRoles | None:
    """The table a cell describes: named by the cell or the sidecar (a file name means its
    first table), else the file's first table."""
    wanted = cell.get("table") or sidecar.get("table")
    for entry in tables:
        if wanted in (None, entry[0]) or entry[0].startswith(f"{wanted}!"):
            return entry
    return None


def _inconsistency(cell: dict, entry: TableRoles, rules: RuleBook) -> str | None:
    """Why a sidecar cell contradicts the table, or None."""
    _, table, roles = entry
    row, column = cell.get("row"), cell.get("column")
    count, total, top = cell.get("count"), cell.get("total"), cell.get("top")
    if not (isinstance(row, int) and 1 <= row <= table.num_rows) or \
            column not in table.column_names:
        return f"no cell at row {row!r}, column {column!r}"
    if not _number(count) or count < 0 or not _number(total) or not isinstance(top, list) \
            or not all(_number(x) for x in top):
        return f"row {row}: count, total and top must be numbers"
    shown = table[column][row - 1].as_py()
    if _number(shown):
        expected = total / count if cell.get("statistic") == "mean" and count else total
        if not _close(float(shown), float(expected), rules):
            return f"row {row}: total {total} but the table shows {shown}"
    others = [c for c in roles.counts if c != column]
    wanted = [cell["count_column"]] if cell.get("count_column") in others else others
    if wanted and not any(table[c][row - 1].as_py() == count for c in wanted):
        return f"row {row}: count {count} is not the table's count"
    if len(top) > count:
        return f"row {row}: {len(top)} top contributors but a count of {count}"
    if sum(x for x in top if x > 0) > total + rules.evidence["tolerance"]["absolute"]:
        return f"row {row}: top contributors sum to more than the total"
    return None


def _dominance(name: str, cell: dict, rules: RuleBook) -> Iterator[Finding]:
    n, k = rules.tables["dominance"]["n"], rules.tables["dominance"]["k"]
    p = rules.tables["p_percent"]
    row, column = cell["row"], cell["column"]
    total, top = cell["total"], sorted(cell["top"], reverse=True)
    if cell.get("count", 0) < rules.tables["min_count"]:
        yield rules.finding("T001", name, row=row, column=column, min=rules.tables["min_count"])
    if cell.get("negatives") or not top or total <= 0 or top[-1] < 0:
        yield rules.finding("T010", name, row=row, column=column)
        return
    share = sum(top[:n]) / total
    if share >= k:
        yield rules.finding("T006", name, row=row, column=column, n=n, share=share)
    second = top[1] if len(top) > 1 else 0
    if top[0] > 0 and (total - top[0] - second) / top[0] < p:
        yield rules.finding("T007", name, row=row, column=column, p=p)


def evidence_findings(name: str, tables: list[TableRoles], sidecar: dict | None,
                      rules: RuleBook) -> Iterator[Finding]:
    """Dominance from the sidecar's consistent cells; T013 for inconsistent ones; T008 for
    magnitude cells with no (consistent) evidence."""
    covered: set[tuple[str, int, str]] = set()
    cells = sidecar.get("cells") if isinstance(sidecar, dict) else None
    if sidecar is not None and not isinstance(cells, list):
        yield rules.finding("T013", name, why="no list of cells")
        cells = []
    reported = 0
    for cell in cells or []:
        entry = _pick(tables, cell, sidecar) if isinstance(cell, dict) else None
        why = "cell names no table of this file" if entry is None else \
            _inconsistency(cell, entry, rules)
        if why:
            reported += 1
            if reported <= MAX_CELL_FINDINGS:
                yield rules.finding("T013", name, why=why)
            continue
        covered.add((entry[0], cell["row"], cell["column"]))
        yield from _dominance(entry[0], cell, rules)
    if reported > MAX_CELL_FINDINGS:
        yield rules.tally("T013", name, reported - MAX_CELL_FINDINGS)
    for table_name, table, roles in tables:
        for column in roles.magnitudes:
            done = sum(1 for t, _, c in covered if t == table_name and c == column)
            missing = len(table) - table[column].null_count - done
            if missing > 0:
                yield rules.finding("T008", table_name, column=column,
                                    what=f"{missing} of {table.num_rows} cells")
