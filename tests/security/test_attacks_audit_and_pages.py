"""The audit trail cannot be rewritten unseen; the pages resist framing, forged forms,
stolen cookies and leave no session behind a logout."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import select

from safezone import audit, audit_status, projects
from safezone.models import AuditEvent, AuditHead
from safezone.permissions import ADMIN_SCOPE, Identity
from safezone.web.session import COOKIE, csrf_token

from ..support import browser_session, hub_login, unique
from .attack import access_denied, nothing_changes, refused

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
HASHED = ("seq", "ts", "actor", "action", "subject", "data", "prev_hash")


def test_full_rewrite_with_recomputed_hashes_is_named_after_later_actions(zone):
    for _ in range(4):
        projects.create_project(zone, ADMIN, unique("p"))
    with zone.sessions() as db, db.begin():  # an attacker with the database's password
        prev = audit.GENESIS
        for event in db.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
            event.actor = "mallory"
            event.prev_hash = prev
            event.hash = prev = audit.event_hash({c: getattr(event, c) for c in HASHED})
        db.get(AuditHead, 1).hash = prev
    projects.create_project(zone, ADMIN, unique("p"))  # an ordinary action anchors anew
    result = audit_status.verify_now(zone, ADMIN)
    assert not result["intact"]
    assert result["findings"][0]["seq"] == 1
    assert audit_status.last(zone)["intact"] is False  # what the admin page will show


def test_researcher_cannot_verify_or_read_the_audit_trail(world):
    with nothing_changes(world):
        refused(world.clients["requester"].get("/api/audit/verify"), 403)
        refused(world.clients["reviewer"].get("/api/audit/verify"), 403)


def test_anchor_writer_cannot_delete_or_overwrite_anchors(world):
    from safezone.storage.broker import StorageBroker

    broker: StorageBroker = world.stack.zone.broker
    settings = world.stack.zone.settings.storage
    s3 = world.stack.minio.s3("safezone-anchor-writer", settings.anchor_password)
    anchors = broker.list_anchors()
    assert anchors
    key = next(iter(world.stack.minio.root_s3().list_objects_v2(
        Bucket="audit", Prefix=settings.anchor_prefix)["Contents"]))["Key"]
    access_denied(s3.delete_object, Bucket="audit", Key=key)
    access_denied(s3.get_object, Bucket="audit", Key=key)
    access_denied(s3.list_objects_v2, Bucket="audit")
    root = world.stack.minio.root_s3()
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):  # object lock: not even root removes an anchor version
        versions = root.list_object_versions(Bucket="audit", Prefix=key)["Versions"]
        root.delete_object(Bucket="audit", Key=key, VersionId=versions[0]["VersionId"])
    assert broker.list_anchors() == anchors or len(broker.list_anchors()) >= len(anchors)


def test_admin_page_shows_the_last_verification_without_reverifying(world):
    admin = world.clients["admin-browser"]
    world.stack.api("admin").get("/api/audit/verify").raise_for_status()
    with nothing_changes(world):
        start = time.monotonic()
        page = admin.get("/pages/admin", headers={"Accept-Language": "en"})
        took = time.monotonic() - start
    assert page.status_code == 200 and "last verified" in page.text
    assert took < 10  # no re-verification (nothing_changes); speed: benchmarks/page_times.py


def test_pages_send_csp_and_refuse_framing(world):
    page = world.clients["requester-browser"].get("/pages/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    api = world.clients["requester"].get("/api/me")
    assert "frame-ancestors 'none'" in api.headers["content-security-policy"]


def test_forged_form_is_refused_and_changes_nothing(world):
    rid = world.request_in("in_review")
    browser = world.clients["requester-browser"]
    with nothing_changes(world, rid):
        refused(browser.post(f"/pages/requests/{rid}/withdraw", data={"_csrf": "guess"}), 403,
                "form")


def test_cookie_alone_cannot_change_anything_through_the_api(world):
    rid = world.request_in("in_review")
    browser = world.clients["requester-browser"]
    with nothing_changes(world, rid):
        response = httpx.post(f"{world.stack.hub_url}/services/safezone/api/exports/"
                              f"{rid}/withdraw", cookies=browser.cookies)
        refused(response, 403, "CSRF")


def test_logout_ends_the_page_session_even_for_a_copied_cookie(world):
    browser = browser_session(world.stack, "carol")
    stolen = browser.cookies.get(COOKIE)
    assert browser.get("/pages/").status_code == 200
    out = browser.post("/pages/logout", data={"_csrf": csrf_token(stolen)},
                       headers={"Accept-Language": "en"})
    assert out.status_code == 200 and "You are logged out" in out.text
    thief = httpx.Client(base_url=f"{world.stack.hub_url}/services/safezone/",
                         cookies={COOKIE: stolen}, headers={"X-Safezone-CSRF":
                                                            csrf_token(stolen)})
    assert thief.get("pages/", follow_redirects=False).status_code == 302  # to the login
    assert thief.get("api/exports").status_code == 401
    header = httpx.get(f"{world.stack.control_plane.url}/api/exports",
                       headers={"Authorization": f"token {stolen}"})
    assert header.status_code == 401 and "logged out" in header.json()["error"]


def test_page_cookie_has_a_lifetime_and_is_secure_behind_https(world):
    """The OAuth callback, reached over https (as the proxy says), sets a Secure cookie with
    a lifetime; over plain http it is not Secure (it would never be sent back)."""
    stack = world.stack
    for proto, secure in (("https", True), ("http", False)):
        hub = hub_login(stack, "carol")
        state = f"s{proto}"
        authorize = hub.get("/hub/api/oauth2/authorize", params={
            "client_id": "service-safezone", "response_type": "code", "state": state,
            "redirect_uri": "/services/safezone/oauth_callback"}, follow_redirects=False)
        code = httpx.URL(authorize.headers["location"]).params["code"]
        response = httpx.get(f"{stack.control_plane.url}/oauth_callback",
                             params={"code": code, "state": state},
                             cookies={"safezone-oauth-state": f"{state}|"},
                             headers={"X-Forwarded-Proto": proto})
        assert response.status_code == 303, response.text
        cookie = next(v for k, v in response.headers.multi_items()
                      if k == "set-cookie" and v.startswith(COOKIE))
        assert "Max-Age=28800" in cookie and "HttpOnly" in cookie
        assert ("Secure" in cookie) is secure, cookie
