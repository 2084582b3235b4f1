"""A data steward's raw upload into a ``raw-*`` bucket (registered on first use)."""

from __future__ import annotations

from pathlib import Path

from minio.error import S3Error

from .. import datasets
from ..errors import InvalidInput, NotFound, StorageError
from ..naming import check_object_key
from ..permissions import Identity, require
from ..zone import Zone

RAW_SUFFIXES = (".csv", ".parquet")


def upload_raw(zone: Zone, actor: Identity, path: Path, bucket: str, key: str) -> int:
    """Stream ``path`` to ``bucket/key``; returns the bytes stored."""
    require("deid.upload", actor)
    if not bucket.startswith("raw-"):
        raise InvalidInput("raw data goes into a raw-* bucket")
    check_object_key(key)
    if not key.lower().endswith(RAW_SUFFIXES):
        raise InvalidInput(f"key {key!r} must end in .csv or .parquet")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file")
    try:
        datasets.get_location(zone, bucket)
    except NotFound:
        datasets.register_dataset(zone, actor, bucket, "raw",
                                  description="raw upload (원본, 파이프라인만 읽음)")
    try:
        zone.broker.s3.fput_object(bucket, key, str(path))
    except S3Error as exc:
        raise StorageError(f"MinIO could not store {bucket}/{key}: {exc.code}") from exc
    with zone.unit_of_work() as db:
        zone.record(db, actor, "dataset.raw_uploaded", f"dataset:{bucket}", key=key,
                    bytes=path.stat().st_size)
    return path.stat().st_size
