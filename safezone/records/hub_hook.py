"""The hub's ``post_auth_hook``: every login is reported to the control plane's access
records, with the address the hub saw (behind configurable-http-proxy, the hub takes it
from the proxy's forwarded headers) and the spawner's service token, which the hub holds.

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


async def report_login(authenticator: Any, handler: Any, authentication: dict | None
                       ) -> dict | None:
    """Tell the control plane who logged in from where; refuse the login if it cannot."""
    from tornado import web

    if not authentication:
        return authentication
    url, token = _settings()
    body = {"user": authentication["name"],  # already normalised by the hub
            "source": handler.request.remote_ip or "",
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
