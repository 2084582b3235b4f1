"""Grants need an approved, unexpired membership; expiry and revocation kill credentials."""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from safezone import grants, memberships
from safezone.permissions import SYSTEM

from .support import issue_grant, notebook_s3, provision, unique


def refused_grant(stack, user, project):
    response = stack.api("spawner").post("/api/sessions", json={"user": user,
                                                                "project": project})
    assert response.status_code in (403, 404), response.text
    return response.json()["error"]


def test_no_grant_without_membership(stack):
    setup = provision(stack, member="alice")
    assert "no approved membership" in refused_grant(stack, "bob", setup.project)


def test_requested_membership_is_not_enough_until_approved(stack):
    setup = provision(stack, member="alice")
    response = stack.api("bob").post(f"/api/projects/{setup.project}/members/request",
                                     json={"justification": "thesis chapter 3"})
    assert response.status_code == 201 and response.json()["status"] == "requested"
    assert "requested" in refused_grant(stack, "bob", setup.project)
    assert setup.project not in stack.api("bob").get("/api/users/bob/projects").json()["projects"]
    expires = (stack.zone.now() + timedelta(days=10)).isoformat()
    approved = stack.api("admin").post(f"/api/projects/{setup.project}/members/bob/approve",
                                       json={"expires_at": expires})
    assert approved.json()["status"] == "approved"
    assert issue_grant(stack, "bob", setup.project)["user"] == "bob"


def test_a_user_cannot_request_for_someone_else_or_approve_themself(stack):
    setup = provision(stack, member="alice")
    expires = (stack.zone.now() + timedelta(days=10)).isoformat()
    response = stack.api("bob").post(f"/api/projects/{setup.project}/members/bob/approve",
                                     json={"expires_at": expires})
    assert response.status_code == 403


def test_approval_needs_a_future_expiry(stack):
    setup = provision(stack, member="alice")
    past = (stack.zone.now() - timedelta(days=1)).isoformat()
    response = stack.api("admin").post(f"/api/projects/{setup.project}/members/bob/approve",
                                       json={"expires_at": past})
    assert response.status_code == 422 and "future" in response.json()["error"]


def test_expiry_is_honoured_with_a_moved_clock(stack, clock):
    setup = provision(stack, member="alice", days_valid=2)
    grant = issue_grant(stack, "alice", setup.project)
    s3 = notebook_s3(stack, grant)
    assert s3.get_object(Bucket=setup.dataset, Key="data.parquet")
    clock.advance(timedelta(days=3))
    assert "expired" in refused_grant(stack, "alice", setup.project)
    assert setup.project not in stack.api("alice").get("/api/users/alice/projects"
                                                       ).json()["projects"]
    memberships.expire_memberships(stack.zone, SYSTEM)  # what the sweeper runs
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket=setup.dataset, Key="data.parquet")
    assert caught.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_grant_lifetime_is_capped_by_membership_expiry(stack):
    setup = provision(stack, member="alice", days_valid=0.1)  # 2.4 hours
    grant = issue_grant(stack, "alice", setup.project)
    from datetime import datetime

    ends = datetime.fromisoformat(grant["expires_at"])
    assert ends <= stack.zone.now() + timedelta(hours=2.5)


def test_revocation_kills_credentials_at_once(stack):
    setup = provision(stack, member="alice")
    grant = issue_grant(stack, "alice", setup.project)
    s3 = notebook_s3(stack, grant)
    s3.get_object(Bucket=setup.dataset, Key="data.parquet")
    stack.api("admin").post(f"/api/projects/{setup.project}/members/alice/revoke",
                            json={"reason": "left the study"}).raise_for_status()
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket=setup.dataset, Key="data.parquet")
    assert caught.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert "revoked" in refused_grant(stack, "alice", setup.project)


def test_archived_project_issues_no_grants_and_ends_running_ones(stack):
    setup = provision(stack, member="alice")
    grant = issue_grant(stack, "alice", setup.project)
    stack.api("admin").post(f"/api/projects/{setup.project}/archive").raise_for_status()
    assert "archived" in refused_grant(stack, "alice", setup.project)
    with pytest.raises(ClientError):
        notebook_s3(stack, grant).get_object(Bucket=setup.dataset, Key="data.parquet")


def test_ending_a_grant_is_idempotent_and_deletes_identity(stack):
    setup = provision(stack, member="alice")
    grant = issue_grant(stack, "alice", setup.project)
    access_key = grant["environment"]["AWS_ACCESS_KEY_ID"]
    assert access_key in stack.zone.broker.session_identities()
    spawner = stack.api("spawner")
    assert spawner.delete(f"/api/sessions/{grant['grant_id']}").status_code == 200
    assert spawner.delete(f"/api/sessions/{grant['grant_id']}").status_code == 200
    assert access_key not in stack.zone.broker.session_identities()
    assert stack.api("alice").delete(f"/api/sessions/{grant['grant_id']}").status_code == 403


def test_restarting_a_server_replaces_its_grant(stack):
    setup = provision(stack, member="alice")
    first = issue_grant(stack, "alice", setup.project, server_name="x")
    second = issue_grant(stack, "alice", setup.project, server_name="x")
    live = stack.zone.broker.session_identities()
    assert first["environment"]["AWS_ACCESS_KEY_ID"] not in live
    assert second["environment"]["AWS_ACCESS_KEY_ID"] in live
    active = [g.id for g in grants.active_grants(stack.zone)]
    assert first["grant_id"] not in active and second["grant_id"] in active


def test_unknown_project_grant_is_404(stack):
    assert "no project" in refused_grant(stack, "alice", unique("nope"))
