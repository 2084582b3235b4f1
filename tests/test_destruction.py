"""Project end, retention and destruction (파기), against the real MinIO and hub, with the
zone's clock moved: the end stops sessions and expires memberships; after the retention
period every version under work/ and outbox/ goes, the quarantine stays while locked and
goes after, the identities are gone, and a certificate lists every version, is audited
and is locked in the audit bucket. A raw dataset goes the same way on its date; a run
killed with SIGKILL is finished by the next one, with one certificate.

MinIO's object locks run on real time and its shortest default lock is one day, so the
frozen copies of a real submit stay locked for the whole test (they show "kept while
locked"); the copy that shows "destroyed once the lock ended" is written into the
project's quarantine prefix by the test with a lock of its own of a few seconds.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from minio.commonconfig import COMPLIANCE
from minio.retention import Retention
from sqlalchemy import select, update

from safezone import access
from safezone.clock import local
from safezone.destruction import service
from safezone.destruction.objects import list_versions
from safezone.models import AuditEvent, Destruction, Project, ProjectStatus
from safezone.permissions import SYSTEM

from .support import (
    issue_grant,
    keys_refused,
    notebook_s3,
    provision,
    steward_env,
    submit_and_wait,
    unique,
    wait_until,
)

QUARANTINE = "egress-quarantine"
TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,140\nBusan,M,45\nBusan,F,50\n"


def versions(stack, bucket: str, prefix: str) -> set[tuple[str, str | None]]:
    return {(i["key"], i["version_id"])
            for i in list_versions(stack.zone.broker.s3, bucket, prefix)}


def audit_count(stack) -> int:
    with stack.zone.sessions() as db:
        return len(db.scalars(select(AuditEvent.id)).all())


def events(stack, action: str, subject: str) -> list[AuditEvent]:
    with stack.zone.sessions() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action,
                                                        AuditEvent.subject == subject)))


def parts(stack, subject: str) -> list[dict]:
    response = stack.api("admin").get("/api/destructions", params={"subject": subject})
    assert response.status_code == 200, response.text
    return sorted(response.json(), key=lambda p: p["part"])


def certificate_of(stack, part: dict) -> dict:
    """The certificate as recorded, and its locked copy checked byte for byte."""
    admin = stack.api("admin")
    recorded = admin.get(f"/api/destructions/{part['id']}").json()
    stored = admin.get(f"/api/destructions/{part['id']}/certificate")
    assert stored.status_code == 200, stored.text
    assert hashlib.sha256(stored.content).hexdigest() == part["sha256"]
    return recorded["certificate"]


def test_project_end_then_retention_then_destruction_with_certificate(stack, clock):
    setup = provision(stack, member="alice")
    p, admin, alice = setup.project, stack.api("admin"), stack.api("alice")
    tomorrow = (local(stack.zone.now()) + timedelta(days=1)).date().isoformat()

    # a researcher can neither set the end, nor destroy, nor read certificates
    before = audit_count(stack)
    assert alice.put(f"/api/projects/{p}/end", json={"ends_on": tomorrow}).status_code == 403
    assert alice.post(f"/api/projects/{p}/destroy").status_code == 403
    assert alice.get("/api/destructions").status_code == 403
    assert audit_count(stack) == before
    past = admin.put(f"/api/projects/{p}/end", json={"ends_on": "2020-01-01"})
    assert past.status_code == 422 and "past" in past.json()["error"]
    ended = admin.put(f"/api/projects/{p}/end", json={"ends_on": tomorrow})
    assert ended.status_code == 200, ended.text
    assert events(stack, "project.end_set", f"project:{p}")

    # alice works: two versions of a work file where the bucket keeps them, an outbox table
    grant = issue_grant(stack, "alice", p)
    s3 = notebook_s3(stack, grant)
    s3.put_object(Bucket="work", Key=f"{p}/notes.txt", Body=b"first")
    s3.put_object(Bucket="work", Key=f"{p}/notes.txt", Body=b"second")
    s3.put_object(Bucket="work", Key=f"{p}/deep/x.bin", Body=os.urandom(2048))
    s3.delete_object(Bucket="work", Key=f"{p}/deep/x.bin")  # a marker where versioned
    s3.put_object(Bucket="work", Key=f"{p}/deep/y.bin", Body=b"y")
    s3.put_object(Bucket="outbox", Key=f"{p}/alice/t.csv", Body=TABLE)
    made = alice.post("/api/exports", json={"project": p, "title": "t", "files": [
        {"path": "t.csv", "justification": "aggregate table"}]})
    assert made.status_code == 201, made.text
    request_id = made.json()["id"]
    submit_and_wait(alice, request_id)
    frozen = versions(stack, QUARANTINE, f"{request_id}/")
    assert frozen, "the submit froze copies into the quarantine"

    # the end date passes: the sweeper archives, expires alice, revokes her keys
    clock.advance(timedelta(days=2))
    access.sweep(stack.zone)
    wait_until(lambda: keys_refused(s3, setup.dataset), 10)
    members = admin.get(f"/api/projects/{p}/members").json()
    assert {m["user"]: m["status"] for m in members}["alice"] == "expired"
    assert stack.api("spawner").post("/api/sessions", json={
        "user": "alice", "project": p}).status_code == 403
    assert events(stack, "project.ended", f"project:{p}")

    # not yet due: refused, nothing touched
    existing = (versions(stack, "work", f"{p}/"), versions(stack, "outbox", f"{p}/"))
    early = admin.post(f"/api/projects/{p}/destroy")
    assert early.status_code == 409 and "may be destroyed from" in early.json()["error"]
    assert (versions(stack, "work", f"{p}/"), versions(stack, "outbox", f"{p}/")) == existing
    assert parts(stack, p) == []

    # a quarantine copy whose lock ends in a few seconds (see the module's docstring)
    short_key = f"{request_id}/r0/short.csv"
    short_until = datetime.now(UTC) + timedelta(seconds=8)
    stack.zone.broker.s3.put_object(QUARANTINE, short_key, io.BytesIO(b"a,b\n1,2\n"), 8,
                                    retention=Retention(COMPLIANCE, short_until))

    # the retention period passes: the sweeper's destruction step
    clock.advance(timedelta(days=91))
    assert service.destroy_due(stack.zone, SYSTEM) == 1
    assert versions(stack, "work", f"{p}/") == set()
    assert versions(stack, "outbox", f"{p}/") == set()
    kept = versions(stack, QUARANTINE, f"{request_id}/")
    assert frozen <= kept and any(k == short_key for k, _ in kept), "locked: kept"
    assert grant["environment"]["AWS_ACCESS_KEY_ID"] not in \
        stack.zone.broker.session_identities()

    [first] = parts(stack, p)
    assert first["state"] == "stored" and first["complete"] is False
    cert = certificate_of(stack, first)
    listed = {(o["bucket"], o["key"], o["version_id"]) for o in cert["objects"]}
    assert listed == {("work", k, v) for k, v in existing[0]} | {
        ("outbox", k, v) for k, v in existing[1]}
    assert all(o["etag"] or o["sha256"] or o["delete_marker"] for o in cert["objects"])
    assert cert["destroyed_by"] == "service:safezone" and cert["policy"]["sha256"]
    assert [i["access_key"] for i in cert["identities"]] == [
        grant["environment"]["AWS_ACCESS_KEY_ID"]]
    pending = {(v["key"], v["version_id"]) for v in cert["pending"]["versions"]}
    assert pending == kept and cert["pending"]["destroyable_from"]
    [certified] = events(stack, "destruction.certified", f"project:{p}")
    assert certified.data["sha256"] == first["sha256"]
    verified = admin.get("/api/audit/verify").json()
    assert verified["intact"], verified
    assert alice.get(f"/api/destructions/{first['id']}").status_code == 403
    assert alice.get(f"/api/destructions/{first['id']}/certificate").status_code == 403
    again = admin.post(f"/api/projects/{p}/destroy")  # idempotent: nothing to do yet
    assert again.status_code == 409, again.text

    # the short lock ends (real time): the next part destroys it, the day-long ones stay
    time.sleep(max(0.0, (short_until - datetime.now(UTC)).total_seconds()) + 1)
    # MinIO refused day-locked copies the moved clock saw as free: tried again an hour on
    clock.advance(timedelta(hours=2))
    assert service.destroy_due(stack.zone, SYSTEM) == 1
    left = versions(stack, QUARANTINE, f"{request_id}/")
    assert not any(k == short_key for k, _ in left) and frozen <= left
    second = parts(stack, p)[1]
    cert2 = certificate_of(stack, second)
    assert cert2["previous_part_sha256"] == first["sha256"]
    assert [o["key"] for o in cert2["objects"]] == [short_key]
    assert {(v["key"], v["version_id"]) for v in cert2["pending"]["versions"]} == frozen
    assert admin.get("/api/audit/verify").json()["intact"]


def test_raw_dataset_is_destroyed_on_its_date_every_version(stack, clock):
    raw = unique("raw-rt")
    admin, steward = stack.api("admin"), stack.api("steward")
    assert admin.post("/api/datasets", json={"name": raw, "classification": "raw"}
                      ).status_code == 201
    root = stack.minio.root_s3()
    root.put_bucket_versioning(Bucket=raw, VersioningConfiguration={"Status": "Enabled"})
    root.put_object(Bucket=raw, Key="people.csv", Body=b"name\nHong\n")
    root.put_object(Bucket=raw, Key="people.csv", Body=b"name\nKim\n")
    root.put_object(Bucket=raw, Key="old.csv", Body=b"x")
    root.delete_object(Bucket=raw, Key="old.csv")
    before = versions(stack, raw, "")
    assert len(before) == 4

    today = local(stack.zone.now()).date().isoformat()
    assert stack.api("alice").put(f"/api/datasets/{raw}/retention",
                                  json={"retain_until": today}).status_code == 403
    set_ = steward.put(f"/api/datasets/{raw}/retention", json={"retain_until": today})
    assert set_.status_code == 200, set_.text
    assert admin.post(f"/api/datasets/{raw}/destroy").status_code == 409  # not yet
    assert stack.api("alice").post(f"/api/datasets/{raw}/destroy").status_code == 403

    clock.advance(timedelta(days=2))
    done = steward.post(f"/api/datasets/{raw}/destroy")
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "stored" and done.json()["complete"] is True
    assert not stack.zone.broker.bucket_exists(raw)
    [part] = parts(stack, raw)
    cert = certificate_of(stack, part)
    assert {(o["key"], o["version_id"]) for o in cert["objects"]} == before
    assert cert["totals"] == {"versions": 3, "delete_markers": 1,
                              "bytes": sum(o["size"] for o in cert["objects"])}
    assert events(stack, "destruction.certified", f"dataset:{raw}")[0].data["sha256"] \
        == part["sha256"]
    assert service.destroy_due(stack.zone, SYSTEM) == 0  # done: nothing more


KILLED_RUN = """
from safezone.config import Settings
from safezone.destruction import service
from safezone.permissions import ADMIN_SCOPE, Identity
from safezone.zone import Zone
zone = Zone.from_settings(Settings.from_env(), run_migrations=False)
service.destroy_project(zone, Identity("admin", "user", frozenset({ADMIN_SCOPE})), NAME)
"""


def test_killed_destruction_is_finished_by_the_next_run_with_one_certificate(stack,
                                                                            tmp_path):
    setup = provision(stack, member="alice")
    p, objects = setup.project, 3000
    s3 = stack.zone.broker.s3
    for i in range(objects):
        s3.put_object("work", f"{p}/f{i:05d}", io.BytesIO(b"x"), 1)
    # ended and past retention on the real clock (the run below has its own, unmoved)
    with stack.zone.sessions() as db, db.begin():
        db.execute(update(Project).where(Project.name == p).values(
            status=ProjectStatus.ARCHIVED,
            ends_at=stack.zone.now() - timedelta(days=200)))
    log = tmp_path / "run.log"
    with log.open("wb") as err:
        run = subprocess.Popen([sys.executable, "-c", KILLED_RUN.replace("NAME", repr(p))],
                               env=steward_env(stack.zone), stderr=err)

    def inventory_saved() -> bool:
        assert run.poll() is None, log.read_text()[-2000:]
        with stack.zone.sessions() as db:
            return db.scalar(select(Destruction.inventory).where(
                Destruction.subject == p)) is not None

    wait_until(inventory_saved, 120, 0.02)
    time.sleep(0.2)  # into the deletions
    run.send_signal(signal.SIGKILL)
    run.wait()
    left = len(versions(stack, "work", f"{p}/"))
    with stack.zone.sessions() as db:
        rows = list(db.scalars(select(Destruction).where(Destruction.subject == p)))
    assert [r.state for r in rows] == ["running"] and left < objects, "killed mid-way"

    assert service.destroy_due(stack.zone, SYSTEM) == 1
    assert versions(stack, "work", f"{p}/") == set()
    [part] = parts(stack, p)
    assert part["state"] == "stored" and part["complete"] is True
    cert = certificate_of(stack, part)
    assert len({o["key"] for o in cert["objects"]}) == objects
    assert len(events(stack, "destruction.certified", f"project:{p}")) == 1
    assert stack.api("admin").get("/api/audit/verify").json()["intact"]
