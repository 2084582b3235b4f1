"""REST routes of project end dates, raw-dataset retention, destruction and certificates
(safezone/destruction)."""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from ..destruction import reports, service
from ..permissions import Identity
from ..zone import Zone
from .actions import action


class EndIn(BaseModel):
    """The project's last day (its end is that day's last second, on the zone's clock);
    null clears it."""

    model_config = ConfigDict(extra="forbid")

    ends_on: date | None


class RetentionIn(BaseModel):
    """The raw dataset's last day of retention; null clears it."""

    model_config = ConfigDict(extra="forbid")

    retain_until: date | None


def destruction_router(zone: Zone, caller: Any) -> APIRouter:
    router = APIRouter()
    Actor = Annotated[Identity, Depends(caller)]

    @router.put("/api/projects/{name}/end")
    @action("project.set_end")
    def set_end(name: str, body: EndIn, actor: Actor) -> dict[str, Any]:
        return service.set_project_end(zone, actor, name, body.ends_on)

    @router.post("/api/projects/{name}/destroy")
    @action("project.destroy")
    def destroy_project(name: str, actor: Actor) -> dict[str, Any]:
        """Run the project's due destruction now (409 before it is due)."""
        return service.destroy_project(zone, actor, name)

    @router.put("/api/datasets/{name}/retention")
    @action("dataset.set_retention")
    def set_retention(name: str, body: RetentionIn, actor: Actor) -> dict[str, Any]:
        return service.set_dataset_retention(zone, actor, name, body.retain_until)

    @router.post("/api/datasets/{name}/destroy")
    @action("dataset.destroy")
    def destroy_dataset(name: str, actor: Actor) -> dict[str, Any]:
        return service.destroy_dataset(zone, actor, name)

    @router.get("/api/destructions")
    @action("destruction.read")
    def list_destructions(actor: Actor, kind: str = "", subject: str = ""
                          ) -> list[dict[str, Any]]:
        return reports.list_destructions(zone, actor, kind, subject)

    @router.get("/api/destructions/{destruction_id}")
    @action("destruction.read")
    def read_destruction(destruction_id: str, actor: Actor) -> dict[str, Any]:
        return reports.read_certificate(zone, actor, destruction_id)

    @router.get("/api/destructions/{destruction_id}/certificate")
    @action("destruction.read")
    def download_certificate(destruction_id: str, actor: Actor) -> Response:
        """The certificate exactly as locked in the audit bucket (its SHA-256 checked)."""
        name, body = reports.stored_certificate(zone, actor, destruction_id)
        return Response(body, media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="{name}"'})

    return router
