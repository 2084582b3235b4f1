"""Verification of the audit trail as administrators see it: run now and keep the result,
or show the last stored result (pages never re-verify the whole chain on a load)."""

from __future__ import annotations

from typing import Any

from . import audit
from .permissions import Identity
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
