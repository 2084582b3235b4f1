"""Frozen export bytes (egress-quarantine): readable only by independent reviewers, only in
review, only through the stored preview; every read audited. Each route tried."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from safezone.models import AuditEvent

from ..support import issue_grant, notebook_s3
from .attack import access_denied, nothing_changes, refused
from .world import CLEAN_TABLE, notebook_token

STATES = ("draft", "in_review", "returned", "approved", "released", "rejected", "withdrawn",
          "revoked")


def test_requester_cannot_read_frozen_bytes_in_review(world):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid):
        refused(world.clients["requester"].get(f"/api/exports/{rid}/previews"), 403, "own")


@pytest.mark.parametrize("state", ["withdrawn", "revoked", "returned", "released"])
def test_requester_cannot_read_frozen_bytes_after_review(world, state):
    rid = world.requests.get(state) or world.request_in(state)
    with nothing_changes(world, rid):
        refused(world.clients["requester"].get(f"/api/exports/{rid}/previews"), 403)


def test_the_old_content_route_is_gone(world):
    rid = world.request_in("in_review")
    fid = world.stack.api("alice").get(f"/api/exports/{rid}").json()["files"][0]["id"]
    for who in ("requester", "reviewer", "admin"):
        with nothing_changes(world, rid):
            response = world.clients[who].get(f"/api/exports/{rid}/files/{fid}/content")
            assert response.status_code in (404, 405) and CLEAN_TABLE not in response.content


def test_requester_browser_cannot_open_the_review_page(world):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid):
        page = world.clients["requester-browser"].get(f"/pages/review/{rid}")
        refused(page, 403, "own")
        assert "Seoul" not in page.text


def test_requester_notebook_token_cannot_read_previews(world):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid):
        refused(world.clients["requester-notebook"].get(f"/api/exports/{rid}/previews"), 403)


def test_non_member_cannot_read_previews(world):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid):
        refused(world.clients["non-member"].get(f"/api/exports/{rid}/previews"), 403)


def test_fellow_member_cannot_read_previews(world):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid):
        refused(world.clients["member"].get(f"/api/exports/{rid}/previews"), 403)


def test_reviewer_who_is_a_project_member_cannot_read_previews(world):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid):
        refused(world.clients["reviewer-member"].get(f"/api/exports/{rid}/previews"), 403,
                "member")


def test_administrator_is_not_an_output_checker(world):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid):
        refused(world.clients["admin"].get(f"/api/exports/{rid}/previews"), 403)
        refused(world.clients["admin-browser"].get(f"/pages/review/{rid}"), 403)


def test_steward_cannot_read_previews(world):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid):
        refused(world.clients["steward"].get(f"/api/exports/{rid}/previews"), 403)


def test_hub_operator_cannot_read_previews_and_is_audited(world):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid, audited=1):
        refused(world.clients["operator"].get(f"/api/exports/{rid}/previews"), 403,
                "JupyterHub administrators")
    with world.stack.zone.sessions() as db:
        last = db.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).one()
    assert last.action == "hub_operator.call" and last.actor == "operator"


def test_spawner_token_cannot_read_previews(world):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid):
        refused(world.clients["spawner"].get(f"/api/exports/{rid}/previews"), 403)


def test_reviewer_notebook_token_cannot_read_previews(world):
    rid = world.request_in("in_review")
    token = notebook_token(world.stack, "reviewer")
    import httpx

    client = httpx.Client(base_url=world.stack.control_plane.url,
                          headers={"Authorization": f"token {token}"})
    with nothing_changes(world, rid):
        refused(client.get(f"/api/exports/{rid}/previews"), 403, "notebook")


@pytest.mark.parametrize("state", ["draft", "approved", "released", "rejected", "withdrawn"])
def test_reviewer_cannot_read_frozen_bytes_outside_review(world, state):
    rid = world.request_in(state)
    with nothing_changes(world, rid):
        refused(world.clients["reviewer"].get(f"/api/exports/{rid}/previews"), 409, state)


def test_reviewer_preview_read_is_audited_with_who_what_and_why(world):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid, audited=1):
        shown = world.clients["reviewer"].get(f"/api/exports/{rid}/previews")
    assert shown.status_code == 200
    with world.stack.zone.sessions() as db:
        event = db.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).one()
    assert (event.action, event.actor, event.subject) == ("export.previewed", "reviewer",
                                                          f"export:{rid}")
    assert event.data["files"] == ["t.csv"] and event.data["why"] == "review"


def test_notebook_keys_cannot_read_the_quarantine_bucket(world):
    rid = world.request_in("in_review")
    s3 = notebook_s3(world.stack, issue_grant(world.stack, "alice", world.project))
    access_denied(s3.get_object, Bucket="egress-quarantine", Key=f"{rid}/r1/t.csv")
    access_denied(s3.list_objects_v2, Bucket="egress-quarantine", Prefix=f"{rid}/")
    access_denied(s3.put_object, Bucket="egress-quarantine", Key=f"{rid}/r1/t.csv", Body=b"x")
