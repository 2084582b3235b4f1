"""Which tables changed: per-process generation counters that read caches compare.

A table's generation rises after every commit that wrote to it, so a result computed
under generation *g* (read before the query) is stale once the generation is not *g*.

- In this process, a session's commit bumps the tables its statements wrote, after the
  commit (``Session.after_commit``), so a caller reads its own writes.
- On PostgreSQL every commit that wrote also sends ``NOTIFY safezone_changes`` with the
  tables (delivered when it commits), and each process's listener bumps them: other
  workers, replicas and the CLI's writes reach every cache within milliseconds. While the
  listener is not connected the feed is *unreliable* and caches must not be used.
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
_WRITE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)
RECONNECT_SECONDS = 1.0


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
        self._listener: threading.Thread | None = None
        self._sqlite: sqlite3.Connection | None = None
        self._sqlite_version: int | None = None
        event.listen(engine, "after_cursor_execute", self._seen)
        event.listen(engine, "commit", self._committing)
        event.listen(engine, "rollback", self._rolled_back)

    # -- recording writes ------------------------------------------------------------
    @staticmethod
    def _seen(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        found = _WRITE.match(statement)
        if found:
            conn.info.setdefault(WRITTEN, set()).add(found.group(1).lower())

    def _committing(self, conn: Any) -> None:
        tables = conn.info.pop(WRITTEN, None)
        if not tables:
            return
        pending = getattr(self._committed, "tables", None)
        self._committed.tables = tables if pending is None else pending | tables
        if self.dialect == "postgresql":
            driver = conn.connection.driver_connection
            driver.execute("SELECT pg_notify(%s, %s)", (CHANNEL, ",".join(sorted(tables))))

    @staticmethod
    def _rolled_back(conn: Any) -> None:
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
                self._tables[table] += 1

    def bump_everything(self) -> None:
        with self._lock:
            self._everything += 1

    # -- reading generations ------------------------------------------------------------
    def generation(self, tables: Iterable[str]) -> tuple[int, ...] | None:
        """The tables' generation, or None when changes could be missed (no caching)."""
        if self.dialect == "postgresql":
            self._listen()
            if not self._listening:
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
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.bump_everything()  # whatever happened while not listening
                    self._listening = True
                    for note in conn.notifies():
                        self.bump(note.payload.split(","))
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
