"""Browser sessions through the hub's OAuth: the cookie holds the hub-issued token.

The control plane is the hub's OAuth client ``service-<name>``; its secret is the
service's API token. Forms carry a CSRF value derived from the session token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import httpx

from ..db import take_write_turn
from ..errors import NotAuthenticated
from ..models import PageLogout

if TYPE_CHECKING:
    from ..zone import Zone

COOKIE = "safezone-session"
STATE_COOKIE = "safezone-oauth-state"
# a page session lasts a working day; the hub's OAuth tokens expire with it (hub config)
PAGE_SESSION = timedelta(hours=8)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def log_out(zone: Zone, token: str) -> None:
    """Refuse this page session's token from now until it would have expired anyway."""
    with zone.sessions() as db, db.begin():
        take_write_turn(db)
        if db.get(PageLogout, token_hash(token)) is None:
            db.add(PageLogout(token_hash=token_hash(token), until=zone.now() + PAGE_SESSION))


def logged_out(zone: Zone, token: str) -> bool:
    with zone.sessions() as db:
        return db.get(PageLogout, token_hash(token)) is not None


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"safezone-csrf", hashlib.sha256).hexdigest()[:32]


def csrf_ok(session_token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(session_token), presented or "")


class HubOAuthClient:
    """Authorization-code flow against JupyterHub's OAuth provider."""

    def __init__(self, hub_api_url: str, service_name: str, secret: str, prefix: str) -> None:
        self.hub_api_url = hub_api_url.rstrip("/")
        self.client_id = f"service-{service_name}"
        self.secret = secret
        self.prefix = prefix.rstrip("/") + "/"
        self.redirect_uri = f"{self.prefix}oauth_callback"

    def authorize_url(self, state: str) -> str:
        """Relative to the hub's public origin (the browser reaches both via the proxy)."""
        query = urlencode({"client_id": self.client_id, "redirect_uri": self.redirect_uri,
                           "response_type": "code", "state": state})
        return f"/hub/api/oauth2/authorize?{query}"

    @staticmethod
    def new_state(next_url: str) -> tuple[str, str]:
        """(state sent to the hub, cookie value remembering where to go back)."""
        state = secrets.token_urlsafe(16)
        return state, f"{state}|{quote(next_url, safe='/?=&')}"

    def exchange(self, code: str) -> str:
        response = httpx.post(f"{self.hub_api_url}/oauth2/token", timeout=30, data={
            "client_id": self.client_id, "client_secret": self.secret,
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": self.redirect_uri})
        if response.status_code != 200:
            raise NotAuthenticated(f"the hub refused the login code ({response.status_code})")
        return response.json()["access_token"]
