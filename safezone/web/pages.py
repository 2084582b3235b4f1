"""The Safezone pages: login through the hub, the language switch, each role's home, and
the routers of the page modules (requests, review, catalogue, administration).

Each route names its permission-table action (``@action``); the services behind them
apply the table. Pages decide nothing about who may do what.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from .. import applications, memberships
from ..api.actions import action
from ..errors import NotAuthenticated, SafezoneError
from ..exports import service
from ..permissions import require
from ..zone import Zone
from . import (
    admin_pages,
    application_pages,
    catalogue_pages,
    records_pages,
    request_pages,
    review_pages,
)
from .i18n import LANGUAGE_COOKIE, LANGUAGES
from .kit import (
    NOBODY,
    LoginRequired,
    PageKit,
    demo_warning,
    environment,
    page_language,
    said,
    secure_request,
)
from .session import COOKIE, PAGE_SESSION, STATE_COOKIE, HubOAuthClient, log_out

ENDING_SOON = timedelta(days=30)  # the admin home lists approvals ending within this
REMEMBER_LANGUAGE = 365 * 24 * 3600

__all__ = ["LoginRequired", "page_error", "page_router"]


def page_router(zone: Zone, oauth: HubOAuthClient) -> APIRouter:
    router = APIRouter()
    kit = PageKit(zone, oauth)
    prefix = kit.prefix

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

    @router.get("/pages/language")
    @action("page.language")
    def switch_language(request: Request, to: str = "", back: str = "") -> RedirectResponse:
        """Remember the chosen language (a cookie) and go back to the page it was chosen on."""
        target = back if back.startswith(prefix + "pages") else prefix + "pages/"
        response = RedirectResponse(target, status_code=303)
        if to in LANGUAGES:
            response.set_cookie(LANGUAGE_COOKIE, to, max_age=REMEMBER_LANGUAGE, path="/",
                                samesite="lax", secure=secure_request(request))
        return response

    @router.post("/pages/logout")
    @action("session.logout")
    async def logout(request: Request) -> HTMLResponse:
        me, _, token = await kit.posted(request)
        require("session.logout", me)
        log_out(zone, token)
        response = kit.render(request, "logged_out.html", NOBODY, "")
        response.delete_cookie(COOKIE, path=prefix)
        return response

    @router.get("/pages/")
    @action("page.home")
    def home(request: Request) -> HTMLResponse:
        """What each role needs first: projects and requests, the queue, pending decisions."""
        me, token = kit.who(request)
        require("page.home", me)
        mine = memberships.memberships_of(zone, me, me.name) if me.kind == "user" else []
        usable = set(memberships.usable_projects(zone, me, me.name)) if me.kind == "user" \
            else set()
        waiting, ending = (memberships.needing_attention(zone, me, ENDING_SOON)
                           if me.is_admin else ([], []))
        return kit.render(
            request, "home.html", me, token, memberships=mine, usable=usable,
            applications=applications.mine(zone, me) if me.kind == "user" else [],
            application_queue=applications.queue(zone, me) if me.is_admin else [],
            requests=service.my_requests(zone, me),
            queue=service.review_queue(zone, me) if me.is_reviewer else [],
            waiting=waiting, ending=ending)

    for module in (request_pages, review_pages, admin_pages, catalogue_pages,
                   application_pages, records_pages):
        router.include_router(module.routes(kit))
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
    message = said(request, exc.message) if isinstance(exc, SafezoneError) else \
        "internal error"
    token = request.cookies.get(COOKIE, "")
    try:
        me = zone.hub.identify(token) if token else NOBODY
    except SafezoneError:
        me = NOBODY
    kit = PageKit(zone, oauth)
    html = environment(page_language(request)).get_template("error.html").render(
        me=me, csrf="", prefix=oauth.prefix, status=status, message=message,
        here=kit.here(request), demo_warning=demo_warning(zone, page_language(request)))
    return HTMLResponse(html, status_code=status)
