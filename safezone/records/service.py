"""What administrators do with the records (each applies the permission table)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..errors import InvalidInput
from ..models import AccessRecord
from ..permissions import Identity, require
from ..zone import Zone
from . import chain

MAX_LIST = 1000


def _bound(text: str, what: str) -> str:
    """A day or time (ISO, UTC) as a record time bound."""
    from datetime import datetime

    try:
        return chain.stamp(datetime.fromisoformat(text))
    except ValueError:
        raise InvalidInput(f"{what} must be an ISO date or time (날짜 형식 오류)") from None


def list_records(zone: Zone, actor: Identity, *, account: str = "", action: str = "",
                 since: str = "", until: str = "", limit: int = 100) -> list[dict[str, Any]]:
    """Records newest first, filtered by account, action (prefix) and time window."""
    require("records.read", actor)
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIST}")
    query = select(AccessRecord)
    if account:
        query = query.where(AccessRecord.account == account)
    if action:
        query = query.where(AccessRecord.action.startswith(action, autoescape=True))
    if since:
        query = query.where(AccessRecord.ts >= _bound(since, "since"))
    if until:
        query = query.where(AccessRecord.ts < _bound(until, "until"))
    with zone.sessions() as db:
        rows = db.scalars(query.order_by(AccessRecord.seq.desc()).limit(limit))
        return [{"seq": r.seq, "time": r.ts, "account": r.account, "source": r.source,
                 "action": r.action, "project": r.project, "dataset": r.dataset,
                 "target": r.target, "outcome": r.outcome, "detail": r.detail}
                for r in rows]


def verify_now(zone: Zone, actor: Identity) -> dict[str, Any]:
    require("records.verify", actor)
    with zone.sessions() as db:
        return chain.verify(db).as_dict()


def sweep_now(zone: Zone, actor: Identity) -> dict[str, Any]:
    """Apply the retention period of the policy now (nobody chooses what goes)."""
    require("records.sweep", actor)
    return chain.sweep(zone, actor)
