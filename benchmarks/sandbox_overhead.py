"""What the notebook sandbox costs, against the unisolated local process it replaces, on
the same machine in one run: two real stacks (MinIO, control plane, JupyterHub + proxy)
that differ only in the spawner.

    .venv/bin/python -m benchmarks.sandbox_overhead [--rounds 5]   # as root

Per round and mode: spawn-to-ready (hub REST start → server ready), memory of the
server's processes right after start (sum of RSS; for the sandbox also the `runc run`
supervisor), and stop → the server's keys refused by MinIO.

Measured here (2 cores, one run, same machine, medians of 5):

    median of 5     sandboxed  unisolated  ratio
    spawn→ready s        3.42        2.77   1.23
    server RSS MiB     131.91      131.89   1.00
    stop→refused s       0.80        0.64   1.25
    runc run MiB        10.02           -

What differs: the sandboxed server also gets a Unix user lookup, a network namespace with
a veth pair, an OCI bundle and `runc run`; the unisolated one is a plain child process.
Both load the same Jupyter server and extensions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from tests.support import (
    ZONE_NET,
    env_s3,
    keys_refused,
    launch_minio,
    launch_stack,
    provision,
    server_environment,
    wait_until,
)


def server_processes(user: str) -> list[psutil.Process]:
    """The server's process and its children (the kernel is not started here)."""
    for proc in psutil.process_iter(["environ"]):
        env = proc.info.get("environ") or {}
        if env.get("JUPYTERHUB_USER") == user and "AWS_ACCESS_KEY_ID" in env:
            return [proc, *proc.children(recursive=True)]
    return []


def supervisor_rss(server_pid: int) -> int:
    """RSS of the `runc run` process that supervises this sandboxed server (its parent;
    0 for an unisolated server, whose parent is the hub)."""
    parent = psutil.Process(server_pid).parent()
    cmd = parent.cmdline() if parent else []
    return parent.memory_info().rss if cmd and cmd[0].endswith("runc") else 0


def one_round(stack, setup, user: str) -> dict[str, float]:
    hub = stack.hub_api(user)
    started = time.monotonic()
    hub.post(f"/users/{user}/server", json={"project": setup.project}).raise_for_status()
    wait_until(lambda: hub.get(f"/users/{user}").json()["servers"].get("", {}).get("ready"),
               timeout=120, interval=0.05)
    ready = time.monotonic() - started
    time.sleep(1)  # let the server finish loading its extensions
    procs = server_processes(user)
    rss = sum(p.memory_info().rss for p in procs)
    runc = supervisor_rss(procs[0].pid) if procs else 0
    env = server_environment(user)
    s3 = env_s3(stack.minio, env)
    s3.get_object(Bucket=setup.dataset, Key="data.parquet")
    stopping = time.monotonic()
    hub.delete(f"/users/{user}/server")
    wait_until(lambda: keys_refused(s3, setup.dataset), timeout=30, interval=0.02)
    refused = time.monotonic() - stopping
    wait_until(lambda: not hub.get(f"/users/{user}").json()["servers"], timeout=60)
    return {"ready": ready, "rss": rss / 2**20, "runc": runc / 2**20, "refused": refused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ZONE_NET.up()
    stacks, minio = [], None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for folder in ("minio", "sandboxed", "unisolated"):
                (Path(tmp) / folder).mkdir()
            minio = launch_minio(Path(tmp) / "minio")
            results = {}
            for mode, extra in (("sandboxed", {}),
                                ("unisolated", {"SAFEZONE_UNISOLATED_DEMO": "1"})):
                stack = launch_stack(Path(tmp) / mode, minio, extra_env=extra)
                stacks.append(stack)
                setup = provision(stack, member="alice")
                rounds = [one_round(stack, setup, "alice") for _ in range(args.rounds)]
                results[mode] = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
            print(f"{'median of ' + str(args.rounds):14s} {'sandboxed':>10s} "
                  f"{'unisolated':>11s} {'ratio':>6s}")
            for key, label in (("ready", "spawn→ready s"), ("rss", "server RSS MiB"),
                               ("refused", "stop→refused s")):
                a, b = results["sandboxed"][key], results["unisolated"][key]
                print(f"{label:14s} {a:10.2f} {b:11.2f} {a / b:6.2f}")
            print(f"{'runc run MiB':14s} {results['sandboxed']['runc']:10.2f} {'-':>11s}")
    finally:
        for stack in stacks:
            stack.hub.stop(timeout=30)
            stack.control_plane.stop()
        if minio is not None:
            minio.process.stop()
        ZONE_NET.down()


if __name__ == "__main__":
    main()
