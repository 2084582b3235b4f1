"""FastAPI application of the control plane. Errors map to HTTP codes here, in one place."""


import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from .. import audit, datasets, grants, memberships, projects
from ..errors import NotAuthenticated, PermissionDenied, SafezoneError
from ..models import Dataset
from ..permissions import SYSTEM, Identity, check_admin
from ..web.pages import LoginRequired, page_error, page_router
from ..web.session import COOKIE, HubOAuthClient, csrf_ok
from ..zone import Zone
from .exports_routes import export_router
from .schemas import (
    ApproveIn,
    AttachIn,
    DatasetIn,
    MembershipRequestIn,
    ProjectIn,
    ReasonIn,
    SessionIn,
)

log = logging.getLogger(__name__)
SWEEP_SECONDS = 30.0


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


def create_app(zone: Zone, *, sweep: bool = True) -> FastAPI:
    """The API bound to one zone; ``sweep`` runs the expiry sweeper in the background."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_sweeper(zone)) if sweep else None
        yield
        if task:
            task.cancel()

    app = FastAPI(title="Safezone control plane", version="0.1.0", lifespan=lifespan)
    app.add_middleware(StripServicePrefix, prefix=zone.settings.base_url.rstrip("/"))

    @app.exception_handler(SafezoneError)
    async def _safezone_error(request: Request, exc: SafezoneError) -> Response:
        if request.url.path.startswith(("/pages", "/oauth_callback")):
            return page_error(zone, oauth, request, exc)
        return JSONResponse({"error": exc.message}, status_code=exc.status_code)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return page_error(zone, oauth, request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc)
        return JSONResponse({"error": message}, status_code=status)

    oauth = HubOAuthClient(zone.settings.hub_api_url, zone.settings.service_name,
                           zone.settings.service_token, zone.settings.base_url)

    def caller(request: Request) -> Identity:
        """The hub token in the Authorization header, or the page session cookie."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if header:
            if scheme.lower() not in {"token", "bearer"} or not token:
                raise NotAuthenticated("send a JupyterHub token: 'Authorization: token …'")
            return zone.hub.identify(token.strip())
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            raise NotAuthenticated("send a JupyterHub token: 'Authorization: token …'")
        if request.method not in {"GET", "HEAD"} and not csrf_ok(
                cookie, request.headers.get("x-safezone-csrf")):
            raise PermissionDenied("cookie-authenticated changes need the X-Safezone-CSRF "
                                   "header")
        return zone.hub.identify(cookie)

    Actor = Annotated[Identity, Depends(caller)]

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/me")
    def me(actor: Actor) -> dict[str, Any]:
        mine = memberships.memberships_of(zone, actor, actor.name) if actor.kind == "user" else []
        return {"name": actor.name, "kind": actor.kind, "admin": actor.is_admin,
                "reviewer": actor.is_reviewer,
                "memberships": [m.__dict__ for m in mine]}

    # -- projects ----------------------------------------------------------------------
    @app.post("/api/projects", status_code=201)
    def create_project(body: ProjectIn, actor: Actor) -> dict[str, Any]:
        return projects.create_project(zone, actor, body.name, body.title)

    @app.get("/api/projects")
    def list_projects(actor: Actor) -> list[dict[str, Any]]:
        return projects.list_projects(zone)

    @app.post("/api/projects/{name}/archive")
    def archive_project(name: str, actor: Actor) -> dict[str, str]:
        projects.archive_project(zone, actor, name)
        return {"status": "archived"}

    @app.post("/api/projects/{name}/datasets", status_code=201)
    def attach(name: str, body: AttachIn, actor: Actor) -> dict[str, str]:
        projects.attach_dataset(zone, actor, name, body.dataset)
        return {"project": name, "dataset": body.dataset}

    @app.delete("/api/projects/{name}/datasets/{dataset}")
    def detach(name: str, dataset: str, actor: Actor) -> dict[str, str]:
        projects.detach_dataset(zone, actor, name, dataset)
        return {"project": name, "dataset": dataset, "status": "detached"}

    # -- datasets ----------------------------------------------------------------------
    @app.post("/api/datasets", status_code=201)
    def register(body: DatasetIn, actor: Actor) -> dict[str, Any]:
        return _dataset(datasets.register_dataset(zone, actor, body.name, body.classification,
                                                  body.prefix, body.description))

    @app.get("/api/datasets")
    def list_datasets(actor: Actor) -> list[dict[str, Any]]:
        check_admin(actor, "listing datasets")
        return [_dataset(d) for d in datasets.list_datasets(zone)]

    @app.post("/api/datasets/{name}/publish")
    def publish(name: str, actor: Actor) -> dict[str, Any]:
        return _dataset(datasets.change_status(zone, actor, name, "publish"))

    @app.post("/api/datasets/{name}/withdraw")
    def withdraw(name: str, actor: Actor) -> dict[str, Any]:
        return _dataset(datasets.change_status(zone, actor, name, "withdraw"))

    # -- memberships -------------------------------------------------------------------
    @app.post("/api/projects/{name}/members/request", status_code=201)
    def request_membership(name: str, body: MembershipRequestIn, actor: Actor
                           ) -> dict[str, str]:
        m = memberships.request_membership(zone, actor, name, actor.name, body.justification)
        return {"project": name, "user": m.user_name, "status": m.status.value}

    @app.get("/api/projects/{name}/members")
    def members(name: str, actor: Actor) -> list[dict[str, Any]]:
        return [m.__dict__ for m in memberships.list_members(zone, actor, name)]

    @app.post("/api/projects/{name}/members/{user}/approve")
    def approve(name: str, user: str, body: ApproveIn, actor: Actor) -> dict[str, Any]:
        m = memberships.approve_membership(zone, actor, name, user, body.expires_at)
        return {"project": name, "user": user, "status": m.status.value,
                "expires_at": body.expires_at.isoformat()}

    @app.post("/api/projects/{name}/members/{user}/reject")
    def reject(name: str, user: str, body: ReasonIn, actor: Actor) -> dict[str, str]:
        m = memberships.reject_membership(zone, actor, name, user, body.reason)
        return {"project": name, "user": user, "status": m.status.value}

    @app.post("/api/projects/{name}/members/{user}/revoke")
    def revoke(name: str, user: str, body: ReasonIn, actor: Actor) -> dict[str, str]:
        m = memberships.revoke_membership(zone, actor, name, user, body.reason)
        return {"project": name, "user": user, "status": m.status.value}

    @app.get("/api/users/{user}/projects")
    def user_projects(user: str, actor: Actor) -> dict[str, Any]:
        return {"user": user, "projects": memberships.usable_projects(zone, actor, user)}

    # -- session grants ------------------------------------------------------------------
    @app.post("/api/sessions", status_code=201)
    def issue(body: SessionIn, actor: Actor) -> dict[str, Any]:
        grant = grants.issue_grant(zone, actor, body.user, body.project, body.server_name)
        return {"grant_id": grant.grant_id, "project": grant.project, "user": grant.user,
                "expires_at": grant.expires_at.isoformat(), "datasets": grant.datasets,
                "environment": grant.environment()}

    @app.delete("/api/sessions/{grant_id}")
    def end(grant_id: str, actor: Actor) -> dict[str, str]:
        grants.end_grant(zone, actor, grant_id)
        return {"grant_id": grant_id, "status": "ended"}

    app.include_router(export_router(zone, caller))
    app.include_router(page_router(zone, oauth))

    # -- audit -------------------------------------------------------------------------
    @app.get("/api/audit/verify")
    def verify(actor: Actor) -> dict[str, Any]:
        check_admin(actor, "verifying the audit trail")
        anchor = zone.broker.latest_anchor()
        with zone.sessions() as db:
            findings = audit.verify(db, anchor)
            head = audit.head(db)
        return {"intact": not findings, "events": head.seq if head else 0,
                "anchored_seq": anchor.seq if anchor else None,
                "findings": audit.findings_as_dicts(findings)}

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
    """End expired memberships and grants every SWEEP_SECONDS."""
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            await asyncio.to_thread(memberships.expire_memberships, zone, SYSTEM)
            await asyncio.to_thread(grants.end_expired_grants, zone, SYSTEM)
        except Exception:  # keep sweeping; the next round retries
            log.exception("expiry sweep failed")
