"""What the host must have before the zone may run notebooks: checked, never faked."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TOOLS = {"runc": "runc", "nft": "nftables", "ip": "iproute2", "useradd": "passwd"}
NAMESPACES = ("net", "pid", "mnt", "ipc", "uts", "cgroup")
CONTROLLERS = ("memory", "pids", "cpu")


def cgroup_controllers() -> set[str]:
    """Controllers available, on cgroup v2 (unified) or v1 (one hierarchy each)."""
    unified = Path("/sys/fs/cgroup/cgroup.controllers")
    if unified.exists():
        return set(unified.read_text().split())
    return {c for c in CONTROLLERS if Path("/sys/fs/cgroup", c).is_dir()}


def seccomp_available() -> bool:
    """The kernel filters system calls and can answer one with an errno (what runc needs
    for the filter of policies/sandbox.yaml)."""
    actions = Path("/proc/sys/kernel/seccomp/actions_avail")
    return actions.exists() and "errno" in actions.read_text().split()


def missing() -> list[str]:
    """Each missing requirement, named so an operator can fix it."""
    found = []
    if os.geteuid() != 0:
        found.append("root (the hub creates users, namespaces, cgroups and firewall rules)")
    for tool, package in TOOLS.items():
        # the PATH the zone will run it from (the spawner and network code call tools by
        # name): a tool only in a folder off that PATH would fail at the first notebook
        if not shutil.which(tool):
            found.append(f"{tool} (Debian package {package}, on PATH)")
    for ns in NAMESPACES:
        if not Path(f"/proc/self/ns/{ns}").exists():
            found.append(f"kernel {ns} namespaces")
    absent = sorted(set(CONTROLLERS) - cgroup_controllers())
    if absent:
        found.append(f"cgroup controllers {', '.join(absent)}")
    if not seccomp_available():
        found.append("kernel seccomp filters (policies/sandbox.yaml's system call filter)")
    if not Path("/proc/sys/net/ipv4").exists():
        found.append("IPv4 networking")
    return found


def require_sandbox() -> None:
    """Raise :class:`SandboxUnavailable` naming every missing requirement."""
    gaps = missing()
    if gaps:
        raise SandboxUnavailable("cannot sandbox notebooks, missing: " + "; ".join(gaps)
                                 + " — install them and run as root, or start with "
                                   "--unisolated-demo (notebooks NOT isolated)")


class SandboxUnavailable(RuntimeError):
    """The host lacks a primitive the notebook sandbox needs."""
