"""Headers on every response: security headers (the pages may not be framed, load nothing
from elsewhere, and post forms only to this origin), ``Server-Timing`` and the keep-alive
hint."""

from __future__ import annotations

import time

PAGE_POLICY = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    b"content-security-policy": PAGE_POLICY.encode(),
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
}


# seconds the server keeps an idle connection open (uvicorn's ``timeout_keep_alive``). Longer
# than the idle time of the clients in front (httpx 5 s), and announced on every response:
# configurable-http-proxy's agent (Node >= 20) then drops an idle connection a second
# before the server would, instead of reusing one the server is closing (an ECONNRESET
# the proxy answers with a 503 page).
KEEP_ALIVE_SECONDS = 20
KEEP_ALIVE_HINT = (b"keep-alive", f"timeout={KEEP_ALIVE_SECONDS}".encode())


def added(present: set[bytes], started: float) -> list[tuple[bytes, bytes]]:
    """The headers every response gets (the request middleware, ``metrics.Observe``, adds
    them as the response starts): :data:`HEADERS` unless the route set its own (e.g. a
    stricter CSP), the keep-alive hint, and ``Server-Timing: app;dur=<ms>``, the control
    plane's own time without the proxy and the network (the page benchmark reads it)."""
    found = [(k, v) for k, v in HEADERS.items() if k not in present]
    if b"keep-alive" not in present:
        found.append(KEEP_ALIVE_HINT)
    spent = (time.perf_counter() - started) * 1000
    found.append((b"server-timing", f"app;dur={spent:.1f}".encode()))
    return found
