"""Project quotas on the real stack: servers at once (refused at spawn), storage in MinIO
(sessions of a full project cannot write), an administrator's overrides (audited)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select

from safezone import quotas
from safezone.culling import load_operations
from safezone.models import AuditEvent, GrantStatus, SessionGrant
from safezone.quotas import Quota
from safezone.sandbox.limits import limits_for

from .support import hub_login, issue_grant, notebook_s3, provision, unique

pytestmark = pytest.mark.integration


def approve(stack, project: str, *users: str) -> None:
    expires = (stack.zone.now() + timedelta(days=30)).isoformat()
    for user in users:
        stack.api("admin").post(f"/api/projects/{project}/members/{user}/approve",
                                json={"expires_at": expires}).raise_for_status()


def events(stack, action: str, subject: str) -> list[AuditEvent]:
    with stack.zone.sessions() as db:
        return list(db.scalars(select(AuditEvent).where(
            AuditEvent.action == action, AuditEvent.subject == subject)
            .order_by(AuditEvent.seq)))  # PostgreSQL promises no order without it


def grants_of(stack, project: str, user: str) -> list[SessionGrant]:
    with stack.zone.sessions() as db:
        return [g for g in db.scalars(select(SessionGrant).where(
            SessionGrant.user_name == user)) if g.project.name == project]


def set_quota(stack, project: str, **quota) -> dict:
    response = stack.api("admin").put(f"/api/projects/{project}/quota", json=quota)
    assert response.status_code == 200, response.text
    return response.json()


def end_grant(stack, grant: dict) -> None:
    stack.api("spawner").delete(f"/api/sessions/{grant['grant_id']}").raise_for_status()


def test_defaults_come_from_policy_and_server_limits_from_the_sandbox_policy(stack):
    setup = provision(stack, member="alice")
    seen = stack.api("alice").get(f"/api/projects/{setup.project}/quota")  # a member reads
    assert seen.status_code == 200, seen.text
    default = load_operations()["quotas"]["default"]
    assert seen.json()["servers"] == {"limit": default["servers"], "running": 0}
    assert seen.json()["storage"] == {"limit_gib": default["storage_gib"], "used_bytes": 0,
                                      "full": False}
    assert seen.json()["per_server"] == asdict(limits_for(setup.project))
    assert stack.api("grace").get(f"/api/projects/{setup.project}/quota").status_code == 403


def test_only_an_administrator_overrides_quotas_and_it_is_audited(stack):
    setup = provision(stack, member="alice")
    subject = f"project:{setup.project}"
    refused = stack.api("alice").put(f"/api/projects/{setup.project}/quota",
                                     json={"servers": 50})
    assert refused.status_code == 403
    for bad in ({"servers": -1}, {"servers": "2"}, {"servers": 1.5}, {"cpus": 4},
                {"storage_gib": -0.5}, {"servers": True}):
        response = stack.api("admin").put(f"/api/projects/{setup.project}/quota", json=bad)
        assert response.status_code == 422, (bad, response.text)
        assert "\n" not in response.json()["error"]
    assert events(stack, "project.quota_changed", subject) == []  # nothing was changed
    view = set_quota(stack, setup.project, servers=2, storage_gib=0.5)
    assert view["overrides"] == {"servers": 2, "storage_gib": 0.5}
    assert view["servers"]["limit"] == 2 and view["storage"]["limit_gib"] == 0.5
    back = set_quota(stack, setup.project)  # no overrides: the policy's defaults again
    assert back["servers"]["limit"] == load_operations()["quotas"]["default"]["servers"]
    changes = [e.data for e in events(stack, "project.quota_changed", subject)]
    assert changes == [{"old": {}, "new": {"servers": 2, "storage_gib": 0.5}},
                       {"old": {"servers": 2, "storage_gib": 0.5}, "new": {}}]


def test_the_next_server_of_a_project_is_refused_at_spawn(stack):
    setup = provision(stack, member="alice")
    approve(stack, setup.project, "carol")
    set_quota(stack, setup.project, servers=1)
    first = issue_grant(stack, "alice", setup.project)  # exactly what alice's spawner asks
    again = issue_grant(stack, "alice", setup.project)  # a restart replaces, never counts
    identities = set(stack.zone.broker.session_identities())

    response = stack.hub_api("carol").post("/users/carol/server",
                                           json={"project": setup.project})
    assert response.status_code == 409, response.text
    message = response.json()["message"]
    assert "already runs 1 of its 1 notebook servers" in message  # in English and Korean
    assert "동시 실행 서버 한도 1개" in message and "\n" not in message
    browser = hub_login(stack, "carol")  # the spawn page says the same
    browser.get("/hub/spawn")
    page = browser.post("/hub/spawn", data={"project": setup.project,
                                            "_xsrf": browser.cookies.get("_xsrf")})
    assert page.status_code == 409
    assert "already runs 1 of its 1" in page.text and "한도 1개" in page.text
    assert not stack.hub_api("carol").get("/users/carol").json()["servers"].get("", {}).get(
        "ready")
    assert grants_of(stack, setup.project, "carol") == []  # nothing was issued
    assert set(stack.zone.broker.session_identities()) == identities
    assert [g.status for g in grants_of(stack, setup.project, "alice")] \
        .count(GrantStatus.ACTIVE) == 1
    assert first["grant_id"] != again["grant_id"]

    end_grant(stack, again)  # alice's server stops: carol's may start
    end_grant(stack, issue_grant(stack, "carol", setup.project))


def test_concurrent_spawns_cannot_both_pass_the_server_quota(stack):
    setup = provision(stack, member="alice")
    users = ["alice", "bob", "carol", "dave"]
    approve(stack, setup.project, *users[1:])
    set_quota(stack, setup.project, servers=1)

    def ask(user: str):
        return stack.api("spawner").post("/api/sessions", json={
            "user": user, "project": setup.project, "server_name": ""})

    with ThreadPoolExecutor(len(users)) as pool:
        answers = list(pool.map(ask, users))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], \
        [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 201:
            end_grant(stack, answer.json())


def put(s3, bucket: str, key: str, body: bytes = b"x" * 4096) -> str:
    """'ok', or MinIO's error code."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return "ok"
    except ClientError as exc:
        return exc.response["Error"]["Code"]


def stored(stack, bucket: str, prefix: str) -> dict[str, int]:
    root = stack.minio.root_s3()
    listed = root.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["Size"] for o in listed}


def test_a_project_over_its_storage_quota_gets_sessions_that_cannot_write(stack):
    setup = provision(stack, member="alice")
    project = setup.project
    set_quota(stack, project, storage_gib=4096 / 1024 ** 3)  # 4 KiB
    work, outbox = f"{project}/", f"{project}/alice/"

    under = issue_grant(stack, "alice", project, "one")
    assert put(notebook_s3(stack, under), "work", f"{work}a.bin") == "ok"  # now it is full
    view = stack.api("admin").get(f"/api/projects/{project}/quota").json()
    assert view["storage"] == {"limit_gib": 4096 / 1024 ** 3, "used_bytes": 4096,
                               "full": True}

    full = notebook_s3(stack, issue_grant(stack, "alice", project, "two"))
    before = stored(stack, "work", work), stored(stack, "outbox", outbox)
    assert put(full, "work", f"{work}b.bin") == "AccessDenied"
    assert put(full, "outbox", f"{outbox}table.csv", b"a,b\n1,2\n") == "AccessDenied"
    assert put(full, "work", f"{work}a.bin", b"overwrite") == "AccessDenied"
    assert (stored(stack, "work", work), stored(stack, "outbox", outbox)) == before
    # it still reads, lists and deletes there, so the researcher can make room
    assert full.get_object(Bucket="work", Key=f"{work}a.bin")["Body"].read() == b"x" * 4096
    assert [o["Key"] for o in full.list_objects_v2(Bucket="work", Prefix=work)["Contents"]] \
        == [f"{work}a.bin"]
    full.get_object(Bucket=setup.dataset, Key="data.parquet")  # its data as ever
    full.delete_object(Bucket="work", Key=f"{work}a.bin")
    assert stored(stack, "work", work) == {}

    room = notebook_s3(stack, issue_grant(stack, "alice", project, "three"))
    assert put(room, "work", f"{work}c.bin", b"small") == "ok"  # under the quota again


def test_a_grant_reuses_a_recent_measurement_only_while_it_found_room(stack):
    """Measuring lists every object, so a grant reuses a measurement younger than the
    policy's age that found room; one older, or one that found the project full, is
    measured again in MinIO (so deleting to make room shows at once)."""
    project = unique("meter")
    quota = Quota(servers=1, storage_gib=4096 / 1024 ** 3)
    s3 = stack.minio.root_s3()
    s3.put_object(Bucket="work", Key=f"{project}/a.bin", Body=b"x" * 100)
    assert quotas.storage_used(stack.zone, project) == 100
    s3.put_object(Bucket="work", Key=f"{project}/b.bin", Body=b"x" * 5000)
    assert quotas.recent_storage_used(stack.zone, project, quota, 60) == 100  # reused
    assert quotas.recent_storage_used(stack.zone, project, quota, 0) == 5100  # too old
    s3.delete_object(Bucket="work", Key=f"{project}/b.bin")
    assert quotas.recent_storage_used(stack.zone, project, quota, 60) == 100  # found full
    assert load_operations()["quotas"]["storage_measure_max_age_seconds"] > 0
