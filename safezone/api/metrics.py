"""Prometheus metrics of the control plane, and the request middleware that feeds them and
the access log.

- ``safezone_http_request_duration_seconds{method,route,status}``: every request, by route
  template (``/api/exports/{request_id}``, never a raw path) and status class (``2xx``).
- ``safezone_active_grants`` and ``safezone_export_requests{state}``: read from the database
  at scrape time (so every process and replica reports the same numbers).
- ``safezone_disclosure_check_duration_seconds{outcome}``: one export request's checks.
- ``safezone_deid_runs_total{outcome}``: de-identification runs (``succeeded``, ``refused``,
  ``failed``), counted where they run (the CLI or a test process).

Several processes (uvicorn workers, ``safezone deid run`` in the same container) share
counts through prometheus_client's multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` set in
the environment before any of them starts (the chart sets it); without it the process
reports its own counts.

``GET /metrics`` answers only a scraper holding the metrics token
(``SAFEZONE_METRICS_TOKEN``, ``Authorization: Bearer …``, compared in constant time);
anyone else gets 401 and no metric. No token configured: every scrape is refused.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from ..errors import SafezoneError
from ..logs import ACCESS
from ..models import ExportRequest, ExportStatus, GrantStatus, SessionGrant
from ..zone import Zone
from .actions import action
from .headers import added

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable)
MULTIPROC_VAR = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "<unmatched>"  # a path no route serves: one label, whatever was asked

REQUEST_SECONDS = Histogram(
    "safezone_http_request_duration_seconds",
    "Control-plane request time until the response ended, by route template and status "
    "class", ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
CHECK_SECONDS = Histogram(
    "safezone_disclosure_check_duration_seconds",
    "Time to check one export request (hash, disclosure checks, previews, release forms)",
    ["outcome"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
DEID_RUNS = Counter("safezone_deid_runs", "De-identification runs by outcome", ["outcome"])


# -- instruments around work -------------------------------------------------------------
def _safely(record: Callable[[], Any]) -> None:
    """Record a value; a metrics failure (e.g. a missing multiprocess folder) never fails
    the work it measures."""
    try:
        record()
    except Exception as exc:
        log.warning("could not record a metric: %s", type(exc).__name__)


def timed_check(run: F) -> F:
    """Time one export request's checks into CHECK_SECONDS (``ok`` or ``failed``)."""

    @functools.wraps(run)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started, outcome = time.perf_counter(), "failed"
        try:
            result = run(*args, **kwargs)
            outcome = "ok"
            return result
        finally:
            _safely(lambda: CHECK_SECONDS.labels(outcome).observe(time.perf_counter()
                                                                   - started))

    return timed  # type: ignore[return-value]


def counted_deid_run(run: F) -> F:
    """Count a de-identification run in DEID_RUNS: ``succeeded``; ``refused`` (a named
    Safezone error: bad input, no permission, storage refused); ``failed`` (anything else)."""

    @functools.wraps(run)
    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            result = run(*args, **kwargs)
        except SafezoneError:
            _safely(lambda: DEID_RUNS.labels("refused").inc())
            raise
        except BaseException:
            _safely(lambda: DEID_RUNS.labels("failed").inc())
            raise
        _safely(lambda: DEID_RUNS.labels("succeeded").inc())
        return result

    return counted  # type: ignore[return-value]


# -- values read from the database at scrape time ----------------------------------------
class ZoneState:
    """A collector of the zone's state: live grants, export requests by state."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone

    def collect(self) -> Iterator[Metric]:
        now = self.zone.now()
        with self.zone.sessions() as db:
            active = db.scalar(select(func.count()).select_from(SessionGrant).where(
                SessionGrant.status == GrantStatus.ACTIVE, SessionGrant.expires_at > now))
            by_state = dict(db.execute(select(ExportRequest.status, func.count())
                                       .group_by(ExportRequest.status)).all())
        grants = GaugeMetricFamily("safezone_active_grants",
                                   "Session grants active and unexpired now")
        grants.add_metric([], float(active or 0))
        yield grants
        requests = GaugeMetricFamily("safezone_export_requests",
                                     "Export requests by state", labels=["state"])
        for state in ExportStatus:
            requests.add_metric([state.value], float(by_state.get(state, 0)))
        yield requests


class _Process:
    """This process's own instruments (single-process mode)."""

    def collect(self) -> Iterator[Metric]:
        return REGISTRY.collect()


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_VAR, "")
    return Path(value) if value else None


def scrape_registry(zone: Zone, directory: Path | None = None) -> CollectorRegistry:
    """What one scrape reports: every process's instruments (summed from ``directory``, the
    multiprocess folder, when there is one) and the zone's state."""
    registry = CollectorRegistry(auto_describe=False)
    directory = directory or multiprocess_dir()
    if directory is not None:
        multiprocess.MultiProcessCollector(registry, path=str(directory))
    else:
        registry.register(_Process())  # type: ignore[arg-type]
    registry.register(ZoneState(zone))  # type: ignore[arg-type]
    return registry


def reset_multiprocess_dir() -> None:
    """Empty the multiprocess folder before the control plane's processes start (files of
    processes from an earlier start would be summed in otherwise)."""
    directory = multiprocess_dir()
    if directory is None:
        return
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700)


# -- GET /metrics ------------------------------------------------------------------------
def scraper_allowed(expected: str, header: str) -> bool:
    """True for ``Bearer <expected>``; an empty ``expected`` allows no one."""
    scheme, _, given = header.partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def metrics_router(zone: Zone) -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    @action("metrics.read")
    def scrape(request: Request) -> Response:
        """Prometheus text format, for the holder of the metrics token only."""
        if not scraper_allowed(zone.settings.metrics_token,
                               request.headers.get("authorization", "")):
            return JSONResponse(
                {"error": "metrics need the scraper's token (메트릭은 수집기 토큰이 필요합니다)"},
                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return Response(generate_latest(scrape_registry(zone)),
                        media_type=CONTENT_TYPE_LATEST)

    return router


# -- the request middleware --------------------------------------------------------------
def _route(scope: dict) -> str:
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED


class Observe:
    """ASGI middleware: a request id (``X-Request-Id`` on the response) and the headers of
    every response (``headers.added``), the access line's fields for uvicorn's access
    logger (:data:`safezone.logs.ACCESS`), and the latency histogram. Must sit inside
    StripServicePrefix, where the router marks the scope."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, request_id = time.perf_counter(), secrets.token_hex(8)
        status = 500

        def seen(code: int) -> None:
            ACCESS.set({"request_id": request_id, "route": _route(scope), "status": code,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1)})

        async def observed(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                seen(status)
                headers = message.get("headers", [])
                message = {**message, "headers": [
                    *headers, (b"x-request-id", request_id.encode()),
                    *added({name.lower() for name, _ in headers}, started)]}
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except BaseException:
            seen(500)  # the server-error middleware outside answers 500
            raise
        finally:
            spent = time.perf_counter() - started
            _safely(lambda: REQUEST_SECONDS.labels(scope["method"], _route(scope),
                                                   f"{status // 100}xx").observe(spent))
