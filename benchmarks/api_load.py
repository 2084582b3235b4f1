"""How many reads a second the control plane serves at 200 concurrent clients, beside
JupyterHub's own REST API on the same machine in the same run, and how long a session
grant takes at 20 concurrent grants — on a real stack (MinIO, JupyterHub + proxy, and the
control plane started as it runs in a zone: ``python -m safezone.api.main``).

    .venv/bin/python -m benchmarks.api_load [--seconds 15] [--clients 200] [--workers N]

Set SAFEZONE_TEST_DATABASE_URL to a PostgreSQL URL for the scale setting (the default is
SQLite). The load generator is one asyncio process (aiohttp) on the same two cores as the
servers; each target gets the same generator, the same concurrency and the same duration,
and its clients start in the same one-second ramp.

What differs between the two sides: the hub's ``GET /hub/api/user`` checks the token in its
own database and returns the user model; the control plane's reads check the same kind of
token through the hub (cached for a few seconds, as in production) and then query its own
database (projects, the dataset catalogue, export requests) and apply the permission
table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import httpx

from tests.support import (
    ZONE_NET,
    launch_minio,
    launch_stack,
    provision,
    start_control_plane_process,
    unique,
)

# clients start one after another over this long (as locust's spawn rate does), on both
# targets alike: 200 connections opened in the same millisecond all land on whichever
# worker process wakes first (it accepts the whole queue), which no zone's traffic does
RAMP_SECONDS = 1.0


@dataclass
class Result:
    name: str
    ok: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies) if self.latencies else 0.0

    def row(self) -> str:
        return (f"{self.name:<34} {self.rate:8.0f}/s  mean {self.mean * 1000:7.1f} ms  "
                f"p50 {self.pct(0.5) * 1000:7.1f}  p95 {self.pct(0.95) * 1000:7.1f}  "
                f"p95/mean {self.pct(0.95) / max(self.mean, 1e-9):4.1f}  errors {self.errors}")


async def load(name: str, urls: list[str], token: str, clients: int, seconds: float
               ) -> Result:
    """``clients`` loops, each sending GETs (round robin over ``urls``) for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    headers = {"Authorization": f"token {token}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        # warm the connections and the token caches
        await asyncio.gather(*(http.get(u) for u in urls * 2))
        stop = time.perf_counter() + seconds

        async def client(index: int) -> None:
            nonlocal errors
            n = index
            await asyncio.sleep(index * RAMP_SECONDS / clients)  # clients arrive in a ramp
            while time.perf_counter() < stop:
                url = urls[n % len(urls)]
                n += 1
                start = time.perf_counter()
                try:
                    async with http.get(url) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                            continue
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - began
    return Result(name, len(latencies), errors, elapsed, latencies)


async def grants(base: str, token: str, users: list[str], project: str, clients: int,
                 rounds: int) -> Result:
    """``clients`` spawner calls at once, ``rounds`` times; every grant is ended after."""
    latencies: list[float] = []
    errors, issued = 0, []
    headers = {"Authorization": f"token {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async def one(user: str, server: str) -> None:
            nonlocal errors
            start = time.perf_counter()
            async with http.post(f"{base}/api/sessions", json={
                    "user": user, "project": project, "server_name": server}) as response:
                body = await response.json()
                if response.status != 201:
                    errors += 1
                    print("grant refused:", response.status, body, file=sys.stderr)
                    return
            latencies.append(time.perf_counter() - start)
            issued.append(body["grant_id"])

        began = time.perf_counter()
        for r in range(rounds):
            await asyncio.gather(*(one(users[i % len(users)], f"s{r}-{i}")
                                   for i in range(clients)))
        elapsed = time.perf_counter() - began
        for grant in issued:
            async with http.delete(f"{base}/api/sessions/{grant}") as response:
                await response.read()
    return Result(f"POST /api/sessions x{clients}", len(latencies), errors, elapsed, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--grant-clients", type=int, default=20)
    parser.add_argument("--grant-rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0,
                        help="control-plane worker processes (0: its default)")
    args = parser.parse_args()
    ZONE_NET.up()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        minio = launch_minio(tmp)
        stack = launch_stack(tmp, minio)
        control_plane = None
        try:
            provisioned = provision(stack, "alice")
            for member in ("bob", "carol"):
                stack.api("admin").post(
                    f"/api/projects/{provisioned.project}/members/{member}/approve",
                    json={"expires_at": (stack.zone.now() + timedelta(days=30)).isoformat()}
                ).raise_for_status()
            stack.api("admin").put(f"/api/projects/{provisioned.project}/quota",
                                   json={"servers": 1000}).raise_for_status()
            for _ in range(3):  # a few more projects, so the lists are not trivial
                stack.api("admin").post("/api/projects", json={
                    "name": unique("proj"), "title": "load"}).raise_for_status()
            workers = args.workers or None
            control_plane, base = start_control_plane_process(
                stack.zone, tmp / "control-plane.log",
                {"SAFEZONE_WORKERS": str(workers)} if workers else None)
            print(f"database: {stack.database_url.split(':')[0]}; "
                  f"control-plane workers: {workers or 'default'}; "
                  f"{args.clients} clients for {args.seconds:.0f} s per target; "
                  f"cores: {os.cpu_count()}")
            token = stack.tokens["alice"]
            reads = [f"{base}/api/projects", f"{base}/api/catalogue", f"{base}/api/exports"]
            for url in reads:
                httpx.get(url, headers={"Authorization": f"token {token}"}).raise_for_status()
            hub = asyncio.run(load("hub GET /hub/api/user (reference)",
                                   [f"{stack.hub_url}/hub/api/user"], token, args.clients,
                                   args.seconds))
            ours = asyncio.run(load("control plane reads (3 routes)", reads, token,
                                    args.clients, args.seconds))
            hub20 = asyncio.run(load("hub GET /hub/api/user, 20 clients",
                                     [f"{stack.hub_url}/hub/api/user"], token, 20,
                                     args.seconds / 2))
            ours20 = asyncio.run(load("control plane reads, 20 clients", reads, token, 20,
                                      args.seconds / 2))
            members = ["alice", "bob", "carol"]
            # the first round makes each member's session parent in MinIO and runs each
            # worker's first grant (its imports): shown apart, not in the measured rounds
            cold = asyncio.run(grants(base, stack.spawner_token, members, provisioned.project,
                                      args.grant_clients, 1))
            cold.name = f"{cold.name}, first round (cold)"
            granted = asyncio.run(grants(base, stack.spawner_token, members,
                                         provisioned.project, args.grant_clients,
                                         args.grant_rounds))
            for result in (hub, ours, hub20, ours20, cold, granted):
                print(result.row())
            print(f"ratio reads/hub at {args.clients} clients: {ours.rate / hub.rate:.2f}x "
                  f"(target >= 3); p95/mean {ours.pct(0.95) / ours.mean:.2f} (target <= 2); "
                  f"errors {ours.errors} (target 0)")
            print(f"ratio reads/hub at 20 clients: {ours20.rate / hub20.rate:.2f}x")
            print(f"grant p95 at {args.grant_clients} concurrent: "
                  f"{granted.pct(0.95) * 1000:.0f} ms (target < 150 ms), errors {granted.errors}")
        finally:
            if control_plane:
                control_plane.stop(timeout=30)
            stack.hub.stop()
            stack.control_plane.stop()
            minio.process.stop()


if __name__ == "__main__":
    main()
