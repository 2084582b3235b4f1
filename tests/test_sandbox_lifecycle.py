"""A sandbox's keys live exactly as long as its server: stopped, died on its own, or found
dead when the hub comes back. On a stack of its own (its hub is killed and restarted)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import boto3
import psutil
import pytest
from botocore.config import Config as BotoConfig

from safezone.local.services import start_hub

from .netns import InNamespace
from .support import (
    ZONE_NET,
    keys_refused,
    launch_stack,
    probe_namespace,
    provision,
    report_measure,
    server_environment,
    server_process,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory, minio):
    stack = launch_stack(tmp_path_factory.mktemp("lifecycle"), minio)
    yield stack
    stack.hub.stop(timeout=30)
    stack.control_plane.stop()


def start(stack, setup):
    hub = stack.hub_api("alice")
    hub.post("/users/alice/server", json={"project": setup.project}).raise_for_status()
    wait_until(lambda: hub.get("/users/alice").json()["servers"].get("", {}).get("ready"),
               timeout=90, interval=0.2)
    env = server_environment("alice")
    s3 = InNamespace(boto3.client(
        "s3", endpoint_url=f"http://{stack.minio.endpoint}", region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
        config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1)),
        probe_namespace())
    s3.get_object(Bucket=setup.dataset, Key="data.parquet")  # works while it runs
    return s3


def server_pid() -> int:
    found = server_process("alice")
    assert found, "alice's server process not found"
    return found[0]


def sandbox_left_nothing(stack, namespaces_before: set[str]) -> bool:
    """Its network namespace and its bundle (which held the keys) are gone."""
    bundles = Path(stack.state_dir / "sandbox" / "bundles")
    return set(ZONE_NET.namespaces()) == namespaces_before and not any(bundles.glob("*"))


def test_a_server_that_dies_on_its_own_takes_its_keys_along(own_stack):
    setup = provision(own_stack, member="alice")
    probe_namespace()  # the tests' own place in the zone network, made before counting
    before = set(ZONE_NET.namespaces())
    s3 = start(own_stack, setup)
    os.kill(server_pid(), signal.SIGKILL)  # the server inside its sandbox, as an OOM kill
    died = time.monotonic()
    wait_until(lambda: keys_refused(s3, setup.dataset), timeout=5, interval=0.05)
    report_measure(f"sandboxed server killed → its keys refused after "
                   f"{time.monotonic() - died:.2f} s (hub poll every 2 s)")
    wait_until(lambda: not own_stack.hub_api("alice").get("/users/alice").json()["servers"],
               timeout=10)
    wait_until(lambda: sandbox_left_nothing(own_stack, before), timeout=10)


def test_a_server_found_dead_at_hub_restart_takes_its_keys_along(own_stack):
    setup = provision(own_stack, member="alice")
    probe_namespace()  # the tests' own place in the zone network, made before counting
    before = set(ZONE_NET.namespaces())
    s3 = start(own_stack, setup)
    hub = own_stack.hub
    os.killpg(hub.popen.pid, signal.SIGKILL)  # the hub, no cleanup (its proxy, in a session
    # of its own, lives on; the restarted hub finds it by its pid file and replaces it)
    hub.popen.wait()
    pid = server_pid()
    supervisor = psutil.Process(pid).ppid()  # `runc run`, the pid the hub's state holds
    os.kill(pid, signal.SIGKILL)  # the server dies while no hub watches
    wait_until(lambda: not psutil.pid_exists(supervisor), timeout=10)
    assert not keys_refused(s3, setup.dataset)  # nobody has ended them yet
    own_stack.hub = start_hub(own_stack.hub_env, own_stack.state_dir / "hub",
                              own_stack.hub_url, own_stack.state_dir / "hub.log")
    back = time.monotonic()
    wait_until(lambda: keys_refused(s3, setup.dataset), timeout=5, interval=0.05)
    report_measure(f"hub restarted → a server found dead has its keys refused after "
                   f"{time.monotonic() - back:.2f} s")
    wait_until(lambda: sandbox_left_nothing(own_stack, before), timeout=10)
