"""Jupyter server pieces of the notebook image."""

from __future__ import annotations

from jupyter_server.base.handlers import JupyterHandler
from tornado import web


class NoDownloadHandler(JupyterHandler):
    """Replaces the /files/ handler: results leave the zone only through export review."""

    def initialize(self, path: str = "", **_kwargs) -> None:
        self.root = path

    @web.authenticated
    def get(self, path: str = "", include_body: bool = True) -> None:
        raise web.HTTPError(403, "downloads are disabled in the safe zone: submit an export "
                                 "request instead (반출 요청을 이용하세요)")

    head = get
