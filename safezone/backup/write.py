"""``safezone backup``: a consistent snapshot of the zone's control-plane state.

The database copy is the point in time: the audit head, the schema revision and the
catalogue pins are read from exactly the copied state, and only anchors up to that head
are kept (later ones belong to events the copy does not have). Anchors the copy's newest
events have not reached yet are written at restore, by the restored zone's next anchor.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import __version__, audit
from ..audit import canonical_json
from ..models import AuditEvent, Dataset
from ..zone import Zone
from . import database, s3
from .snapshot import ANCHORS, FORMAT, MANIFEST, PINS, atomic_folder, describe_files, write_json
from .steps import Steps


@dataclass(frozen=True)
class Written:
    """Where the snapshot went, its manifest and the manifest's own SHA-256."""

    location: str
    manifest: dict[str, Any]
    manifest_sha256: str


def pins_of(db: Session) -> dict[str, dict[str, Any]]:
    """Every attested dataset's pins (objects by key, version id, ETag, size, SHA-256)."""
    pins = {}
    for dataset in db.scalars(select(Dataset).order_by(Dataset.name)):
        if not dataset.attestation:
            continue
        pins[dataset.name] = {
            "bucket": dataset.bucket, "prefix": dataset.prefix,
            "classification": dataset.classification.value, "status": dataset.status.value,
            "objects": dataset.attestation.get("objects", {}),
            "attestation_sha256": hashlib.sha256(canonical_json(dataset.attestation)
                                                 ).hexdigest(),
        }
    return pins


def _state(db: Session) -> dict[str, Any]:
    head = audit.head(db) or audit.Anchor(0, audit.GENESIS)
    return {"revision": database.schema_revision(db), "head": head, "pins": pins_of(db),
            "events": db.scalar(select(func.count()).select_from(AuditEvent)) or 0}


def write_snapshot(zone: Zone, target: Path, steps: Steps) -> Written:
    """Write the snapshot folder ``target`` atomically (see ``snapshot.atomic_folder``)."""
    url = zone.settings.database_url
    with atomic_folder(target) as work:
        with steps.step("database", "database copy (데이터베이스 복사)"):
            db_file, state = database.dump(zone.sessions.kw["bind"], url, work, _state)
        head: audit.Anchor = state["head"]
        with steps.step("anchors", "audit anchors (감사 앵커)"):
            anchors = [a for a in zone.broker.list_anchors() if a.seq <= head.seq]
        write_json(work / ANCHORS, {"prefix": zone.settings.storage.anchor_prefix,
                                    "anchors": [[a.seq, a.hash] for a in anchors]})
        write_json(work / PINS, state["pins"])
        with steps.step("hash", "hashing (해시 계산)", total=3) as advance:
            files = describe_files(work, [db_file, PINS, ANCHORS], advance)
        manifest = {
            "format": FORMAT, "created_at": zone.now().isoformat(),
            "tool": f"safezone {__version__}",
            "database": {"kind": database.kind_of(url), "file": db_file,
                         "schema_revision": state["revision"]},
            "audit_head": {"seq": head.seq, "hash": head.hash},
            "counts": {"audit_events": state["events"], "anchors": len(anchors),
                       "datasets_pinned": len(state["pins"])},
            "files": files,
        }
        write_json(work / MANIFEST, manifest)
        digest = hashlib.sha256((work / MANIFEST).read_bytes()).hexdigest()
    return Written(str(target.absolute()), manifest, digest)


def backup(zone: Zone, target: str, steps: Steps) -> Written:
    """Snapshot into a folder, or into ``s3://bucket/name`` of the zone's MinIO."""
    where = s3.parse(target)
    if where is None:
        return write_snapshot(zone, Path(target), steps)
    bucket, prefix = where
    s3.check_bucket(zone.broker, bucket)
    with tempfile.TemporaryDirectory(prefix="safezone-backup-") as tmp:
        written = write_snapshot(zone, Path(tmp) / "snapshot", steps)
        with steps.step("upload", f"upload to s3://{bucket}/{prefix} (업로드)"):
            s3.upload(zone.broker, Path(written.location), bucket, prefix)
    return Written(f"s3://{bucket}/{prefix}", written.manifest, written.manifest_sha256)
