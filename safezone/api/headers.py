"""Security headers on every response: the pages may not be framed, load nothing from
elsewhere, and post forms only to this origin."""

from __future__ import annotations

from typing import Any

PAGE_POLICY = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    b"content-security-policy": PAGE_POLICY.encode(),
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
}


class SecurityHeaders:
    """ASGI middleware: adds HEADERS unless the route set its own (e.g. a stricter CSP)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS.items() if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
