"""Time source: the real clock in production, a movable one in tests."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# where the zone's people are: days of access end at midnight here, and pages show its time
LOCAL_TIME = ZoneInfo(os.environ.get("SAFEZONE_TIMEZONE", "Asia/Seoul"))


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


class Clock:
    """A clock the tests can move forward; ``offset`` is added to real time."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


def as_utc(value: datetime) -> datetime:
    """Treat naive datetimes (as SQLite returns them) as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def end_of_day(day: date) -> datetime:
    """The last second of ``day`` where the zone is (in UTC): access "until" a date lasts
    all of that day for the people using it."""
    return datetime.combine(day, time(23, 59, 59), LOCAL_TIME).astimezone(UTC)


def local(moment: datetime) -> datetime:
    """``moment`` on the zone's clock (naive values are UTC, as SQLite returns them)."""
    return as_utc(moment).astimezone(LOCAL_TIME)
