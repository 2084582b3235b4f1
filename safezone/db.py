"""Database engine, sessions and migrations (Alembic)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


# Connections kept open per process: a request handler holds one at a time, and the
# server runs up to 40 handlers at once (anyio's thread limit); opening a connection per
# request (an overflow connection is closed on return) costs more than the query.
BEGIN = "safezone_sqlite_begin"  # execution option: DEFERRED (reads) or IMMEDIATE (writes)
POOL_SIZE = int(os.environ.get("SAFEZONE_DB_POOL_SIZE", "20"))
POOL_OVERFLOW = int(os.environ.get("SAFEZONE_DB_POOL_OVERFLOW", "20"))


def make_engine(url: str) -> Engine:
    """An engine with a pool; SQLite gets foreign keys on and a busy timeout for
    concurrent writers."""
    pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, "pool_timeout": 30}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record) -> None:  # pragma: no cover - driver hook
            conn.isolation_level = None  # the driver's own BEGIN comes too late; ours below
            cur = conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:  # pragma: no cover - driver hook
            conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get(BEGIN, 'DEFERRED')}")

        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


UNAVAILABLE = ("the database is not answering (restarting or unreachable); try again in a "
               "moment (데이터베이스 응답 없음, 잠시 후 다시 시도하세요)")


def unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database server is away, restarting or out of
    connections (a 503 and a retry), not that a statement was wrong (a bug, a 500).
    The pool has already dropped the dead connection (``pool_pre_ping`` and SQLAlchemy's
    invalidation on disconnect), so the next call gets a fresh one."""
    if isinstance(exc, PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError)))


def take_write_turn(db: Session) -> None:
    """Make the transaction just begun a writer's from its first statement: on SQLite,
    ``BEGIN IMMEDIATE`` (it waits for the write lock, so what it reads stays true until it
    commits; the driver's own deferred BEGIN let reads run before the lock and go stale).
    PostgreSQL writers take turns on the audit head's row lock (``audit.lock_head``)."""
    if db.get_bind().dialect.name == "sqlite":
        db.connection(execution_options={BEGIN: "IMMEDIATE"})


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the schema to the newest migration."""
    command.upgrade(alembic_config(url), "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)

