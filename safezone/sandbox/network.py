"""The zone's notebook network: a bridge, one network namespace per sandbox, nftables rules.

Each sandbox gets a namespace named after its address (``<bridge>-<n>`` is ``.n`` of the
subnet), joined to the zone bridge by a veth pair whose bridge port is isolated. The
gateway address on the bridge is the host's; zone services that sandboxes need listen
there. The nftables rules (one table per zone, replaced whole) let a sandbox open
connections only to the allowed service ports on the gateway, and let only root on the
host (the hub and its proxy) open connections into a sandbox.
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NETNS_DIR = Path("/run/netns")


class NetworkError(RuntimeError):
    """A network command failed; the message names the command."""


def run(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetworkError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@dataclass
class ZoneNetwork:
    """One zone's bridge and rules. ``service_ports``: ports sandboxes may reach on the
    gateway; ``storage_ports``: of those, the ones only root and ``storage_clients`` (uids)
    may open from the host (MinIO trusts forwarded-for headers for ``aws:SourceIp``)."""

    bridge: str = "szbr0"
    subnet: str = "10.99.0.0/24"
    service_ports: set[int] = field(default_factory=set)
    storage_ports: set[int] = field(default_factory=set)
    storage_clients: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        net = ipaddress.ip_network(self.subnet)
        if net.version != 4 or net.prefixlen > 28:
            raise ValueError(f"sandbox subnet {self.subnet}: an IPv4 network of /28 or larger")
        if len(self.bridge) > 10 or not self.bridge.isalnum():
            raise ValueError(f"bridge name {self.bridge!r}: up to 10 letters and digits")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def excluded(self) -> str:
        """The host's own address on the bridge: never a sandbox's (session-key policy)."""
        return f"{self.gateway}/32"

    @property
    def sandbox_networks(self) -> list[str]:
        """The subnet without the gateway, as CIDRs: where sandboxes' connections come from."""
        gateway = ipaddress.ip_network(self.excluded)
        return sorted(str(n) for n in self.network.address_exclude(gateway))

    @property
    def bridge_mac(self) -> str:
        """A locally administered unicast MAC derived from the bridge's name."""
        digest = hashlib.sha256(self.bridge.encode()).digest()[:5]
        return ":".join(f"{b:02x}" for b in (0x02, *digest))

    @property
    def table(self) -> str:
        return f"safezone_{self.bridge}"

    # -- the bridge and its rules ----------------------------------------------------
    def up(self) -> ZoneNetwork:
        """Create the bridge (idempotent) and install the rules."""
        if not Path(f"/sys/class/net/{self.bridge}").exists():
            run("ip", "link", "add", self.bridge, "type", "bridge")
        # a fixed MAC: a bridge otherwise takes its lowest port's, so a sandbox stopping
        # would change the gateway's MAC and cut the others off until their ARP expires
        run("ip", "link", "set", self.bridge, "address", self.bridge_mac)
        run("ip", "addr", "replace", f"{self.gateway}/{self.network.prefixlen}",
            "dev", self.bridge)
        _sysctl(f"net/ipv6/conf/{self.bridge}/disable_ipv6", "1")
        run("ip", "link", "set", self.bridge, "up")
        self.apply_rules()
        return self

    def allow(self, port: int, storage: bool = False) -> None:
        """Let sandboxes reach ``port`` on the gateway (re-applies the rules)."""
        self.service_ports.add(port)
        if storage:
            self.storage_ports.add(port)
        self.apply_rules()

    def apply_rules(self) -> None:
        run("nft", "-f", "-", stdin=self.ruleset())

    def ruleset(self) -> str:
        def elements(values: set[int]) -> str:
            return ", ".join(str(v) for v in sorted(values)) or "0"

        bridge, gateway = self.bridge, self.gateway
        clients = elements({0, *self.storage_clients})
        return f"""
table inet {self.table}
delete table inet {self.table}
table inet {self.table} {{
  chain input {{
    type filter hook input priority -5; policy accept;
    iifname "{bridge}" ct state established,related accept
    iifname "{bridge}" ip daddr {gateway} tcp dport {{ {elements(self.service_ports)} }} accept
    iifname "{bridge}" meta l4proto tcp reject with tcp reset
    iifname "{bridge}" reject with icmpx admin-prohibited
  }}
  chain forward {{
    type filter hook forward priority -5; policy accept;
    iifname "{bridge}" drop
    oifname "{bridge}" drop
  }}
  chain output {{
    type filter hook output priority -5; policy accept;
    oifname "{bridge}" ct state new meta skuid != 0 reject with icmpx admin-prohibited
    ip daddr {gateway} tcp dport {{ {elements(self.storage_ports)} }} ct state new \\
      meta skuid != {{ {clients} }} reject with tcp reset
  }}
}}
table bridge {self.table}
delete table bridge {self.table}
table bridge {self.table} {{
  chain forward {{
    type filter hook forward priority -5; policy accept;
    iifname "{bridge}v*" drop
  }}
}}
"""

    def down(self) -> None:
        """Remove every sandbox namespace of this zone, the rules and the bridge."""
        for name in self.namespaces():
            self.detach(name)
        for family in ("inet", "bridge"):
            subprocess.run(["nft", "delete", "table", family, self.table],
                           capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)

    # -- sandboxes -------------------------------------------------------------------
    def namespaces(self) -> list[str]:
        prefix = f"{self.bridge}-"
        return sorted(p.name for p in NETNS_DIR.glob(f"{prefix}*")) if NETNS_DIR.exists() else []

    def attach(self) -> tuple[str, str]:
        """A new namespace on the bridge: returns (namespace name, its address)."""
        hosts = list(self.network.hosts())[1:]  # .1 is the gateway
        for address in hosts:
            n = int(address) - int(self.network.network_address)
            name = f"{self.bridge}-{n}"
            if (NETNS_DIR / name).exists():
                continue
            try:
                run("ip", "netns", "add", name)
            except NetworkError:
                continue  # taken meanwhile
            try:
                self._wire(name, n, str(address))
            except Exception:
                self.detach(name)
                raise
            return name, str(address)
        raise NetworkError(f"no free sandbox address left in {self.subnet}")

    def _wire(self, name: str, n: int, address: str) -> None:
        host_end, inner = f"{self.bridge}v{n}", f"{self.bridge}i{n}"
        run("ip", "link", "add", host_end, "type", "veth", "peer", "name", inner)
        run("ip", "link", "set", inner, "netns", name)
        run("ip", "link", "set", host_end, "master", self.bridge)
        run("ip", "link", "set", "dev", host_end, "type", "bridge_slave", "isolated", "on")
        run("ip", "link", "set", host_end, "up")
        run("ip", "netns", "exec", name, "sysctl", "-q", "-w",
            "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        run("ip", "-n", name, "link", "set", inner, "name", "eth0")
        run("ip", "-n", name, "addr", "add", f"{address}/{self.network.prefixlen}",
            "dev", "eth0")
        run("ip", "-n", name, "link", "set", "eth0", "up")
        run("ip", "-n", name, "link", "set", "lo", "up")

    def detach(self, name: str) -> None:
        """Delete a sandbox namespace (its veth pair goes with it). Idempotent."""
        if not name.startswith(f"{self.bridge}-"):
            raise ValueError(f"{name} is not a namespace of {self.bridge}")
        n = name.rsplit("-", 1)[1]
        subprocess.run(["ip", "link", "del", f"{self.bridge}v{n}"], capture_output=True,
                       check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key
    if path.exists():
        path.write_text(value)
