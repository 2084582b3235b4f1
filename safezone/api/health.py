"""Liveness and readiness of the control plane, for Kubernetes probes.

- ``/api/health/live``: the process answers (nothing else is asked: a dependency that is
  away must not get the process restarted).
- ``/api/health/ready``: the database answers, MinIO answers its health check, and the
  audit trail is anchored (``Zone.unanchored``; the probe itself re-tries the anchor, as
  the next unit of work would, since an unready process gets no work that could); otherwise
  503 with the reasons, so the Service stops sending work to a process that would refuse it.
"""

from __future__ import annotations

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ..zone import Zone
from .actions import action

MINIO_TIMEOUT = 2.0


def readiness_problems(zone: Zone) -> list[str]:
    """What keeps this process from serving (empty: ready). Short fixed texts: no error
    detail, no address, no credential."""
    problems = []
    try:
        with zone.sessions() as db:
            db.execute(text("SELECT 1"))
    except Exception:
        problems.append("database does not answer (데이터베이스 응답 없음)")
    storage = zone.settings.storage
    scheme = "https" if storage.secure else "http"
    try:
        answer = httpx.get(f"{scheme}://{storage.endpoint}/minio/health/live",
                           timeout=MINIO_TIMEOUT)
        if answer.status_code != 200:
            problems.append("MinIO is not healthy (MinIO 상태 이상)")
    except httpx.HTTPError:
        problems.append("MinIO does not answer (MinIO 응답 없음)")
    try:  # unanchored: one more try at the head, or no work would ever come to retry it
        zone.require_anchored()
    except Exception:
        problems.append("the audit trail is not anchored (감사 기록이 고정되지 않음)")
    return problems


def health_router(zone: Zone) -> APIRouter:
    router = APIRouter()

    @router.get("/api/health/live")
    @action("health.read")
    def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/api/health/ready")
    @action("health.read")
    def ready() -> JSONResponse:
        problems = readiness_problems(zone)
        if problems:
            return JSONResponse({"status": "unready", "reasons": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    return router
