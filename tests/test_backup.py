"""Backups on the real MinIO and the configured database (SQLite, or PostgreSQL with
SAFEZONE_TEST_DATABASE_URL): back up, destroy, restore into a fresh zone, verify the audit
chain and the pins, then grant a session and release an export through the restored zone.
Refusals (a tampered snapshot, a zone with data) assert that nothing was written."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from safezone import audit, datasets, projects
from safezone.backup import database
from safezone.backup.restore import restore
from safezone.backup.snapshot import BackupError, describe_files
from safezone.backup.steps import Steps
from safezone.backup.write import backup
from safezone.deid import pipeline
from safezone.errors import StorageError
from safezone.local.demo import DEID_DATASET, DEMO_PROJECT, seed
from safezone.models import DatasetStatus
from safezone.permissions import ADMIN_SCOPE, STEWARD_SCOPE, Identity
from safezone.zone import Zone

from .support import (
    PG_URL_VAR,
    Stack,
    ThreadedServer,
    attested_dataset,
    fresh_database_url,
    issue_grant,
    launch_minio,
    make_zone,
    notebook_s3,
    steward_env,
    submit_and_wait,
    unique,
)

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
STEWARD = Identity("steward", "user", frozenset({STEWARD_SCOPE}))
KEY = b"backup-test-pseudonym-key-0123456789"
TABLE = b"sido,sex,count\nSeoul,M,120\nSeoul,F,140\nBusan,M,45\nBusan,F,50\n"


def cli(zone, *args: str) -> subprocess.CompletedProcess:
    """``safezone …`` with the zone's own settings, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "safezone.cli", *args], env=steward_env(zone),
                          capture_output=True, text=True, timeout=600)


def fresh_zone(minio, tmp_path: Path, like=None):
    """A zone never started: empty database, and an anchor prefix of its own (its audit
    anchors are gone, as after losing the audit bucket)."""
    settings = like.settings if like else None
    return make_zone(minio, fresh_database_url(tmp_path),
                     hub_api_url=settings.hub_api_url if settings else "",
                     service_token=settings.service_token if settings else "")


def destroy(zone) -> None:
    """The zone's database is gone: the SQLite file, or the PostgreSQL database."""
    url = zone.settings.database_url
    zone.sessions.kw["bind"].dispose()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(parsed.database + suffix).unlink(missing_ok=True)
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


def one_error_line(stderr: str) -> bool:
    """The failure is one line, the last (progress lines with times come before it)."""
    lines = stderr.strip().splitlines()
    return [line for line in lines if line.startswith("error:")] == lines[-1:]


def busy_table(zone) -> str | None:
    return database.first_row_table(zone.sessions.kw["bind"])


def some_history(zone, n: int = 3) -> None:
    for _ in range(n):
        projects.create_project(zone, ADMIN, unique("bk"), "backup test")


@pytest.fixture
def own_minio(tmp_path):
    """A MinIO of the test's own: the demo's dataset names are fixed."""
    handle = launch_minio(tmp_path)
    yield handle
    handle.process.stop()


def test_demo_zone_backup_destroy_restore_then_grant_and_export(stack, own_minio, tmp_path):
    demo = fresh_zone(own_minio, tmp_path, like=stack.zone)
    seed(demo, KEY)
    with demo.sessions() as db:
        head = audit.head(db)
    snap = tmp_path / "snapshot"
    made = cli(demo, "backup", str(snap))
    assert made.returncode == 0, made.stderr
    digest = made.stdout.split("manifest sha256 ")[1].split()[0]
    manifest = json.loads((snap / "manifest.json").read_text())
    assert manifest["audit_head"] == {"seq": head.seq, "hash": head.hash}
    assert manifest["counts"]["datasets_pinned"] == 1
    assert manifest["database"]["schema_revision"]
    assert oct((snap / manifest["database"]["file"]).stat().st_mode & 0o777) == "0o600"
    anchors = json.loads((snap / "anchors.json").read_text())["anchors"]
    assert anchors and anchors[-1] == [head.seq, head.hash]

    destroy(demo)
    fresh = fresh_zone(own_minio, tmp_path, like=stack.zone)
    assert fresh.broker.list_anchors() == []
    done = cli(fresh, "restore", str(snap), "--manifest-sha256", digest, "--by", "ops")
    assert done.returncode == 0, done.stderr
    assert f"{len(anchors)} anchors re-written" in done.stdout
    assert "audit chain intact" in done.stdout
    assert {(a.seq, a.hash) for a in fresh.broker.list_anchors()} >= {tuple(a) for a in anchors}
    assert pipeline.verify(fresh, STEWARD, DEID_DATASET) == []

    server = ThreadedServer(fresh).start()
    try:
        zone = Stack(own_minio, fresh, server, stack.hub, stack.hub_url, stack.passwords,
                     tokens=stack.tokens, spawner_token=stack.spawner_token)
        verified = zone.api("admin").get("/api/audit/verify").json()
        assert verified["intact"] and verified["events"] == head.seq + 1  # + zone.restored
        grant = issue_grant(zone, "alice", DEMO_PROJECT)
        s3 = notebook_s3(zone, grant)
        assert s3.get_object(Bucket=DEID_DATASET, Key="data.parquet")["Body"].read()[:4] == b"PAR1"
        s3.put_object(Bucket="outbox", Key=f"{DEMO_PROJECT}/alice/t.csv", Body=TABLE)
        created = zone.api("alice").post("/api/exports", json={
            "project": DEMO_PROJECT, "title": "after restore",
            "files": [{"path": "t.csv", "justification": "aggregate table"}]})
        assert created.status_code == 201, created.text
        request = submit_and_wait(zone.api("alice"), created.json()["id"])
        assert request["status"] == "in_review", request
        voted = zone.api("reviewer").post(f"/api/exports/{request['id']}/votes", json={
            "file_id": request["files"][0]["id"], "decision": "approve"})
        assert voted.json()["status"] == "released", voted.text
        assert zone.api("admin").get("/api/audit/verify").json()["intact"]
    finally:
        server.stop()


def _snapshot(zone, tmp_path: Path) -> Path:
    some_history(zone)
    target = tmp_path / f"snap-{uuid.uuid4().hex[:6]}"
    backup(zone, str(target), Steps())
    return target


@pytest.mark.parametrize("damage", ["database", "pins", "anchors", "extra file",
                                    "no manifest"])
def test_a_tampered_snapshot_is_refused_before_anything_is_written(zone, minio, tmp_path,
                                                                    damage):
    snap = _snapshot(zone, tmp_path)
    manifest = json.loads((snap / "manifest.json").read_text())
    if damage == "database":
        with (snap / manifest["database"]["file"]).open("r+b") as handle:
            handle.seek(200)
            byte = handle.read(1)
            handle.seek(200)
            handle.write(bytes([byte[0] ^ 1]))
    elif damage == "pins":
        (snap / "pins.json").write_text('{"deid-x": {}}')
    elif damage == "anchors":
        doc = json.loads((snap / "anchors.json").read_text())
        doc["anchors"].append([10**6, "a" * 64])
        (snap / "anchors.json").write_text(json.dumps(doc))
    elif damage == "extra file":
        (snap / "notes.txt").write_text("hello")
    else:
        (snap / "manifest.json").unlink()
    fresh = fresh_zone(minio, tmp_path)
    if damage == "database":  # through the command: one line, exit 1
        refused = cli(fresh, "restore", str(snap))
        assert refused.returncode == 1 and one_error_line(refused.stderr)
        assert "does not match its SHA-256" in refused.stderr
    else:
        with pytest.raises(BackupError, match=r"refused|not a complete snapshot"):
            restore(fresh, str(snap), Steps(), by="ops")
    assert busy_table(fresh) is None  # nothing in the database
    assert fresh.broker.list_anchors() == []  # no anchor written


def _rewrite_manifest(snap: Path) -> None:
    """Make the manifest agree with the snapshot's files again, as someone who can
    rewrite the whole snapshot would (no --manifest-sha256 to catch it)."""
    manifest = json.loads((snap / "manifest.json").read_text())
    manifest["files"] = describe_files(snap, list(manifest["files"]))
    (snap / "manifest.json").write_text(json.dumps(manifest))


def _alter_one_event(snap: Path) -> None:
    """One audit event's data changed in the snapshot's database (hashes left alone)."""
    manifest = json.loads((snap / "manifest.json").read_text())
    copy = sqlite3.connect(snap / manifest["database"]["file"])
    try:
        copy.execute("UPDATE audit_events SET data = ? WHERE seq = ?",
                     (json.dumps({"name": "forged"}), manifest["audit_head"]["seq"] - 1))
        copy.commit()
    finally:
        copy.close()


def _alter_one_pin(snap: Path) -> None:
    pins = json.loads((snap / "pins.json").read_text())
    name = sorted(pins)[0]
    key = sorted(pins[name]["objects"])[0]
    pins[name]["objects"][key]["sha256"] = "0" * 64
    (snap / "pins.json").write_text(json.dumps(pins))


@pytest.mark.skipif(bool(os.environ.get(PG_URL_VAR)), reason="edits the SQLite snapshot")
@pytest.mark.parametrize("damage", ["event", "pin"])
def test_a_consistently_rewritten_snapshot_that_does_not_verify_writes_nothing(
        zone, minio, tmp_path, damage):
    """The files match a rewritten manifest, but an event or a pin was changed: the
    restore refuses with one line before any anchor is written, and the fresh zone's
    database is left as it was (its empty tables, no rows)."""
    if damage == "pin":
        attested_dataset(zone, unique("deid-bk"))
    snap = _snapshot(zone, tmp_path)
    (_alter_one_event if damage == "event" else _alter_one_pin)(snap)
    _rewrite_manifest(snap)
    fresh = fresh_zone(minio, tmp_path)
    engine = fresh.sessions.kw["bind"]
    tables, anchors = sorted(inspect(engine).get_table_names()), fresh.broker.list_anchors()
    refused = cli(fresh, "restore", str(snap))
    assert refused.returncode == 1 and one_error_line(refused.stderr), refused.stderr
    assert ("audit chain does not verify" if damage == "event"
            else "does not match the snapshot's manifest") in refused.stderr
    assert fresh.broker.list_anchors() == anchors == []  # no anchor object written
    assert sorted(inspect(engine).get_table_names()) == tables and busy_table(fresh) is None


def test_a_wrong_manifest_hash_is_refused(zone, minio, tmp_path):
    snap = _snapshot(zone, tmp_path)
    fresh = fresh_zone(minio, tmp_path)
    with pytest.raises(BackupError, match="expected SHA-256"):
        restore(fresh, str(snap), Steps(), by="ops", expected_sha256="0" * 64)
    assert busy_table(fresh) is None and fresh.broker.list_anchors() == []


def test_restore_into_a_zone_with_data_is_refused(zone, tmp_path):
    snap = _snapshot(zone, tmp_path)
    some_history(zone, 1)
    with zone.sessions() as db:
        before = audit.head(db)
    anchors = zone.broker.list_anchors()
    refused = cli(zone, "restore", str(snap))
    assert refused.returncode == 1
    assert one_error_line(refused.stderr)
    assert "not empty" in refused.stderr
    with zone.sessions() as db:
        assert audit.head(db) == before
    assert zone.broker.list_anchors() == anchors


def test_backup_while_writes_happen_restores_a_consistent_zone(zone, minio, tmp_path):
    some_history(zone, 2)
    stop, written, errors = threading.Event(), [], []

    def writer() -> None:
        while not stop.is_set():
            try:
                projects.create_project(zone, ADMIN, unique("w"), "written during the backup")
                written.append(1)
            except Exception as exc:  # reported below; the test fails on any
                errors.append(exc)
                return

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 5:
            threading.Event().wait(0.02)
        during = len(written)
        target = tmp_path / "snap"
        made = backup(zone, str(target), Steps())
        while len(written) < during + 5:
            threading.Event().wait(0.02)
    finally:
        stop.set()
        thread.join(30)
    assert not errors
    with zone.sessions() as db:
        assert audit.head(db).seq > made.manifest["audit_head"]["seq"]  # writes went on
    assert all(seq <= made.manifest["audit_head"]["seq"] for seq, _ in
               json.loads((target / "anchors.json").read_text())["anchors"])
    fresh = fresh_zone(minio, tmp_path)
    done = restore(fresh, str(target), Steps(), by="ops")
    assert done.ok, (done.findings, done.pin_problems)
    with fresh.sessions() as db:
        assert audit.verify(db, fresh.broker.list_anchors()) == []
        assert audit.head(db).seq == made.manifest["audit_head"]["seq"] + 1  # + zone.restored


def test_restore_checks_the_pins_against_minio(zone, minio, tmp_path):
    """A dataset whose object changed in MinIO since the snapshot is withdrawn (audited)
    and the restore says so; the rest of the zone comes back."""
    name = unique("deid-bk")
    attested_dataset(zone, name)
    datasets.change_status(zone, ADMIN, name, "publish")
    snap = _snapshot(zone, tmp_path)
    minio.root_s3().put_object(Bucket=name, Key="data.parquet", Body=b"not the attested data")
    fresh = fresh_zone(minio, tmp_path)
    done = restore(fresh, str(snap), Steps(), by="ops", full_pin_check=False)
    assert list(done.pin_problems) == [name] and not done.ok
    assert "replaced" in done.pin_problems[name][0]
    assert datasets.get_location(fresh, name).status is DatasetStatus.WITHDRAWN
    assert done.findings == []  # the withdrawal is audited and anchored like any change


def test_an_older_snapshot_over_newer_anchors_names_the_lost_events(zone, tmp_path):
    """MinIO kept anchors of events after the snapshot: the restore says so and audit
    verify names the lost events; the zone itself comes back."""
    snap = _snapshot(zone, tmp_path)
    head = json.loads((snap / "manifest.json").read_text())["audit_head"]["seq"]
    some_history(zone, 2)  # anchored, then lost with the database
    destroy(zone)
    same_prefix = Zone.from_settings(replace(zone.settings,
                                             database_url=fresh_database_url(tmp_path)))
    done = restore(same_prefix, str(snap), Steps(), by="ops")
    assert done.anchors_written == 0 and done.later_anchors >= 1 and not done.ok
    assert {f.kind for f in done.findings} & {"deleted", "rewritten"}
    assert min(f.seq for f in done.findings) == head + 1


def test_a_failed_backup_leaves_no_snapshot(fragile, tmp_path):
    minio, zone = fragile
    some_history(zone, 1)
    minio.process.stop()
    target = tmp_path / "out" / "snap"
    target.parent.mkdir()
    with pytest.raises(StorageError):
        backup(zone, str(target), Steps())
    assert list(target.parent.iterdir()) == []  # neither the snapshot nor its temp folder
    minio.restart()


def test_a_snapshot_is_never_written_over_another(zone, tmp_path):
    snap = _snapshot(zone, tmp_path)
    before = sorted(p.name for p in snap.iterdir())
    refused = cli(zone, "backup", str(snap))
    assert refused.returncode == 1 and "already exists" in refused.stderr
    assert sorted(p.name for p in snap.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []


def test_snapshot_in_a_bucket_and_restore_from_it(zone, minio, tmp_path):
    some_history(zone)
    bucket = f"backups-{uuid.uuid4().hex[:8]}"
    refused = cli(zone, "backup", "s3://audit/snap")
    assert refused.returncode == 1 and "zone's own buckets" in refused.stderr
    made = backup(zone, f"s3://{bucket}/nightly/1", Steps())
    keys = {o["Key"] for o in minio.root_s3().list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {f"nightly/1/{n}" for n in made.manifest["files"]} | {
        "nightly/1/manifest.json"}
    fresh = fresh_zone(minio, tmp_path)
    done = restore(fresh, f"s3://{bucket}/nightly/1", Steps(), by="ops",
                   expected_sha256=made.manifest_sha256)
    assert done.ok and done.anchors_written == made.manifest["counts"]["anchors"]


@pytest.mark.skipif(not os.environ.get(PG_URL_VAR), reason="PostgreSQL pass only")
def test_a_sqlite_snapshot_does_not_restore_into_postgresql(minio, tmp_path):
    sqlite_zone = make_zone(minio, f"sqlite:///{tmp_path / 'lite.sqlite'}")
    snap = _snapshot(sqlite_zone, tmp_path)
    fresh = fresh_zone(minio, tmp_path)
    with pytest.raises(BackupError, match="sqlite database"):
        restore(fresh, str(snap), Steps(), by="ops")
    assert busy_table(fresh) is None

