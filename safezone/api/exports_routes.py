"""REST routes of export requests (the egress reviewer)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response

from ..exports import service
from ..permissions import Identity
from ..zone import Zone
from .schemas import ExportFilesIn, ExportIn, ReasonIn, VoteIn


def export_router(zone: Zone, caller: Any) -> APIRouter:
    router = APIRouter()
    Actor = Annotated[Identity, Depends(caller)]

    @router.get("/api/exports/outbox/{project}")
    def outbox(project: str, actor: Actor) -> list[dict[str, Any]]:
        return service.outbox_listing(zone, actor, project)

    @router.post("/api/exports", status_code=201)
    def create(body: ExportIn, actor: Actor) -> dict[str, Any]:
        return service.create_request(zone, actor, body.project, body.title,
                                      [f.model_dump() for f in body.files])

    @router.get("/api/exports")
    def mine(actor: Actor) -> list[dict[str, Any]]:
        return service.my_requests(zone, actor)

    @router.get("/api/review/queue")
    def queue(actor: Actor) -> list[dict[str, Any]]:
        return service.review_queue(zone, actor)

    @router.get("/api/exports/{request_id}")
    def one(request_id: str, actor: Actor) -> dict[str, Any]:
        return service.get_request(zone, actor, request_id)

    @router.put("/api/exports/{request_id}/files")
    def files(request_id: str, body: ExportFilesIn, actor: Actor) -> dict[str, Any]:
        return service.update_files(zone, actor, request_id,
                                    [f.model_dump() for f in body.files])

    @router.post("/api/exports/{request_id}/submit")
    def submit(request_id: str, actor: Actor) -> dict[str, Any]:
        return service.submit(zone, actor, request_id)

    @router.post("/api/exports/{request_id}/withdraw")
    def withdraw(request_id: str, actor: Actor) -> dict[str, Any]:
        return service.withdraw(zone, actor, request_id)

    @router.post("/api/exports/{request_id}/votes")
    def vote(request_id: str, body: VoteIn, actor: Actor) -> dict[str, Any]:
        return service.vote(zone, actor, request_id, body.file_id, body.decision,
                            body.comment, body.override_reason)

    @router.post("/api/exports/{request_id}/release")
    def release(request_id: str, actor: Actor) -> dict[str, Any]:
        return service.release(zone, actor, request_id)

    @router.post("/api/exports/{request_id}/revoke")
    def revoke(request_id: str, body: ReasonIn, actor: Actor) -> dict[str, Any]:
        return service.revoke(zone, actor, request_id, body.reason)

    @router.get("/api/exports/{request_id}/files/{file_id}/content")
    def content(request_id: str, file_id: int, actor: Actor) -> Response:
        _, data = service.frozen_file(zone, actor, request_id, file_id)
        # served as opaque bytes: never rendered by the browser from this origin
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": "attachment",
                                 "X-Content-Type-Options": "nosniff"})

    @router.post("/api/exports/{request_id}/files/{file_id}/links", status_code=201)
    def link(request_id: str, file_id: int, actor: Actor) -> dict[str, Any]:
        created = service.create_link(zone, actor, request_id, file_id)
        return {**created, "url": f"download/{created.pop('token')}"}

    @router.get("/download/{token}")
    def download(token: str, actor: Actor) -> RedirectResponse:
        return RedirectResponse(service.redeem_link(zone, actor, token), status_code=303)

    return router
