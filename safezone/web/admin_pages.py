"""Administration in the pages: projects, datasets, members and the audit trail.

Every form calls the service function the REST API calls (which applies the permission
table); a refused or invalid form comes back with its message inline and what was typed
kept (HTTP 4xx), a done one redirects (303) with a message in the page's language.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import audit_status, datasets, memberships, projects
from ..api.actions import action
from ..audit import EventFilter
from ..clock import end_of_day
from ..deid.pipeline import REPORT_KEYS
from ..errors import Conflict, InvalidInput, InvalidTransition, NotFound
from ..models import Classification, DatasetStatus
from ..permissions import Identity, require
from .i18n import N_
from .kit import PageKit, said

# the refusals a form shows inline; a permission refusal is the error page (403)
FORM_ERRORS = (InvalidInput, Conflict, InvalidTransition, NotFound)
PER_PAGE = 100
Change = Callable[[Identity, Any], tuple[str, str]]  # a form's change: (done, to what)
SHOWN_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
DONE = {
    "created": N_("Project %(name)s created."),
    "archived": N_("Project %(name)s archived: its notebook sessions were ended."),
    "attached": N_("Dataset %(name)s attached."),
    "detached": N_("Dataset %(name)s detached: running sessions lost access to it."),
    "terminals_on": N_("Terminals switched on for %(name)s (from the next notebook start)."),
    "terminals_off": N_("Terminals switched off for %(name)s (from the next notebook start)."),
    "approved": N_("%(name)s approved."),
    "extended": N_("Access of %(name)s extended."),
    "rejected": N_("Application of %(name)s rejected."),
    "revoked": N_("Access of %(name)s revoked: their sessions were ended."),
    "published": N_("Dataset %(name)s published."),
    "withdrawn": N_("Dataset %(name)s withdrawn: running sessions lost access to it."),
    "verified": N_("The audit trail was verified just now."),
}
MEMBER_GROUPS = (
    ("requested", N_("Waiting for a decision"), ("requested",)),
    ("approved", N_("Approved"), ("approved",)),
    ("expired", N_("Expired"), ("expired",)),
    ("ended", N_("Revoked or rejected"), ("revoked", "rejected")),
)


def flash(kit: PageKit, request: Request) -> str:
    """The message of the action just done (``?done=…&n=…``), in the page's language."""
    done, name = request.query_params.get("done", ""), request.query_params.get("n", "")
    if done not in DONE or (name and not SHOWN_NAME.match(name)):
        return ""
    return kit.text(request, DONE[done]) % {"name": name}


def expiry(kit: PageKit, request: Request, typed: str) -> datetime:
    """The end of the chosen day where the zone is; the service decides whether it may be."""
    if not typed:
        raise InvalidInput(kit.text(request, N_("Choose the day access ends.")))
    try:
        day = date.fromisoformat(typed)
    except ValueError:
        raise InvalidInput(kit.text(request, N_("Enter the day as YYYY-MM-DD."))) from None
    return end_of_day(day)


def reason(kit: PageKit, request: Request, typed: str) -> str:
    if not typed.strip():
        raise InvalidInput(kit.text(request, N_("Give a reason: the person concerned sees it.")))
    return typed.strip()


def day_filter(kit: PageKit, request: Request, typed: str, after: bool = False) -> str:
    """A filter date as the ``ts`` bound it means (the day after, for an inclusive end)."""
    if not typed:
        return ""
    try:
        day = date.fromisoformat(typed)
    except ValueError:
        raise InvalidInput(kit.text(request, N_("Enter the day as YYYY-MM-DD."))) from None
    if after and day == date.max:  # until the last day there is: no upper bound
        return ""
    return (day + timedelta(days=1 if after else 0)).isoformat()


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    zone = kit.zone

    def go(path: str, done: str, name: str = "") -> RedirectResponse:
        return kit.go(f"{path}?{urlencode({'done': done, 'n': name})}")

    # -- the overview: projects, datasets, verification ---------------------------------
    def overview(request: Request, me: Identity, token: str, status: int = 200,
                 **context: Any) -> HTMLResponse:
        require("admin.page", me)
        return kit.render(request, "admin.html", me, token, status=status,
                          projects=projects.list_projects(zone, me),
                          datasets=datasets.list_datasets(zone, me),
                          audit=audit_status.last(zone), flash=flash(kit, request),
                          **context)

    @router.get("/pages/admin")
    @action("admin.page")
    def admin(request: Request) -> HTMLResponse:
        me, token = kit.who(request)
        return overview(request, me, token, errors={}, typed={})

    @router.post("/pages/admin/projects")
    @action("project.create")
    async def create_project(request: Request) -> Response:
        me, form, token = await kit.posted(request)
        name, title = str(form.get("name", "")).strip(), str(form.get("title", ""))
        try:
            projects.create_project(zone, me, name, title)
        except FORM_ERRORS as exc:
            return overview(request, me, token, exc.status_code,
                            errors={"create": said(request, exc.message)},
                            typed={"name": name, "title": title})
        return go(f"pages/admin/projects/{name}", "created", name)

    @router.post("/pages/admin/datasets/{name}/publish")
    @action("dataset.publish")
    async def publish(request: Request, name: str) -> Response:
        return await dataset_status(request, name, "publish", "published")

    @router.post("/pages/admin/datasets/{name}/withdraw")
    @action("dataset.withdraw")
    async def withdraw(request: Request, name: str) -> Response:
        return await dataset_status(request, name, "withdraw", "withdrawn")

    async def dataset_status(request: Request, name: str, verb: str, done: str) -> Response:
        me, _, token = await kit.posted(request)
        try:
            datasets.change_status(zone, me, name, verb)
        except FORM_ERRORS as exc:
            return overview(request, me, token, exc.status_code,
                            errors={f"dataset:{name}": said(request, exc.message)}, typed={})
        return go("pages/admin", done, name)

    @router.get("/pages/admin/datasets/{name}/report")
    @action("dataset.report")
    def deid_report(request: Request, name: str) -> Response:
        """The attested HTML report of a de-identification run (the pinned version)."""
        me, _ = kit.who(request)
        require("dataset.report", me)
        found = datasets.get_location(zone, name)
        pinned = (found.attestation or {}).get("objects", {}).get(REPORT_KEYS[1])
        if pinned is None:
            raise NotFound(f"{name} has no de-identification report (보고서 없음)")
        body = zone.broker.read_version(found.bucket, found.prefix + REPORT_KEYS[1],
                                        pinned["version_id"], 8 << 20)
        return Response(body, media_type="text/html; charset=utf-8", headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff"})

    # -- one project: datasets, terminals, archive, members -----------------------------
    def project_page(request: Request, me: Identity, token: str, name: str,
                     status: int = 200, errors: dict[str, str] | None = None,
                     typed: dict[str, dict[str, str]] | None = None) -> HTMLResponse:
        require("admin.page", me)
        project = projects.view_project(zone, me, name)
        members = memberships.member_details(zone, me, name)
        attachable = [d.name for d in datasets.list_datasets(zone, me)
                      if d.status is DatasetStatus.PUBLISHED
                      and d.classification is Classification.DEIDENTIFIED
                      and d.name not in project["datasets"]]
        today = zone.now().date()
        groups = [(key, title, [m for m in members if m.status in states])
                  for key, title, states in MEMBER_GROUPS]
        return kit.render(request, "admin_project.html", me, token, status=status,
                          project=project, groups=groups, attachable=attachable,
                          errors=errors or {}, typed=typed or {}, flash=flash(kit, request),
                          earliest=today.isoformat(),
                          latest=(today + memberships.MAX_MEMBERSHIP
                                  - timedelta(days=1)).isoformat())

    @router.get("/pages/admin/projects/{name}")
    @action("admin.page")
    def project(request: Request, name: str) -> HTMLResponse:
        me, token = kit.who(request)
        return project_page(request, me, token, name)

    async def on_project(request: Request, name: str, key: str, change: Change) -> Response:
        """Run a project form's ``change`` (it returns what was done and to what); on an
        invalid form, the page again with the message under ``key`` and the typed values."""
        me, form, token = await kit.posted(request)
        try:
            done, shown = change(me, form)
        except FORM_ERRORS as exc:
            return project_page(request, me, token, name, exc.status_code,
                                errors={key: said(request, exc.message)},
                                typed={key: {k: str(v) for k, v in form.items()
                                             if k != "_csrf"}})
        return go(f"pages/admin/projects/{name}", done, shown)

    @router.post("/pages/admin/projects/{name}/archive")
    @action("project.archive")
    async def archive(request: Request, name: str) -> Response:
        def change(me: Identity, _: Any) -> tuple[str, str]:
            projects.archive_project(zone, me, name)
            return "archived", name

        return await on_project(request, name, "archive", change)

    @router.post("/pages/admin/projects/{name}/datasets")
    @action("project.attach")
    async def attach(request: Request, name: str) -> Response:
        def change(me: Identity, form: Any) -> tuple[str, str]:
            dataset = str(form.get("dataset", ""))
            if not dataset:
                raise InvalidInput(kit.text(request, N_("Choose a dataset to attach.")))
            projects.attach_dataset(zone, me, name, dataset)
            return "attached", dataset

        return await on_project(request, name, "attach", change)

    @router.post("/pages/admin/projects/{name}/datasets/{dataset}/detach")
    @action("project.detach")
    async def detach(request: Request, name: str, dataset: str) -> Response:
        def change(me: Identity, _: Any) -> tuple[str, str]:
            projects.detach_dataset(zone, me, name, dataset)
            return "detached", dataset

        return await on_project(request, name, f"detach:{dataset}", change)

    @router.post("/pages/admin/projects/{name}/terminals")
    @action("project.set_terminals")
    async def terminals(request: Request, name: str) -> Response:
        def change(me: Identity, form: Any) -> tuple[str, str]:
            wanted = form.get("enabled")
            if wanted not in {"1", "0"}:
                raise InvalidInput(kit.text(request, N_("Choose on or off.")))
            projects.set_terminals(zone, me, name, wanted == "1")
            return ("terminals_on" if wanted == "1" else "terminals_off"), name

        return await on_project(request, name, "terminals", change)

    @router.post("/pages/admin/projects/{name}/members/{user}/approve")
    @action("membership.approve")
    async def approve(request: Request, name: str, user: str) -> Response:
        """Approve an application, approve again, or extend (``extend=1``): each sets a
        new expiry (the state machine lets an approval be approved again)."""
        kit.who(request)  # a login before any form is read (kit.posted checks CSRF next)
        extend = (await request.form()).get("extend") == "1"

        def change(me: Identity, form: Any) -> tuple[str, str]:
            until = expiry(kit, request, str(form.get("expires_on", "")))
            memberships.approve_membership(zone, me, name, user, until)
            return ("extended" if extend else "approved"), user

        return await on_project(request, name, f"{'extend' if extend else 'approve'}:{user}",
                                change)

    @router.post("/pages/admin/projects/{name}/members/{user}/reject")
    @action("membership.reject")
    async def reject(request: Request, name: str, user: str) -> Response:
        def change(me: Identity, form: Any) -> tuple[str, str]:
            why = reason(kit, request, str(form.get("reason", "")))
            memberships.reject_membership(zone, me, name, user, why)
            return "rejected", user

        return await on_project(request, name, f"reject:{user}", change)

    @router.post("/pages/admin/projects/{name}/members/{user}/revoke")
    @action("membership.revoke")
    async def revoke(request: Request, name: str, user: str) -> Response:
        def change(me: Identity, form: Any) -> tuple[str, str]:
            why = reason(kit, request, str(form.get("reason", "")))
            memberships.revoke_membership(zone, me, name, user, why)
            return "revoked", user

        return await on_project(request, name, f"revoke:{user}", change)

    # -- the audit trail -------------------------------------------------------------------
    @router.get("/pages/admin/audit")
    @action("audit.read")
    def audit_trail(request: Request) -> HTMLResponse:
        me, token = kit.who(request)
        typed = {k: request.query_params.get(k, "").strip()
                 for k in ("actor", "action", "project", "since", "until")}
        page_text = request.query_params.get("page", "1")
        # ASCII digits only: str.isdigit() also says yes to "²", which int() refuses
        page = int(page_text) if page_text.isascii() and page_text.isdigit() and 0 < len(
            page_text) <= 6 else 1
        page = max(page, 1)
        error, status, events, more = "", 200, [], False
        try:
            wanted = EventFilter(typed["actor"], typed["action"], typed["project"],
                                 day_filter(kit, request, typed["since"]),
                                 day_filter(kit, request, typed["until"], after=True))
        except InvalidInput as exc:
            require("audit.read", me)
            error, status = exc.message, exc.status_code
        else:
            events, more = audit_status.trail(zone, me, wanted, page, PER_PAGE)
            for event in events:
                event["details"] = json.dumps(event["data"], ensure_ascii=False,
                                              sort_keys=True) if event["data"] else ""
        query = {k: v for k, v in typed.items() if v}
        return kit.render(request, "admin_audit.html", me, token, status=status,
                          events=events, typed=typed, error=error, page=page,
                          newer=urlencode({**query, "page": page - 1}) if page > 1 else "",
                          older=urlencode({**query, "page": page + 1}) if more else "",
                          audit=audit_status.last(zone), flash=flash(kit, request))

    @router.post("/pages/admin/audit/verify")
    @action("audit.verify")
    async def verify(request: Request) -> RedirectResponse:
        me, _, _ = await kit.posted(request)
        require("audit.verify", me)
        audit_status.verify_now(zone, me)
        return go("pages/admin/audit", "verified")

    return router
