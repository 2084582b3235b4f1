"""The one-machine zone's spawner: each notebook server in a runc sandbox of its own.

Per server: the researcher's own Unix user, a mount namespace showing only the runtime
(read-only) and the project workspace, a PID namespace, a network namespace on the zone
bridge (nftables: only storage, hub API and control plane reachable), and cgroup limits
from ``policies/sandbox.yaml``. The hub runs as root to do this, as TLJH's does.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode, default

from safezone.sandbox.bundle import NOTEBOOK_CONFIG, PORT, SandboxSpec, prepare_rootfs, write_bundle
from safezone.sandbox.limits import limits_for, load_policy
from safezone.sandbox.network import ZoneNetwork
from safezone.sandbox.users import ensure_user

from .grants import GrantMixin

# What a notebook server's environment may carry into the sandbox; nothing else of the hub's.
PASSED_ENV = ("JUPYTERHUB_", "JUPYTER_", "AWS_", "SAFEZONE_", "MINIO_")


class SafeZoneSandboxSpawner(GrantMixin, LocalProcessSpawner):
    """Starts ``jupyterhub-singleuser`` under ``runc run`` with the grant's credentials."""

    workspace_root = Unicode(config=True, help="Folder of <user>/<project>/ workspaces.")
    state_dir = Unicode(config=True, help="Root-only folder for runc state and bundles.")
    bridge = Unicode("szbr0", config=True, help="The zone bridge sandboxes are joined to.")
    subnet = Unicode("10.99.0.0/24", config=True, help="The zone bridge's subnet.")
    runc = Unicode("runc", config=True, help="The runc binary.")

    @default("workspace_root")
    def _default_workspace_root(self) -> str:
        return os.environ.get("SAFEZONE_WORKSPACE_ROOT", "/var/lib/safezone/workspaces")

    @default("state_dir")
    def _default_state_dir(self) -> str:
        return os.environ.get("SAFEZONE_SANDBOX_STATE_DIR", "/var/lib/safezone/sandbox")

    container_id: str = ""
    netns: str = ""

    @property
    def network(self) -> ZoneNetwork:
        return ZoneNetwork(bridge=self.bridge, subnet=self.subnet)

    @property
    def bundle_dir(self) -> Path:
        return Path(self.state_dir) / "bundles" / self.container_id

    def make_preexec_fn(self, name: str):  # runc runs as root; the sandbox switches user
        return None

    def user_env(self, env: dict[str, str]) -> dict[str, str]:  # set by sandbox_env
        return env

    def _runc(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.runc, "--root", str(Path(self.state_dir) / "runc"), *args],
                              capture_output=True, text=True, check=False)

    def sandbox_env(self) -> dict[str, str]:
        env = {k: v for k, v in self.get_env().items() if k.startswith(PASSED_ENV)}
        env.update(self.grant_environment())
        env.update({
            "HOME": "/workspace", "USER": self.user.name, "SHELL": "/bin/sh",
            "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8", "JUPYTER_CONFIG_PATH": str(NOTEBOOK_CONFIG),
            # the user config and data folders are read-only too: nothing written into the
            # workspace reconfigures the server or adds Lab extensions at its next start
            "JUPYTER_CONFIG_DIR": str(NOTEBOOK_CONFIG), "JUPYTER_PATH": "",
            "JUPYTER_DATA_DIR": "/tmp/jupyter-data",  # private, empty at each start
            "JUPYTERLAB_SETTINGS_DIR": "/workspace/.jupyterlab/user-settings",
            "JUPYTERLAB_WORKSPACES_DIR": "/workspace/.jupyterlab/workspaces",
            "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime", "IPYTHONDIR": "/tmp/ipython",
            "MPLCONFIGDIR": "/tmp/matplotlib",
        })
        return env

    async def start(self) -> Any:
        grant = await self.acquire_grant()
        try:
            return await asyncio.to_thread(self._start_sandbox, grant["project"])
        except Exception:
            await self._teardown(self.container_id, self.netns, "")
            await self.release_grant()
            raise

    def _start_sandbox(self, project: str) -> tuple[str, int]:
        unix = ensure_user(self.user.name)
        workspace = Path(self.workspace_root) / self.user.name / project
        workspace.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        workspace.mkdir(exist_ok=True, mode=0o700)
        os.chown(workspace, unix.uid, unix.gid)
        workspace.chmod(0o700)
        self.netns, address = self.network.attach()
        self.container_id = f"{self.netns}-{secrets.token_hex(4)}"
        self.ip, self.port = "0.0.0.0", PORT  # the server binds inside its namespace
        args = [sys.executable, "-m", "jupyterhub.singleuser", *self.get_args()]
        policy = load_policy()
        spec = SandboxSpec(self.container_id, unix, workspace, self.netns,
                           limits_for(project, policy), args, self.sandbox_env(),
                           seccomp=policy["seccomp"])
        rootfs = prepare_rootfs(Path(self.state_dir) / "rootfs")
        write_bundle(self.bundle_dir, rootfs, spec)
        self.log.info("sandbox %s for %s/%s as %s at %s", self.container_id, self.user.name,
                      project, unix.name, address)
        self.proc = subprocess.Popen(
            [self.runc, "--root", str(Path(self.state_dir) / "runc"), "run", "--bundle",
             str(self.bundle_dir), self.container_id], start_new_session=True,
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")})
        self.pid = self.proc.pid
        return address, PORT

    async def stop(self, now: bool = False) -> None:
        captured = self.container_id, self.netns, self.grant_id  # poll() clears state
        try:
            await super().stop(now=now)
        finally:
            await self._teardown(*captured)

    async def poll(self) -> int | None:
        """A sandbox found dead (on its own, or at a hub restart) takes its keys along."""
        captured = self.container_id, self.netns, self.grant_id
        status = await super().poll()
        if status is not None and any(captured):
            await self._teardown(*captured)
        return status

    async def _teardown(self, container_id: str, netns: str, grant_id: str) -> None:
        """Kill what is left of the sandbox, free its address, end its grant."""
        if grant_id:
            await self.end_grant_surely(grant_id)
            self.grant, self.grant_id = None, ""
        if container_id:
            await asyncio.to_thread(self._runc, "delete", "--force", container_id)
            shutil.rmtree(Path(self.state_dir) / "bundles" / container_id, ignore_errors=True)
        if netns:
            await asyncio.to_thread(self.network.detach, netns)

    def get_state(self) -> dict[str, Any]:
        state = self.grant_state(super().get_state())
        if self.container_id:
            state.update(safezone_container=self.container_id, safezone_netns=self.netns)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.load_grant_state(state)
        self.container_id = state.get("safezone_container", "")
        self.netns = state.get("safezone_netns", "")

    def clear_state(self) -> None:
        super().clear_state()
        self.grant, self.grant_id, self.container_id, self.netns = None, "", "", ""
