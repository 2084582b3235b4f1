"""How a caller stands to a project: the membership facts the permission table needs.

Kept apart from ``memberships`` (which changes memberships) so that projects, exports and
pages can ask without importing each other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .clock import as_utc
from .errors import PermissionDenied
from .models import Membership, MembershipStatus
from .permissions import Identity, Subject
from .read_cache import ReadModel

S = MembershipStatus


def effective_status(membership: Membership, now: datetime) -> S:
    """An approval whose expiry has passed counts as expired, whatever the row says."""
    return status_at(membership.status, membership.expires_at, now)


def status_at(status: S, expires_at: datetime | None, now: datetime) -> S:
    """``effective_status`` of a membership's two columns (read without the row)."""
    if status is S.APPROVED and (expires_at is None or as_utc(expires_at) <= now):
        return S.EXPIRED
    return status


def refuse_unless_usable(status: S | None, project_name: str, user: str) -> None:
    """A session needs an approved, unexpired membership (``status`` is the effective
    one, None for no membership at all)."""
    if status is not S.APPROVED:
        shown = status.value if status else "not a member"
        raise PermissionDenied(
            f"{user} has no approved membership of {project_name} ({shown}); ask an "
            "administrator for access (프로젝트 승인이 필요합니다)"
        )


def standing(db: Session, now: datetime, project_id: int, actor: Identity, *,
             user: str | None = None, requester: str | None = None,
             state: str | None = None) -> Subject:
    """The subject of an action on project ``project_id``, as ``actor`` stands to it.

    ``member``: an approved, unexpired membership. ``involved``: any membership record that
    was not rejected (asked, approved, expired, revoked), or that was ever approved — a
    conflict of interest a later rejection does not erase.
    """
    membership = None
    if actor.kind == "user":
        membership = db.scalar(select(Membership).where(Membership.project_id == project_id,
                                                        Membership.user_name == actor.name))
    return _subject(membership, now, user=user, requester=requester, state=state)


def _load_memberships(zone: Any, user: str) -> tuple[dict[int, Membership], None]:
    with zone.sessions() as db:
        return {m.project_id: m for m in db.scalars(select(Membership).where(
            Membership.user_name == user))}, None


# a user's memberships by project id, kept until the memberships table changes (their
# expiry is judged when they are read, so the cached rows stay true)
MEMBERSHIPS = ReadModel("memberships", ("memberships",), _load_memberships)


def standings(zone: Any, now: datetime, project_ids: list[int], actor: Identity
              ) -> dict[int, Subject]:
    """:func:`standing` for many projects, from the cached memberships (lists)."""
    found = zone.reads.read(MEMBERSHIPS, zone, actor.name) if actor.kind == "user" else {}
    return {pid: _subject(found.get(pid), now) for pid in project_ids}


def _subject(membership: Membership | None, now: datetime, **facts: str | None) -> Subject:
    status = effective_status(membership, now) if membership else None
    return Subject(**facts, member=status is S.APPROVED,
                   involved=status is not None and (status is not S.REJECTED
                                                    or membership.ever_approved))
