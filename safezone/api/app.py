"""FastAPI application of the control plane. Errors map to HTTP codes here, in one place."""


import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .. import audit_status, datasets, grants, memberships, projects
from ..catalogue import dcat
from ..catalogue import service as catalogue
from ..db import UNAVAILABLE, unavailable
from ..errors import NotAuthenticated, PermissionDenied, SafezoneError, Unavailable
from ..exports.checking import CheckWorker
from ..models import Dataset
from ..permissions import SYSTEM, Identity, require
from ..read_cache import served
from ..records import sources as record_sources
from ..records.routes import records_router
from ..web.pages import LoginRequired, page_error, page_router
from ..web.session import COOKIE, HubOAuthClient, csrf_ok, logged_out
from ..zone import Zone
from .actions import action
from .applications_routes import applications_router
from .body_limit import BodyLimit
from .destruction_routes import destruction_router
from .exports_routes import export_router
from .health import health_router
from .metrics import Observe, metrics_router
from .origin import placed
from .quota_routes import quota_router
from .schemas import (
    ApproveIn,
    AttachIn,
    DatasetIn,
    MembershipRequestIn,
    ProjectIn,
    ReasonIn,
    SessionIn,
    TerminalsIn,
)

log = logging.getLogger(__name__)
# Expired memberships and grants end, and live grants catch up with the catalogue, within
# this many seconds; a round is a few read-only queries when nothing is due.
SWEEP_SECONDS = 2.0


ATTESTATION_SUMMARY = ("k", "k_achieved", "l", "l_achieved", "rows_in", "rows_out",
                       "rows_suppressed", "recipe_sha256", "run_by", "run_at", "tool")


def _dataset(d: Dataset) -> dict[str, Any]:
    attested = {k: d.attestation[k] for k in ATTESTATION_SUMMARY} if d.attestation else None
    return {"name": d.name, "bucket": d.bucket, "prefix": d.prefix,
            "classification": d.classification.value, "status": d.status.value,
            "description": d.description, "attestation": attested}


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "request body is not valid JSON"
    parts = []
    for e in errors[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
    return 422, "; ".join(parts)


def create_app(zone: Zone, *, sweep: bool = True, checks: bool = True) -> FastAPI:
    """The API bound to one zone; ``sweep`` runs the expiry sweeper and ``checks`` the
    export check worker in the background."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_sweeper(zone)) if sweep else None
        worker = CheckWorker(zone).start() if checks else None
        yield
        if task:
            task.cancel()
        if worker:
            worker.stop()

    app = FastAPI(title="Safezone control plane", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit)
    app.add_middleware(Observe)  # inside StripServicePrefix: it reads the matched route
    app.add_middleware(StripServicePrefix, prefix=zone.settings.base_url.rstrip("/"))
    app.add_middleware(record_sources.SourceAddress)  # access records: the caller's address
    record_sources.install(zone)  # audit events that are accesses become records too

    @app.exception_handler(SafezoneError)
    async def _safezone_error(request: Request, exc: SafezoneError) -> Response:
        if request.url.path.startswith(("/pages", "/oauth_callback")):
            return page_error(zone, oauth, request, exc)
        return JSONResponse({"error": exc.message}, status_code=exc.status_code)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database_away(request: Request, exc: Exception) -> Response:
        """The database restarting or unreachable: 503 with a message, not a 500."""
        if not unavailable(exc):
            raise exc
        log.warning("database unavailable during %s %s: %s", request.method,
                    request.url.path, type(getattr(exc, "orig", exc)).__name__)
        response = await _safezone_error(request, Unavailable(UNAVAILABLE))
        response.headers["Retry-After"] = "2"
        return response

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return page_error(zone, oauth, request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc)
        return JSONResponse({"error": message}, status_code=status)

    oauth = HubOAuthClient(zone.settings.hub_api_url, zone.settings.service_name,
                           zone.settings.service_token, zone.settings.base_url)

    async def caller(request: Request) -> Identity:
        """The hub token in the Authorization header, or the page session cookie: on the
        event loop for an API token the hub vouched for moments ago, else in a thread
        (the hub's answer, a logout, an operator's audit event)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        known = zone.hub.known(token.strip()) if scheme.lower() in {"token", "bearer"} \
            else None
        if known is not None and not known.browser and not known.operator:
            return placed(known, zone.settings, request)
        return await anyio.to_thread.run_sync(identify, request)

    def identify(request: Request) -> Identity:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if header:
            if scheme.lower() not in {"token", "bearer"} or not token:
                raise NotAuthenticated("send a JupyterHub token: 'Authorization: token …'")
            identity = zone.hub.identify(token.strip())
            # only page-session tokens (hub OAuth, identity.browser) can be logged out
            if identity.browser and logged_out(zone, token.strip()):
                raise NotAuthenticated("this session was logged out (로그아웃된 세션)")
            # a browser session is what arrives as the page cookie; a header is an API call,
            # whatever token it carries
            return _seen(placed(replace(identity, browser=False), zone.settings, request), request)
        cookie = request.cookies.get(COOKIE)
        if not cookie or logged_out(zone, cookie):
            raise NotAuthenticated("send a JupyterHub token: 'Authorization: token …'")
        if request.method not in {"GET", "HEAD"} and not csrf_ok(
                cookie, request.headers.get("x-safezone-csrf")):
            raise PermissionDenied("cookie-authenticated changes need the X-Safezone-CSRF "
                                   "header")
        return _seen(placed(zone.hub.identify(cookie), zone.settings, request), request)

    def _seen(identity: Identity, request: Request) -> Identity:
        """A JupyterHub admin (break-glass operator) reaching Safezone is audited; the
        permission table refuses them everything."""
        if identity.operator:
            with zone.unit_of_work() as db:
                zone.record(db, identity, "hub_operator.call", f"route:{request.url.path}",
                            method=request.method)
        return identity

    Actor = Annotated[Identity, Depends(caller)]

    @app.get("/api/health")
    @action("health.read")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/me")
    @action("me.read")
    def me(actor: Actor) -> dict[str, Any]:
        require("me.read", actor)
        mine = memberships.memberships_of(zone, actor, actor.name) if actor.kind == "user" else []
        return {"name": actor.name, "kind": actor.kind, "admin": actor.is_admin,
                "reviewer": actor.is_reviewer, "steward": actor.is_steward,
                "memberships": [m.__dict__ for m in mine]}

    # -- projects ----------------------------------------------------------------------
    @app.post("/api/projects", status_code=201)
    @action("project.create")
    def create_project(body: ProjectIn, actor: Actor) -> dict[str, Any]:
        return projects.create_project(zone, actor, body.name, body.title, body.ends_on)

    @app.get("/api/projects")
    @action("project.list")
    async def list_projects(actor: Actor) -> list[dict[str, Any]]:
        return await served(projects.list_projects, zone, actor)

    @app.post("/api/projects/{name}/archive")
    @action("project.archive")
    def archive_project(name: str, actor: Actor) -> dict[str, str]:
        projects.archive_project(zone, actor, name)
        return {"status": "archived"}

    @app.post("/api/projects/{name}/datasets", status_code=201)
    @action("project.attach")
    def attach(name: str, body: AttachIn, actor: Actor) -> dict[str, str]:
        projects.attach_dataset(zone, actor, name, body.dataset)
        return {"project": name, "dataset": body.dataset}

    @app.delete("/api/projects/{name}/datasets/{dataset}")
    @action("project.detach")
    def detach(name: str, dataset: str, actor: Actor) -> dict[str, str]:
        projects.detach_dataset(zone, actor, name, dataset)
        return {"project": name, "dataset": dataset, "status": "detached"}

    @app.put("/api/projects/{name}/terminals")
    @action("project.set_terminals")
    def set_terminals(name: str, body: TerminalsIn, actor: Actor) -> dict[str, Any]:
        return projects.set_terminals(zone, actor, name, body.enabled)

    # -- datasets ----------------------------------------------------------------------
    @app.post("/api/datasets", status_code=201)
    @action("dataset.register")
    def register(body: DatasetIn, actor: Actor) -> dict[str, Any]:
        return _dataset(datasets.register_dataset(zone, actor, body.name, body.classification,
                                                  body.prefix, body.description))

    @app.get("/api/datasets")
    @action("dataset.list")
    def list_datasets(actor: Actor) -> list[dict[str, Any]]:
        return [_dataset(d) for d in datasets.list_datasets(zone, actor)]

    @app.post("/api/datasets/{name}/publish")
    @action("dataset.publish")
    def publish(name: str, actor: Actor) -> dict[str, Any]:
        return _dataset(datasets.change_status(zone, actor, name, "publish"))

    @app.post("/api/datasets/{name}/withdraw")
    @action("dataset.withdraw")
    def withdraw(name: str, actor: Actor) -> dict[str, Any]:
        return _dataset(datasets.change_status(zone, actor, name, "withdraw"))

    @app.put("/api/datasets/{name}/catalogue")
    @action("dataset.describe")
    def describe(name: str, entry: dict[str, Any], actor: Actor) -> dict[str, Any]:
        """Replace the dataset's catalogue entry (the recipe's catalogue block's shape)."""
        return {"name": name, "catalogue": catalogue.describe(zone, actor, name, entry)}

    # -- the catalogue -----------------------------------------------------------------
    def address(request: Request) -> str:
        """The API's address as callers reach it (through the hub: its service prefix)."""
        return dcat.address(str(request.base_url).rstrip("/")
                            + zone.settings.base_url.rstrip("/"))

    @app.get("/api/catalogue")
    @action("catalogue.read")
    async def catalogue_list(request: Request, actor: Actor) -> list[dict[str, Any]]:
        return await served(catalogue.list_catalogue, zone, actor, address(request))

    @app.get("/api/catalogue/{name}/report")
    @action("catalogue.read")
    def catalogue_report(name: str, actor: Actor) -> HTMLResponse:
        """The public part of the dataset's de-identification report."""
        return HTMLResponse(catalogue.public_report(zone, actor, name), headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "frame-ancestors 'none'"})

    @app.get("/api/catalogue.jsonld")
    @action("catalogue.jsonld")
    def catalogue_dcat(request: Request) -> JSONResponse:
        """DCAT for harvesting: public by the permission table, no login."""
        document = dcat.catalog(catalogue.published(zone), address(request))
        return JSONResponse(document, media_type="application/ld+json")

    # -- memberships -------------------------------------------------------------------
    @app.post("/api/projects/{name}/members/request", status_code=201)
    @action("membership.request")
    def request_membership(name: str, body: MembershipRequestIn, actor: Actor
                           ) -> dict[str, str]:
        m = memberships.request_membership(zone, actor, name, actor.name, body.justification)
        return {"project": name, "user": m.user_name, "status": m.status.value}

    @app.get("/api/projects/{name}/members")
    @action("membership.list")
    def members(name: str, actor: Actor) -> list[dict[str, Any]]:
        return [m.__dict__ for m in memberships.list_members(zone, actor, name)]

    @app.post("/api/projects/{name}/members/{user}/approve")
    @action("membership.approve")
    def approve(name: str, user: str, body: ApproveIn, actor: Actor) -> dict[str, Any]:
        m = memberships.approve_membership(zone, actor, name, user, body.expires_at)
        return {"project": name, "user": user, "status": m.status.value,
                "expires_at": body.expires_at.isoformat()}

    @app.post("/api/projects/{name}/members/{user}/reject")
    @action("membership.reject")
    def reject(name: str, user: str, body: ReasonIn, actor: Actor) -> dict[str, str]:
        m = memberships.reject_membership(zone, actor, name, user, body.reason)
        return {"project": name, "user": user, "status": m.status.value}

    @app.post("/api/projects/{name}/members/{user}/revoke")
    @action("membership.revoke")
    def revoke(name: str, user: str, body: ReasonIn, actor: Actor) -> dict[str, str]:
        m = memberships.revoke_membership(zone, actor, name, user, body.reason)
        return {"project": name, "user": user, "status": m.status.value}

    @app.get("/api/users/{user}/projects")
    @action("membership.mine")
    def user_projects(user: str, actor: Actor) -> dict[str, Any]:
        return {"user": user, "projects": memberships.usable_projects(zone, actor, user)}

    # -- session grants ------------------------------------------------------------------
    @app.post("/api/sessions", status_code=201)
    @action("grant.issue")
    def issue(body: SessionIn, actor: Actor) -> dict[str, Any]:
        grant = grants.issue_grant(zone, actor, body.user, body.project, body.server_name)
        return {"grant_id": grant.grant_id, "project": grant.project, "user": grant.user,
                "expires_at": grant.expires_at.isoformat(), "datasets": grant.datasets,
                "environment": grant.environment()}

    @app.delete("/api/sessions/{grant_id}")
    @action("grant.end")
    def end(grant_id: str, actor: Actor) -> dict[str, str]:
        grants.end_grant(zone, actor, grant_id)
        return {"grant_id": grant_id, "status": "ended"}

    app.include_router(health_router(zone))
    app.include_router(metrics_router(zone))
    app.include_router(export_router(zone, caller))
    app.include_router(applications_router(zone, caller))
    app.include_router(quota_router(zone, caller))
    app.include_router(records_router(zone, caller))
    app.include_router(destruction_router(zone, caller))
    app.include_router(page_router(zone, oauth))

    # -- audit -------------------------------------------------------------------------
    @app.get("/api/audit/verify")
    @action("audit.verify")
    def verify(actor: Actor) -> dict[str, Any]:
        """Verify the whole chain against every anchor now, and keep the result."""
        require("audit.verify", actor)
        return audit_status.verify_now(zone, actor)

    return app


class StripServicePrefix:
    """Serve the API both directly and behind the hub's proxy at /services/<name>/."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if self.prefix and scope["type"] in ("http", "websocket") and path.startswith(
                self.prefix + "/"):
            scope = {**scope, "path": path[len(self.prefix):]}
        await self.app(scope, receive, send)


async def _sweeper(zone: Zone) -> None:
    """Every SWEEP_SECONDS: end expired memberships and grants, and bring live grants that
    hold more than the catalogue allows in line (``access.sweep``)."""
    from .. import access
    from ..leader import Leadership
    from ..records import chain as records_chain

    leadership = Leadership(zone.sessions.kw["bind"])  # one sweeper per database
    try:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                if await asyncio.to_thread(leadership.held):
                    await asyncio.to_thread(access.sweep, zone, SYSTEM)
                    await asyncio.to_thread(records_chain.upkeep, zone, SYSTEM)
            except Exception:  # keep sweeping; the next round retries
                log.exception("sweep failed")
    finally:
        leadership.release()
