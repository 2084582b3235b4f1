"""Every anchor counts: rewrites with recomputed hashes are named even after later actions,
anchors cannot be deleted, and no action proceeds while the head cannot be anchored.
Real MinIO; the anchor-failure test stops a MinIO server of its own."""

from __future__ import annotations

from datetime import timedelta

import pytest
from minio.error import S3Error
from sqlalchemy import delete, func, select

from safezone import audit, memberships, projects
from safezone.errors import StorageError
from safezone.models import AuditEvent, AuditHead, Membership, Project

from .support import unique
from .test_audit import ADMIN, fill

HASHED = ("seq", "ts", "actor", "action", "subject", "data", "prev_hash")


def findings(zone) -> list[tuple[str, int]]:
    with zone.sessions() as db:
        return [(f.kind, f.seq) for f in audit.verify(db, zone.broker.list_anchors())]


def anchored_seqs(zone) -> set[int]:
    return {a.seq for a in zone.broker.list_anchors()}


def rewrite_from(zone, first: int) -> None:
    """What an attacker with database access does: edit event ``first``, recompute every
    hash from there on and move the head, so the chain is consistent in itself."""
    with zone.sessions() as db, db.begin():
        events = list(db.scalars(select(AuditEvent).where(AuditEvent.seq >= first)
                                 .order_by(AuditEvent.seq)))
        prev = db.scalar(select(AuditEvent.hash).where(AuditEvent.seq == first - 1)
                         ) or audit.GENESIS
        events[0].actor = "mallory"
        for event in events:
            event.prev_hash = prev
            event.hash = prev = audit.event_hash({c: getattr(event, c) for c in HASHED})
        db.get(AuditHead, 1).hash = prev


def test_rewrite_with_recomputed_hashes_then_later_actions_is_named(zone):
    fill(zone)
    # the first event whose predecessor is anchored: the rewrite is pinned to it exactly
    first = min(s + 1 for s in anchored_seqs(zone) if s >= 2)
    rewrite_from(zone, first)
    with zone.sessions() as db:
        assert audit.verify(db) == []  # the links alone cannot tell
    projects.create_project(zone, ADMIN, unique("p"))  # later actions anchor the forged head
    projects.create_project(zone, ADMIN, unique("p"))
    with zone.sessions() as db:
        assert zone.broker.latest_anchor() == audit.head(db)
    assert findings(zone) == [("rewritten", first)]
    with zone.sessions() as db, db.begin():
        stored = audit.run_verification(db, zone.broker.list_anchors(), now=zone.now(),
                                        ran_by="admin")
    assert not stored.intact and stored.findings[0]["seq"] == first


def test_rewrite_of_the_whole_chain_is_named_at_event_one(zone):
    fill(zone)
    rewrite_from(zone, 1)
    projects.create_project(zone, ADMIN, unique("p"))
    assert findings(zone) == [("rewritten", 1)]


def test_anchors_cannot_be_deleted_nor_hidden(zone):
    fill(zone)
    before = zone.broker.list_anchors()
    prefix = zone.settings.storage.anchor_prefix
    versions = [o for o in zone.broker.s3.list_objects("audit", prefix=prefix, recursive=True,
                                                       include_version=True)]
    assert len({o.object_name for o in versions}) == len(before)  # one key per anchor
    for obj in versions[:3]:  # even root cannot remove a version under COMPLIANCE lock
        with pytest.raises(S3Error) as refused:
            zone.broker.s3.remove_object("audit", obj.object_name, version_id=obj.version_id)
        assert "WORM protected" in refused.value.message
    for obj in versions:  # a delete marker hides the object from a plain listing only
        zone.broker.s3.remove_object("audit", obj.object_name)
    assert not list(zone.broker.s3.list_objects("audit", prefix=prefix, recursive=True))
    assert zone.broker.list_anchors() == before
    first = min(s + 1 for s in anchored_seqs(zone) if s >= 2)
    rewrite_from(zone, first)
    projects.create_project(zone, ADMIN, unique("p"))
    assert findings(zone) == [("rewritten", first)]


def test_cut_tail_is_detected_before_and_after_later_actions(zone):
    """The cut is one finding (a run), even when a forged anchor claims a huge tail."""
    fill(zone)
    with zone.sessions() as db:
        top = audit.head(db).seq
    keep = max(s for s in anchored_seqs(zone) if s < top - 1)  # cut at least two events
    with zone.sessions() as db, db.begin():
        db.execute(delete(AuditEvent).where(AuditEvent.seq > keep))
        kept = db.scalar(select(AuditEvent).where(AuditEvent.seq == keep))
        head = db.get(AuditHead, 1)
        head.seq, head.hash = kept.seq, kept.hash
    with zone.sessions() as db:
        [cut] = audit.verify(db, zone.broker.list_anchors())
    assert (cut.kind, cut.seq, cut.detail) == (
        "deleted", keep + 1, f"events {keep + 1} to {top} are missing from the chain")
    for _ in range(top - keep):  # refill every cut position with new, different events
        projects.create_project(zone, ADMIN, unique("p"))
    assert findings(zone) == [("rewritten", keep + 1)]
    zone.broker.write_anchor(10**9, "ef" * 32)  # all that a stolen anchor-writer key can do
    assert findings(zone) == [("rewritten", keep + 1), ("deleted", top + 1)]


# -- a failed anchor write pauses actions ---------------------------------------------------
def count(zone, model) -> int:
    with zone.sessions() as db:
        return db.scalar(select(func.count()).select_from(model))


def test_failed_anchor_pauses_actions_until_storage_is_back(fragile):
    minio, zone = fragile
    projects.create_project(zone, ADMIN, unique("p"))
    minio.process.stop()

    saved = unique("p")
    with pytest.raises(StorageError) as failed:  # committed, but reported as a failure
        projects.create_project(zone, ADMIN, saved)
    assert failed.value.status_code == 503 and failed.value.committed
    assert "감사 기록 고정 불가" in failed.value.message
    assert zone.unanchored
    rows, events = count(zone, Project), count(zone, AuditEvent)
    assert rows == 2 and events == 2

    with pytest.raises(StorageError) as refused:
        projects.create_project(zone, ADMIN, unique("p"))
    assert refused.value.status_code == 503 and not refused.value.committed
    assert refused.value.message.startswith("audit trail cannot be anchored; actions are "
                                            "paused until storage is back")
    with pytest.raises(StorageError):
        memberships.approve_membership(zone, ADMIN, saved, "alice",
                                       zone.now() + timedelta(days=1))
    assert (count(zone, Project), count(zone, AuditEvent)) == (rows, events)
    assert count(zone, Membership) == 0

    minio.restart()
    projects.create_project(zone, ADMIN, unique("p"))
    assert not zone.unanchored
    with zone.sessions() as db:
        head = audit.head(db)
    assert head.seq == events + 1
    assert zone.broker.latest_anchor() == head
    # the re-try anchored the change whose anchor had failed, then the action its own
    assert {2, 3} <= anchored_seqs(zone)
    assert findings(zone) == []


def test_concurrent_units_share_anchor_writes_and_none_returns_unanchored(zone):
    """Group commit: 16 units of work at once need fewer anchor objects than events, and
    each returns only after an anchor at or past its own event is in MinIO. The anchor
    writes are slowed (50 ms each, real MinIO underneath) so that they overlap."""
    import threading
    import time

    real_write, written = zone.broker.write_anchor, []

    def slow_write(seq: int, digest: str) -> None:
        time.sleep(0.05)
        real_write(seq, digest)
        written.append(seq)

    zone.broker.write_anchor = slow_write
    before = len(anchored_seqs(zone))
    uncovered: list[int] = []

    def one(i: int) -> None:
        with zone.unit_of_work() as db:
            seq = audit.append(db, now=zone.now(), actor="admin", action="test.group",
                               subject=f"n:{i}").seq
        if not any(s >= seq for s in written):  # returned before its anchor existed
            uncovered.append(seq)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert uncovered == []
    assert 1 <= len(written) < 16, written
    assert len(anchored_seqs(zone)) - before == len(written)
    assert findings(zone) == []


def test_a_session_appending_in_a_second_transaction_locks_the_head_again(zone):
    """The head a transaction locked is not reused by a later transaction of the same
    session: another writer may have appended in between."""
    with zone.sessions() as db:
        with db.begin():
            audit.lock_head(db)
            first = audit.append(db, now=zone.now(), actor="admin", action="test.first",
                                 subject="n:1").seq
        with zone.unit_of_work() as other:  # another writer, in between
            zone.record(other, ADMIN, "test.between", "n:2")
        with db.begin():
            third = audit.append(db, now=zone.now(), actor="admin", action="test.third",
                                 subject="n:3").seq
    assert third == first + 2
    zone.anchor(audit.Anchor(third, _hash_of(zone, third)))
    assert findings(zone) == []


def _hash_of(zone, seq: int) -> str:
    with zone.sessions() as db:
        return db.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))
