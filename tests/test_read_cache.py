"""The lists kept in memory (safezone/read_cache.py) are served from there until a write
changes them — by this process or any other — and never cross from one caller to another.
Real control plane, hub and database (SQLite, or PostgreSQL's LISTEN/NOTIFY)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from safezone import projects
from safezone.permissions import ADMIN_SCOPE, Identity
from safezone.read_cache import ReadModel
from safezone.zone import Zone

from .support import provision, unique, wait_until

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))


def listening(zone: Zone) -> None:
    """Wait for the change feed to vouch for generations (PostgreSQL: its LISTEN)."""
    wait_until(lambda: zone.reads.feed.generation(()) is not None, timeout=10, interval=0.01)


def names(stack, user: str) -> list[str]:
    response = stack.api(user).get("/api/projects")
    assert response.status_code == 200, response.text
    return [p["name"] for p in response.json()]


def test_lists_come_from_memory_and_a_write_shows_at_once(stack):
    provision(stack, "alice")
    listening(stack.zone)

    def round_from_memory() -> bool:
        hits = stack.zone.reads.hits
        for route in ("/api/projects", "/api/catalogue", "/api/exports"):
            stack.api("alice").get(route).raise_for_status()
        return stack.zone.reads.hits >= hits + 3

    # a round of three reads that touched no database (on SQLite any commit anywhere, such
    # as a MinIO audit record arriving, moves every table on: a round may miss)
    assert any(round_from_memory() for _ in range(10))

    made = unique("proj")
    stack.api("admin").post("/api/projects", json={"name": made}).raise_for_status()
    assert made in names(stack, "admin")  # the writer reads its own write
    assert made not in names(stack, "alice")  # not hers: the cached list is filtered per caller


def test_cached_requests_never_reach_another_caller(stack):
    found = provision(stack, "alice")
    alice = stack.api("alice")
    stack.minio.root_s3().put_object(Bucket="outbox", Key=f"{found.project}/alice/t.csv",
                                     Body=b"group,count\n")
    made = alice.post("/api/exports", json={"project": found.project, "title": "mine",
                                            "files": [{"path": "t.csv",
                                                       "justification": "aggregate"}]})
    assert made.status_code == 201, made.text
    assert made.json()["id"] in [r["id"] for r in alice.get("/api/exports").json()]
    assert made.json()["id"] in [r["id"] for r in alice.get("/api/exports").json()]
    theirs = stack.api("bob").get("/api/exports")
    assert theirs.status_code == 200
    assert made.json()["id"] not in [r["id"] for r in theirs.json()]


def test_another_process_s_write_reaches_the_lists(stack):
    """Another process (a second engine: its own pool, feed and sessions, as a CLI or a
    second worker has) creates a project; the control plane's cached list shows it."""
    names(stack, "admin")  # cached now
    other = Zone.from_settings(stack.zone.settings, run_migrations=False)
    made = unique("proj")
    projects.create_project(other, ADMIN, made, "from another process")
    took = wait_until(lambda: made in names(stack, "admin"), timeout=5, interval=0.01)
    print(f"\nread cache: another process's write seen after {took * 1000:.0f} ms "
          f"({stack.zone.reads.feed.dialect})")
    other.sessions.kw["bind"].dispose()


def test_an_entry_ends_when_what_it_says_stops_being_true(zone):
    """A value that is true until a moment (a membership's expiry) is reloaded after it,
    in zone time (the tests' moved clock)."""
    loads: list[int] = []

    def load(z):
        loads.append(1)
        return len(loads), z.now() + timedelta(hours=1)

    model = ReadModel("until-test", ("projects",), load)
    listening(zone)
    assert zone.reads.read(model, zone) == 1
    assert zone.reads.read(model, zone) == 1
    zone.clock.advance(timedelta(hours=2))
    assert zone.reads.read(model, zone) == 2


def test_a_rolled_back_write_changes_nothing_and_a_committed_one_does(zone):
    model = ReadModel("count-test", ("projects",), lambda z: (object(), None))
    with zone.sessions() as db:  # SQLite: a pooled connection's first use moves data_version
        db.execute(text("SELECT 1"))
    listening(zone)
    first = zone.reads.read(model, zone)
    with pytest.raises(RuntimeError), zone.sessions() as db, db.begin():
        db.execute(text("UPDATE projects SET title = title"))
        raise RuntimeError("abandoned")
    assert zone.reads.read(model, zone) is first
    projects.create_project(zone, ADMIN, unique("proj"))
    assert zone.reads.read(model, zone) is not first


def test_while_postgresql_notifications_are_lost_nothing_is_cached(zone):
    """The listener's connection is killed: until it is back, every read goes to the
    database, so another process's write is never hidden behind a stale entry."""
    if zone.reads.feed.dialect != "postgresql":
        pytest.skip("PostgreSQL pass only: SQLite zones see other processes' commits "
                    "through PRAGMA data_version (the test above)")
    admin = ADMIN
    listening(zone)
    with zone.sessions() as db:
        killed = db.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE query LIKE 'LISTEN safezone_changes%'")).all()
    assert killed
    wait_until(lambda: zone.reads.feed.generation(("projects",)) is None, timeout=10,
               interval=0.01)
    other = Zone.from_settings(zone.settings, run_migrations=False)
    made = unique("proj")
    projects.create_project(other, admin, made)
    assert made in [p["name"] for p in projects.list_projects(zone, admin)]
    listening(zone)
    assert made in [p["name"] for p in projects.list_projects(zone, admin)]
    other.sessions.kw["bind"].dispose()


def test_the_catalogue_is_held_once_whatever_host_callers_name(stack):
    """The report's address follows the caller's Host header, but the entries are held
    once: a cache keyed by a header anyone sets could be made to grow without bound."""
    provision(stack, "alice")
    hosts = [f"h{n}.example" for n in range(5)]
    for host in hosts:
        response = stack.api("alice").get("/api/catalogue", headers={"Host": host})
        assert response.status_code == 200, response.text
        assert response.json()
        assert all(e["report"].startswith(f"http://{host}/") for e in response.json())
    held = [k for k in stack.zone.reads._entries if k[0] == "catalogue"]
    assert len(held) == 1, held


def test_a_write_in_any_form_of_sql_moves_the_lists_on(zone):
    """A statement with a leading comment, a schema-qualified table or a writing CTE still
    counts as a write of its table (or of every table)."""
    model = ReadModel("forms-test", ("projects",), lambda z: (object(), None))
    listening(zone)
    for statement in ("/* note */ UPDATE projects SET title = title",
                      "-- note\nUPDATE ONLY projects SET title = title"
                      if zone.reads.feed.dialect == "postgresql" else
                      "-- note\nUPDATE main.projects SET title = title",
                      "WITH t AS (SELECT 1) UPDATE projects SET title = title"):
        before = zone.reads.read(model, zone)
        with zone.sessions() as db, db.begin():
            db.execute(text(statement))
        assert zone.reads.read(model, zone) is not before, statement


class _Blackhole:
    """A TCP relay to PostgreSQL whose existing connections can be made to go silent (a
    network path lost without a reset: a failover, a partition, a NAT timeout)."""

    def __init__(self, port: int) -> None:
        import socket
        import threading

        self.server = socket.create_server(("127.0.0.1", 0))
        self.port, self.upstream = self.server.getsockname()[1], port
        self.pairs: list = []
        self.silent: set = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            client, _ = self.server.accept()
            pair = (client, socket.create_connection(("127.0.0.1", self.upstream)))
            self.pairs.append(pair)
            for a, b in (pair, pair[::-1]):
                threading.Thread(target=self._pump, args=(a, b, pair), daemon=True).start()

    def _pump(self, a, b, pair) -> None:
        import time

        while True:
            try:
                data = a.recv(65536)
            except OSError:
                return
            if not data:
                return
            while pair in self.silent:
                time.sleep(0.05)  # held, never closed
            try:
                b.sendall(data)
            except OSError:
                return

    def silence(self) -> None:
        self.silent |= set(self.pairs)


def test_a_listener_cut_off_silently_stops_the_cache(tmp_path):
    """The listener's network goes silent (no reset): within seconds nothing is served
    from memory, so another replica's change (a rejection) shows."""
    from sqlalchemy.engine import make_url

    from safezone.config import Settings, StorageSettings
    from safezone.db import make_engine, migrate, session_factory
    from safezone.hub import HubClient
    from safezone.models import Membership, MembershipStatus, Project, ProjectStatus

    from .support import fresh_database_url

    url = fresh_database_url(tmp_path)
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL pass only: SQLite zones have no listener")
    migrate(url)

    def zone_at(address: str) -> Zone:
        storage = StorageSettings(endpoint="127.0.0.1:1", public_endpoint="http://127.0.0.1:1",
                                  root_user="unused", root_password="unused-unused")
        return Zone(settings=Settings(database_url=address, storage=storage),
                    sessions=session_factory(make_engine(address)), broker=None,
                    hub=HubClient("http://127.0.0.1:1/hub/api", ""))

    relay = _Blackhole(make_url(url).port or 5432)
    cut_off = zone_at(make_url(url).set(host="127.0.0.1", port=relay.port)
                      .render_as_string(hide_password=False))
    other = zone_at(url)
    carol = Identity("carol", "user", frozenset({"access:services"}))
    with other.sessions() as db, db.begin():
        project = Project(name="p1", title="t", status=ProjectStatus.ACTIVE,
                          created_at=other.now(), created_by="admin")
        db.add(project)
        db.flush()
        db.add(Membership(project_id=project.id, user_name="carol",
                          status=MembershipStatus.REQUESTED, requested_at=other.now()))
    listening(cut_off)
    assert [p["name"] for p in projects.list_projects(cut_off, carol)] == ["p1"]
    relay.silence()
    cut_off.sessions.kw["bind"].dispose()  # its pool reconnects (through fresh relays)
    with other.sessions() as db, db.begin():
        db.scalar(select(Membership)).status = MembershipStatus.REJECTED
    took = wait_until(lambda: projects.list_projects(cut_off, carol) == [], timeout=10,
                      interval=0.2)
    print(f"\nread cache: a silently cut-off listener stopped the cache after {took:.1f} s")
    assert cut_off.reads.feed.generation(("projects",)) is None


def test_a_connection_lost_mid_transaction_is_still_a_database_outage(zone):
    """The feed's rollback hook on a connection the server dropped must not raise its own
    error: the caller sees SQLAlchemy's OperationalError (the API's 503), not a
    PendingRollbackError (a 500; CI's PostgreSQL-restart fault test caught it)."""
    import psycopg
    from sqlalchemy.exc import OperationalError

    if zone.reads.feed.dialect != "postgresql":
        pytest.skip("PostgreSQL pass only: a SQLite connection cannot be dropped by a server")
    raw = zone.sessions.kw["bind"].url.set(drivername="postgresql").render_as_string(
        hide_password=False)
    with pytest.raises(OperationalError) as raised, zone.sessions() as db:
        backend = db.execute(text("SELECT pg_backend_pid()")).scalar()
        db.execute(text("UPDATE projects SET title = title"))
        with psycopg.connect(raw, autocommit=True) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (backend,))
        db.execute(text("SELECT 1"))
    assert raised.value.connection_invalidated
