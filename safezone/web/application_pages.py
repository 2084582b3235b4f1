"""Applying for access (이용 신청) in the pages: the form, the applicant's list and each
application's page (status, reason, withdraw), and for administrators the queue and the
decision (approve into a project or a new one, with an expiry; reject with a reason).
The rules are the service's (``safezone.applications``); these pages only show them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import applications, projects
from ..api.actions import action
from ..api.applications_routes import plan_response
from ..application_rules import MESSAGES, ApplicationInvalid
from ..applications import Plan
from ..catalogue.service import published
from .catalogue_pages import titles
from .i18n import N_
from .kit import PageKit, page_language

# what each step's outcome says on the application's page (?done=…)
DONE = {"submitted": N_("Your application was submitted. An administrator will decide on it."),
        "withdrawn": N_("The application was withdrawn."),
        "approved": N_("The application was approved."),
        "rejected": N_("The application was rejected; the applicant sees the reason.")}
# the service's messages (application_rules.MESSAGES), here so they are extracted and
# translated; tests/test_applications.py checks the two lists agree
FIELD_MESSAGES = (
    N_("Describe the research purpose in at least %(min)s characters."),
    N_("The research purpose is %(length)s characters long; the limit is %(max)s."),
    N_("Choose at least one dataset."),
    N_("Choose at most %(max)s datasets."),
    N_("Not a published dataset of the catalogue: %(names)s."),
    N_("Give the date your access should end."),
    N_("Write the end date as YYYY-MM-DD."),
    N_("The end date must be after today."),
    N_("The end date may be at most %(months)s months ahead (%(latest)s)."),
    N_("Name at most %(max)s fellow analysts."),
    N_("Not a valid user name: %(names)s."),
    N_("No such user: %(names)s. Fellow analysts must already have an account."),
    N_("You are the applicant: list only the others."),
    N_("Accept the security pledge to apply."),
    N_("The security pledge has changed since the form was opened: read it again and "
       "accept it."),
    N_("The research plan is %(size)s bytes; the limit is %(max)s bytes."),
    N_("A research plan must be one of: %(kinds)s."),
    N_("The file's content is not what its extension .%(ext)s says."),
    N_("The research plan file is empty."),
    N_("There is no active project named %(name)s."),
    N_("Give the date access ends, as YYYY-MM-DD."),
    N_("The expiry must be in the future."),
    N_("The expiry may not pass the end of the period applied for (%(end)s)."),
    N_("Choose an existing project or name a new one."),
    N_("Choose either an existing project or a new one, not both."),
    N_("A project named %(name)s already exists."),
    N_("Use 2-40 lowercase letters, digits and single hyphens, starting with a letter."),
    N_("The title may be at most 200 characters."),
    N_("No longer published, so it cannot be attached: %(names)s."),
    N_("Give the reason; the applicant will read it."),
    N_("The reason is %(length)s characters long; the limit is %(max)s."),
)


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    zone = kit.zone

    def errors(request: Request, exc: ApplicationInvalid) -> dict[str, list[str]]:
        """Each refused field's messages, in the page's language."""
        return {name: [kit.text(request, MESSAGES[p.code]) % p.params for p in problems]
                for name, problems in exc.by_field().items()}

    def form_page(request: Request, me: Any, token: str, values: dict[str, Any],
                  refused: dict[str, list[str]] | None = None) -> HTMLResponse:
        options = applications.form_options(zone, me, values.get("project"))
        language = page_language(request)
        return kit.render(
            request, "apply.html", me, token, status=422 if refused else 200,
            values=values, errors=refused or {}, project=options["project"],
            datasets=titles(options["datasets"], language), rules=options["rules"],
            pledge=options["pledge"].text(language), pledge_version=options["pledge"].version,
            latest=options["latest_end"].isoformat())

    def detail_page(request: Request, me: Any, token: str, application_id: str, *,
                    refused: dict[str, list[str]] | None = None,
                    values: dict[str, Any] | None = None) -> HTMLResponse:
        view = applications.get(zone, me, application_id)
        active = [p["name"] for p in projects.list_projects(zone, me)
                  if p["status"] == "active"] if view["may_decide"] else []
        done = request.query_params.get("done", "")
        return kit.render(
            request, "application.html", me, token, status=422 if refused else 200, a=view,
            titles=titles(published(zone), page_language(request)), projects=active,
            errors=refused or {}, values=values or {},
            flash=kit.text(request, DONE[done]) if done in DONE else None)

    @router.get("/pages/apply")
    @action("application.submit")
    def apply_form(request: Request, project: str = "") -> HTMLResponse:
        me, token = kit.who(request)
        chosen = request.query_params.getlist("dataset")
        return form_page(request, me, token, {"datasets": chosen, "project": project or None})

    @router.post("/pages/apply")
    @action("application.submit")
    async def apply(request: Request) -> Response:
        kit.who(request)  # a login first, then the size, then the form
        applications.too_large(request.headers.get("content-length"))
        me, form, token = await kit.posted(request)
        values = {"purpose": str(form.get("purpose", "")), "datasets": form.getlist("datasets"),
                  "until": str(form.get("until", "")), "fellows": str(form.get("fellows", "")),
                  "project": str(form.get("project", "")) or None,
                  "pledge_accepted": form.get("pledge_accepted") == "yes"}
        upload = form.get("plan")
        plan = None
        if upload is not None and hasattr(upload, "read") and upload.filename:
            plan = Plan(upload.filename,
                        await upload.read(applications.load_rules().plan_max_bytes + 1))
        try:
            made = applications.submit(zone, me, plan=plan, language=page_language(request),
                                       pledge_version=str(form.get("pledge_version", "")),
                                       **values)
        except ApplicationInvalid as exc:
            return form_page(request, me, token, {**values, "plan_lost": plan is not None},
                             errors(request, exc))
        return kit.go(f"pages/applications/{made['id']}?done=submitted")

    @router.get("/pages/applications")
    @action("application.list")
    def mine(request: Request) -> HTMLResponse:
        me, token = kit.who(request)
        return kit.render(request, "applications.html", me, token,
                          items=applications.mine(zone, me),
                          titles=titles(published(zone), page_language(request)))

    @router.get("/pages/admin/applications")
    @action("application.queue")
    def queue(request: Request) -> HTMLResponse:
        me, token = kit.who(request)
        return kit.render(request, "applications_queue.html", me, token,
                          items=applications.queue(zone, me),
                          titles=titles(published(zone), page_language(request)))

    @router.get("/pages/applications/{application_id}")
    @action("application.view")
    def show(request: Request, application_id: str) -> HTMLResponse:
        me, token = kit.who(request)
        return detail_page(request, me, token, application_id)

    @router.get("/pages/applications/{application_id}/plan")
    @action("application.plan")
    def plan(request: Request, application_id: str) -> Response:
        me, _ = kit.who(request)
        return plan_response(*applications.plan_file(zone, me, application_id))

    @router.post("/pages/applications/{application_id}/withdraw")
    @action("application.withdraw")
    async def withdraw(request: Request, application_id: str) -> RedirectResponse:
        me, _, _ = await kit.posted(request)
        applications.withdraw(zone, me, application_id)
        return kit.go(f"pages/applications/{application_id}?done=withdrawn")

    @router.post("/pages/applications/{application_id}/approve")
    @action("application.approve")
    async def approve(request: Request, application_id: str) -> Response:
        me, form, token = await kit.posted(request)
        values = {k: str(form.get(k, "")) for k in ("target", "project", "new_project",
                                                    "title", "expires_at")}
        chosen = {"existing": {"project": values["project"]},
                  "new": {"new_project": values["new_project"], "title": values["title"]},
                  }.get(values["target"], {"project": values["project"],
                                           "new_project": values["new_project"]})
        try:
            applications.approve(zone, me, application_id, values["expires_at"], **chosen)
        except ApplicationInvalid as exc:
            return detail_page(request, me, token, application_id,
                               refused=errors(request, exc), values=values)
        return kit.go(f"pages/applications/{application_id}?done=approved")

    @router.post("/pages/applications/{application_id}/reject")
    @action("application.reject")
    async def reject(request: Request, application_id: str) -> Response:
        me, form, token = await kit.posted(request)
        reason = str(form.get("reason", ""))
        try:
            applications.reject(zone, me, application_id, reason)
        except ApplicationInvalid as exc:
            return detail_page(request, me, token, application_id,
                               refused=errors(request, exc), values={"reason": reason})
        return kit.go(f"pages/applications/{application_id}?done=rejected")

    return router
