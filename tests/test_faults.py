"""The control plane killed with SIGKILL in the middle of a grant, a submit, a vote and a
release, then started again: the state it left is consistent. A real
``python -m safezone.api.main`` process on the session stack's database, MinIO and hub dies
at a named point (``safezone/failpoints.py``: ``os.kill(getpid(), SIGKILL)``, what
``kill -9`` does) and a fresh process takes over; its sweeper reconciles. Checked each
time: no request stuck, no orphan MinIO identity, no duplicate audit event, no released
file of an unreleased request, and the audit chain verifies.

(The hub restarted with running servers is tested in tests/test_sandbox_lifecycle.py; a
MinIO restart during a release in tests/test_storage_faults.py; a killed
de-identification run in tests/test_deid_integrity.py.)"""

from __future__ import annotations

import hashlib
import subprocess
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from safezone import audit
from safezone.models import AuditEvent, GrantStatus, SessionGrant

from .support import (
    issue_grant,
    notebook_s3,
    provision,
    start_control_plane_process,
    submit_and_wait,
    wait_until,
)
from .test_exports import CLEAN_TABLE, create, put

pytestmark = pytest.mark.integration
KILLED = -9


class Plane:
    """One control-plane process; ``crash_at`` names the failpoint where it kills itself."""

    def __init__(self, stack, tmp, name: str, crash_at: str = "") -> None:
        # one process (a SQLite zone's way): a worker killed under uvicorn's supervisor
        # would be replaced at once, and this test needs the control plane gone
        extra = {"SAFEZONE_WORKERS": "1",
                 **({"SAFEZONE_FAILPOINTS": f"{crash_at}=kill"} if crash_at else {})}
        self.process, self.url = start_control_plane_process(stack.zone, tmp / f"{name}.log",
                                                             extra)

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60,
                            headers={"Authorization": f"token {token}"})

    def died_of_sigkill(self) -> bool:
        try:
            return self.process.popen.wait(30) == KILLED
        except subprocess.TimeoutExpired:  # still alive: the failpoint was never reached
            self.stop()
            return False

    def stop(self) -> None:
        self.process.stop(timeout=20)


def crash(call) -> None:
    """The call's connection drops: the process died under it."""
    with pytest.raises(httpx.TransportError):
        call()


def audit_events(stack, subject: str) -> Counter:
    with stack.zone.sessions() as db:
        return Counter(e.action for e in db.scalars(select(AuditEvent).where(
            AuditEvent.subject == subject)))


def chain_intact(stack) -> bool:
    with stack.zone.sessions() as db:
        return audit.verify(db, stack.zone.broker.list_anchors()) == []


def test_killed_while_granting_leaves_no_orphan_identity(stack, tmp_path):
    setup = provision(stack, member="bob")
    before = set(stack.zone.broker.session_identities())
    dying = Plane(stack, tmp_path, "dying", crash_at="grant.identity_created")
    crash(lambda: dying.client(stack.spawner_token).post("/api/sessions", json={
        "user": "bob", "project": setup.project, "server_name": "crash"}))
    assert dying.died_of_sigkill()
    with stack.zone.sessions() as db:
        pending = db.scalar(select(SessionGrant).where(
            SessionGrant.user_name == "bob", SessionGrant.server_name == "crash"))
    assert pending is not None and pending.status is GrantStatus.PENDING
    orphans = set(stack.zone.broker.session_identities()) - before
    assert len(orphans) == 1  # the keys were made; nobody will ever receive them

    successor = Plane(stack, tmp_path, "successor")
    try:
        wait_until(lambda: not orphans & set(stack.zone.broker.session_identities()),
                   timeout=60, interval=1)
        with stack.zone.sessions() as db:
            assert db.get(SessionGrant, pending.id).status is GrantStatus.REVOKED
        subject = f"project:{setup.project}/user:bob"
        events = audit_events(stack, subject)
        assert events["session.abandoned"] == 1 and events["session.granted"] == 0
        again = successor.client(stack.spawner_token).post("/api/sessions", json={
            "user": "bob", "project": setup.project, "server_name": "crash"})
        assert again.status_code == 201, again.text
        assert set(stack.zone.broker.session_identities()) - before == {
            again.json()["environment"]["AWS_ACCESS_KEY_ID"]}
        assert audit_events(stack, subject)["session.granted"] == 1
        assert chain_intact(stack)
        successor.client(stack.spawner_token).delete(
            f"/api/sessions/{again.json()['grant_id']}")
    finally:
        successor.stop()


@pytest.fixture
def in_review(stack):
    """A request of alice's with one clean file, checked and waiting for one approval."""
    setup = provision(stack, member="alice")
    s3 = notebook_s3(stack, issue_grant(stack, "alice", setup.project))
    put(s3, f"{setup.project}/alice/", "counts.csv", CLEAN_TABLE)
    request = create(stack, setup.project, "counts.csv")
    return submit_and_wait(stack.api("alice"), request["id"])


def released_copies(stack, request_id: str) -> dict[str, str]:
    root = stack.minio.root_s3()
    listing = root.list_objects_v2(Bucket="released", Prefix=f"{request_id}/")
    return {o["Key"]: hashlib.sha256(root.get_object(Bucket="released", Key=o["Key"])
                                     ["Body"].read()).hexdigest()
            for o in listing.get("Contents", [])}


@pytest.mark.parametrize("point", ["vote.approved", "release.copied"])
def test_killed_between_approval_and_release_releases_once_after_restart(
        stack, tmp_path, in_review, point):
    """Killed after the approving vote committed, or after the copies were written and
    before the transition: the request waits approved (nothing downloadable), and the next
    process releases it once, byte for byte what was frozen."""
    request_id, file = in_review["id"], in_review["files"][0]
    dying = Plane(stack, tmp_path, "dying", crash_at=point)
    crash(lambda: dying.client(stack.tokens["reviewer"]).post(
        f"/api/exports/{request_id}/votes", json={
            "file_id": file["id"], "decision": "approve", "comment": "",
            "override_reason": ""}))
    assert dying.died_of_sigkill()
    assert stack.api("alice").get(f"/api/exports/{request_id}").json()["status"] == "approved"

    successor = Plane(stack, tmp_path, "successor")
    try:
        wait_until(lambda: stack.api("alice").get(f"/api/exports/{request_id}")
                   .json()["status"] == "released", timeout=90, interval=1)
        events = audit_events(stack, f"export:{request_id}")
        assert events["export.release"] == 1 and events["export.voted"] == 1
        copies = released_copies(stack, request_id)
        frozen = {k: v for k, v in copies.items() if k.endswith("counts.csv")}
        assert list(frozen.values()) == [hashlib.sha256(CLEAN_TABLE).hexdigest()]
        assert chain_intact(stack)
    finally:
        successor.stop()


def test_killed_while_submitting_leaves_a_draft_that_submits_again(stack, tmp_path):
    setup = provision(stack, member="alice")
    s3 = notebook_s3(stack, issue_grant(stack, "alice", setup.project))
    put(s3, f"{setup.project}/alice/", "table.csv", CLEAN_TABLE)
    request = create(stack, setup.project, "table.csv")
    dying = Plane(stack, tmp_path, "dying", crash_at="submit.frozen")
    crash(lambda: dying.client(stack.tokens["alice"]).post(
        f"/api/exports/{request['id']}/submit"))
    assert dying.died_of_sigkill()
    assert stack.api("alice").get(f"/api/exports/{request['id']}").json()["status"] == "draft"
    assert audit_events(stack, f"export:{request['id']}")["export.submit"] == 0
    again = submit_and_wait(stack.api("alice"), request["id"])
    assert again["status"] == "in_review"
    assert audit_events(stack, f"export:{request['id']}")["export.submit"] == 1
    assert chain_intact(stack)
