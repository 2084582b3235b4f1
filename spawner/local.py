"""Local-process Safezone spawner: one process per server, one folder per project.

Runs notebook servers as the hub's own OS user (like SimpleLocalProcessSpawner): the
one-machine mode shares credentials policy with Kubernetes but claims no process or
network isolation — that is Kubernetes' job.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode, default

from .grants import GrantMixin

SERVER_CONFIG = Path(__file__).resolve().parent.parent / "images" / "notebook" / "jupyter"


class SafeZoneLocalSpawner(GrantMixin, SimpleLocalProcessSpawner):
    """Starts ``jupyterhub-singleuser`` with the grant's credentials in its environment."""

    workspace_root = Unicode(
        config=True,
        help="Folder under which each user gets <user>/<project>/ as working directory.",
    )

    @default("workspace_root")
    def _default_workspace_root(self) -> str:
        return os.environ.get("SAFEZONE_WORKSPACE_ROOT", "/tmp/safezone-workspaces")

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        return [sys.executable, "-m", "jupyterhub.singleuser"]

    @default("args")
    def _default_args(self) -> list[str]:
        return ["--allow-root"] if os.geteuid() == 0 else []

    def project_dir(self, project: str) -> str:
        return str(Path(self.workspace_root) / self.user.name / project)

    async def start(self) -> Any:
        grant = await self.acquire_grant()
        self.home_dir = self.project_dir(grant["project"])
        try:
            return await super().start()
        except Exception:
            await self.release_grant()
            raise

    async def stop(self, now: bool = False) -> None:
        grant_id = self.grant_id  # the parent's poll() clears the state on the way
        try:
            await super().stop(now=now)
        finally:
            await self.release_grant(grant_id)

    async def poll(self) -> int | None:
        """A process found dead (on its own, or at a hub restart) takes its keys along."""
        grant_id = self.grant_id
        status = await super().poll()
        if status is not None and grant_id:
            await self.end_grant_surely(grant_id)
        return status

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env.update(self.grant_environment())
        # the server config the Kubernetes image ships: nothing is served out
        env["JUPYTER_CONFIG_PATH"] = str(SERVER_CONFIG)
        env["SAFEZONE_UNISOLATED_DEMO"] = "1"  # Lab's pages say so (notebook_server.py)
        return env

    def get_state(self) -> dict[str, Any]:
        return self.grant_state(super().get_state())

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.load_grant_state(state)

    def clear_state(self) -> None:
        super().clear_state()
        self.grant, self.grant_id = None, ""
