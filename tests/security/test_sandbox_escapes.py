"""Escapes tried from inside a real sandboxed notebook server, as a researcher would type
them: code run in alice's kernel through the real hub, proxy and Jupyter server.

Each attempt is asserted refused with its errno (or S3 status), and that nothing was read,
reached or written. The run prints ``sandbox: N escapes tried, 0 succeeded``.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from botocore.exceptions import ClientError

from ..kernels import KernelDied, KernelSession
from ..support import ZONE_NET, hub_login, provision, server_process, session_s3, wait_until

pytestmark = pytest.mark.integration

REFUSED = {"ENOENT", "EACCES", "EPERM", "EROFS", "ECONNREFUSED", "ETIMEDOUT", "ENETUNREACH",
           "EHOSTUNREACH", "EAGAIN"}

# helpers defined once in the kernel; each returns the errno name of the refusal, or "OK"
KERNEL_HELPERS = r'''
import errno, json, os, socket
def _name(exc):
    if isinstance(exc, socket.timeout): return "ETIMEDOUT"
    return errno.errorcode.get(getattr(exc, "errno", None) or 0, type(exc).__name__)
def try_read(path):
    try:
        with open(path, "rb") as f: data = f.read(64)
        return "OK:" + data[:16].hex()
    except OSError as exc: return _name(exc)
def try_list(path):
    try: return "OK:" + ",".join(sorted(os.listdir(path))[:8])
    except OSError as exc: return _name(exc)
def try_write(path):
    try:
        with open(path, "wb") as f: f.write(b"escaped")
        return "OK"
    except OSError as exc: return _name(exc)
def try_connect(host, port, timeout=1.5):
    s = socket.socket(); s.settimeout(timeout)
    try: s.connect((host, port)); return "OK"
    except OSError as exc: return _name(exc)
    finally: s.close()
def try_connect6(host, port, timeout=1.5):
    try: s = socket.socket(socket.AF_INET6)
    except OSError as exc: return _name(exc)
    s.settimeout(timeout)
    try: s.connect((host, port)); return "OK"
    except OSError as exc: return _name(exc)
    finally: s.close()
print("ready")
'''


def ask(kernel: KernelSession, expression: str) -> str:
    return kernel.run(f"print(json.dumps({expression}))").strip().splitlines()[-1].strip('"')


def start_server(stack, user: str, project: str) -> dict:
    browser = hub_login(stack, user)
    response = browser.post("/hub/spawn", data={"project": project,
                                                "_xsrf": browser.cookies.get("_xsrf")})
    assert response.status_code in (302, 303), response.text[:300]
    hub = stack.hub_api(user)
    wait_until(lambda: hub.get(f"/users/{user}").json()["servers"].get("", {}).get("ready"),
               timeout=90, interval=0.3)
    return hub.get(f"/users/{user}").json()["servers"][""]


def sandbox_cgroup(user: str, controller: str) -> Path:
    """The host folder of ``user``'s sandbox cgroup for ``controller`` (cgroup v1 or v2),
    read from its server's /proc/PID/cgroup; the bundle puts it under /safezone/."""
    found = server_process(user)
    assert found, f"no sandbox of {user} found"
    lines = [line.split(":", 2) for line in
             Path(f"/proc/{found[0]}/cgroup").read_text().splitlines()]
    unified = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    for _, controllers, path in lines:
        if controller in controllers.split(","):  # v1: one hierarchy per controller
            folder = Path("/sys/fs/cgroup") / controller / path.lstrip("/")
            break
        if unified and controllers == "":
            folder = Path("/sys/fs/cgroup") / path.lstrip("/")
            break
    else:
        raise AssertionError(f"{user}'s sandbox is in no {controller} cgroup")
    assert path.startswith("/safezone/") and folder.is_dir(), folder
    return folder


def cgroup_counts(folder: Path, name: str) -> dict[str, int]:
    """A cgroup file of ``key value`` lines (cpu.stat, memory.events, memory.oom_control)."""
    pairs = (line.split() for line in (folder / name).read_text().splitlines())
    return {key: int(value) for key, value in pairs}


def oom_kills(folder: Path) -> int:
    """Processes the memory cgroup's OOM killer killed (v2 memory.events, v1 oom_control)."""
    events = folder / "memory.events"
    return cgroup_counts(folder, events.name if events.exists() else "memory.oom_control"
                         )["oom_kill"]


def sandbox_address(stack, user: str) -> str:
    """The sandbox's address: the zone namespace its server process lives in."""
    found = server_process(user)
    assert found, f"no sandbox of {user} found"
    inode = os.stat(f"/proc/{found[0]}/ns/net").st_ino
    name = next(n for n in ZONE_NET.namespaces() if os.stat(f"/run/netns/{n}").st_ino == inode)
    return str(ZONE_NET.network.network_address + int(name.rsplit("-", 1)[1]))


class Zone:
    """alice's sandbox (kernel open), carol's sibling sandbox, the host's facts."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.alice = provision(stack, member="alice")
        self.carol = provision(stack, member="carol")
        start_server(stack, "alice", self.alice.project)
        start_server(stack, "carol", self.carol.project)
        self.kernel = KernelSession(f"{stack.hub_url}/user/alice/", stack.tokens["alice"])
        assert self.kernel.run(KERNEL_HELPERS).strip() == "ready"

    def close(self) -> None:
        self.kernel.close()
        for user in ("alice", "carol"):
            self.stack.hub_api(user).delete(f"/users/{user}/server")


@pytest.fixture(scope="module")
def zone(stack):
    world = Zone(stack)
    yield world
    world.close()


def zone_state_paths(stack) -> list[str]:
    """Every file the zone keeps on disk: hub, control plane, MinIO, sandboxes, workspaces."""
    roots = [stack.state_dir, stack.minio.data_dir]
    database = stack.database_url.removeprefix("sqlite:///")
    paths = [database] if stack.database_url.startswith("sqlite") else []
    for root in roots:
        paths += [str(p) for p in Path(root).rglob("*") if p.is_file()][:400]
    return sorted(set(paths))


def test_zone_state_files_are_not_there(zone):
    """The hub's database and cookie secret, the users file, the control plane's database,
    the sandboxes' bundles (other sessions' keys), MinIO's objects: none exists inside."""
    paths = zone_state_paths(zone.stack)
    assert len(paths) > 20 and any("jupyterhub_cookie_secret" in p for p in paths)
    assert any("config.json" in p for p in paths)  # carol's bundle, with her keys
    results = json.loads(zone.kernel.run(
        f"print(json.dumps({{p: try_read(p) for p in {paths!r}}}))").strip().splitlines()[-1])
    opened = {p: r for p, r in results.items() if r not in REFUSED}
    assert not opened, f"read from the sandbox: {opened}"
    assert set(results.values()) == {"ENOENT"}


@pytest.mark.parametrize("where", ["minio", "workspaces", "hub", "sandboxes", "repo_cache",
                                   "root_home"])
def test_zone_folders_cannot_be_listed(zone, where):
    stack = zone.stack
    from safezone.config import REPO_ROOT
    folder = {"minio": stack.minio.data_dir, "workspaces": stack.state_dir / "workspaces",
              "hub": stack.state_dir / "hub", "sandboxes": stack.state_dir / "sandbox",
              "repo_cache": REPO_ROOT / ".cache", "root_home": Path("/root")}[where]
    assert Path(folder).exists()
    seen = ask(zone.kernel, f"try_list({str(folder)!r})")
    if where == "root_home" and str(Path(sys.base_prefix).resolve()).startswith("/root/"):
        assert seen == "OK:.pyenv"  # only the mount point of the read-only Python runtime
    else:
        assert seen == "ENOENT"


def test_other_workspaces_are_not_there(zone):
    carol_ws = zone.stack.state_dir / "workspaces" / "carol" / zone.carol.project
    (carol_ws / "notes.txt").write_text("carol's")
    assert carol_ws.is_dir()
    assert ask(zone.kernel, f"try_read({str(carol_ws / 'notes.txt')!r})") == "ENOENT"
    assert ask(zone.kernel, "try_list('/workspace/..')").startswith("OK:")  # only the root
    assert "carol" not in ask(zone.kernel, "try_list('/workspace/..')")
    assert ask(zone.kernel, "try_read('/workspace/../../carol/notes.txt')") == "ENOENT"


def test_proc_shows_only_the_sandbox(zone):
    """/proc lists only the sandbox's own processes; no service's environ or cmdline."""
    stack = zone.stack
    secrets_ = [stack.spawner_token, stack.minio.root_password, stack.tokens["admin"],
                stack.zone.settings.service_token]
    listing = json.loads(zone.kernel.run(r'''
out = {}
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    for part in ("environ", "cmdline"):
        try:
            raw = open(f"/proc/{pid}/{part}", "rb").read()
            out[f"{pid}/{part}"] = raw.decode("utf-8", "replace")
        except OSError as exc:
            out[f"{pid}/{part}"] = _name(exc)
print(json.dumps(out))''').strip().splitlines()[-1])
    cmdlines = {k: v for k, v in listing.items() if k.endswith("cmdline")}
    assert 2 <= len(cmdlines) < 20, cmdlines.keys()
    for value in cmdlines.values():
        assert "singleuser" in value or "ipykernel" in value or value in ("", "ENOENT"), value
    blob = "".join(listing.values())
    leaked = [s for s in secrets_ if s and s in blob]
    assert not leaked, "a service secret is visible in the sandbox's /proc"
    host_pids = [stack.hub.popen.pid, stack.minio.process.popen.pid, os.getpid()]
    for pid in host_pids:
        seen = listing.get(f"{pid}/cmdline", "ENOENT")
        assert seen == "ENOENT" or "singleuser" in seen or "ipykernel" in seen


def listeners() -> list[tuple[str, int]]:
    """Every TCP port listening in the host's network namespace."""
    found = set()
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr:
            found.add((conn.laddr.ip, conn.laddr.port))
    return sorted(found)


def host_addresses() -> list[str]:
    return sorted({a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                   if a.family == socket.AF_INET})


def allowed_services(stack) -> set[int]:
    hub_api = int(stack.zone.settings.hub_api_url.rsplit(":", 1)[1].split("/")[0])
    return {stack.minio.port, stack.control_plane.port, hub_api}


def test_only_the_three_services_are_reachable(zone):
    """Every listener on the host, on every host address: refused, except storage, hub API
    and control plane on the gateway address — which do answer."""
    stack = zone.stack
    allowed = allowed_services(stack)
    targets = []
    for ip, port in listeners():
        addresses = host_addresses() if ip in ("0.0.0.0", "::") else [ip]
        for address in addresses:
            if ":" in address:
                continue
            if not (address == ZONE_NET.gateway and port in allowed):
                targets.append((address, port))
    wanted = {("127.0.0.1", stack.proxy_api_port)}
    assert wanted <= set(targets) and len(targets) >= 5
    # the sandbox's loopback is its own: a host loopback port that happens to be one its
    # kernel listens on too would answer from inside (seen once in CI); leave those out
    own = set(json.loads(zone.kernel.run(r'''
ports = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":
            ports.add(int(local.rsplit(":", 1)[1], 16))
print(json.dumps(sorted(ports)))''').strip().splitlines()[-1]))
    assert 8888 in own  # the Jupyter server, inside
    targets = [(h, p) for h, p in targets if not (h == "127.0.0.1" and p in own)]
    results = json.loads(zone.kernel.run(
        f"print(json.dumps([[h, p, try_connect(h, p, 0.5)] for h, p in {targets!r}]))"
    ).strip().splitlines()[-1])
    reached = [(h, p) for h, p, r in results if r not in REFUSED]
    assert not reached, f"reachable from the sandbox: {reached}"
    for port in sorted(allowed):
        assert ask(zone.kernel, f"try_connect({ZONE_NET.gateway!r}, {port})") == "OK"


def host_ipv6_addresses() -> list[str]:
    """The host's IPv6 addresses a socket can name without a scope: loopback and global."""
    return sorted({a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                   if a.family == socket.AF_INET6 and not a.address.startswith("fe80")})


def test_host_ipv6_listeners_are_unreachable(zone):
    """The sandbox has no IPv6: every host IPv6 listener (two opened here, on :: and ::1,
    so there is always one), on ::1 and each host IPv6 address, is refused; so is the
    gateway through an IPv4-mapped address on a port sandboxes may not reach."""
    opened = []
    for host in ("::", "::1"):
        server = socket.socket(socket.AF_INET6)
        server.bind((host, 0))
        server.listen()
        opened.append(server)
    try:
        v6 = [(ip, port) for ip, port in listeners() if ":" in ip]
        assert {("::", opened[0].getsockname()[1]), ("::1", opened[1].getsockname()[1])} <= set(v6)
        targets = sorted({(address, port) for ip, port in v6
                          for address in (host_ipv6_addresses() if ip == "::" else [ip])})
        targets.append((f"::ffff:{ZONE_NET.gateway}", opened[0].getsockname()[1]))
        results = json.loads(zone.kernel.run(
            f"print(json.dumps([[h, p, try_connect6(h, p, 0.5)] for h, p in {targets!r}]))"
        ).strip().splitlines()[-1])
        unexpected = [(h, p, r) for h, p, r in results
                      if r not in {"ENETUNREACH", "EADDRNOTAVAIL", "ECONNREFUSED"}]
        assert not unexpected, f"IPv6 from the sandbox: {unexpected}"
        assert any(h == "::1" for h, _, _ in results)
    finally:
        for server in opened:
            server.close()


@pytest.mark.parametrize("target", ["proxy_api", "hub_public", "minio_console", "postgres"])
def test_named_services_are_refused(zone, target):
    stack = zone.stack
    port = {"proxy_api": stack.proxy_api_port,
            "hub_public": int(stack.hub_url.rsplit(":", 1)[1]),
            "minio_console": stack.minio.console_port, "postgres": 5432}[target]
    for host in ("127.0.0.1", ZONE_NET.gateway):
        assert ask(zone.kernel, f"try_connect({host!r}, {port})") in {"ECONNREFUSED"}


@pytest.mark.parametrize("service", ["storage", "hub_api", "control_plane"])
def test_needed_services_on_the_wrong_address_are_refused(zone, service):
    stack = zone.stack
    hub_api = int(stack.zone.settings.hub_api_url.rsplit(":", 1)[1].split("/")[0])
    port = {"storage": stack.minio.port, "hub_api": hub_api,
            "control_plane": stack.control_plane.port}[service]
    others = [a for a in host_addresses() if a != ZONE_NET.gateway] + ["127.0.0.1"]
    for host in others:
        assert ask(zone.kernel, f"try_connect({host!r}, {port})") in REFUSED, host


def test_sibling_sandbox_is_unreachable(zone):
    carol, alice = sandbox_address(zone.stack, "carol"), sandbox_address(zone.stack, "alice")
    assert carol != alice
    with socket.create_connection((carol, 8888), timeout=5):
        pass  # carol's server listens (the hub reaches it) ...
    assert ask(zone.kernel, f"try_connect({carol!r}, 8888)") in {"ETIMEDOUT", "EHOSTUNREACH"}


def test_outside_addresses_and_dns_are_unreachable(zone):
    assert ask(zone.kernel, "try_connect('8.8.8.8', 53)") == "ENETUNREACH"
    answer = zone.kernel.run(r'''
try:
    socket.getaddrinfo("pypi.org", 443); print("OK")
except OSError as exc:
    print(type(exc).__name__)''').strip()
    assert answer == "gaierror"


def test_forking_stops_at_the_process_limit(zone):
    """A fork bomb hits the cgroup's pids.max (EAGAIN); the zone goes on."""
    out = json.loads(zone.kernel.run(r'''
import signal, time
kids, outcome = [], "no limit"
for _ in range(5000):
    try:
        pid = os.fork()
    except OSError as exc:
        outcome = _name(exc); break
    if pid == 0:
        signal.pause(); os._exit(0)
    kids.append(pid)
for pid in kids: os.kill(pid, signal.SIGKILL)
for pid in kids: os.waitpid(pid, 0)
print(json.dumps({"outcome": outcome, "forked": len(kids)}))''').strip().splitlines()[-1])
    assert out["outcome"] == "EAGAIN"
    assert out["forked"] < 256


def test_memory_past_the_limit_kills_the_kernel_not_the_zone(zone):
    """Touching 3 GiB in a 2 GiB sandbox: the sandbox cgroup's OOM killer kills the kernel
    (its server reports it restarting or dead); the server and the hub go on, and a new
    kernel runs."""
    stack = zone.stack
    memory = sandbox_cgroup("alice", "memory")
    kills = oom_kills(memory)
    victim = KernelSession(f"{stack.hub_url}/user/alice/", stack.tokens["alice"], timeout=120)
    try:
        with pytest.raises(KernelDied) as died:
            victim.run("x = bytearray(3 * 1024**3)\nx[::4096] = b'\\1' * len(x[::4096])\n"
                       "print('survived')")
        assert str(died.value) in ("restarting", "dead")
    finally:
        victim.close()
    assert oom_kills(memory) > kills
    assert stack.hub_api("alice").get("/users/alice").json()["servers"][""]["ready"]
    assert ask(zone.kernel, "1 + 1") == "2"


def test_keys_work_inside_but_not_from_the_host(zone):
    stack = zone.stack
    creds = json.loads(zone.kernel.run(
        'print(json.dumps([os.environ[k] for k in ("AWS_ACCESS_KEY_ID",'
        ' "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]))'
    ).strip().splitlines()[-1])
    inside = zone.kernel.run(
        f"import boto3\nprint(len(boto3.client('s3').get_object(Bucket={zone.alice.dataset!r},"
        " Key='data.parquet')['Body'].read()) > 0)").strip()
    assert inside == "True"
    from_host = stack.minio.s3(*creds)
    with pytest.raises(ClientError) as refused:
        from_host.get_object(Bucket=zone.alice.dataset, Key="data.parquet")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # the same keys from the zone network (as a notebook) do work: the refusal is the place
    assert session_s3(stack.minio, *creds).get_object(
        Bucket=zone.alice.dataset, Key="data.parquet")["Body"].read()


def test_host_users_cannot_reach_storage_to_spoof_their_address(zone):
    """MinIO takes aws:SourceIp from X-Real-IP / Forwarded headers; so no one on the host
    but root and the control plane may open a connection to its S3 port."""
    stack = zone.stack
    code = (f"import socket; s = socket.socket(); s.settimeout(2)\n"
            f"try:\n s.connect(({ZONE_NET.gateway!r}, {stack.minio.port})); print('OK')\n"
            f"except OSError as e: print(e.errno)")
    done = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                           "/usr/bin/python3", "-c", code], capture_output=True, text=True,
                          timeout=30)
    assert done.stdout.strip() == "111", done.stdout + done.stderr  # ECONNREFUSED


@pytest.mark.parametrize("path", ["/usr/escaped", "/etc/escaped", "/escaped",
                                  "/work-escaped", "SAFEZONE_PKG", "/proc/sys/kernel/hostname",
                                  "/dev/escaped"])
def test_writing_outside_the_workspace_is_refused(zone, path):
    from safezone.config import REPO_ROOT
    path = str(REPO_ROOT / "safezone" / "escaped.py") if path == "SAFEZONE_PKG" else path
    assert ask(zone.kernel, f"try_write({path!r})") in {"EROFS", "EACCES", "EPERM"}
    assert not Path(path).exists() or path.startswith(("/proc", "/dev"))


def test_tmp_is_private_and_workspace_is_the_projects(zone):
    stack = zone.stack
    marker = f"sandbox-{time.time_ns()}"
    assert ask(zone.kernel, f"try_write('/tmp/{marker}')") == "OK"
    assert not Path(f"/tmp/{marker}").exists()
    assert ask(zone.kernel, f"try_write('/workspace/{marker}')") == "OK"
    written = stack.state_dir / "workspaces" / "alice" / zone.alice.project / marker
    assert written.read_bytes() == b"escaped"
    assert written.stat().st_uid != 0 and (written.parent.stat().st_mode & 0o777) == 0o700


def test_dev_shm_is_private(zone):
    """/dev/shm is the sandbox's own tmpfs: a file written there is neither on the host's
    /dev/shm nor in a sibling sandbox's, and a host file there is not seen inside."""
    marker = f"sandbox-shm-{time.time_ns()}"
    host_file = Path("/dev/shm") / f"host-{marker}"
    host_file.write_bytes(b"host")
    try:
        assert ask(zone.kernel, f"try_write('/dev/shm/{marker}')") == "OK"
        assert ask(zone.kernel, f"try_read('/dev/shm/{marker}')") == "OK:" + b"escaped".hex()
        assert not (Path("/dev/shm") / marker).exists()
        alice, carol = server_process("alice"), server_process("carol")
        assert alice and carol
        assert Path(f"/proc/{alice[0]}/root/dev/shm/{marker}").read_bytes() == b"escaped"
        assert not Path(f"/proc/{carol[0]}/root/dev/shm/{marker}").exists()
        assert ask(zone.kernel, f"try_read({str(host_file)!r})") == "ENOENT"
        assert "host-" not in ask(zone.kernel, "try_list('/dev/shm')")
    finally:
        host_file.unlink()


def test_only_root_on_the_host_connects_into_a_sandbox(zone):
    """The hub and its proxy (root) reach a sandbox's server; any other host user is
    refused by the zone's output rule before a packet leaves."""
    address = sandbox_address(zone.stack, "alice")
    code = (f"import socket; s = socket.socket(); s.settimeout(3)\n"
            f"try:\n s.connect(({address!r}, 8888)); print('OK')\n"
            f"except OSError as e: print(e.errno)")
    done = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                           "/usr/bin/python3", "-c", code], capture_output=True, text=True,
                          timeout=30)
    assert done.stdout.strip() == str(errno.EHOSTUNREACH), done.stdout + done.stderr
    with socket.create_connection((address, 8888), timeout=5):
        pass  # root (the proxy's user) does connect


def test_cpu_past_the_limit_is_throttled(zone):
    """Three busy processes for 2 s in a sandbox of one CPU: the cgroup throttles them, and
    together they get no more than the limit's CPU time."""
    from safezone.sandbox.limits import limits_for
    cpus = limits_for(zone.alice.project).cpus
    cpu = sandbox_cgroup("alice", "cpu")
    throttled = cgroup_counts(cpu, "cpu.stat")["nr_throttled"]
    used = json.loads(zone.kernel.run(r'''
import resource, time
before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
kids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        end = time.monotonic() + 2.0
        while time.monotonic() < end: pass
        os._exit(0)
    kids.append(pid)
for pid in kids: os.waitpid(pid, 0)
after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic() - start
cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
print(json.dumps({"cpu": cpu, "wall": wall}))''').strip().splitlines()[-1])
    assert cgroup_counts(cpu, "cpu.stat")["nr_throttled"] > throttled
    assert used["wall"] >= 2.0 and used["cpu"] <= 1.1 * cpus * used["wall"], used


def test_no_privilege_inside(zone):
    status = zone.kernel.run(r'''
caps = {l.split(":")[0]: l.split()[1] for l in open("/proc/self/status")
        if l.startswith(("Cap", "NoNewPrivs"))}
try:
    os.setuid(0); caps["setuid"] = "OK"
except OSError as exc:
    caps["setuid"] = _name(exc)
caps["uid"] = os.getuid()
print(json.dumps(caps))''').strip().splitlines()[-1]
    caps = json.loads(status)
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == "0000000000000000"
    assert caps["NoNewPrivs"] == "1" and caps["setuid"] == "EPERM" and caps["uid"] != 0


@pytest.mark.not_an_escape
def test_the_notebook_still_opens_runs_and_saves(zone):
    stack = zone.stack
    api = httpx.Client(base_url=f"{stack.hub_url}/user/alice/api/", timeout=30,
                       headers={"Authorization": f"token {stack.tokens['alice']}"})
    body = {"type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4,
                                            "nbformat_minor": 5}}
    assert api.put("contents/analysis.ipynb", json=body).status_code in (200, 201)
    assert api.get("contents/analysis.ipynb").json()["type"] == "notebook"


@pytest.mark.parametrize("call", ["unshare_user", "add_key", "io_uring_setup",
                                  "ptrace_server", "server_memory", "unshare_binary"])
def test_kernel_surface_is_closed(zone, call):
    """New namespaces, keyrings (shared by a researcher's sandboxes), io_uring, ptrace and
    the Jupyter server's memory: refused by the seccomp filter or the server's own
    undumpable flag."""
    code = {
        "unshare_user": "libc.unshare(0x10000000)",
        "add_key": "libc.syscall(248, b'user', b'sz-covert', b'data', 4, -4)",
        "io_uring_setup": "libc.syscall(425, 1, ctypes.create_string_buffer(120))",
        "ptrace_server": "libc.ptrace(16, 1, 0, 0)",  # PTRACE_ATTACH to the server
    }.get(call)
    if call == "server_memory":
        assert ask(zone.kernel, "try_read('/proc/1/mem')") in {"EACCES", "EPERM"}
        assert "jupyterhub.singleuser" in ask(zone.kernel, "open('/proc/1/cmdline').read()")
        return
    if call == "unshare_binary":
        done = zone.kernel.run("import subprocess\nr = subprocess.run(['unshare', '-Ur', "
                               "'id', '-u'], capture_output=True, text=True)\n"
                               "print(r.returncode, r.stdout.strip() or 'none')").strip()
        assert done == "1 none"
        return
    result = zone.kernel.run(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"r = {code}\nprint(r, errno.errorcode.get(ctypes.get_errno()))").strip()
    assert result == "-1 EPERM"


def test_no_login_from_the_notebook_network(zone):
    """A password typed into the kernel neither logs in nor mints a hub token there."""
    stack = zone.stack
    own = stack.hub_api("alice")
    before = len(own.get("/users/alice/tokens").json()["api_tokens"])
    answer = zone.kernel.run(f"""
import json, os, urllib.request, urllib.error
api = os.environ["JUPYTERHUB_API_URL"]
body = json.dumps({{"auth": {{"username": "alice", "password": {stack.passwords['alice']!r}}},
                   "note": "x" * 60000}}).encode()
request = urllib.request.Request(api + "/users/alice/tokens", data=body, method="POST",
                                 headers={{"X-Forwarded-For": "127.0.0.1"}})
try:
    print(urllib.request.urlopen(request).status)
except urllib.error.HTTPError as exc:
    print(exc.code)""").strip()
    assert answer == "403"
    assert len(own.get("/users/alice/tokens").json()["api_tokens"]) == before


def test_files_in_the_workspace_do_not_reconfigure_the_next_server(zone):
    """Jupyter config and Lab extension folders written into the workspace are not read
    when the server starts again: the download controls and the terminal switch hold.
    (Last in this module: it restarts alice's server.)"""
    stack = zone.stack
    planted = {".jupyter/jupyter_server_config.py", ".jupyter/jupyter_config.py",
               "jupyter_server_config.py", ".local/etc/jupyter/jupyter_server_config.py",
               "etc/jupyter/jupyter_server_config.py"}
    writes = "\n".join(
        f"os.makedirs(os.path.dirname('/workspace/{p}') or '/workspace', exist_ok=True)\n"
        f"open('/workspace/{p}', 'w').write(\"open('/workspace/LOADED-{i}', 'w').write('1')"
        f"\\nc.ServerApp.terminals_enabled = True\\n\")"
        for i, p in enumerate(sorted(planted)))
    zone.kernel.run(writes)
    workspace = stack.state_dir / "workspaces" / "alice" / zone.alice.project
    assert all((workspace / p).exists() for p in planted)
    hub = stack.hub_api("alice")
    hub.delete("/users/alice/server")
    wait_until(lambda: not hub.get("/users/alice").json()["servers"], timeout=60)
    start_server(stack, "alice", zone.alice.project)
    loaded = sorted(p.name for p in workspace.glob("LOADED-*"))
    assert loaded == []
    terminals = httpx.post(f"{stack.hub_url}/user/alice/api/terminals", timeout=30,
                           headers={"Authorization": f"token {stack.tokens['alice']}"})
    assert terminals.status_code in (403, 404)
