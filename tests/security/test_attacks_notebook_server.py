"""The token a real notebook server holds (read from the spawned process, as code in the
kernel would read its own environment) is refused every power beyond making requests."""

from __future__ import annotations

import httpx
import pytest

from ..kernels import run_code
from ..support import server_environment, wait_until
from .attack import nothing_changes, refused

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server_client(world):
    hub = world.stack.hub_api("alice")
    started = hub.post("/users/alice/servers/sec", json={"project": world.project})
    assert started.status_code in (201, 202), started.text
    wait_until(lambda: hub.get("/users/alice").json()["servers"].get("sec", {}).get("ready"),
               timeout=90, interval=0.3)
    environment = server_environment("alice", "sec") or {}
    token = environment.get("JUPYTERHUB_API_TOKEN")
    assert token, "the spawned server's environment holds its hub token"
    yield httpx.Client(base_url=world.stack.control_plane.url, timeout=30,
                       headers={"Authorization": f"token {token}"})
    hub.request("DELETE", "/users/alice/servers/sec", json={"remove": True})


def test_the_server_token_is_recognised_as_a_notebook(world, server_client):
    assert server_client.get("/api/me").json()["name"] == "alice"
    with nothing_changes(world):
        refused(server_client.post(f"/api/projects/{world.project}/members/request",
                                   json={}), 403, "notebook")


def test_the_server_token_cannot_create_download_links(world, server_client):
    rid = world.request_in("released")
    fid = world.stack.api("alice").get(f"/api/exports/{rid}").json()["files"][0]["id"]
    with nothing_changes(world, rid):
        refused(server_client.post(f"/api/exports/{rid}/files/{fid}/links"), 403, "notebook")


def test_the_server_token_cannot_redeem_a_link(world, server_client):
    rid = world.request_in("released")
    fid = world.stack.api("alice").get(f"/api/exports/{rid}").json()["files"][0]["id"]
    token = world.clients["requester-browser"].post(
        f"/api/exports/{rid}/files/{fid}/links").json()["token"]
    with nothing_changes(world, rid):
        response = server_client.post("/api/download", json={"token": token})
        refused(response, 403)
        assert b"Seoul" not in response.content


def test_the_server_token_cannot_read_frozen_bytes(world, server_client):
    rid = world.request_in("in_review")
    with nothing_changes(world, rid):
        refused(server_client.get(f"/api/exports/{rid}/previews"), 403)


def test_the_server_token_cannot_reach_the_pages(world, server_client):
    page = server_client.get("/pages/", follow_redirects=False)
    assert page.status_code == 302 and "oauth2/authorize" in page.headers["location"]


def test_output_past_the_iopub_rate_is_held_back(world, server_client):
    """A kernel printing 10 MB at once (over the 1 MB/s iopub limit, 3 s window, of
    images/notebook/jupyter/jupyter_server_config.py): the server stops forwarding it and
    says so; no more than one window's worth (3 MB, plus the message that crossed the
    limit) reaches the browser."""
    stack = world.stack
    out = run_code(f"{stack.hub_url}/user/alice/sec/", stack.tokens["alice"],
                   "import sys\nfor _ in range(100):\n"
                   "    sys.stdout.write('x' * 100_000 + '\\n'); sys.stdout.flush()\n",
                   timeout=60)
    assert "IOPub data rate exceeded." in out
    assert out.count("x" * 1000) * 1000 <= 3 * 1_000_000 + 100_000
