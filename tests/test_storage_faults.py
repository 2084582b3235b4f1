"""MinIO unavailable: operations fail with a clear error and leave no rows behind.

Uses a MinIO server of its own, so stopping it disturbs no other test.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from safezone import datasets, grants, memberships, projects
from safezone.errors import StorageError
from safezone.models import AuditEvent, Dataset, SessionGrant
from safezone.permissions import ADMIN_SCOPE, SESSIONS_SCOPE, Identity

from .support import fresh_database_url, launch_minio, make_zone, unique

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
SPAWNER = Identity("safezone-spawner", "service", frozenset({SESSIONS_SCOPE}))


def count(zone, model) -> int:
    with zone.sessions() as db:
        return db.scalar(select(func.count()).select_from(model))


@pytest.fixture
def fragile(tmp_path):
    minio = launch_minio(tmp_path)
    zone = make_zone(minio, fresh_database_url(tmp_path))
    yield minio, zone
    minio.process.stop()


def test_grant_and_registration_fail_cleanly_while_minio_is_down(fragile):
    minio, zone = fragile
    project, dataset = unique("p"), unique("deid-f")
    projects.create_project(zone, ADMIN, project)
    datasets.register_dataset(zone, ADMIN, dataset, "deidentified")
    datasets.change_status(zone, ADMIN, dataset, "publish")
    projects.attach_dataset(zone, ADMIN, project, dataset)
    memberships.approve_membership(zone, ADMIN, project, "alice", zone.now() + timedelta(days=1))
    events_before = count(zone, AuditEvent)

    minio.process.stop()
    with pytest.raises(StorageError, match="session identity"):
        grants.issue_grant(zone, SPAWNER, "alice", project)
    with pytest.raises(StorageError, match="bucket"):
        datasets.register_dataset(zone, ADMIN, unique("deid-g"), "deidentified")
    assert count(zone, SessionGrant) == 0
    assert count(zone, Dataset) == 1
    assert count(zone, AuditEvent) == events_before

    minio.restart()
    issued = grants.issue_grant(zone, SPAWNER, "alice", project)
    assert count(zone, SessionGrant) == 1
    assert issued.access_key in zone.broker.session_identities()
