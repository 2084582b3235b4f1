"""The hub's ``post_auth_hook``: every login is reported to the control plane's access
records, with the address the hub saw (its connection's peer; behind the trusted
configurable-http-proxy, the hop the proxy appended to X-Forwarded-For) and the spawner's
service token, which the hub holds.

A login that cannot be recorded is refused (503): the records must hold every access.
A login the hub's authenticator refuses for a reason worth reviewing (a name bound to
another person of the identity provider) is reported as denied (``report_refused``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx

log = logging.getLogger(__name__)
TIMEOUT = 10.0


def _settings() -> tuple[str, str]:
    url = os.environ.get("SAFEZONE_CONTROL_PLANE_URL", "http://127.0.0.1:8700").rstrip("/")
    return url, os.environ.get("SAFEZONE_SPAWNER_TOKEN", "")


def login_source(request: Any) -> str:
    """Where a login came from: the connection's own peer, or the last X-Forwarded-For hop
    when that peer is the trusted proxy (``sources.source_of``). Never tornado's
    ``remote_ip``: the hub runs with ``xheaders``, which takes a client's own X-Real-Ip."""
    from .sources import source_of

    context = getattr(request.connection, "context", None)
    address = getattr(context, "address", None)
    peer = address[0] if isinstance(address, tuple) and address else ""
    return source_of(peer, request.headers.get("X-Forwarded-For", ""))


async def _post_login(body: dict[str, str]) -> str:
    """Send one login to the records; '' when recorded, else why not."""
    url, token = _settings()
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.post(f"{url}/api/records/logins", json=body,
                                         headers={"Authorization": f"token {token}"})
    except httpx.HTTPError as exc:
        return f"control plane unreachable ({type(exc).__name__})"
    if response.status_code != 201:
        return f"control plane answered {response.status_code}"
    return ""


async def report_login(authenticator: Any, handler: Any, authentication: dict | None
                       ) -> dict | None:
    """Tell the control plane who logged in from where; refuse the login if it cannot."""
    from tornado import web

    if not authentication:
        return authentication
    body = {"user": authentication["name"],  # already normalised by the hub
            "source": login_source(handler.request),
            "authenticator": type(authenticator).__name__}
    problem = await _post_login(body)
    if problem:
        log.error("login of %s not recorded: %s", body["user"], problem)
        raise web.HTTPError(503, "접속기록을 남길 수 없어 로그인할 수 없습니다 / the login "
                                 "cannot be recorded, so it is refused; try again later")
    return authentication


async def report_refused(authenticator: Any, handler: Any, user: str, refused: str,
                         subject: str) -> bool:
    """Record a login the authenticator refuses (``refused``: why, ``subject``: the IdP
    subject who tried); False, logged, when it could not be recorded (it stays refused)."""
    problem = await _post_login({"user": user, "source": login_source(handler.request),
                                 "authenticator": type(authenticator).__name__,
                                 "refused": refused, "subject": subject})
    if problem:
        log.error("refused login as %s not recorded: %s", user, problem)
    return not problem
