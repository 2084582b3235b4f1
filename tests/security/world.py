"""The world the attacks run in: one project with members, every kind of caller, and
export requests in each state — all made through the real stack (hub, control plane,
MinIO; PostgreSQL in CI's second pass)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from safezone.models import AuditEvent, ExportRequest, ExportStatus

from ..support import (
    Stack,
    browser_session,
    provision,
    submit_and_wait,
    unique,
)

CLEAN_TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,140\nBusan,M,45\nBusan,F,50\n"
NOTEBOOK_SCOPES = ["access:servers!server={user}/", "users:activity!user={user}",
                   "access:services!service=safezone"]


def notebook_token(stack: Stack, user: str) -> str:
    """A token with exactly the scopes JupyterHub gives a user's notebook server."""
    response = stack.hub_api(user).post(f"/users/{user}/tokens", json={
        "scopes": [s.format(user=user) for s in NOTEBOOK_SCOPES], "note": "notebook-shaped"})
    response.raise_for_status()
    return response.json()["token"]


@dataclass(frozen=True)
class Caller:
    """One identity of the matrix and the relations the test expects it to have."""

    key: str
    user: str | None          # hub user name (None: anonymous / a service)
    channel: str              # "none" | "token" | "browser"
    base: frozenset[str]      # relations that do not depend on the subject
    member: bool = False      # approved member of the world's project
    involved: bool = False


def _callers() -> list[Caller]:
    u = frozenset({"user"})
    return [
        Caller("anonymous", None, "none", frozenset()),
        Caller("non-member", "bob", "token", u),
        Caller("member", "carol", "token", u, member=True, involved=True),
        Caller("requester", "alice", "token", u, member=True, involved=True),
        Caller("requester-browser", "alice", "browser", u | {"browser"}, member=True,
               involved=True),
        Caller("requester-notebook", "alice", "notebook", u | {"notebook"}, member=True,
               involved=True),
        Caller("other-researcher-browser", "bob", "browser", u | {"browser"}),
        Caller("reviewer", "reviewer", "token", u | {"reviewer"}),
        Caller("reviewer-browser", "reviewer", "browser", u | {"reviewer", "browser"}),
        Caller("reviewer-member", "dave", "token", u | {"reviewer"}, member=True,
               involved=True),
        Caller("admin", "admin", "token", u | {"admin"}),
        Caller("admin-browser", "admin", "browser", u | {"admin", "browser"}),
        Caller("steward", "steward", "token", u | {"steward"}),
        Caller("operator", "operator", "token", u | {"operator"}),
        Caller("spawner", None, "spawner", frozenset({"spawner"})),
    ]


CALLERS = _callers()


@dataclass
class World:
    stack: Stack
    project: str
    dataset: str
    clients: dict[str, httpx.Client] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)  # state -> request id

    def client(self, caller: Caller) -> httpx.Client:
        return self.clients[caller.key]

    def relations(self, caller: Caller, *, project: bool = False, user: str | None = None,
                  requester: str | None = None) -> frozenset[str]:
        """What the permission table should see: written out here, not derived by the
        code under test."""
        found = set(caller.base)
        if project or requester:
            if caller.member:
                found.add("member")
            if caller.involved:
                found.add("involved")
        if user is not None and caller.user == user and "user" in found:
            found.add("self")
        if requester is not None and caller.user == requester and "user" in found:
            found.add("requester")
        return frozenset(found)

    # -- export requests in any state, made the way users make them -------------------
    def draft(self, path: str = "t.csv") -> dict:
        response = self.stack.api("alice").post("/api/exports", json={
            "project": self.project, "title": "results",
            "files": [{"path": path, "justification": "aggregate table"}]})
        assert response.status_code == 201, response.text
        return response.json()

    def request_in(self, state: str) -> str:
        """A new request in ``state`` (``approved`` is held by a failed release only, so it
        is set in the database; every other state is reached through the API)."""
        alice, reviewer = self.stack.api("alice"), self.stack.api("reviewer")
        request = self.draft()
        rid = request["id"]
        if state == "draft":
            return rid
        if state == "withdrawn":
            alice.post(f"/api/exports/{rid}/withdraw").raise_for_status()
            return rid
        view = submit_and_wait(alice, rid)
        assert view["status"] == "in_review", view
        file_id = view["files"][0]["id"]
        if state == "in_review":
            return rid
        if state == "approved":
            with self.stack.zone.sessions() as db, db.begin():
                db.get(ExportRequest, rid).status = ExportStatus.APPROVED
            return rid
        decision = {"returned": "request_changes", "rejected": "reject"}.get(state, "approve")
        reviewer.post(f"/api/exports/{rid}/votes", json={
            "file_id": file_id, "decision": decision, "comment": "test"}).raise_for_status()
        if state == "revoked":
            reviewer.post(f"/api/exports/{rid}/revoke", json={"reason": "test"}
                          ).raise_for_status()
        status = alice.get(f"/api/exports/{rid}").json()["status"]
        assert status == state, (state, status)
        return rid

    def status_of(self, rid: str) -> str:
        return self.stack.api("admin").get(f"/api/exports/{rid}").json()["status"]

    def audit_count(self) -> int:
        with self.stack.zone.sessions() as db:
            return db.scalar(select(func.count()).select_from(AuditEvent))

    def settle(self, timeout: float = 60) -> None:
        """Wait until the check worker has nothing left (its audit events land)."""
        from ..support import wait_until

        def idle() -> bool:
            with self.stack.zone.sessions() as db:
                return not db.scalar(select(func.count()).select_from(ExportRequest).where(
                    ExportRequest.status == ExportStatus.CHECKING))

        wait_until(idle, timeout, 0.05)

    def fresh_project(self) -> str:
        name = unique("sec")
        self.stack.api("admin").post("/api/projects", json={"name": name}).raise_for_status()
        return name


def build_world(stack: Stack) -> World:
    setup = provision(stack, member="alice")
    admin = stack.api("admin")
    expires = (stack.zone.now() + timedelta(days=30)).isoformat()
    for member in ("carol", "dave"):
        admin.post(f"/api/projects/{setup.project}/members/{member}/approve",
                   json={"expires_at": expires}).raise_for_status()
    stack.minio.root_s3().put_object(Bucket="outbox", Key=f"{setup.project}/alice/t.csv",
                                     Body=CLEAN_TABLE)
    world = World(stack, setup.project, setup.dataset)
    url = stack.control_plane.url
    notebook = notebook_token(stack, "alice")
    for caller in CALLERS:
        if caller.channel == "none":
            world.clients[caller.key] = httpx.Client(base_url=url, timeout=30)
        elif caller.channel == "token":
            world.clients[caller.key] = stack.api(caller.user)
        elif caller.channel == "spawner":
            world.clients[caller.key] = stack.api("spawner")
        elif caller.channel == "notebook":
            world.clients[caller.key] = httpx.Client(
                base_url=url, timeout=30, headers={"Authorization": f"token {notebook}"})
        else:
            world.clients[caller.key] = browser_session(stack, caller.user)
    return world
