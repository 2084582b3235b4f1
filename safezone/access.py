"""Data access follows the catalogue at once, in running sessions too.

After a change to what a project may read has committed (a dataset withdrawn, detached or
failing its integrity check, the project archived, a membership revoked or expired), the
catalogue calls this module, and the control plane's sweeper calls it every few seconds:

* a live grant whose project is archived or whose membership is no longer approved is
  revoked: its MinIO identity is deleted, so its keys are refused at once;
* every other live grant keeps only the datasets it was given that the project may still
  read: its session parent's policy is re-rendered and replaced in MinIO, which applies it
  to the temporary keys already handed out at once, and the grant's recorded list follows
  (every grant of one parent was given the same datasets, so they narrow alike).

Live sessions only ever lose access here. A dataset attached or published later reaches a
notebook with its next grant, where membership and integrity are checked.

Failure: the catalogue change is committed first and stays. If MinIO cannot be reached,
the caller gets :class:`SessionsNotRefreshed` (503) saying so, and the sweeper retries: each
round compares every live grant with the catalogue (database only) and refreshes the
projects whose grants hold more than they may.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from . import grants
from .errors import StorageError
from .grants import SessionsNotRefreshed
from .memberships import effective_status, expire_memberships
from .models import (
    Dataset,
    GrantStatus,
    Membership,
    MembershipStatus,
    Project,
    ProjectDataset,
    ProjectStatus,
    SessionGrant,
)
from .permissions import SYSTEM, Identity
from .zone import Zone

log = logging.getLogger(__name__)
# One refresh at a time in this process, so what MinIO holds and what the grants record
# cannot be interleaved by two refreshes of the same grant.
_refreshing = threading.Lock()


@dataclass(frozen=True)
class _Due:
    """What one live grant should become: ended (``ended_by`` says why) or ``keep``."""

    grant: SessionGrant
    ended_by: str | None
    keep: list[Dataset]

    @property
    def stale(self) -> bool:
        return self.ended_by is not None or len(self.keep) < len(_granted(self.grant))


def _granted(grant: SessionGrant) -> list[str]:
    return [d["name"] for d in grant.datasets.get("datasets", [])]


def _due(db: Session, zone: Zone, project_name: str | None = None) -> list[_Due]:
    """Every live grant (of one project) against the catalogue, in two queries."""
    query = (select(SessionGrant, Membership)
             .outerjoin(Membership, and_(Membership.project_id == SessionGrant.project_id,
                                         Membership.user_name == SessionGrant.user_name))
             .where(SessionGrant.status == GrantStatus.ACTIVE))
    if project_name is not None:
        query = query.where(SessionGrant.project_id == select(Project.id).where(
            Project.name == project_name).scalar_subquery())
    now, found = zone.now(), []
    for grant, membership in db.execute(query).all():
        status = effective_status(membership, now) if membership else None
        if grant.project.status is not ProjectStatus.ACTIVE:
            found.append(_Due(grant, "project archived", []))
        elif status is not MembershipStatus.APPROVED:
            found.append(_Due(grant, f"membership {status or 'gone'}", []))
        else:
            readable = {d.name: d for d in grants.readable_datasets(grant.project)}
            keep = [readable[n] for n in _granted(grant) if n in readable]
            found.append(_Due(grant, None, keep))
    return found


def refresh_project_sessions(zone: Zone, actor: Identity, project_name: str,
                             reason: str) -> list[str]:
    """Bring the live grants of a project in line with the catalogue, now.

    Returns the ids of the grants changed; one ``session.refreshed`` event lists those
    narrowed (each revoked one has its own ``session.revoked``). Raises
    SessionsNotRefreshed when MinIO could not be reached: what did change is recorded.
    """
    with _refreshing:
        with zone.sessions() as db:
            dues = _due(db, zone, project_name)
        stale = [d for d in dues if d.stale]
        # a parent's policy is what any of its live grants may still read (they may
        # differ when a dataset came back and a new grant re-wrote the parent)
        kept_by_parent: dict[str, dict[str, Dataset]] = {}
        for due in dues:
            if due.ended_by is None and due.grant.parent:
                kept_by_parent.setdefault(due.grant.parent, {}).update(
                    {d.name: d for d in due.keep})
        changed: list[str] = []
        narrowed: dict[str, list[str]] = {}
        try:
            for due in stale:
                grant = due.grant
                if due.ended_by is None:
                    kept = kept_by_parent.get(grant.parent or "", {}).values() or due.keep
                    policy = grants.parent_policy(zone, project_name, grant.user_name,
                                                  list(kept))
                    if grant.parent and zone.broker.narrow_session_parent(grant.parent,
                                                                          policy):
                        narrowed[grant.id] = [d.name for d in due.keep]
                    else:  # its keys are dead already, or cannot be narrowed: they go
                        grants.revoke_grant(zone, actor, grant, "session identity missing")
                else:
                    grants.revoke_grant(zone, actor, grant, due.ended_by)
                changed.append(grant.id)
        except StorageError as exc:
            raise SessionsNotRefreshed(
                f"{reason}: recorded, but {len(stale) - len(changed)} running session(s) of "
                f"{project_name} could not be updated yet ({exc.message}); the control "
                "plane keeps retrying") from exc
        finally:
            _record(zone, actor, project_name, reason, narrowed)
    return changed


def _record(zone: Zone, actor: Identity, project_name: str, reason: str,
            narrowed: dict[str, list[str]]) -> None:
    if not narrowed:
        return
    removed: set[str] = set()
    with zone.unit_of_work() as db:
        for grant_id, names in narrowed.items():
            row = db.get(SessionGrant, grant_id)
            if row is None or row.status is not GrantStatus.ACTIVE:
                continue
            removed |= set(_granted(row)) - set(names)
            row.datasets = {"datasets": [d for d in row.datasets["datasets"]
                                         if d["name"] in names]}
        zone.record(db, actor, "session.refreshed", f"project:{project_name}",
                    reason=reason, grants=sorted(narrowed), removed=sorted(removed))


def refresh_dataset_sessions(zone: Zone, actor: Identity, dataset_name: str,
                             reason: str) -> list[str]:
    """Refresh every project the dataset is attached to or a live grant holds it in."""
    with zone.sessions() as db:
        names = set(db.scalars(select(Project.name).join(ProjectDataset).join(Dataset)
                               .where(Dataset.name == dataset_name)))
        names |= {g.project.name for g in db.scalars(select(SessionGrant).where(
            SessionGrant.status == GrantStatus.ACTIVE)) if dataset_name in _granted(g)}
    changed: list[str] = []
    for name in sorted(names):
        changed += refresh_project_sessions(zone, actor, name, reason)
    return changed


def refresh_stale_sessions(zone: Zone, actor: Identity) -> list[str]:
    """Catch up every project whose live grants hold more than the catalogue allows (a
    refresh that could not reach MinIO, a grant recorded while a change landed)."""
    with zone.sessions() as db:
        names = sorted({d.grant.project.name for d in _due(db, zone) if d.stale})
    changed: list[str] = []
    for name in names:
        changed += refresh_project_sessions(zone, actor, name, "catching up with the catalogue")
    return changed


def sweep(zone: Zone, actor: Identity = SYSTEM) -> None:
    """One round of the control plane's sweeper; each step runs even if another failed.
    Each is a read-only query when nothing is due."""
    from .destruction.service import destroy_due, end_projects
    from .exports.release import release_approved

    for step in (end_projects, expire_memberships, grants.end_expired_grants,
                 grants.reconcile_pending, release_approved, refresh_stale_sessions,
                 destroy_due):
        try:
            step(zone, actor)
        except StorageError as exc:
            log.warning("sweep: %s: %s", step.__name__, exc.message)
        except Exception:
            log.exception("sweep: %s failed", step.__name__)
