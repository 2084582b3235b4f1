"""Snapshots kept in a bucket of the zone's MinIO (``s3://bucket/name``): uploaded file by
file with the manifest last, so a snapshot without its manifest is visibly incomplete."""

from __future__ import annotations

from pathlib import Path

import urllib3
from minio.error import S3Error

from ..storage.broker import StorageBroker
from .snapshot import MANIFEST, BackupError


def parse(target: str) -> tuple[str, str] | None:
    """(bucket, prefix) of an ``s3://`` target, None for a folder."""
    if not target.startswith("s3://"):
        return None
    bucket, _, prefix = target.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    if not bucket or not prefix:
        raise BackupError(f"{target}: give s3://bucket/name (버킷과 이름 필요)")
    return bucket, prefix


def check_bucket(broker: StorageBroker, bucket: str) -> None:
    """Backups hold the whole database: never in a bucket of the zone's layout or a
    dataset bucket, where sessions, the pipeline or reviewers' readers could reach them."""
    layout = broker.layout
    if bucket in layout.buckets or bucket.startswith(tuple(layout.dataset_prefixes.values())):
        raise BackupError(f"{bucket} is one of the zone's own buckets: keep backups in a "
                          "bucket of their own, e.g. s3://backups/… (영역 버킷 사용 불가)")


def upload(broker: StorageBroker, folder: Path, bucket: str, prefix: str) -> None:
    check_bucket(broker, bucket)
    broker.ensure_bucket(bucket, versioned=True)
    if broker.list_keys(bucket, f"{prefix}/", limit=1):
        raise BackupError(f"s3://{bucket}/{prefix} already holds objects: a snapshot is "
                          "never written over another (이미 존재)")
    names = [*sorted(p.name for p in folder.iterdir() if p.name != MANIFEST), MANIFEST]
    try:
        for name in names:
            broker.s3.fput_object(bucket, f"{prefix}/{name}", str(folder / name))
    except (S3Error, urllib3.exceptions.HTTPError) as exc:
        raise BackupError(f"could not store the snapshot in s3://{bucket}/{prefix}: {exc}"
                          ) from exc


def download(broker: StorageBroker, bucket: str, prefix: str, folder: Path) -> None:
    """Copy the snapshot's objects into ``folder`` (manifest checked by the caller)."""
    check_bucket(broker, bucket)
    keys = [key for key, _ in broker.list_keys(bucket, f"{prefix}/", limit=100)]
    names = [key.removeprefix(f"{prefix}/") for key in keys]
    if MANIFEST not in names:
        raise BackupError(f"s3://{bucket}/{prefix} has no {MANIFEST}: not a complete "
                          "snapshot (완전한 스냅샷 아님)")
    try:
        for key, name in zip(keys, names, strict=True):
            if "/" in name or name in {"", ".", ".."}:
                raise BackupError(f"s3://{bucket}/{key} is not a snapshot file")
            broker.s3.fget_object(bucket, key, str(folder / name))
    except (S3Error, urllib3.exceptions.HTTPError) as exc:
        raise BackupError(f"could not read s3://{bucket}/{prefix}: {exc}") from exc
