"""Two control-plane replicas against one database (the chart's controlPlane.replicas=2):
two real ``python -m safezone.api.main`` processes beside the session's stack, sharing its
database, MinIO and hub. The same request sent to both at the same moment never issues two
grants for one server, never takes one export transition twice, and leaves no orphan
MinIO identity, no duplicate audit event and no released file of an unreleased request.
Runs on SQLite in CI's first pass (writers take turns on ``BEGIN IMMEDIATE``) and on
PostgreSQL in the second (the audit head's row lock)."""

from __future__ import annotations

import threading
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
)
from .test_exports import CLEAN_TABLE, create, put

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def replicas(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replicas")
    started = [start_control_plane_process(stack.zone, tmp / f"replica-{n}.log")
               for n in "ab"]
    yield [url for _, url in started]
    for process, _ in started:
        process.stop(timeout=20)


def at_once(calls: list[tuple[httpx.Client, str, dict | None]]) -> list[httpx.Response]:
    """POST each (client, path, body) on threads released together; responses in order."""
    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i: int) -> None:
        http, path, body = calls[i]
        barrier.wait()
        results[i] = http.post(path, json=body)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results  # type: ignore[return-value]


def client(base: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"token {token}"})


def events(stack, action: str, subject_part: str) -> list[AuditEvent]:
    with stack.zone.sessions() as db:
        return [e for e in db.scalars(select(AuditEvent).where(AuditEvent.action == action))
                if subject_part in e.subject or subject_part in str(e.data)]


def chain_intact(stack) -> bool:
    with stack.zone.sessions() as db:
        return audit.verify(db, stack.zone.broker.list_anchors()) == []


def test_one_grant_per_server_when_both_replicas_are_asked_at_once(stack, replicas):
    setup = provision(stack, member="carol")
    spawners = [client(url, stack.spawner_token) for url in replicas]
    before = set(stack.zone.broker.session_identities())
    issued = []
    for n in range(6):
        body = {"user": "carol", "project": setup.project, "server_name": f"race{n}"}
        answers = at_once([(s, "/api/sessions", body) for s in spawners])
        codes = sorted(a.status_code for a in answers)
        assert codes in ([201, 201], [201, 409]), [a.text for a in answers]
        issued += [a.json()["grant_id"] for a in answers if a.status_code == 201]
        with stack.zone.sessions() as db:
            active = list(db.scalars(select(SessionGrant).where(
                SessionGrant.user_name == "carol", SessionGrant.server_name == f"race{n}",
                SessionGrant.status == GrantStatus.ACTIVE)))
        assert len(active) == 1  # a later 201 replaced the earlier one, never two
    # every refused or replaced grant's identity is gone; each server keeps exactly one
    with stack.zone.sessions() as db:
        live = {g.access_key for g in db.scalars(select(SessionGrant).where(
            SessionGrant.user_name == "carol", SessionGrant.status == GrantStatus.ACTIVE))}
    now = set(stack.zone.broker.session_identities())
    assert now - before == live and len(live) == 6
    granted = events(stack, "session.granted", f"project:{setup.project}/user:carol")
    assert sorted(e.data["grant"] for e in granted) == sorted(issued)  # one event per 201
    assert chain_intact(stack)
    for grant in issued:
        spawners[0].delete(f"/api/sessions/{grant}")


def test_one_release_when_two_reviewers_approve_on_two_replicas(stack, replicas):
    setup = provision(stack, member="alice")
    s3 = notebook_s3(stack, issue_grant(stack, "alice", setup.project))
    requests = []
    for n in range(3):
        put(s3, f"{setup.project}/alice/", f"r{n}.csv", CLEAN_TABLE)
        request = create(stack, setup.project, f"r{n}.csv")
        requests.append(submit_and_wait(stack.api("alice"), request["id"]))
    for request in requests:
        file_id = request["files"][0]["id"]
        vote = {"file_id": file_id, "decision": "approve", "comment": "", "override_reason": ""}
        voters = [client(replicas[0], stack.tokens["reviewer"]),
                  client(replicas[1], stack.tokens["dave"])]
        answers = at_once([(v, f"/api/exports/{request['id']}/votes", vote) for v in voters])
        assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers]
        assert any(a.status_code == 200 for a in answers)
        final = stack.api("alice").get(f"/api/exports/{request['id']}").json()
        assert final["status"] == "released"
        released = events(stack, "export.release", f"export:{request['id']}")
        assert len(released) == 1
        kinds = Counter(e.action for e in events(stack, "export.vote",
                                                 f"export:{request['id']}"))
        assert kinds["export.vote"] <= 2
    assert chain_intact(stack)


def test_withdraw_and_approve_at_once_leave_one_outcome(stack, replicas):
    """The requester withdraws on one replica while a reviewer approves on the other: the
    request ends withdrawn with nothing in ``released``, or released and not withdrawn."""
    setup = provision(stack, member="alice")
    s3 = notebook_s3(stack, issue_grant(stack, "alice", setup.project))
    root = stack.minio.root_s3()
    outcomes = Counter()
    for n in range(4):
        put(s3, f"{setup.project}/alice/", f"w{n}.csv", CLEAN_TABLE)
        request = create(stack, setup.project, f"w{n}.csv")
        request = submit_and_wait(stack.api("alice"), request["id"])
        vote = {"file_id": request["files"][0]["id"], "decision": "approve", "comment": "",
                "override_reason": ""}
        alice = client(replicas[n % 2], stack.tokens["alice"])
        reviewer = client(replicas[(n + 1) % 2], stack.tokens["reviewer"])
        at_once([(alice, f"/api/exports/{request['id']}/withdraw", None),
                 (reviewer, f"/api/exports/{request['id']}/votes", vote)])
        status = stack.api("alice").get(f"/api/exports/{request['id']}").json()["status"]
        outcomes[status] += 1
        copies = root.list_objects_v2(Bucket="released", Prefix=f"{request['id']}/")
        assert status in ("withdrawn", "released")
        if status == "withdrawn":
            assert copies.get("KeyCount", 0) == 0
            assert events(stack, "export.release", f"export:{request['id']}") == []
        else:
            assert copies.get("KeyCount", 0) >= 1
            assert events(stack, "export.withdraw", f"export:{request['id']}") == []
    assert chain_intact(stack)
