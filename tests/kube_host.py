"""What a node cluster changes on the host, and putting it back.

The cluster adds a node interface, a CNI bridge, pod network namespaces, mounts (pod
volumes, container root filesystems), iptables rules (nf_tables backend) and ipsets. A
snapshot taken before it starts is compared with the host after it stops: anything new is
removed, and what could not be removed is reported, so a test can fail on leftovers.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def nft_tables() -> set[str]:
    out = json.loads(run("nft", "-j", "list", "tables").stdout or "{}")
    return {f"{t['table']['family']} {t['table']['name']}"
            for t in out.get("nftables", []) if "table" in t}


def ipsets() -> set[str]:
    return set(run("ipset", "list", "-n", check=False).stdout.split())


def netns() -> set[str]:
    return {line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines() if line}


def links() -> set[str]:
    return {link["ifname"] for link in json.loads(run("ip", "-j", "link", "show").stdout)}


def mounts() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        points.append(line.split()[4].replace("\\040", " "))
    return points


@dataclass(frozen=True)
class HostState:
    nft_tables: frozenset[str]
    ipsets: frozenset[str]
    netns: frozenset[str]
    links: frozenset[str]
    mounts: frozenset[str]

    @classmethod
    def capture(cls) -> HostState:
        return cls(frozenset(nft_tables()), frozenset(ipsets()), frozenset(netns()),
                   frozenset(links()), frozenset(mounts()))

    def added_since(self, before: HostState, roots: tuple[Path, ...]) -> dict[str, list[str]]:
        """What exists now and did not before (mounts: only under ``roots``)."""
        under = tuple(str(r) for r in roots)
        return {name: sorted(now - then) for name, now, then in (
            ("nftables tables", self.nft_tables, before.nft_tables),
            ("ipsets", self.ipsets, before.ipsets),
            ("network namespaces", self.netns, before.netns),
            ("interfaces", self.links, before.links),
            ("mounts", {m for m in self.mounts if m.startswith(under)}, before.mounts))
            if now - then}


def remove_added(before: HostState, roots: tuple[Path, ...]) -> None:
    """Remove what was added since ``before``: mounts deepest first, then network parts."""
    added = HostState.capture().added_since(before, roots)
    for point in sorted(added.get("mounts", []), key=len, reverse=True):
        run("umount", "-l", point, check=False)
    for name in added.get("network namespaces", []):
        run("ip", "netns", "delete", name, check=False)
    for name in added.get("interfaces", []):
        run("ip", "link", "delete", name, check=False)
    for table in added.get("nftables tables", []):
        run("nft", "delete", "table", *table.split(), check=False)
    for name in added.get("ipsets", []):
        run("ipset", "destroy", name, check=False)


def add_node_interface(name: str, addresses: list[str]) -> None:
    """A veth pair (no dummy interfaces here) carrying the node's addresses."""
    run("ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}-p")
    for address in addresses:
        run("ip", "addr", "add", address, "dev", name)
    run("ip", "link", "set", f"{name}-p", "up")
    run("ip", "link", "set", name, "up")


def set_sysctl(key: str, value: str) -> str:
    """Set a sysctl, returning the old value (to put back)."""
    path = Path("/proc/sys") / key.replace(".", "/")
    old = path.read_text().strip()
    path.write_text(value)
    return old


def pids_running(needle: str) -> list[int]:
    """Processes whose command line contains ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found
