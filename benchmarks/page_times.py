"""Each Safezone page's server time at p50/p95 on a zone with 50 projects, 500 export
requests and 10,000 audit events — on a real stack (MinIO, control plane, JupyterHub +
proxy) started here, next to the hub's own home page as the reference a user already knows.

    .venv/bin/python -m benchmarks.page_times [--views 40]

Server time is the control plane's own ``Server-Timing: app;dur=`` header (request in →
response start), so the proxy and the client do not count; the hub's page has no such
header, so its figure is the client's round trip through the same proxy (an upper bound:
it includes the proxy and the network the Safezone figures leave out). Each page is viewed
``--views`` times in turn, in one session, after one warm-up view.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table
from sqlalchemy import func, select

from safezone import projects
from safezone.exports import service
from safezone.models import AuditEvent
from safezone.permissions import ADMIN_SCOPE, Identity
from tests.support import (
    ZONE_NET,
    browser_session,
    hub_login,
    issue_grant,
    launch_minio,
    launch_stack,
    notebook_s3,
    provision,
)

PROJECTS, REQUESTS, EVENTS = 50, 500, 10_000
TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,140\n"


def seed(stack, console: Console) -> dict[str, str]:
    """The zone's records at the sizes the issue names; returns ids the pages need."""
    zone = stack.zone
    admin = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
    alice = Identity("alice", "user", frozenset())
    first = provision(stack, member="alice")
    names = [first.project]
    for index in track(range(PROJECTS - 1), description="projects", console=console):
        name = f"bench-{index:02d}"
        projects.create_project(zone, admin, name, f"Benchmark project {index}")
        stack.api("admin").post(f"/api/projects/{name}/members/alice/approve", json={
            "expires_at": (zone.now() + timedelta(days=300)).isoformat()}).raise_for_status()
        names.append(name)
    s3 = notebook_s3(stack, issue_grant(stack, "alice", first.project))
    s3.put_object(Bucket="outbox", Key=f"{first.project}/alice/tables/counts.csv", Body=TABLE)
    ids = []
    for index in track(range(REQUESTS), description="export requests", console=console):
        created = service.create_request(zone, alice, first.project, f"Request {index}",
                                         [{"path": "tables/counts.csv",
                                           "justification": "aggregate counts"}])
        ids.append(created["id"])
    for rid in ids[:20]:  # some in review, so the queue and the review page have work
        service.submit(zone, alice, rid)
    with zone.sessions() as db:
        have = db.scalar(select(func.count()).select_from(AuditEvent))
    for start in track(range(have, EVENTS, 500), description="audit events", console=console):
        with zone.unit_of_work() as db:
            for n in range(start, min(start + 500, EVENTS)):
                zone.record(db, admin, "bench.event", f"project:{names[n % len(names)]}",
                            n=n)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the submitted ones reach the reviewers
        if all(stack.api("alice").get(f"/api/exports/{r}").json()["status"] == "in_review"
               for r in ids[:20]):
            break
        time.sleep(1)
    return {"project": first.project, "dataset": first.dataset, "request": ids[0],
            "in_review": ids[1]}


def pages(ids: dict[str, str]) -> list[tuple[str, str]]:
    p, d = ids["project"], ids["dataset"]
    return [
        ("alice", "pages/"), ("reviewer", "pages/"), ("admin", "pages/"),
        ("alice", "pages/catalogue"), ("alice", f"pages/catalogue/{d}"),
        ("alice", f"pages/projects/{p}/requests/new"),
        ("alice", f"pages/requests/{ids['request']}"),
        ("alice", "pages/applications"),
        ("reviewer", "pages/review"), ("reviewer", f"pages/review/{ids['in_review']}"),
        ("admin", "pages/admin"), ("admin", f"pages/admin/projects/{p}"),
        ("admin", "pages/admin/audit"), ("admin", "pages/admin/audit?what=bench"),
        ("admin", "pages/admin/applications"),
    ]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=40)
    args = parser.parse_args()
    console = Console()
    ZONE_NET.up()
    with tempfile.TemporaryDirectory() as tmp:
        minio = launch_minio(Path(tmp))
        stack = launch_stack(Path(tmp), minio)
        try:
            ids = seed(stack, console)
            clients = {u: browser_session(stack, u) for u in ("alice", "reviewer", "admin")}
            hub = hub_login(stack, "alice")
            table = Table(title=f"page server time, {args.views} views each "
                                f"({PROJECTS} projects, {REQUESTS} requests, "
                                f"{EVENTS:,} audit events)")
            for column in ("who", "page", "status", "p50 ms", "p95 ms"):
                table.add_column(column)
            for user, path in track(pages(ids), description="pages", console=console):
                client = clients[user]
                client.get(path)
                times, status = [], 0
                for _ in range(args.views):
                    response = client.get(path)
                    status = response.status_code
                    timing = response.headers.get("server-timing", "app;dur=nan")
                    times.append(float(timing.split("dur=")[1]))
                table.add_row(user, path, str(status), f"{statistics.median(times):.1f}",
                              f"{p95(times):.1f}")
            hub.get("/hub/home")
            rounds = []
            for _ in range(args.views):
                start = time.perf_counter()
                hub.get("/hub/home").raise_for_status()
                rounds.append((time.perf_counter() - start) * 1000)
            table.add_row("alice", "/hub/home (reference, round trip)", "200",
                          f"{statistics.median(rounds):.1f}", f"{p95(rounds):.1f}")
            console.print(table)
        finally:
            stack.hub.stop(timeout=20)
            stack.control_plane.stop()
            minio.process.stop()
            ZONE_NET.down()


if __name__ == "__main__":
    main()
