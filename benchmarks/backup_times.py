"""How long `safezone backup` and `safezone restore` take, for the demo zone and for a zone
with 10,000 audit events (one anchor per event, as every unit of work anchors today),
beside the naive reference: a plain copy of the SQLite file (or a plain pg_dump /
pg_restore). Real MinIO and database, started here (root: the zone bridge).

    .venv/bin/python -m benchmarks.backup_times [--events 10000]
    SAFEZONE_TEST_DATABASE_URL=postgresql+psycopg://… .venv/bin/python -m benchmarks.backup_times

Restore is measured twice: into a fresh database whose audit anchors are all still in
MinIO (the usual case: the database was lost, MinIO was not), and with an anchor prefix
of its own, so every anchor is re-written (the audit bucket was lost too).

Measured here (2 shared cores, one run each, MinIO on the same host):

    SQLite      demo (7 events)   backup 0.02 s (cp 0.001 s)  restore 0.91 s / 0.99 s lost
    SQLite      10,000 events     backup 1.96 s (cp 0.004 s)  restore 7.3 s / 25.1 s lost
    PostgreSQL  demo              backup 0.13 s (pg_dump 0.09 s)  restore 1.0 s / 1.1 s
    PostgreSQL  10,000 events     backup 1.70 s (pg_dump 0.17 s)  restore 5.2 s / 17.7 s

What differs from the naive copy: the backup's database copy is one consistent state
while the zone writes (a `cp` of a WAL-mode SQLite file can miss committed transactions
still in the -wal file, or copy pages of two states); it also lists and keeps the audit
anchors, the catalogue pins and a manifest of SHA-256 hashes, and the write is atomic
(fsync + rename). Restore checks every hash first, refuses a database with data,
re-writes missing anchors, re-hashes every pinned dataset object and verifies the chain.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table
from sqlalchemy.engine import make_url

from safezone.backup.restore import restore
from safezone.backup.steps import Steps
from safezone.backup.write import backup
from safezone.local.demo import seed
from safezone.permissions import ADMIN_SCOPE, Identity
from safezone.zone import Zone
from tests.support import ZONE_NET, fresh_database_url, launch_minio, make_zone

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))


def fill(zone: Zone, events: int) -> None:
    """``events`` audit events, one unit of work (and so one anchor) each."""
    for i in track(range(events), description=f"writing {events} audit events"):
        with zone.unit_of_work() as db:
            zone.record(db, ADMIN, "benchmark.event", f"bench:{i}", n=i)


def fresh_like(zone: Zone, tmp: Path, *, keep_anchors: bool) -> Zone:
    """A zone with an empty database on the same MinIO; same anchor prefix or a new one."""
    url = fresh_database_url(tmp)
    if not keep_anchors:
        return Zone.from_settings(replace(zone.settings, database_url=url, storage=replace(
            zone.settings.storage, anchor_prefix=f"anchors-{os.urandom(4).hex()}/")))
    return Zone.from_settings(replace(zone.settings, database_url=url))


def naive(zone: Zone, tmp: Path) -> tuple[float, float]:
    """Plain copy of the database and back (SQLite: cp; PostgreSQL: pg_dump, pg_restore)."""
    url = make_url(zone.settings.database_url)
    if url.get_backend_name() == "sqlite":
        start = time.perf_counter()
        shutil.copyfile(url.database, tmp / "naive.sqlite")
        copied = time.perf_counter() - start
        start = time.perf_counter()
        shutil.copyfile(tmp / "naive.sqlite", tmp / "naive-restored.sqlite")
        return copied, time.perf_counter() - start
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    conn = ["-h", url.host or "", "-p", str(url.port or 5432), "-U", url.username or ""]
    start = time.perf_counter()
    subprocess.run(["pg_dump", "-Fc", "-f", str(tmp / "naive.pgdump"), *conn, url.database],
                   env=env, check=True)
    dumped = time.perf_counter() - start
    target = make_url(fresh_database_url(tmp)).database
    start = time.perf_counter()
    subprocess.run(["pg_restore", "--no-owner", "-d", target or "", *conn,
                    str(tmp / "naive.pgdump")], env=env, check=True)
    return dumped, time.perf_counter() - start


def measure(name: str, zone: Zone, tmp: Path) -> dict[str, object]:
    steps = Steps()
    start = time.perf_counter()
    written = backup(zone, str(tmp / f"{name}-snap"), steps)
    backed = time.perf_counter() - start
    size = sum(f["bytes"] for f in written.manifest["files"].values())
    times = {}
    for keep in (True, False):
        fresh = fresh_like(zone, tmp, keep_anchors=keep)
        restore_steps = Steps()
        start = time.perf_counter()
        done = restore(fresh, written.location, restore_steps, by="benchmark")
        times[keep] = (time.perf_counter() - start, restore_steps.timings, done)
        assert done.ok, (done.findings, done.pin_problems)
    naive_copy, naive_back = naive(zone, tmp)
    return {"zone": name, "events": written.manifest["audit_head"]["seq"],
            "anchors": written.manifest["counts"]["anchors"], "bytes": size,
            "backup": backed, "backup_steps": steps.timings,
            "restore_kept": times[True][0], "restore_lost": times[False][0],
            "restore_lost_steps": times[False][1], "naive_copy": naive_copy,
            "naive_restore": naive_back}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    console = Console(width=170)
    ZONE_NET.up()
    try:
        with tempfile.TemporaryDirectory(prefix="sz-backup-bench-") as name:
            tmp = Path(name)
            minio = launch_minio(tmp)
            try:
                demo = make_zone(minio, fresh_database_url(tmp))
                seed(demo, b"benchmark-pseudonym-key-0123456789")
                rows = [measure("demo", demo, tmp)]
                big = make_zone(minio, fresh_database_url(tmp))
                fill(big, args.events)
                rows.append(measure(f"{args.events:,} events", big, tmp))
            finally:
                minio.process.stop()
    finally:
        ZONE_NET.down()
    backend = make_url(demo.settings.database_url).get_backend_name()
    table = Table(title=f"backup and restore ({backend})")
    for column in ("zone", "events", "anchors", "snapshot", "backup", "naive copy",
                   "restore (anchors kept)", "restore (anchors lost)", "naive restore"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["zone"]), f"{r['events']:,}", f"{r['anchors']:,}",
                      f"{r['bytes'] / 1e6:.2f} MB", f"{r['backup']:.2f} s",
                      f"{r['naive_copy']:.3f} s", f"{r['restore_kept']:.2f} s",
                      f"{r['restore_lost']:.2f} s", f"{r['naive_restore']:.3f} s")
    console.print(table)
    for r in rows:
        console.print(f"{r['zone']}: backup steps {r['backup_steps']}; restore steps with "
                      f"anchors lost {r['restore_lost_steps']}")


if __name__ == "__main__":
    main()
