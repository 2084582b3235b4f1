"""Headers on every response: security headers (the pages may not be framed, load nothing
from elsewhere, and post forms only to this origin) and ``Server-Timing``."""

from __future__ import annotations

import time
from typing import Any

PAGE_POLICY = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    b"content-security-policy": PAGE_POLICY.encode(),
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
}


class ResponseHeaders:
    """ASGI middleware adding the headers :meth:`added` names when a response starts."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def added(self, present: set[bytes], started: float) -> list[tuple[bytes, bytes]]:
        raise NotImplementedError

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                present = {name.lower() for name, _ in headers}
                message = {**message, "headers": [*headers, *self.added(present, started)]}
            await send(message)

        await self.app(scope, receive, with_headers)


class SecurityHeaders(ResponseHeaders):
    """HEADERS, unless the route set its own (e.g. a stricter CSP)."""

    def added(self, present: set[bytes], started: float) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in HEADERS.items() if k not in present]


class ServerTiming(ResponseHeaders):
    """``Server-Timing: app;dur=<ms>``: the control plane's own time, without the proxy
    and the network (the page benchmark reads it; browsers show it)."""

    def added(self, present: set[bytes], started: float) -> list[tuple[bytes, bytes]]:
        spent = (time.perf_counter() - started) * 1000
        return [(b"server-timing", f"app;dur={spent:.1f}".encode())]
