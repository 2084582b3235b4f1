"""``--unisolated-demo``: every hub page and every control-plane page warns that notebooks
are not isolated; without the switch, none does."""

from __future__ import annotations

import html
import os
import subprocess
import sys
import time
from dataclasses import replace
from unittest import mock

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from safezone.api.app import create_app
from safezone.cli import app as cli_app
from safezone.config import (
    REPO_ROOT,
    UNISOLATED_DEMO_WARNING,
    UNISOLATED_DEMO_WARNING_EN,
    UNISOLATED_DEMO_WARNING_KO,
    Settings,
    StorageSettings,
)
from safezone.local.processes import free_port
from safezone.permissions import Identity
from safezone.web.session import COOKIE
from safezone.zone import Zone

from .test_hub_config import load

ANNOUNCEMENTS = ("announcement", "announcement_login", "announcement_spawn",
                 "announcement_home")
PREFIX = "/services/safezone"


def test_hub_pages_announce_the_unisolated_demo(monkeypatch):
    config = load(monkeypatch, SAFEZONE_MODE="local", SAFEZONE_UNISOLATED_DEMO="1")
    for name in ANNOUNCEMENTS:
        shown = config.JupyterHub.template_vars[name]
        assert html.escape(UNISOLATED_DEMO_WARNING) in shown  # rendered unescaped: escaped
        assert 'role="alert"' in shown


@pytest.mark.parametrize("value", [None, "0", ""])
def test_hub_pages_announce_nothing_otherwise(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("SAFEZONE_UNISOLATED_DEMO", raising=False)
    config = load(monkeypatch, SAFEZONE_MODE="local",
                  **({} if value is None else {"SAFEZONE_UNISOLATED_DEMO": value}))
    assert "template_vars" not in config.JupyterHub


def test_settings_read_the_flag(monkeypatch):
    monkeypatch.setenv("SAFEZONE_UNISOLATED_DEMO", "1")
    assert Settings.from_env().unisolated_demo
    monkeypatch.setenv("SAFEZONE_UNISOLATED_DEMO", "0")
    assert not Settings.from_env().unisolated_demo
    monkeypatch.delenv("SAFEZONE_UNISOLATED_DEMO")
    assert not Settings.from_env().unisolated_demo


class Hub:
    """Stands in for the hub's token lookup: the cookie "alice" is alice's session."""

    def identify(self, token: str) -> Identity:
        return Identity(token, "user", frozenset(), browser=True)


@pytest.fixture
def pages(tmp_path):
    """A control plane on its own SQLite database; no MinIO or hub is reached."""
    def client(unisolated_demo: bool) -> TestClient:
        storage = StorageSettings(endpoint="127.0.0.1:1", public_endpoint="http://127.0.0.1:1",
                                  root_user="root", root_password="unused",
                                  issuer_password="unused")
        settings = Settings(database_url=f"sqlite:///{tmp_path / 'cp.sqlite'}",
                            storage=storage, unisolated_demo=unisolated_demo)
        zone = Zone.from_settings(settings)
        zone.hub = Hub()
        client = TestClient(create_app(zone, sweep=False, checks=False))
        client.cookies.set(COOKIE, "alice")
        return client
    return client


def banners(page: str) -> list[str]:
    return [line for line in page.splitlines() if 'class="unisolated"' in line]


PAGES = [("/pages/", 200), ("/pages/requests/no-such-request", 404)]  # a page, an error


@pytest.mark.parametrize(("path", "status"), PAGES)
def test_control_plane_pages_show_the_banner(pages, path, status):
    client = pages(True)
    page = client.get(f"{PREFIX}{path}")
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    shown = banners(page.text)
    assert len(shown) == 1 and 'role="alert"' in shown[0]
    assert html.escape(UNISOLATED_DEMO_WARNING_KO) in shown[0]  # Korean unless asked
    english = banners(client.get(f"{PREFIX}{path}", headers={"Accept-Language": "en"}).text)
    assert len(english) == 1 and html.escape(UNISOLATED_DEMO_WARNING_EN) in english[0]
    assert UNISOLATED_DEMO_WARNING_KO not in english[0]


@pytest.mark.parametrize(("path", "status"), PAGES)
def test_control_plane_pages_show_no_banner_otherwise(pages, path, status):
    client = pages(False)
    page = client.get(f"{PREFIX}{path}")
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert banners(page.text) == []
    assert "Unisolated demo" not in page.text


@pytest.mark.parametrize(("args", "expected"), [([], False), (["--unisolated-demo"], True)])
def test_local_up_passes_the_switch(args, expected):
    """Only the argument plumbing: run_local_zone is patched (starting the zone is not what
    this checks)."""
    with mock.patch("safezone.local.launcher.run_local_zone") as run:
        result = CliRunner().invoke(cli_app, ["local", "up", *args])
    assert result.exit_code == 0, result.output
    run.assert_called_once_with(".cache/zone", 8000, unisolated_demo=expected)


def test_settings_default_is_isolated():
    storage = StorageSettings(endpoint="x", public_endpoint="x", root_user="", root_password="")
    assert not Settings(database_url="sqlite://", storage=storage).unisolated_demo
    assert replace(Settings(database_url="sqlite://", storage=storage),
                   unisolated_demo=True).unisolated_demo


class _Stopped(Exception):
    """Raised where the launcher would create the zone's state folder."""


def test_every_unisolated_start_warns_on_stderr(tmp_path, capsys):
    """The launcher's own start path, stopped right after the sandbox decision (the state
    folder step raises): every start with the switch prints the warning (Korean and
    English) on stderr; a sandboxed start prints none."""
    from safezone.local import launcher

    with mock.patch.object(launcher, "private_dir", side_effect=_Stopped):
        for _ in range(2):
            with pytest.raises(_Stopped):
                launcher.run_local_zone(str(tmp_path / "zone"), unisolated_demo=True)
            err = capsys.readouterr().err
            assert err.count(f"WARNING: {UNISOLATED_DEMO_WARNING}") == 1
            assert UNISOLATED_DEMO_WARNING_KO in err and UNISOLATED_DEMO_WARNING_EN in err
        with mock.patch.object(launcher, "require_sandbox") as preflight, \
                pytest.raises(_Stopped):
            launcher.run_local_zone(str(tmp_path / "zone"), unisolated_demo=False)
        preflight.assert_called_once_with()
        assert "NOT isolated" not in capsys.readouterr().err
    assert not (tmp_path / "zone").exists()


@pytest.mark.parametrize("unisolated", ["1", "0"])
def test_jupyterlab_page_says_so_too(tmp_path, unisolated):
    """A real Jupyter server with the notebook server config every zone uses: JupyterLab's
    own page carries the warning in an unisolated demo (the local process spawner sets
    the variable), and nothing otherwise."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--ServerApp.token=t0ken", f"--port={port}",
         "--ip=127.0.0.1", "--no-browser", "--allow-root"], cwd=tmp_path,
        env={**os.environ, "SAFEZONE_UNISOLATED_DEMO": unisolated,
             "JUPYTER_CONFIG_PATH": str(REPO_ROOT / "images" / "notebook" / "jupyter")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = ""
        for _ in range(150):
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/lab?token=t0ken", timeout=5).text
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert "jp-ThemedContainer" in page  # JupyterLab's page
        assert (UNISOLATED_DEMO_WARNING_EN in page) is (unisolated == "1")
    finally:
        server.terminate()
        server.wait(timeout=20)
