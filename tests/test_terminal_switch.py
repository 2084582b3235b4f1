"""Jupyter terminals per project: off by default, switched only by Safezone administrators
(audited with the old and new value), carried by a session grant as ``SAFEZONE_TERMINALS``,
and served by a real notebook server through the hub only when the project has them on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from safezone.models import AuditEvent

from .support import issue_grant, provision, unique, wait_until

pytestmark = pytest.mark.integration

CHANGED = "project.terminals_changed"


def audit_count(stack) -> int:
    with stack.zone.sessions() as db:
        return db.scalar(select(func.count()).select_from(AuditEvent))


def terminal_events(stack, project: str) -> list[AuditEvent]:
    with stack.zone.sessions() as db:
        return list(db.scalars(select(AuditEvent).where(
            AuditEvent.action == CHANGED, AuditEvent.subject == f"project:{project}"
        ).order_by(AuditEvent.seq)))


def listed(stack, user: str, project: str) -> dict:
    """The project as GET /api/projects shows it to ``user``."""
    return next(p for p in stack.api(user).get("/api/projects").json() if p["name"] == project)


def switch(stack, user: str, project: str, body) -> httpx.Response:
    return stack.api(user).put(f"/api/projects/{project}/terminals", json=body)


def test_administrator_switches_terminals_and_each_change_is_audited(stack):
    project = unique("term")
    stack.api("admin").post("/api/projects", json={"name": project}).raise_for_status()
    assert listed(stack, "admin", project)["terminals"] is False  # off by default

    on = switch(stack, "admin", project, {"enabled": True})
    assert on.status_code == 200, on.text
    assert on.json()["terminals"] is True
    assert listed(stack, "admin", project)["terminals"] is True
    before = audit_count(stack)
    again = switch(stack, "admin", project, {"enabled": True})  # already on: nothing to record
    assert again.status_code == 200 and again.json()["terminals"] is True
    assert audit_count(stack) == before
    off = switch(stack, "admin2", project, {"enabled": False})
    assert off.status_code == 200, off.text
    assert listed(stack, "admin", project)["terminals"] is False

    events = terminal_events(stack, project)
    assert [(e.actor, e.data) for e in events] == [
        ("admin", {"old": False, "new": True}), ("admin2", {"old": True, "new": False})]


@pytest.fixture(scope="module")
def member_project(stack) -> str:
    """A project with alice and the administrator admin2 as approved members."""
    setup = provision(stack, member="alice")
    expires = (stack.zone.now() + timedelta(days=10)).isoformat()
    stack.api("admin").post(f"/api/projects/{setup.project}/members/admin2/approve",
                            json={"expires_at": expires}).raise_for_status()
    return setup.project


@pytest.mark.parametrize("user, why", [
    ("bob", "only a Safezone administrator"),        # a researcher of no standing here
    ("alice", "member of this project"),             # an approved member (deny wins)
    ("reviewer", "only a Safezone administrator"),
    ("steward", "only a Safezone administrator"),
    ("admin2", "member of this project"),            # an administrator who is a member
    ("operator", "JupyterHub administrators"),
])
def test_everyone_else_is_refused_and_nothing_changes(stack, member_project, user, why):
    before = audit_count(stack)
    response = switch(stack, user, member_project, {"enabled": True})
    assert response.status_code == 403, response.text
    assert why in response.json()["error"]
    assert listed(stack, "admin", member_project)["terminals"] is False
    assert terminal_events(stack, member_project) == []
    # an operator's call is itself audited (hub_operator.call), and nothing else
    assert audit_count(stack) - before == (1 if user == "operator" else 0)


def test_unknown_project_is_not_found(stack):
    response = switch(stack, "admin", unique("nope"), {"enabled": True})
    assert response.status_code == 404
    assert "no project named" in response.json()["error"]


@pytest.mark.parametrize("body, status, words", [
    ({}, 422, "enabled"),
    ({"enabled": "yes"}, 422, "enabled"),
    ({"enabled": 1}, 422, "enabled"),
    ({"enabled": None}, 422, "enabled"),
    ({"enabled": True, "everyone": True}, 422, "everyone"),
    ([True], 422, ""),
])
def test_bad_bodies_are_refused_with_a_reason(stack, body, status, words):
    project = unique("term")
    stack.api("admin").post("/api/projects", json={"name": project}).raise_for_status()
    before = audit_count(stack)
    response = switch(stack, "admin", project, body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"] and response.json()["error"]
    assert listed(stack, "admin", project)["terminals"] is False
    assert audit_count(stack) == before


def test_a_body_that_is_not_json_is_refused(stack):
    project = unique("term")
    stack.api("admin").post("/api/projects", json={"name": project}).raise_for_status()
    response = stack.api("admin").put(f"/api/projects/{project}/terminals", content=b"on",
                                      headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
    assert listed(stack, "admin", project)["terminals"] is False


def test_grant_environment_carries_the_setting_at_issue_time(stack):
    setup = provision(stack, member="alice")
    spawner = stack.api("spawner")
    first = issue_grant(stack, "alice", setup.project, "termenv")
    assert first["environment"]["SAFEZONE_TERMINALS"] == "0"
    switch(stack, "admin", setup.project, {"enabled": True}).raise_for_status()
    second = issue_grant(stack, "alice", setup.project, "termenv")
    assert second["environment"]["SAFEZONE_TERMINALS"] == "1"
    switch(stack, "admin", setup.project, {"enabled": False}).raise_for_status()
    third = issue_grant(stack, "alice", setup.project, "termenv")
    assert third["environment"]["SAFEZONE_TERMINALS"] == "0"
    spawner.delete(f"/api/sessions/{third['grant_id']}").raise_for_status()


def cli(stack, user: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SAFEZONE_URL": stack.control_plane.url,
           "SAFEZONE_TOKEN": stack.tokens[user]}
    return subprocess.run([sys.executable, "-m", "safezone.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_switches_terminals(stack):
    project = unique("term")
    stack.api("admin").post("/api/projects", json={"name": project}).raise_for_status()
    on = cli(stack, "admin", "projects", "terminals", project, "--on")
    assert on.returncode == 0, on.stderr
    assert json.loads(on.stdout)["terminals"] is True
    refused = cli(stack, "bob", "projects", "terminals", project, "--off")
    assert refused.returncode == 1 and "403" in refused.stderr
    assert cli(stack, "admin", "projects", "terminals", project).returncode == 2  # no switch
    off = cli(stack, "admin", "projects", "terminals", project, "--off")
    assert off.returncode == 0 and json.loads(off.stdout)["terminals"] is False


def start_server(stack, name: str, project: str) -> httpx.Client:
    """Start alice's named server for ``project`` and return a client of it (through the
    hub's proxy, with alice's own token)."""
    hub = stack.hub_api("alice")
    started = hub.post(f"/users/alice/servers/{name}", json={"project": project})
    assert started.status_code in (201, 202), started.text
    wait_until(lambda: hub.get("/users/alice").json()["servers"].get(name, {}).get("ready"),
               timeout=90, interval=0.3)
    return httpx.Client(base_url=f"{stack.hub_url}/user/alice/{name}", timeout=60,
                        headers={"Authorization": f"token {stack.tokens['alice']}"})


def stop_server(stack, name: str) -> None:
    hub = stack.hub_api("alice")
    hub.request("DELETE", f"/users/alice/servers/{name}", json={"remove": True})
    wait_until(lambda: name not in hub.get("/users/alice").json()["servers"], timeout=60,
               interval=0.3)


def test_notebook_server_serves_terminals_only_when_the_project_has_them(stack):
    """Through the real hub: off (the default) the terminals API is not there, also after
    the switch for a server started before it; a server started after it has terminals."""
    setup = provision(stack, member="alice")
    started: list[str] = []
    try:
        started.append("termoff")
        off = start_server(stack, "termoff", setup.project)
        refused = off.post("/api/terminals")
        assert refused.status_code in (403, 404), refused.text[:200]
        switch(stack, "admin", setup.project, {"enabled": True}).raise_for_status()
        assert off.post("/api/terminals").status_code in (403, 404)  # keeps its setting
        stop_server(stack, "termoff")
        started.remove("termoff")

        started.append("termon")
        on = start_server(stack, "termon", setup.project)
        made = on.post("/api/terminals")
        assert made.status_code in (200, 201), made.text[:200]
        name = made.json()["name"]
        assert name in [t["name"] for t in on.get("/api/terminals").json()]
        assert on.delete(f"/api/terminals/{name}").status_code == 204
    finally:
        for name in started:
            stop_server(stack, name)
