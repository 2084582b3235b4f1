"""Object versions under a prefix, their locks, and deleting them for good (as root).

Deleting an object by key in a versioned bucket only adds a delete marker; destruction
deletes every version id and every delete marker, so nothing can be restored. A version
under a COMPLIANCE lock is refused by MinIO (even to root) until its retain-until date.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from ..clock import as_utc
from ..errors import StorageError

BATCH = 1000  # S3's DeleteObjects limit per request


def _version(value: str | None) -> str | None:
    return None if value in (None, "", "null") else value


def list_versions(s3: Minio, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every version and delete marker under ``prefix`` (one entry each)."""
    try:
        if not s3.bucket_exists(bucket):
            return
        for o in s3.list_objects(bucket, prefix=prefix, recursive=True, include_version=True):
            yield {"bucket": bucket, "key": o.object_name,
                   "version_id": _version(o.version_id),
                   "delete_marker": bool(o.is_delete_marker), "size": o.size or 0,
                   "etag": (o.etag or "").strip('"') or None,
                   "last_modified": o.last_modified.isoformat() if o.last_modified else None}
    except (S3Error, urllib3.exceptions.HTTPError) as exc:
        raise StorageError(f"MinIO could not list the versions of {bucket}/{prefix}: {exc}"
                           ) from exc


def lock_until(s3: Minio, item: dict[str, Any]) -> datetime | None:
    """The retain-until date of an object version's lock, or None (no lock, a marker)."""
    if item["delete_marker"]:
        return None
    try:
        retention = s3.get_object_retention(item["bucket"], item["key"], item["version_id"])
    except S3Error as exc:
        if exc.code in {"NoSuchObjectLockConfiguration", "InvalidRequest", "NoSuchKey",
                        "NoSuchVersion", "ObjectLockConfigurationNotFoundError"}:
            return None
        raise StorageError(f"MinIO could not read the lock of {item['bucket']}/"
                           f"{item['key']}: {exc.code}") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise StorageError(f"MinIO unreachable reading the lock of {item['key']}") from exc
    until = retention.retain_until_date if retention else None
    return as_utc(until) if until else None


def delete_versions(s3: Minio, bucket: str, items: Iterable[dict[str, Any]]
                    ) -> dict[tuple[str, str | None], str]:
    """Delete these versions of ``bucket`` in batches; returns the refusals, (key, version)
    -> MinIO's error code. A version that is already gone counts as deleted."""
    refused: dict[tuple[str, str | None], str] = {}
    batch: list[DeleteObject] = []

    def flush() -> None:
        try:
            for error in s3.remove_objects(bucket, batch):
                if error.code in {"NoSuchKey", "NoSuchVersion"}:
                    continue
                refused[(error.name, _version(error.version_id))] = error.code or "refused"
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"MinIO could not delete objects of {bucket}: {exc}") from exc
        batch.clear()

    for item in items:
        batch.append(DeleteObject(item["key"], item["version_id"]))
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return refused
