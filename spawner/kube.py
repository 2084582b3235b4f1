"""Kubernetes Safezone spawner: KubeSpawner with a session grant.

The pod runs in the project's namespace (provisioned by the control plane), carries the
Safezone labels, the restricted security context and no service-account token; the
grant's credentials and the server's own hub token live in a per-session Secret
``sz-grant-<grant id>`` read through ``envFrom`` and deleted with the pod, never in the pod
spec (which anyone allowed to read pods, e.g. the built-in ``view`` role, can read).
"""

from __future__ import annotations

import base64
from typing import Any

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from traitlets import default

from safezone.kube.provision import namespace_for
from safezone.sandbox.limits import limits_for

from .grants import GrantMixin

# the server's hub token: KubeSpawner would write it into the pod spec's env
TOKEN_VARIABLES = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"}}


class SafeZoneKubeSpawner(GrantMixin, KubeSpawner):
    """One pod per server, in ``sz-<project>``, under a session grant."""

    @default("uid")
    def _default_uid(self) -> int:
        return 1000

    @default("fs_gid")
    def _default_fs_gid(self) -> int:
        return 100

    @default("automount_service_account_token")
    def _default_automount(self) -> bool:
        return False

    @default("container_security_context")
    def _default_container_security_context(self) -> dict:
        return dict(RESTRICTED_CONTAINER)

    @default("pod_security_context")
    def _default_pod_security_context(self) -> dict:
        return {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}

    @default("cpu_limit")
    def _default_cpu_limit(self) -> float:
        return 2.0

    @default("mem_limit")
    def _default_mem_limit(self) -> str:
        return "4G"

    @default("cpu_guarantee")
    def _default_cpu_guarantee(self) -> float:
        return 0.25

    @default("mem_guarantee")
    def _default_mem_guarantee(self) -> str:
        return "1G"

    def apply_project_limits(self, project: str) -> None:
        """CPU and memory limits of the project's servers: the sandbox limits of
        policies/sandbox.yaml, the same as local mode's cgroups (guarantees never above)."""
        limits = limits_for(project)
        self.cpu_limit, self.mem_limit = limits.cpus, limits.memory_bytes
        self.cpu_guarantee = min(self.cpu_guarantee or 0.0, limits.cpus)
        self.mem_guarantee = min(self.mem_guarantee or 0, limits.memory_bytes)

    def get_env(self) -> dict[str, str]:
        """The pod's plain env: everything but the hub token (it is in the Secret)."""
        return {k: v for k, v in super().get_env().items() if k not in TOKEN_VARIABLES}

    def grant_secret_name(self) -> str:
        return f"sz-grant-{self.grant_id}"

    async def load_user_options(self) -> None:
        """Runs inside start() before pods are watched: get the grant, pick the namespace."""
        await super().load_user_options()
        grant = await self.acquire_grant()
        self.namespace = namespace_for(grant["project"])
        self.apply_project_limits(grant["project"])
        self.extra_labels = {**self.extra_labels,
                             "safezone.io/project": grant["project"],
                             "safezone.io/user": self.user.name,
                             "safezone.io/component": "notebook",
                             "safezone.io/session": grant["grant_id"]}
        secret_ref = {"secretRef": {"name": self.grant_secret_name()}}
        self.extra_container_config = {**self.extra_container_config, "envFrom": [secret_ref]}
        try:
            await self._create_grant_secret(grant)
        except Exception:
            await self.release_grant()
            raise

    async def _create_grant_secret(self, grant: dict[str, Any]) -> None:
        environment = {**self.grant_environment(),  # the grant's, the API URL, the language
                       **dict.fromkeys(TOKEN_VARIABLES, self.api_token)}
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": self.grant_secret_name(), "labels": {
                    "safezone.io/session": grant["grant_id"],
                    "safezone.io/user": self.user.name,
                    "safezone.io/project": grant["project"]}},
                "data": {k: base64.b64encode(v.encode()).decode()
                         for k, v in environment.items()}}
        await self.api.create_namespaced_secret(self.namespace, body)

    async def stop(self, now: bool = False) -> None:
        try:
            await super().stop(now=now)
        finally:
            if self.grant_id:
                await self._delete_grant_secret(self.grant_id, self.namespace)
            await self.release_grant()

    async def poll(self) -> int | None:
        """A pod found gone (deleted, evicted, its node lost; or missing at a hub restart)
        takes its keys and its Secret along: JupyterHub does not call ``stop()`` for a
        server that ``poll()`` finds dead."""
        grant_id, namespace = self.grant_id, self.namespace
        status = await super().poll()
        if status is not None and grant_id:
            await self.end_grant_surely(grant_id)
            self.grant, self.grant_id = None, ""
            try:
                await self._delete_grant_secret(grant_id, namespace)
            except ApiException as exc:  # the keys are revoked; a stale Secret holds nothing
                self.log.warning("could not delete sz-grant-%s: %s", grant_id, exc.status)
        return status

    async def _delete_grant_secret(self, grant_id: str, namespace: str) -> None:
        try:
            await self.api.delete_namespaced_secret(f"sz-grant-{grant_id}", namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def get_state(self) -> dict[str, Any]:
        return self.grant_state(super().get_state())

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.load_grant_state(state)
