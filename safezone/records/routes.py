"""REST routes of the access records: MinIO's audit webhook, the hub's login reports, and
the administrators' reading, verification, retention and monthly review."""


from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..api.actions import action
from ..errors import InvalidInput
from ..permissions import Identity
from ..zone import Zone
from . import minio, report, service, sources


class LoginIn(BaseModel):
    """A hub login: who, from which address (as the hub saw it), which authenticator;
    for a login the hub refused, why and the IdP subject who tried."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=64)
    source: str = Field(min_length=2, max_length=64)
    authenticator: str = Field(default="", max_length=80)
    refused: str = Field(default="", max_length=40)  # a login the hub refused: why
    subject: str = Field(default="", max_length=255)  # and the IdP subject who tried


class ReviewedIn(BaseModel):
    """A month's records reviewed through a record: the ``through`` of the report read."""

    model_config = ConfigDict(extra="forbid")

    month: str = Field(min_length=7, max_length=7)
    through: int = Field(ge=0)


def records_router(zone: Zone, caller: Any) -> APIRouter:
    router = APIRouter()
    Actor = Annotated[Identity, Depends(caller)]

    @router.post("/api/records/minio")
    @action("records.ingest")
    async def from_minio(request: Request) -> dict[str, int]:
        """MinIO's audit webhook (its own token, not a hub identity)."""
        minio.require_token(request.headers.get("authorization", ""))  # before the body
        body = await request.body()
        return await run_in_threadpool(minio.ingest, zone, body)

    @router.post("/api/records/logins", status_code=201)
    @action("records.login")
    def login(body: LoginIn, actor: Actor) -> dict[str, Any]:
        return sources.record_login(zone, actor, body.user, body.source, body.authenticator,
                                    body.refused, body.subject)

    @router.get("/api/records")
    @action("records.read")
    def read(actor: Actor, account: str = "", action_prefix: str = Query("", alias="action"),
             since: str = "", until: str = "", limit: int = 100) -> list[dict[str, Any]]:
        return service.list_records(zone, actor, account=account, action=action_prefix,
                                    since=since, until=until, limit=limit)

    @router.get("/api/records/verify")
    @action("records.verify")
    def verify(actor: Actor) -> dict[str, Any]:
        return service.verify_now(zone, actor)

    @router.post("/api/records/sweep")
    @action("records.sweep")
    def sweep(actor: Actor) -> dict[str, Any]:
        return service.sweep_now(zone, actor)

    @router.get("/api/records/report", response_model=None)
    @action("records.report")
    def monthly(actor: Actor, month: str = "", format: str = "json") -> Response | dict[str, Any]:
        """The month's report as JSON (with a readable summary) or CSV; writes nothing."""
        if format not in ("json", "csv"):
            raise InvalidInput("format must be json or csv")
        done = report.read(zone, actor, month)
        if format == "csv":
            return Response(report.as_csv(done), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": "attachment; filename="
                                     f"access-records-{done['month']}.csv",
                                     "Cache-Control": "no-store"})
        return {**done, "summary": report.summary(done)}

    @router.post("/api/records/reviews", status_code=201)
    @action("records.review")
    def mark_reviewed(body: ReviewedIn, actor: Actor) -> dict[str, Any]:
        """The month reviewed through record ``through`` (the report's own ``through``)."""
        return report.mark_reviewed(zone, actor, body.month, body.through)

    @router.get("/api/records/reviews")
    @action("records.report")
    def month_reviews(actor: Actor, month: str = "") -> list[dict[str, Any]]:
        return report.reviews(zone, actor, month)

    return router
