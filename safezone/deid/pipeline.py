"""One de-identification run: raw object in, attested de-identified dataset out.

The run acts as its own MinIO identity (``policies/minio/deid-run.yaml``): a service
account that can read the one raw input object and write the one output dataset, created
for the run and deleted after it. The engine streams the input twice; the input's SHA-256
must be the same on both passes. Only when everything passed are the data, the reports and
the attestation written, and the catalogue pins each object's version.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minio import Minio
from minio.error import S3Error

from .. import __version__, datasets, failpoints, process_lease
from ..api.metrics import counted_deid_run
from ..errors import InvalidInput, NotFound, StorageError
from ..models import DatasetStatus
from ..naming import check_bucket_name, check_object_key
from ..permissions import Identity, require
from ..records.minio import RUN_STARTED
from ..storage.policies import pipeline_policy
from ..zone import Zone
from . import engine, integrity
from .recipe import Recipe
from .report import render_html, render_markdown

log = logging.getLogger(__name__)
OUTPUT_KEY = "data.parquet"
ATTESTATION_KEY = "_attestation.json"
REPORT_KEYS = ("_report.md", "_report.html")


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


class RawInput:
    """The raw input, opened once per pass; records the SHA-256 and size each pass read.

    CSV streams straight from MinIO. Parquet needs random access, so it is copied once to
    ``scratch`` (disk, not memory) and both passes read that copy.
    """

    def __init__(self, client: Minio, bucket: str, key: str, scratch: Path) -> None:
        self.client, self.bucket, self.key, self.scratch = client, bucket, key, scratch
        self.reads: list[tuple[str, int]] = []
        self.is_parquet = key.lower().endswith(".parquet")

    def batches(self):
        if self.is_parquet:
            yield from self._parquet_batches()
            return
        response = self._get()
        reader = _HashingReader(response)
        try:
            yield from engine.csv_batches(io.BufferedReader(reader, engine.BATCH_BYTES))
        finally:
            response.close()
            response.release_conn()
        self.reads.append((reader.sha256.hexdigest(), reader.size))

    def _get(self):
        try:
            return self.client.get_object(self.bucket, self.key)
        except S3Error as exc:
            raise InvalidInput(f"cannot read {self.bucket}/{self.key}: {exc.code}") from None

    def _parquet_batches(self):
        local = self.scratch / "input.parquet"
        if not local.exists():
            response = self._get()
            try:
                with local.open("wb") as handle:
                    for chunk in response.stream(1 << 20):
                        handle.write(chunk)
            finally:
                response.close()
                response.release_conn()
        try:
            yield from engine.parquet_batches(local)
        finally:
            self.reads.append((integrity.file_sha256(local), local.stat().st_size))


@contextlib.contextmanager
def pipeline_identity(zone: Zone, actor: Identity, input_bucket: str, input_key: str,
                      dataset: str) -> Iterator[Minio]:
    """An S3 client acting as this run's own identity, deleted when the block ends. The
    identity's access key is audited with the steward before it reads anything, so the
    access records attribute its raw reads (MinIO's audit log) to the steward."""
    policy = pipeline_policy(input_bucket, input_key, dataset)
    access_key, secret_key = zone.broker.create_pipeline_identity(
        policy, name=f"sz-deid-{secrets.token_hex(4)}",
        description=f"safezone deid run -> {dataset} {process_lease.owner_tag()}")
    try:
        failpoints.reach("deid.identity_created")
        with zone.unit_of_work() as db:
            zone.record(db, actor, RUN_STARTED, f"dataset:{input_bucket}", key=input_key,
                        access_key=access_key, output=dataset)
        yield zone.broker.client_for(access_key, secret_key)
    finally:
        zone.broker.delete_pipeline_identity(access_key)


def reap_orphan_identities(zone: Zone) -> int:
    """Delete the pipeline identities of runs whose process died (``kill -9``) on this
    host; they would otherwise keep their rights until MinIO's expiry (16 minutes). Runs
    at the control plane's start and before every run."""
    reaped = 0
    for access_key, description in zone.broker.pipeline_identities():
        if process_lease.owner_gone(description):
            log.warning("deleting the identity %s of a de-identification run that died",
                        access_key)
            zone.broker.delete_pipeline_identity(access_key)
            reaped += 1
    return reaped


def _check_request(actor: Identity, input_bucket: str, input_key: str, dataset: str,
                   key: bytes) -> None:
    require("deid.run", actor)
    if not input_bucket.startswith("raw-"):
        raise InvalidInput("the input must be in a raw-* bucket")
    check_bucket_name(input_bucket)
    check_object_key(input_key)
    if not dataset.startswith("deid-"):
        raise InvalidInput("the output dataset's name must start with 'deid-'")
    if len(key) < 16:
        raise InvalidInput("the pseudonymisation key must be at least 16 bytes")


def _check_output_free(zone: Zone, dataset: str) -> bool:
    """False when the dataset must still be registered; refuses a published one."""
    try:
        found = datasets.get_location(zone, dataset)
    except NotFound:
        return False
    if found.status is DatasetStatus.PUBLISHED:
        raise InvalidInput(f"dataset {dataset} is published: withdraw it before re-running")
    return True


@counted_deid_run  # safezone_deid_runs_total{outcome}
def run(zone: Zone, actor: Identity, recipe: Recipe, input_bucket: str, input_key: str,
        dataset: str, key: bytes, progress: bool = False) -> dict[str, Any]:
    """De-identify ``input_bucket/input_key`` into dataset ``dataset``; returns the attestation."""
    _check_request(actor, input_bucket, input_key, dataset, key)
    if not zone.broker.bucket_exists(input_bucket):
        raise InvalidInput(f"there is no bucket {input_bucket}")
    registered = _check_output_free(zone, dataset)
    reap_orphan_identities(zone)
    with pipeline_identity(zone, actor, input_bucket, input_key, dataset) as client, \
            tempfile.TemporaryDirectory() as tmp:
        raw = RawInput(client, input_bucket, input_key, Path(tmp))
        out_path = Path(tmp) / OUTPUT_KEY
        result = engine.deidentify(raw.batches, recipe, key, out_path, progress)
        if len(set(raw.reads)) != 1:
            raise InvalidInput(f"{input_bucket}/{input_key} changed during the run; nothing "
                               "was written")
        (input_sha256, input_bytes), = set(raw.reads)
        attestation = {
            "schema": "safezone.deid-attestation/1", "dataset": dataset,
            "recipe": recipe.source, "recipe_sha256": recipe.sha256,
            "input": {"bucket": input_bucket, "key": input_key, "sha256": input_sha256,
                      "bytes": input_bytes},
            "outputs": [{"key": OUTPUT_KEY, "sha256": integrity.file_sha256(out_path),
                         "bytes": out_path.stat().st_size}],
            "k": recipe.k, "k_achieved": result.k_achieved, "l": recipe.l,
            "l_achieved": result.l_achieved, "classes": result.classes,
            "rows_in": result.rows_in, "rows_out": result.rows_out,
            "rows_suppressed": result.rows_in - result.rows_out,
            "columns_dropped": sorted(c for c, s in recipe.columns.items()
                                      if s["technique"] == "delete"),
            "columns_out": result.columns_out, "column_types": result.column_types,
            "quasi_identifiers": recipe.with_role("quasi_identifier"),
            "sensitive": recipe.with_role("sensitive"), "identifier_scan": "clean",
            "tool": f"safezone {__version__}", "run_by": actor.name,
            "run_at": zone.now().isoformat(),
        }
        reports = {
            REPORT_KEYS[0]: render_markdown(attestation, recipe.columns, result.before,
                                            result.after).encode(),
            REPORT_KEYS[1]: render_html(attestation, recipe.columns, result.before,
                                        result.after).encode(),
        }
        if not registered:  # only now: a failed run leaves no dataset behind
            datasets.register_dataset(zone, actor, dataset, "deidentified",
                                      description="made by safezone deid run")
        objects = {OUTPUT_KEY: _upload(client, dataset, OUTPUT_KEY, out_path,
                                       attestation["outputs"][0]["sha256"])}
        for name, body in reports.items():
            objects[name] = _put(client, dataset, name, body)
        document = json.dumps(attestation, ensure_ascii=False, indent=1).encode()
        objects[ATTESTATION_KEY] = _put(client, dataset, ATTESTATION_KEY, document)
    datasets.record_attestation(zone, actor, dataset, {**attestation, "objects": objects},
                                recipe.catalogue)
    return attestation


def _pinned(result, sha256: str, size: int) -> dict[str, Any]:
    if not result.version_id:
        raise StorageError("the output bucket is not versioned: attestations need versions")
    return {"version_id": result.version_id, "etag": result.etag.strip('"'),
            "bytes": size, "sha256": sha256}


def _upload(client: Minio, bucket: str, key: str, path: Path, sha256: str) -> dict[str, Any]:
    try:
        written = client.fput_object(bucket, key, str(path))
    except S3Error as exc:
        raise StorageError(f"MinIO could not store {bucket}/{key}: {exc.code}") from exc
    return _pinned(written, sha256, path.stat().st_size)


def _put(client: Minio, bucket: str, key: str, body: bytes) -> dict[str, Any]:
    try:
        written = client.put_object(bucket, key, io.BytesIO(body), len(body))
    except S3Error as exc:
        raise StorageError(f"MinIO could not store {bucket}/{key}: {exc.code}") from exc
    return _pinned(written, hashlib.sha256(body).hexdigest(), len(body))


def verify(zone: Zone, actor: Identity, dataset: str) -> list[str]:
    """Problems with a dataset against its attestation (re-hashes and re-counts k). Any
    problem takes the dataset out of new sessions, and the audit chain records it."""
    require("deid.verify", actor)
    found = datasets.get_location(zone, dataset)
    problems = integrity.problems(zone.broker, found.bucket, found.prefix, found.attestation)
    if problems and found.attestation:
        datasets.take_out_of_sessions(zone, actor, dataset, problems)
    return problems
