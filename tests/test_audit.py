"""The audit chain: intact when untouched; edits, deletions and reorderings are named;
verification results are stored."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from safezone import audit, datasets, memberships, projects
from safezone.clock import as_utc
from safezone.models import AuditEvent
from safezone.permissions import ADMIN_SCOPE, Identity

from .support import attested_dataset, unique

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))


def fill(zone) -> None:
    """Real events: a project, a dataset made by the pipeline (raw upload, run, output,
    attestation), its publication, attach, two decisions."""
    project, dataset = unique("p"), unique("deid-a")
    projects.create_project(zone, ADMIN, project)
    attested_dataset(zone, dataset)
    datasets.change_status(zone, ADMIN, dataset, "publish")
    projects.attach_dataset(zone, ADMIN, project, dataset)
    memberships.approve_membership(zone, ADMIN, project, "alice",
                                   zone.now() + timedelta(days=5))
    memberships.revoke_membership(zone, ADMIN, project, "alice")


def findings(zone):
    with zone.sessions() as db:
        return [(f.kind, f.seq) for f in audit.verify(db, zone.broker.list_anchors())]


def test_untouched_chain_verifies_and_is_anchored(zone):
    fill(zone)
    assert findings(zone) == []
    with zone.sessions() as db:
        actions = [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        head = audit.head(db)
    assert actions == ["project.created", "dataset.registered", "deid.run_started",
                       "dataset.registered", "dataset.attested", "dataset.published",
                       "project.dataset_attached", "membership.approved", "membership.revoked"]
    assert zone.broker.latest_anchor() == head


def test_edited_event_is_named(zone):
    fill(zone)
    with zone.sessions() as db, db.begin():
        db.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="mallory"))
    assert findings(zone) == [("edited", 3)]


def test_edit_with_recomputed_hash_is_caught_by_the_next_link(zone):
    fill(zone)
    with zone.sessions() as db, db.begin():
        event = db.scalar(select(AuditEvent).where(AuditEvent.seq == 2))
        event.actor = "mallory"
        fields = {c: getattr(event, c) for c in ("seq", "ts", "actor", "action", "subject",
                                                 "data", "prev_hash")}
        event.hash = audit.event_hash(fields)
    assert findings(zone) == [("edited", 2)]


def test_deleted_event_is_named(zone):
    fill(zone)
    with zone.sessions() as db, db.begin():
        db.delete(db.scalar(select(AuditEvent).where(AuditEvent.seq == 4)))
    assert ("deleted", 4) in findings(zone)


def test_deleted_tail_is_caught_by_the_anchor(zone):
    fill(zone)
    with zone.sessions() as db, db.begin():
        db.delete(db.scalar(select(AuditEvent).where(AuditEvent.seq == 6)))
    assert findings(zone) == [("deleted", 6)]


def test_reordered_events_are_named(zone):
    fill(zone)
    with zone.sessions() as db, db.begin():
        rows = {e.seq: e for e in db.scalars(select(AuditEvent))}
        id2, id5 = rows[2].id, rows[5].id
        # swap the storage positions of events 2 and 5, leaving their content intact
        db.execute(update(AuditEvent).where(AuditEvent.id == id2).values(id=-1))
        db.execute(update(AuditEvent).where(AuditEvent.id == id5).values(id=id2))
        db.execute(update(AuditEvent).where(AuditEvent.id == -1).values(id=id5))
    found = findings(zone)
    assert ("reordered", 2) in found or ("reordered", 3) in found
    assert all(kind == "reordered" for kind, _ in found)


def test_canonical_json_is_stable():
    assert audit.canonical_json({"b": 1, "a": "한글"}) == '{"a":"한글","b":1}'.encode()


def test_verification_is_stored_with_its_time_and_author(zone):
    with zone.sessions() as db:
        assert audit.last_verification(db) is None
    fill(zone)
    anchors = zone.broker.list_anchors()
    with zone.sessions() as db, db.begin():
        first = audit.run_verification(db, anchors, now=zone.now(), ran_by="admin")
    assert (first.intact, first.events, first.anchors_checked, first.findings) == (
        True, 9, len(anchors), [])
    assert len(anchors) >= 5  # one per unit of work, not only the newest

    with zone.sessions() as db, db.begin():
        db.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="mallory"))
    later = zone.now() + timedelta(minutes=5)
    with zone.sessions() as db, db.begin():
        audit.run_verification(db, zone.broker.list_anchors(), now=later, ran_by="auditor")
    with zone.sessions() as db:
        last = audit.last_verification(db)
    assert (last.intact, last.ran_by, last.events) == (False, "auditor", 9)
    assert as_utc(last.ran_at) == later
    assert [(f["kind"], f["seq"]) for f in last.findings] == [("edited", 3)]
