"""The spawner's client of the control plane: list usable projects, get and end grants."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx


class GrantRefused(Exception):
    """The control plane said no; ``message`` is its sentence for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GrantClient:
    """Calls the control plane with the spawner's hub token (scope custom:safezone:sessions)."""

    def __init__(self, base_url: str, token: str, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"token {token}"}
        self.timeout = timeout

    async def _call(self, method: str, path: str, timeout: float | None = None,
                    **kwargs: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=timeout or self.timeout) as client:
            try:
                response = await client.request(method, f"{self.base_url}{path}",
                                                headers=self.headers, **kwargs)
            except httpx.HTTPError as exc:
                raise GrantRefused(503, f"the Safezone control plane is unreachable: {exc}"
                                   ) from exc
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise GrantRefused(response.status_code, message)
        return response.json()

    async def usable_projects(self, user: str) -> list[str]:
        body = await self._call("GET", f"/api/users/{quote(user)}/projects")
        return list(body["projects"])

    async def issue(self, user: str, project: str, server_name: str) -> dict[str, Any]:
        return await self._call("POST", "/api/sessions",
                                json={"user": user, "project": project,
                                      "server_name": server_name})

    async def end(self, grant_id: str, timeout: float | None = None) -> None:
        """End a grant (already ended or unknown is fine); ``timeout``: a short one for
        retries, so one attempt that hangs (a new pod not yet let through the network
        policies) does not hold up the next."""
        try:
            await self._call("DELETE", f"/api/sessions/{quote(grant_id)}", timeout=timeout)
        except GrantRefused as exc:
            if exc.status != 404:
                raise
