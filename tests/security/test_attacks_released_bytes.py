"""Released bytes: only the requester, in a browser session, while still a member, through
a counted, expiring, revocable link whose token never sits in a URL."""

from __future__ import annotations

from datetime import timedelta

import httpx

from ..support import browser_session, issue_grant, notebook_s3
from .attack import access_denied, nothing_changes, refused
from .world import CLEAN_TABLE


def released(world) -> tuple[str, int]:
    rid = world.request_in("released")
    fid = world.stack.api("alice").get(f"/api/exports/{rid}").json()["files"][0]["id"]
    return rid, fid


def link(world, rid: str, fid: int) -> str:
    made = world.clients["requester-browser"].post(f"/api/exports/{rid}/files/{fid}/links")
    assert made.status_code == 201, made.text
    return made.json()["token"]


def test_requester_api_token_cannot_create_links(world):
    rid, fid = released(world)
    with nothing_changes(world, rid):
        refused(world.clients["requester"].post(f"/api/exports/{rid}/files/{fid}/links"), 403,
                "browser")


def test_requester_notebook_token_cannot_create_links(world):
    rid, fid = released(world)
    with nothing_changes(world, rid):
        refused(world.clients["requester-notebook"].post(
            f"/api/exports/{rid}/files/{fid}/links"), 403)


def test_requester_notebook_token_cannot_redeem_a_link(world):
    rid, fid = released(world)
    token = link(world, rid, fid)
    with nothing_changes(world, rid):
        response = world.clients["requester-notebook"].post("/api/download",
                                                            json={"token": token})
        refused(response, 403)
        assert CLEAN_TABLE not in response.content


def test_another_researcher_cannot_redeem_the_requesters_link(world):
    rid, fid = released(world)
    token = link(world, rid, fid)
    with nothing_changes(world, rid):
        response = world.clients["other-researcher-browser"].post("/api/download",
                                                                  json={"token": token})
        refused(response, 403)
        assert CLEAN_TABLE not in response.content


def test_a_reviewer_cannot_download_released_files(world):
    rid, fid = released(world)
    with nothing_changes(world, rid):
        refused(world.clients["reviewer-browser"].post(
            f"/api/exports/{rid}/files/{fid}/links"), 403)


def test_an_administrator_cannot_download_released_files(world):
    rid, fid = released(world)
    with nothing_changes(world, rid):
        refused(world.clients["admin-browser"].post(
            f"/api/exports/{rid}/files/{fid}/links"), 403)


def test_revoked_member_cannot_create_links_or_redeem_old_ones(world):
    rid, fid = released(world)
    token = link(world, rid, fid)
    admin = world.stack.api("admin")
    admin.post(f"/api/projects/{world.project}/members/alice/revoke",
               json={"reason": "left the study"}).raise_for_status()
    try:
        with nothing_changes(world, rid):
            refused(world.clients["requester-browser"].post(
                f"/api/exports/{rid}/files/{fid}/links"), 403, "membership")
            response = world.clients["requester-browser"].post("/api/download",
                                                               json={"token": token})
            refused(response, 403, "membership")
            assert CLEAN_TABLE not in response.content
    finally:
        expires = (world.stack.zone.now() + timedelta(days=30)).isoformat()
        admin.post(f"/api/projects/{world.project}/members/alice/approve",
                   json={"expires_at": expires}).raise_for_status()


def test_links_for_unreleased_files_are_refused(world):
    rid = world.request_in("in_review")
    fid = world.stack.api("alice").get(f"/api/exports/{rid}").json()["files"][0]["id"]
    with nothing_changes(world, rid):
        refused(world.clients["requester-browser"].post(
            f"/api/exports/{rid}/files/{fid}/links"), 409, "in_review")


def test_revoked_release_link_is_refused(world):
    rid, fid = released(world)
    token = link(world, rid, fid)
    world.stack.api("reviewer").post(f"/api/exports/{rid}/revoke",
                                     json={"reason": "small cell"}).raise_for_status()
    with nothing_changes(world, rid):
        response = world.clients["requester-browser"].post("/api/download",
                                                           json={"token": token})
        refused(response, 409, "revoked")
        assert CLEAN_TABLE not in response.content


def test_expired_link_is_refused(world, clock):
    rid, fid = released(world)
    token = link(world, rid, fid)
    clock.offset += timedelta(hours=25)
    with nothing_changes(world, rid):
        refused(world.clients["requester-browser"].post("/api/download", json={"token": token}),
                403, "expired")


def test_download_count_is_capped(world):
    rid, fid = released(world)
    token = link(world, rid, fid)
    browser = world.clients["requester-browser"]
    codes = [browser.post("/api/download", json={"token": token}).status_code
             for _ in range(6)]
    assert codes == [200] * 5 + [403]


def test_guessed_tokens_find_nothing_and_count_nothing(world):
    rid, fid = released(world)
    token = link(world, rid, fid)
    with nothing_changes(world, rid):
        for guess in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 43, ""):
            response = world.clients["requester-browser"].post("/api/download",
                                                               json={"token": guess})
            assert response.status_code in (404, 422) and CLEAN_TABLE not in response.content
    assert world.clients["requester-browser"].post(
        "/api/download", json={"token": token}).status_code == 200


def test_download_tokens_never_travel_in_a_url(world):
    rid, fid = released(world)
    token = link(world, rid, fid)
    browser = world.clients["requester-browser"]
    for path in (f"/download/{token}", f"/api/download/{token}",
                 f"/api/download?token={token}"):
        response = browser.get(path)
        assert response.status_code in (404, 405) and CLEAN_TABLE not in response.content
    logs = world.stack.hub.log_path.read_text(errors="replace")
    assert token not in logs  # the proxy and the hub logged no token


def test_download_streams_through_the_control_plane_not_a_minio_url(world):
    rid, fid = released(world)
    token = link(world, rid, fid)
    response = world.clients["requester-browser"].post("/api/download", json={"token": token})
    assert response.status_code == 200 and response.content == CLEAN_TABLE
    assert "location" not in response.headers
    assert world.stack.minio.endpoint not in response.text
    assert response.headers["content-disposition"].startswith("attachment")


def test_download_is_audited_with_the_released_hash(world):
    import hashlib

    from sqlalchemy import select

    from safezone.models import AuditEvent

    rid, fid = released(world)
    token = link(world, rid, fid)
    with nothing_changes(world, rid, audited=1):
        world.clients["requester-browser"].post("/api/download", json={"token": token})
    with world.stack.zone.sessions() as db:
        event = db.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).one()
    assert event.action == "export.downloaded" and event.actor == "alice"
    assert event.data["sha256"] == hashlib.sha256(CLEAN_TABLE).hexdigest()


def test_notebook_keys_cannot_read_the_released_bucket(world):
    rid, fid = released(world)
    s3 = notebook_s3(world.stack, issue_grant(world.stack, "alice", world.project))
    access_denied(s3.get_object, Bucket="released", Key=f"{rid}/{fid}/t.csv")
    access_denied(s3.list_objects_v2, Bucket="released")


def test_page_download_needs_the_form_token_and_csrf(world):
    rid, fid = released(world)
    token = link(world, rid, fid)
    browser = browser_session(world.stack, "alice")
    forged = browser.post("/pages/download", data={"token": token, "_csrf": "guess"})
    refused(forged, 403, "form")
    assert CLEAN_TABLE not in forged.content
    cookie_only = httpx.post(f"{world.stack.hub_url}/services/safezone/api/download",
                             json={"token": token}, cookies=browser.cookies)
    refused(cookie_only, 403, "CSRF")


def test_the_release_copy_is_audited_with_what_and_why(world):
    import hashlib

    from sqlalchemy import select

    from safezone.models import AuditEvent

    rid, fid = released(world)
    with world.stack.zone.sessions() as db:
        event = db.scalars(select(AuditEvent).where(
            AuditEvent.subject == f"export:{rid}", AuditEvent.action == "export.release")).one()
    assert event.actor == "service:safezone"  # the tally released it, no person's say-so
    assert event.data["why"] == "approved by independent review"
    assert event.data["files"] == [f"{rid}/{fid}/t.csv"]
    assert event.data["sha256"] == {"t.csv": hashlib.sha256(CLEAN_TABLE).hexdigest()}
