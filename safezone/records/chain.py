"""The records' hash chain: append, verify, checkpoint into the audit trail, retention.

A record's hash is SHA-256 over the canonical JSON of its fields and the previous
record's hash (``audit.canonical_json``, as the audit trail). The head (``RecordsHead``)
is locked while appending. Its *base* is the last record deleted by retention (seq 0 and
the genesis hash before any): the first kept record links to it, and every sweep writes
the new base into the audit trail (``records.swept``). The head is also written there as
``records.checkpoint`` (periodically, at each sweep and each review), so the anchored audit
trail vouches for the records up to each checkpoint.
"""

from __future__ import annotations

import time as monotonic_time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from .. import audit
from ..db import take_write_turn
from ..errors import Conflict
from ..models import AccessRecord, AuditEvent, RecordsHead
from ..permissions import SYSTEM, Identity
from ..zone import Zone
from .policy import load_policy

GENESIS = audit.GENESIS
HASHED = ("seq", "ts", "account", "source", "action", "project", "dataset", "target",
          "outcome", "detail")


def stamp(moment: datetime) -> str:
    """A record's time: UTC, fixed width, so text order is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    """A record to be added: the account, the time, the source address, the data
    concerned (project, dataset, object or file) and the action."""

    account: str
    action: str
    at: datetime
    source: str = ""
    project: str = ""
    dataset: str = ""
    target: str = ""
    outcome: str = "ok"
    detail: dict[str, Any] = field(default_factory=dict)


def record_hash(fields: dict[str, Any]) -> str:
    return audit.link_hash(fields, HASHED)


def _fields(row: AccessRecord) -> dict[str, Any]:
    return {k: getattr(row, k) for k in (*HASHED, "prev_hash")}


_CHAIN = audit.ChainStatements.of(AccessRecord, RecordsHead)


def lock_head(db: Session) -> RecordsHead:
    """The head row, locked for this transaction (created on first use)."""
    head = db.execute(_CHAIN.lock_head).scalar()
    if head is None:
        head = RecordsHead(id=1, seq=0, hash=GENESIS, base_seq=0, base_hash=GENESIS)
        db.add(head)
        db.flush()
    return head


def append(db: Session, entries: Iterable[Entry]) -> list[AccessRecord]:
    """Add the next links inside the caller's transaction: plain statements, not the
    ORM's flush (a session's grant carries one while the audit head is locked). The
    records returned are copies, not in the session."""
    head = lock_head(db)
    rows: list[dict[str, Any]] = []
    seq, prev = head.seq, head.hash
    for entry in entries:
        fields = {"seq": seq + 1, "ts": stamp(entry.at), "account": entry.account[:200],
                  "source": entry.source[:64], "action": entry.action[:64],
                  "project": entry.project[:64], "dataset": entry.dataset[:400],
                  "target": entry.target[:1024], "outcome": entry.outcome[:16],
                  "detail": entry.detail, "prev_hash": prev}
        seq, prev = fields["seq"], record_hash(fields)
        rows.append({**fields, "hash": prev})
    if not rows:
        return []
    connection = db.connection()
    connection.execute(_CHAIN.insert_link, rows)
    connection.execute(_CHAIN.move_head, {"new_seq": seq, "new_hash": prev})
    set_committed_value(head, "seq", seq)  # as stored: not a change to flush
    set_committed_value(head, "hash", prev)
    return [AccessRecord(**row) for row in rows]


def add(zone: Zone, entries: list[Entry]) -> int:
    """Add records in a transaction of their own (no audit event: the next checkpoint
    covers them)."""
    if not entries:
        return 0
    with zone.sessions() as db, db.begin():
        take_write_turn(db)
        append(db, entries)
    return len(entries)


@dataclass(frozen=True)
class Finding:
    """One problem: ``kind`` is edited, deleted, base or rewritten."""

    kind: str
    seq: int
    detail: str


@dataclass(frozen=True)
class Verification:
    intact: bool
    records: int
    base_seq: int
    head_seq: int
    checkpoints: int
    findings: list[Finding]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "findings": [asdict(f) for f in self.findings]}


def _audit_data(db: Session, action: str) -> list[dict[str, Any]]:
    return [e.data for e in db.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.seq))]


def verify(db: Session) -> Verification:
    """Check every link, the base against the audit trail's last ``records.swept``, and
    every record against the audit trail's ``records.checkpoint`` events."""
    head = db.get(RecordsHead, 1) or RecordsHead(seq=0, hash=GENESIS, base_seq=0,
                                                 base_hash=GENESIS)
    found: dict[tuple[str, int], Finding] = {}

    def report(kind: str, seq: int, detail: str) -> None:
        found.setdefault((kind, seq), Finding(kind, seq, detail))

    swept = _audit_data(db, "records.swept")
    base_seq, base_hash = ((swept[-1]["through_seq"], swept[-1]["through_hash"]) if swept
                           else (0, GENESIS))
    if (head.base_seq, head.base_hash) != (base_seq, base_hash):
        report("base", head.base_seq, "the chain's base is not the one the audit trail "
               f"recorded at the last retention sweep (records up to {base_seq})")
    hashes: dict[int, str] = {}
    expected_seq, expected_prev, count = base_seq + 1, base_hash, 0
    for row in db.scalars(select(AccessRecord).order_by(AccessRecord.seq)):
        count += 1
        if record_hash(_fields(row)) != row.hash:
            report("edited", row.seq, f"record {row.seq} ({row.action}) does not match "
                   "its hash")
        if row.seq > expected_seq:
            report("deleted", expected_seq, f"records {expected_seq} to {row.seq - 1} are "
                   "missing from the chain")
        elif row.seq == expected_seq and row.prev_hash != expected_prev:
            report("edited", row.seq - 1, f"record {row.seq - 1} was rewritten: record "
                   f"{row.seq} links to a different hash")
        elif row.seq < expected_seq:
            report("edited", row.seq, f"record {row.seq} is before the chain's base "
                   "or out of order")
        hashes[row.seq] = row.hash
        expected_seq, expected_prev = row.seq + 1, row.hash
    if head.seq != expected_seq - 1 or head.hash != expected_prev:
        report("deleted", expected_seq, f"the head is record {head.seq} but the chain ends "
               f"at {expected_seq - 1}")
    checkpoints = _audit_data(db, "records.checkpoint")
    for point in checkpoints:
        seq, digest = point["seq"], point["hash"]
        if seq <= base_seq:
            continue  # deleted by retention since; the base vouches for them
        if seq not in hashes:
            report("deleted", seq, f"record {seq}, checkpointed in the audit trail, is "
                   "missing")
        elif hashes[seq] != digest and not any(k in {"edited", "deleted"} and s <= seq
                                               for k, s in found):
            report("rewritten", seq, f"records up to {seq} are not the checkpointed chain "
                   "(hashes recomputed)")
    findings = sorted(found.values(), key=lambda f: (f.seq, f.kind))
    return Verification(not findings, count, base_seq, head.seq, len(checkpoints), findings)


def checkpoint(zone: Zone, actor: Identity, reason: str) -> int:
    """Write the head into the audit trail (anchored with it); the head's seq."""
    with zone.unit_of_work() as db:
        head = lock_head(db)
        db.flush()
        zone.record(db, actor, "records.checkpoint", "records", seq=head.seq,
                    hash=head.hash, reason=reason)
        return head.seq


def sweep(zone: Zone, actor: Identity) -> dict[str, Any]:
    """Delete the records older than the retention period, oldest first and only as a
    prefix of the chain (a record kept keeps every later one); the last deleted record's
    hash becomes the base, recorded as ``records.swept`` with a checkpoint."""
    policy = load_policy()
    cutoff = stamp(zone.now() - timedelta(days=policy.retention_days))
    with zone.unit_of_work() as db:
        head = lock_head(db)
        db.flush()
        keep_from = db.scalar(select(func.min(AccessRecord.seq))
                              .where(AccessRecord.ts >= cutoff))
        through = keep_from - 1 if keep_from is not None else head.seq
        done = {"deleted": 0, "cutoff": cutoff, "retention_days": policy.retention_days,
                "base_seq": head.base_seq}
        if through <= head.base_seq:
            return done
        prev, seq = head.base_hash, head.base_seq
        for row in db.scalars(select(AccessRecord).where(AccessRecord.seq <= through)
                              .order_by(AccessRecord.seq)):
            if row.seq != seq + 1 or row.prev_hash != prev or \
                    record_hash(_fields(row)) != row.hash:
                raise Conflict(f"record {row.seq} does not verify, so nothing was deleted; "
                               "run `safezone records verify` (접속기록 검증 실패: 삭제 중단)")
            prev, seq = row.hash, row.seq
        if seq != through:
            raise Conflict(f"records up to {through} are missing, so nothing was deleted "
                           "(접속기록 누락: 삭제 중단)")
        deleted = db.execute(delete(AccessRecord).where(AccessRecord.seq <= through)).rowcount
        head.base_seq, head.base_hash = through, prev
        zone.record(db, actor, "records.swept", "records", through_seq=through,
                    through_hash=prev, deleted=deleted, cutoff=cutoff,
                    retention_days=policy.retention_days)
        zone.record(db, actor, "records.checkpoint", "records", seq=head.seq,
                    hash=head.hash, reason="sweep")
        return {**done, "deleted": deleted, "base_seq": through}


@dataclass
class _Upkeep:
    checked: float = float("-inf")
    checkpointed: int | None = None
    swept_on: str = ""


_UPKEEP: dict[int, _Upkeep] = {}


def upkeep(zone: Zone, actor: Identity = SYSTEM) -> None:
    """The sweeper's share: a checkpoint when the head moved (at most every
    ``checkpoint_every_seconds``) and the retention sweep once a day."""
    policy = load_policy()
    state = _UPKEEP.setdefault(id(zone), _Upkeep())
    moment = monotonic_time.monotonic()
    if moment - state.checked >= policy.checkpoint_every_seconds:
        state.checked = moment
        with zone.sessions() as db:
            head = db.get(RecordsHead, 1)
            if state.checkpointed is None:
                last = db.scalar(select(AuditEvent).where(
                    AuditEvent.action == "records.checkpoint").order_by(
                    AuditEvent.seq.desc()).limit(1))
                state.checkpointed = last.data["seq"] if last else 0
        if head is not None and head.seq != state.checkpointed:
            state.checkpointed = checkpoint(zone, actor, "periodic")
    today = zone.now().date().isoformat()
    if state.swept_on != today:
        sweep(zone, actor)
        state.swept_on = today
