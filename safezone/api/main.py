"""Entry point: ``python -m safezone.api.main`` (uvicorn, settings from the environment).

This module's own imports stay light: uvicorn starts each worker with ``spawn``, which
imports this module again in the worker *before* the worker answers its supervisor's
health pings, and the supervisor kills a worker that does not answer within
``timeout_worker_healthcheck`` seconds. Importing the app here (about 4 s of CPU) made a
worker on a loaded host miss that deadline and be replaced every few seconds, forever.
The app is imported where it is used (``main``, ``worker_app``).
"""

from __future__ import annotations

import gc
import logging
import os
import time
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import uvicorn

from .. import logs
from ..config import Settings
from ..errors import StorageError
from .headers import KEEP_ALIVE_SECONDS

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..zone import Zone

log = logging.getLogger(__name__)
# seconds a worker may take to answer its supervisor before it is killed and replaced
# (uvicorn's default, 5, is short for a worker busy on a loaded 2-core host)
WORKER_HEALTHCHECK_SECONDS = 30
STORAGE_WAIT_SECONDS = 120


def bootstrap_storage(zone: Zone, wait: float = STORAGE_WAIT_SECONDS) -> None:
    """Create the zone's buckets and service users (idempotent), waiting for MinIO to come
    up: in a cluster the control plane may start first."""
    deadline = time.monotonic() + wait
    while True:
        try:
            zone.broker.bootstrap()
            return
        except Exception as exc:  # connection refused, DNS not ready, MinIO starting
            if time.monotonic() > deadline:
                raise
            log.info("waiting for MinIO: %s", str(exc)[:200])
            time.sleep(2)


def main() -> None:
    from ..deid.pipeline import reap_orphan_identities
    from ..zone import Zone
    from .app import create_app
    from .metrics import reset_multiprocess_dir

    logs.configure()  # JSON lines (safezone/logs.py); uvicorn's workers get the same below
    reset_multiprocess_dir()  # PROMETHEUS_MULTIPROC_DIR, emptied before any worker starts
    try:
        settings = Settings.from_env()
        workers = worker_count(settings.database_url)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    zone = Zone.from_settings(settings)  # migrates once, before any worker starts
    bootstrap_storage(zone)
    try:
        reap_orphan_identities(zone)
    except StorageError as exc:  # the next deid run tries again
        log.warning("could not check for orphan pipeline identities: %s", exc.message)
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8700"))
    serve = {"host": url.hostname or "127.0.0.1", "port": url.port or 8700,
             "log_level": "info", "log_config": logs.dict_config(),
             "http": "httptools", "loop": "uvloop",
             "timeout_keep_alive": KEEP_ALIVE_SECONDS,  # announced on every response
             "proxy_headers": False}  # request.client: the TCP peer
    log.info("control plane: %d worker process(es)", workers)
    if workers == 1:
        app = create_app(zone)
        settle_heap()
        uvicorn.run(app, **serve)
    else:
        uvicorn.run("safezone.api.main:worker_app", factory=True, workers=workers,
                    timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS, **serve)


def worker_count(database_url: str) -> int:
    """SAFEZONE_WORKERS, else one per core; SQLite zones run one process (their writers
    would not take turns across processes)."""
    configured = os.environ.get("SAFEZONE_WORKERS", "").strip()
    if configured and (not configured.isdigit() or int(configured) < 1):
        raise ValueError(f"SAFEZONE_WORKERS must be a whole number >= 1, not {configured!r}")
    if database_url.startswith("sqlite"):
        if configured and int(configured) > 1:
            raise ValueError("SAFEZONE_WORKERS > 1 needs PostgreSQL; a SQLite zone runs "
                             "one control-plane process")
        return 1
    return int(configured) if configured else max(1, os.cpu_count() or 1)


def worker_app() -> FastAPI:
    """One worker process's app (uvicorn calls this in each; the parent migrated)."""
    from ..zone import Zone
    from .app import create_app

    logs.configure()
    app = create_app(Zone.from_settings(Settings.from_env(), run_migrations=False))
    settle_heap()
    return app


def settle_heap() -> None:
    """Move what start-up made (modules, the app, the policies) out of the collector's
    view: full collections then walk only what requests make, so they pause less."""
    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    main()
