"""End dates, retention and the destruction (파기) itself.

* **End**: a project's end date (``ends_at``, the last second of a day on the zone's
  clock) is set by an administrator, at creation or later, or comes from the period of the
  application the project was created from. When it passes, the sweeper archives the
  project, expires its approved memberships and revokes its live grants (keys refused,
  servers stopped) — :func:`end_projects`.
* **Destruction** (:func:`destroy_due`, the sweeper; :func:`destroy_project` /
  :func:`destroy_dataset`, an administrator, once due): ``retention_days`` after the end
  (``policies/retention.yaml``) every version and delete marker under the project's
  ``work/`` and ``outbox/`` prefixes is deleted, its export requests' frozen copies in
  ``egress-quarantine`` once their object lock has ended, and every session identity its
  grants ever had. A raw dataset goes on its ``retain_until`` date, the same way.
* **Resumable**: the inventory of what exists is saved before anything is deleted, and
  every run starts from the saved state; a run killed at any point is finished by the
  next, and a part is certified once (its row moves running -> certified -> stored in
  transactions).
* **Certificate**: each part ends with one certificate (every key, version id, size,
  SHA-256 when the zone knows it, else the ETag; who, when, under which policy), kept in
  the database and as locked JSON in the ``audit`` bucket; ``destruction.certified`` in
  the audit trail carries its SHA-256. Versions still locked are listed as pending with
  the date they can go; a later part destroys them and says ``complete``.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from .. import grants
from ..clock import as_utc, end_of_day
from ..errors import InvalidInput, InvalidTransition, NotFound, StorageError
from ..models import (
    Classification,
    Dataset,
    Destruction,
    ExportFile,
    ExportRequest,
    Membership,
    MembershipStatus,
    Project,
    ProjectStatus,
    SessionGrant,
)
from ..permissions import Identity, require
from ..projects import get_project
from ..standing import standing
from ..zone import Zone
from . import certificate, objects
from .policy import RetentionPolicy, load_policy

log = logging.getLogger(__name__)
RUNNING, CERTIFIED, STORED = "running", "certified", "stored"
QUARANTINE = "egress-quarantine"
# one destruction at a time in this process (the sweeper and an administrator's call)
_running = threading.Lock()


# -- end dates -------------------------------------------------------------------------
def end_moment(day: date | None) -> datetime | None:
    """An end date as the last second of that day where the zone is."""
    return end_of_day(day) if day is not None else None


def _today(zone: Zone) -> date:
    from ..clock import local

    return local(zone.now()).date()


def check_end_day(zone: Zone, day: date | None, what: str = "end date") -> None:
    """An end or retention day may be today or later, never past: a mistyped year must
    not destroy data at once (end a project today: its data goes after the retention)."""
    if day is not None and day < _today(zone):
        raise InvalidInput(f"{what} {day.isoformat()} is in the past; the earliest is today "
                           "(오늘 이후 날짜만 가능)")


def set_project_end(zone: Zone, actor: Identity, name: str, ends_on: date | None
                    ) -> dict[str, Any]:
    """Set, move or clear a project's end date (audited ``project.end_set``). Refused once
    its destruction has begun, and for a day already past (a mistyped year must not
    destroy data: end a project today, its data goes after the retention period)."""
    with zone.unit_of_work() as db:
        project = get_project(db, name)
        require("project.set_end", actor, standing(db, zone.now(), project.id, actor))
        check_end_day(zone, ends_on)
        if _parts(db, "project", name):
            raise InvalidTransition(f"the destruction of project {name}'s data has begun; "
                                    "its end can no longer change (파기 진행 중)")
        if project.status is not ProjectStatus.ACTIVE and project.ends_at is not None \
                and as_utc(project.ends_at) <= zone.now() and ends_on is None:
            raise InvalidTransition(f"project {name} has ended; set a new end date instead "
                                    "of none (종료된 프로젝트)")
        old = as_utc(project.ends_at).isoformat() if project.ends_at else None
        project.ends_at = end_moment(ends_on)
        zone.record(db, actor, "project.end_set", f"project:{name}", old=old,
                    new=project.ends_at.isoformat() if project.ends_at else None)
        return project_end_view(project, load_policy())


def project_end_view(project: Project, policy: RetentionPolicy) -> dict[str, Any]:
    ends = as_utc(project.ends_at) if project.ends_at else None
    return {"name": project.name, "status": project.status.value,
            "ends_at": ends.isoformat() if ends else None,
            "destroy_from": (ends + policy.retention).isoformat() if ends else None,
            "destroyed_at": as_utc(project.destroyed_at).isoformat()
            if project.destroyed_at else None}


def end_projects(zone: Zone, actor: Identity) -> int:
    """The sweeper's step: projects whose end has passed are archived, their approved
    memberships expire and their sessions end. One read-only query when none is due."""
    now = zone.now()
    with zone.sessions() as db:
        due = list(db.scalars(select(Project.name).where(
            Project.status == ProjectStatus.ACTIVE, Project.ends_at.is_not(None),
            Project.ends_at <= now)))
    for name in due:
        with zone.unit_of_work() as db:
            project = get_project(db, name)
            if project.status is not ProjectStatus.ACTIVE:
                continue
            project.status = ProjectStatus.ARCHIVED
            zone.record(db, actor, "project.ended", f"project:{name}",
                        ends_at=as_utc(project.ends_at).isoformat())
            for m in db.scalars(select(Membership).where(
                    Membership.project_id == project.id,
                    Membership.status == MembershipStatus.APPROVED)):
                m.status = MembershipStatus.EXPIRED
                zone.record(db, actor, "membership.expired",
                            f"project:{name}/user:{m.user_name}", reason="project ended")
        grants.end_grants_where(zone, actor, project_name=name, reason="project ended")
        if zone.namespaces is not None:
            zone.namespaces.end_sessions(name)
    return len(due)


def set_dataset_retention(zone: Zone, actor: Identity, name: str, until: date | None
                          ) -> dict[str, Any]:
    """Set or clear a raw dataset's retention date (audited ``dataset.retention_set``)."""
    require("dataset.set_retention", actor)
    with zone.unit_of_work() as db:
        dataset = _dataset(db, name)
        if dataset.classification is not Classification.RAW:
            raise InvalidTransition(f"dataset {name} is {dataset.classification.value}: only "
                                    "raw datasets have a retention date here (원본만 해당)")
        check_end_day(zone, until, "retention date")
        if _parts(db, "dataset", name):
            raise InvalidTransition(f"dataset {name} is being destroyed (파기 진행 중)")
        old = as_utc(dataset.retain_until).isoformat() if dataset.retain_until else None
        dataset.retain_until = end_moment(until)
        zone.record(db, actor, "dataset.retention_set", f"dataset:{name}", old=old,
                    new=dataset.retain_until.isoformat() if dataset.retain_until else None)
        return {"name": name, "retain_until": dataset.retain_until.isoformat()
                if dataset.retain_until else None}


def _dataset(db, name: str) -> Dataset:
    dataset = db.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        raise NotFound(f"no dataset named {name!r} (데이터셋 없음)")
    return dataset


# -- what a destruction covers ---------------------------------------------------------
@dataclass
class Target:
    """One subject of destruction and everything it covers."""

    kind: str  # project | dataset
    name: str
    due_at: datetime
    locations: list[tuple[str, str]]  # destroyed now
    locked: list[tuple[str, str]]  # destroyed once each version's object lock has ended
    described: dict[str, Any]
    hashes: dict[tuple[str, str, str | None], str] = field(default_factory=dict)
    remove_bucket: str | None = None

    @property
    def audit_subject(self) -> str:
        return f"{self.kind}:{self.name}"

    def everywhere(self) -> list[tuple[str, str]]:
        return self.locations + self.locked


def _project_target(db, policy: RetentionPolicy, name: str) -> Target:
    project = get_project(db, name)
    if project.ends_at is None:
        raise InvalidTransition(f"project {name} has no end date (종료일 없음)")
    ends = as_utc(project.ends_at)
    requests = list(db.scalars(select(ExportRequest.id).where(
        ExportRequest.project_id == project.id).order_by(ExportRequest.id)))
    hashes: dict[tuple[str, str, str | None], str] = {}
    for f in db.scalars(select(ExportFile).join(ExportRequest).where(
            ExportRequest.project_id == project.id)):
        if f.quarantine_key and f.sha256:
            hashes[(QUARANTINE, f.quarantine_key, f.frozen_version or None)] = f.sha256
        if f.release_form_key and f.release_sha256:
            hashes[(QUARANTINE, f.release_form_key, None)] = f.release_sha256
    return Target(
        "project", name, ends + policy.retention, policy.project_prefixes(name),
        [(QUARANTINE, f"{r}/") for r in requests] if policy.quarantine else [],
        {"kind": "project", "name": name, "title": project.title,
         "created_at": as_utc(project.created_at).isoformat(), "ends_at": ends.isoformat(),
         "export_requests": requests}, hashes)


def _dataset_target(db, name: str) -> Target:
    dataset = _dataset(db, name)
    if dataset.classification is not Classification.RAW:
        raise InvalidTransition(f"dataset {name} is not raw: only raw datasets are destroyed "
                                "on a retention date (원본 데이터셋만 해당)")
    if dataset.retain_until is None:
        raise InvalidTransition(f"dataset {name} has no retention date (보존 기한 없음)")
    return Target(
        "dataset", name, as_utc(dataset.retain_until), [(dataset.bucket, dataset.prefix)], [],
        {"kind": "dataset", "name": name, "classification": dataset.classification.value,
         "bucket": dataset.bucket, "prefix": dataset.prefix,
         "retain_until": as_utc(dataset.retain_until).isoformat()},
        remove_bucket=dataset.bucket if not dataset.prefix else None)


# -- when ------------------------------------------------------------------------------
def _parts(db, kind: str, name: str) -> list[Destruction]:
    return list(db.scalars(select(Destruction).where(
        Destruction.kind == kind, Destruction.subject == name).order_by(Destruction.part)))


def _next_step(parts: list[Destruction], now: datetime) -> str:
    """start | resume | store | wait | done, from the parts so far."""
    if not parts:
        return "start"
    last = parts[-1]
    if last.state == RUNNING:
        return "resume" if last.retry_at is None or as_utc(last.retry_at) <= now else "wait"
    if last.state == CERTIFIED:
        return "store"
    if last.pending_from is None:
        return "done"
    return "start" if as_utc(last.pending_from) <= now else "wait"


def destroy_due(zone: Zone, actor: Identity) -> int:
    """The sweeper's step: run every destruction that is due (read-only when none is)."""
    policy, now = load_policy(), zone.now()
    with zone.sessions() as db:
        projects = list(db.scalars(select(Project.name).where(
            Project.status == ProjectStatus.ARCHIVED, Project.ends_at.is_not(None),
            Project.ends_at <= now - policy.retention, Project.destroyed_at.is_(None))))
        datasets = list(db.scalars(select(Dataset.name).where(
            Dataset.classification == Classification.RAW, Dataset.retain_until.is_not(None),
            Dataset.retain_until <= now, Dataset.destroyed_at.is_(None))))
        due = [(k, n) for k, names in (("project", projects), ("dataset", datasets))
               for n in names if _next_step(_parts(db, k, n), now) in {"start", "resume",
                                                                       "store"}]
    for kind, name in due:
        try:
            _destroy(zone, actor, kind, name)
        except StorageError as exc:  # the next round resumes it
            log.warning("destruction of %s %s paused: %s", kind, name, exc.message)
    return len(due)


def destroy_project(zone: Zone, actor: Identity, name: str) -> dict[str, Any]:
    """An administrator runs a due destruction now (the sweeper would within seconds)."""
    with zone.sessions() as db:
        project = get_project(db, name)
        require("project.destroy", actor, standing(db, zone.now(), project.id, actor))
    return _destroy(zone, actor, "project", name, asked=True)


def destroy_dataset(zone: Zone, actor: Identity, name: str) -> dict[str, Any]:
    require("dataset.destroy", actor)
    return _destroy(zone, actor, "dataset", name, asked=True)


def _destroy(zone: Zone, actor: Identity, kind: str, name: str, asked: bool = False
             ) -> dict[str, Any]:
    policy, now = load_policy(), zone.now()
    with zone.sessions() as db:
        target = (_project_target(db, policy, name) if kind == "project"
                  else _dataset_target(db, name))
        if kind == "project" and get_project(db, name).status is ProjectStatus.ACTIVE:
            raise InvalidTransition(f"project {name} has not ended yet (아직 종료되지 않음)")
        step = _next_step(_parts(db, kind, name), now)
    if now < target.due_at:
        raise InvalidTransition(f"{kind} {name} may be destroyed from "
                                f"{target.due_at.isoformat()} (파기 예정일 전)")
    if step == "done":
        raise InvalidTransition(f"{kind} {name} is already destroyed (이미 파기됨)")
    if step == "wait" and asked:
        raise InvalidTransition(f"{kind} {name}: what is left is under an object lock; it "
                                "is destroyed when the lock ends (잠금 해제 후 파기)")
    with _running:
        return _run(zone, actor, target, policy)


# -- the run ---------------------------------------------------------------------------
def _run(zone: Zone, actor: Identity, target: Target, policy: RetentionPolicy
         ) -> dict[str, Any]:
    row_id, state = _open(zone, actor, target, policy)
    if state == RUNNING:
        identities = _end_identities(zone, actor, target)
        items = _destroy_objects(zone, row_id, target, identities)
        if items is None:  # nothing could go yet: all locked
            return _summary(zone, row_id)
        _certify(zone, actor, row_id, target, items, identities, policy)
    _store(zone, row_id, policy)
    return _summary(zone, row_id)


def _open(zone: Zone, actor: Identity, target: Target, policy: RetentionPolicy
          ) -> tuple[str, str]:
    """The part to work on: the unfinished one, or a new one (audited)."""
    with zone.unit_of_work() as db:
        parts = _parts(db, target.kind, target.name)
        if parts and parts[-1].state in {RUNNING, CERTIFIED}:
            return parts[-1].id, parts[-1].state
        row = Destruction(id=secrets.token_hex(16), kind=target.kind, subject=target.name,
                          part=parts[-1].part + 1 if parts else 1, state=RUNNING,
                          policy=policy.summary(), started_at=zone.now(),
                          started_by=actor.label)
        db.add(row)
        zone.record(db, actor, "destruction.started", target.audit_subject,
                    destruction=row.id, part=row.part, policy_sha256=policy.sha256,
                    due_at=target.due_at.isoformat())
        return row.id, RUNNING


def _end_identities(zone: Zone, actor: Identity, target: Target) -> list[dict[str, Any]]:
    """Every MinIO identity the project's grants ever had is gone (checked by listing)."""
    if target.kind != "project":
        return []
    grants.end_grants_where(zone, actor, project_name=target.name,
                            reason="project data destroyed")
    with zone.sessions() as db:
        rows = db.execute(select(SessionGrant.id, SessionGrant.user_name,
                                 SessionGrant.access_key, SessionGrant.parent).join(Project)
                          .where(Project.name == target.name)
                          .order_by(SessionGrant.created_at)).all()
    for grant_id, _, access_key, parent in rows:
        grants.end_keys(zone, grant_id, parent, access_key)
    for parent in sorted({row.parent for row in rows if row.parent}):
        zone.broker.remove_session_parent(parent)
    try:
        live = set(zone.broker.session_identities())
    except Exception as exc:
        raise StorageError(f"MinIO could not list session identities: {exc}") from exc
    left = [row.access_key for row in rows if row.access_key in live]
    if left:
        raise StorageError(f"{len(left)} session identities of {target.name} are still there")
    return [{"grant": g, "user": u, "access_key": k, "gone": True} for g, u, k, _ in rows]


def _key(item: dict[str, Any]) -> tuple[str, str, str | None]:
    return item["bucket"], item["key"], item["version_id"]


_RANK = {"listed": 0, "locked": 1, "destroyed": 2}


def _save(zone: Zone, row_id: str, found: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge ``found`` into the part's saved inventory (a version once destroyed stays
    destroyed) and return the merged list."""
    with zone.unit_of_work() as db:
        row = db.get(Destruction, row_id)
        saved = {_key(i): i for i in (row.inventory or {}).get("objects", [])}
        for item in found:
            old = saved.get(_key(item))
            if old is None or _RANK[item["state"]] >= _RANK[old["state"]]:
                saved[_key(item)] = {**(old or {}), **item}
        merged = sorted(saved.values(), key=lambda i: (i["bucket"], i["key"],
                                                         i["version_id"] or ""))
        row.inventory = {"objects": merged}
        return merged


def _listing(zone: Zone, target: Target) -> list[dict[str, Any]]:
    found = []
    for bucket, prefix in target.everywhere():
        for item in objects.list_versions(zone.broker.s3, bucket, prefix):
            found.append({**item, "state": "listed"})
    return found


def _destroy_objects(zone: Zone, row_id: str, target: Target,
                     identities: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Delete every version that may go; the merged inventory, or None when this part
    could destroy nothing because all that is left is locked (tried again later)."""
    s3, now = zone.broker.s3, zone.now()
    lockable = {bucket for bucket, _ in target.locked}
    for _round in range(3):  # versions written while we delete are found by the check
        items = _save(zone, row_id, _listing(zone, target))
        todo: dict[str, list[dict[str, Any]]] = {}
        changed = []
        for item in items:
            if item["state"] == "destroyed":
                continue
            until = objects.lock_until(s3, item) if item["bucket"] in lockable else None
            if until is not None and until > now:
                changed.append({**item, "state": "locked", "retain_until": until.isoformat()})
            else:
                todo.setdefault(item["bucket"], []).append(item)
        for bucket, batch in todo.items():
            refused = objects.delete_versions(s3, bucket, batch)
            for item in batch:
                code = refused.get((item["key"], item["version_id"]))
                if code is None:
                    changed.append({**item, "state": "destroyed",
                                    "destroyed_at": zone.now().isoformat()})
                elif bucket in lockable:  # MinIO's lock outlasts what the zone thinks
                    until = objects.lock_until(s3, item)
                    changed.append({**item, "state": "locked", "refused": code,
                                    "retain_until": until.isoformat() if until else None})
                else:
                    _save(zone, row_id, changed)
                    raise StorageError(f"MinIO refused to delete {bucket}/{item['key']}: {code}")
        items = _save(zone, row_id, changed)
        left = {(b, k, v) for b, p in target.everywhere()
                for i in objects.list_versions(s3, b, p) for (b, k, v) in [_key(i)]}
        locked = {_key(i) for i in items if i["state"] == "locked"}
        if left <= locked:
            break
    else:
        raise StorageError(f"{target.kind} {target.name}: objects keep appearing while they "
                           "are destroyed; tried three times (다시 시도)")
    if target.remove_bucket and not left:
        zone.broker.remove_bucket_if_empty(target.remove_bucket)
    with zone.sessions() as db:
        part = db.get(Destruction, row_id).part
    if part > 1 and not any(i["state"] == "destroyed" for i in items):
        _wait_for_locks(zone, row_id, items)
        return None
    return items


def _earliest(items: list[dict[str, Any]]) -> datetime | None:
    dates = [datetime.fromisoformat(i["retain_until"]) for i in items
             if i["state"] == "locked" and i.get("retain_until")]
    return min(dates) if dates else None


def _retry_at(zone: Zone, items: list[dict[str, Any]]) -> datetime:
    """When to try the locked versions again: when the first lock ends, or — when MinIO
    refused one the zone's clock sees as unlocked — after ``locked_retry_minutes``."""
    now, first = zone.now(), _earliest(items)
    return first if first is not None and first > now else now + load_policy().locked_retry


def _wait_for_locks(zone: Zone, row_id: str, items: list[dict[str, Any]]) -> None:
    with zone.unit_of_work() as db:
        row = db.get(Destruction, row_id)
        row.retry_at = _retry_at(zone, items)


def _certify(zone: Zone, actor: Identity, row_id: str, target: Target,
             items: list[dict[str, Any]], identities: list[dict[str, Any]],
             policy: RetentionPolicy) -> None:
    """Write the part's certificate and its audit event, once."""
    gone = [i for i in items if i["state"] == "destroyed"]
    locked = [i for i in items if i["state"] == "locked"]
    with zone.unit_of_work() as db:
        row = db.get(Destruction, row_id)
        if row.state != RUNNING:
            return
        previous = db.scalar(select(Destruction.certificate_sha256).where(
            Destruction.kind == target.kind, Destruction.subject == target.name,
            Destruction.part == row.part - 1))
        now = zone.now()
        pending_from = (_retry_at(zone, locked) if locked else None)
        document = {
            "type": "safezone.destruction-certificate", "format": 1,
            "title": certificate.TITLE, "id": row.id, "part": row.part,
            "previous_part_sha256": previous, "subject": target.described,
            "policy": row.policy, "due_at": target.due_at.isoformat(),
            "destroyed_by": row.started_by,
            "started_at": as_utc(row.started_at).isoformat(), "finished_at": now.isoformat(),
            "locations": [f"{b}/{p}" for b, p in target.everywhere()],
            "objects": [_entry(i, target) for i in gone],
            "identities": identities,
            "totals": {"versions": sum(not i["delete_marker"] for i in gone),
                       "delete_markers": sum(i["delete_marker"] for i in gone),
                       "bytes": sum(i["size"] for i in gone if not i["delete_marker"])},
            "pending": {"versions": [{k: i.get(k) for k in (
                "bucket", "key", "version_id", "size", "retain_until")} for i in locked],
                "destroyable_from": pending_from.isoformat() if pending_from else None},
            "complete": not locked,
            "checked": "after deleting, every location was listed again with all versions "
                       "and delete markers: nothing is left but the pending versions",
        }
        digest = certificate.digest(document)
        row.certificate, row.certificate_sha256 = document, digest
        row.certificate_key = certificate.key_for(policy.certificate_prefix, target.kind,
                                                  target.name, row.part, digest)
        row.state, row.finished_at, row.retry_at = CERTIFIED, now, None
        row.pending_from = pending_from
        if not locked:
            subject = (get_project(db, target.name) if target.kind == "project"
                       else _dataset(db, target.name))
            subject.destroyed_at = now
        zone.record(db, actor, "destruction.certified", target.audit_subject,
                    destruction=row.id, part=row.part, sha256=digest, key=row.certificate_key,
                    versions=document["totals"]["versions"],
                    delete_markers=document["totals"]["delete_markers"],
                    bytes=document["totals"]["bytes"], identities=len(identities),
                    pending=len(locked), complete=not locked,
                    destroyable_from=document["pending"]["destroyable_from"])


def _entry(item: dict[str, Any], target: Target) -> dict[str, Any]:
    sha = (target.hashes.get(_key(item))
           or target.hashes.get((item["bucket"], item["key"], None)))
    return {"bucket": item["bucket"], "key": item["key"], "version_id": item["version_id"],
            "delete_marker": item["delete_marker"], "size": item["size"],
            "last_modified": item.get("last_modified"), "sha256": sha,
            "etag": None if sha else item.get("etag"),
            "destroyed_at": item.get("destroyed_at")}


def _store(zone: Zone, row_id: str, policy: RetentionPolicy) -> None:
    """The certificate's locked copy in the audit bucket (once), then ``stored``."""
    with zone.sessions() as db:
        row = db.get(Destruction, row_id)
        if row.state != CERTIFIED:
            return
        key, document = row.certificate_key, row.certificate
        until = as_utc(row.finished_at) + policy.certificate_keep
    certificate.store(zone.broker.s3, key, document, until)
    with zone.unit_of_work() as db:
        row = db.get(Destruction, row_id)
        if row.state == CERTIFIED:
            row.state = STORED


def _summary(zone: Zone, row_id: str) -> dict[str, Any]:
    with zone.sessions() as db:
        return summary(db.get(Destruction, row_id))


def summary(row: Destruction) -> dict[str, Any]:
    """What lists show of one part (no object list)."""
    document = row.certificate or {}
    return {"id": row.id, "kind": row.kind, "subject": row.subject, "part": row.part,
            "state": row.state, "started_at": as_utc(row.started_at).isoformat(),
            "started_by": row.started_by,
            "finished_at": as_utc(row.finished_at).isoformat() if row.finished_at else None,
            "sha256": row.certificate_sha256, "key": row.certificate_key,
            "complete": document.get("complete"), "totals": document.get("totals"),
            "pending_from": as_utc(row.pending_from).isoformat() if row.pending_from else None,
            "retry_at": as_utc(row.retry_at).isoformat() if row.retry_at else None}
