"""The de-identification engine: a recipe over streams of record batches, no storage.

Memory holds one batch plus the tables of quasi-identifier classes (re-aggregated every
few batches), never the whole input. ``deidentify`` makes two passes over the input:
the first counts classes (k) and sensitive values per class (l); the second transforms,
drops rows of classes smaller than k, scans every output cell for identifiers and
appends to a Parquet file. The caller decides where the bytes come from and go.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.progress import Progress

from ..checks.findings import load_rules
from ..checks.tables import identifier_findings
from ..errors import InvalidInput
from .recipe import Recipe
from .transforms import apply

# Memory is a few blocks: the reader runs single-threaded so it cannot race ahead of the
# consumer (threaded, it kept dozens of blocks in flight whenever the consumer was slow).
BATCH_BYTES = 1 << 20
# Per-batch class tables are merged once they hold more rows than the merged table (and at
# least this many): memory stays within a few times the class table, and the total merge
# work stays linear even when nearly every row is its own class.
COLLAPSE_MIN_ROWS = 1 << 20
GROUP_ROWS = 1 << 18  # rows buffered per group-by (quasi-identifier columns only)
WRITE_ROWS = 1 << 16  # rows per semi-join, scan and write in pass 2 (all columns, and the
# identifier scan holds them as Python strings)


class _Parts:
    """Partial per-class tables, merged geometrically by ``merge``."""

    def __init__(self) -> None:
        self.parts: list[pa.Table] = []
        self.merged_rows = self.pending_rows = 0

    def _append(self, part: pa.Table) -> None:
        self.parts.append(part)
        self.pending_rows += part.num_rows
        if self.pending_rows > max(COLLAPSE_MIN_ROWS, self.merged_rows):
            self.parts = [self.merge()]
            self.merged_rows, self.pending_rows = self.parts[0].num_rows, 0

    def merge(self) -> pa.Table:
        raise NotImplementedError


def csv_batches(source: str | Path | BinaryIO, block_size: int = BATCH_BYTES
                ) -> Iterator[pa.RecordBatch]:
    """Stream a CSV (path or binary file object) as record batches of ``block_size`` bytes."""
    try:
        yield from pacsv.open_csv(source if not isinstance(source, Path) else str(source),
                                  read_options=pacsv.ReadOptions(block_size=block_size,
                                                                 use_threads=False))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the input is not a readable CSV: {exc}") from None


def parquet_batches(path: Path, columns: list[str] | None = None,
                    as_codes: bool = False) -> Iterator[pa.RecordBatch]:
    """Stream a Parquet file as record batches; ``as_codes`` keeps string columns
    dictionary-encoded (what counting classes wants, not what transforms want)."""
    try:
        source = pq.ParquetFile(path)
        strings = [f.name for f in source.schema_arrow
                   if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        if as_codes:
            source = pq.ParquetFile(path, read_dictionary=strings)
        yield from source.iter_batches(batch_size=GROUP_ROWS, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"the input is not a readable Parquet file: {exc}") from None


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Plain values of a dictionary-encoded column (others unchanged)."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


class ClassCounts(_Parts):
    """Rows per combination of ``keys``, accumulated batch by batch in bounded memory."""

    def __init__(self, keys: list[str], count: bool = True) -> None:
        super().__init__()
        self.keys, self.count = keys, count
        self.unsorted: list[pa.Table] = []
        self.unsorted_rows = 0

    def add(self, table: pa.Table) -> None:
        """Rows are grouped GROUP_ROWS at a time: one large group-by beats many small ones."""
        self.unsorted.append(table.select(self.keys))
        self.unsorted_rows += table.num_rows
        if self.unsorted_rows >= GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.unsorted:
            # dictionary-encoded keys (Parquet) group on their codes, several times faster
            rows = pa.concat_tables(self.unsorted).unify_dictionaries()
            self.unsorted, self.unsorted_rows = [], 0
            grouped = self._group(rows, [([], "count_all")], "count_all")
            self._append(pa.table({name: _decoded(grouped[name])
                                   for name in grouped.column_names}))

    def merge(self) -> pa.Table:
        return self._merged()

    def _group(self, table: pa.Table, spec: list, counted: str) -> pa.Table:
        if not self.count:
            return table.group_by(self.keys).aggregate([])
        grouped = table.group_by(self.keys).aggregate(spec)
        return pa.table({**{k: grouped[k] for k in self.keys}, "rows": grouped[counted]})

    def table(self) -> pa.Table:
        """One row per combination (with ``rows`` when counting)."""
        self._flush()
        return self._merged()

    def _merged(self) -> pa.Table:
        if len(self.parts) == 1:
            return self.parts[0]
        if not self.parts:
            empty = {k: pa.array([], pa.string()) for k in self.keys}
            return pa.table({**empty, "rows": pa.array([], pa.int64())} if self.count
                            else empty)
        return self._group(pa.concat_tables(self.parts), [("rows", "sum")], "rows_sum")


class ClassMeans(_Parts):
    """Per-class sum and count of numeric columns (총계처리), accumulated in bounded memory.

    With no keys the class is the whole table."""

    def __init__(self, keys: list[str], columns: list[str]) -> None:
        super().__init__()
        self.keys, self.columns = keys, columns

    def _names(self) -> list[str]:
        return [f"{c}\0{what}" for c in self.columns for what in ("sum", "count")]

    def _reduce(self, table: pa.Table, raw: bool) -> pa.Table:
        """Sums and counts per class, from values (``raw``) or from earlier sums/counts."""
        spec = ([(c, what) for c in self.columns for what in ("sum", "count")] if raw
                else [(n, "sum") for n in self._names()])
        if self.keys:
            grouped = table.group_by(self.keys).aggregate(spec)
            return pa.table({**{k: grouped[k] for k in self.keys},
                             **{n: grouped[f"{c}_{w}"] for n, (c, w)
                                in zip(self._names(), spec, strict=True)}})
        return pa.table({n: [getattr(pc, w)(table[c]).as_py() or 0]
                         for n, (c, w) in zip(self._names(), spec, strict=True)})

    def add(self, table: pa.Table) -> None:
        self._append(self._reduce(table, raw=True))

    def merge(self) -> pa.Table:
        return self._reduce(pa.concat_tables(self.parts), raw=False)

    def means(self, digits: dict[str, int]) -> pa.Table:
        """Keys plus each column's class mean, rounded to the recipe's digits."""
        total = self.merge()
        means = {c: pc.round(pc.divide(pc.cast(total[f"{c}\0sum"], pa.float64()),
                                       total[f"{c}\0count"]), digits[c])
                 for c in self.columns}
        return pa.table({**{k: total[k] for k in self.keys}, **means})

    def replace(self, table: pa.Table, means: pa.Table) -> pa.Table:
        """``table`` with each aggregated value replaced by its class mean."""
        order = table.column_names
        if not self.keys:
            return pa.table({c: pa.repeat(means[c][0], table.num_rows) if c in self.columns
                             else table[c] for c in order})
        joined = table.drop_columns(self.columns).join(means, keys=self.keys,
                                                       join_type="left outer")
        return joined.select(order)


def transform(batch: pa.RecordBatch, recipe: Recipe, key: bytes) -> pa.Table:
    """One batch through the recipe; deleted columns are gone."""
    columns = {}
    for name in batch.schema.names:
        out = apply(name, batch.column(name), recipe.columns[name], key)
        if out is not None:
            columns[name] = out
    return pa.table(columns)


def check_columns(schema: pa.Schema, recipe: Recipe) -> None:
    unhandled = [c for c in schema.names if c not in recipe.columns]
    if unhandled:
        raise InvalidInput(f"column {', '.join(unhandled)} is not handled by the recipe: give "
                           "each input column a technique (처리 방법이 없는 열)")
    unknown = [c for c in recipe.columns if c not in schema.names]
    if unknown:
        raise InvalidInput(f"the recipe names column {', '.join(unknown)}, which the input "
                           "does not have")


def min_class_size(batches: Iterable[pa.RecordBatch], qis: list[str]) -> int:
    """k of a table: the size of its smallest class over ``qis`` (streamed)."""
    counts = ClassCounts(qis)
    for batch in batches:
        counts.add(pa.Table.from_batches([batch]))
    return pc.min(counts.table()["rows"]).as_py() or 0


@dataclass
class Result:
    """What a run found and did; the attestation's facts."""

    rows_in: int = 0
    rows_out: int = 0
    k_achieved: int | None = None
    l_achieved: int | None = None
    classes: int = 0
    columns_out: list[str] = field(default_factory=list)
    column_types: dict[str, str] = field(default_factory=dict)  # as written to Parquet
    before: dict[str, Counter] = field(default_factory=dict)  # generalised columns
    after: dict[str, Counter] = field(default_factory=dict)


def _value_counts(values) -> Counter:
    counted = pc.value_counts(values)
    return Counter({str(v["values"]): v["counts"] for v in counted.to_pylist()})


def _kept_classes(recipe: Recipe, counts: ClassCounts, pairs: list[ClassCounts],
                  result: Result) -> pa.Table:
    """Classes of at least k rows; sets k and l achieved, refuses l below the recipe's."""
    qis = counts.keys
    total = counts.table()
    kept = total.filter(pc.greater_equal(total["rows"], recipe.k))
    result.classes = kept.num_rows
    result.k_achieved = pc.min(kept["rows"]).as_py() if kept.num_rows else 0
    for pair in pairs:
        per_class = pair.table().group_by(qis).aggregate([([], "count_all")])
        per_kept = per_class.join(kept.select(qis), keys=qis, join_type="inner")
        diversity = pc.min(per_kept["count_all"]).as_py() if per_kept.num_rows else 0
        result.l_achieved = diversity if result.l_achieved is None else \
            min(result.l_achieved, diversity)
    if result.l_achieved is not None and result.l_achieved < recipe.l:
        raise InvalidInput(f"l-diversity {result.l_achieved} is below the recipe's "
                           f"l={recipe.l}: generalise the quasi-identifiers more (l-다양성 미달)")
    return kept.select(qis)


def _in_groups(batches: Iterable[pa.RecordBatch], recipe: Recipe, key: bytes
               ) -> Iterator[tuple[pa.Table, int]]:
    """Transformed batches, concatenated WRITE_ROWS rows at a time, with rows read."""
    group: list[pa.Table] = []
    rows = 0
    for batch in batches:
        check_columns(batch.schema, recipe)
        group.append(transform(batch, recipe, key))
        rows += batch.num_rows
        if rows >= WRITE_ROWS:
            yield pa.concat_tables(group), rows
            group, rows = [], 0
    if group:
        yield pa.concat_tables(group), rows


def deidentify(open_batches: Callable[[], Iterable[pa.RecordBatch]], recipe: Recipe,
               key: bytes, out_path: Path, progress: bool = False) -> Result:
    """Run ``recipe`` over the input (opened once per pass) into Parquet at ``out_path``."""
    qis, sensitive = recipe.with_role("quasi_identifier"), recipe.with_role("sensitive")
    pseudonyms = [c for c, s in recipe.columns.items() if s["technique"] == "pseudonymise"]
    generalised = [c for c, s in recipe.columns.items() if s["technique"] == "generalise"]
    result = Result(before={c: Counter() for c in generalised},
                    after={c: Counter() for c in generalised})
    counts = ClassCounts(qis)
    pairs = [ClassCounts([*qis, column], count=False) for column in sensitive]
    aggregated = [c for c, s in recipe.columns.items() if s["technique"] == "aggregate"]
    sums = ClassMeans(qis, aggregated)
    with Progress(disable=not progress) as bar:
        task = bar.add_task("pass 1/2: counting classes", total=None)
        for batch in open_batches():
            check_columns(batch.schema, recipe)
            table = transform(batch, recipe, key)
            for column in generalised:  # never raw values: the report sits beside the data
                result.before[column].update(_value_counts(table[column]))
            result.rows_in += table.num_rows
            if aggregated:
                sums.add(table)
            if qis:
                counts.add(table)
                for pair in pairs:
                    pair.add(table)
            bar.advance(task, batch.num_rows)
    if result.rows_in == 0:
        raise InvalidInput("the input has no rows")
    kept = _kept_classes(recipe, counts, pairs, result) if qis else None
    means = sums.means({c: recipe.columns[c].get("digits", 0) for c in aggregated}) \
        if aggregated else None
    del counts, pairs
    rules = load_rules()
    writer = None
    try:
        with Progress(disable=not progress) as bar:
            task = bar.add_task("pass 2/2: writing", total=result.rows_in)
            for table, read in _in_groups(open_batches(), recipe, key):
                if kept is not None:  # one hash table of the kept classes per group
                    table = table.join(kept, keys=qis, join_type="left semi")
                if means is not None:
                    table = sums.replace(table, means)
                # pseudonyms are HMAC digests by construction: scanning them only finds
                # chance digit runs
                found = list(identifier_findings("output", table.drop_columns(pseudonyms),
                                                 rules))
                if found:
                    names = sorted({f.column for f in found if f.column})
                    raise InvalidInput(f"column {', '.join(names)} still holds direct "
                                       f"identifiers ({found[0].message_en}); nothing was "
                                       "written (식별자 잔존)")
                if writer is None:
                    writer = pq.ParquetWriter(out_path, table.schema)
                    result.columns_out = table.schema.names
                    result.column_types = {f.name: str(f.type) for f in table.schema}
                writer.write_table(table)
                for column in generalised:
                    result.after[column].update(_value_counts(table[column]))
                result.rows_out += table.num_rows
                bar.advance(task, read)
    finally:
        if writer is not None:
            writer.close()
    if result.rows_out == 0:
        raise InvalidInput(f"every row was suppressed at k={recipe.k}: generalise more")
    return result
