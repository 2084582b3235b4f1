"""How long destroying a project with 10,000 objects takes (파기), beside the naive
reference. Real MinIO and database, started here (root: the zone bridge).

    .venv/bin/python -m benchmarks.destroy_time [--objects 10000]

The reference is ``mc rm --recursive --versions --force`` when ``mc`` is on the PATH, else
a plain boto3 loop (list object versions, ``delete_objects`` 1,000 at a time) over a
second project's prefix of the same size.

What differs: ours also ends and checks the project's session identities, saves the
inventory of every version before deleting (so a killed run can be finished and still
certified), checks the object locks of the quarantine, lists everything again after
deleting to prove it empty, writes the certificate into the database with its audit
event (anchored) and a COMPLIANCE-locked JSON copy into the audit bucket.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import update

from safezone import projects
from safezone.destruction import service
from safezone.models import Project, ProjectStatus
from safezone.permissions import ADMIN_SCOPE, Identity
from safezone.zone import Zone
from tests.support import ZONE_NET, MinioHandle, fresh_database_url, launch_minio, make_zone

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))


def fill(zone: Zone, prefix: str, count: int) -> None:
    """``count`` small objects under ``work/<prefix>`` (16 writers at once)."""
    s3 = zone.broker.s3

    def put(i: int) -> None:
        s3.put_object("work", f"{prefix}d{i % 50:02d}/f{i:06d}.csv", io.BytesIO(b"a,b\n1,2\n"), 8)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def ended_long_ago(zone: Zone, name: str) -> None:
    """The project ended 200 days ago (the benchmark runs on the real clock)."""
    with zone.sessions() as db, db.begin():
        db.execute(update(Project).where(Project.name == name).values(
            status=ProjectStatus.ARCHIVED, ends_at=zone.now() - timedelta(days=200)))


def naive(minio: MinioHandle, prefix: str) -> tuple[str, float]:
    """``mc rm --recursive --versions --force`` if there is an mc, else a boto3 loop."""
    mc = shutil.which("mc")
    if mc:
        alias = ["--config-dir", tempfile.mkdtemp(prefix="sz-mc-")]
        subprocess.run([mc, *alias, "alias", "set", "z", f"http://{minio.endpoint}",
                        minio.root_user, minio.root_password], check=True,
                       capture_output=True)
        start = time.perf_counter()
        subprocess.run([mc, *alias, "rm", "--recursive", "--versions", "--force",
                        f"z/work/{prefix}"], check=True, capture_output=True)
        return "mc rm --recursive --versions --force", time.perf_counter() - start
    s3 = minio.root_s3()
    start = time.perf_counter()
    pages = s3.get_paginator("list_object_versions").paginate(Bucket="work", Prefix=prefix)
    for page in pages:
        found = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                 for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for i in range(0, len(found), 1000):
            s3.delete_objects(Bucket="work", Delete={"Objects": found[i:i + 1000],
                                                     "Quiet": True})
    return "boto3 list_object_versions + delete_objects", time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    args = parser.parse_args()
    console = Console(width=150)
    ZONE_NET.up()
    try:
        with tempfile.TemporaryDirectory(prefix="sz-destroy-bench-") as name:
            tmp = Path(name)
            minio = launch_minio(tmp)
            try:
                zone = make_zone(minio, fresh_database_url(tmp))
                projects.create_project(zone, ADMIN, "bench-ours")
                fill(zone, "bench-ours/", args.objects)
                fill(zone, "bench-naive/", args.objects)
                ended_long_ago(zone, "bench-ours")
                start = time.perf_counter()
                done = service.destroy_project(zone, ADMIN, "bench-ours")
                ours = time.perf_counter() - start
                reference, theirs = naive(minio, "bench-naive/")
                left = (len(zone.broker.current_objects("work", "bench-ours/")),
                        len(zone.broker.current_objects("work", "bench-naive/")))
            finally:
                minio.process.stop()
    finally:
        ZONE_NET.down()
    table = Table(title=f"destroying a project with {args.objects:,} objects")
    for column in ("how", "time", "objects/s", "left"):
        table.add_column(column, justify="right")
    table.add_row("safezone destruction (with certificate)", f"{ours:.2f} s",
                  f"{args.objects / ours:,.0f}", str(left[0]))
    table.add_row(reference, f"{theirs:.2f} s", f"{args.objects / theirs:,.0f}",
                  str(left[1]))
    console.print(table)
    console.print(f"ratio {ours / theirs:.2f}x; certificate {done['sha256']} "
                  f"({done['totals']})")


if __name__ == "__main__":
    main()
