"""The services under the control plane restart while it works (issue 13): MinIO in the
middle of a release, PostgreSQL under a mixed load. Real processes only: the control
plane is ``python -m safezone.api.main`` (tests/support.start_control_plane_process),
MinIO a server of the test's own, PostgreSQL 15 a private cluster made here with initdb
(never the server other tests use). Checked each time: nothing released twice or half,
no duplicated transition or audit event, the audit chain verifies, and the control plane
recovers without being restarted itself.

(The control plane itself killed at a failpoint: tests/test_faults.py.)"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from safezone import audit, memberships, projects
from safezone.exports import checking, review, service
from safezone.local.processes import free_port
from safezone.models import (
    AuditEvent,
    ExportRequest,
    ExportStatus,
    GrantStatus,
    SessionGrant,
)
from safezone.permissions import ADMIN_SCOPE, REVIEW_SCOPE, Identity

from .support import (
    fresh_database_url,
    launch_minio,
    make_zone,
    report_measure,
    start_control_plane_process,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
ALICE = Identity("alice", "user", frozenset())
REVIEWER = Identity("reviewer", "user", frozenset({REVIEW_SCOPE}))
TABLES = {"a.csv": b"g,count\nx,120\n", "b.csv": b"g,count\ny,140\n"}
PAUSE = 4.0  # seconds the control plane waits at the failpoint (MinIO stops meanwhile)


def audit_events(zone, subject: str) -> Counter:
    with zone.sessions() as db:
        return Counter(e.action for e in db.scalars(select(AuditEvent).where(
            AuditEvent.subject == subject)))


def chain_intact(zone) -> bool:
    with zone.sessions() as db:
        return audit.verify(db, zone.broker.list_anchors()) == []


def head_anchored(zone) -> bool:
    """The newest audit event is covered by an anchor in MinIO."""
    with zone.sessions() as db:
        head = audit.head(db)
    anchors = zone.broker.list_anchors()
    return bool(anchors) and max(a.seq for a in anchors) >= head.seq


def status_of(zone, request_id: str) -> str:
    with zone.sessions() as db:
        return db.get(ExportRequest, request_id).status.value


# -- 1. MinIO restarted in the middle of a release ---------------------------------------

@pytest.fixture
def own_minio(stack, tmp_path):
    """A MinIO of the test's own (stopped and started again on the same folder and port)
    and a zone on it that trusts the session stack's hub (its users' tokens)."""
    minio = launch_minio(tmp_path)
    zone = make_zone(minio, fresh_database_url(tmp_path),
                     hub_api_url=stack.zone.settings.hub_api_url,
                     service_token=stack.zone.settings.service_token)
    yield minio, zone
    minio.process.stop()


def one_vote_from_approval(zone) -> dict:
    """alice's request of two checked tables, the first already approved by the reviewer."""
    project = unique("p")
    projects.create_project(zone, ADMIN, project)
    memberships.approve_membership(zone, ADMIN, project, "alice",
                                   zone.now() + timedelta(days=1))
    for name, body in TABLES.items():
        zone.broker.write_object("outbox", f"{project}/alice/{name}", body)
    request = service.create_request(zone, ALICE, project, "t",
                                     [{"path": name} for name in TABLES])
    service.submit(zone, ALICE, request["id"])
    checking.check_pending(zone)
    request = service.get_request(zone, ALICE, request["id"])
    assert request["status"] == "in_review", request["status"]
    review.vote(zone, REVIEWER, request["id"], request["files"][0]["id"], "approve")
    return request


def released_copies(minio, request_id: str) -> dict[str, str]:
    root = minio.root_s3()
    listing = root.list_objects_v2(Bucket="released", Prefix=f"{request_id}/")
    return {o["Key"]: hashlib.sha256(root.get_object(Bucket="released", Key=o["Key"])
                                     ["Body"].read()).hexdigest()
            for o in listing.get("Contents", [])}


def expected_copies(request: dict) -> dict[str, str]:
    """The released keys of the request's tables and the SHA-256 of what was frozen."""
    return {f"{request['id']}/{f['id']}/{f['path']}": hashlib.sha256(TABLES[f["path"]])
            .hexdigest() for f in request["files"]}


# Where MinIO stops: before the first copy (the vote committed, the release not begun),
# between the two copies, after every copy and before the transition. The control plane
# pauses there (sleep), MinIO is stopped, the control plane goes on against a dead MinIO,
# then MinIO starts again on the same data folder and port.
STOP_WHEN = {
    "vote.approved": lambda minio, request: True,
    "release.file_copied": lambda minio, request: any(
        k in released_copies(minio, request["id"]) for k in expected_copies(request)),
    "release.copied": lambda minio, request: f"{request['id']}/safezone-check-record.json"
    in released_copies(minio, request["id"]),
}


@pytest.mark.parametrize("point", list(STOP_WHEN))
def test_minio_restarted_mid_release_releases_once(stack, own_minio, tmp_path, point):
    minio, zone = own_minio
    request = one_vote_from_approval(zone)
    request_id, subject = request["id"], f"export:{request['id']}"
    process, url = start_control_plane_process(zone, tmp_path / "plane.log", {
        "SAFEZONE_WORKERS": "1", "SAFEZONE_FAILPOINTS": f"{point}=sleep:{PAUSE}"})
    answer: dict = {}

    def last_vote() -> None:
        with httpx.Client(base_url=url, timeout=120, headers={
                "Authorization": f"token {stack.tokens['reviewer']}"}) as client:
            answer["response"] = client.post(f"/api/exports/{request_id}/votes", json={
                "file_id": request["files"][1]["id"], "decision": "approve",
                "comment": "", "override_reason": ""})

    voting = threading.Thread(target=last_vote)
    try:
        voting.start()
        wait_until(lambda: status_of(zone, request_id) == "approved"
                   and STOP_WHEN[point](minio, request), timeout=30, interval=0.05)
        minio.process.stop()
        voting.join(60)  # the control plane went on against the stopped MinIO
        assert not voting.is_alive()
        response = answer["response"]
        assert response.status_code == 200, response.text  # the vote stands either way
        during = status_of(zone, request_id)
        assert during in ("approved", "released")

        minio.restart()
        after_restart = status_of(zone, request_id)
        copies = released_copies(minio, request_id)
        with zone.sessions() as db:
            downloadable = [f.released_key for f in db.get(ExportRequest, request_id).files
                            if f.released_key]
        record = f"{request_id}/safezone-check-record.json"
        if after_restart == "approved":  # nothing of it can be downloaded yet
            assert downloadable == []
        # copies left by the interrupted attempt (MinIO was away for their removal) are
        # whole objects of the frozen bytes under the request's own keys, which the
        # sweeper's release overwrites; never anything else
        stray = sorted(copies) if after_restart == "approved" else []
        assert {k: v for k, v in copies.items() if k != record}.items() <= \
            expected_copies(request).items()

        took = wait_until(lambda: status_of(zone, request_id) == "released",
                          timeout=90, interval=0.5)
        copies = released_copies(minio, request_id)
        assert {k: v for k, v in copies.items() if k != record} == expected_copies(request)
        assert set(copies) == {*expected_copies(request), record}
        events = audit_events(zone, subject)
        assert events["export.release"] == 1 and events["export.voted"] == 2
        assert [a for a, n in events.items() if n > 1 and a != "export.voted"] == []
        wait_until(lambda: head_anchored(zone), timeout=30, interval=0.5)
        assert chain_intact(zone)
        report_measure(f"MinIO restarted at {point}: {during} while MinIO was down, "
                       f"{after_restart} after its restart (stray copies then: "
                       f"{len(stray)}), released {took:.1f} s after the restart")
    finally:
        voting.join(5)
        process.stop(timeout=20)


# -- 2. PostgreSQL restarted under load ---------------------------------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A PostgreSQL 15 cluster of the test's own: initdb into a fresh folder owned by the
    ``postgres`` OS user (initdb refuses root), on a free loopback port with a password."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sz-pg-"))
        self.data, self.log = self.root / "data", self.root / "postgres.log"
        self.port, self.password = free_port(), secrets.token_urlsafe(18)
        (self.root / "pw").write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.root / "pw", "postgres", "postgres")
        self.pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
                f"--pwfile={self.root / 'pw'}", "--no-sync", "--no-instructions",
                "-E", "UTF8", "--locale=C")
        self.ctl("start")

    def pg(self, tool: str, *args: str) -> None:
        runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        said = self.root / "pg_ctl.out"  # a file, not a pipe: the server inherits it
        with said.open("w") as out:
            done = subprocess.run([*runas, str(PG_BIN / tool), *args], stdout=out,
                                  stderr=subprocess.STDOUT, timeout=90)
        assert done.returncode == 0, f"{tool} {args[-1]}: {said.read_text()[-500:]}"

    def ctl(self, *args: str) -> None:
        """pg_ctl on this cluster (its port, its socket folder), waiting (-w) until done."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        self.pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                "-w", "-t", "60", *args)

    def url(self, database: str) -> str:
        return (f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{self.port}/"
                f"{database}")

    def create_database(self, name: str) -> str:
        admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 is not installed ({PG_BIN}); apt-get install "
                    "postgresql-15")
    cluster = PrivatePostgres()
    yield cluster
    cluster.destroy()


@dataclass
class Outcome:
    """One call of the load: when it ended, what it was and how it was answered."""

    at: float
    what: str
    status: int  # 0: no HTTP answer (transport error)
    error: str = ""


class Load:
    """Threads calling the control plane as the zone's users do, until ``stop()``:
    grants started and ended (the spawner), export requests created and submitted
    (alice), votes (the reviewer), reads (alice, bob, the administrator)."""

    def __init__(self, stack, zone, url: str, project: str) -> None:
        self.stack, self.zone, self.url, self.project = stack, zone, url, project
        self.outcomes: list[Outcome] = []
        self.voted: set[tuple[str, int]] = set()  # asked once each, answered or not
        self._stop = threading.Event()
        self._lock = threading.Lock()
        grants = [functools.partial(self._grants, user) for user in ("alice", "bob")]
        self.threads = [threading.Thread(target=self._run, args=(work,), daemon=True)
                        for work in (*grants, self._exports, self._votes, self._reads,
                                     self._reads)]

    def client(self, who: str) -> httpx.Client:
        token = self.stack.spawner_token if who == "spawner" else self.stack.tokens[who]
        return httpx.Client(base_url=self.url, timeout=20,
                            headers={"Authorization": f"token {token}"})

    def call(self, client: httpx.Client, what: str, method: str, path: str,
             **kwargs) -> httpx.Response | None:
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            self._note(Outcome(time.monotonic(), what, 0, type(exc).__name__))
            return None
        error = response.json().get("error", "") if response.status_code >= 400 and \
            response.headers.get("content-type", "").startswith("application/json") else ""
        self._note(Outcome(time.monotonic(), what, response.status_code, error))
        return response

    def _note(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self, work) -> None:
        n = 0
        while not self._stop.is_set():
            work(n)
            n += 1
            self._stop.wait(0.05)

    def _grants(self, user: str, n: int) -> None:
        with self.client("spawner") as spawner:
            got = self.call(spawner, "grant", "POST", "/api/sessions", json={
                "user": user, "project": self.project, "server_name": f"s{n % 2}"})
            if got is not None and got.status_code == 201:
                self.call(spawner, "end", "DELETE", f"/api/sessions/{got.json()['grant_id']}")

    def _exports(self, n: int) -> None:
        name = f"t{n}-{secrets.token_hex(3)}.csv"
        self.zone.broker.write_object("outbox", f"{self.project}/alice/{name}", TABLES["a.csv"])
        with self.client("alice") as alice:
            made = self.call(alice, "create", "POST", "/api/exports", json={
                "project": self.project, "title": name, "files": [{"path": name}]})
            if made is not None and made.status_code == 201:
                self.call(alice, "submit", "POST", f"/api/exports/{made.json()['id']}/submit")
            self._stop.wait(0.3)

    def _votes(self, n: int) -> None:
        with self.client("reviewer") as reviewer:
            queue = self.call(reviewer, "queue", "GET", "/api/review/queue")
            if queue is None or queue.status_code != 200:
                return
            for request in queue.json():
                if request.get("status") != "in_review":
                    continue
                for f in request.get("files", []):
                    if (request["id"], f["id"]) in self.voted:
                        continue
                    self.voted.add((request["id"], f["id"]))
                    self.call(reviewer, "vote", "POST", f"/api/exports/{request['id']}/votes",
                              json={"file_id": f["id"], "decision": "approve"})

    def _reads(self, n: int) -> None:
        who = ("alice", "bob", "admin")[n % 3]
        with self.client(who) as client:
            self.call(client, "read", "GET", ("/api/projects", "/api/me", "/api/exports")[n % 3])

    def first_success_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first 2xx answer that came after it."""
        with self._lock:
            times = [o.at for o in self.outcomes if o.at > moment and 200 <= o.status < 300]
        return min(times) - moment if times else None

    def between(self, start: float, end: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if start <= o.at <= end]


def wait_for_success_after(load: Load, moment: float, timeout: float = 30) -> float:
    wait_until(lambda: load.first_success_after(moment) is not None, timeout, 0.05)
    return load.first_success_after(moment)  # type: ignore[return-value]


@pytest.mark.db_independent  # brings its own PostgreSQL: the same in either CI pass
def test_postgres_restarted_under_load(stack, private_pg, tmp_path):
    zone = make_zone(stack.minio, private_pg.create_database("safezone"),
                     hub_api_url=stack.zone.settings.hub_api_url,
                     service_token=stack.zone.settings.service_token)
    project = unique("p")
    projects.create_project(zone, ADMIN, project)
    for user in ("alice", "bob"):
        memberships.approve_membership(zone, ADMIN, project, user,
                                       zone.now() + timedelta(days=1))
    process, url = start_control_plane_process(zone, tmp_path / "plane.log",
                                               {"SAFEZONE_WORKERS": "2"})
    load = Load(stack, zone, url, project)
    try:
        load.start()
        time.sleep(4)
        private_pg.ctl("-m", "fast", "restart")  # returns once it accepts connections
        back = time.monotonic()
        fast = wait_for_success_after(load, back)
        time.sleep(4)
        private_pg.ctl("-m", "immediate", "stop")  # a crash: recovery from the WAL next
        down = time.monotonic()
        time.sleep(3)  # calls meanwhile find no database
        private_pg.ctl("start")
        back_again = time.monotonic()
        crashed = wait_for_success_after(load, back_again)
        time.sleep(4)
        load.stop()
        assert process.popen.poll() is None  # recovered without a restart of its own

        outage = load.between(down + 0.5, back_again)
        statuses = Counter(o.status for o in load.outcomes)
        by_call = Counter(f"{o.what} {o.status}" for o in load.outcomes)
        report_measure(f"PostgreSQL restart -m fast: first 2xx {fast:.2f} s after it was "
                       f"back; stop -m immediate, 3 s down, start: first 2xx "
                       f"{crashed:.2f} s after; {len(load.outcomes)} calls, statuses "
                       f"{dict(sorted(statuses.items()))}; {dict(sorted(by_call.items()))}")
        assert [o for o in load.outcomes if (o.status >= 500 and o.status != 503)
                or o.status == 0] == []
        assert any(o.status == 503 for o in outage), Counter(o.status for o in outage)
        assert all(o.error for o in load.outcomes if o.status == 503)
        assert statuses[201] and statuses[200]
        assert fast < 10 and crashed < 10

        settled(zone)
    finally:
        load.stop()
        process.stop(timeout=20)
        zone.sessions.kw["bind"].dispose()


def settled(zone) -> None:
    """What the restarts left, once the sweeper and the check worker caught up: no grant
    pending, no request stuck, every transition and audit event once, the chain intact."""
    def in_flight() -> list[str]:
        with zone.sessions() as db:
            pending = db.scalars(select(SessionGrant.id).where(
                SessionGrant.status == GrantStatus.PENDING))
            stuck = db.execute(select(ExportRequest.id, ExportRequest.status).where(
                ExportRequest.status.in_([ExportStatus.SUBMITTED, ExportStatus.CHECKING,
                                          ExportStatus.APPROVED])))
            return [f"grant {g} pending" for g in pending] + [
                f"request {r} {status.value}" for r, status in stuck]

    try:
        took = wait_until(lambda: not in_flight(), timeout=60, interval=0.5)
    except TimeoutError:
        pytest.fail(f"still in flight a minute after the load: {in_flight()}")
    with zone.sessions() as db:
        states = Counter(r.value for r in db.scalars(select(ExportRequest.status)))
    report_measure(f"after the load: nothing pending or stuck {took:.1f} s later; "
                   f"requests {dict(sorted(states.items()))}")
    identities = set(zone.broker.session_identities())
    with zone.sessions() as db:
        events = list(db.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        grants = list(db.scalars(select(SessionGrant)))
    per_grant: Counter = Counter()
    per_request: Counter = Counter()
    for event in events:
        if event.action.startswith("session."):
            per_grant[(event.data.get("grant"), event.action)] += 1
        elif event.subject.startswith("export:") and event.action not in (
                "export.voted", "export.link_created", "export.downloaded"):
            per_request[(event.subject, event.action)] += 1
    assert [k for k, n in per_grant.items() if n > 1] == []
    assert [k for k, n in per_request.items() if n > 1] == []
    for grant in grants:  # an ended grant's keys are gone; a live one's work
        granted = per_grant[(grant.id, "session.granted")]
        if grant.status is GrantStatus.ACTIVE:
            assert granted == 1 and grant.access_key in identities, grant.id
        else:
            assert grant.access_key not in identities, (grant.id, grant.status)
    wait_until(lambda: head_anchored(zone), timeout=30, interval=0.5)
    assert chain_intact(zone)
