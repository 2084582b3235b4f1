"""Administration in the pages, on the real stack: every form changes the state through the
same services as the REST API and writes its audit event; a non-administrator is refused
everywhere and changes nothing; a bad form comes back with its message and what was typed;
the audit trail filters, pages and stays fast; both languages."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from safezone import audit_status, memberships, projects
from safezone.audit import EventFilter
from safezone.clock import end_of_day
from safezone.models import AuditEvent, ExportRequest, ExportStatus, Membership, Project
from safezone.permissions import ADMIN_SCOPE, Identity
from safezone.web.session import COOKIE, csrf_token

from .support import attested_dataset, browser_session, report_measure, unique

EN = {"Accept-Language": "en"}
KO = {"Accept-Language": "ko"}
HANGUL = re.compile(r"[\uac00-\ud7a3]")
SWITCH = re.compile(r'<a [^>]*lang="ko"[^>]*>[^<]*</a>')  # names Korean in Korean
ROW = re.compile(r"<tr>\s*<td>(\d+)</td><td>[^<]*</td><td>([^<]*)</td><td><code>([^<]*)</code>"
                 r"</td>\s*<td><code>([^<]*)</code>")
ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))


@pytest.fixture(scope="module")
def admin(stack) -> httpx.Client:
    return browser_session(stack, "admin")


def form(client: httpx.Client, path: str, **fields: str) -> httpx.Response:
    """Post a page form as its browser would: with the session's CSRF field."""
    fields["_csrf"] = csrf_token(client.cookies.get(COOKIE))
    return client.post(path, data=fields, headers=EN, follow_redirects=False)


def follow(stack, client: httpx.Client, response: httpx.Response,
           headers: dict[str, str] = EN) -> httpx.Response:
    assert response.status_code == 303, (response.status_code, response.text[:400])
    return client.get(stack.hub_url + response.headers["location"], headers=headers)


def events(stack, action: str, subject: str) -> list[AuditEvent]:
    with stack.zone.sessions() as db:
        return list(db.scalars(select(AuditEvent).where(
            AuditEvent.action == action, AuditEvent.subject == subject)
            .order_by(AuditEvent.seq)))


def project_of(stack, name: str) -> dict:
    listed = {p["name"]: p for p in stack.api("admin").get("/api/projects").json()}
    return listed[name]


def members_of(stack, name: str) -> dict[str, dict]:
    response = stack.api("admin").get(f"/api/projects/{name}/members")
    return {m["user"]: m for m in response.json()}


def dataset_status(stack, name: str) -> str:
    listed = {d["name"]: d for d in stack.api("admin").get("/api/datasets").json()}
    return listed[name]["status"]


def new_project(stack) -> str:
    name = unique("adm")
    stack.api("admin").post("/api/projects", json={"name": name}).raise_for_status()
    return name


def applies(stack, project: str, user: str) -> None:
    """``user`` (no hub account: no other test's user gains a project) asks to join."""
    memberships.request_membership(stack.zone, Identity(user, "user", frozenset()), project,
                                   user, "a study of waiting times")


def english_only(html: str) -> list[str]:
    return HANGUL.findall(SWITCH.sub("", html))


def inline_error(html: str, key: str) -> str:
    found = re.search(rf'id="{key}-error" role="alert">([^<]*)<', html)
    assert found, f"no inline error {key}"
    return found.group(1)


# -- projects --------------------------------------------------------------------------
def test_admin_creates_a_project_and_archives_it(stack, admin):
    name = unique("adm")
    done = form(admin, "pages/admin/projects", name=name, title="Waiting times")
    assert done.headers["location"].endswith(f"pages/admin/projects/{name}?done=created&n={name}")
    page = follow(stack, admin, done)
    assert page.status_code == 200 and f"Project {name} created." in page.text
    assert project_of(stack, name)["status"] == "active"
    assert project_of(stack, name)["title"] == "Waiting times"
    [created] = events(stack, "project.created", f"project:{name}")
    assert created.actor == "admin" and created.data == {"title": "Waiting times"}
    home = admin.get("pages/admin", headers=EN).text
    assert f'href="/services/safezone/pages/admin/projects/{name}"' in home

    korean = follow(stack, admin, form(admin, f"pages/admin/projects/{name}/archive"), KO)
    assert f"{name} 프로젝트를 보관했습니다" in korean.text
    assert project_of(stack, name)["status"] == "archived"
    assert events(stack, "project.archived", f"project:{name}")[0].actor == "admin"
    assert "보관됨" in korean.text and "/archive" not in korean.text  # no second archive


def test_a_bad_project_form_comes_back_with_its_message_and_what_was_typed(stack, admin):
    with stack.zone.sessions() as db:
        before = db.scalar(select(func.count()).where(AuditEvent.action == "project.created"))
    empty = form(admin, "pages/admin/projects", name="", title="Kept title")
    assert empty.status_code == 422
    assert "invalid project name" in inline_error(empty.text, "create")
    assert 'value="Kept title"' in empty.text and 'aria-invalid="true"' in empty.text
    assert not english_only(empty.text)  # the service's Korean aside is not on an English page

    bad = form(admin, "pages/admin/projects", name="Bad Name!", title="t")
    assert bad.status_code == 422 and 'value="Bad Name!"' in bad.text

    taken = new_project(stack)
    again = form(admin, "pages/admin/projects", name=taken, title="second")
    assert again.status_code == 409 and "already exists" in inline_error(again.text, "create")
    assert f'value="{taken}"' in again.text and 'value="second"' in again.text
    with stack.zone.sessions() as db:
        after = db.scalar(select(func.count()).where(AuditEvent.action == "project.created"))
    assert after == before + 1  # only the project made through the API


# -- datasets --------------------------------------------------------------------------
def test_publish_attach_detach_withdraw_from_the_pages(stack, admin):
    dataset, project = unique("deid-adm"), new_project(stack)
    attested_dataset(stack.zone, dataset)
    assert dataset_status(stack, dataset) == "draft"
    overview = admin.get("pages/admin", headers=EN).text
    assert f'action="/services/safezone/pages/admin/datasets/{dataset}/publish"' in overview

    follow(stack, admin, form(admin, f"pages/admin/datasets/{dataset}/publish"))
    assert dataset_status(stack, dataset) == "published"
    assert events(stack, "dataset.published", f"dataset:{dataset}")[0].actor == "admin"

    page = admin.get(f"pages/admin/projects/{project}", headers=EN).text
    assert f'<option value="{dataset}">' in page
    empty = form(admin, f"pages/admin/projects/{project}/datasets", dataset="")
    assert empty.status_code == 422
    assert inline_error(empty.text, "attach") == "Choose a dataset to attach."
    attached = follow(stack, admin, form(admin, f"pages/admin/projects/{project}/datasets",
                                         dataset=dataset))
    assert f"Dataset {dataset} attached." in attached.text
    assert project_of(stack, project)["datasets"] == [dataset]
    [event] = events(stack, "project.dataset_attached", f"project:{project}")
    assert event.data == {"dataset": dataset} and event.actor == "admin"
    twice = form(admin, f"pages/admin/projects/{project}/datasets", dataset=dataset)
    assert twice.status_code == 409 and "already attached" in inline_error(twice.text, "attach")

    follow(stack, admin, form(admin, f"pages/admin/projects/{project}/datasets/{dataset}/detach"))
    assert project_of(stack, project)["datasets"] == []
    assert events(stack, "project.dataset_detached", f"project:{project}")[0].data == {
        "dataset": dataset}

    withdrawn = follow(stack, admin, form(admin, f"pages/admin/datasets/{dataset}/withdraw"))
    assert f"Dataset {dataset} withdrawn" in withdrawn.text
    assert dataset_status(stack, dataset) == "withdrawn"
    assert events(stack, "dataset.withdrawn", f"dataset:{dataset}")[0].actor == "admin"
    again = form(admin, f"pages/admin/datasets/{dataset}/withdraw")
    assert again.status_code == 409
    assert "cannot withdraw" in inline_error(again.text, f"dataset-{dataset}")


def test_terminals_switch(stack, admin):
    project = new_project(stack)
    page = follow(stack, admin, form(admin, f"pages/admin/projects/{project}/terminals",
                                     enabled="1"))
    assert "Jupyter terminals are on" in page.text
    assert project_of(stack, project)["terminals"] is True
    [event] = events(stack, "project.terminals_changed", f"project:{project}")
    assert event.data == {"old": False, "new": True}
    wrong = form(admin, f"pages/admin/projects/{project}/terminals", enabled="maybe")
    assert wrong.status_code == 422 and inline_error(wrong.text, "terminals") == \
        "Choose on or off."
    assert project_of(stack, project)["terminals"] is True


# -- members ---------------------------------------------------------------------------
def test_members_are_approved_extended_revoked_and_rejected(stack, admin):
    project, today = new_project(stack), stack.zone.now().date()
    for user in ("frank", "gina"):
        applies(stack, project, user)
    page = admin.get(f"pages/admin/projects/{project}", headers=EN).text
    waiting = page[page.index('id="members-requested"'):page.index('id="group-approved"')]
    assert "frank" in waiting and "gina" in waiting and "a study of waiting times" in waiting

    approve = f"pages/admin/projects/{project}/members/frank/approve"
    past = (today - timedelta(days=1)).isoformat()
    refused = form(admin, approve, expires_on=past)
    assert refused.status_code == 422 and f'value="{past}"' in refused.text
    assert "must be in the future" in inline_error(refused.text, "approve-frank")
    assert not english_only(refused.text)
    assert inline_error(form(admin, approve, expires_on="").text, "approve-frank") == \
        "Choose the day access ends."
    assert form(admin, approve, expires_on="31/12/2030").status_code == 422
    assert members_of(stack, project)["frank"]["status"] == "requested"
    assert not events(stack, "membership.approved", f"project:{project}/user:frank")

    until = today + timedelta(days=20)
    done = follow(stack, admin, form(admin, approve, expires_on=until.isoformat()))
    assert "frank approved." in done.text
    frank = members_of(stack, project)["frank"]
    assert frank["status"] == "approved"
    ends = end_of_day(until)  # the chosen day's last second where the zone is (KST)
    assert datetime.fromisoformat(frank["expires_at"]) == ends
    [approved] = events(stack, "membership.approved", f"project:{project}/user:frank")
    assert approved.actor == "admin"
    assert datetime.fromisoformat(approved.data["expires_at"]) == ends

    later = today + timedelta(days=90)
    extended = follow(stack, admin, form(admin, approve, expires_on=later.isoformat(),
                                         extend="1"))
    assert "Access of frank extended." in extended.text
    assert members_of(stack, project)["frank"]["expires_at"].startswith(later.isoformat())
    assert len(events(stack, "membership.approved", f"project:{project}/user:frank")) == 2

    revoke = f"pages/admin/projects/{project}/members/frank/revoke"
    blank = form(admin, revoke, reason="   ")
    assert blank.status_code == 422
    assert "Give a reason" in inline_error(blank.text, "revoke-frank")
    assert members_of(stack, project)["frank"]["status"] == "approved"
    follow(stack, admin, form(admin, revoke, reason="Left the institute"))
    assert members_of(stack, project)["frank"]["status"] == "revoked"
    [revoked] = events(stack, "membership.revoked", f"project:{project}/user:frank")
    assert revoked.data["reason"] == "Left the institute" and revoked.actor == "admin"

    reject = f"pages/admin/projects/{project}/members/gina/reject"
    typed = form(admin, reject, reason="")
    assert typed.status_code == 422 and "Give a reason" in inline_error(typed.text, "reject-gina")
    assert members_of(stack, project)["gina"]["status"] == "requested"
    follow(stack, admin, form(admin, reject, reason="Purpose unclear"))
    assert members_of(stack, project)["gina"]["status"] == "rejected"
    [rejected] = events(stack, "membership.rejected", f"project:{project}/user:gina")
    assert rejected.data["reason"] == "Purpose unclear"

    page = admin.get(f"pages/admin/projects/{project}", headers=EN).text
    ended = page[page.index('id="members-ended"'):page.index('id="datasets-h"')]
    assert "Left the institute" in ended and "Purpose unclear" in ended


def test_expired_members_are_grouped_and_can_be_approved_again(stack, admin):
    project, now = new_project(stack), stack.zone.now()
    memberships.approve_membership(stack.zone, ADMIN, project, "hana", now + timedelta(days=1))
    with stack.zone.sessions() as db, db.begin():
        row = db.scalar(select(Membership).join(Project).where(
            Project.name == project, Membership.user_name == "hana"))
        row.expires_at = now - timedelta(hours=1)  # passed: expired, swept or not
    page = admin.get(f"pages/admin/projects/{project}", headers=EN).text
    assert "hana" in page[page.index('id="group-expired"'):page.index('id="group-ended"')]
    follow(stack, admin, form(admin, f"pages/admin/projects/{project}/members/hana/approve",
                              expires_on=(now + timedelta(days=5)).date().isoformat()))
    assert members_of(stack, project)["hana"]["status"] == "approved"


# -- refusals --------------------------------------------------------------------------
@pytest.mark.parametrize("user", ["alice", "reviewer"])
def test_non_admins_are_refused_everywhere_and_nothing_changes(stack, user):
    project, dataset = new_project(stack), unique("deid-adm")
    attested_dataset(stack.zone, dataset)
    api = stack.api("admin")
    api.post(f"/api/datasets/{dataset}/publish").raise_for_status()
    api.post(f"/api/projects/{project}/datasets", json={"dataset": dataset}).raise_for_status()
    applies(stack, project, "frank")
    memberships.approve_membership(stack.zone, ADMIN, project, "gina",
                                   stack.zone.now() + timedelta(days=3))
    client = browser_session(stack, user)
    expires = (stack.zone.now() + timedelta(days=9)).date().isoformat()
    gets = ["pages/admin", f"pages/admin/projects/{project}", "pages/admin/audit",
            "pages/admin/audit?actor=admin", f"pages/admin/datasets/{dataset}/report"]
    posts = [
        ("pages/admin/projects", {"name": unique("adm"), "title": "x"}),
        (f"pages/admin/projects/{project}/archive", {}),
        (f"pages/admin/projects/{project}/datasets", {"dataset": dataset}),
        (f"pages/admin/projects/{project}/datasets/{dataset}/detach", {}),
        (f"pages/admin/projects/{project}/terminals", {"enabled": "1"}),
        (f"pages/admin/projects/{project}/members/frank/approve", {"expires_on": expires}),
        (f"pages/admin/projects/{project}/members/gina/approve",
         {"expires_on": expires, "extend": "1"}),
        (f"pages/admin/projects/{project}/members/frank/reject", {"reason": "no"}),
        (f"pages/admin/projects/{project}/members/gina/revoke", {"reason": "no"}),
        (f"pages/admin/datasets/{dataset}/withdraw", {}),
        (f"pages/admin/datasets/{dataset}/publish", {}),
        ("pages/admin/audit/verify", {}),
    ]

    def state() -> tuple:
        with stack.zone.sessions() as db:
            by_user = db.scalar(select(func.count()).where(AuditEvent.actor == user))
        return (project_of(stack, project), members_of(stack, project),
                dataset_status(stack, dataset), by_user,
                len(api.get("/api/projects").json()))

    before = state()
    for path in gets:
        refused = client.get(path, headers=EN)
        assert refused.status_code == 403, (path, refused.status_code)
        assert "only a Safezone administrator" in refused.text, path
    for path, fields in posts:
        refused = form(client, path, **fields)
        assert refused.status_code == 403, (path, refused.status_code, refused.text[:300])
        assert "administrator" in refused.text, path
    assert state() == before


def test_a_forged_admin_form_is_refused(stack, admin):
    project = new_project(stack)
    forged = admin.post(f"pages/admin/projects/{project}/archive", data={"_csrf": "guess"},
                        headers=EN)
    assert forged.status_code == 403
    assert project_of(stack, project)["status"] == "active"


# -- the audit trail -------------------------------------------------------------------
def rows(html: str) -> list[tuple[int, str, str, str]]:
    return [(int(seq), actor, action, subject) for seq, actor, action, subject
            in ROW.findall(html)]


def test_audit_trail_filters_and_verification(stack, admin):
    project = unique("adm")
    follow(stack, admin, form(admin, "pages/admin/projects", name=project, title="t"))
    applies(stack, project, "frank")
    follow(stack, admin, form(admin, f"pages/admin/projects/{project}/members/frank/approve",
                              expires_on=(stack.zone.now() + timedelta(days=3)).date()
                              .isoformat()))
    follow(stack, admin, form(admin, f"pages/admin/projects/{project}/terminals", enabled="1"))
    today = stack.zone.now().date()

    def trail(**query: str) -> httpx.Response:
        return admin.get("pages/admin/audit", params=query, headers=EN)

    shown = rows(trail(project=project).text)
    assert [a for _, _, a, _ in shown] == ["project.terminals_changed", "membership.approved",
                                           "membership.requested", "project.created"]
    assert [s for s, _, _, _ in shown] == sorted((s for s, _, _, _ in shown), reverse=True)

    mine = rows(trail(actor="admin", action="membership.", project=project).text)
    assert [(a, s) for _, who, a, s in mine] == [
        ("membership.approved", f"project:{project}/user:frank")]
    assert all(who == "admin" for _, who, _, _ in mine)
    projects_only = rows(trail(action="project.", project=project).text)
    assert {a for _, _, a, _ in projects_only} == {"project.created",
                                                  "project.terminals_changed"}
    frank = rows(trail(actor="frank", project=project).text)
    assert [a for _, _, a, _ in frank] == ["membership.requested"]
    same_day = trail(project=project, since=today.isoformat(), until=today.isoformat())
    assert len(rows(same_day.text)) == 4
    later = trail(project=project, since=(today + timedelta(days=1)).isoformat())
    assert rows(later.text) == [] and "No event matches." in later.text
    earlier = trail(project=project, until=(today - timedelta(days=1)).isoformat())
    assert rows(earlier.text) == []
    assert rows(trail(actor="nobody-at-all").text) == []
    wildcard = rows(trail(action="%", project=project).text)  # no LIKE wildcards
    assert wildcard == []

    bad = trail(project=project, since="yesterday")
    assert bad.status_code == 422 and 'value="yesterday"' in bad.text
    assert inline_error(bad.text, "filter") == "Enter the day as YYYY-MM-DD."
    assert f'value="{project}"' in bad.text

    verified = follow(stack, admin, form(admin, "pages/admin/audit/verify"))
    assert "The audit trail was verified just now." in verified.text
    assert "Intact" in verified.text and "last verified on" in verified.text
    with stack.zone.sessions() as db:
        newest = db.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
    assert newest.action == "audit.verified" and newest.actor == "admin"
    assert newest.data["intact"] is True


def test_audit_filter_edges_answer_without_a_server_error(stack, admin):
    """Both were 500s, found while describing the page's query parameters for the fuzz
    schema (tests/test_fuzz_api.py): the last day there is as an inclusive end (the day
    after it does not exist), and a page number in non-ASCII digits ("²" passes
    str.isdigit, int() refuses it)."""
    project = new_project(stack)
    applies(stack, project, "frank")
    everything = admin.get("pages/admin/audit", headers=EN,
                           params={"project": project, "until": "9999-12-31"})
    assert everything.status_code == 200
    assert [a for _, _, a, _ in rows(everything.text)] == ["membership.requested",
                                                          "project.created"]
    superscript = admin.get("pages/admin/audit", headers=EN,
                            params={"project": project, "page": "²"})
    assert superscript.status_code == 200 and len(rows(superscript.text)) == 2


def test_pages_in_english_and_in_korean(stack, admin):
    project = new_project(stack)
    applies(stack, project, "frank")
    paths = ["pages/admin", f"pages/admin/projects/{project}",
             f"pages/admin/audit?project={project}"]
    for path in paths:
        english = admin.get(path, headers=EN)
        assert english.status_code == 200 and '<html lang="en">' in english.text
        assert not english_only(english.text), (path, english_only(english.text)[:10])
        assert "in_review" not in english.text
    overview = admin.get(paths[0], headers=KO).text
    assert '<html lang="ko">' in overview
    for word in ("관리", "프로젝트", "데이터셋", "새 프로젝트", "감사 기록", "프로젝트 만들기"):
        assert word in overview, word
    page = admin.get(paths[1], headers=KO).text
    for word in ("구성원", "결정 대기", "승인", "반려…", "터미널", "보관", "이용 종료일"):
        assert word in page, word
    trail = admin.get(paths[2], headers=KO).text
    for word in ("감사 기록", "검색 조건", "누가", "전체 기록 지금 검증", "이벤트(최신순)"):
        assert word in trail, word


# -- the audit query at scale (a zone of its own: 10,000 events) ------------------------
def test_audit_query_stays_fast_with_10000_events(zone):
    for name in ("pone", "ptwo"):
        projects.create_project(zone, ADMIN, name)
    with zone.unit_of_work() as db:
        project_id = db.scalar(select(Project.id).where(Project.name == "pone"))
        now = zone.now()
        db.add(ExportRequest(id="e" * 32, project_id=project_id, requester="alice",
                             status=ExportStatus.DRAFT, created_at=now, updated_at=now))
        kinds = ["membership.approved", "export.voted", "session.granted", "dataset.published"]
        for i in range(10_000):
            subject = ("export:" + "e" * 32 if i % 997 == 0
                       else f"project:{'pone' if i % 2 else 'ptwo'}/user:u{i % 7}")
            zone.record(db, Identity(f"user{i % 50}", "user", frozenset()), kinds[i % 4],
                        subject, n=i)
    cases = {
        "no filter": EventFilter(),
        "who": EventFilter(actor="user7"),
        "what": EventFilter(action="membership."),
        "project": EventFilter(project="pone"),
        "all four": EventFilter(actor="user7", action="membership.", project="pone",
                                since=now.date().isoformat()),
        "no match": EventFilter(actor="nobody"),
    }
    timings: dict[str, float] = {}
    for label, wanted in cases.items():
        took = []
        for page in (1, 2, 5) * 7:
            start = time.perf_counter()
            audit_status.trail(zone, ADMIN, wanted, page, 100)
            took.append(time.perf_counter() - start)
        timings[label] = sorted(took)[int(len(took) * 0.95) - 1]
        first, _ = audit_status.trail(zone, ADMIN, wanted, 1, 100)
        if wanted.actor:
            assert all(e["actor"] == wanted.actor for e in first)
        if wanted.action:
            assert all(e["action"].startswith(wanted.action) for e in first)
        if wanted.project:
            assert all(e["subject"] in {"project:pone", "export:" + "e" * 32}
                       or e["subject"].startswith("project:pone/") for e in first)
    first, more = audit_status.trail(zone, ADMIN, EventFilter(), 1, 100)
    second, _ = audit_status.trail(zone, ADMIN, EventFilter(), 2, 100)
    assert more and len(first) == len(second) == 100
    assert first[-1]["seq"] == second[0]["seq"] + 1  # newest first, no gap, no overlap
    exports, _ = audit_status.trail(zone, ADMIN, EventFilter(project="pone",
                                                             action="export."), 1, 5000)
    assert sum(e["subject"] == "export:" + "e" * 32 for e in exports) == 3  # i = 997 · (1|5|9)
    last, more = audit_status.trail(zone, ADMIN, EventFilter(), 101, 100)
    assert not more and len(last) == 10_002 - 100 * 100  # + the two project.created
    report_measure("audit trail page query, 10,000 events, p95: " + ", ".join(
        f"{k} {v * 1000:.1f} ms" for k, v in timings.items()))
    assert max(timings.values()) < 0.5, timings
