"""Which tables changed: per-process generation counters that read caches compare.

A table's generation rises after every commit that wrote to it, so a result computed
under generation *g* (read before the query) is stale once the generation is not *g*.

- In this process, a session's commit bumps the tables its statements wrote, after the
  commit (``Session.after_commit``), so a caller reads its own writes.
- On PostgreSQL every commit that wrote also sends ``NOTIFY safezone_changes`` with the
  tables (delivered when it commits), and each process's listener bumps them: other
  workers, replicas and the CLI's writes reach every cache within milliseconds. While the
  listener is not connected, or has not proved its connection alive (a query every
  second) for three seconds, the feed is *unreliable* and caches are not used.
- A statement that may write but names no table plainly (a ``MERGE``, DDL, a writing
  CTE) moves every table on; so does a migration (:func:`announce_everything`).
- SQLite zones run one control-plane process; other processes' commits (the CLI) are
  seen through ``PRAGMA data_version``, which bumps every table.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "safezone_changes"
WRITTEN = "safezone_tables_written"  # key in a DBAPI connection's info
EVERYTHING = "*"  # a write whose tables are not known: every table moves on
RECONNECT_SECONDS = 1.0
HEARTBEAT_SECONDS = 1.0  # the listener proves its connection alive this often
STALE_SECONDS = 3.0  # ... and past this without proof, nothing is cached
# TCP keepalives, so a listener whose network went silently away reconnects
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
              "keepalives_count": 3, "tcp_user_timeout": 10_000}

_COMMENTS = re.compile(r"^\s*(?:(?:/\*.*?\*/|--[^\n]*(?:\n|$))\s*)*", re.DOTALL)
_DML = re.compile(r"(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(?:ONLY\s+)?"
                  r"(?:\"?\w+\"?\.)?\"?(\w+)", re.IGNORECASE)
_READS = ("SELECT", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "SET", "SHOW",
          "PRAGMA", "LISTEN", "EXPLAIN", "VALUES")
_WRITES = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE|TRUNCATE)\b", re.IGNORECASE)


def written_table(statement: str) -> str | None:
    """The table ``statement`` writes, :data:`EVERYTHING` when it may write but names no
    table plainly (``MERGE``, DDL, a CTE that writes), or None for a read."""
    body = _COMMENTS.sub("", statement, count=1)
    head = body[:10].upper()
    if head.startswith(_READS):
        return None
    if head.startswith("WITH"):
        return EVERYTHING if _WRITES.search(body) else None
    found = _DML.match(body)
    return found.group(1).lower() if found else EVERYTHING


class ChangeFeed:
    """Generations of the tables of one database, as this process knows them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._tables: defaultdict[str, int] = defaultdict(int)
        self._everything = 0  # bumped when changes may have been missed
        self._lock = threading.Lock()
        self._committed = threading.local()  # tables of a commit in flight in this thread
        self._listening = False
        self._alive = 0.0  # when the listener last proved its connection (monotonic)
        self._listener: threading.Thread | None = None
        self._sqlite: sqlite3.Connection | None = None
        self._sqlite_version: int | None = None
        event.listen(engine, "after_cursor_execute", self._seen)
        event.listen(engine, "commit", self._committing)
        event.listen(engine, "rollback", self._rolled_back)

    # -- recording writes ------------------------------------------------------------
    @staticmethod
    def _seen(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        table = written_table(statement)
        if table:
            conn.info.setdefault(WRITTEN, set()).add(table)

    def _committing(self, conn: Any) -> None:
        tables = conn.info.pop(WRITTEN, None)
        if not tables:
            return
        pending = getattr(self._committed, "tables", None)
        self._committed.tables = tables if pending is None else pending | tables
        if self.dialect == "postgresql":  # through SQLAlchemy: a lost connection is its
            # error (a 503, the connection invalidated), not the driver's raw one (a 500)
            conn.exec_driver_sql("SELECT pg_notify(%(channel)s, %(tables)s)",
                                 {"channel": CHANNEL, "tables": ",".join(sorted(tables))})

    @staticmethod
    def _rolled_back(conn: Any) -> None:
        # a connection the server dropped is invalid: reading its info would raise (and
        # turn the outage's 503 into a 500); its notes go with it
        if not conn.invalidated:
            conn.info.pop(WRITTEN, None)

    def committed(self) -> None:
        """A commit in this thread finished: its tables move on (``Session.after_commit``)."""
        tables = getattr(self._committed, "tables", None)
        if tables:
            self._committed.tables = None
            self.bump(tables)

    def bump(self, tables: Iterable[str]) -> None:
        with self._lock:
            for table in tables:
                if table == EVERYTHING:
                    self._everything += 1
                else:
                    self._tables[table] += 1

    def bump_everything(self) -> None:
        self.bump((EVERYTHING,))

    # -- reading generations ------------------------------------------------------------
    def generation(self, tables: Iterable[str]) -> tuple[int, ...] | None:
        """The tables' generation, or None when changes could be missed (no caching)."""
        if self.dialect == "postgresql":
            self._listen()
            if not self._listening or time.monotonic() - self._alive > STALE_SECONDS:
                return None
        elif self.dialect == "sqlite":
            self._poll_sqlite()
        with self._lock:
            return (self._everything, *(self._tables[t] for t in tables))

    def _poll_sqlite(self) -> None:
        with self._lock:
            if self._sqlite is None:
                database = self.engine.url.database or ""
                self._sqlite = sqlite3.connect(database, check_same_thread=False)
            version = self._sqlite.execute("PRAGMA data_version").fetchone()[0]
            if version != self._sqlite_version:
                self._sqlite_version = version
                self._everything += 1

    # -- PostgreSQL: the listener -----------------------------------------------------
    def _listen(self) -> None:
        with self._lock:
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen_forever, daemon=True,
                                                  name="safezone-change-feed")
                self._listener.start()

    def _listen_forever(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        while True:
            try:
                with psycopg.connect(url, autocommit=True, **KEEPALIVES) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.bump_everything()  # whatever happened while not listening
                    self._alive, self._listening = time.monotonic(), True
                    while True:  # notifications that come meanwhile wait in a backlog
                        for note in conn.notifies(timeout=HEARTBEAT_SECONDS):
                            self.bump(note.payload.split(","))
                        conn.execute("SELECT 1")  # the server still hears us
                        self._alive = time.monotonic()
            except Exception as exc:  # the server restarted, the network went away
                log.warning("change feed: not listening (%s); reads go uncached",
                            str(exc)[:200])
            self._listening = False
            self.bump_everything()
            time.sleep(RECONNECT_SECONDS)


def follow(engine: Engine, sessions: Any) -> ChangeFeed:
    """A feed for ``engine``, told by ``sessions`` (a sessionmaker) when commits end."""
    feed = ChangeFeed(engine)

    def after_commit(_session: Session) -> None:
        feed.committed()

    event.listen(sessions, "after_commit", after_commit)
    return feed


def announce_everything(engine: Engine) -> None:
    """Tell every process's feed that any table may have changed (after a migration, which
    runs on an engine of its own)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SELECT pg_notify('{CHANNEL}', '{EVERYTHING}')")
