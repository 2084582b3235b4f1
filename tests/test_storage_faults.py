"""MinIO unavailable: operations fail with a clear error and leave no rows behind.

Uses a MinIO server of its own, so stopping it disturbs no other test.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from safezone import datasets, grants, memberships, projects
from safezone.audit import AuditUnanchored
from safezone.errors import SafezoneError, StorageError
from safezone.exports import checking, release, review, service
from safezone.models import AuditEvent, Dataset, SessionGrant
from safezone.permissions import ADMIN_SCOPE, REVIEW_SCOPE, SESSIONS_SCOPE, Identity

from .support import attested_dataset, unique

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
SPAWNER = Identity("safezone-spawner", "service", frozenset({SESSIONS_SCOPE}))


def count(zone, model) -> int:
    with zone.sessions() as db:
        return db.scalar(select(func.count()).select_from(model))


def test_grant_and_registration_fail_cleanly_while_minio_is_down(fragile):
    minio, zone = fragile
    project, dataset = unique("p"), unique("deid-f")
    projects.create_project(zone, ADMIN, project)
    attested_dataset(zone, dataset)
    datasets.change_status(zone, ADMIN, dataset, "publish")
    projects.attach_dataset(zone, ADMIN, project, dataset)
    memberships.approve_membership(zone, ADMIN, project, "alice", zone.now() + timedelta(days=1))
    events_before = count(zone, AuditEvent)

    minio.process.stop()
    with pytest.raises(StorageError, match="MinIO"):  # the attestation check cannot list
        grants.issue_grant(zone, SPAWNER, "alice", project)
    with pytest.raises(StorageError, match="bucket"):
        datasets.register_dataset(zone, ADMIN, unique("deid-g"), "deidentified")
    assert count(zone, SessionGrant) == 0
    assert count(zone, Dataset) == 2  # the raw upload and the pipeline's output
    assert count(zone, AuditEvent) == events_before  # unreachable storage withdraws nothing

    minio.restart()
    issued = grants.issue_grant(zone, SPAWNER, "alice", project)
    assert count(zone, SessionGrant) == 1
    assert issued.access_key in zone.broker.session_identities()


ALICE = Identity("alice", "user", frozenset())
REVIEWER = Identity("rev", "user", frozenset({REVIEW_SCOPE}))


def alice_project(zone) -> str:
    project = unique("p")
    projects.create_project(zone, ADMIN, project)
    memberships.approve_membership(zone, ADMIN, project, "alice", zone.now() + timedelta(days=1))
    return project


def test_release_interrupted_by_minio_stopping_stays_approved_and_retry_completes(fragile):
    """MinIO is really stopped after the first released file is written."""
    minio, zone = fragile
    project, alice, reviewer = alice_project(zone), ALICE, REVIEWER
    tables = {"a.csv": b"g,count\nx,120\n", "b.csv": b"g,count\ny,140\n"}
    for name, body in tables.items():
        zone.broker.write_object("outbox", f"{project}/alice/{name}", body)
    request = service.create_request(zone, alice, project, "t",
                                     [{"path": name} for name in tables])
    service.submit(zone, alice, request["id"])
    checking.check_pending(zone)
    request = service.get_request(zone, alice, request["id"])

    real_write = zone.broker.write_object
    def write_then_crash(bucket, key, data):
        digest = real_write(bucket, key, data)
        if bucket == "released":
            minio.process.stop()
        return digest
    zone.broker.write_object = write_then_crash
    for f in request["files"][:-1]:
        review.vote(zone, reviewer, request["id"], f["id"], "approve")
    last = request["files"][-1]["id"]
    view = review.vote(zone, reviewer, request["id"], last, "approve")  # release fails inside
    assert view["status"] == "approved"
    zone.broker.write_object = real_write

    minio.restart()
    with pytest.raises(SafezoneError):  # nothing can be downloaded from an approved request
        release.create_link(zone, Identity("alice", "user", frozenset(), browser=True),
                            request["id"], last)
    released = release.release(zone, ADMIN, request["id"])
    assert released["status"] == "released"
    ids = {f["path"]: f["id"] for f in request["files"]}
    for name, body in tables.items():
        got = zone.broker.read_object("released", f"{request['id']}/{ids[name]}/{name}",
                                      1 << 20)
        assert got == body


def test_release_with_minio_down_writes_nothing(fragile):
    minio, zone = fragile
    project, alice = alice_project(zone), ALICE
    zone.broker.write_object("outbox", f"{project}/alice/a.csv", b"g,count\nx,120\n")
    request = service.create_request(zone, alice, project, "t", [{"path": "a.csv"}])
    service.submit(zone, alice, request["id"])
    checking.check_pending(zone)
    minio.process.stop()
    with pytest.raises(AuditUnanchored) as refused:  # the vote is saved, not yet anchored
        review.vote(zone, REVIEWER, request["id"], request["files"][0]["id"], "approve")
    assert refused.value.committed
    assert service.get_request(zone, ADMIN, request["id"])["status"] == "approved"
    minio.restart()
    assert not list(zone.broker.s3.list_objects("released", prefix=f"{request['id']}/"))
    assert release.release(zone, ADMIN, request["id"])["status"] == "released"
