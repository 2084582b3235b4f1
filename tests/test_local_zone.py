"""`safezone local up` (what `make run` starts), for real: services own their state, the
notebook runs in a sandbox, and the zone refuses to start without the primitives."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from safezone.config import REPO_ROOT
from safezone.local.launcher import PORTS
from safezone.sandbox import preflight

from .kernels import KernelSession, run_code
from .support import port_is_free, wait_until

pytestmark = pytest.mark.integration
BRIDGE, SUBNET = "szlz0", "10.99.201.0/24"


def owner_and_mode(path: Path) -> tuple[str, int]:
    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, st.st_mode & 0o7777


@pytest.fixture(scope="module")
def local_zone(tmp_path_factory):
    state = tmp_path_factory.mktemp("local-zone") / "zone"
    for folder in (state.parent, state.parent.parent, state.parent.parent.parent):
        folder.chmod(0o711)  # as a checkout's folders are: services may pass through
    env = {**os.environ, "SAFEZONE_SANDBOX_BRIDGE": BRIDGE, "SAFEZONE_SANDBOX_SUBNET": SUBNET}
    env.pop("SAFEZONE_DATABASE_URL", None)
    log = open(state.parent / "up.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "safezone.cli", "local", "up",
                                "--state-dir", str(state)], stdout=log,
                               stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_until(lambda: "is running" in (state.parent / "up.log").read_text()
                   or process.poll() is not None, timeout=240, interval=0.5)
        text = (state.parent / "up.log").read_text()
        assert process.poll() is None, text[-3000:]
        passwords = dict(re.findall(r"^\s{4}(\w+)\s+(\S+)$", text, re.M))
        yield state, passwords, text
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have given up by itself
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(150)  # it stops its services, each given 30 s
        log.close()
        for port in (8000, *PORTS.values()):  # the hub's, its proxy's and the services'
            assert port_is_free(port), f"port {port} still in use after the zone stopped"


def test_services_own_their_state(local_zone):
    state, _, _ = local_zone
    assert owner_and_mode(state) == ("root", 0o711)
    for name in ("hub", "control-plane", "workspaces", "sandbox"):
        assert owner_and_mode(state / name) == ("root", 0o700), name
    minio_owner, minio_mode = owner_and_mode(state / "minio")
    assert minio_mode == 0o700 and minio_owner in ("safezone-minio", "root")
    for secret in ("secrets.json", "users.json"):
        assert owner_and_mode(state / secret) == ("root", 0o600), secret
    if minio_owner == "safezone-minio":  # its binary was reachable by the service user
        pids = subprocess.run(["pgrep", "-f", f"minio server {state / 'minio'}"],
                              capture_output=True, text=True).stdout.split()
        uids = {Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0]
                for pid in pids}
        assert uids == {str(pwd.getpwnam("safezone-minio").pw_uid)}


HUB = "http://127.0.0.1:8000"


def alice_on_the_hub(passwords: dict[str, str]) -> tuple[str, httpx.Client]:
    """alice's own hub token (from her demo password) and a hub API client with it."""
    token = httpx.post(f"{HUB}/hub/api/users/alice/tokens", timeout=30, json={
        "auth": {"username": "alice", "password": passwords["alice"]}}).json()["token"]
    return token, httpx.Client(base_url=f"{HUB}/hub/api", timeout=60,
                               headers={"Authorization": f"token {token}"})


def test_demo_notebook_runs_sandboxed(local_zone):
    state, passwords, _ = local_zone
    token, api = alice_on_the_hub(passwords)
    started = time.monotonic()
    assert api.post("/users/alice/server", json={"project": "demo-health"}).status_code in (
        201, 202)
    wait_until(lambda: api.get("/users/alice").json()["servers"].get("", {}).get("ready"),
               timeout=120, interval=0.3)
    ready = time.monotonic() - started
    out = run_code(f"{HUB}/user/alice/", token, f"""
import json, os, boto3
s3 = boto3.client("s3")
names = [o["Key"] for o in s3.list_objects_v2(Bucket="deid-health-2024").get("Contents", [])]
try:
    open({str(state / 'secrets.json')!r}); secret = "READ"
except OSError as exc:
    secret = exc.errno
print(json.dumps({{"uid": os.getuid(), "names": names, "secret": secret}}))""")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["uid"] == pwd.getpwnam("sz-alice").pw_uid
    assert "data.parquet" in result["names"]
    assert result["secret"] == 2  # ENOENT: the zone's state is not in the sandbox
    api.delete("/users/alice/server")
    wait_until(lambda: not api.get("/users/alice").json()["servers"], timeout=60)
    print(f"local zone: sandboxed server ready {ready:.2f} s after the start request")


def readme_python() -> list[str]:
    """The README's Python examples, in order (indented ones dedented)."""
    text = (REPO_ROOT / "README.md").read_text()
    return [textwrap.dedent(block) for block in
            re.findall(r"^[ ]*```python\n(.*?)^[ ]*```", text, re.M | re.S)]


def test_readme_examples_run_on_the_demo_data(local_zone):
    """Every Python example of the README, in alice's sandboxed kernel on the demo zone:
    read the dataset, make a table with its evidence, submit it for review."""
    _, passwords, _ = local_zone
    token, api = alice_on_the_hub(passwords)
    api.post("/users/alice/server", json={"project": "demo-health"})
    wait_until(lambda: api.get("/users/alice").json()["servers"].get("", {}).get("ready"),
               timeout=120, interval=0.3)
    blocks = readme_python()
    assert len(blocks) >= 2
    kernel = KernelSession(f"{HUB}/user/alice/", token, timeout=300)
    try:
        for block in blocks:
            kernel.run(block)
        status = kernel.run("print(submit_export.__module__)").strip()
        assert status == "safezone.notebook"
    finally:
        kernel.close()
        api.delete("/users/alice/server")
    mine = httpx.get(f"{HUB}/services/safezone/api/exports", timeout=30,
                     headers={"Authorization": f"token {token}"}).json()
    assert any(r["status"] != "draft" for r in mine)


def test_without_the_primitives_the_zone_refuses(monkeypatch):
    """Not root: one line naming what is missing. (Run as root here, so the effective uid
    is what is replaced: the CLI's Python cannot run as another user on this machine.)"""
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    with pytest.raises(preflight.SandboxUnavailable) as refused:
        preflight.require_sandbox()
    message = str(refused.value)
    assert "\n" not in message and "root" in message and "--unisolated-demo" in message


def test_a_tool_off_the_path_is_named_in_one_line(tmp_path):
    """``safezone local up`` with runc off PATH (the other tools on it): exit 1 and one line
    naming runc and its package; nothing is started or created. The zone runs its tools
    from PATH, so a runc only in /usr/sbin off PATH must count as missing."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in preflight.TOOLS:
        if tool != "runc":
            found = shutil.which(tool)
            assert found, f"{tool} is needed on this machine for the other tests"
            (tools / tool).symlink_to(found)
    state = tmp_path / "zone"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "safezone.cli", "local", "up",
                           "--state-dir", str(state), "--port", "1"],
                          env={**os.environ, "PATH": str(tools)}, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == "" and time.monotonic() - started < 30
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot sandbox notebooks, missing:")
    assert "runc (Debian package runc, on PATH)" in lines[0]
    assert "nftables" not in lines[0] and "iproute2" not in lines[0]
    assert not state.exists()
