"""Entry point: ``python -m safezone.api.main`` (uvicorn, settings from the environment)."""

from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

import uvicorn

from ..config import Settings
from ..zone import Zone
from .app import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    zone = Zone.from_settings(Settings.from_env())
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8700"))
    uvicorn.run(create_app(zone), host=url.hostname or "127.0.0.1", port=url.port or 8700,
                log_level="info", proxy_headers=False)  # request.client: the TCP peer


if __name__ == "__main__":
    main()
