"""Memberships: the access state machine of a user in a project.

    (none) ─request→ requested ─approve→ approved ─revoke→ revoked
                          └─reject→ rejected      └─(expires_at passes)→ expired
    rejected / revoked / expired ─request→ requested;  approved ─approve→ approved (new expiry)

An administrator may also approve a user directly, without a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import grants
from .clock import as_utc
from .errors import InvalidInput, InvalidTransition
from .models import Membership, MembershipStatus, Project, ProjectStatus
from .naming import check_user_name
from .permissions import Identity, Subject, require
from .projects import get_project
from .standing import effective_status, standing
from .zone import Zone

S = MembershipStatus
NONE = None
# action -> (states it may start from, resulting state)
TRANSITIONS: dict[str, tuple[frozenset[S | None], S]] = {
    "request": (frozenset({NONE, S.REJECTED, S.REVOKED, S.EXPIRED}), S.REQUESTED),
    "approve": (frozenset({NONE, S.REQUESTED, S.APPROVED, S.EXPIRED, S.REVOKED, S.REJECTED}),
                S.APPROVED),
    "reject": (frozenset({S.REQUESTED}), S.REJECTED),
    "revoke": (frozenset({S.APPROVED}), S.REVOKED),
}
MAX_MEMBERSHIP = timedelta(days=366)


def _find(db: Session, project: Project, user: str) -> Membership | None:
    return db.scalar(select(Membership).where(Membership.project_id == project.id,
                                              Membership.user_name == user))


def _transition(zone: Zone, db: Session, actor: Identity, project: Project, user: str,
                action: str, **fields) -> Membership:
    allowed_from, target = TRANSITIONS[action]
    membership = _find(db, project, user)
    current = effective_status(membership, zone.now()) if membership else None
    if current not in allowed_from:
        shown = current.value if current else "not a member"
        raise InvalidTransition(f"cannot {action} {user}'s membership of {project.name}: "
                                f"it is {shown}")
    if membership is None:
        membership = Membership(project_id=project.id, user_name=user, status=target,
                                requested_at=zone.now())
        db.add(membership)
    membership.status = target
    membership.ever_approved = membership.ever_approved or target is S.APPROVED
    for name, value in fields.items():
        setattr(membership, name, value)
    db.flush()
    details = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in fields.items()}
    zone.record(db, actor, f"membership.{target.value}", f"project:{project.name}/user:{user}",
                **details)
    return membership


def request_membership(zone: Zone, actor: Identity, project_name: str, user: str,
                       justification: str = "") -> Membership:
    require("membership.request", actor, Subject(user=user))
    if len(justification) > 2000:
        raise InvalidInput("justification is longer than 2000 characters")
    with zone.unit_of_work() as db:
        project = get_project(db, project_name)
        if project.status is not ProjectStatus.ACTIVE:
            raise InvalidTransition(f"project {project_name} is archived")
        return _transition(zone, db, actor, project, user, "request",
                           justification=justification, requested_at=zone.now(),
                           decided_at=None, decided_by=None, expires_at=None)


def approve_membership(zone: Zone, actor: Identity, project_name: str, user: str,
                       expires_at: datetime) -> Membership:
    check_user_name(user)
    expires_at = as_utc(expires_at)
    now = zone.now()
    if expires_at <= now:
        raise InvalidInput("expires_at must be in the future (만료일은 미래여야 합니다)")
    if expires_at > now + MAX_MEMBERSHIP:
        raise InvalidInput("expires_at may be at most one year ahead")
    with zone.unit_of_work() as db:
        project = get_project(db, project_name)
        require("membership.approve", actor, standing(db, now, project.id, actor, user=user))
        if project.status is not ProjectStatus.ACTIVE:
            raise InvalidTransition(f"project {project_name} is archived")
        return _transition(zone, db, actor, project, user, "approve", expires_at=expires_at,
                           decided_at=now, decided_by=actor.name)


def reject_membership(zone: Zone, actor: Identity, project_name: str, user: str,
                      reason: str = "") -> Membership:
    with zone.unit_of_work() as db:
        project = get_project(db, project_name)
        require("membership.reject", actor, standing(db, zone.now(), project.id, actor,
                                                     user=user))
        return _transition(zone, db, actor, project, user, "reject", reason=reason,
                           decided_at=zone.now(), decided_by=actor.name)


def revoke_membership(zone: Zone, actor: Identity, project_name: str, user: str,
                      reason: str = "") -> Membership:
    """Revoke access: the membership first, then the user's sessions and servers."""
    with zone.unit_of_work() as db:
        project = get_project(db, project_name)
        require("membership.revoke", actor, standing(db, zone.now(), project.id, actor,
                                                     user=user))
        membership = _transition(zone, db, actor, project, user, "revoke", reason=reason,
                                 decided_at=zone.now(), decided_by=actor.name)
    grants.end_grants_where(zone, actor, project_name=project_name, user=user,
                            reason="membership revoked")
    return membership


def expire_memberships(zone: Zone, actor: Identity) -> int:
    """Mark passed approvals expired and end their sessions; returns how many. One
    read-only query when none has passed, so the sweeper runs it every few seconds."""
    passed = (Membership.status == S.APPROVED,
              Membership.expires_at.is_(None) | (Membership.expires_at <= zone.now()))
    with zone.sessions() as db:
        if db.scalar(select(Membership.id).where(*passed).limit(1)) is None:
            return 0
    with zone.unit_of_work() as db:
        due = list(db.scalars(select(Membership).where(*passed)))
        ended = [(m.project.name, m.user_name) for m in due]
        for membership in due:
            membership.status = S.EXPIRED
            zone.record(db, actor, "membership.expired",
                        f"project:{membership.project.name}/user:{membership.user_name}")
    for project_name, user in ended:
        grants.end_grants_where(zone, actor, project_name=project_name, user=user,
                                reason="membership expired")
    return len(ended)


@dataclass(frozen=True)
class MembershipView:
    project: str
    user: str
    status: str
    expires_at: datetime | None
    justification: str


def _view(m: Membership, now: datetime) -> MembershipView:
    return MembershipView(m.project.name, m.user_name, effective_status(m, now).value,
                          as_utc(m.expires_at) if m.expires_at else None, m.justification)


def list_members(zone: Zone, actor: Identity, project_name: str) -> list[MembershipView]:
    require("membership.list", actor)
    with zone.sessions() as db:
        project = get_project(db, project_name)
        rows = db.scalars(select(Membership).where(Membership.project_id == project.id)
                          .order_by(Membership.user_name))
        return [_view(m, zone.now()) for m in rows]


def memberships_of(zone: Zone, actor: Identity, user: str) -> list[MembershipView]:
    require("membership.mine", actor, Subject(user=user))
    with zone.sessions() as db:
        rows = db.scalars(select(Membership).where(Membership.user_name == user))
        return sorted((_view(m, zone.now()) for m in rows), key=lambda v: v.project)


def usable_projects(zone: Zone, actor: Identity, user: str) -> list[str]:
    """Projects ``user`` may start a notebook for right now: approved, unexpired, active."""
    require("membership.mine", actor, Subject(user=user))
    now = zone.now()
    with zone.sessions() as db:
        rows = db.scalars(select(Membership).join(Project).where(
            Membership.user_name == user, Membership.status == S.APPROVED,
            Project.status == ProjectStatus.ACTIVE))
        return sorted(m.project.name for m in rows if effective_status(m, now) is S.APPROVED)


def needing_attention(zone: Zone, actor: Identity, within: timedelta
                      ) -> tuple[list[MembershipView], list[MembershipView]]:
    """(requests waiting for a decision, approvals ending within ``within``) in active
    projects, for the administrator's home page."""
    require("membership.list", actor)
    now = zone.now()
    with zone.sessions() as db:
        rows = db.scalars(select(Membership).join(Project).where(
            Project.status == ProjectStatus.ACTIVE,
            Membership.status.in_([S.REQUESTED, S.APPROVED])))
        views = [_view(m, now) for m in rows]
    waiting = sorted((v for v in views if v.status == S.REQUESTED.value),
                     key=lambda v: (v.project, v.user))
    ending = sorted((v for v in views if v.status == S.APPROVED.value and v.expires_at
                     and v.expires_at <= now + within), key=lambda v: v.expires_at)
    return waiting, ending


@dataclass(frozen=True)
class MemberDetail:
    """A member of one project as the administrator's project page shows them."""

    user: str
    status: str
    expires_at: datetime | None
    justification: str
    reason: str
    requested_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None


def member_details(zone: Zone, actor: Identity, project_name: str) -> list[MemberDetail]:
    """Everyone who asked to join or was a member of the project, with the dates and the
    reason of the last decision (``membership.list``)."""
    require("membership.list", actor)
    now = zone.now()

    def utc(value: datetime | None) -> datetime | None:
        return as_utc(value) if value else None

    with zone.sessions() as db:
        project = get_project(db, project_name)
        rows = db.scalars(select(Membership).where(Membership.project_id == project.id)
                          .order_by(Membership.user_name))
        return [MemberDetail(m.user_name, effective_status(m, now).value, utc(m.expires_at),
                             m.justification, m.reason, utc(m.requested_at),
                             utc(m.decided_at), m.decided_by) for m in rows]
