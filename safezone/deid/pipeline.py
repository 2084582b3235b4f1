"""The streaming de-identification run: raw object in, de-identified Parquet + attestation out.

Two passes over the raw object, batch by batch (memory holds one batch plus the table of
quasi-identifier classes): the first counts the classes (k) and the sensitive values per
class (l); the second transforms, drops rows of classes smaller than k, scans every output
cell for identifiers and writes Parquet to a local temp file. Only when all of that passed
is anything written to the ``deid-*`` bucket.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.progress import Progress

from .. import __version__
from ..checks.findings import load_rules
from ..checks.tables import identifier_findings
from ..errors import InvalidInput
from ..permissions import Identity, check_admin
from ..zone import Zone
from .recipe import Recipe
from .report import render
from .transforms import apply

OUTPUT_KEY = "data.parquet"
ATTESTATION_KEY = "_attestation.json"
REPORT_KEY = "_report.md"
BATCH_BYTES = 4 << 20


class _HashingReader(io.RawIOBase):
    """Reads a MinIO response while hashing exactly the bytes read."""

    def __init__(self, response) -> None:
        self.response, self.sha256, self.size = response, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.response.read(len(buffer))
        self.sha256.update(chunk)
        self.size += len(chunk)
        buffer[:len(chunk)] = chunk
        return len(chunk)


class _RawBatches:
    """One streamed read of the raw CSV, batch by batch; after iterating, ``sha256`` and
    ``size`` describe exactly the bytes read."""

    def __init__(self, zone: Zone, bucket: str, key: str) -> None:
        self.zone, self.bucket, self.key = zone, bucket, key
        self.sha256, self.size = "", 0

    def __iter__(self):
        response = self.zone.broker.s3.get_object(self.bucket, self.key)
        reader = _HashingReader(response)
        try:
            yield from pacsv.open_csv(io.BufferedReader(reader, BATCH_BYTES),
                                      read_options=pacsv.ReadOptions(block_size=BATCH_BYTES))
        finally:
            response.close()
            response.release_conn()
        self.sha256, self.size = reader.sha256.hexdigest(), reader.size


def _transform(batch: pa.RecordBatch, recipe: Recipe, key: bytes) -> pa.Table:
    columns = {}
    for name in batch.schema.names:
        out = apply(name, batch.column(name), recipe.columns[name], key)
        if out is not None:
            columns[name] = out
    return pa.table(columns)


def _check_columns(schema: pa.Schema, recipe: Recipe) -> None:
    unhandled = [c for c in schema.names if c not in recipe.columns]
    if unhandled:
        raise InvalidInput(f"column {', '.join(unhandled)} is not handled by the recipe: give "
                           "each input column a technique (처리 방법이 없는 열)")
    unknown = [c for c in recipe.columns if c not in schema.names]
    if unknown:
        raise InvalidInput(f"the recipe names column {', '.join(unknown)}, which the input "
                           "does not have")


def run(zone: Zone, actor: Identity, recipe: Recipe, input_bucket: str, input_key: str,
        dataset: str, key: bytes, progress: bool = False) -> dict[str, Any]:
    """De-identify ``input_bucket/input_key`` into dataset ``dataset``; returns the attestation."""
    check_admin(actor, "running a de-identification")
    if not input_bucket.startswith("raw-"):
        raise InvalidInput("the input must be in a raw-* bucket")
    if not dataset.startswith("deid-"):
        raise InvalidInput("the output dataset's name must start with 'deid-'")
    if len(key) < 16:
        raise InvalidInput("the pseudonymisation key must be at least 16 bytes")
    qis, sensitive = recipe.with_role("quasi_identifier"), recipe.with_role("sensitive")
    pseudonyms = [c for c, spec in recipe.columns.items() if spec["technique"] == "pseudonymise"]
    counts: list[pa.Table] = []
    pairs: list[pa.Table] = []
    rows_in = 0
    generalised = [c for c, spec in recipe.columns.items() if spec["technique"] == "generalise"]
    before: dict[str, Counter] = {c: Counter() for c in generalised}
    after: dict[str, Counter] = {c: Counter() for c in generalised}
    with Progress(disable=not progress) as bar:
        task = bar.add_task("pass 1/2: counting classes", total=None)
        raw = _RawBatches(zone, input_bucket, input_key)
        for item in raw:
            _check_columns(item.schema, recipe)
            table = _transform(item, recipe, key)
            for column in generalised:  # never raw values: the report sits beside the data
                before[column].update(_value_counts(table[column]))
            rows_in += table.num_rows
            if qis:
                counts.append(table.group_by(qis).aggregate([([], "count_all")]))
                for column in sensitive:
                    pairs.append(table.group_by([*qis, column]).aggregate([]))
            bar.advance(task, item.num_rows)
    if rows_in == 0:
        raise InvalidInput("the input has no rows")
    kept_classes, k_achieved, l_achieved, classes = _classes(counts, pairs, qis, sensitive,
                                                             recipe)
    rules = load_rules()
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / OUTPUT_KEY
        writer, rows_out, columns_out = None, 0, []
        with Progress(disable=not progress) as bar:
            task = bar.add_task("pass 2/2: writing", total=rows_in)
            for item in _RawBatches(zone, input_bucket, input_key):
                table = _transform(item, recipe, key)
                if qis:
                    table = table.join(kept_classes, keys=qis, join_type="left semi")
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
                    columns_out = table.schema.names
                writer.write_table(table)
                for column in generalised:
                    after[column].update(_value_counts(table[column]))
                rows_out += table.num_rows
                bar.advance(task, item.num_rows)
        if writer is not None:
            writer.close()
        if rows_out == 0:
            raise InvalidInput(f"every row was suppressed at k={recipe.k}: generalise more")
        data = out_path.read_bytes()
    return _publish_outputs(zone, actor, recipe, dataset, data, before, after, {
        "input": {"bucket": input_bucket, "key": input_key, "sha256": raw.sha256,
                  "bytes": raw.size},
        "k": recipe.k, "k_achieved": k_achieved, "l": recipe.l, "l_achieved": l_achieved,
        "classes": classes, "rows_in": rows_in, "rows_out": rows_out,
        "rows_suppressed": rows_in - rows_out,
        "columns_dropped": sorted(c for c, s in recipe.columns.items()
                                  if s["technique"] == "delete"),
        "columns_out": columns_out, "quasi_identifiers": qis, "sensitive": sensitive,
        "identifier_scan": "clean"})


def _classes(counts, pairs, qis, sensitive, recipe: Recipe):
    if not qis:
        return None, None, None, 0
    total = pa.concat_tables(counts).group_by(qis).aggregate([("count_all", "sum")])
    kept = total.filter(pc.greater_equal(total["count_all_sum"], recipe.k))
    k_achieved = pc.min(kept["count_all_sum"]).as_py() if kept.num_rows else 0
    l_achieved = None
    if sensitive:
        distinct = pa.concat_tables(pairs).group_by(pairs[0].column_names).aggregate([])
        per_class = distinct.group_by(qis).aggregate([([], "count_all")])
        per_kept = per_class.join(kept.select(qis), keys=qis, join_type="inner")
        l_achieved = pc.min(per_kept["count_all"]).as_py() if per_kept.num_rows else 0
        if l_achieved < recipe.l:
            raise InvalidInput(f"l-diversity {l_achieved} is below the recipe's l={recipe.l}: "
                               "generalise the quasi-identifiers more (l-다양성 미달)")
    return kept.select(qis), k_achieved, l_achieved, kept.num_rows


def _value_counts(values) -> Counter:
    counted = pc.value_counts(values)
    return Counter({str(v["values"]): v["counts"] for v in counted.to_pylist()})


def _publish_outputs(zone: Zone, actor: Identity, recipe: Recipe, dataset: str, data: bytes,
                     before: dict[str, Counter], after: dict[str, Counter],
                     facts: dict[str, Any]) -> dict[str, Any]:
    from .. import datasets

    attestation = {
        "schema": "safezone.deid-attestation/1", "dataset": dataset,
        "recipe": recipe.source, "recipe_sha256": recipe.sha256,
        "outputs": [{"key": OUTPUT_KEY, "sha256": hashlib.sha256(data).hexdigest(),
                     "bytes": len(data)}],
        **facts, "tool": f"safezone {__version__}", "run_by": actor.name,
        "run_at": zone.now().isoformat(),
    }
    if dataset not in {d.name for d in datasets.list_datasets(zone)}:
        datasets.register_dataset(zone, actor, dataset, "deidentified",
                                  description="made by safezone deid run")
    zone.broker.write_object(dataset, OUTPUT_KEY, data)
    zone.broker.write_object(dataset, ATTESTATION_KEY,
                             json.dumps(attestation, ensure_ascii=False, indent=1).encode())
    zone.broker.write_object(dataset, REPORT_KEY,
                             render(attestation, recipe.columns, before, after).encode())
    datasets.record_attestation(zone, actor, dataset, attestation)
    return attestation


def verify(zone: Zone, dataset: str) -> list[str]:
    """Problems with a dataset's attestation: missing, changed outputs, k no longer held."""
    from .. import datasets

    attestation = datasets.attestation_of(zone, dataset)
    if not attestation:
        return [f"{dataset} has no attestation"]
    problems = []
    for output in attestation["outputs"]:
        try:
            data = zone.broker.read_object(dataset, output["key"], 1 << 34)
        except Exception as exc:  # a missing output is a failed verification
            problems.append(f"{output['key']}: cannot be read ({exc})")
            continue
        if hashlib.sha256(data).hexdigest() != output["sha256"]:
            problems.append(f"{output['key']}: content changed since the attestation")
            continue
        qis = attestation.get("quasi_identifiers") or []
        if qis:
            table = pq.read_table(io.BytesIO(data), columns=qis)
            smallest = pc.min(table.group_by(qis).aggregate([([], "count_all")])
                              ["count_all"]).as_py()
            if smallest < attestation["k"]:
                problems.append(f"{output['key']}: a class of {smallest} rows is below "
                                f"k={attestation['k']}")
    return problems
