"""REST routes of applications for access (이용 신청): apply (JSON, or multipart with the
research plan), list, read, download the plan, withdraw, approve, reject."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from .. import applications
from ..applications import Plan
from ..errors import InvalidInput, SafezoneError
from ..permissions import Identity, require
from ..zone import Zone
from .actions import action


class ApplicationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str = Field(max_length=100_000)   # the policy's limit is checked by the service
    datasets: list[str] = Field(default_factory=list, max_length=200)
    until: str = Field(max_length=40)
    fellows: list[str] | str = Field(default_factory=list)
    project: str | None = Field(default=None, max_length=200)
    pledge_accepted: StrictBool = False
    pledge_version: str = Field(default="", max_length=100)
    language: str = Field(default="ko", max_length=8)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_at: str = Field(default="", max_length=40)  # a date: the end of that day (UTC)
    project: str = Field(default="", max_length=200)
    new_project: str = Field(default="", max_length=200)
    title: str = Field(default="", max_length=1000)


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=100_000)


def plan_response(name: str, data: bytes) -> Response:
    """A research plan as a download: never rendered by the browser from this origin."""
    return Response(data, media_type="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; sandbox"})


async def _body(request: Request) -> tuple[dict[str, Any], Plan | None]:
    """The application's fields and plan, from JSON or from a multipart form."""
    applications.too_large(request.headers.get("content-length"))
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("plan")
        plan = None
        if upload is not None and hasattr(upload, "read") and upload.filename:
            data = await upload.read(applications.load_rules().plan_max_bytes + 1)
            plan = Plan(upload.filename, data)
        fields = {"purpose": form.get("purpose", ""), "datasets": form.getlist("datasets"),
                  "until": form.get("until", ""), "fellows": form.get("fellows", ""),
                  "project": form.get("project") or None,
                  "pledge_accepted": str(form.get("pledge_accepted", "")).lower()
                  in {"1", "true", "yes", "on"},
                  "pledge_version": form.get("pledge_version", ""),
                  "language": form.get("language", "ko")}
        return fields, plan
    try:
        body = ApplicationIn.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            raise SafezoneError("request body is not valid JSON") from None
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
                           ) from None
    return body.model_dump(), None


def applications_router(zone: Zone, caller: Any) -> APIRouter:
    router = APIRouter()
    Actor = Annotated[Identity, Depends(caller)]

    @router.get("/api/applications/pledge")
    @action("application.terms")
    def pledge(actor: Actor) -> dict[str, Any]:
        """The security pledge (its version goes back with the application) and the limits."""
        return applications.terms(zone, actor)

    @router.post("/api/applications", status_code=201)
    @action("application.submit")
    async def submit(request: Request, actor: Actor) -> dict[str, Any]:
        require("application.submit", actor)  # before reading an upload (the service too)
        fields, plan = await _body(request)
        return applications.submit(zone, actor, plan=plan, **fields)

    @router.get("/api/applications")
    @action("application.list")
    def listing(actor: Actor) -> list[dict[str, Any]]:
        return applications.listing(zone, actor)

    @router.get("/api/applications/{application_id}")
    @action("application.view")
    def one(application_id: str, actor: Actor) -> dict[str, Any]:
        return applications.get(zone, actor, application_id)

    @router.get("/api/applications/{application_id}/plan")
    @action("application.plan")
    def plan(application_id: str, actor: Actor) -> Response:
        return plan_response(*applications.plan_file(zone, actor, application_id))

    @router.post("/api/applications/{application_id}/withdraw")
    @action("application.withdraw")
    def withdraw(application_id: str, actor: Actor) -> dict[str, Any]:
        return applications.withdraw(zone, actor, application_id)

    @router.post("/api/applications/{application_id}/approve")
    @action("application.approve")
    def approve(application_id: str, body: DecisionIn, actor: Actor) -> dict[str, Any]:
        return applications.approve(zone, actor, application_id, body.expires_at,
                                    project=body.project, new_project=body.new_project,
                                    title=body.title)

    @router.post("/api/applications/{application_id}/reject")
    @action("application.reject")
    def reject(application_id: str, body: RejectIn, actor: Actor) -> dict[str, Any]:
        return applications.reject(zone, actor, application_id, body.reason)

    return router
