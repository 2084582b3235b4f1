"""Hub-side plugins of Safezone: spawners that turn a session grant into a server."""

from .grant_client import GrantClient, GrantRefused
from .local import SafeZoneLocalSpawner

__all__ = ["GrantClient", "GrantRefused", "SafeZoneLocalSpawner"]
