"""The powers of the review: vote, release, revoke — never by the requester, never by a
member of the project, never by a token that is not the reviewer's own person."""

from __future__ import annotations

from datetime import timedelta

import httpx

from ..support import submit_and_wait
from .attack import nothing_changes, refused
from .world import CLEAN_TABLE


def in_review(world) -> tuple[str, int]:
    rid = world.request_in("in_review")
    return rid, world.stack.api("alice").get(f"/api/exports/{rid}").json()["files"][0]["id"]


def ballot(fid: int, decision: str = "approve") -> dict:
    return {"file_id": fid, "decision": decision, "comment": "x", "override_reason": "x"}


def test_requester_cannot_vote_on_own_request(world):
    rid, fid = in_review(world)
    with nothing_changes(world, rid):
        refused(world.clients["requester"].post(f"/api/exports/{rid}/votes", json=ballot(fid)),
                403, "own")


def test_requester_browser_cannot_vote_through_the_page(world):
    rid, fid = in_review(world)
    browser = world.clients["requester-browser"]
    from safezone.web.session import COOKIE, csrf_token

    with nothing_changes(world, rid):
        refused(browser.post(f"/pages/review/{rid}/vote", data={
            "_csrf": csrf_token(browser.cookies.get(COOKIE)), "file_id": str(fid),
            "decision": "approve"}), 403, "own")


def test_reviewer_cannot_vote_on_a_request_they_made(world):
    """dave is a reviewer and a member: his own request is never his to review."""
    stack = world.stack
    stack.minio.root_s3().put_object(Bucket="outbox", Key=f"{world.project}/dave/d.csv",
                                     Body=CLEAN_TABLE)
    made = stack.api("dave").post("/api/exports", json={
        "project": world.project, "files": [{"path": "d.csv"}]}).json()
    view = submit_and_wait(stack.api("dave"), made["id"])
    with nothing_changes(world, made["id"]):
        refused(stack.api("dave").post(f"/api/exports/{made['id']}/votes",
                                       json=ballot(view["files"][0]["id"])), 403)


def test_reviewer_who_is_a_project_member_cannot_vote(world):
    rid, fid = in_review(world)
    with nothing_changes(world, rid):
        refused(world.clients["reviewer-member"].post(f"/api/exports/{rid}/votes",
                                                      json=ballot(fid)), 403, "member")


def test_administrator_cannot_vote(world):
    rid, fid = in_review(world)
    with nothing_changes(world, rid):
        refused(world.clients["admin"].post(f"/api/exports/{rid}/votes", json=ballot(fid)),
                403)


def test_researcher_cannot_vote(world):
    rid, fid = in_review(world)
    for who in ("non-member", "member", "steward"):
        with nothing_changes(world, rid):
            refused(world.clients[who].post(f"/api/exports/{rid}/votes", json=ballot(fid)),
                    403)


def test_hub_operator_cannot_vote_and_is_audited(world):
    rid, fid = in_review(world)
    with nothing_changes(world, rid, audited=1):
        refused(world.clients["operator"].post(f"/api/exports/{rid}/votes",
                                               json=ballot(fid)), 403)


def test_spawner_token_cannot_vote(world):
    rid, fid = in_review(world)
    with nothing_changes(world, rid):
        refused(world.clients["spawner"].post(f"/api/exports/{rid}/votes", json=ballot(fid)),
                403)


def test_vote_after_the_review_closed_is_refused(world):
    rid = world.request_in("released")
    fid = world.stack.api("alice").get(f"/api/exports/{rid}").json()["files"][0]["id"]
    with nothing_changes(world, rid):
        refused(world.clients["reviewer"].post(f"/api/exports/{rid}/votes", json=ballot(fid)),
                409, "released")


def test_vote_on_a_file_of_another_request_is_refused(world):
    rid, _ = in_review(world)
    _, other_file = in_review(world)
    with nothing_changes(world, rid):
        refused(world.clients["reviewer"].post(f"/api/exports/{rid}/votes",
                                               json=ballot(other_file)), 404)


def test_a_second_vote_on_the_same_file_is_refused(world):
    stack = world.stack
    stack.minio.root_s3().put_object(Bucket="outbox", Key=f"{world.project}/alice/s.csv",
                                     Body=b"region,count\nSeoul,3\nBusan,120\n")
    rid = world.draft("s.csv")["id"]
    view = submit_and_wait(stack.api("alice"), rid)
    assert view["required_approvals"] == 2
    fid = view["files"][0]["id"]
    stack.api("reviewer").post(f"/api/exports/{rid}/votes", json=ballot(fid)).raise_for_status()
    with nothing_changes(world, rid):
        refused(stack.api("reviewer").post(f"/api/exports/{rid}/votes", json=ballot(fid)),
                409, "already")


def test_failed_file_cannot_be_approved_without_an_override_reason(world):
    stack = world.stack
    stack.minio.root_s3().put_object(Bucket="outbox", Key=f"{world.project}/alice/f.csv",
                                     Body=b"region,count\nSeoul,3\nBusan,120\n")
    rid = world.draft("f.csv")["id"]
    fid = submit_and_wait(stack.api("alice"), rid)["files"][0]["id"]
    with nothing_changes(world, rid):
        refused(stack.api("reviewer").post(f"/api/exports/{rid}/votes", json={
            "file_id": fid, "decision": "approve"}), 422, "override")


def test_votes_stay_blind_to_other_reviewers_while_open(world):
    stack = world.stack
    stack.minio.root_s3().put_object(Bucket="outbox", Key=f"{world.project}/alice/b.csv",
                                     Body=b"region,count\nSeoul,3\nBusan,120\n")
    rid = world.draft("b.csv")["id"]
    fid = submit_and_wait(stack.api("alice"), rid)["files"][0]["id"]
    mine = stack.api("reviewer").post(f"/api/exports/{rid}/votes", json=ballot(fid)).json()
    assert [v["reviewer"] for v in mine["votes"]] == ["reviewer"]
    for who in ("alice", "admin"):
        assert stack.api(who).get(f"/api/exports/{rid}").json()["votes"] == []


def test_requester_cannot_release(world):
    rid = world.request_in("approved")
    with nothing_changes(world, rid):
        refused(world.clients["requester"].post(f"/api/exports/{rid}/release"), 403)


def test_reviewer_cannot_release(world):
    rid = world.request_in("approved")
    with nothing_changes(world, rid):
        refused(world.clients["reviewer"].post(f"/api/exports/{rid}/release"), 403)


def test_release_of_a_request_still_in_review_is_refused(world):
    rid, _ = in_review(world)
    with nothing_changes(world, rid):
        refused(world.clients["admin"].post(f"/api/exports/{rid}/release"), 409, "in_review")
    keys = world.stack.minio.root_s3().list_objects_v2(Bucket="released", Prefix=f"{rid}/")
    assert keys.get("KeyCount", 0) == 0


def test_administrator_who_is_a_member_cannot_release_or_attach(world):
    """admin2 approves admin into a project; admin may then not release there."""
    stack = world.stack
    project = world.fresh_project()
    expires = (stack.zone.now() + timedelta(days=5)).isoformat()
    stack.api("admin2").post(f"/api/projects/{project}/members/admin/approve",
                             json={"expires_at": expires}).raise_for_status()
    stack.api("admin2").post(f"/api/projects/{project}/members/alice/approve",
                             json={"expires_at": expires}).raise_for_status()
    stack.minio.root_s3().put_object(Bucket="outbox", Key=f"{project}/alice/t.csv",
                                     Body=CLEAN_TABLE)
    made = stack.api("alice").post("/api/exports", json={
        "project": project, "files": [{"path": "t.csv"}]}).json()
    submit_and_wait(stack.api("alice"), made["id"])
    from safezone.models import ExportRequest, ExportStatus

    with stack.zone.sessions() as db, db.begin():
        db.get(ExportRequest, made["id"]).status = ExportStatus.APPROVED
    with nothing_changes(world, made["id"]):
        refused(stack.api("admin").post(f"/api/exports/{made['id']}/release"), 403, "member")
    with nothing_changes(world):
        refused(stack.api("admin").post(f"/api/projects/{project}/datasets",
                                        json={"dataset": world.dataset}), 403, "member")


def test_requester_cannot_revoke_a_release(world):
    rid = world.request_in("released")
    with nothing_changes(world, rid):
        refused(world.clients["requester"].post(f"/api/exports/{rid}/revoke",
                                                json={"reason": "mine"}), 403)


def test_member_reviewer_cannot_revoke_a_release_of_their_project(world):
    rid = world.request_in("released")
    with nothing_changes(world, rid):
        refused(world.clients["reviewer-member"].post(f"/api/exports/{rid}/revoke",
                                                      json={"reason": "x"}), 403, "member")


def test_non_requester_cannot_submit_edit_or_withdraw(world):
    rid = world.request_in("draft")
    for who in ("member", "non-member", "reviewer", "admin"):
        client = world.clients[who]
        with nothing_changes(world, rid):
            refused(client.post(f"/api/exports/{rid}/submit"), 403)
            refused(client.post(f"/api/exports/{rid}/withdraw"), 403)
            refused(client.put(f"/api/exports/{rid}/files",
                               json={"files": [{"path": "t.csv"}]}), 403)


def test_fellow_member_cannot_see_anothers_request(world):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid):
        refused(world.clients["member"].get(f"/api/exports/{rid}"), 403)
        refused(world.clients["non-member"].get(f"/api/exports/{rid}"), 403)


def test_unauthenticated_and_malformed_tokens_are_refused(world):
    rid = world.request_in("in_review")
    url = world.stack.control_plane.url
    for headers in ({}, {"Authorization": "token nonsense"}, {"Authorization": "Basic eA=="},
                    {"Authorization": "token x y"}):
        with nothing_changes(world, rid):
            response = httpx.post(f"{url}/api/exports/{rid}/withdraw", headers=headers)
            assert response.status_code == 401, (headers, response.text)


def test_a_rejection_does_not_erase_a_conflict_of_interest(world):
    """erin was a member of a project; revoked, she asks again and is rejected: she still
    may not review that project's requests."""
    stack = world.stack
    project = world.fresh_project()
    expires = (stack.zone.now() + timedelta(days=5)).isoformat()
    admin = stack.api("admin")
    for user in ("erin", "alice"):
        admin.post(f"/api/projects/{project}/members/{user}/approve",
                   json={"expires_at": expires}).raise_for_status()
    admin.post(f"/api/projects/{project}/members/erin/revoke", json={"reason": "left"}
               ).raise_for_status()
    stack.api("erin").post(f"/api/projects/{project}/members/request", json={}
                           ).raise_for_status()
    admin.post(f"/api/projects/{project}/members/erin/reject", json={"reason": "no"}
               ).raise_for_status()
    stack.minio.root_s3().put_object(Bucket="outbox", Key=f"{project}/alice/t.csv",
                                     Body=CLEAN_TABLE)
    made = stack.api("alice").post("/api/exports", json={
        "project": project, "files": [{"path": "t.csv"}]}).json()
    view = submit_and_wait(stack.api("alice"), made["id"])
    with nothing_changes(world, made["id"]):
        refused(stack.api("erin").post(f"/api/exports/{made['id']}/votes",
                                       json=ballot(view["files"][0]["id"])), 403, "member")
        refused(stack.api("erin").get(f"/api/exports/{made['id']}/previews"), 403, "member")
