"""Page routes: researcher requests, reviewer queue and request view, admin overview."""

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import audit, datasets, projects
from ..deid.pipeline import REPORT_KEYS
from ..errors import NotAuthenticated, NotFound, PermissionDenied, SafezoneError
from ..exports import service
from ..memberships import usable_projects
from ..permissions import Identity
from ..zone import Zone
from .preview import preview
from .session import COOKIE, STATE_COOKIE, HubOAuthClient, csrf_ok, csrf_token

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True, undefined=jinja2.ChainableUndefined)


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def page_router(zone: Zone, oauth: HubOAuthClient) -> APIRouter:
    router = APIRouter()
    prefix = oauth.prefix

    def who(request: Request) -> tuple[Identity, str]:
        token = request.cookies.get(COOKIE)
        here = prefix + request.url.path.lstrip("/")
        if not token:
            raise LoginRequired(here)
        try:
            return zone.hub.identify(token), token
        except NotAuthenticated:
            raise LoginRequired(here) from None

    async def posted(request: Request) -> tuple[Identity, Any]:
        """The caller of a form POST and its fields, after the CSRF check."""
        me, token = who(request)
        form = await request.form()
        if not csrf_ok(token, form.get("_csrf")):
            raise PermissionDenied("the form expired or came from elsewhere; reload the page")
        return me, form

    def render(name: str, me: Identity, token: str, status: int = 200, **context: Any
               ) -> HTMLResponse:
        html = TEMPLATES.get_template(name).render(me=me, csrf=csrf_token(token),
                                                   prefix=prefix, **context)
        return HTMLResponse(html, status_code=status)

    def go(path: str) -> RedirectResponse:
        return RedirectResponse(f"{prefix}{path}", status_code=303)

    @router.get("/oauth_callback")
    def callback(request: Request, code: str = "", state: str = "") -> RedirectResponse:
        remembered = request.cookies.get(STATE_COOKIE, "")
        saved_state, _, next_url = remembered.partition("|")
        if not code or not state or state != saved_state:
            raise NotAuthenticated("login state mismatch; start again from the page")
        token = oauth.exchange(code)
        target = unquote(next_url) if unquote(next_url).startswith(prefix) else prefix + "pages/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="lax", path=prefix)
        response.delete_cookie(STATE_COOKIE, path=prefix)
        return response

    @router.get("/pages/")
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
    async def create(request: Request) -> RedirectResponse:
        me, form = await posted(request)
        files = [{"path": p, "justification": form.get(f"why:{p}", "")}
                 for p in form.getlist("file")]
        created = service.create_request(zone, me, form.get("project", ""),
                                         form.get("title", ""), files)
        service.submit(zone, me, created["id"])
        return go(f"pages/requests/{created['id']}")

    @router.get("/pages/requests/{request_id}")
    def show(request: Request, request_id: str) -> HTMLResponse:
        me, token = who(request)
        return render("request.html", me, token, r=service.get_request(zone, me, request_id))

    @router.post("/pages/requests/{request_id}/submit")
    async def resubmit(request: Request, request_id: str) -> RedirectResponse:
        me, _ = await posted(request)
        service.submit(zone, me, request_id)
        return go(f"pages/requests/{request_id}")

    @router.post("/pages/requests/{request_id}/withdraw")
    async def withdraw(request: Request, request_id: str) -> RedirectResponse:
        me, _ = await posted(request)
        service.withdraw(zone, me, request_id)
        return go(f"pages/requests/{request_id}")

    @router.post("/pages/requests/{request_id}/files/{file_id}/download")
    async def download(request: Request, request_id: str, file_id: int) -> RedirectResponse:
        me, _ = await posted(request)
        link = service.create_link(zone, me, request_id, file_id)
        return go(f"download/{link['token']}")

    @router.get("/pages/review")
    def queue(request: Request) -> HTMLResponse:
        me, token = who(request)
        return render("queue.html", me, token, requests=service.review_queue(zone, me))

    @router.get("/pages/review/{request_id}")
    def review(request: Request, request_id: str) -> HTMLResponse:
        me, token = who(request)
        if not (me.is_reviewer or me.is_admin):
            raise PermissionDenied("the review pages are for output checkers "
                                   "(검토자만 접근 가능)")
        view = service.get_request(zone, me, request_id)
        if view["requester"] == me.name:
            raise PermissionDenied("you cannot review your own export request "
                                   "(본인 요청은 검토할 수 없습니다)")
        previews = {f["id"]: preview(*service.frozen_file(zone, me, request_id, f["id"]))
                    for f in view["files"] if f["sha256"]}
        return render("review.html", me, token, r=view, previews=previews,
                      can_vote=me.is_reviewer)

    @router.post("/pages/review/{request_id}/vote")
    async def vote(request: Request, request_id: str) -> RedirectResponse:
        me, form = await posted(request)
        service.vote(zone, me, request_id, int(form.get("file_id", "0")),
                     form.get("decision", ""), form.get("comment", ""),
                     form.get("override_reason", ""))
        return go(f"pages/review/{request_id}")

    @router.get("/pages/admin")
    def admin(request: Request) -> HTMLResponse:
        me, token = who(request)
        if not me.is_admin:
            raise PermissionDenied("administrators only (관리자 전용)")
        with zone.sessions() as db:
            findings = audit.verify(db, zone.broker.latest_anchor())
            head = audit.head(db)
        return render("admin.html", me, token, projects=projects.list_projects(zone),
                      datasets=datasets.list_datasets(zone),
                      audit={"intact": not findings, "findings": findings,
                             "events": head.seq if head else 0})

    @router.get("/pages/admin/datasets/{name}/report")
    def deid_report(request: Request, name: str) -> Response:
        """The attested HTML report of a de-identification run (the pinned version)."""
        me, _ = who(request)
        if not me.is_admin:
            raise PermissionDenied("administrators only (관리자 전용)")
        found = datasets.get_location(zone, name)
        pinned = (found.attestation or {}).get("objects", {}).get(REPORT_KEYS[1])
        if pinned is None:
            raise NotFound(f"{name} has no de-identification report (보고서 없음)")
        body = zone.broker.read_version(found.bucket, found.prefix + REPORT_KEYS[1],
                                        pinned["version_id"], 8 << 20)
        return Response(body, media_type="text/html; charset=utf-8", headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff"})

    return router


def page_error(zone: Zone, oauth: HubOAuthClient, request: Request, exc: Exception
               ) -> HTMLResponse | RedirectResponse:
    """Login redirects and readable error pages for the page routes."""
    if isinstance(exc, LoginRequired):
        state, cookie = HubOAuthClient.new_state(exc.next_url)
        response = RedirectResponse(oauth.authorize_url(state), status_code=302)
        response.set_cookie(STATE_COOKIE, cookie, httponly=True, samesite="lax",
                            path=oauth.prefix, max_age=600)
        return response
    status = exc.status_code if isinstance(exc, SafezoneError) else 500
    message = exc.message if isinstance(exc, SafezoneError) else "internal error"
    token = request.cookies.get(COOKIE, "")
    try:
        me = zone.hub.identify(token) if token else Identity("?", "user", frozenset())
    except SafezoneError:
        me = Identity("?", "user", frozenset())
    html = TEMPLATES.get_template("error.html").render(
        me=me, csrf="", prefix=oauth.prefix, status=status, message=message)
    return HTMLResponse(html, status_code=status)
