"""Page routes: researcher requests, reviewer queue and request view, admin overview.

Each route names its permission-table action (``@action``); the services behind them
apply the table. Pages decide nothing about who may do what.
"""

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import audit_status, datasets, projects
from ..api.actions import action
from ..api.exports_routes import attachment
from ..api.origin import placed
from ..config import UNISOLATED_DEMO_WARNING
from ..deid.pipeline import REPORT_KEYS
from ..errors import NotAuthenticated, NotFound, PermissionDenied, SafezoneError
from ..exports import release, review, service
from ..memberships import usable_projects
from ..permissions import Identity, require
from ..zone import Zone
from .session import (
    COOKIE,
    PAGE_SESSION,
    STATE_COOKIE,
    HubOAuthClient,
    csrf_ok,
    csrf_token,
    log_out,
    logged_out,
)

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True, undefined=jinja2.ChainableUndefined)


def demo_warning(zone: Zone) -> str:
    """The banner every page shows when notebooks run unsandboxed (else empty)."""
    return UNISOLATED_DEMO_WARNING if zone.settings.unisolated_demo else ""


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def secure_request(request: Request) -> bool:
    """Served over https (directly, or behind the hub's proxy that says so)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
    return request.url.scheme == "https" or forwarded == "https"


def page_router(zone: Zone, oauth: HubOAuthClient) -> APIRouter:
    router = APIRouter()
    prefix = oauth.prefix

    def who(request: Request) -> tuple[Identity, str]:
        token = request.cookies.get(COOKIE)
        here = prefix + request.url.path.lstrip("/")
        if not token or logged_out(zone, token):
            raise LoginRequired(here)
        try:
            return placed(zone.hub.identify(token), zone.settings, request), token
        except NotAuthenticated:
            raise LoginRequired(here) from None

    async def posted(request: Request) -> tuple[Identity, Any, str]:
        """The caller of a form POST, its fields and session token, after the CSRF check."""
        me, token = who(request)
        form = await request.form()
        if not csrf_ok(token, form.get("_csrf")):
            raise PermissionDenied("the form expired or came from elsewhere; reload the page")
        return me, form, token

    def render(name: str, me: Identity, token: str, status: int = 200, **context: Any
               ) -> HTMLResponse:
        html = TEMPLATES.get_template(name).render(me=me, csrf=csrf_token(token),
                                                   prefix=prefix,
                                                   demo_warning=demo_warning(zone), **context)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def go(path: str) -> RedirectResponse:
        return RedirectResponse(f"{prefix}{path}", status_code=303)

    @router.get("/oauth_callback")
    @action("session.login")
    def callback(request: Request, code: str = "", state: str = "") -> RedirectResponse:
        remembered = request.cookies.get(STATE_COOKIE, "")
        saved_state, _, next_url = remembered.partition("|")
        if not code or not state or state != saved_state:
            raise NotAuthenticated("login state mismatch; start again from the page")
        token = oauth.exchange(code)
        target = unquote(next_url) if unquote(next_url).startswith(prefix) else prefix + "pages/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="lax", path=prefix,
                            max_age=int(PAGE_SESSION.total_seconds()),
                            secure=secure_request(request))
        response.delete_cookie(STATE_COOKIE, path=prefix)
        return response

    @router.post("/pages/logout")
    @action("session.logout")
    async def logout(request: Request) -> HTMLResponse:
        me, _, token = await posted(request)
        require("session.logout", me)
        log_out(zone, token)
        response = HTMLResponse(TEMPLATES.get_template("logged_out.html").render(
            prefix=prefix, me=Identity("", "user", frozenset()),
            demo_warning=demo_warning(zone)))
        response.delete_cookie(COOKIE, path=prefix)
        return response

    @router.get("/pages/")
    @action("export.list_mine")
    def home(request: Request) -> HTMLResponse:
        me, token = who(request)
        choices = []
        if me.kind == "user":
            for name in usable_projects(zone, me, me.name):
                choices.append({"name": name,
                                "files": service.outbox_listing(zone, me, name)})
        return render("home.html", me, token, requests=service.my_requests(zone, me),
                      projects=choices, flash=request.query_params.get("flash"))

    @router.post("/pages/requests")
    @action("export.create")
    async def create(request: Request) -> RedirectResponse:
        me, form, _ = await posted(request)
        files = [{"path": p, "justification": form.get(f"why:{p}", "")}
                 for p in form.getlist("file")]
        created = service.create_request(zone, me, form.get("project", ""),
                                         form.get("title", ""), files)
        service.submit(zone, me, created["id"])
        return go(f"pages/requests/{created['id']}")

    @router.get("/pages/requests/{request_id}")
    @action("export.view")
    def show(request: Request, request_id: str) -> HTMLResponse:
        me, token = who(request)
        return render("request.html", me, token, r=service.get_request(zone, me, request_id))

    @router.post("/pages/requests/{request_id}/submit")
    @action("export.submit")
    async def resubmit(request: Request, request_id: str) -> RedirectResponse:
        me, _, _ = await posted(request)
        service.submit(zone, me, request_id)
        return go(f"pages/requests/{request_id}")

    @router.post("/pages/requests/{request_id}/withdraw")
    @action("export.withdraw")
    async def withdraw(request: Request, request_id: str) -> RedirectResponse:
        me, _, _ = await posted(request)
        service.withdraw(zone, me, request_id)
        return go(f"pages/requests/{request_id}")

    @router.post("/pages/requests/{request_id}/files/{file_id}/download")
    @action("export.link")
    async def new_link(request: Request, request_id: str, file_id: int) -> HTMLResponse:
        """A counted link; its token goes back only inside a form, posted to download."""
        me, _, token = await posted(request)
        link = release.create_link(zone, me, request_id, file_id)
        return render("download.html", me, token, link=link, request_id=request_id)

    @router.post("/pages/download")
    @action("export.download")
    async def download(request: Request) -> Response:
        me, form, _ = await posted(request)
        return attachment(release.redeem_link(zone, me, str(form.get("token", ""))))

    @router.get("/pages/review")
    @action("export.queue")
    def queue(request: Request) -> HTMLResponse:
        me, token = who(request)
        return render("queue.html", me, token, requests=service.review_queue(zone, me))

    @router.get("/pages/review/{request_id}")
    @action("export.preview")
    def review_page(request: Request, request_id: str) -> HTMLResponse:
        me, token = who(request)
        shown = review.previews(zone, me, request_id)
        view = service.get_request(zone, me, request_id)
        return render("review.html", me, token, r=view, previews=shown, can_vote=True)

    @router.post("/pages/review/{request_id}/vote")
    @action("export.vote")
    async def vote(request: Request, request_id: str) -> RedirectResponse:
        me, form, _ = await posted(request)
        try:
            file_id = int(form.get("file_id", ""))
        except ValueError:
            raise NotFound("no such file in this request") from None
        after = review.vote(zone, me, request_id, file_id, form.get("decision", ""),
                            form.get("comment", ""), form.get("override_reason", ""))
        if after["status"] == "in_review":
            return go(f"pages/review/{request_id}")
        return go(f"pages/requests/{request_id}")  # decided: the frozen files close

    @router.get("/pages/admin")
    @action("admin.page")
    def admin(request: Request) -> HTMLResponse:
        me, token = who(request)
        require("admin.page", me)
        return render("admin.html", me, token, projects=projects.list_projects(zone, me),
                      datasets=datasets.list_datasets(zone, me),
                      audit=audit_status.last(zone))

    @router.get("/pages/admin/datasets/{name}/report")
    @action("dataset.report")
    def deid_report(request: Request, name: str) -> Response:
        """The attested HTML report of a de-identification run (the pinned version)."""
        me, _ = who(request)
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

    return router


def page_error(zone: Zone, oauth: HubOAuthClient, request: Request, exc: Exception
               ) -> HTMLResponse | RedirectResponse:
    """Login redirects and readable error pages for the page routes."""
    if isinstance(exc, LoginRequired):
        state, cookie = HubOAuthClient.new_state(exc.next_url)
        response = RedirectResponse(oauth.authorize_url(state), status_code=302)
        response.set_cookie(STATE_COOKIE, cookie, httponly=True, samesite="lax",
                            path=oauth.prefix, max_age=600, secure=secure_request(request))
        return response
    status = exc.status_code if isinstance(exc, SafezoneError) else 500
    message = exc.message if isinstance(exc, SafezoneError) else "internal error"
    token = request.cookies.get(COOKIE, "")
    try:
        me = zone.hub.identify(token) if token else Identity("?", "user", frozenset())
    except SafezoneError:
        me = Identity("?", "user", frozenset())
    html = TEMPLATES.get_template("error.html").render(
        me=me, csrf="", prefix=oauth.prefix, status=status, message=message,
        demo_warning=demo_warning(zone))
    return HTMLResponse(html, status_code=status)
