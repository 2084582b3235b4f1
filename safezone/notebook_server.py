"""Jupyter server pieces of the notebook server (both modes): nothing is served out, and
the workspace opens on a read-only welcome notebook (``safezone.welcome``).

Configured by ``images/notebook/jupyter/jupyter_server_config.py``.
"""

from __future__ import annotations

import ctypes
import html
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web
from traitlets import Int, default

from .config import POLICIES_DIR
from .welcome import WELCOME

UNISOLATED_VARIABLE = "SAFEZONE_UNISOLATED_DEMO"
REFUSED = "is not served in the safe zone: results leave through an export request " \
          "(반출 요청을 이용하세요)"


class NoDownloadHandler(JupyterHandler):
    """Replaces the /files/ handler: results leave the zone only through export review."""

    def initialize(self, path: str = "", **_kwargs) -> None:
        self.root = path

    @web.authenticated
    def get(self, path: str = "", include_body: bool = True) -> None:
        raise web.HTTPError(403, "downloads are disabled in the safe zone: submit an export "
                                 "request instead (반출 요청을 이용하세요)")

    head = get


@cache
def _policy() -> dict[str, Any]:
    path = POLICIES_DIR / "notebook-server.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


class TextOnlyContentsManager(AsyncLargeFileManager):
    """The contents API serves notebooks and UTF-8 text files up to ``max_text_bytes``;
    never base64 or binary content. Saving, listing and renaming work as usual."""

    max_text_bytes = Int(config=True, help="Largest text file served with its content "
                                           "(policies/notebook-server.yaml).")

    @default("max_text_bytes")
    def _default_max_text_bytes(self) -> int:
        return int(_policy().get("contents", {}).get("max_text_bytes", 1 << 20))

    async def get(self, path: str, content: bool = True, type: str | None = None,
                  format: str | None = None, **kwargs: Any) -> dict[str, Any]:
        if not content:
            return await super().get(path, content=False, type=type, format=format, **kwargs)
        shape = await super().get(path, content=False, type=type, **kwargs)
        if shape["type"] != "file":  # notebooks and directory listings
            return await super().get(path, content=True, type=type, format=format, **kwargs)
        if format == "base64":
            raise web.HTTPError(403, f"base64 content {REFUSED}")
        if (shape.get("size") or 0) > self.max_text_bytes:
            raise web.HTTPError(403, f"a text file over {self.max_text_bytes} bytes {REFUSED}")
        try:
            return await super().get(path, content=True, type="file", format="text", **kwargs)
        except web.HTTPError as exc:  # not UTF-8: binary
            raise web.HTTPError(403, f"binary content {REFUSED}") from exc


class SafeContentsManager(TextOnlyContentsManager):
    """Text only (above), and the welcome notebook read-only: it is shown as not writable,
    and saving over it, renaming or deleting it are refused (it is rewritten at each start;
    the researcher keeps a copy under another name)."""

    @staticmethod
    def _is_welcome(path: str) -> bool:
        return path.strip("/") == WELCOME

    def _refuse(self) -> web.HTTPError:
        return web.HTTPError(403, f"{WELCOME} is read-only: save a copy under another name "
                                  "(읽기 전용입니다. 다른 이름으로 저장하세요)")

    async def get(self, path: str, content: bool = True, type: str | None = None,
                  format: str | None = None, **kwargs: Any) -> dict[str, Any]:
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if self._is_welcome(path):
            model["writable"] = False
        return model

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        if self._is_welcome(path):
            raise self._refuse()
        return await super().save(model, path)

    async def delete_file(self, path: str) -> None:
        if self._is_welcome(path):
            raise self._refuse()
        await super().delete_file(path)

    async def rename_file(self, old_path: str, new_path: str) -> None:
        if self._is_welcome(old_path) or self._is_welcome(new_path):
            raise self._refuse()
        await super().rename_file(old_path, new_path)


NBCONVERT_ROUTES = ("/nbconvert/", "/api/nbconvert")
PR_SET_DUMPABLE = 4


def make_undumpable() -> bool:
    """Kernels run as the server's own user: without this, one could ptrace the server
    (or read and write its memory through /proc) and undo the controls below."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def announce_unisolated() -> bool:
    """In an ``--unisolated-demo`` zone (``SAFEZONE_UNISOLATED_DEMO=1``, set by the local
    process spawner) JupyterLab's own page also says that the notebook is not isolated,
    as every hub and control-plane page does."""
    if os.environ.get(UNISOLATED_VARIABLE) != "1":
        return False
    from jupyterlab_server.handlers import LabHandler

    from .config import UNISOLATED_DEMO_WARNING

    banner = ('<div class="sz-unisolated" role="alert" style="position:fixed;left:0;right:0;'
              'bottom:0;z-index:100000;padding:4px 8px;background:#b00020;color:#fff;'
              'font:bold 13px sans-serif;text-align:center">'
              f"{html.escape(UNISOLATED_DEMO_WARNING)}</div>")
    render = LabHandler.render_template

    def render_with_banner(self: Any, name: str, **namespace: Any) -> str:
        page = render(self, name, **namespace)
        return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, page, count=1)

    LabHandler.render_template = render_with_banner
    return True


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Remove the nbconvert HTTP handlers (they export notebooks with their outputs) and
    close the server's memory to its own kernels."""
    if not make_undumpable():
        serverapp.log.warning("safezone: could not make the server undumpable")
    router = serverapp.web_app.wildcard_router
    def pattern(rule: Any) -> str:
        regex = getattr(rule.matcher, "regex", None)
        return regex.pattern if regex is not None else ""

    kept = [rule for rule in router.rules
            if not any(route in pattern(rule) for route in NBCONVERT_ROUTES)]
    removed = len(router.rules) - len(kept)
    router.rules = kept
    serverapp.log.info("safezone: removed %d nbconvert handlers", removed)
    if announce_unisolated():
        serverapp.log.warning("safezone: unisolated demo, JupyterLab pages say so")
    write_welcome(serverapp)


def write_welcome(serverapp: Any) -> None:
    """Write the welcome notebook into the workspace (a server of a session only); a
    failure is logged, never fatal: the server still starts."""
    import os

    from . import welcome

    if not os.environ.get("SAFEZONE_PROJECT"):
        return
    try:
        path = welcome.install(Path(serverapp.root_dir))
        serverapp.log.info("safezone: wrote %s", path)
    except Exception:
        serverapp.log.exception("safezone: could not write the welcome notebook")


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "safezone.notebook_server"}]
