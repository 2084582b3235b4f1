"""Append-only, hash-chained audit trail and its verification.

Each event's hash is SHA-256 over canonical JSON (sorted keys, no spaces, UTF-8) of its
sequence number, time, actor, action, subject, data and the previous event's hash. The
newest head is anchored in the object-locked ``audit`` bucket, so cutting off the tail
of the chain is detected too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AuditEvent, AuditHead

GENESIS = "0" * 64


def canonical_json(value: Any) -> bytes:
    """The byte form that is hashed: sorted keys, compact separators, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(fields: dict[str, Any]) -> str:
    hashed = {k: fields[k] for k in ("seq", "ts", "actor", "action", "subject", "data")}
    hashed["prev_hash"] = fields["prev_hash"]
    return hashlib.sha256(canonical_json(hashed)).hexdigest()


def append(db: Session, *, now: datetime, actor: str, action: str, subject: str,
           data: dict[str, Any] | None = None) -> AuditEvent:
    """Add the next link inside the caller's transaction (locks the head row)."""
    head = db.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        db.add(head)
    fields = {
        "seq": head.seq + 1,
        "ts": now.isoformat(),
        "actor": actor,
        "action": action,
        "subject": subject,
        "data": data or {},
        "prev_hash": head.hash,
    }
    event = AuditEvent(**fields, hash=event_hash(fields))
    db.add(event)
    head.seq, head.hash = event.seq, event.hash
    db.flush()
    return event


@dataclass(frozen=True)
class Finding:
    """One problem in the chain: ``kind`` is edited, deleted or reordered."""

    kind: str
    seq: int
    detail: str


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str


class AnchorStore(Protocol):
    def write_anchor(self, seq: int, digest: str) -> None: ...
    def latest_anchor(self) -> Anchor | None: ...


def verify(db: Session, anchor: Anchor | None = None) -> list[Finding]:
    """Check every link; return the findings (empty means intact)."""
    rows = list(db.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars())
    findings: dict[tuple[str, int], Finding] = {}

    def report(kind: str, seq: int, detail: str) -> None:
        findings.setdefault((kind, seq), Finding(kind, seq, detail))

    by_seq = {row.seq: row for row in rows}
    for row in rows:
        fields = {c: getattr(row, c) for c in ("seq", "ts", "actor", "action", "subject",
                                               "data", "prev_hash")}
        if event_hash(fields) != row.hash:
            report("edited", row.seq, f"event {row.seq} ({row.action}) does not match its hash")

    highest = max(by_seq, default=0)
    if anchor and anchor.seq > highest:
        highest = anchor.seq
    for seq in range(1, highest + 1):
        if seq not in by_seq:
            report("deleted", seq, f"event {seq} is missing from the chain")

    for seq, row in by_seq.items():
        before = by_seq.get(seq - 1)
        expected_prev = GENESIS if seq == 1 else (before.hash if before else None)
        if (expected_prev is not None and row.prev_hash != expected_prev
                and ("edited", seq - 1) not in findings):
            report("edited", seq - 1, f"event {seq - 1} was rewritten: event {seq} "
                       "links to a different hash")

    highest_seen = 0
    for row in rows:
        if row.seq < highest_seen:
            report("reordered", row.seq, f"event {row.seq} is stored after event {highest_seen}")
        highest_seen = max(highest_seen, row.seq)

    if anchor and anchor.seq in by_seq and by_seq[anchor.seq].hash != anchor.hash:
        report("edited", anchor.seq, f"event {anchor.seq} differs from the anchored hash")
    return sorted(findings.values(), key=lambda f: (f.seq, f.kind))


def head(db: Session) -> Anchor | None:
    row = db.get(AuditHead, 1)
    return Anchor(row.seq, row.hash) if row else None


def findings_as_dicts(findings: list[Finding]) -> list[dict[str, Any]]:
    return [asdict(f) for f in findings]
