"""Entry point: ``python -m safezone.api.main`` (uvicorn, settings from the environment)."""

from __future__ import annotations

import logging
import os
import time
from urllib.parse import urlparse

import uvicorn

from ..config import Settings
from ..zone import Zone
from .app import create_app

log = logging.getLogger(__name__)
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    zone = Zone.from_settings(Settings.from_env())
    bootstrap_storage(zone)
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8700"))
    uvicorn.run(create_app(zone), host=url.hostname or "127.0.0.1", port=url.port or 8700,
                log_level="info", proxy_headers=False)  # request.client: the TCP peer


if __name__ == "__main__":
    main()
