"""The one-machine zone's processes: it refuses to start beside a program on its ports, a
stop asked for while it starts stops what had started, and a killed hub's proxy (in a
session of its own) is stopped with the hub. Real processes: configurable-http-proxy,
MinIO and `safezone local up` itself."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from safezone.config import REPO_ROOT
from safezone.local.launcher import PORTS
from safezone.local.processes import ManagedProcess, PortInUse, require_free_ports
from safezone.local.services import proxy_binary

from .support import port_is_free, wait_until

pytestmark = pytest.mark.integration


def zone_up(state: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "safezone.cli", "local", "up",
                             "--state-dir", str(state), *extra], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_a_taken_port_is_named_and_nothing_starts(tmp_path):
    """Another program on the proxy's API port: exit 1, one line naming the port and the
    program holding it; no state folder, no service started."""
    require_free_ports({"hub": 8000, **PORTS})  # the test's own precondition
    holder = socket.socket()
    holder.bind(("127.0.0.1", PORTS["proxy_api"]))
    holder.listen()
    state = tmp_path / "zone"
    try:
        process = zone_up(state)
        out, err = process.communicate(timeout=60)
    finally:
        holder.close()
    assert process.returncode == 1, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.fullmatch(rf"error: port 8001 \(proxy_api\) is in use by \S+ "
                        rf"\(pid {os.getpid()}\): .+", lines[0]), lines[0]
    assert not state.exists()
    assert processes_mentioning(str(state)) == []


def test_ports_given_twice_or_out_of_range_are_refused():
    for ports, said in (({"hub": 8001, "proxy_api": 8001}, "given to both hub and proxy_api"),
                        ({"hub": 70000}, "not a port number")):
        with pytest.raises(PortInUse, match=said):
            require_free_ports(ports)


def test_a_stop_while_starting_stops_what_started(tmp_path):
    """SIGTERM once MinIO is being started: the zone stops it (MinIO runs in a session of
    its own, so the signal alone would not reach it) and frees every port."""
    state = tmp_path / "zone"
    process = zone_up(state, "--unisolated-demo")  # no bridge: the quickest start
    try:
        wait_until(lambda: processes_mentioning(str(state / "minio")), timeout=120,
                   interval=0.1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=150)
    assert processes_mentioning(str(state)) == []
    require_free_ports({"hub": 8000, **PORTS})


def test_a_killed_hubs_proxy_is_stopped_with_it(tmp_path):
    """The hub is SIGKILLed (no clean-up): the proxy it started, named by its pid file, is
    stopped with it. A pid file naming some other program stops nothing."""
    def listening_proxy(port: int, api_port: int) -> subprocess.Popen:
        proxy = subprocess.Popen([str(proxy_binary()), "--ip", "127.0.0.1", "--port",
                                  str(port), "--api-ip", "127.0.0.1", "--api-port",
                                  str(api_port)], start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": "t"})
        wait_until(lambda: not port_is_free(api_port), timeout=30)
        return proxy

    proxy = listening_proxy(18431, 18432)
    bystander = subprocess.Popen(["sleep", "600"])
    (tmp_path / "proxy.pid").write_text(str(proxy.pid))
    (tmp_path / "other.pid").write_text(str(bystander.pid))
    hub = ManagedProcess.start("hub", ["sleep", "600"], tmp_path / "hub.log")
    hub.leaves = ((tmp_path / "proxy.pid", "configurable-http-proxy"),
                  (tmp_path / "other.pid", "configurable-http-proxy"))
    try:
        os.killpg(hub.popen.pid, signal.SIGKILL)
        hub.popen.wait(10)
        assert proxy.poll() is None  # what a killed hub leaves behind
        hub.stop()
        proxy.wait(10)  # it exits (a timeout here fails the test)
        assert port_is_free(18431) and port_is_free(18432)
        assert bystander.poll() is None
        # neither pid file is left for the next hub, which would signal whatever has the pid
        assert not (tmp_path / "proxy.pid").exists() and not (tmp_path / "other.pid").exists()
    finally:
        for child in (proxy, bystander):
            child.kill()
            child.wait()


def test_a_started_service_can_be_stopped_by_sigterm(tmp_path):
    """A service starts with no signal blocked (a child inherits its starter's mask: a
    hub that cannot get SIGTERM never cleans up, and is SIGKILLed), joins the starter's
    list at once, and a stop ends it with SIGTERM, not SIGKILL."""
    started: list[ManagedProcess] = []
    process = ManagedProcess.start("sleeper", ["sleep", "600"], tmp_path / "sleeper.log",
                                   into=started)
    assert started == [process]
    status = Path(f"/proc/{process.popen.pid}/status").read_text()
    blocked = int(re.search(r"^SigBlk:\s*([0-9a-f]+)$", status, re.M)[1], 16)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        assert not blocked & (1 << (sig - 1)), sig
    process.stop(timeout=10)
    assert process.popen.returncode == -signal.SIGTERM
