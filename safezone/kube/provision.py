"""Project namespaces: render ``policies/kubernetes/project-namespace.yaml`` and apply it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, utils
from kubernetes.client.rest import ApiException

from ..config import POLICIES_DIR
from ..naming import check_project_name
from ..templating import fill

NAMESPACE_PREFIX = "sz-"


@dataclass(frozen=True)
class KubeSettings:
    system_namespace: str = "safezone"
    hub_service_account: str = "hub"


def namespace_for(project: str) -> str:
    return NAMESPACE_PREFIX + check_project_name(project)


def render_project(project: str, settings: KubeSettings,
                   policies_dir: Path = POLICIES_DIR) -> list[dict[str, Any]]:
    """The manifests of one project namespace."""
    template = yaml.safe_load((policies_dir / "kubernetes" / "project-namespace.yaml")
                              .read_text())
    values = {"project": project, "namespace": namespace_for(project),
              "system_namespace": settings.system_namespace,
              "hub_service_account": settings.hub_service_account}
    return fill(template, values)


def provision_project(api: client.ApiClient, project: str, settings: KubeSettings) -> list[str]:
    """Create (or leave in place) the namespace and its policies; returns what was created."""
    created = []
    for manifest in render_project(project, settings):
        try:
            utils.create_from_dict(api, manifest)
            created.append(f"{manifest['kind']}/{manifest['metadata']['name']}")
        except utils.FailToCreateError as exc:
            if not all(isinstance(e, ApiException) and e.status == 409 for e in exc.api_exceptions):
                raise
    return created


def end_project_sessions(api: client.ApiClient, project: str) -> int:
    """Archiving: delete the project's notebook pods and their grant Secrets."""
    core = client.CoreV1Api(api)
    namespace = namespace_for(project)
    selector = "safezone.io/component=notebook"
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    for pod in pods:
        core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
    for secret in core.list_namespaced_secret(namespace,
                                              label_selector="safezone.io/session").items:
        core.delete_namespaced_secret(secret.metadata.name, namespace)
    return len(pods)


class ProjectNamespaces:
    """The control plane's hook into Kubernetes: one namespace per project."""

    def __init__(self, api: client.ApiClient, settings: KubeSettings) -> None:
        self.api, self.settings = api, settings

    @classmethod
    def from_environment(cls) -> ProjectNamespaces:
        """In-cluster credentials (the chart's service account), else $KUBECONFIG."""
        import os

        from kubernetes import config

        try:
            config.load_incluster_config()
            api = client.ApiClient()
        except config.ConfigException:
            api = config.new_client_from_config(os.environ.get("KUBECONFIG"))
        return cls(api, KubeSettings(
            system_namespace=os.environ.get("SAFEZONE_SYSTEM_NAMESPACE", "safezone"),
            hub_service_account=os.environ.get("SAFEZONE_HUB_SERVICE_ACCOUNT", "hub")))

    def provision(self, project: str) -> list[str]:
        return provision_project(self.api, project, self.settings)

    def end_sessions(self, project: str) -> int:
        return end_project_sessions(self.api, project)
