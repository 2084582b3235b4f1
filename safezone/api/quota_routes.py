"""REST routes of project quotas: read them with their usage, and an administrator's
overrides (safezone/quotas.py)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from .. import quotas
from ..permissions import Identity
from ..zone import Zone
from .actions import action


class QuotaIn(BaseModel):
    """The project's overrides; a quota left out or null follows the policy's default."""

    model_config = ConfigDict(extra="forbid")

    servers: StrictInt | None = Field(default=None, ge=0, le=1000)
    storage_gib: StrictInt | StrictFloat | None = Field(default=None, ge=0, le=1_000_000)


def quota_router(zone: Zone, caller: Any) -> APIRouter:
    router = APIRouter()
    Actor = Annotated[Identity, Depends(caller)]

    @router.get("/api/projects/{name}/quota")
    @action("project.quota")
    def read_quota(name: str, actor: Actor) -> dict[str, Any]:
        return quotas.view(zone, actor, name)

    @router.put("/api/projects/{name}/quota")
    @action("project.set_quota")
    def set_quota(name: str, body: QuotaIn, actor: Actor) -> dict[str, Any]:
        return quotas.set_quota(zone, actor, name, body.model_dump())

    return router
