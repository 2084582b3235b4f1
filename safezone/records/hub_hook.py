"""The hub's ``post_auth_hook``: every login is reported to the control plane's access
records, with the address the hub saw (its connection's peer; behind the trusted
configurable-http-proxy, the hop the proxy appended to X-Forwarded-For) and the spawner's
service token, which the hub holds.

A login that cannot be recorded is refused (503): the records must hold every access.
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


async def report_login(authenticator: Any, handler: Any, authentication: dict | None
                       ) -> dict | None:
    """Tell the control plane who logged in from where; refuse the login if it cannot."""
    from tornado import web

    if not authentication:
        return authentication
    url, token = _settings()
    body = {"user": authentication["name"],  # already normalised by the hub
            "source": login_source(handler.request),
            "authenticator": type(authenticator).__name__}
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.post(f"{url}/api/records/logins", json=body,
                                         headers={"Authorization": f"token {token}"})
    except httpx.HTTPError as exc:
        log.error("login of %s not recorded: control plane unreachable (%s)", body["user"],
                  type(exc).__name__)
        raise web.HTTPError(503, "접속기록을 남길 수 없어 로그인할 수 없습니다 / the login "
                                 "cannot be recorded, so it is refused; try again later"
                            ) from None
    if response.status_code != 201:
        log.error("login of %s not recorded: control plane answered %s", body["user"],
                  response.status_code)
        raise web.HTTPError(503, "접속기록을 남길 수 없어 로그인할 수 없습니다 / the login "
                                 "cannot be recorded, so it is refused; try again later")
    return authentication
