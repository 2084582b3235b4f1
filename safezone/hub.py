"""Client of the JupyterHub REST API: resolve tokens, stop servers."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from urllib.parse import quote

import httpx
from cachetools import TTLCache

from .errors import NotAuthenticated, PermissionDenied
from .permissions import Identity

log = logging.getLogger(__name__)
TOKEN_CACHE_SECONDS = 5.0
TOKEN_CACHE_ENTRIES = 50_000
# only the token JupyterHub gives a notebook server carries access to one named server
SERVER_SCOPE = "access:servers!server="


class HubClient:
    """Talks to the hub with the control-plane service's own token."""

    def __init__(self, api_url: str, service_token: str, service_name: str = "safezone") -> None:
        self.api_url = api_url.rstrip("/")
        self.service_token = service_token
        self.service_name = service_name
        # the hub's answers of the last few seconds, bounded (anyone may mint many tokens)
        self._cache: TTLCache[str, Identity] = TTLCache(TOKEN_CACHE_ENTRIES,
                                                        TOKEN_CACHE_SECONDS, time.monotonic)
        self._cache_lock = threading.Lock()
        self._http = httpx.Client(timeout=10)

    def identify(self, token: str) -> Identity:
        """Who holds ``token``; raises NotAuthenticated for unknown or expired tokens."""
        known = self.known(token)
        if known is not None:
            return known
        key = hashlib.sha256(token.encode()).hexdigest()
        try:
            response = self._http.get(f"{self.api_url}/user",
                                      headers={"Authorization": f"token {token}"})
        except httpx.HTTPError as exc:
            raise NotAuthenticated(f"cannot reach the hub to check the token: {exc}") from exc
        if response.status_code in (401, 403):
            raise NotAuthenticated("the hub does not accept this token (토큰 인증 실패)")
        response.raise_for_status()
        model = response.json()
        scopes = frozenset(model.get("scopes") or [])
        kind = model.get("kind", "user")
        if kind == "user" and not self._may_access_service(scopes):
            raise PermissionDenied("this token may not access the Safezone service")
        identity = Identity(name=model["name"], kind=kind, scopes=scopes,
                            browser=bool(model.get("session_id")),
                            operator=bool(model.get("admin")),
                            notebook=any(s.startswith(SERVER_SCOPE) for s in scopes))
        with self._cache_lock:
            self._cache[key] = identity
        return identity

    def known(self, token: str) -> Identity | None:
        """Who holds ``token`` if the hub said so in the last few seconds (no call)."""
        with self._cache_lock:
            return self._cache.get(hashlib.sha256(token.encode()).hexdigest())

    def _may_access_service(self, scopes: frozenset[str]) -> bool:
        return bool({"access:services", f"access:services!service={self.service_name}"}
                    & scopes)

    def stop_server(self, user: str, server_name: str = "") -> bool:
        """Ask the hub to stop a server; True if the hub accepted (or it was not running)."""
        path = f"/users/{quote(user)}/server"
        if server_name:
            path = f"/users/{quote(user)}/servers/{quote(server_name)}"
        try:
            response = self._http.delete(
                f"{self.api_url}{path}", headers={"Authorization": f"token {self.service_token}"}
            )
        except httpx.HTTPError as exc:
            log.warning("could not ask the hub to stop %s/%s: %s", user, server_name, exc)
            return False
        # 400: the server was not running; 404: the hub has no such user or server.
        if response.status_code not in (200, 202, 204, 400, 404):
            log.warning("hub refused to stop %s/%s: %s %s", user, server_name,
                        response.status_code, response.text[:200])
            return False
        return True
