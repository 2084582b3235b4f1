"""The powers over access: approving memberships, issuing session identities, minting hub
tokens, administering projects and datasets — each tried as the wrong party."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from safezone.models import SessionGrant

from .attack import nothing_changes, refused


def expires(world) -> dict:
    return {"expires_at": (world.stack.zone.now() + timedelta(days=5)).isoformat()}


def test_administrator_cannot_approve_their_own_membership(world):
    project = world.fresh_project()
    with nothing_changes(world):
        refused(world.stack.api("admin").post(f"/api/projects/{project}/members/admin/approve",
                                              json=expires(world)), 403, "own membership")
    assert "admin" not in [m["user"] for m in world.stack.api("admin2").get(
        f"/api/projects/{project}/members").json()]


def test_administrator_cannot_reject_or_revoke_their_own_membership(world):
    project = world.fresh_project()
    world.stack.api("admin2").post(f"/api/projects/{project}/members/admin/approve",
                                   json=expires(world)).raise_for_status()
    with nothing_changes(world):
        refused(world.stack.api("admin").post(f"/api/projects/{project}/members/admin/revoke",
                                              json={"reason": "x"}), 403, "own membership")


def test_member_administrator_cannot_approve_others_into_their_project(world):
    project = world.fresh_project()
    world.stack.api("admin2").post(f"/api/projects/{project}/members/admin/approve",
                                   json=expires(world)).raise_for_status()
    with nothing_changes(world):
        refused(world.stack.api("admin").post(f"/api/projects/{project}/members/bob/approve",
                                              json=expires(world)), 403, "member")


@pytest.mark.parametrize("who", ["requester", "member", "non-member", "reviewer", "steward",
                                 "requester-notebook", "spawner"])
def test_only_an_administrator_approves_memberships(world, who):
    project = world.fresh_project()
    with nothing_changes(world):
        refused(world.clients[who].post(f"/api/projects/{project}/members/bob/approve",
                                        json=expires(world)), 403)


def test_hub_operator_cannot_approve_and_is_audited(world):
    project = world.fresh_project()
    with nothing_changes(world, audited=1):
        refused(world.clients["operator"].post(f"/api/projects/{project}/members/bob/approve",
                                               json=expires(world)), 403, "JupyterHub")


def test_notebook_token_cannot_ask_to_join_projects(world):
    project = world.fresh_project()
    with nothing_changes(world):
        refused(world.clients["requester-notebook"].post(
            f"/api/projects/{project}/members/request", json={}), 403, "notebook")


@pytest.mark.parametrize("who", ["requester", "admin", "reviewer", "requester-notebook",
                                 "requester-browser", "operator"])
def test_only_the_spawner_issues_session_identities(world, who):
    identities = set(world.stack.zone.broker.session_identities())
    with nothing_changes(world, audited=1 if who == "operator" else 0):
        refused(world.clients[who].post("/api/sessions", json={
            "user": "alice", "project": world.project}), 403)
    assert set(world.stack.zone.broker.session_identities()) == identities


def test_researcher_cannot_end_someone_elses_session(world):
    grant = world.stack.api("spawner").post("/api/sessions", json={
        "user": "alice", "project": world.project}).json()
    for who in ("non-member", "member", "requester"):
        with nothing_changes(world):
            refused(world.clients[who].delete(f"/api/sessions/{grant['grant_id']}"), 403)
    assert grant["environment"]["AWS_ACCESS_KEY_ID"] in world.stack.zone.broker.session_identities()


def test_spawner_cannot_get_keys_for_a_non_member(world):
    identities = set(world.stack.zone.broker.session_identities())
    with nothing_changes(world):
        refused(world.stack.api("spawner").post("/api/sessions", json={
            "user": "bob", "project": world.project}), 403, "bob")
    assert set(world.stack.zone.broker.session_identities()) == identities


def test_safezone_roles_carry_no_hub_admin(world):
    hub = world.stack.hub_api("admin2")
    for name in ("admin", "admin2", "reviewer", "dave", "steward"):
        response = world.stack.hub_api(name).get("/user")
        assert response.status_code == 200 and response.json()["admin"] is False, name
    assert hub.get("/users").status_code == 403  # listing users is a hub-admin power


@pytest.mark.parametrize("who", ["admin", "reviewer", "steward", "alice"])
def test_no_one_can_mint_a_token_for_another_user(world, who):
    target = "reviewer" if who != "reviewer" else "dave"
    response = world.stack.hub_api(who).post(f"/users/{target}/tokens",
                                             json={"note": "as someone else"})
    assert response.status_code in (403, 404), response.text


def test_service_tokens_cannot_mint_user_tokens(world):
    stack = world.stack
    for token in (stack.zone.settings.service_token, stack.spawner_token):
        response = httpx.post(f"{stack.hub_url}/hub/api/users/reviewer/tokens",
                              headers={"Authorization": f"token {token}"}, json={})
        assert response.status_code in (403, 404), response.text


def test_notebook_token_cannot_mint_wider_tokens(world):
    from .world import notebook_token

    token = notebook_token(world.stack, "alice")
    response = httpx.post(f"{world.stack.hub_url}/hub/api/users/alice/tokens",
                          headers={"Authorization": f"token {token}"}, json={})
    assert response.status_code in (403, 404), response.text


def test_hub_operator_is_refused_everywhere_and_audited(world):
    before = world.audit_count()
    client = world.clients["operator"]
    for method, path in (("GET", "/api/me"), ("GET", "/api/projects"),
                         ("GET", "/api/review/queue"), ("GET", "/api/audit/verify"),
                         ("GET", "/api/datasets")):
        refused(client.request(method, path), 403, "JupyterHub administrators")
    assert world.audit_count() - before == 5


def test_project_listing_shows_a_researcher_only_their_projects(world):
    other = world.fresh_project()
    mine = {p["name"] for p in world.clients["requester"].get("/api/projects").json()}
    assert world.project in mine and other not in mine
    assert world.clients["non-member"].get("/api/projects").json() == [] or \
        world.project not in {p["name"] for p in
                              world.clients["non-member"].get("/api/projects").json()}
    listed = {p["name"] for p in world.clients["admin"].get("/api/projects").json()}
    assert {world.project, other} <= listed


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/projects", {"name": "sneaky-project"}),
    ("GET", "/api/datasets", None),
    ("POST", "/api/datasets", {"name": "raw-sneaky", "classification": "raw"}),
    ("GET", "/api/audit/verify", None),
])
def test_researcher_cannot_use_administrator_routes(world, method, path, body):
    with nothing_changes(world):
        refused(world.clients["requester"].request(method, path, json=body), 403)


def test_researcher_cannot_list_members_archive_or_attach(world):
    client = world.clients["requester"]
    with nothing_changes(world):
        refused(client.get(f"/api/projects/{world.project}/members"), 403)
        refused(client.post(f"/api/projects/{world.project}/archive"), 403)
        refused(client.post(f"/api/projects/{world.project}/datasets",
                            json={"dataset": world.dataset}), 403)
        refused(client.delete(f"/api/projects/{world.project}/datasets/{world.dataset}"), 403)


def test_steward_cannot_publish_or_approve(world):
    with nothing_changes(world):
        refused(world.clients["steward"].post(f"/api/datasets/{world.dataset}/publish"), 403)
        refused(world.clients["steward"].post(
            f"/api/projects/{world.project}/members/bob/approve", json=expires(world)), 403)


def test_administrator_cannot_upload_raw_data_or_run_the_de_identification(world):
    from pathlib import Path

    from safezone.deid.upload import upload_raw
    from safezone.errors import PermissionDenied
    from safezone.permissions import ADMIN_SCOPE, Identity

    admin = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
    with nothing_changes(world), pytest.raises(PermissionDenied, match="upload raw data"):
        upload_raw(world.stack.zone, admin, Path(__file__), "raw-sneaky", "x.csv")
    assert not world.stack.zone.broker.bucket_exists("raw-sneaky")


def test_researcher_cannot_read_another_users_projects(world):
    with nothing_changes(world):
        refused(world.clients["non-member"].get("/api/users/alice/projects"), 403)
        refused(world.clients["reviewer"].get("/api/users/alice/projects"), 403)


def test_notebook_keys_cannot_manage_access_keys(world):
    """Session keys may not list, create or change service accounts (their own or their
    parent's): MinIO's admin API refuses them."""
    from minio import MinioAdmin
    from minio.credentials import StaticProvider
    from minio.error import MinioAdminException

    from ..support import issue_grant

    env = issue_grant(world.stack, "alice", world.project)["environment"]
    admin = MinioAdmin(endpoint=world.stack.minio.endpoint, secure=False,
                       credentials=StaticProvider(
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]))
    before = set(world.stack.zone.broker.session_identities())
    for call in (lambda: admin.list_service_account("safezone-session-issuer"),
                 lambda: admin.add_service_account(access_key="SZMINTED0000000000",
                                                   secret_key="x" * 40),
                 lambda: admin.user_list()):
        with pytest.raises(MinioAdminException) as refused_call:
            call()
        assert refused_call.value._code == "403" or "Access Denied" in str(refused_call.value)
    assert set(world.stack.zone.broker.session_identities()) == before


def test_notebook_keys_cannot_end_other_peoples_sessions_or_mint_keys(world):
    """MinIO lets temporary keys revoke keys of their own parent whatever their policy says
    (``revoke-tokens``: by type or all of them), and refuses them ``AssumeRole``. Each
    researcher's sessions have a parent of their own, so alice's keys can at worst end
    alice's sessions: carol's keep working, and no key is minted."""
    import urllib3

    from safezone.storage.tokens import TokenService

    from ..support import env_s3, issue_grant

    stack = world.stack
    alice = issue_grant(stack, "alice", world.project, server_name="rvk")
    carol = issue_grant(stack, "carol", world.project, server_name="rvk")
    as_alice = TokenService(stack.minio.endpoint, False, "us-east-1", urllib3.PoolManager(),
                            tuple(alice["environment"][k] for k in (
                                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                "AWS_SESSION_TOKEN")))
    with stack.zone.sessions() as db:
        carol_parent = db.get(SessionGrant, carol["grant_id"]).parent
    carols_keys = env_s3(stack.minio, carol["environment"])
    before = set(stack.zone.broker.session_identities())
    for query in ({"user": carol_parent, "fullRevoke": "true"},
                  {"user": carol_parent, "tokenRevokeType": carol["grant_id"]}):
        answer = as_alice._send("POST", "/minio/admin/v3/revoke-tokens/builtin",
                                as_alice.root, query=query)
        assert answer.status == 403, answer.read()
    minted = as_alice._send("POST", "/", as_alice.root, form={
        "Action": "AssumeRole", "Version": "2011-06-15", "DurationSeconds": "900"}, sts=True)
    assert minted.status == 403, minted.read()
    assert set(stack.zone.broker.session_identities()) == before  # nothing minted or ended
    assert carols_keys.get_object(Bucket=world.dataset, Key="data.parquet")["Body"].read()
    # her own keys are hers to end (that harms nobody else): carol's still work after it
    answer = as_alice._send("POST", "/minio/admin/v3/revoke-tokens/builtin", as_alice.root,
                            query={"fullRevoke": "true"})
    assert answer.status == 204
    assert alice["environment"]["AWS_ACCESS_KEY_ID"] not in set(
        stack.zone.broker.session_identities())
    assert carols_keys.get_object(Bucket=world.dataset, Key="data.parquet")["Body"].read()
