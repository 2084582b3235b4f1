"""Where a call comes from: the zone's notebook network, judged by the TCP peer.

The control plane runs without proxy headers, so ``request.client`` is the connection's
own peer (a forwarded-for header cannot make an outside caller look inside). A token's
shape cannot say it either: a researcher may mint a token with a notebook server's scopes
from outside, or type their own token into a kernel.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import replace

from starlette.requests import Request

from ..config import Settings
from ..permissions import Identity


def from_notebook_network(settings: Settings, request: Request) -> bool:
    """True when the caller's peer address is in the inside networks (and not excluded)."""
    if not settings.inside_networks or request.client is None:
        return False
    return _inside(request.client.host, tuple(settings.inside_networks),
                   tuple(settings.inside_excluded))


@functools.lru_cache(maxsize=4096)  # peers repeat: the proxy, the notebooks
def _inside(host: str, networks: tuple[str, ...], excluded: tuple[str, ...]) -> bool:
    try:
        peer = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped:
        peer = peer.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    inside = any(peer in ipaddress.ip_network(n) for n in networks)
    return inside and not any(peer in ipaddress.ip_network(n) for n in excluded)


def placed(identity: Identity, settings: Settings, request: Request) -> Identity:
    """``identity`` with where it called from: inside the zone counts as a notebook (every
    restriction on notebooks applies), whatever token it holds."""
    inside = from_notebook_network(settings, request)
    return replace(identity, inside=inside, notebook=identity.notebook or inside)
