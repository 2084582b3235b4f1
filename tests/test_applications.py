"""Applying for access (이용 신청) on the real stack: the form and its validation, the research
plan in MinIO with its recorded hash, the administrator's decision (a new project made from
the application, or an existing one), the limits of the expiry, conflicts of interest, and
the audit trail. Every refusal changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from safezone import applications, memberships
from safezone.application_rules import MESSAGES, end_of, load_rules, parse_day
from safezone.errors import StorageError
from safezone.models import Application, AuditEvent
from safezone.permissions import ADMIN_SCOPE, Identity
from safezone.web.i18n_extract import extract
from safezone.web.session import COOKIE, csrf_token

from .support import browser_session, register_published_dataset, unique
from .test_catalogue_pages import pages_mounted

PDF = b"%PDF-1.4\n% a research plan\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PURPOSE = "Regional differences in yearly visits, for a public health report."
ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
BOB = Identity("bob", "user", frozenset())


@pytest.fixture
def dataset(stack) -> str:
    pages_mounted(stack)
    name = unique("deid-apl")
    register_published_dataset(stack, name)
    return name


def day(stack, days: int) -> str:
    return (stack.zone.now() + timedelta(days=days)).date().isoformat()


def browser(stack, user: str, language: str = "en"):
    client = browser_session(stack, user)
    client.cookies.set("safezone-lang", language)
    return client


def form(client, **fields) -> dict:
    return {"_csrf": csrf_token(client.cookies.get(COOKIE)), **fields}


def apply_fields(stack, dataset: str, **changes) -> dict:
    return {"purpose": PURPOSE, "datasets": dataset, "until": day(stack, 90),
            "fellows": "", "pledge_accepted": "yes",
            "pledge_version": load_rules().pledge.version, **changes}


def api_apply(stack, user: str, dataset: str, **changes):
    body = {"purpose": PURPOSE, "datasets": [dataset], "until": day(stack, 90),
            "pledge_accepted": True, "pledge_version": load_rules().pledge.version, **changes}
    return stack.api(user).post("/api/applications", json=body)


def audit_count(stack) -> int:
    with stack.zone.sessions() as db:
        return db.scalar(select(func.count()).select_from(AuditEvent))


def application_count(stack) -> int:
    with stack.zone.sessions() as db:
        return db.scalar(select(func.count()).select_from(Application))


def events(stack, subject_part: str) -> list[AuditEvent]:
    with stack.zone.sessions() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.subject.contains(
            subject_part)).order_by(AuditEvent.seq)))


def plan_objects(stack) -> set[str]:
    rules = load_rules()
    listed = stack.minio.root_s3().list_objects_v2(Bucket=rules.plan_bucket,
                                                   Prefix=rules.plan_prefix)
    return {o["Key"] for o in listed.get("Contents", [])}


def members_of(stack, project: str) -> dict[str, dict]:
    listed = stack.api("admin").get(f"/api/projects/{project}/members")
    assert listed.status_code == 200, listed.text
    return {m["user"]: m for m in listed.json()}


def field_error(html: str, field: str) -> str:
    found = re.search(rf'id="{field}-error">([^<]*)<', html)
    return found.group(1) if found else ""


# -- the whole flow ----------------------------------------------------------------------
def test_bob_applies_with_a_plan_and_admin_makes_a_project_from_it(stack, dataset):
    bob = browser(stack, "bob", "ko")
    form_page = bob.get("pages/apply", params={"dataset": dataset})
    assert form_page.status_code == 200, form_page.text
    assert f'value="{dataset}" id="ds-' in form_page.text and "checked" in form_page.text
    assert "보안 서약서" in form_page.text  # the Korean pledge on a Korean page
    until = day(stack, 120)
    sent = bob.post("pages/apply", data=form(bob, **apply_fields(
        stack, dataset, until=until, fellows="carol")),
        files={"plan": ("연구계획서.pdf", PDF, "application/pdf")}, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    application_id = sent.headers["location"].split("/pages/applications/")[1].split("?")[0]
    shown = bob.get(f"pages/applications/{application_id}?done=submitted")
    assert "신청이 제출되었습니다" in shown.text and "결정 대기" in shown.text

    # the plan is in MinIO with the recorded hash; the database holds its key and hash only
    with stack.zone.sessions() as db:
        row = db.get(Application, application_id)
        key, digest = row.plan_key, row.plan_sha256
        assert (row.applicant, row.fellows, row.datasets, row.period_end) == (
            "bob", ["carol"], [dataset], until)
        assert (row.pledge_version, row.pledge_sha256, row.pledge_language) == (
            load_rules().pledge.version, load_rules().pledge.sha256, "ko")
        assert row.plan_name == "연구계획서.pdf" and row.plan_size == len(PDF)
    stored = stack.minio.root_s3().get_object(Bucket=load_rules().plan_bucket, Key=key)
    assert stored["Body"].read() == PDF and digest == hashlib.sha256(PDF).hexdigest()
    assert application_id in {a["id"] for a in applications.mine(stack.zone, BOB)}
    assert application_id in {a["id"] for a in applications.queue(stack.zone, ADMIN)}

    # the administrator sees the queue, reads the plan (a download, never a page) and approves
    admin = browser(stack, "admin")
    queue = admin.get("pages/admin/applications")
    assert queue.status_code == 200 and f"pages/applications/{application_id}" in queue.text
    plan = admin.get(f"pages/applications/{application_id}/plan")
    assert plan.status_code == 200 and plan.content == PDF
    assert plan.headers["content-disposition"].startswith("attachment;")
    assert plan.headers["x-content-type-options"] == "nosniff"
    assert plan.headers["content-type"] == "application/octet-stream"
    project, expires = unique("apl"), day(stack, 100)
    approved = admin.post(f"pages/applications/{application_id}/approve", data=form(
        admin, target="new", new_project=project, title="Bob's study", expires_at=expires),
        follow_redirects=False)
    assert approved.status_code == 303, approved.text

    members = members_of(stack, project)
    limit = end_of(parse_day(expires)).isoformat()
    for person in ("bob", "carol"):
        assert members[person]["status"] == "approved"
        assert members[person]["expires_at"].replace("Z", "+00:00") == limit
    listed = {p["name"]: p for p in stack.api("admin").get("/api/projects").json()}
    assert listed[project]["datasets"] == [dataset]
    assert project in memberships.usable_projects(stack.zone, BOB, "bob")
    mine = bob.get(f"pages/applications/{application_id}")
    assert "승인" in mine.text and project in mine.text

    actions = [e.action for e in events(stack, f"application:{application_id}")]
    assert actions == ["application.submitted", "application.plan_read",
                       "application.approved"]
    approval = events(stack, f"application:{application_id}")[-1].data
    assert approval["project"] == project and approval["created"] is True
    assert approval["members"] == ["bob", "carol"]
    assert [e.action for e in events(stack, f"project:{project}")][:2] == [
        "project.created", "project.dataset_attached"]
    assert {e.subject for e in events(stack, f"project:{project}/user:")} == {
        f"project:{project}/user:bob", f"project:{project}/user:carol"}


# -- validation: inline errors, typed values kept, nothing stored ----------------------
def test_unknown_fellow_missing_pledge_and_bad_fields_are_refused_inline(stack, dataset):
    bob = browser(stack, "bob")
    before = (application_count(stack), audit_count(stack), plan_objects(stack))
    cases = {
        "fellows": ({"fellows": "carol, nobody-here"}, "No such user: nobody-here."),
        "pledge": ({"pledge_accepted": ""}, "Accept the security pledge to apply."),
        "purpose": ({"purpose": "too short"}, "at least 20 characters"),
        "until": ({"until": day(stack, 400)}, "at most 12 months ahead"),
        "datasets": ({"datasets": ""}, "Choose at least one dataset."),
    }
    for field, (change, message) in cases.items():
        sent = bob.post("pages/apply", data=form(bob, **apply_fields(stack, dataset, **change)),
                        files={"plan": ("plan.pdf", PDF, "application/pdf")})
        assert sent.status_code == 422, (field, sent.text[:300])
        assert message in field_error(sent.text, field), (field, field_error(sent.text, field))
        if field != "purpose":
            assert PURPOSE in sent.text  # what was typed is still there
        assert "Choose the file again" in sent.text
    assert (application_count(stack), audit_count(stack), plan_objects(stack)) == before

    bob_ko = browser(stack, "bob", "ko")
    korean = bob_ko.post("pages/apply", data=form(
        bob_ko, **apply_fields(stack, dataset, fellows="nobody-here")))
    assert korean.status_code == 422 and "없는 사용자입니다: nobody-here" in korean.text

    refused = api_apply(stack, "bob", dataset, fellows=["nobody-here"])
    assert refused.status_code == 422 and "No such user: nobody-here" in refused.json()["error"]
    refused = api_apply(stack, "bob", dataset, pledge_accepted=False)
    assert refused.status_code == 422 and "pledge" in refused.json()["error"]
    refused = api_apply(stack, "bob", dataset, pledge_version="1999-1")
    assert refused.status_code == 422 and "has changed" in refused.json()["error"]
    assert (application_count(stack), audit_count(stack), plan_objects(stack)) == before


def test_oversize_or_disguised_plan_is_refused(stack, dataset):
    bob = browser(stack, "bob")
    rules = load_rules()
    before = (application_count(stack), audit_count(stack), plan_objects(stack))
    big = b"%PDF-" + b"0" * rules.plan_max_bytes
    sent = bob.post("pages/apply", data=form(bob, **apply_fields(stack, dataset)),
                    files={"plan": ("plan.pdf", big, "application/pdf")})
    assert sent.status_code == 422 and "the limit is" in field_error(sent.text, "plan")
    disguised = bob.post("pages/apply", data=form(bob, **apply_fields(stack, dataset)),
                         files={"plan": ("plan.pdf", b"<html><script>x</script>", "text/html")})
    assert disguised.status_code == 422
    assert "not what its extension .pdf says" in field_error(disguised.text, "plan")
    kind = bob.post("pages/apply", data=form(bob, **apply_fields(stack, dataset)),
                    files={"plan": ("plan.html", b"<html>", "text/html")})
    assert kind.status_code == 422 and "must be one of" in field_error(kind.text, "plan")

    api = stack.api("bob").post("/api/applications", data={
        **apply_fields(stack, dataset), "pledge_accepted": "true"},
        files={"plan": ("plan.pdf", big, "application/pdf")})
    assert api.status_code == 422 and "limit" in api.json()["error"]
    huge = stack.api("bob").post("/api/applications", data=apply_fields(stack, dataset),
                                 files={"plan": ("plan.pdf", big + b"0" * (2 << 20))})
    assert huge.status_code == 413
    assert (application_count(stack), audit_count(stack), plan_objects(stack)) == before


def test_api_application_with_plan_and_its_listing(stack, dataset):
    terms = stack.api("bob").get("/api/applications/pledge").json()
    assert terms["pledge"]["version"] == load_rules().pledge.version
    assert "보안 서약서" in terms["pledge"]["ko"] and "Security pledge" in terms["pledge"]["en"]
    sent = stack.api("bob").post("/api/applications", data={
        **apply_fields(stack, dataset, fellows="carol dave"), "pledge_accepted": "true"},
        files={"plan": ("plan.txt", "계획: 지역별 분석".encode(), "text/plain")})
    assert sent.status_code == 201, sent.text
    made = sent.json()
    assert made["fellows"] == ["carol", "dave"] and made["plan"]["sha256"] == hashlib.sha256(
        "계획: 지역별 분석".encode()).hexdigest()
    assert made["id"] in {a["id"] for a in stack.api("bob").get("/api/applications").json()}
    assert made["id"] in {a["id"] for a in stack.api("admin").get("/api/applications").json()}
    assert made["id"] not in {a["id"] for a in stack.api("alice").get(
        "/api/applications").json()}
    own = stack.api("bob").get(f"/api/applications/{made['id']}/plan")
    assert own.status_code == 200 and own.content == "계획: 지역별 분석".encode()


# -- deciding --------------------------------------------------------------------------
def test_expiry_beyond_the_period_is_refused_and_nothing_changes(stack, dataset):
    made = api_apply(stack, "bob", dataset, until=day(stack, 60), fellows=["carol"])
    assert made.status_code == 201, made.text
    application_id, project = made.json()["id"], unique("apl")
    before = (audit_count(stack), stack.api("admin").get("/api/projects").json(),
              memberships.memberships_of(stack.zone, BOB, "bob"))
    over = stack.api("admin").post(f"/api/applications/{application_id}/approve", json={
        "expires_at": day(stack, 61), "new_project": project})
    assert over.status_code == 422 and "may not pass the end" in over.json()["error"]
    admin = browser(stack, "admin")
    page = admin.post(f"pages/applications/{application_id}/approve", data=form(
        admin, target="new", new_project=project, title="kept", expires_at=day(stack, 61)))
    assert page.status_code == 422
    assert "may not pass the end of the period applied for" in field_error(page.text,
                                                                          "expires_at")
    assert f'value="{project}"' in page.text and 'value="kept"' in page.text
    past = stack.api("admin").post(f"/api/applications/{application_id}/approve", json={
        "expires_at": day(stack, -1), "new_project": project})
    assert past.status_code == 422
    assert (audit_count(stack), stack.api("admin").get("/api/projects").json(),
            memberships.memberships_of(stack.zone, BOB, "bob")) == before
    assert stack.api("bob").get(f"/api/applications/{application_id}").json()[
        "status"] == "submitted"


def test_reject_needs_a_reason_and_bob_sees_it(stack, dataset):
    application_id = api_apply(stack, "bob", dataset).json()["id"]
    admin = browser(stack, "admin")
    before = audit_count(stack)
    blank = admin.post(f"pages/applications/{application_id}/reject",
                       data=form(admin, reason="   "))
    assert blank.status_code == 422 and "Give the reason" in field_error(blank.text, "reason")
    assert stack.api("admin").post(f"/api/applications/{application_id}/reject",
                                   json={"reason": ""}).status_code == 422
    assert audit_count(stack) == before
    reason = "The purpose does not need record-level data; use the published statistics."
    done = admin.post(f"pages/applications/{application_id}/reject",
                      data=form(admin, reason=reason), follow_redirects=False)
    assert done.status_code == 303
    bob = browser(stack, "bob")
    page = bob.get(f"pages/applications/{application_id}")
    assert "Rejected" in page.text and reason in page.text
    assert reason in bob.get("pages/applications").text
    assert stack.api("bob").get(f"/api/applications/{application_id}").json()[
        "reason"] == reason
    assert [e.action for e in events(stack, f"application:{application_id}")] == [
        "application.submitted", "application.rejected"]
    again = stack.api("admin").post(f"/api/applications/{application_id}/approve",
                                    json={"expires_at": day(stack, 10), "new_project": "x1"})
    assert again.status_code == 409  # decided once


def test_bob_cannot_decide_or_read_others_applications_or_plans(stack, dataset):
    alice = stack.api("alice").post("/api/applications", data={
        **apply_fields(stack, dataset), "pledge_accepted": "true"},
        files={"plan": ("plan.pdf", PDF, "application/pdf")})
    assert alice.status_code == 201, alice.text
    application_id = alice.json()["id"]
    before = audit_count(stack)
    bob_api, bob_page = stack.api("bob"), browser(stack, "bob")
    for response in (
            bob_api.get(f"/api/applications/{application_id}"),
            bob_api.get(f"/api/applications/{application_id}/plan"),
            bob_api.post(f"/api/applications/{application_id}/approve",
                         json={"expires_at": day(stack, 10), "new_project": unique("x")}),
            bob_api.post(f"/api/applications/{application_id}/reject", json={"reason": "no"}),
            bob_api.post(f"/api/applications/{application_id}/withdraw"),
            bob_page.get(f"pages/applications/{application_id}"),
            bob_page.get(f"pages/applications/{application_id}/plan"),
            bob_page.post(f"pages/applications/{application_id}/approve", data=form(
                bob_page, target="new", new_project=unique("x"), expires_at=day(stack, 9))),
            bob_page.post(f"pages/applications/{application_id}/withdraw", data=form(bob_page)),
            bob_page.get("pages/admin/applications"),
            stack.api("reviewer").get(f"/api/applications/{application_id}/plan")):
        assert response.status_code == 403, (response.request.url, response.text[:200])
        assert PDF not in response.content
    assert bob_api.get("/api/applications/0123456789abcdef").status_code == 404
    assert application_id not in {a["id"] for a in bob_api.get("/api/applications").json()}
    assert audit_count(stack) == before  # no plan_read, no decision
    assert stack.api("alice").get(f"/api/applications/{application_id}").json()[
        "status"] == "submitted"


def test_no_one_decides_an_application_they_are_named_on(stack, dataset):
    own = api_apply(stack, "admin", dataset)
    assert own.status_code == 201, own.text
    fellow = api_apply(stack, "bob", dataset, fellows=["admin"]).json()["id"]
    before = audit_count(stack)
    for application_id in (own.json()["id"], fellow):
        refused = stack.api("admin").post(f"/api/applications/{application_id}/approve",
                                          json={"expires_at": day(stack, 10),
                                                "new_project": unique("coi")})
        assert refused.status_code == 403, refused.text
        assert stack.api("admin").post(f"/api/applications/{application_id}/reject",
                                       json={"reason": "mine"}).status_code == 403
    assert audit_count(stack) == before
    page = browser(stack, "admin").get(f"pages/applications/{own.json()['id']}")
    assert page.status_code == 200 and "/approve" not in page.text  # no decision form
    other = stack.api("admin2").post(f"/api/applications/{fellow}/approve", json={
        "expires_at": day(stack, 10), "new_project": unique("coi")})
    assert other.status_code == 200, other.text


def test_joining_an_existing_project_and_withdrawing(stack, dataset):
    project = unique("join")
    stack.api("admin").post("/api/projects", json={"name": project}).raise_for_status()
    bob = browser(stack, "bob")
    page = bob.get("pages/apply", params={"project": project})
    assert page.status_code == 200 and f"join the project {project}" in page.text
    sent = bob.post("pages/apply", data=form(bob, **apply_fields(
        stack, dataset, datasets="", project=project)), follow_redirects=False)
    assert sent.status_code == 303, sent.text
    joining = sent.headers["location"].split("/pages/applications/")[1].split("?")[0]
    done = stack.api("admin").post(f"/api/applications/{joining}/approve",
                                   json={"expires_at": day(stack, 30)})
    assert done.status_code == 200, done.text
    assert done.json()["decided_project"] == project
    assert members_of(stack, project)["bob"]["status"] == "approved"

    second = api_apply(stack, "bob", dataset).json()["id"]
    withdrawn = bob.post(f"pages/applications/{second}/withdraw", data=form(bob),
                         follow_redirects=False)
    assert withdrawn.status_code == 303
    assert stack.api("bob").get(f"/api/applications/{second}").json()["status"] == "withdrawn"
    assert stack.api("bob").post(f"/api/applications/{second}/withdraw").status_code == 409
    assert [e.action for e in events(stack, f"application:{second}")] == [
        "application.submitted", "application.withdrawn"]


def test_a_failed_approval_keeps_its_steps_and_can_be_finished(stack, dataset, monkeypatch):
    application_id = api_apply(stack, "bob", dataset, fellows=["carol"]).json()["id"]
    project = unique("half")
    real = memberships.approve_membership

    def failing(zone, actor, project_name, user, expires_at):
        if user == "carol":
            raise StorageError("MinIO is away")
        return real(zone, actor, project_name, user, expires_at)

    monkeypatch.setattr(memberships, "approve_membership", failing)
    with pytest.raises(StorageError):
        applications.approve(stack.zone, ADMIN, application_id, day(stack, 20),
                             new_project=project)
    view = applications.get(stack.zone, ADMIN, application_id)
    assert view["status"] == "submitted"
    assert view["progress"] == [f"project.created:{project}", f"dataset.attached:{dataset}",
                                "membership.approved:bob"]
    failed = events(stack, f"application:{application_id}")[-1]
    assert failed.action == "application.approval_failed" and "MinIO" in failed.data["error"]
    monkeypatch.setattr(memberships, "approve_membership", real)
    finished = applications.approve(stack.zone, ADMIN, application_id, day(stack, 20),
                                    project=project)
    assert finished["status"] == "approved" and finished["progress"][-1] == \
        "membership.approved:carol"
    assert members_of(stack, project)["carol"]["status"] == "approved"


# -- the service's messages are page strings; the CLI ------------------------------------
def test_every_refusal_message_is_a_translated_page_string():
    strings = extract()
    assert set(MESSAGES.values()) <= set(strings)


def test_cli_lists_approves_and_rejects(stack, dataset):
    def cli(user: str, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "SAFEZONE_URL": stack.control_plane.url,
               "SAFEZONE_TOKEN": stack.tokens[user]}
        return subprocess.run([sys.executable, "-m", "safezone.cli", "applications", *args],
                              env=env, capture_output=True, text=True, timeout=60)

    first = api_apply(stack, "bob", dataset).json()["id"]
    second = api_apply(stack, "bob", dataset).json()["id"]
    listed = cli("admin", "list")
    assert listed.returncode == 0 and first in {a["id"] for a in json.loads(listed.stdout)}
    project = unique("cli")
    over = cli("admin", "approve", first, "--expires", day(stack, 200), "--new-project", project)
    assert over.returncode == 1 and "may not pass the end" in over.stderr
    done = cli("admin", "approve", first, "--expires", day(stack, 30), "--new-project", project)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "approved"
    rejected = cli("admin", "reject", second, "--reason", "duplicate")
    assert rejected.returncode == 0 and json.loads(rejected.stdout)["reason"] == "duplicate"
