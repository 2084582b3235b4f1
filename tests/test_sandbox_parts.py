"""The sandbox's parts on their own: Unix names, limits, the OCI bundle, the rules."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from safezone.config import REPO_ROOT
from safezone.sandbox.bundle import SandboxSpec, prepare_rootfs, write_bundle
from safezone.sandbox.limits import Limits, limits_for
from safezone.sandbox.network import ZoneNetwork
from safezone.sandbox.users import UnixUser, unix_name


def test_unix_names_are_stable_safe_and_never_shared():
    assert unix_name("alice") == "sz-alice"
    names = ["Alice", "alice@example.org", "ALICE", "a" * 40, "a" * 41, "김민수", "al.ice"]
    mapped = [unix_name(n) for n in names]
    assert len(set(mapped)) == len(names) and "sz-alice" not in mapped
    for name in mapped:
        assert len(name) <= 32 and name.startswith("sz-")
        assert all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    assert mapped == [unix_name(n) for n in names]


def test_limits_come_from_policy_with_project_overrides():
    policy = {"limits": {"default": {"memory_mib": 2048, "cpus": 1.0, "processes": 256},
                         "projects": {"big": {"memory_mib": 8192}}}}
    assert limits_for("small", policy) == Limits(2048, 1.0, 256)
    assert limits_for("big", policy) == Limits(8192, 1.0, 256)
    policy["limits"]["projects"]["tiny"] = {"processes": 2}
    with pytest.raises(ValueError, match="too small"):
        limits_for("tiny", policy)
    assert limits_for("any") == Limits(2048, 1.0, 256)  # policies/sandbox.yaml


def test_bundle_holds_keys_privately_and_mounts_no_zone_state(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    spec = SandboxSpec("c1", UnixUser("sz-alice", 1500, 1500), workspace, "szbr0-2",
                       Limits(512, 0.5, 64), ["python"], {"AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    config_path = write_bundle(tmp_path / "bundle", prepare_rootfs(tmp_path / "rootfs"), spec)
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "bundle").stat().st_mode) == 0o700
    config = json.loads(config_path.read_text())
    process = config["process"]
    assert process["user"]["uid"] == 1500 and process["noNewPrivileges"] is True
    assert all(caps == [] for caps in process["capabilities"].values())
    assert config["root"]["readonly"] is True
    binds = {m["destination"]: m for m in config["mounts"] if m["type"] == "bind"}
    writable = [d for d, m in binds.items() if "rw" in m["options"]]
    assert writable == ["/workspace"]
    assert all("nosuid" in m["options"] for m in binds.values())
    sources = [Path(m["source"]) for m in binds.values()]
    assert not any(s == REPO_ROOT or REPO_ROOT / ".cache" in [s, *s.parents] for s in sources)
    assert Path("/etc/passwd") not in sources and Path("/etc/shadow") not in sources
    resources = config["linux"]["resources"]
    assert resources["memory"]["limit"] == 512 << 20
    assert resources["cpu"]["quota"] == 50_000 and resources["pids"]["limit"] == 64
    namespaces = {n["type"]: n for n in config["linux"]["namespaces"]}
    assert namespaces["network"]["path"] == "/run/netns/szbr0-2"
    assert {"pid", "mount", "ipc", "uts"} <= set(namespaces)


def test_rules_name_the_services_and_the_storage_clients():
    net = ZoneNetwork(bridge="szbr9", subnet="10.99.9.0/24", service_ports={9000, 8081},
                      storage_ports={9000}, storage_clients={993})
    rules = net.ruleset()
    assert 'iifname "szbr9" ip daddr 10.99.9.1 tcp dport { 8081, 9000 } accept' in rules
    assert "meta skuid != { 0, 993 }" in rules
    assert 'oifname "szbr9" ct state new meta skuid != 0 reject' in rules
    assert 'iifname "szbr9v*" drop' in rules
    assert net.excluded == "10.99.9.1/32"
    with pytest.raises(ValueError):
        ZoneNetwork(bridge="a-very-long-bridge")
    with pytest.raises(ValueError):
        ZoneNetwork(subnet="10.0.0.0/30")


def test_the_gateway_keeps_its_mac_when_a_sandbox_leaves():
    """A bridge takes its lowest port's MAC unless pinned: a sandbox stopping would then
    change the gateway's MAC and cut every other sandbox off until its ARP entry expired
    (seen: 25-70 s of connection timeouts to storage)."""
    net = ZoneNetwork(bridge="szmac0", subnet="10.99.202.0/24").up()
    try:
        first, _ = net.attach()
        second, _ = net.attach()
        mac = Path("/sys/class/net/szmac0/address").read_text().strip()
        assert mac == net.bridge_mac
        net.detach(first)
        assert Path("/sys/class/net/szmac0/address").read_text().strip() == mac
        assert net.namespaces() == [second]
    finally:
        net.down()
    assert not Path("/sys/class/net/szmac0").exists() and net.namespaces() == []
