"""Whether a de-identified dataset is still exactly what its attestation describes.

The attestation kept in the catalogue pins every object of the dataset by key, version id
(chosen by MinIO, not by a writer), ETag, size and SHA-256. ``stored_problems`` compares
the listing only (cheap: done for every dataset at every session grant); ``problems``
also re-hashes every object and re-counts k from the data (done on publish and verify).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..storage.broker import StorageBroker, StoredObject
from .engine import min_class_size, parquet_batches


def file_sha256(path: Path) -> str:
    """SHA-256 of a local file, streamed."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def stored_problems(broker: StorageBroker, bucket: str, prefix: str,
                    attestation: dict[str, Any] | None,
                    listed: Mapping[str, StoredObject] | None = None) -> list[str]:
    """Objects missing, replaced or added since the attestation (listing only;
    ``listed``: the prefix's current objects, when the caller has just listed them)."""
    if not attestation or "objects" not in attestation:
        return ["no attestation: only datasets made by `safezone deid run` can be used"]
    pinned: dict[str, dict[str, Any]] = attestation["objects"]
    current = broker.current_objects(bucket, prefix) if listed is None else listed
    problems = []
    for key, want in sorted(pinned.items()):
        have = current.get(prefix + key)
        if have is None:
            problems.append(f"{key}: missing since the attestation")
        elif (have.version_id, have.etag, have.size) != (want["version_id"], want["etag"],
                                                         want["bytes"]):
            problems.append(f"{key}: replaced since the attestation")
    for key in sorted(set(current) - {prefix + k for k in pinned}):
        problems.append(f"{key.removeprefix(prefix)}: not part of the attestation")
    return problems


def problems(broker: StorageBroker, bucket: str, prefix: str,
             attestation: dict[str, Any] | None) -> list[str]:
    """``stored_problems`` plus every object's SHA-256 and k re-counted from the data."""
    found = stored_problems(broker, bucket, prefix, attestation)
    if found:
        return found
    assert attestation is not None
    qis = attestation.get("quasi_identifiers") or []
    outputs = {o["key"] for o in attestation["outputs"]}
    for key, want in sorted(attestation["objects"].items()):
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "object"
            broker.s3.fget_object(bucket, prefix + key, str(local),
                                  version_id=want["version_id"])
            if file_sha256(local) != want["sha256"]:
                found.append(f"{key}: content changed since the attestation")
                continue
            if key in outputs and qis:
                smallest = min_class_size(parquet_batches(local, qis, as_codes=True), qis)
                if smallest < attestation["k"]:
                    found.append(f"{key}: a class of {smallest} rows is below "
                                 f"k={attestation['k']}")
    return found
