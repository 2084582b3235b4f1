"""Access records (접속기록) on the real stack: MinIO's own audit webhook, the hub's login
hook, session grants, export downloads, tamper evidence, retention and the monthly review.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from safezone.clock import local
from safezone.errors import InvalidInput
from safezone.models import AccessRecord, AuditEvent
from safezone.permissions import ADMIN_SCOPE, Identity
from safezone.records import chain, report, sources
from safezone.web.session import COOKIE, csrf_token

from .support import (
    PIPELINE_KEY,
    RECORDS_TOKEN,
    TINY_RECIPE,
    ZONE_NET,
    ThreadedServer,
    browser_session,
    download,
    issue_grant,
    notebook_s3,
    provision,
    steward_env,
    submit_and_wait,
    unique,
    wait_until,
)

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
CLEAN_TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,140\nBusan,M,45\nBusan,F,50\n"


def records(stack, **query) -> list[dict]:
    response = stack.api("admin").get("/api/records", params={"limit": 1000, **query})
    assert response.status_code == 200, response.text
    return response.json()


def count_records(zone) -> int:
    with zone.sessions() as db:
        return db.scalar(select(func.count()).select_from(AccessRecord))


def test_a_session_read_from_the_notebook_network_is_recorded(stack):
    setup = provision(stack)
    grant = issue_grant(stack, "alice", setup.project)
    started = records(stack, action="session.granted", account="alice")
    mine = [r for r in started if r["detail"].get("grant") == grant["grant_id"]]
    assert mine and mine[0]["project"] == setup.project and setup.dataset in mine[0]["dataset"]

    uri = grant["datasets"][0]["uri"].removeprefix("s3://")
    bucket, _, prefix = uri.partition("/")
    s3 = notebook_s3(stack, grant)
    key = prefix + "data.parquet"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    before = datetime.now(UTC)

    def read_recorded() -> list[dict]:
        return [r for r in records(stack, action="object.read", account="alice")
                if r["detail"].get("grant") == grant["grant_id"] and r["target"] == key]

    took = wait_until(lambda: read_recorded(), timeout=15, interval=0.2)
    found = read_recorded()[0]
    assert found["project"] == setup.project and found["dataset"] == setup.dataset
    assert found["outcome"] == "ok" and found["detail"]["bytes"] == len(body)
    assert ipaddress.ip_address(found["source"]) in ipaddress.ip_network(ZONE_NET.subnet)
    at = chain.parse_stamp(found["time"])
    assert abs((at - before).total_seconds()) < 30
    print(f"object read recorded {took:.2f} s after the read")

    ended = stack.api("spawner").delete(f"/api/sessions/{grant['grant_id']}")
    assert ended.status_code == 200, ended.text
    stopped = [r for r in records(stack, action="session.ended", account="alice")
               if r["detail"].get("grant") == grant["grant_id"]]
    assert stopped and stopped[0]["project"] == setup.project


def test_a_login_is_recorded_with_the_address_the_hub_saw(stack):
    client = httpx.Client(base_url=stack.hub_url, timeout=60,
                          headers={"X-Forwarded-For": "203.0.113.7",  # not believed,
                                   "X-Real-Ip": "203.0.113.8"})  # nor this (tornado would)
    client.get("/hub/login")
    response = client.post("/hub/login", data={
        "username": "grace", "password": stack.passwords["grace"],
        "_xsrf": client.cookies.get("_xsrf")})
    assert response.status_code == 302, response.text[:300]
    logins = records(stack, action="login", account="grace")
    assert logins, "the login was not recorded"
    assert logins[0]["source"] == "127.0.0.1"
    assert logins[0]["detail"]["via"] == "hub"


def test_a_refused_login_is_recorded_as_denied_and_only_for_known_reasons(stack):
    spawner = stack.api("spawner")
    before = count_records(stack.zone)
    odd = spawner.post("/api/records/logins", json={
        "user": "grace", "source": "198.51.100.9", "refused": "felt-like-it"})
    assert odd.status_code == 422 and count_records(stack.zone) == before
    refused = spawner.post("/api/records/logins", json={
        "user": "grace", "source": "198.51.100.9", "refused": "idp_subject",
        "subject": "0f6c-other-person"})
    assert refused.status_code == 201, refused.text
    found = [r for r in records(stack, action="login", account="grace")
             if r["source"] == "198.51.100.9"]
    assert [r["outcome"] for r in found] == ["denied"]
    assert found[0]["detail"]["refused"] == "idp_subject"
    assert found[0]["detail"]["idp_subject"] == "0f6c-other-person"


def test_the_webhook_refuses_without_its_token_and_writes_nothing(stack):
    entry = {"time": datetime.now(UTC).isoformat(), "api": {
        "name": "GetObject", "bucket": "deid-forged", "object": "x", "statusCode": 200},
        "remotehost": "10.0.0.1", "accessKey": "forged"}
    before = count_records(stack.zone)
    for headers in ({}, {"Authorization": "wrong"}, {"Authorization": f"Bearer {'0' * 48}"},
                    {"Authorization": f"token {stack.tokens['admin']}"}):
        response = httpx.post(f"{stack.control_plane.url}/api/records/minio", json=entry,
                              headers=headers, timeout=10)
        assert response.status_code == 401, response.text
        assert "forged" not in response.text
    assert count_records(stack.zone) == before
    # the real token is accepted (MinIO sends it as is)
    ok = httpx.post(f"{stack.control_plane.url}/api/records/minio", json=entry,
                    headers={"Authorization": RECORDS_TOKEN}, timeout=10)
    assert ok.status_code == 200 and ok.json() == {"recorded": 1}


def test_a_researcher_cannot_read_the_records(stack):
    before = count_records(stack.zone)
    for path in ("/api/records", "/api/records/verify", "/api/records/report?month=2026-11"):
        assert stack.api("alice").get(path).status_code == 403
    assert stack.api("alice").post("/api/records/sweep").status_code == 403
    page = browser_session(stack, "bob").get("pages/admin/records")
    assert page.status_code == 403
    assert "Access records" not in page.text and "접속기록 월간" not in page.text
    with stack.zone.sessions() as db:
        reviewed = db.scalar(select(func.count()).select_from(AccessRecord).where(
            AccessRecord.action == "records.reviewed", AccessRecord.account.in_(
                ["alice", "bob"])))
    assert reviewed == 0
    # the only new records are the page login's own OAuth hops (none of them a review)
    assert count_records(stack.zone) - before <= 2


def test_an_export_download_is_recorded(stack):
    setup = provision(stack)
    stack.minio.root_s3().put_object(Bucket="outbox", Key=f"{setup.project}/alice/t.csv",
                                     Body=CLEAN_TABLE)
    alice = stack.api("alice")
    made = alice.post("/api/exports", json={"project": setup.project, "title": "results",
                                            "files": [{"path": "t.csv",
                                                       "justification": "aggregate"}]})
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    view = submit_and_wait(alice, rid)
    assert view["status"] == "in_review", view
    file_id = view["files"][0]["id"]
    stack.api("reviewer").post(f"/api/exports/{rid}/votes", json={
        "file_id": file_id, "decision": "approve", "comment": "ok"}).raise_for_status()
    assert alice.get(f"/api/exports/{rid}").json()["status"] == "released"
    got = download(browser_session(stack, "alice"), rid, file_id)
    assert got.status_code == 200, got.text
    downloads = [r for r in records(stack, action="export.downloaded", account="alice")
                 if r["target"] == f"export:{rid}/t.csv"]
    assert downloads and downloads[0]["project"] == setup.project
    assert downloads[0]["source"] == "127.0.0.1"  # the browser, behind the hub's proxy
    steps = {r["action"] for r in records(stack, action="export.") if rid in r["target"]}
    assert {"export.created", "export.submit", "export.voted"} <= steps


def test_tampering_is_found_by_verify(zone):
    now = zone.now()
    chain.add(zone, [chain.Entry("u1", "object.read", now, "10.1.0.5", "p", "deid-a", f"k{i}")
                     for i in range(5)])
    chain.checkpoint(zone, ADMIN, "test")
    chain.add(zone, [chain.Entry("u1", "login", now, "10.1.0.5")])
    with zone.sessions() as db:
        assert chain.verify(db).intact
    with zone.sessions() as db, db.begin():  # someone edits a record in the database
        db.execute(update(AccessRecord).where(AccessRecord.seq == 3)
                   .values(account="someone-else"))
    with zone.sessions() as db:
        found = chain.verify(db)
    assert not found.intact
    assert [(f.kind, f.seq) for f in found.findings] == [("edited", 3)]

    # rewriting with recomputed hashes is caught by the checkpoint in the audit trail
    with zone.sessions() as db, db.begin():
        rows = list(db.scalars(select(AccessRecord).order_by(AccessRecord.seq)))
        prev = chain.GENESIS
        for row in rows:
            row.prev_hash = prev
            row.hash = chain.record_hash({**{k: getattr(row, k) for k in chain.HASHED},
                                          "prev_hash": prev})
            prev = row.hash
        head = db.get(chain.RecordsHead, 1)
        head.hash = prev
    with zone.sessions() as db:
        found = chain.verify(db)
    assert [(f.kind, f.seq) for f in found.findings] == [("rewritten", 5)]


def test_the_report_flags_off_hours_reads_and_outlier_volumes(zone):
    sources.install(zone)  # as create_app does: access-like audit events become records
    month = report.month_of("2026-10")
    weekday_noon = datetime(2026, 10, 6, 3, 0, tzinfo=UTC)  # Tue 12:00 in Seoul
    entries = [chain.Entry("u1", "object.read", weekday_noon + timedelta(days=d),
                           "10.1.0.5", "p", "deid-a", "k", detail={"bytes": 10})
               for d in (0, 1, 2, 7, 8, 9)]
    entries += [chain.Entry("u1", "object.read", weekday_noon + timedelta(days=3, minutes=m),
                            "10.1.0.5", "p", "deid-a", "k", detail={"bytes": 10})
                for m in range(30)]
    night = datetime(2026, 10, 14, 18, 30, tzinfo=UTC)  # Thu 03:30 in Seoul
    entries.append(chain.Entry("u2", "object.read", night, "10.1.0.9", "p", "deid-a", "n"))
    chain.add(zone, entries)
    done = report.read(zone, ADMIN, month.name)
    assert done["totals"]["reads"] == 37 and done["through"] == 37
    assert [(r["account"], r["target"]) for r in done["unusual"]["off_hours"]] == [("u2", "n")]
    assert [(o["account"], o["day"], o["reads"]) for o in done["unusual"]["outliers"]] == \
        [("u1", "2026-10-09", 30)]
    csv_text = report.as_csv(done)
    assert "off_hours" in csv_text and "outlier" in csv_text
    assert count_records(zone) == 37  # reading the report wrote nothing


def test_a_review_covers_the_records_through_the_one_the_report_showed(zone):
    """Records arriving after the report was read are not part of its review; a review
    through a record that does not exist is refused and writes nothing."""
    sources.install(zone)
    noon = datetime(2026, 10, 6, 3, 0, tzinfo=UTC)
    chain.add(zone, [chain.Entry("u1", "object.read", noon + timedelta(hours=h), "10.1.0.5",
                                 "p", "deid-a", "k") for h in range(3)])
    seen = report.read(zone, ADMIN, "2026-10")
    night = datetime(2026, 10, 14, 18, 30, tzinfo=UTC)  # a late read arrives meanwhile
    chain.add(zone, [chain.Entry("u2", "object.read", night, "10.1.0.9", "p", "deid-a", "n")])
    for bad in (seen["through"] + 2, 0, -1):
        with pytest.raises(InvalidInput, match="through must be"):
            report.mark_reviewed(zone, ADMIN, "2026-10", bad)
    assert count_records(zone) == 4
    done = report.mark_reviewed(zone, ADMIN, "2026-10", seen["through"])
    assert done == {"month": "2026-10", "through": 3, "records": 3, "by": "admin",
                    "unusual": {"off_hours": 0, "outliers": 0, "refused": 0,
                                "unverified_source": 0}}
    assert report.read(zone, ADMIN, "2026-10")["unusual"]["off_hours"][0]["account"] == "u2"
    assert report.reviews(zone, ADMIN, "2026-10")[0] | {"at": ""} == \
        {"by": "admin", "through": 3, "at": ""}
    assert report.reviews(zone, ADMIN, "2026-09") == []
    with zone.sessions() as db:  # audited, carried into the records, both chains intact
        event = db.scalars(select(AuditEvent).where(
            AuditEvent.action == "records.reviewed")).one()
        assert event.subject == "records:2026-10" and event.data["through"] == 3
        assert chain.verify(db).intact


def test_bad_months_are_refused(stack):
    for month in ("2026-13", "nov", "2026-1", "2026-11\n", "0000-01", "9999-12",
                  "\u0662\u0660\u0662\u0666-11"):  # the last: Arabic-Indic digits
        response = stack.api("admin").get("/api/records/report", params={"month": month})
        assert response.status_code == 422 and "YYYY-MM" in response.json()["error"]


def test_the_admin_page_shows_the_review(stack):
    page = browser_session(stack, "admin").get("pages/admin/records",
                                               params={"month": "2026-10"})
    assert page.status_code == 200, page.text[:300]
    assert 'id="totals"' in page.text and 'id="off-hours-h"' in page.text


def test_retention_sweep_with_a_moved_clock_keeps_the_chain_verifiable(stack, clock):
    admin = stack.api("admin")
    kept_before = count_records(stack.zone)
    assert kept_before > 0
    clock.advance(timedelta(days=731))
    fresh = stack.api("spawner").post("/api/records/logins", json={
        "user": "grace", "source": "198.51.100.4"})
    assert fresh.status_code == 201, fresh.text
    login_seq = records(stack, action="login", account="grace")[0]["seq"]
    swept = admin.post("/api/records/sweep")
    assert swept.status_code == 200, swept.text
    assert swept.json()["deleted"] >= kept_before
    remaining = records(stack)
    # everything older than two years went, as a prefix of the chain; MinIO may still be
    # sending reads of the real clock, which come after the kept login
    assert min(r["seq"] for r in remaining) == login_seq
    verified = admin.get("/api/records/verify").json()
    assert verified["intact"], verified
    assert verified["base_seq"] > 0
    with stack.zone.sessions() as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "records.swept")
                           .order_by(AuditEvent.seq.desc())).first()
    assert event.data["through_seq"] == verified["base_seq"]


def _read_with_request_id(stack, grant: dict, headers: dict[str, str] | None = None
                          ) -> tuple[str, str]:
    """GetObject of the grant's dataset with a session key from the notebook network
    (with ``headers`` added to the request); the key read and MinIO's request id."""
    uri = grant["datasets"][0]["uri"].removeprefix("s3://")
    bucket, _, prefix = uri.partition("/")
    s3 = notebook_s3(stack, grant)
    if headers:
        def add_headers(request, **_kwargs) -> None:
            for name, value in headers.items():
                request.headers[name] = value
        s3.meta.events.register("before-sign.s3.GetObject", add_headers)
    key = prefix + "data.parquet"
    got = s3.get_object(Bucket=bucket, Key=key)
    got["Body"].read()
    return key, got["ResponseMetadata"]["RequestId"]


def _reads_of(zone, request_id: str) -> list[AccessRecord]:
    with zone.sessions() as db:
        return [r for r in db.scalars(select(AccessRecord).where(
            AccessRecord.action == "object.read")) if r.detail.get("request_id") == request_id]


def test_a_read_while_the_control_plane_is_down_is_recorded_once_it_is_back(stack):
    """MinIO keeps its audit entries in its queue folder while the webhook is unreachable
    (also across a restart of MinIO) and sends them when it is back; the read is recorded
    exactly once."""
    setup = provision(stack)
    grant = issue_grant(stack, "alice", setup.project)
    queue = stack.minio.data_dir.with_name(f"{stack.minio.data_dir.name}-audit-queue")
    assert queue.is_dir() and queue.stat().st_mode & 0o777 == 0o700
    port = stack.control_plane.port
    stack.control_plane.stop()
    try:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{stack.control_plane.url}/api/health", timeout=5)
        key, request_id = _read_with_request_id(stack, grant)
        # the batch waits on disk (MinIO's folder of this target), not in memory: it
        # outlives a restart of MinIO while the control plane is still down
        wait_until(lambda: any(p.is_file() for p in queue.rglob("*")), timeout=15)
        time.sleep(2.5)  # a batch is written to the folder within a second of its entries
        stack.minio.process.stop()
        stack.minio.restart()
        time.sleep(4)  # MinIO retries every 3 s while the control plane is down
        assert _reads_of(stack.zone, request_id) == []
    finally:
        stack.control_plane = ThreadedServer(stack.zone, host=ZONE_NET.gateway,
                                             port=port).start()
    took = wait_until(lambda: _reads_of(stack.zone, request_id), timeout=30, interval=0.2)
    wait_until(lambda: not any(p.is_file() for p in queue.rglob("*")), timeout=30)
    found = _reads_of(stack.zone, request_id)
    assert len(found) == 1, [r.seq for r in found]
    assert found[0].account == "alice" and found[0].target == key
    assert found[0].dataset == setup.dataset and found[0].outcome == "ok"
    print(f"queued read recorded {took:.2f} s after the control plane came back")


def test_a_resent_batch_is_recorded_once(stack):
    """MinIO's batch body (one entry a line) posted twice, as MinIO resends a batch whose
    answer it did not get: the second post adds nothing."""
    now = datetime.now(UTC).isoformat()
    lines = [json.dumps({"time": now, "requestID": f"{'A' * 15}{n}", "accessKey": "resent",
                         "remotehost": "10.9.9.9", "api": {
                             "name": "GetObject", "bucket": "deid-resent", "object": f"k{n}",
                             "statusCode": 200, "tx": 3}}) for n in range(2)]
    body = ("\n".join(lines) + "\n").encode()
    post = lambda: httpx.post(f"{stack.control_plane.url}/api/records/minio",  # noqa: E731
                              content=body, headers={"Authorization": RECORDS_TOKEN},
                              timeout=10)
    first = post()
    assert first.status_code == 200 and first.json() == {"recorded": 2}, first.text
    before = count_records(stack.zone)
    again = post()
    assert again.status_code == 200 and again.json() == {"recorded": 0}, again.text
    assert count_records(stack.zone) == before


def test_a_forged_source_address_is_not_believed(stack):
    """A notebook that sends forwarding headers: X-Forwarded-For is ignored by MinIO here
    (_MINIO_API_XFF_HEADER=off), so the connection's address is recorded; X-Real-Ip is
    honoured by MinIO, so the read is recorded as unverified and the review lists it."""
    setup = provision(stack)
    grant = issue_grant(stack, "alice", setup.project)
    subnet = ipaddress.ip_network(ZONE_NET.subnet)
    other_sandbox = str(subnet.network_address + 77)
    key, ignored = _read_with_request_id(stack, grant, {"X-Forwarded-For": "203.0.113.9"})
    _, posed = _read_with_request_id(stack, grant, {"X-Real-Ip": other_sandbox})
    wait_until(lambda: _reads_of(stack.zone, ignored) and _reads_of(stack.zone, posed),
               timeout=20, interval=0.2)
    truth = _reads_of(stack.zone, ignored)[0]
    assert ipaddress.ip_address(truth.source) in subnet and truth.source != other_sandbox
    assert truth.detail["forwarding_headers"] == ["X-Forwarded-For"]
    assert "source_unverified" not in truth.detail
    claimed = _reads_of(stack.zone, posed)[0]
    assert claimed.source == f"unverified:{other_sandbox}"
    assert claimed.detail["source_unverified"] is True
    assert claimed.detail["forwarded"] == {"X-Real-Ip": other_sandbox}
    assert claimed.account == "alice" and claimed.target == key

    month = local(stack.zone.now()).strftime("%Y-%m")
    done = stack.api("admin").get("/api/records/report", params={"month": month})
    assert done.status_code == 200, done.text
    listed = done.json()["unusual"]["unverified_source"]
    assert [r["seq"] for r in listed if r["seq"] in (truth.seq, claimed.seq)] == [claimed.seq]
    assert "unverified source" in done.json()["summary"]


def _cli(zone, *args: str) -> subprocess.CompletedProcess:
    """``safezone …`` as a data steward runs it inside the zone (its own process)."""
    done = subprocess.run([sys.executable, "-m", "safezone.cli", *args], env=steward_env(zone),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return done


def test_a_stewards_deid_run_reads_are_recorded_as_the_steward(stack, tmp_path):
    """``safezone deid upload`` and ``deid run`` from the CLI: MinIO's records of the raw
    object's reads (by the run's own identity) name the steward and the raw dataset, not
    a MinIO key, and the upload and the run's start are records of the steward too."""
    raw, output = unique("raw-steward"), unique("deid-steward")
    (tmp_path / "in.csv").write_bytes(b"id,age\n1,40\n2,41\n3,42\n")
    (tmp_path / "recipe.yaml").write_text(TINY_RECIPE)
    (tmp_path / "key").write_bytes(PIPELINE_KEY)
    _cli(stack.zone, "deid", "upload", str(tmp_path / "in.csv"), "--to", f"{raw}/in.csv",
         "--steward", "steward")
    _cli(stack.zone, "deid", "run", "--recipe", str(tmp_path / "recipe.yaml"), "--input",
         f"{raw}/in.csv", "--dataset", output, "--key-file", str(tmp_path / "key"),
         "--steward", "steward")

    def raw_reads() -> list[dict]:
        return [r for r in records(stack, action="object.read") if r["dataset"] == raw]

    wait_until(lambda: len(raw_reads()) >= 2, timeout=20, interval=0.2)  # CSV: two passes
    reads = raw_reads()
    assert {r["account"] for r in reads} == {"steward"}, reads
    started = [r for r in records(stack, action="deid.run_started", account="steward")
               if r["dataset"] == raw]
    assert len(started) == 1 and started[0]["target"] == "in.csv"
    run_key = started[0]["detail"]["access_key"]
    assert run_key.startswith("SZP") and started[0]["detail"]["output"] == output
    for read in reads:
        assert read["target"] == "in.csv" and read["outcome"] == "ok"
        assert read["detail"]["access_key"] == run_key
        assert read["detail"]["deid_output"] == output and read["project"] == ""
    assert not [r for r in records(stack, account=f"minio:{run_key}")]
    uploaded = [r for r in records(stack, action="dataset.raw_uploaded", account="steward")
                if r["dataset"] == raw]
    assert uploaded and uploaded[0]["target"] == "in.csv"
    assert stack.api("admin").get("/api/records/verify").json()["intact"]


def test_the_admin_page_lists_reads_from_an_unverified_source(stack):
    """A read whose source MinIO took from a header the client sent (X-Real-Ip) is listed
    on the administrators' page, in either language; a researcher, a reviewer and a
    steward are refused the page and see none of it."""
    target = unique("posed-object")
    entry = {"time": datetime.now(UTC).isoformat(), "requestID": unique("REQ")[:16],
             "accessKey": "unverified-probe", "remotehost": "10.9.9.77",
             "requestHeader": {"X-Real-Ip": "10.9.9.77"},
             "api": {"name": "GetObject", "bucket": "deid-unverified", "object": target,
                     "statusCode": 200, "tx": 5}}
    posted = httpx.post(f"{stack.control_plane.url}/api/records/minio", json=entry,
                        headers={"Authorization": RECORDS_TOKEN}, timeout=10)
    assert posted.status_code == 200 and posted.json() == {"recorded": 1}, posted.text
    month = local(stack.zone.now()).strftime("%Y-%m")
    admin = browser_session(stack, "admin")
    for language, heading in (("en", "Reads from an unverified source address"),
                              ("ko", "접속 주소가 확인되지 않은 읽기")):
        page = admin.get("pages/admin/records", params={"month": month},
                         headers={"Accept-Language": language})
        assert page.status_code == 200, page.text[:300]
        assert 'id="unverified-h"' in page.text and heading in page.text
        table = page.text.split('id="unverified"', 1)[1].split("</table>", 1)[0]
        assert target in table and "unverified:10.9.9.77" in table
    for user in ("bob", "reviewer", "steward"):
        refused = browser_session(stack, user).get("pages/admin/records",
                                                   params={"month": month})
        assert refused.status_code == 403
        assert target not in refused.text and "unverified:10.9.9.77" not in refused.text
        assert "unverified-h" not in refused.text


def _written(zone) -> tuple[int, int]:
    """(the records' audit events — reviews, checkpoints —, review records): what a refused
    or read-only call must not change (other tests' reads may still arrive meanwhile)."""
    with zone.sessions() as db:
        return (db.scalar(select(func.count()).select_from(AuditEvent).where(
                    AuditEvent.action.like("records.%"))),
                db.scalar(select(func.count()).select_from(AccessRecord).where(
                    AccessRecord.action == "records.reviewed")))


def test_reading_the_review_writes_nothing_and_marking_it_is_a_post(stack):
    """The report (API, page in both languages, CLI) writes nothing. An administrator
    marks the month reviewed with the page's form (CSRF) or the API, through the record
    the report showed; the page then lists the review. A researcher, a reviewer and a
    steward are refused both routes, a form without its CSRF token is refused, and none of
    these writes a thing."""
    month = local(stack.zone.now()).strftime("%Y-%m")
    admin, page_admin = stack.api("admin"), browser_session(stack, "admin")
    before = _written(stack.zone)
    shown = admin.get("/api/records/report", params={"month": month}).json()
    for language, button in (("en", f"Mark {month} reviewed"), ("ko", f"{month} 점검 완료")):
        page = page_admin.get("pages/admin/records", params={"month": month},
                              headers={"Accept-Language": language})
        assert page.status_code == 200 and button in page.text
        assert f'name="through" value="{shown["through"]}"' in page.text
        title = page.text.split("<title>", 1)[1].split("</title>", 1)[0]
        assert "<" not in title and "_csrf" not in title, title  # plain text, no form
    csv_report = admin.get("/api/records/report", params={"month": month, "format": "csv"})
    assert csv_report.status_code == 200 and csv_report.text.startswith("seq,")
    env = {**os.environ, "SAFEZONE_URL": stack.control_plane.url,
           "SAFEZONE_TOKEN": stack.tokens["admin"]}
    cli = subprocess.run([sys.executable, "-m", "safezone.cli", "records", "report",
                          "--month", month], env=env, capture_output=True, text=True,
                         timeout=120)
    assert cli.returncode == 0 and "reviewed" not in cli.stderr, cli.stderr
    assert admin.get("/api/records/reviews", params={"month": month}).json() == []
    assert _written(stack.zone) == before

    form = {"month": month, "through": str(shown["through"])}

    def with_csrf(client: httpx.Client) -> dict[str, str]:
        return {**form, "_csrf": csrf_token(client.cookies.get(COOKIE))}

    for user in ("alice", "reviewer", "steward"):
        assert stack.api(user).post("/api/records/reviews", json={
            "month": month, "through": shown["through"]}).status_code == 403
        pages = browser_session(stack, user)
        refused = pages.post("pages/admin/records/reviewed", data=with_csrf(pages))
        assert refused.status_code == 403 and "reviews-h" not in refused.text
    for forged in ({}, {"_csrf": "guess"}):  # the admin's cookie, not the admin's form
        no_csrf = page_admin.post("pages/admin/records/reviewed", data={**form, **forged})
        assert no_csrf.status_code == 403, no_csrf.text[:300]
    beyond = admin.post("/api/records/reviews", json={"month": month, "through": 10**9})
    assert beyond.status_code == 422 and "through must be" in beyond.json()["error"]
    assert admin.post("/api/records/reviews", json={"month": "nov", "through": 0}
                      ).status_code == 422
    fake = page_admin.get(f"pages/admin/records?month={month}&done=reviewed",
                          headers={"Accept-Language": "en"})  # a link cannot claim a review
    assert fake.status_code == 200 and "marked reviewed." not in fake.text
    assert _written(stack.zone) == before

    done = page_admin.post("pages/admin/records/reviewed", data=with_csrf(page_admin))
    assert done.status_code == 303 and done.headers["location"].endswith(
        f"pages/admin/records?month={month}&done=reviewed")
    listed = page_admin.get(f"pages/admin/records?month={month}&done=reviewed",
                            headers={"Accept-Language": "en"})
    assert f"The records of {month} are marked reviewed." in listed.text
    table = listed.text.split('<table id="reviews">', 1)[1].split("</table>", 1)[0]
    assert "admin" in table and f"<td>{shown['through']}</td>" in table
    by_api = admin.post("/api/records/reviews", json={"month": month,
                                                       "through": shown["through"]})
    assert by_api.status_code == 201 and by_api.json()["through"] == shown["through"]
    by_cli = subprocess.run([sys.executable, "-m", "safezone.cli", "records", "report",
                             "--month", month, "--mark-reviewed"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert by_cli.returncode == 0 and f"reviewed / 점검 완료: {month} through record" \
        in by_cli.stderr, by_cli.stderr
    reviews = admin.get("/api/records/reviews", params={"month": month}).json()
    assert [(r["by"], r["through"]) for r in reviews[:2]] == [("admin", shown["through"])] * 2
    assert reviews[2]["by"] == "admin" and reviews[2]["through"] > shown["through"]
    assert _written(stack.zone)[1] - before[1] == 3
    assert admin.get("/api/records/verify").json()["intact"]
