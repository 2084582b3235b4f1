"""``safezone restore``: bring a fresh zone back from a snapshot.

Order matters: every file is checked against the manifest, the schema revision and the
database kind are checked, and the target database must be empty, all before anything is
written. MinIO is bootstrapped (buckets, the anchor writer) and its anchors are listed.
Then the database is loaded (and migrated if the snapshot is older than the code) and the
snapshot is verified: the loaded audit head and pins must equal the manifest's, and the
chain up to the head must verify against every anchor that vouches for it (the
snapshot's and those still in MinIO). Until then nothing is anchored, and a failure up
to the anchor writes empties the database again, so a snapshot that does not verify
leaves the zone as it was.
Only then are the anchors missing from the ``audit`` bucket added (never overwritten:
the bucket is object-locked and an anchor's key carries its seq and hash), every attested
dataset is checked against its pins in MinIO (failures are withdrawn, as ``deid verify``
does), the restore itself is audited and the chain is verified against every anchor.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minio.error import S3Error
from sqlalchemy import Engine
from urllib3.exceptions import HTTPError

from .. import audit, datasets
from ..db import migrate
from ..deid import integrity
from ..errors import SafezoneError
from ..permissions import Identity
from ..zone import Zone
from . import database, s3
from .snapshot import ANCHORS, PINS, BackupError, read_json, read_manifest
from .steps import Steps
from .write import pins_of

log = logging.getLogger(__name__)
ANCHOR_WRITERS = 8  # parallel anchor writes when the audit bucket lost them


@dataclass
class Restored:
    """What the restore did and found."""

    manifest: dict[str, Any]
    anchors_written: int = 0
    anchors_present: int = 0
    later_anchors: int = 0  # anchors in MinIO beyond the snapshot's head: events lost
    pin_problems: dict[str, list[str]] = field(default_factory=dict)
    findings: list[audit.Finding] = field(default_factory=list)
    events: int = 0
    anchors_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.pin_problems and not self.findings


@contextmanager
def _local(zone: Zone, source: str) -> Iterator[Path]:
    """The snapshot as a local folder (an ``s3://`` one is downloaded to a private one)."""
    where = s3.parse(source)
    if where is None:
        yield Path(source)
        return
    with tempfile.TemporaryDirectory(prefix="safezone-restore-") as tmp:
        s3.download(zone.broker, *where, Path(tmp))
        yield Path(tmp)


def _snapshot_anchors(folder: Path) -> list[audit.Anchor]:
    try:
        return sorted(audit.Anchor(int(seq), str(digest))
                      for seq, digest in read_json(folder, ANCHORS)["anchors"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{ANCHORS} is malformed ({exc}): refused") from None


def restore(zone: Zone, source: str, steps: Steps, *, by: str, expected_sha256: str = "",
            full_pin_check: bool = True) -> Restored:
    """Restore ``source`` (a folder or ``s3://``) into the zone's empty database; raises
    ``BackupError`` when a check fails, the zone's database and anchors left as they
    were (see the module doc)."""
    url = zone.settings.database_url
    engine = zone.sessions.kw["bind"]
    busy = database.first_row_table(engine)
    if busy:
        raise BackupError(f"the zone's database is not empty (table {busy} has rows): "
                          "restore only into a fresh zone; nothing was written "
                          "(비어 있지 않은 데이터베이스에는 복원하지 않음)")
    with _local(zone, source) as folder:
        with steps.step("check", "snapshot hashes (스냅샷 해시 확인)"):
            manifest = read_manifest(folder, expected_sha256)
            pins, anchors = read_json(folder, PINS), _snapshot_anchors(folder)
            kind, revision = manifest["database"]["kind"], manifest["database"]["schema_revision"]
            if kind != database.kind_of(url):
                raise BackupError(f"the snapshot holds a {kind} database and this zone uses "
                                  f"{database.kind_of(url)}: refused (데이터베이스 종류 불일치)")
            database.check_revision(url, revision)
        with steps.step("bootstrap", "storage bootstrap (저장소 준비)"):
            zone.broker.bootstrap()  # buckets and the anchor writer of a zone never started
        present = set(zone.broker.list_anchors())
        missing = [a for a in anchors if a not in present]
        with _emptied_on_failure(engine, url):
            with steps.step("database", "database (데이터베이스 복원)"):
                database.load(engine, url, folder / manifest["database"]["file"])
                migrate(url)
            _check_loaded(zone, manifest, pins)
            with steps.step("chain", "snapshot audit chain (스냅샷 감사 체인 확인)"):
                _check_chain(zone, manifest, {*anchors, *present})
            with steps.step("anchors", "audit anchors (감사 앵커 복구)",
                            total=len(missing) or None) as advance:
                _write_anchors(zone, missing, advance)
    result = Restored(manifest, anchors_written=len(missing),
                      anchors_present=len(anchors) - len(missing),
                      later_anchors=sum(a.seq > manifest["audit_head"]["seq"] for a in present))
    _check_pins(zone, pins, result, steps, full_pin_check, by)
    actor = Identity(by, "user", frozenset())
    with zone.unit_of_work() as db:
        zone.record(db, actor, "zone.restored", "zone",
                    snapshot_created_at=manifest["created_at"], tool=manifest["tool"],
                    head_seq=manifest["audit_head"]["seq"], anchors_written=len(missing),
                    datasets_failed=sorted(result.pin_problems))
    with steps.step("verify", "audit verify (감사 검증)"), zone.sessions() as db:
        stored = zone.broker.list_anchors()
        result.findings = audit.verify(db, stored)
        result.events, result.anchors_checked = audit.head(db).seq, len(stored)
    return result


@contextmanager
def _emptied_on_failure(engine: Engine, url: str) -> Iterator[None]:
    """Undo the load when the block fails: the database is emptied and, if a migration
    had made its (empty) tables before, migrated again, as the fresh zone had it."""
    had_schema = database.has_schema(engine)
    try:
        yield
    except BaseException:
        try:
            database.empty(engine)
            if had_schema:
                migrate(url)
        except Exception:  # the refusal is what the operator must see; this is logged
            log.exception("could not empty the database after a failed restore")
        raise


def _check_chain(zone: Zone, manifest: dict[str, Any], anchors: set[audit.Anchor]) -> None:
    """The loaded chain verifies against every anchor up to the snapshot's head (later
    anchors are of events the snapshot never had: reported after the restore)."""
    head = manifest["audit_head"]["seq"]
    with zone.sessions() as db:
        findings = audit.verify(db, {a for a in anchors if a.seq <= head})
    if findings:
        first = findings[0]
        raise BackupError(f"the snapshot's audit chain does not verify ({first.kind} at "
                          f"event {first.seq}: {first.detail}): refused, no anchor written "
                          "and the database left empty (스냅샷 감사 체인 검증 실패)")


def _write_anchors(zone: Zone, missing: list[audit.Anchor], advance: Callable[[int], None]
                   ) -> None:
    """Add the missing anchors, several at a time (each is its own object; none is ever
    overwritten: a present anchor was left out of ``missing``)."""
    with ThreadPoolExecutor(max_workers=ANCHOR_WRITERS) as pool:
        for done in as_completed(pool.submit(zone.broker.write_anchor, a.seq, a.hash)
                                 for a in missing):
            done.result()
            advance(1)


def _check_loaded(zone: Zone, manifest: dict[str, Any], pins: dict[str, Any]) -> None:
    """The loaded database is the one the manifest describes (head and pins)."""
    with zone.sessions() as db:
        head = audit.head(db) or audit.Anchor(0, audit.GENESIS)
        loaded = pins_of(db)
    want = manifest["audit_head"]
    if (head.seq, head.hash) != (want["seq"], want["hash"]) or loaded != pins:
        raise BackupError("the restored database does not match the snapshot's manifest "
                          "(audit head or pins differ): refused, the database left empty "
                          "(복원된 데이터베이스가 매니페스트와 다름)")


def _check_pins(zone: Zone, pins: dict[str, Any], result: Restored, steps: Steps,
                full: bool, by: str) -> None:
    """Each attested dataset against its objects in MinIO; failures are withdrawn."""
    label = "dataset pins (데이터셋 고정 확인)"
    with steps.step("pins", label, total=len(pins) or None) as advance:
        for name in sorted(pins):
            found = datasets.get_location(zone, name)
            check = integrity.problems if full else integrity.stored_problems
            try:
                problems = check(zone.broker, found.bucket, found.prefix, found.attestation)
            except (SafezoneError, S3Error, HTTPError) as exc:  # a bucket gone, MinIO down
                problems = [f"cannot be checked: {getattr(exc, 'message', exc)}"]
            if problems:
                result.pin_problems[name] = problems
                datasets.take_out_of_sessions(zone, Identity(by, "user", frozenset()), name,
                                              problems)
            advance(1)
