"""How a caller stands to a project: the membership facts the permission table needs.

Kept apart from ``memberships`` (which changes memberships) so that projects, exports and
pages can ask without importing each other.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .clock import as_utc
from .models import Membership, MembershipStatus
from .permissions import Identity, Subject

S = MembershipStatus


def effective_status(membership: Membership, now: datetime) -> S:
    """An approval whose expiry has passed counts as expired, whatever the row says."""
    if membership.status is S.APPROVED and (
        membership.expires_at is None or as_utc(membership.expires_at) <= now
    ):
        return S.EXPIRED
    return membership.status


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


def standings(db: Session, now: datetime, project_ids: list[int], actor: Identity
              ) -> dict[int, Subject]:
    """:func:`standing` for many projects in one query (lists of projects)."""
    found: dict[int, Membership] = {}
    if actor.kind == "user" and project_ids:
        found = {m.project_id: m for m in db.scalars(select(Membership).where(
            Membership.user_name == actor.name, Membership.project_id.in_(project_ids)))}
    return {pid: _subject(found.get(pid), now) for pid in project_ids}


def _subject(membership: Membership | None, now: datetime, **facts: str | None) -> Subject:
    status = effective_status(membership, now) if membership else None
    return Subject(**facts, member=status is S.APPROVED,
                   involved=status is not None and (status is not S.REJECTED
                                                    or membership.ever_approved))
