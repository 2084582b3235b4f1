"""Every route of the control plane × every kind of caller × every export state, against
the real service, compared with the verdict of ``policies/permissions.yaml``.

A refusal must be the table's status with its message and must change nothing (request
state, audit trail). An allowed call must get past the permission layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
import yaml

from safezone import memberships
from safezone.api.actions import routes_of
from safezone.api.app import create_app
from safezone.permissions import Identity, decide, load_table

from ..support import TINY_RECIPE, report_measure, unique
from .world import CALLERS, Caller, World

# whose membership the membership routes decide on: no hub account, so no test's user
# gains a project here
TARGET = "frank"
EXPORT_STATES = ("draft", "in_review", "returned", "approved", "released", "rejected",
                 "withdrawn", "revoked")


def test_every_route_names_an_action_of_the_table(stack):
    """No route may exist without a line in the permission table."""
    app = create_app(stack.zone, sweep=False, checks=False)
    table = load_table()
    routes = routes_of(app)
    unmapped = [f"{sorted(r.methods)} {r.path}" for r in routes
                if getattr(r.endpoint, "safezone_action", None) not in table.rules]
    assert not unmapped, f"routes without a permission-table action: {unmapped}"
    mapped = {(m, r.path) for r in routes for m in r.methods}
    assert mapped == {(c.method, c.route) for c in CALLS}, "the matrix must call every route"


@dataclass(frozen=True)
class Call:
    method: str
    route: str                      # as the app declares it
    action: str
    subject: str = "none"           # none | project | self | export
    body: Callable[[World], dict] | None = None
    form: bool = False              # a page form (cookie + _csrf field)
    fresh: str = ""                 # what an allowed call needs of its own (mutations)


def _expires(world: World) -> dict:
    return {"expires_at": (world.stack.zone.now() + timedelta(days=10)).isoformat()}


def _application_body(world: World) -> dict:
    from safezone.application_rules import load_rules

    until = (world.stack.zone.now() + timedelta(days=30)).date().isoformat()
    return {"purpose": "a matrix study of access decisions", "datasets": [world.dataset],
            "until": until, "pledge_accepted": True,
            "pledge_version": load_rules().pledge.version}


def _application_decision(world: World) -> dict:
    return {"expires_at": (world.stack.zone.now() + timedelta(days=10)).date().isoformat(),
            "new_project": unique("mxa")}


APPLICATIONS: dict[str, str] = {}  # alice's application the reading routes look at


def _application(world: World, fresh: bool) -> str:
    """An application of alice's, with a research plan (a new one for each decision)."""
    from safezone import applications
    from safezone.applications import Plan

    if fresh or "shared" not in APPLICATIONS:
        made = applications.submit(world.stack.zone, Identity("alice", "user", frozenset()),
                                   plan=Plan("plan.txt", b"matrix plan"), language="en",
                                   **{**_application_body(world), "pledge_accepted": True})
        if fresh:
            return made["id"]
        APPLICATIONS["shared"] = made["id"]
    return APPLICATIONS["shared"]


CALLS: list[Call] = [
    Call("GET", "/api/health", "health.read"),
    Call("GET", "/api/health/live", "health.read"),
    Call("GET", "/api/health/ready", "health.read"),
    Call("GET", "/metrics", "metrics.read"),  # a hub token is no scraper token: 401
    Call("GET", "/api/me", "me.read"),
    Call("POST", "/api/projects", "project.create", body=lambda w: {"name": unique("mx")}),
    Call("GET", "/api/projects", "project.list"),
    Call("POST", "/api/projects/{name}/archive", "project.archive", "project",
         fresh="project"),
    Call("POST", "/api/projects/{name}/datasets", "project.attach", "project",
         body=lambda w: {"dataset": w.dataset}),
    Call("DELETE", "/api/projects/{name}/datasets/{dataset}", "project.detach", "project",
         fresh="project"),
    Call("PUT", "/api/projects/{name}/terminals", "project.set_terminals", "project",
         body=lambda w: {"enabled": True}, fresh="project"),
    Call("GET", "/api/projects/{name}/quota", "project.quota", "project"),
    Call("PUT", "/api/projects/{name}/quota", "project.set_quota", "project",
         body=lambda w: {"servers": 5}, fresh="project"),
    Call("POST", "/api/datasets", "dataset.register",
         body=lambda w: {"name": unique("raw-mx"), "classification": "raw"}),
    Call("GET", "/api/datasets", "dataset.list"),
    Call("POST", "/api/datasets/{name}/publish", "dataset.publish", fresh="dataset"),
    Call("POST", "/api/datasets/{name}/withdraw", "dataset.withdraw", fresh="dataset"),
    Call("PUT", "/api/datasets/{name}/catalogue", "dataset.describe",
         body=lambda w: yaml.safe_load(TINY_RECIPE)["catalogue"]),
    Call("GET", "/api/catalogue", "catalogue.read"),
    Call("GET", "/api/catalogue/{name}/report", "catalogue.read"),
    Call("GET", "/api/catalogue.jsonld", "catalogue.jsonld"),
    Call("POST", "/api/projects/{name}/members/request", "membership.request", "self",
         body=lambda w: {"justification": "study"}, fresh="project"),
    Call("GET", "/api/projects/{name}/members", "membership.list", "project"),
    Call("POST", "/api/projects/{name}/members/{user}/approve", "membership.approve",
         "project", body=_expires, fresh="project"),
    Call("POST", "/api/projects/{name}/members/{user}/reject", "membership.reject",
         "project", body=lambda w: {"reason": "no"}, fresh="project"),
    Call("POST", "/api/projects/{name}/members/{user}/revoke", "membership.revoke",
         "project", body=lambda w: {"reason": "no"}, fresh="project"),
    Call("GET", "/api/users/{user}/projects", "membership.mine", "self"),
    Call("POST", "/api/sessions", "grant.issue",
         body=lambda w: {"user": "alice", "project": w.project}),
    Call("DELETE", "/api/sessions/{grant_id}", "grant.end", fresh="grant"),
    Call("GET", "/api/audit/verify", "audit.verify"),
    Call("GET", "/api/exports/outbox/{project}", "export.outbox", "project"),
    Call("POST", "/api/exports", "export.create", "project",
         body=lambda w: {"project": w.project, "files": [{"path": "t.csv"}]}),
    Call("POST", "/api/exports/dry-run", "export.dry_run", "project",
         body=lambda w: {"project": w.project, "files": ["t.csv"]}),
    Call("GET", "/api/exports", "export.list_mine"),
    Call("GET", "/api/review/queue", "export.queue"),
    Call("GET", "/api/exports/{request_id}", "export.view", "export"),
    Call("PUT", "/api/exports/{request_id}/files", "export.edit", "export",
         body=lambda w: {"files": [{"path": "t.csv"}]}),
    Call("POST", "/api/exports/{request_id}/submit", "export.submit", "export", fresh="export"),
    Call("POST", "/api/exports/{request_id}/withdraw", "export.withdraw", "export",
         fresh="export"),
    Call("GET", "/api/exports/{request_id}/previews", "export.preview", "export"),
    Call("POST", "/api/exports/{request_id}/votes", "export.vote", "export", fresh="export",
         body=lambda w: {"file_id": 0, "decision": "reject", "comment": "matrix"}),
    Call("POST", "/api/exports/{request_id}/release", "export.release", "export",
         fresh="export"),
    Call("POST", "/api/exports/{request_id}/revoke", "export.revoke", "export",
         body=lambda w: {"reason": "matrix"}, fresh="export"),
    Call("POST", "/api/exports/{request_id}/files/{file_id}/links", "export.link", "export"),
    Call("POST", "/api/download", "export.download", "export", fresh="link"),
    # applications for access: alice's (subject "self"), fresh ones for the decisions
    Call("GET", "/api/applications/pledge", "application.terms"),
    Call("POST", "/api/applications", "application.submit", body=_application_body),
    Call("GET", "/api/applications", "application.list"),
    Call("GET", "/api/applications/{application_id}", "application.view", "self"),
    Call("GET", "/api/applications/{application_id}/plan", "application.plan", "self"),
    Call("POST", "/api/applications/{application_id}/withdraw", "application.withdraw",
         "self", fresh="application"),
    Call("POST", "/api/applications/{application_id}/approve", "application.approve", "self",
         fresh="application", body=_application_decision),
    Call("POST", "/api/applications/{application_id}/reject", "application.reject", "self",
         fresh="application", body=lambda w: {"reason": "matrix"}),
    Call("GET", "/pages/catalogue", "catalogue.read"),
    Call("GET", "/pages/catalogue/{name}", "catalogue.read"),
    Call("GET", "/pages/apply", "application.submit"),
    Call("POST", "/pages/apply", "application.submit", form=True,
         body=lambda w: {**_application_body(w), "datasets": w.dataset, "fellows": "",
                         "pledge_accepted": "yes"}),
    Call("GET", "/pages/applications", "application.list"),
    Call("GET", "/pages/admin/applications", "application.queue"),
    Call("GET", "/pages/applications/{application_id}", "application.view", "self"),
    Call("GET", "/pages/applications/{application_id}/plan", "application.plan", "self"),
    Call("POST", "/pages/applications/{application_id}/withdraw", "application.withdraw",
         "self", form=True, fresh="application"),
    Call("POST", "/pages/applications/{application_id}/approve", "application.approve",
         "self", form=True, fresh="application",
         body=lambda w: {**_application_decision(w), "target": "new"}),
    Call("POST", "/pages/applications/{application_id}/reject", "application.reject", "self",
         form=True, fresh="application", body=lambda w: {"reason": "matrix"}),
    # pages (browser sessions; API tokens are sent to the login)
    Call("GET", "/oauth_callback", "session.login"),
    Call("POST", "/pages/logout", "session.logout", form=True, fresh="session"),
    Call("GET", "/pages/language", "page.language"),
    Call("GET", "/pages/", "page.home"),
    Call("GET", "/pages/projects/{name}/requests/new", "export.outbox", "project"),
    Call("POST", "/pages/requests", "export.create", "project", form=True,
         body=lambda w: {"project": w.project, "title": "m", "file": "t.csv"}),
    Call("GET", "/pages/requests/{request_id}", "export.view", "export"),
    Call("POST", "/pages/requests/{request_id}/submit", "export.submit", "export", form=True,
         fresh="export"),
    Call("POST", "/pages/projects/{name}/requests/dry-run", "export.dry_run", "project",
         form=True, body=lambda w: {"file": "t.csv"}),
    Call("POST", "/pages/requests/{request_id}/withdraw", "export.withdraw", "export",
         form=True, fresh="export", body=lambda w: {"confirm": "yes"}),
    Call("POST", "/pages/requests/{request_id}/files/{file_id}/download", "export.link",
         "export", form=True),
    Call("POST", "/pages/download", "export.download", "export", form=True, fresh="link"),
    Call("GET", "/pages/review", "export.queue"),
    Call("GET", "/pages/review/{request_id}", "export.preview", "export"),
    Call("POST", "/pages/review/{request_id}/vote", "export.vote", "export", form=True,
         fresh="export", body=lambda w: {"file_id": "0", "decision": "reject",
                                          "comment": "matrix"}),
    Call("GET", "/pages/review/{request_id}/outcome", "export.view", "export"),
    Call("POST", "/pages/review/{request_id}/revoke", "export.revoke", "export", form=True,
         fresh="export", body=lambda w: {"reason": "matrix"}),
    Call("GET", "/pages/admin", "admin.page"),
    Call("GET", "/pages/admin/datasets/{name}/report", "dataset.report"),
    Call("POST", "/pages/admin/projects", "project.create", form=True,
         body=lambda w: {"name": unique("mxp"), "title": "matrix"}),
    Call("GET", "/pages/admin/projects/{name}", "admin.page", "project"),
    Call("POST", "/pages/admin/projects/{name}/archive", "project.archive", "project",
         form=True, fresh="project"),
    Call("POST", "/pages/admin/projects/{name}/datasets", "project.attach", "project",
         form=True, body=lambda w: {"dataset": w.dataset}),
    Call("POST", "/pages/admin/projects/{name}/datasets/{dataset}/detach", "project.detach",
         "project", form=True, fresh="project"),
    Call("POST", "/pages/admin/projects/{name}/terminals", "project.set_terminals", "project",
         form=True, body=lambda w: {"enabled": "1"}, fresh="project"),
    Call("POST", "/pages/admin/projects/{name}/members/{user}/approve", "membership.approve",
         "project", form=True, fresh="project", body=lambda w: {
             "expires_on": (w.stack.zone.now() + timedelta(days=10)).date().isoformat()}),
    Call("POST", "/pages/admin/projects/{name}/members/{user}/reject", "membership.reject",
         "project", form=True, body=lambda w: {"reason": "no"}, fresh="project"),
    Call("POST", "/pages/admin/projects/{name}/members/{user}/revoke", "membership.revoke",
         "project", form=True, body=lambda w: {"reason": "no"}, fresh="project"),
    Call("POST", "/pages/admin/datasets/{name}/publish", "dataset.publish", form=True,
         fresh="dataset"),
    Call("POST", "/pages/admin/datasets/{name}/withdraw", "dataset.withdraw", form=True,
         fresh="dataset"),
    Call("GET", "/pages/admin/audit", "audit.read"),
    # end dates, retention, destruction (a due destruction is 409 here: nothing ended)
    Call("PUT", "/api/projects/{name}/end", "project.set_end", "project", fresh="project",
         body=lambda w: {"ends_on": (w.stack.zone.now() + timedelta(days=400)).date()
                         .isoformat()}),
    Call("POST", "/api/projects/{name}/destroy", "project.destroy", "project"),
    Call("PUT", "/api/datasets/{name}/retention", "dataset.set_retention",
         body=lambda w: {"retain_until": None}),
    Call("POST", "/api/datasets/{name}/destroy", "dataset.destroy"),
    Call("GET", "/api/destructions", "destruction.read"),
    Call("GET", "/api/destructions/{destruction_id}", "destruction.read"),
    Call("GET", "/api/destructions/{destruction_id}/certificate", "destruction.read"),
    # access records: MinIO's webhook (its own token: a hub token gets 401), the hub's login
    # report (the spawner's token), the administrators' reading and review
    Call("POST", "/api/records/minio", "records.ingest", body=lambda w: {}),
    Call("POST", "/api/records/logins", "records.login",
         body=lambda w: {"user": "alice", "source": "198.51.100.1"}),
    Call("GET", "/api/records", "records.read"),
    Call("GET", "/api/records/verify", "records.verify"),
    Call("GET", "/api/records/report", "records.report"),
    Call("GET", "/api/records/reviews", "records.report"),
    Call("POST", "/api/records/reviews", "records.review",
         body=lambda w: {"month": "2026-11", "through": 0}),
    Call("POST", "/api/records/sweep", "records.sweep"),
    Call("GET", "/pages/admin/records", "records.report"),
    Call("POST", "/pages/admin/records/reviewed", "records.review", form=True,
         body=lambda w: {"month": "2026-11", "through": "0"}),
    Call("POST", "/pages/admin/audit/verify", "audit.verify", form=True),
]

CELLS: list[int] = []  # cells run, for the printed matrix size


def _path(call: Call, ids: dict[str, str]) -> str:
    return call.route.format(**ids)


def _states(call: Call) -> tuple[str | None, ...]:
    if call.subject != "export":
        return (None,)
    if call.fresh == "link":
        return ("released", "revoked")  # a link exists only once a request was released
    return EXPORT_STATES


def _relations(world: World, call: Call, caller: Caller, fresh_project: bool
               ) -> frozenset[str]:
    if call.subject == "export":
        return world.relations(caller, requester="alice")
    if call.subject == "self":
        on_project = call.route.startswith("/api/projects/") and not fresh_project
        return world.relations(caller, project=on_project,
                               user=caller.user if "request" in call.route else "alice")
    if call.subject == "project" and not fresh_project:
        return world.relations(caller, project=True)
    # a fresh project: nobody is a member; the membership routes act on TARGET
    return world.relations(caller, user=TARGET if "{user}" in call.route else None)


def _subject_ids(world: World, call: Call, state: str | None, allowed: bool,
                 caller: Caller) -> dict[str, str]:
    ids = {"name": world.project, "project": world.project, "dataset": "deid-not-attached",
           "user": TARGET if "/members/{user}/" in call.route else "alice", "grant_id": "",
           "request_id": "", "file_id": "0", "destruction_id": "none"}
    stack = world.stack
    if call.fresh == "project":
        ids["name"] = world.fresh_project()
        if call.action in {"membership.reject", "membership.revoke"}:
            memberships.request_membership(stack.zone, Identity(TARGET, "user", frozenset()),
                                           ids["name"], TARGET)
        if call.action == "membership.revoke":
            stack.api("admin").post(f"/api/projects/{ids['name']}/members/{TARGET}/approve",
                                    json=_expires(world)).raise_for_status()
    if call.route.startswith(("/api/datasets/", "/api/catalogue/",
                           "/pages/admin/datasets/")) \
            or call.action == "dataset.report":
        ids["name"] = world.dataset
        if call.fresh == "dataset" and allowed:
            from ..support import attested_dataset

            ids["name"] = unique("deid-mx")
            attested_dataset(stack.zone, ids["name"])
            stack.api("admin").post(f"/api/datasets/{ids['name']}/publish").raise_for_status()
    if "{application_id}" in call.route:
        ids["application_id"] = _application(world, call.fresh == "application")
    if call.route.startswith("/pages/catalogue/"):
        ids["name"] = world.dataset
    if call.fresh == "grant":
        granted = stack.api("spawner").post("/api/sessions", json={
            "user": "alice", "project": world.project})
        granted.raise_for_status()
        ids["grant_id"] = granted.json()["grant_id"]
    if state is not None:
        if call.fresh == "link" or (call.fresh == "export" and allowed) \
                or state not in world.requests:
            rid = world.request_in(state if call.fresh != "link" else "released")
        else:
            rid = world.requests[state]
        ids["request_id"] = rid
        files = stack.api("alice").get(f"/api/exports/{rid}").json()["files"]
        ids["file_id"] = str(files[0]["id"])
        if call.fresh == "link":
            browser = world.clients["requester-browser"]
            made = browser.post(f"/api/exports/{rid}/files/{ids['file_id']}/links")
            assert made.status_code == 201, made.text
            ids["token"] = made.json()["token"]
            if state == "revoked":
                stack.api("reviewer").post(f"/api/exports/{rid}/revoke",
                                           json={"reason": "matrix"}).raise_for_status()
    return ids


def _send(world: World, call: Call, caller: Caller, ids: dict[str, str]):
    from safezone.web.session import COOKIE, csrf_token

    from ..support import browser_session

    client = world.client(caller)
    if call.fresh == "session" and caller.channel == "browser":
        client = browser_session(world.stack, caller.user)  # logging out ends it
    body = call.body(world) if call.body else None
    if body and "file_id" in body:
        body["file_id"] = int(ids["file_id"]) if not call.form else ids["file_id"]
    if call.fresh == "link":
        body = {"token": ids["token"]}
    path = _path(call, ids)
    if call.form:
        cookie = client.cookies.get(COOKIE)
        fields = {**(body or {}), "_csrf": csrf_token(cookie) if cookie else "none"}
        return client.request(call.method, path, data=fields, follow_redirects=False)
    return client.request(call.method, path, json=body, follow_redirects=False)


def _fill_world_requests(world: World) -> None:
    if not world.requests:
        for state in EXPORT_STATES:
            world.requests[state] = world.request_in(state)


@pytest.mark.parametrize("call", CALLS, ids=[f"{c.method} {c.route}" for c in CALLS])
def test_route_matrix(world, call):
    _fill_world_requests(world)
    table = load_table()
    rule = table.rule(call.action)
    wrong: list[str] = []
    for caller in CALLERS:
        for state in _states(call):
            page = call.route.startswith("/pages/")
            fresh_project = call.fresh == "project"
            found = _relations(world, call, caller, fresh_project)
            verdict = decide(call.action, found, state)
            ids = _subject_ids(world, call, state, verdict.allowed, caller)
            before_state = world.status_of(ids["request_id"]) if ids["request_id"] else None
            before_audit = world.audit_count()
            response = _send(world, call, caller, ids)
            CELLS.append(1)
            if verdict.allowed:
                world.settle()  # checks a submit started finish before the next cell
            where = f"{caller.key} state={state}: {response.status_code} {response.text[:160]}"
            if rule.public:  # the OAuth callback without a code answers 401 to everyone
                if response.status_code == 403 or response.status_code >= 500:
                    wrong.append(f"public route refused {where}")
                continue
            if caller.channel == "none":
                expected = 302 if page else 401
                if response.status_code != expected:
                    wrong.append(f"anonymous got through: {where}")
                continue
            if page and caller.channel != "browser":
                if response.status_code != 302:  # pages only know browser sessions
                    wrong.append(f"page served to a token: {where}")
                continue
            if verdict.allowed:
                blocked = response.status_code in (401, 403) or response.status_code >= 500 \
                    or (response.status_code == 409 and "export request is" in response.text)
                if blocked:
                    wrong.append(f"table allows, service refused: {where}")
                continue
            if response.status_code != verdict.status:
                wrong.append(f"table says {verdict.status} ({verdict.reason}), got {where}")
                continue
            after_state = world.status_of(ids["request_id"]) if ids["request_id"] else None
            audited = world.audit_count() - before_audit
            if after_state != before_state:
                wrong.append(f"refused but the request moved {before_state}->{after_state}: "
                             f"{where}")
            if audited != (1 if "operator" in found else 0):
                wrong.append(f"refused but {audited} audit events were written: {where}")
    assert not wrong, "\n".join(wrong)


def test_matrix_size_is_printed(world):
    routes = len({(c.method, c.route) for c in CALLS})
    report_measure(f"permission matrix: {routes} routes x {len(CALLERS)} identities x "
                   f"{len(EXPORT_STATES)} export states = {len(CELLS)} cells run")
    assert len(CELLS) > routes * len(CALLERS)
