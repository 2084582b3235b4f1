"""Data access follows the catalogue at once: when what a project may read changes, the
keys a running notebook already holds lose it within seconds, and keep what remains.

Real MinIO and the real control plane; every change is made through the REST API as an
administrator, every read with the notebook's own keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select

from safezone import access, datasets, grants, memberships, projects
from safezone.api.app import SWEEP_SECONDS, _sweeper
from safezone.errors import Conflict, StorageError
from safezone.models import AuditEvent, DatasetStatus, MembershipStatus
from safezone.permissions import ADMIN_SCOPE, SESSIONS_SCOPE, Identity

from .support import (
    attested_dataset,
    fresh_database_url,
    grant_s3,
    issue_grant,
    launch_minio,
    make_zone,
    notebook_s3,
    provision,
    register_published_dataset,
    report_measure,
    unique,
    wait_until,
)

LIMIT = 5.0  # seconds from the change until the running session's keys are refused
KEY = "data.parquet"
GONE = ("InvalidAccessKeyId",)  # the session identity was deleted


def read(s3: Any, bucket: str) -> tuple[str | None, bytes]:
    """One GET of the dataset's data: (refusal code or None, the bytes read)."""
    try:
        return None, s3.get_object(Bucket=bucket, Key=KEY)["Body"].read()
    except ClientError as exc:
        return exc.response["Error"]["Code"], b""


def refused_after(s3: Any, bucket: str, start: float, codes: tuple[str, ...]) -> float:
    """Poll with the notebook's keys until refused; seconds since ``start``."""
    while time.monotonic() - start < 3 * LIMIT:
        code, body = read(s3, bucket)
        if code is not None:
            assert code in codes and body == b""
            return time.monotonic() - start
        assert body.startswith(b"PAR1")
        time.sleep(0.05)
    raise AssertionError(f"{bucket} still readable {3 * LIMIT} s after the change")


def assert_refused(s3: Any, bucket: str, codes: tuple[str, ...]) -> None:
    """Neither the data nor the listing can be read any more: refused, nothing read."""
    code, body = read(s3, bucket)
    assert code in codes and body == b""
    with pytest.raises(ClientError) as caught:
        s3.list_objects_v2(Bucket=bucket)
    assert caught.value.response["Error"]["Code"] in codes


def measured(change: str, delay: float) -> None:
    report_measure(f"live access: {change} → keys refused after {delay:.2f} s")
    assert delay < LIMIT


@dataclass
class Live:
    """A project with two attached datasets and alice's running session."""

    project: str
    dataset: str  # the one each test takes away
    other: str    # stays attached and published
    grant: dict
    s3: Any


@pytest.fixture
def live(stack) -> Live:
    setup = provision(stack, member="alice")
    other = unique("deid-other")
    register_published_dataset(stack, other)
    stack.api("admin").post(f"/api/projects/{setup.project}/datasets",
                            json={"dataset": other}).raise_for_status()
    grant = issue_grant(stack, "alice", setup.project, server_name="live")
    s3 = notebook_s3(stack, grant)
    for name in (setup.dataset, other):
        assert read(s3, name)[1].startswith(b"PAR1")
    return Live(setup.project, setup.dataset, other, grant, s3)


def still_reads_the_rest(stack, live: Live) -> None:
    assert read(live.s3, live.other)[1].startswith(b"PAR1")
    recorded = {g.id: g.datasets["datasets"] for g in grants.active_grants(stack.zone)}
    assert [d["name"] for d in recorded[live.grant["grant_id"]]] == [live.other]


def test_withdrawn_dataset_leaves_running_sessions(stack, live):
    start = time.monotonic()
    stack.api("admin").post(f"/api/datasets/{live.dataset}/withdraw").raise_for_status()
    measured("withdraw", refused_after(live.s3, live.dataset, start, ("AccessDenied",)))
    assert_refused(live.s3, live.dataset, ("AccessDenied",))
    still_reads_the_rest(stack, live)
    with stack.zone.sessions() as db:
        event = db.scalars(select(AuditEvent).where(
            AuditEvent.action == "session.refreshed",
            AuditEvent.subject == f"project:{live.project}")).one()
    assert event.data["grants"] == [live.grant["grant_id"]]
    assert event.data["removed"] == [live.dataset]
    assert event.data["reason"] == f"dataset {live.dataset} withdrawn"


def test_detached_dataset_leaves_running_sessions(stack, live):
    start = time.monotonic()
    stack.api("admin").delete(f"/api/projects/{live.project}/datasets/{live.dataset}"
                              ).raise_for_status()
    measured("detach", refused_after(live.s3, live.dataset, start, ("AccessDenied",)))
    assert_refused(live.s3, live.dataset, ("AccessDenied",))
    still_reads_the_rest(stack, live)


def test_dataset_failing_its_integrity_check_leaves_running_sessions(stack, live):
    stack.minio.root_s3().put_object(Bucket=live.dataset, Key=KEY, Body=b"PAR1 other PAR1")
    start = time.monotonic()  # the next grant of the project checks the pins
    second = issue_grant(stack, "alice", live.project, server_name="second")
    measured("integrity failure",
             refused_after(live.s3, live.dataset, start, ("AccessDenied",)))
    assert [d["name"] for d in second["datasets"]] == [live.other]
    assert_refused(live.s3, live.dataset, ("AccessDenied",))
    assert read(live.s3, live.other)[1].startswith(b"PAR1")
    assert datasets.get_location(stack.zone, live.dataset).status is DatasetStatus.WITHDRAWN


def test_archived_project_ends_running_sessions(stack, live):
    start = time.monotonic()
    stack.api("admin").post(f"/api/projects/{live.project}/archive").raise_for_status()
    measured("archive", refused_after(live.s3, live.dataset, start, GONE))
    assert_refused(live.s3, live.other, GONE)
    assert live.grant["environment"]["AWS_ACCESS_KEY_ID"] not in \
        stack.zone.broker.session_identities()


def test_revoked_membership_ends_running_sessions(stack, live):
    start = time.monotonic()
    stack.api("admin").post(f"/api/projects/{live.project}/members/alice/revoke",
                            json={"reason": "left the study"}).raise_for_status()
    measured("revoke", refused_after(live.s3, live.dataset, start, GONE))
    assert_refused(live.s3, live.other, GONE)
    assert live.grant["environment"]["AWS_ACCESS_KEY_ID"] not in \
        stack.zone.broker.session_identities()


@pytest.fixture
def sweeper(stack) -> Iterator[None]:
    """The control plane's own sweeper loop, which the test stack does not run."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(_sweeper(stack.zone))

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    loop.call_soon_threadsafe(task.cancel)
    thread.join(30)


def test_expired_membership_ends_running_sessions(stack, live, clock, sweeper):
    """The approval is shortened to an hour while the session runs (its grant is good for
    12 h), then the hour passes: only the membership's expiry can end it."""
    ends = stack.zone.now() + timedelta(hours=1)
    stack.api("admin").post(f"/api/projects/{live.project}/members/alice/approve",
                            json={"expires_at": ends.isoformat()}).raise_for_status()
    assert read(live.s3, live.dataset)[1].startswith(b"PAR1")
    clock.advance(timedelta(hours=2))
    start = time.monotonic()
    measured(f"membership expiry (sweep every {SWEEP_SECONDS:g} s)",
             refused_after(live.s3, live.dataset, start, GONE))
    assert_refused(live.s3, live.other, GONE)

    def revoked() -> list[AuditEvent]:  # keys die first, the record follows in the sweeper
        with stack.zone.sessions() as db:
            return list(db.scalars(select(AuditEvent).where(
                AuditEvent.action == "session.revoked",
                AuditEvent.subject == f"project:{live.project}/user:alice")))

    wait_until(lambda: revoked(), timeout=LIMIT)
    [ended] = revoked()
    assert ended.data == {"grant": live.grant["grant_id"], "reason": "membership expired"}


def test_a_refresh_minio_refuses_is_answered_503_kept_and_retried(stack, live, monkeypatch):
    def refuse(parent: str, policy: dict) -> bool:
        raise StorageError(f"MinIO unreachable while narrowing {parent}")

    monkeypatch.setattr(stack.zone.broker, "narrow_session_parent", refuse)
    response = stack.api("admin").post(f"/api/datasets/{live.dataset}/withdraw")
    assert response.status_code == 503
    assert "withdrawn: recorded, but 1 running session(s)" in response.json()["error"]
    assert datasets.get_location(stack.zone, live.dataset).status is DatasetStatus.WITHDRAWN
    assert read(live.s3, live.dataset)[1].startswith(b"PAR1")  # until the retry
    monkeypatch.undo()
    access.sweep(stack.zone)  # one round of the sweeper
    assert_refused(live.s3, live.dataset, ("AccessDenied",))
    still_reads_the_rest(stack, live)


ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
SPAWNER = Identity("safezone-spawner", "service", frozenset({SESSIONS_SCOPE}))


def refused_but_kept(change: Callable[..., Any], *args: Any) -> None:
    """The change fails with 503 and says it was kept: running sessions could not be
    updated (SessionsNotRefreshed) or, before that, its audit anchor could not be written."""
    with pytest.raises(StorageError) as caught:
        change(*args)
    assert caught.value.status_code == 503
    assert re.search(r"\b(recorded|saved)\b", caught.value.message), caught.value.message


def alice_with_two_datasets(zone) -> tuple[str, str, str]:
    """A new project with two published datasets and alice as a member: (project, one to
    take away, one to keep)."""
    project, taken, kept = unique("p"), unique("deid-taken"), unique("deid-kept")
    projects.create_project(zone, ADMIN, project)
    for name in (taken, kept):
        attested_dataset(zone, name)
        datasets.change_status(zone, ADMIN, name, "publish")
        projects.attach_dataset(zone, ADMIN, project, name)
    memberships.approve_membership(zone, ADMIN, project, "alice",
                                   zone.now() + timedelta(days=1))
    return project, taken, kept


def test_changes_while_minio_is_down_are_kept_refused_503_and_caught_up(tmp_path):
    """MinIO of its own, stopped twice: the change is recorded, the caller is told (503),
    the running session keeps its old access meanwhile, and one sweep round after MinIO
    is back brings it in line."""
    minio = launch_minio(tmp_path)
    try:
        zone = make_zone(minio, fresh_database_url(tmp_path))
        project, taken, kept = alice_with_two_datasets(zone)
        grant = grants.issue_grant(zone, SPAWNER, "alice", project)
        s3 = grant_s3(minio, grant)

        minio.process.stop()
        refused_but_kept(datasets.change_status, zone, ADMIN, taken, "withdraw")
        assert datasets.get_location(zone, taken).status is DatasetStatus.WITHDRAWN
        access.sweep(zone)  # still down: nothing escapes, nothing changes
        minio.restart()
        assert read(s3, taken)[1].startswith(b"PAR1")  # the old policy, until the sweep
        access.sweep(zone)
        assert_refused(s3, taken, ("AccessDenied",))
        assert read(s3, kept)[1].startswith(b"PAR1")

        minio.process.stop()
        refused_but_kept(memberships.revoke_membership, zone, ADMIN, project, "alice")
        views = memberships.list_members(zone, ADMIN, project)
        assert [v.status for v in views] == [MembershipStatus.REVOKED.value]
        minio.restart()
        assert read(s3, kept)[1].startswith(b"PAR1")
        access.sweep(zone)
        assert_refused(s3, kept, GONE)
        assert grants.active_grants(zone) == []
    finally:
        minio.process.stop()


def test_a_withdrawal_during_a_sibling_grant_stays_withdrawn(zone, minio, monkeypatch):
    """alice's second server gets the same session parent as her first. The dataset is
    withdrawn (and the parent narrowed) while that second grant is being issued, after it
    read the datasets but before it writes the parent's policy: the write must not give
    the running first session the dataset back. The second grant is refused (409)."""
    project, taken, kept = alice_with_two_datasets(zone)
    first = grant_s3(minio, grants.issue_grant(zone, SPAWNER, "alice", project, "one"))
    assert read(first, taken)[1].startswith(b"PAR1")
    prepare = zone.broker.prepare_session_parent

    def withdraw_first(parent: str, policy: dict) -> None:
        datasets.change_status(zone, ADMIN, taken, "withdraw")  # narrows the parent now
        assert_refused(first, taken, ("AccessDenied",))
        prepare(parent, policy)  # the policy read before the withdrawal

    monkeypatch.setattr(zone.broker, "prepare_session_parent", withdraw_first)
    with pytest.raises(Conflict):
        grants.issue_grant(zone, SPAWNER, "alice", project, "two")
    monkeypatch.undo()
    assert_refused(first, taken, ("AccessDenied",))
    assert read(first, kept)[1].startswith(b"PAR1")
    assert [g.server_name for g in grants.active_grants(zone)
            if g.project.name == project] == ["one"]
