"""A local-mode authenticator: users and scrypt password hashes from a JSON file.

For the one-machine zone and tests only; production uses OIDC (GenericOAuthenticator).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path

from jupyterhub.auth import Authenticator
from traitlets import Unicode, default

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

    async def authenticate(self, handler, data: dict[str, str]) -> str | None:
        name, password = data.get("username", ""), data.get("password", "")
        stored = self._users().get(name)
        if stored and check_password(password, stored):
            return name
        return None
