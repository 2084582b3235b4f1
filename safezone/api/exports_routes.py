"""REST routes of export requests (the egress reviewer)."""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from ..checks.explain import explain
from ..exports import release, review, service
from ..exports.release import Download
from ..permissions import Identity
from ..read_cache import served
from ..zone import Zone
from .actions import action
from .schemas import DownloadIn, DryRunIn, ExportFilesIn, ExportIn, ReasonIn, VoteIn


def attachment(download: Download) -> StreamingResponse:
    """Released bytes as a download: never rendered by the browser from this origin. A
    BOM asked for (``download.prefix``) goes before the released bytes, which are sent
    unchanged."""
    from urllib.parse import quote

    def body() -> Iterator[bytes]:
        if download.prefix:
            yield download.prefix
        yield from download.chunks

    return StreamingResponse(body(), media_type=download.media_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(download.name)}",
        "Content-Length": str(download.size + len(download.prefix)),
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


def wants_bom(value: object) -> bool:
    """A form's or body's "add a BOM for Excel" choice (a checked box sends "on")."""
    return value is True or str(value).lower() in {"on", "true", "1", "yes"}


class DownloadChoiceIn(DownloadIn):
    bom: bool = False  # put a UTF-8 BOM before a CSV (for Excel); the file is unchanged


def export_router(zone: Zone, caller: Any) -> APIRouter:
    router = APIRouter()
    Actor = Annotated[Identity, Depends(caller)]

    @router.get("/api/exports/outbox/{project}")
    @action("export.outbox")
    def outbox(project: str, actor: Actor) -> list[dict[str, Any]]:
        return service.outbox_listing(zone, actor, project)

    @router.post("/api/exports", status_code=201)
    @action("export.create")
    def create(body: ExportIn, actor: Actor) -> dict[str, Any]:
        return service.create_request(zone, actor, body.project, body.title,
                                      [f.model_dump() for f in body.files])

    @router.post("/api/exports/dry-run")
    @action("export.dry_run")
    def dry_run(body: DryRunIn, actor: Actor) -> dict[str, Any]:
        """The checks a submit would run, on the caller's outbox files, with no request."""
        done = service.dry_run(zone, actor, body.project, body.files)
        return {**done, "explained": explain(done["record"], body.language)}

    @router.get("/api/exports")
    @action("export.list_mine")
    async def mine(actor: Actor) -> list[dict[str, Any]]:
        return await served(service.my_requests, zone, actor)

    @router.get("/api/review/queue")
    @action("export.queue")
    def queue(actor: Actor) -> list[dict[str, Any]]:
        return service.review_queue(zone, actor)

    @router.get("/api/exports/{request_id}")
    @action("export.view")
    def one(request_id: str, actor: Actor) -> dict[str, Any]:
        return service.get_request(zone, actor, request_id)

    @router.put("/api/exports/{request_id}/files")
    @action("export.edit")
    def files(request_id: str, body: ExportFilesIn, actor: Actor) -> dict[str, Any]:
        return service.update_files(zone, actor, request_id,
                                    [f.model_dump() for f in body.files])

    @router.post("/api/exports/{request_id}/submit", status_code=202)
    @action("export.submit")
    def submit(request_id: str, actor: Actor) -> dict[str, Any]:
        return service.submit(zone, actor, request_id)

    @router.post("/api/exports/{request_id}/withdraw")
    @action("export.withdraw")
    def withdraw(request_id: str, actor: Actor) -> dict[str, Any]:
        return service.withdraw(zone, actor, request_id)

    @router.get("/api/exports/{request_id}/previews")
    @action("export.preview")
    def previews(request_id: str, actor: Actor) -> dict[str, Any]:
        return {str(k): v for k, v in review.previews(zone, actor, request_id).items()}

    @router.post("/api/exports/{request_id}/votes")
    @action("export.vote")
    def vote(request_id: str, body: VoteIn, actor: Actor) -> dict[str, Any]:
        return review.vote(zone, actor, request_id, body.file_id, body.decision,
                           body.comment, body.override_reason)

    @router.post("/api/exports/{request_id}/release")
    @action("export.release")
    def release_now(request_id: str, actor: Actor) -> dict[str, Any]:
        return release.release(zone, actor, request_id)

    @router.post("/api/exports/{request_id}/revoke")
    @action("export.revoke")
    def revoke(request_id: str, body: ReasonIn, actor: Actor) -> dict[str, Any]:
        return release.revoke(zone, actor, request_id, body.reason)

    @router.post("/api/exports/{request_id}/files/{file_id}/links", status_code=201)
    @action("export.link")
    def link(request_id: str, file_id: int, actor: Actor) -> dict[str, Any]:
        return release.create_link(zone, actor, request_id, file_id)

    @router.post("/api/download")
    @action("export.download")
    def download(body: DownloadChoiceIn, actor: Actor) -> StreamingResponse:
        """The token travels in the body, never in a URL that a log would keep."""
        return attachment(release.redeem_link(zone, actor, body.token, bom=body.bom))

    return router
