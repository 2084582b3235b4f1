"""Append-only, hash-chained audit trail and its verification.

Each event's hash is SHA-256 over canonical JSON (sorted keys, no spaces, UTF-8) of its
sequence number, time, actor, action, subject, data and the previous event's hash. After
every unit of work the head is anchored in the object-locked ``audit`` bucket, and
``verify`` checks the chain against every anchor ever written: a cut tail, or a prefix
rewritten with recomputed hashes (self-consistent, even when later actions followed), is
named at the first event no matching anchor vouches for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from itertools import groupby
from typing import Any, Protocol

from sqlalchemy import Insert, Select, Update, bindparam, insert, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from .errors import StorageError
from .models import AuditEvent, AuditHead, AuditVerification, ExportRequest, Project

GENESIS = "0" * 64


def canonical_json(value: Any) -> bytes:
    """The byte form that is hashed: sorted keys, compact separators, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


HASHED = ("seq", "ts", "actor", "action", "subject", "data")


def link_hash(fields: dict[str, Any], names: Iterable[str]) -> str:
    """A chain link's hash: SHA-256 of the canonical JSON of ``names`` and ``prev_hash``
    (the audit trail's events here, the access records in ``records.chain``)."""
    hashed = {k: fields[k] for k in names}
    hashed["prev_hash"] = fields["prev_hash"]
    return hashlib.sha256(canonical_json(hashed)).hexdigest()


def event_hash(fields: dict[str, Any]) -> str:
    return link_hash(fields, HASHED)


@dataclass(frozen=True)
class ChainStatements:
    """A hash chain's statements, built once (a statement built per call costs more CPU
    than running it): table statements, run on the session's connection, because the
    ORM's bulk paths cost more; the head's lock reads it afresh (``populate_existing``),
    never trusting a head the session loaded earlier. The audit trail and the access
    records (``records.chain``) each have one."""

    insert_link: Insert
    move_head: Update  # parameters new_seq, new_hash
    lock_head: Select

    @classmethod
    def of(cls, link: type, head: type) -> ChainStatements:
        table = head.__table__
        return cls(insert(link.__table__),
                   update(table).where(table.c.id == 1)
                   .values(seq=bindparam("new_seq"), hash=bindparam("new_hash")),
                   select(head).where(head.id == 1).with_for_update()
                   .execution_options(populate_existing=True))


_LOCKED = "safezone_audit_head"  # Session.info: the head row this transaction locked
_CHAIN = ChainStatements.of(AuditEvent, AuditHead)


def lock_head(db: Session) -> Anchor:
    """Take the chain's head row for this transaction (PostgreSQL: ``FOR UPDATE``), so
    units of work that read then write take turns; created on first use. Returns the head
    as it stands (``locked_head`` follows this transaction's appends)."""
    head = db.execute(_CHAIN.lock_head).scalar()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        db.add(head)
        db.flush()
    db.info[_LOCKED] = (db.get_transaction(), head)
    return Anchor(head.seq, head.hash)


def locked_head(db: Session, *, release: bool = False) -> Anchor | None:
    """The head this session's last ``lock_head`` took, with its appends since (read
    without a query, also after the commit); None when it locked none. ``release``: the
    transaction has ended, so later appends lock the row again."""
    locked = db.info.pop(_LOCKED, None) if release else db.info.get(_LOCKED)
    return Anchor(locked[1].seq, locked[1].hash) if locked is not None else None


def append(db: Session, *, now: datetime, actor: str, action: str, subject: str,
           data: dict[str, Any] | None = None) -> AuditEvent:
    """Add the next link inside the caller's transaction (locks the head row, unless
    ``lock_head`` did in this transaction). Written with two plain statements, not the
    ORM's flush: it runs while the head is locked, so every other writer waits on it. The
    event returned is a copy, not in the session."""
    locked = db.info.get(_LOCKED)
    if locked is None or locked[0] is None or locked[0] is not db.get_transaction():
        lock_head(db)  # none taken in this very transaction (a later one must lock again)
        locked = db.info[_LOCKED]
    head = locked[1]
    fields = {
        "seq": head.seq + 1,
        "ts": now.isoformat(),
        "actor": actor,
        "action": action,
        "subject": subject,
        "data": data or {},
        "prev_hash": head.hash,
    }
    digest = event_hash(fields)
    connection = db.connection()
    connection.execute(_CHAIN.insert_link, {**fields, "hash": digest})
    connection.execute(_CHAIN.move_head, {"new_seq": fields["seq"], "new_hash": digest})
    set_committed_value(head, "seq", fields["seq"])  # as stored: not a change to flush
    set_committed_value(head, "hash", digest)
    return AuditEvent(**fields, hash=digest)


@dataclass(frozen=True)
class Finding:
    """One problem in the chain: ``kind`` is edited, deleted, reordered or rewritten."""

    kind: str
    seq: int
    detail: str


@dataclass(frozen=True, order=True)
class Anchor:
    """A chain head as stored in the ``audit`` bucket."""

    seq: int
    hash: str


class AnchorStore(Protocol):
    def write_anchor(self, seq: int, digest: str) -> None: ...
    def list_anchors(self) -> list[Anchor]: ...


class AuditUnanchored(StorageError):
    """The audit head could not be anchored, so actions pause (see ``Zone.unit_of_work``).

    ``committed`` is True when the unit of work that raised it had already committed: its
    change stands and the next successful anchor covers it. False: nothing was done.
    """

    status_code = 503

    def __init__(self, *, committed: bool) -> None:
        saved = "your change was saved, but the " if committed else ""
        super().__init__(f"{saved}audit trail cannot be anchored; actions are paused until "
                         "storage is back (감사 기록 고정 불가)")
        self.committed = committed


def verify(db: Session, anchors: Iterable[Anchor] | Anchor | None = None) -> list[Finding]:
    """Check every link and every anchor; return the findings (empty means intact)."""
    if isinstance(anchors, Anchor):
        anchors = [anchors]
    return _check(_events(db), set(anchors or ()))


def run_verification(db: Session, anchors: Iterable[Anchor], *, now: datetime,
                     ran_by: str) -> AuditVerification:
    """Verify and store the result inside the caller's transaction (the admin page shows
    ``last_verification`` instead of re-verifying on every load)."""
    rows, stored = _events(db), set(anchors)
    found = _check(rows, stored)
    result = AuditVerification(ran_at=now, intact=not found, events=len(rows),
                               anchors_checked=len(stored), findings=findings_as_dicts(found),
                               ran_by=ran_by)
    db.add(result)
    db.flush()
    return result


def last_verification(db: Session) -> AuditVerification | None:
    """The newest stored verification, if any."""
    return db.scalar(select(AuditVerification)
                     .order_by(AuditVerification.ran_at.desc(), AuditVerification.id.desc())
                     .limit(1))


def _events(db: Session) -> list[AuditEvent]:
    return list(db.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars())


def _check(rows: list[AuditEvent], anchors: set[Anchor]) -> list[Finding]:
    findings: dict[tuple[str, int], Finding] = {}

    def report(kind: str, seq: int, detail: str) -> None:
        findings.setdefault((kind, seq), Finding(kind, seq, detail))

    by_seq = {row.seq: row for row in rows}
    for row in rows:
        fields = {c: getattr(row, c) for c in (*HASHED, "prev_hash")}
        if event_hash(fields) != row.hash:
            report("edited", row.seq, f"event {row.seq} ({row.action}) does not match its hash")

    # one finding per run of missing events (a forged far-away anchor costs one finding)
    highest = max(max(by_seq, default=0), max((a.seq for a in anchors), default=0))
    previous = 0
    for seq in [*sorted(by_seq), highest + 1]:
        if seq > previous + 1:
            first, last = previous + 1, seq - 1
            report("deleted", first, f"event {first} is missing from the chain" if first == last
                   else f"events {first} to {last} are missing from the chain")
        previous = seq

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

    # Anchors: an event that matches its anchor vouches for itself and everything before it
    # (the links carry the hashes). An anchor that differs means the events after the last
    # matching anchor were rewritten; reported unless a finding above already explains it.
    vouched, diverging = 0, False
    for seq, group in groupby(sorted(anchors), key=lambda a: a.seq):
        row = by_seq.get(seq)
        if row is None:
            continue  # reported as deleted above
        if all(a.hash == row.hash for a in group):
            vouched, diverging = seq, False
        elif not diverging:
            diverging, first = True, vouched + 1
            if not any(first <= f.seq <= seq for f in findings.values()):
                report("rewritten", first, f"events from {first} on are not the anchored "
                       f"chain: event {seq} differs from its anchor (hashes recomputed)")
    return sorted(findings.values(), key=lambda f: (f.seq, f.kind))


_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)


def head(db: Session) -> Anchor | None:
    row = db.execute(_HEAD).first()
    return Anchor(row.seq, row.hash) if row else None


def findings_as_dicts(findings: list[Finding]) -> list[dict[str, Any]]:
    return [asdict(f) for f in findings]


@dataclass(frozen=True)
class EventFilter:
    """Which events to show: exact actor, action prefix, project, and a time window
    (``since`` inclusive, ``until`` exclusive; ISO dates or times in UTC, as ``ts`` is)."""

    actor: str = ""
    action: str = ""
    project: str = ""
    since: str = ""
    until: str = ""


def find_events(db: Session, wanted: EventFilter, *, limit: int, offset: int = 0
                ) -> list[AuditEvent]:
    """The matching events, newest first: filtered and paged in SQL (``ORDER BY seq DESC``
    walks the unique index on ``seq``), so a long trail costs one bounded query. A
    project's events are those about it, its memberships and sessions, and its export
    requests."""
    query = select(AuditEvent)
    if wanted.actor:
        query = query.where(AuditEvent.actor == wanted.actor)
    if wanted.action:
        query = query.where(AuditEvent.action.startswith(wanted.action, autoescape=True))
    if wanted.project:
        exports = (select(literal("export:") + ExportRequest.id).join(Project)
                   .where(Project.name == wanted.project))
        query = query.where(or_(
            AuditEvent.subject == f"project:{wanted.project}",
            AuditEvent.subject.startswith(f"project:{wanted.project}/", autoescape=True),
            AuditEvent.subject.in_(exports)))
    if wanted.since:
        query = query.where(AuditEvent.ts >= wanted.since)
    if wanted.until:
        query = query.where(AuditEvent.ts < wanted.until)
    return list(db.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit).offset(offset)))
