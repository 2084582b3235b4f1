"""Record-level data found by shape, whatever its size: a row count like an attached
dataset's, the dataset's column names, a key column with one value per row next to
repeating labels, labels that repeat (not a table of cells), pseudonym-like tokens."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from .findings import Finding, RuleBook
from .tables import Roles, is_numeric

HEX_TOKEN = re.compile(r"[0-9a-fA-F]+")
B64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


@dataclass(frozen=True)
class DatasetShape:
    """A de-identified dataset attached to the project."""

    name: str
    rows: int
    columns: tuple[str, ...]


def _distinct(column: pa.ChunkedArray) -> int:
    return pc.count_distinct(column, mode="all").as_py()


def _dataset_tells(table: pa.Table, roles: Roles, datasets: Iterable[DatasetShape],
                   rules: RuleBook) -> Iterator[str]:
    cfg = rules.shape
    rows, names = table.num_rows, table.column_names
    for ds in datasets:
        if ds.rows and abs(rows - ds.rows) <= cfg["dataset_rows_tolerance"] * ds.rows:
            yield f"{rows} rows, like dataset {ds.name} ({ds.rows} rows)"
        known = {c.strip().casefold() for c in ds.columns}
        matched = [c for c in names if c.strip().casefold() in known]
        # a table's labels are naturally named like the dataset's columns: it takes a
        # non-label column named like one too (an attribute, not a derived figure)
        if len(matched) >= max(cfg["dataset_min_columns"], cfg["dataset_column_share"]
                               * len(names)) and any(c not in roles.keys for c in matched):
            yield f"{len(matched)} of {len(names)} columns named as in dataset {ds.name}"


def _key_tells(table: pa.Table, roles: Roles, rules: RuleBook) -> Iterator[str]:
    rows = table.num_rows
    distinct = {c: _distinct(table[c]) for c in roles.keys}
    repeating = [c for c in roles.keys if distinct[c] < rows]
    for field in table.schema:
        column = table[field.name]
        if column.null_count:
            continue
        if is_numeric(field.type):  # a row number: consecutive and one value per row
            low, high = pc.min(column).as_py(), pc.max(column).as_py()
            if high - low + 1 == rows and _distinct(column) == rows:
                yield f"column {field.name!r} numbers the rows (one value per row)"
        elif repeating and distinct.get(field.name) == rows:
            yield f"key column {field.name!r} has one value per row"
    if roles.keys and roles.duplicate_share >= rules.shape["duplicate_key_share"]:
        yield (f"{roles.duplicate_share:.0%} of rows repeat the labels of another row "
               f"({', '.join(roles.keys[:4])}): records, not cells")


def _pseudonym_tells(table: pa.Table, rules: RuleBook) -> Iterator[str]:
    cfg = rules.shape
    for field in table.schema:
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        values = pc.unique(table[field.name].drop_null())[:2000].to_pylist()
        values = [v for v in values if v]
        if len(values) < cfg["pseudonym_min_rows"]:
            continue
        tokens = [v for v in values if len(v) >= cfg["pseudonym_min_length"] and (
            HEX_TOKEN.fullmatch(v) or (B64_TOKEN.fullmatch(v) and _mixed(v)))]
        if not tokens:
            continue
        _, same = Counter(map(len, tokens)).most_common(1)[0]
        if same >= cfg["pseudonym_share"] * len(values):
            yield f"column {field.name!r} holds pseudonym-like tokens"


def _mixed(value: str) -> bool:
    return any(c.isupper() for c in value) and any(c.islower() for c in value) \
        and any(c.isdigit() for c in value)


def record_level_findings(name: str, table: pa.Table, roles: Roles,
                          datasets: Iterable[DatasetShape], rules: RuleBook
                          ) -> Iterator[Finding]:
    """T004 (more rows than ``tables.max_rows``) and T012 (record-level by shape)."""
    if table.num_rows > rules.tables["max_rows"]:
        yield rules.finding("T004", name, rows=table.num_rows)
    tells = list(_pseudonym_tells(table, rules))
    if table.num_rows >= rules.shape["min_rows"]:
        tells += [*_dataset_tells(table, roles, datasets, rules),
                  *_key_tells(table, roles, rules)]
    if tells:
        yield rules.finding("T012", name, why="; ".join(tells[:3]))
