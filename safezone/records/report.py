"""The monthly review (월간 점검) of the access records: what happened in a month on the
zone's clock, and the unusual patterns the policy names — data reads outside working
hours, a user's reads on one day far above their median day, refused accesses, data reads
whose source address came from a header the client sent (not verified). Reading the
report writes nothing; an administrator marks a month reviewed through a given record
(``mark_reviewed``), which is audited and recorded."""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..clock import LOCAL_TIME, local
from ..errors import InvalidInput
from ..models import AccessRecord, RecordsHead
from ..permissions import Identity, require
from ..zone import Zone
from . import chain
from .policy import Review, load_policy

MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")  # fullmatch
READ = "object.read"
COLUMNS = ("seq", "time_utc", "time_local", "account", "source", "action", "project",
           "dataset", "target", "outcome", "flags")


@dataclass(frozen=True)
class Month:
    name: str
    start: datetime  # UTC bounds of the month on the zone's clock
    end: datetime


def month_of(text: str) -> Month:
    """``YYYY-MM`` on the zone's clock; anything else is refused with one line."""
    found = MONTH.fullmatch(text or "")
    if not found or not 1970 <= int(found.group(1)) <= 9998:
        raise InvalidInput("month must be YYYY-MM, e.g. 2026-11 (월 형식 오류)")
    year, number = int(found.group(1)), int(found.group(2))
    start = datetime(year, number, 1, tzinfo=LOCAL_TIME)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=LOCAL_TIME)
    return Month(f"{year:04d}-{number:02d}", start, end)


def _rows(db: Session, since: datetime, until: datetime, through: int,
          action: str | None = None) -> list[AccessRecord]:
    query = select(AccessRecord).where(AccessRecord.ts >= chain.stamp(since),
                                       AccessRecord.ts < chain.stamp(until),
                                       AccessRecord.seq <= through)
    if action:
        query = query.where(AccessRecord.action == action, AccessRecord.outcome == "ok")
    return list(db.scalars(query.order_by(AccessRecord.seq)))


def off_hours(moment: datetime, review: Review) -> bool:
    seen = local(moment)
    return seen.weekday() not in review.working_days or not (
        review.start <= seen.time() < review.end)


def _outliers(db: Session, month: Month, review: Review, through: int
              ) -> list[dict[str, Any]]:
    """Days of the month on which a user read far more than on their median day."""
    daily: dict[str, Counter[date]] = defaultdict(Counter)
    volume: dict[tuple[str, date], int] = Counter()
    for row in _rows(db, month.end - timedelta(days=review.baseline_days), month.end,
                     through, READ):
        day = local(chain.parse_stamp(row.ts)).date()
        daily[row.account][day] += 1
        volume[row.account, day] += int((row.detail or {}).get("bytes") or 0)
    flagged = []
    for account, days in sorted(daily.items()):
        median = statistics.median(days.values())
        for day, reads in sorted(days.items()):
            inside = month.start.date() <= day < month.end.date()
            if inside and reads >= review.outlier_min_reads and \
                    reads > review.outlier_factor * median:
                flagged.append({"account": account, "day": day.isoformat(), "reads": reads,
                                "median_reads": median, "bytes": volume[account, day]})
    return flagged


def unverified_source(row: AccessRecord) -> bool:
    """A read whose source address MinIO may have taken from a forwarding header."""
    return bool((row.detail or {}).get("source_unverified")) or \
        row.source.startswith("unverified:")


def _line(row: AccessRecord) -> dict[str, Any]:
    at = chain.parse_stamp(row.ts)
    return {"seq": row.seq, "time_utc": row.ts, "time_local": local(at).isoformat(),
            "account": row.account, "source": row.source, "action": row.action,
            "project": row.project, "dataset": row.dataset, "target": row.target,
            "outcome": row.outcome}


def newest_seq(db: Session) -> int:
    return db.scalar(select(RecordsHead.seq).where(RecordsHead.id == 1)) or 0


def build(db: Session, month: Month, through: int | None = None) -> dict[str, Any]:
    """The month's report as of record ``through`` (default: the newest): totals, unusual
    patterns and every record with its flags. The same ``through`` gives the same report
    while retention has not removed its records."""
    through = newest_seq(db) if through is None else through
    review = load_policy().review
    rows = _rows(db, month.start, month.end, through)
    outliers = _outliers(db, month, review, through)
    flagged_days = {(o["account"], o["day"]) for o in outliers}
    lines, late, refused, unverified = [], [], [], []
    for row in rows:
        line, flags = _line(row), []
        at = chain.parse_stamp(row.ts)
        if row.action == READ and off_hours(at, review):
            flags.append("off_hours")
            late.append(line)
        if row.action == READ and (row.account, local(at).date().isoformat()) in flagged_days:
            flags.append("outlier")
        if row.outcome != "ok":
            flags.append("refused")
            refused.append(line)
        if row.action == READ and unverified_source(row):
            flags.append("unverified_source")
            unverified.append(line)
        lines.append({**line, "flags": flags})
    reads = [r for r in rows if r.action == READ and r.outcome == "ok"]
    return {
        "month": month.name, "from": month.start.isoformat(), "until": month.end.isoformat(),
        "through": through,
        "totals": {"records": len(rows), "accounts": len({r.account for r in rows}),
                   "logins": sum(r.action == "login" for r in rows), "reads": len(reads),
                   "bytes_read": sum(int((r.detail or {}).get("bytes") or 0) for r in reads)},
        "by_action": dict(sorted(Counter(r.action for r in rows).items())),
        "by_account": dict(sorted(Counter(r.account for r in rows).items())),
        "policy": {"working_hours": f"{review.start:%H:%M}-{review.end:%H:%M}",
                   "working_days": sorted(review.working_days),
                   "outlier_factor": review.outlier_factor,
                   "outlier_min_reads": review.outlier_min_reads},
        "unusual": {"off_hours": late, "outliers": outliers, "refused": refused,
                    "unverified_source": unverified},
        "records": lines,
    }


def read(zone: Zone, actor: Identity, month_text: str) -> dict[str, Any]:
    """The month's report for an administrator, as of the newest record. Writes nothing."""
    require("records.report", actor)
    month = month_of(month_text)
    with zone.sessions() as db:
        return build(db, month)


def mark_reviewed(zone: Zone, actor: Identity, month_text: str, through: int
                  ) -> dict[str, Any]:
    """Record that ``actor`` reviewed the month's records through record ``through`` (the
    report they read said which): audited, carried into the records, checkpointed. The
    summary is rebuilt outside the writers' turn: records up to ``through`` do not change
    (only the retention sweep removes them, oldest first)."""
    require("records.review", actor)
    month = month_of(month_text)
    with zone.sessions() as db:
        head = db.get(RecordsHead, 1)
        newest, base = (head.seq, head.base_seq) if head else (0, 0)
        if not base < through <= newest:
            raise InvalidInput(f"through must be a record number from {base + 1} to "
                               f"{newest}, the newest (검토 범위 오류)")
        report = build(db, month, through)
    summary = {"month": month.name, "through": through,
               "records": report["totals"]["records"],
               "unusual": {k: len(v) for k, v in report["unusual"].items()}}
    with zone.unit_of_work() as db:
        zone.record(db, actor, "records.reviewed", f"records:{month.name}", **summary)
    chain.checkpoint(zone, actor, "review")
    return {**summary, "by": actor.label}


def reviews(zone: Zone, actor: Identity, month_text: str) -> list[dict[str, Any]]:
    """Who marked the month reviewed, when and through which record (oldest first)."""
    require("records.report", actor)
    month = month_of(month_text)
    with zone.sessions() as db:
        rows = db.scalars(select(AccessRecord).where(
            AccessRecord.action == "records.reviewed",
            AccessRecord.target == f"records:{month.name}").order_by(AccessRecord.seq))
        return [{"by": row.account, "at": local(chain.parse_stamp(row.ts)).isoformat(),
                 "through": (row.detail or {}).get("through")} for row in rows]


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text (no formula from an object key)."""
    text = ";".join(value) if isinstance(value, list) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def as_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for line in report["records"]:
        writer.writerow([_cell(line[c]) for c in COLUMNS])
    return out.getvalue()


def summary(report: dict[str, Any]) -> str:
    """A readable summary, Korean and English."""
    t, u = report["totals"], report["unusual"]
    lines = [
        f"접속기록 월간 점검 / Monthly review of access records: {report['month']}",
        f"기록 {t['records']}건, 계정 {t['accounts']}개, 로그인 {t['logins']}건, 데이터 읽기 "
        f"{t['reads']}건 / {t['records']} records, {t['accounts']} accounts, "
        f"{t['logins']} logins, {t['reads']} data reads ({t['bytes_read']} bytes)",
        f"근무시간 외 읽기 / reads outside working hours: {len(u['off_hours'])}",
        f"평소보다 많은 읽기 / days far above a user's median: {len(u['outliers'])}",
        f"거부된 접근 / refused accesses: {len(u['refused'])}",
        f"출처 주소 미확인 읽기 / reads from an unverified source address: "
        f"{len(u['unverified_source'])}",
    ]
    for o in u["outliers"]:
        lines.append(f"  {o['account']} {o['day']}: {o['reads']} (median {o['median_reads']})")
    for line in u["off_hours"][:20] + u["unverified_source"][:20]:
        lines.append(f"  {line['time_local']} {line['account']} {line['dataset']} "
                     f"{line['target']} {line['source']}")
    return "\n".join(lines)
