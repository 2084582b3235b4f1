"""Verification of the audit trail as administrators see it: run now and keep the result,
or show the last stored result (pages never re-verify the whole chain on a load)."""

from __future__ import annotations

from typing import Any

from . import audit
from .permissions import Identity, require
from .zone import Zone


def _view(result: Any, head: audit.Anchor | None) -> dict[str, Any]:
    return {"intact": result.intact, "events": result.events,
            "anchors_checked": result.anchors_checked, "findings": result.findings,
            "ran_at": result.ran_at.isoformat(), "ran_by": result.ran_by,
            "head_seq": head.seq if head else 0}


def verify_now(zone: Zone, actor: Identity) -> dict[str, Any]:
    """Check every event against every anchor in the locked bucket; store the result."""
    anchors = zone.broker.list_anchors()
    with zone.unit_of_work() as db:
        result = audit.run_verification(db, anchors, now=zone.now(), ran_by=actor.label)
        zone.record(db, actor, "audit.verified", "audit", intact=result.intact,
                    events=result.events, anchors=result.anchors_checked)
        return _view(result, audit.head(db))


def last(zone: Zone) -> dict[str, Any] | None:
    """The newest stored verification (None when none ran yet)."""
    with zone.sessions() as db:
        result = audit.last_verification(db)
        return _view(result, audit.head(db)) if result else None


def trail(zone: Zone, actor: Identity, wanted: audit.EventFilter, page: int = 1,
          per_page: int = 100) -> tuple[list[dict[str, Any]], bool]:
    """One page of the audit trail, newest first, and whether older events follow."""
    require("audit.read", actor)
    page = max(page, 1)
    with zone.sessions() as db:
        rows = audit.find_events(db, wanted, limit=per_page + 1, offset=(page - 1) * per_page)
        shown = [{"seq": r.seq, "ts": r.ts, "actor": r.actor, "action": r.action,
                  "subject": r.subject, "data": r.data} for r in rows[:per_page]]
    return shown, len(rows) > per_page
