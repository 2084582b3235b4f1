"""Project quotas: notebook servers running at once, and storage in MinIO.

Defaults are ``quotas.default`` of ``policies/operations.yaml``; an administrator may
override them for one project (``project.quota``, audited). CPU, memory and processes per
server are the sandbox limits of ``policies/sandbox.yaml`` (cgroups locally, pod resources
on Kubernetes), shown here but not overridden here.

Where each is enforced:

* **servers** — when a grant is issued (every server needs one, in both modes): the live
  grants of the project, less the one being replaced, must be fewer than the quota. It is
  checked before the MinIO identity is made and again inside the transaction that records
  the grant, after the audit head is locked, so two concurrent spawns cannot both pass
  (``grants._ask`` and ``grants._activate``, with ``running_servers`` and
  ``refuse_unless_room``).
* **storage** — ``work`` and ``outbox`` are buckets shared by all projects, and MinIO's
  bucket quota is per bucket, so the control plane measures the project's prefixes when it
  renders a session policy (a grant, or a running session's refresh). At or over the
  quota the policy gets ``storage_full_statements`` (a Deny of ``s3:PutObject``): the
  session can still read, list and delete there, so the researcher can make room. A session
  issued under the quota is not cut off mid-way: it may overshoot until its next grant.
  Listing is O(objects), so a grant reuses a recent measurement that found room
  (``storage_measure_max_age_seconds``); one that found the project full is redone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import urllib3
from minio.error import S3Error
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from .culling import load_operations
from .errors import Conflict, InvalidInput, StorageError
from .models import GrantStatus, Project, SessionGrant
from .permissions import Identity, require
from .sandbox.limits import limits_for
from .standing import standing
from .templating import fill
from .zone import Zone

log = logging.getLogger(__name__)
GIB = 1024 ** 3
# what an administrator may override, and the range each must fall in
OVERRIDABLE = {"servers": (0, 1000), "storage_gib": (0, 1_000_000)}


class QuotaExceeded(Conflict):
    """A project's quota refuses what was asked (a further server)."""


@dataclass(frozen=True)
class Quota:
    servers: int
    storage_gib: float

    @property
    def storage_bytes(self) -> int:
        return int(self.storage_gib * GIB)


def quota_of(project: Project, policy: dict[str, Any] | None = None) -> Quota:
    """The policy's defaults with the project's overrides on top."""
    return quota_with(project.quota, policy)


def quota_with(overrides: dict[str, Any] | None, policy: dict[str, Any] | None = None
               ) -> Quota:
    """The policy's defaults with ``overrides`` (a project's ``quota`` column) on top."""
    values = {**(policy or load_operations())["quotas"]["default"], **(overrides or {})}
    return Quota(int(values["servers"]), float(values["storage_gib"]))


def running_servers(project_id: Any, replacing: tuple[str, str] | None = None) -> Select:
    """Live grants of the project, less the (user, server) one a new grant replaces, as
    a query (``project_id`` may be a column, to use it as a correlated subquery)."""
    query = select(func.count()).select_from(SessionGrant).where(
        SessionGrant.project_id == project_id, SessionGrant.status == GrantStatus.ACTIVE)
    if replacing:
        query = query.where(~((SessionGrant.user_name == replacing[0])
                              & (SessionGrant.server_name == replacing[1])))
    return query


def _running(db: Session, project: Project) -> int:
    return db.scalar(running_servers(project.id)) or 0


def refuse_unless_room(project_name: str, quota: Quota, running: int) -> None:
    """Refuse a further server when ``running`` (less the one replaced) fills the quota."""
    if running >= quota.servers:
        raise QuotaExceeded(
            f"project {project_name} already runs {running} of its {quota.servers} notebook "
            "servers; stop one, or ask an administrator for a larger quota "
            f"(프로젝트 {project_name}의 동시 실행 서버 한도 {quota.servers}개에 도달했습니다. "
            "서버를 하나 종료하거나 관리자에게 한도 상향을 요청하세요)")


def storage_used(zone: Zone, project_name: str) -> int:
    """Bytes stored under ``work/<project>/`` and ``outbox/<project>/`` (current versions),
    measured after the call (concurrent callers share one measurement: ``coalesce``)."""
    key = ("storage used", project_name)

    def measure() -> int:
        started = time.monotonic()
        used = _measure(zone, project_name)
        zone.measured[key] = (started, used)
        return used

    return zone.coalesced.run(key, measure)


def recent_storage_used(zone: Zone, project_name: str, quota: Quota,
                        max_age: float) -> int:
    """``storage_used``, or a measurement begun less than ``max_age`` seconds ago that
    found the project under ``quota``."""
    at, used = zone.measured.get(("storage used", project_name), (None, None))
    if at is not None and time.monotonic() - at < max_age and used < quota.storage_bytes:
        return used
    return storage_used(zone, project_name)


def _measure(zone: Zone, project_name: str) -> int:
    total = 0
    try:
        for bucket in ("work", "outbox"):
            for obj in zone.broker.s3.list_objects(bucket, prefix=f"{project_name}/",
                                                   recursive=True):
                total += obj.size or 0
    except (S3Error, urllib3.exceptions.HTTPError) as exc:
        raise StorageError(f"MinIO could not measure the storage of {project_name}: {exc}"
                           ) from exc
    return total


def within_storage_quota(zone: Zone, project_name: str, policy: dict[str, Any],
                         quota: Quota | None = None) -> dict[str, Any]:
    """``policy`` as it may be for the project now: with writes denied in its workspace
    and outboxes when the project's storage is at or over its quota (``quota``: the
    project's, when the caller has just read it)."""
    operations = load_operations()
    if quota is None:
        with zone.sessions() as db:
            found = db.execute(select(Project.quota).where(Project.name == project_name)
                               ).first()
        if found is None:
            return policy
        quota = quota_with(found.quota, operations)
    used = recent_storage_used(zone, project_name, quota,
                               operations["quotas"]["storage_measure_max_age_seconds"])
    if used < quota.storage_bytes:
        return policy
    log.info("project %s is at its storage quota (%d of %d bytes): sessions cannot write",
             project_name, used, quota.storage_bytes)
    deny = fill(operations["storage_full_statements"], {"project": project_name})
    return {**policy, "Statement": [*policy["Statement"], *deny]}


def view(zone: Zone, actor: Identity, name: str) -> dict[str, Any]:
    """The project's quotas, what it uses of them, and the limits of each server."""
    from .projects import get_project

    with zone.sessions() as db:
        project = get_project(db, name)
        require("project.quota", actor, standing(db, zone.now(), project.id, actor))
        quota = quota_of(project)
        running = _running(db, project)
        overrides = dict(project.quota or {})
    used = storage_used(zone, name)
    return {"project": name, "overrides": overrides,
            "servers": {"limit": quota.servers, "running": running},
            "storage": {"limit_gib": quota.storage_gib, "used_bytes": used,
                        "full": used >= quota.storage_bytes},
            "per_server": asdict(limits_for(name))}


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    """The overrides to keep: known keys, numbers in range; None drops an override."""
    unknown = set(changes) - set(OVERRIDABLE)
    if unknown:
        raise InvalidInput(f"unknown quota {sorted(unknown)}; known: {sorted(OVERRIDABLE)} "
                           "(알 수 없는 한도)")
    kept: dict[str, Any] = {}
    for key, value in changes.items():
        if value is None:
            continue
        low, high = OVERRIDABLE[key]
        whole = key == "servers"
        if isinstance(value, bool) or not isinstance(value, int if whole else int | float) \
                or not low <= value <= high:
            kind = "a whole number" if whole else "a number"
            raise InvalidInput(f"{key} must be {kind} from {low} to {high} "
                               f"({key}: {low}–{high} 범위의 값이어야 합니다)")
        kept[key] = value
    return kept


def set_quota(zone: Zone, actor: Identity, name: str, changes: dict[str, Any]
              ) -> dict[str, Any]:
    """Replace the project's overrides (absent or None: the policy's default); audited."""
    from .projects import get_project

    kept = _checked(changes)
    with zone.unit_of_work() as db:
        project = get_project(db, name)
        require("project.set_quota", actor, standing(db, zone.now(), project.id, actor))
        old = dict(project.quota or {})
        if old != kept:
            project.quota = kept or None
            zone.record(db, actor, "project.quota_changed", f"project:{name}", old=old,
                        new=kept)
    return view(zone, actor, name)
