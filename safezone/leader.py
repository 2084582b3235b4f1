"""Which control-plane process runs the zone's sweeper: exactly one per database.

Several worker processes and replicas serve the API against one PostgreSQL database; the
sweeper (expiries, catalogue follow-up, reconciliation) runs in the one that holds a
session-level advisory lock on its own connection. When that process dies, PostgreSQL
drops the lock with the connection and another process takes over within one round.
SQLite zones run one process (``safezone.api.main`` refuses more), which always leads.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)
# pg_try_advisory_lock's key: "safezone sweeper" as a 63-bit number (any fixed value works,
# it only has to differ from other applications' keys on the same server)
LOCK_KEY = 0x5AFE_2011_5EE9_E4


class Leadership:
    """``held()``: True while this process holds the zone's sweeper lock (tries to take it
    when it does not)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    @property
    def shared(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def held(self) -> bool:
        if not self.shared:
            return True
        with self._lock:
            try:
                if self._conn is not None:
                    self._conn.execute(text("SELECT 1"))  # still connected, so still held
                    return True
                conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                if conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}):
                    self._conn = conn
                    log.info("this process now runs the sweeper")
                    return True
                conn.close()
                return False
            except Exception as exc:  # the database went away: the lock went with it
                log.warning("sweeper lock lost: %s", str(exc)[:200])
                self._drop()
                return False

    def release(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:  # never back into the pool: the lock belongs to this database session
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # closing a broken connection
                pass
            self._conn = None
