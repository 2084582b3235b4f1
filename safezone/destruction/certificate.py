"""The certificate of destruction (파기 확인서): its document, hash and locked copy.

The stored bytes are the canonical JSON of the document (sorted keys, compact, UTF-8, as
the audit trail hashes), so the SHA-256 of the file in the ``audit`` bucket is the
certificate's SHA-256 that the ``destruction.certified`` audit event carries.
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime
from typing import Any

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.error import S3Error
from minio.retention import Retention

from ..audit import canonical_json
from ..errors import StorageError

BUCKET = "audit"
TITLE = {"ko": "파기 확인서", "en": "Certificate of destruction"}


def body_of(document: dict[str, Any]) -> bytes:
    return canonical_json(document)


def digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(body_of(document)).hexdigest()


def key_for(prefix: str, kind: str, subject: str, part: int, sha256: str) -> str:
    return f"{prefix}{kind}/{subject}/part-{part:03d}-{sha256}.json"


def stored_sha256(s3: Minio, key: str) -> str | None:
    """SHA-256 of the stored copy, or None when there is none."""
    try:
        response = s3.get_object(BUCKET, key)
    except S3Error as exc:
        if exc.code in {"NoSuchKey", "NoSuchVersion"}:
            return None
        raise StorageError(f"MinIO could not read certificate {key}: {exc.code}") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise StorageError(f"MinIO unreachable reading certificate {key}") from exc
    try:
        return hashlib.sha256(response.read()).hexdigest()
    finally:
        response.close()
        response.release_conn()


def read_stored(s3: Minio, key: str) -> bytes:
    try:
        response = s3.get_object(BUCKET, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()
    except S3Error as exc:
        raise StorageError(f"MinIO could not read certificate {key}: {exc.code}") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise StorageError(f"MinIO unreachable reading certificate {key}") from exc


def store(s3: Minio, key: str, document: dict[str, Any], locked_until: datetime) -> None:
    """Write the certificate into the audit bucket under a COMPLIANCE lock, once: a copy
    with the same hash already there (a resumed run) is left alone."""
    body = body_of(document)
    if stored_sha256(s3, key) == hashlib.sha256(body).hexdigest():
        return
    try:
        s3.put_object(BUCKET, key, io.BytesIO(body), len(body),
                      content_type="application/json",
                      retention=Retention(COMPLIANCE, locked_until))
    except (S3Error, urllib3.exceptions.HTTPError) as exc:
        raise StorageError(f"MinIO could not store certificate {key}: {exc}") from exc
