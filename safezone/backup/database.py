"""The control-plane database in a snapshot: a consistent copy while the zone runs, and
its restore into an empty database.

SQLite: the sqlite3 online backup API through the engine's raw connection (one step, so
the copy is one consistent state even while writers commit). PostgreSQL: a REPEATABLE
READ transaction exports its snapshot, ``pg_dump --format=custom --snapshot`` dumps
exactly that state and the caller's reads see the same one. Restore uses the backup API
or ``pg_restore --single-transaction``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, MetaData, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from ..db import alembic_config
from .snapshot import DATABASE_FILES, BackupError

T = TypeVar("T")
VERSION_TABLE = "alembic_version"


def kind_of(url: str) -> str:
    """``sqlite`` or ``postgresql``; anything else is refused."""
    backend = make_url(url).get_backend_name()
    if backend not in DATABASE_FILES:
        raise BackupError(f"backups support SQLite and PostgreSQL, not {backend} "
                          "(지원하지 않는 데이터베이스)")
    return backend


def schema_revision(db: Session) -> str:
    return str(db.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one())


def check_revision(url: str, revision: str) -> None:
    """Refuse a snapshot whose schema this code does not know (made by a newer version)."""
    script = ScriptDirectory.from_config(alembic_config(url))
    try:
        known = script.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise BackupError(f"the snapshot's schema revision {revision!r} is unknown to this "
                          "version of safezone: restore with the version that made it "
                          "(알 수 없는 스키마 버전)")


def _private_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def dump(engine: Engine, url: str, folder: Path, read: Callable[[Session], T]) -> tuple[str, T]:
    """Copy the database into ``folder``; ``read`` runs on exactly the copied state.
    Returns the file name and what ``read`` returned."""
    kind = kind_of(url)
    name = DATABASE_FILES[kind]
    path = folder / name
    _private_file(path)
    if kind == "sqlite":
        raw = engine.raw_connection()
        try:
            target = sqlite3.connect(path)
            try:
                raw.driver_connection.backup(target)  # all pages in one step
                target.execute("PRAGMA journal_mode=DELETE")  # no -wal file in the snapshot
            finally:
                target.close()
        finally:
            raw.close()
        copy = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
        try:
            with Session(copy) as db:
                return name, read(db)
        finally:
            copy.dispose()
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            exported = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            _pg_tool(["pg_dump", "--format=custom", f"--snapshot={exported}",
                      f"--file={path}"], url)
            with Session(bind=conn) as db:
                return name, read(db)


def _pg_tool(args: list[str], url: str) -> None:
    """Run pg_dump / pg_restore on the URL's database; the password goes through the
    environment, never the command line (visible to every user in ps)."""
    parsed = make_url(url)
    params = {"host": parsed.host, "port": parsed.port, "user": parsed.username,
              "dbname": parsed.database,
              **{k: v if isinstance(v, str) else v[-1] for k, v in parsed.query.items()}}
    conninfo = " ".join(f"{k}={_conninfo_value(v)}" for k, v in params.items() if v)
    env = {**os.environ, "PGPASSWORD": parsed.password or "", "PGCONNECT_TIMEOUT": "10"}
    try:
        done = subprocess.run([*args, f"--dbname={conninfo}"], env=env, capture_output=True,
                              text=True, timeout=3600)
    except FileNotFoundError:
        raise BackupError(f"{args[0]} is not installed: install the PostgreSQL client tools "
                          f"of the server's version ({args[0]} 없음)") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise BackupError(f"{args[0]} failed: {lines[-1] if lines else done.returncode}")


def _conninfo_value(value: object) -> str:
    """A libpq keyword value: single-quoted, with backslash and quote escaped."""
    escaped = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def first_row_table(engine: Engine) -> str | None:
    """The first table that holds a row (schema versions aside), or None: empty."""
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            if table == VERSION_TABLE:
                continue
            if conn.execute(text(f"SELECT 1 FROM {quote(table)} LIMIT 1")).first():
                return table
    return None


def has_schema(engine: Engine) -> bool:
    """Whether a migration ever ran on the database (its version table exists)."""
    with engine.connect() as conn:
        return VERSION_TABLE in inspect(conn).get_table_names()


def empty(engine: Engine) -> None:
    """Drop every table (the schema version's too): the database holds nothing."""
    existing = MetaData()
    existing.reflect(engine)
    existing.drop_all(engine)
    engine.dispose()


def load(engine: Engine, url: str, snapshot_file: Path) -> None:
    """Replace the (checked empty) database with the snapshot's copy."""
    if kind_of(url) == "sqlite":
        target = make_url(url).database
        if not target or target == ":memory:" or target.startswith("file:"):
            raise BackupError(f"cannot restore into the SQLite database {target!r}: give a "
                              "file path (파일 경로 필요)")
        engine.dispose()
        source = sqlite3.connect(f"file:{snapshot_file}?mode=ro", uri=True)
        try:
            destination = sqlite3.connect(target)
            try:
                source.backup(destination)
            finally:
                destination.close()
        finally:
            source.close()
        return
    empty(engine)  # the empty tables a fresh zone's migration made would collide with the dump's
    _pg_tool(["pg_restore", "--no-owner", "--no-privileges", "--single-transaction",
              "--exit-on-error", str(snapshot_file)], url)
