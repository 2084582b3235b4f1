"""A local-mode authenticator: users and scrypt password hashes from a JSON file.

For the one-machine zone and tests only; production uses OIDC (GenericOAuthenticator).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
from pathlib import Path

from jupyterhub.auth import Authenticator
from traitlets import List, Unicode, default

SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
    except ValueError:
        return False
    candidate = hash_password(password, base64.b64decode(salt)).split("$")[2]
    return hmac.compare_digest(candidate, digest)


class FileAuthenticator(Authenticator):
    """Checks a username/password against ``users_file`` ({"name": "scrypt$…"})."""

    users_file = Unicode(config=True, help="JSON file mapping user names to scrypt hashes.")

    @default("users_file")
    def _default_users_file(self) -> str:
        return os.environ.get("SAFEZONE_USERS_FILE", "")

    @default("allowed_users")
    def _default_allowed_users(self) -> set[str]:
        return set(self._users())  # the hub creates them at start-up

    def _users(self) -> dict[str, str]:
        path = Path(self.users_file)
        return json.loads(path.read_text()) if self.users_file and path.exists() else {}

    refused_networks = List(Unicode(), config=True, help=(
        "CIDRs no one may log in from (the notebook sandboxes): a password typed into a "
        "notebook must not mint a hub token there. Checked on the connection's own peer "
        "address, never on X-Forwarded-For."))

    async def authenticate(self, handler, data: dict[str, str]) -> str | None:
        peer = peer_address(handler)
        if peer and any(peer in ipaddress.ip_network(n) for n in self.refused_networks):
            self.log.warning("login refused from the notebook network (%s)", peer)
            return None
        name, password = data.get("username", ""), data.get("password", "")
        stored = self._users().get(name)
        if stored and check_password(password, stored):
            return name
        return None


def peer_address(handler) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The TCP peer of the request (tornado keeps it apart from the forwarded-for IP)."""
    address = getattr(getattr(handler.request.connection, "context", None), "address", None)
    try:
        return ipaddress.ip_address(address[0]) if address else None
    except (ValueError, TypeError, IndexError):
        return None
