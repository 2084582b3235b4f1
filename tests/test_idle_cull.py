"""Idle servers are culled by jupyterhub-idle-culler (a hub service) and their session keys
die with them at once; a server whose kernel is working is left alone.

The hub's configuration is checked for both modes; the culling itself runs on a stack of its
own (real hub, proxy, sandbox spawner, control plane, MinIO) whose culler stops servers
idle for a few seconds.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
from datetime import UTC, datetime

import boto3
import pytest
import websocket
from botocore.config import Config as BotoConfig
from traitlets.config import PyFileConfigLoader

from safezone.config import REPO_ROOT
from safezone.culling import SCOPES, culling_settings
from safezone.models import GrantStatus, SessionGrant

from .kernels import KernelSession
from .netns import InNamespace
from .support import (
    keys_refused,
    launch_stack,
    probe_namespace,
    provision,
    report_measure,
    server_environment,
    wait_until,
)

TIMEOUT, CULL_EVERY, ACTIVITY = 10, 2, 2  # seconds


# -- configuration ---------------------------------------------------------------------
def hub_config(monkeypatch, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    loader = PyFileConfigLoader("jupyterhub_config.py", path=str(REPO_ROOT / "hub_config"))
    return loader.load_config()


@pytest.mark.parametrize("mode", ["local", "kubernetes"])
def test_the_culler_is_a_hub_service_with_only_its_documented_scopes(monkeypatch, mode):
    for var in ("SAFEZONE_IDLE_TIMEOUT_SECONDS", "SAFEZONE_IDLE_CULL_EVERY_SECONDS",
                "SAFEZONE_ACTIVITY_INTERVAL_SECONDS"):
        monkeypatch.delenv(var, raising=False)
    config = hub_config(monkeypatch, SAFEZONE_MODE=mode, SAFEZONE_NOTEBOOK_IMAGE="img:1",
                        SAFEZONE_HUB_IP="0.0.0.0" if mode == "kubernetes" else "127.0.0.1")
    services = {s["name"]: s for s in config.JupyterHub.services}
    culler = services["idle-culler"]
    policy = culling_settings({})  # the defaults of policies/operations.yaml
    assert culler["command"][:5] == [
        sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={policy.timeout_seconds}",
        f"--cull-every={policy.cull_every_seconds}"]
    assert "--cull-named-servers=true" in culler["command"]
    assert "--url=http://127.0.0.1:8081/hub/api" in culler["command"]
    assert "admin" not in culler and "api_token" not in culler
    roles = [r for r in config.JupyterHub.load_roles if "idle-culler" in r.get("services", [])]
    assert len(roles) == 1
    assert sorted(roles[0]["scopes"]) == sorted(SCOPES) == sorted(
        ["list:users", "read:users:activity", "read:servers", "delete:servers"])
    assert config.Spawner.environment["JUPYTERHUB_ACTIVITY_INTERVAL"] == str(
        policy.activity_interval_seconds)


def test_the_environment_sets_or_switches_off_the_culler(monkeypatch):
    config = hub_config(monkeypatch, SAFEZONE_MODE="local",
                        SAFEZONE_IDLE_TIMEOUT_SECONDS="900",
                        SAFEZONE_IDLE_CULL_EVERY_SECONDS="60")
    culler = next(s for s in config.JupyterHub.services if s["name"] == "idle-culler")
    assert {"--timeout=900", "--cull-every=60"} <= set(culler["command"])
    off = hub_config(monkeypatch, SAFEZONE_MODE="local", SAFEZONE_IDLE_TIMEOUT_SECONDS="0")
    assert "idle-culler" not in {s["name"] for s in off.JupyterHub.services}
    with pytest.raises(ValueError, match="SAFEZONE_IDLE_TIMEOUT_SECONDS must be a whole"):
        culling_settings({"SAFEZONE_IDLE_TIMEOUT_SECONDS": "an hour"})
    with pytest.raises(ValueError, match="SAFEZONE_IDLE_CULL_EVERY_SECONDS must be a pos"):
        culling_settings({"SAFEZONE_IDLE_CULL_EVERY_SECONDS": "0"})


# -- culling on a real stack -----------------------------------------------------------
@pytest.fixture(scope="module")
def culling_stack(tmp_path_factory, minio):
    stack = launch_stack(tmp_path_factory.mktemp("culling"), minio, extra_env={
        "SAFEZONE_IDLE_TIMEOUT_SECONDS": str(TIMEOUT),
        "SAFEZONE_IDLE_CULL_EVERY_SECONDS": str(CULL_EVERY),
        "SAFEZONE_ACTIVITY_INTERVAL_SECONDS": str(ACTIVITY)})
    yield stack
    stack.hub.stop(timeout=30)
    stack.control_plane.stop()


def servers(stack, user: str) -> dict:
    return stack.hub_api(user).get(f"/users/{user}").json()["servers"]


def start_server(stack, user: str, project: str, name: str = ""):
    """Start a server through the hub API; once it is ready, return its S3 client (the
    keys it holds, used from the notebook network), its grant id and when it was asked for
    (its activity is never older)."""
    path = f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"
    asked = time.monotonic()
    stack.hub_api(user).post(path, json={"project": project}).raise_for_status()
    wait_until(lambda: servers(stack, user).get(name, {}).get("ready"), timeout=90,
               interval=0.2)
    env = server_environment(user, name)
    s3 = InNamespace(boto3.client(
        "s3", endpoint_url=f"http://{stack.minio.endpoint}", region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
        config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1)),
        probe_namespace())
    return s3, env["SAFEZONE_GRANT_ID"], asked


def grant_status(stack, grant_id: str) -> GrantStatus:
    with stack.zone.sessions() as db:
        return db.get(SessionGrant, grant_id).status


def culled_at(stack, user: str, name: str) -> float:
    """When the hub first shows the server stopping or gone (the culler's DELETE)."""
    def stopping() -> bool:
        server = servers(stack, user).get(name)
        return server is None or server.get("pending") == "stop"

    wait_until(stopping, timeout=TIMEOUT + CULL_EVERY + ACTIVITY + 30, interval=0.1)
    return time.monotonic()


@pytest.mark.integration
@pytest.mark.db_independent
def test_idle_servers_are_culled_and_their_keys_refused_at_once(culling_stack):
    stack = culling_stack
    setup = provision(stack, member="alice")
    started = {name: start_server(stack, "alice", setup.project, name)
               for name in ("", "second")}  # the default server and a named one
    for s3, _grant, _asked in started.values():
        s3.get_object(Bucket=setup.dataset, Key="data.parquet")  # works while it runs
    for name, (s3, grant, asked) in started.items():
        culled = culled_at(stack, "alice", name)
        assert culled - asked >= TIMEOUT - 1, "culled before it was idle long enough"
        took = wait_until(lambda s3=s3: keys_refused(s3, setup.dataset), timeout=5,
                          interval=0.05)
        report_measure(f"idle {'named' if name else 'default'} server culled → its keys "
                       f"refused after {took:.2f} s")
        wait_until(lambda name=name: name not in servers(stack, "alice"), timeout=30)
        assert grant_status(stack, grant) is GrantStatus.ENDED  # ended in the control plane
    log = (stack.state_dir / "hub.log").read_text(errors="replace")
    assert "Culling server alice" in log and "Culling server alice/second" in log


@pytest.mark.integration
@pytest.mark.db_independent
def test_a_server_whose_kernel_works_is_not_culled(culling_stack):
    stack = culling_stack
    setup = provision(stack, member="carol")
    s3, grant, _asked = start_server(stack, "carol", setup.project)
    kernel = KernelSession(f"{stack.hub_url}/user/carol/", stack.tokens["carol"], timeout=2)
    busy = 3 * TIMEOUT
    try:
        kernel.ws.send(json.dumps({  # a cell printing once a second, not waited for
            "header": {"msg_id": uuid.uuid4().hex, "username": "carol",
                       "session": uuid.uuid4().hex, "msg_type": "execute_request",
                       "version": "5.3", "date": datetime.now(UTC).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": f"import time\nfor i in range({busy + 10}):\n    print(i, "
                                "flush=True)\n    time.sleep(1)",
                        "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        deadline = time.monotonic() + busy
        while time.monotonic() < deadline:  # read its output as a browser would
            with contextlib.suppress(websocket.WebSocketTimeoutException):
                kernel.ws.recv()
            assert servers(stack, "carol").get("", {}).get("ready"), "an active server was culled"
        assert grant_status(stack, grant) is GrantStatus.ACTIVE
        s3.get_object(Bucket=setup.dataset, Key="data.parquet")  # its keys still work
    finally:
        kernel.close()  # the kernel is shut down: the server is quiet from now on
    # once the kernel is quiet, the culler does stop it: it was watching all along
    culled_at(stack, "carol", "")
    wait_until(lambda: keys_refused(s3, setup.dataset), timeout=5, interval=0.05)
    wait_until(lambda: "" not in servers(stack, "carol"), timeout=30)
    assert grant_status(stack, grant) is GrantStatus.ENDED
