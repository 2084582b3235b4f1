"""Project provisioning against a real kube-apiserver, and the rendered NetworkPolicies
proven with a network-policy analyser (np-guard's netpol-analyzer, Go-built)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from safezone.kube.provision import (
    KubeSettings,
    namespace_for,
    provision_project,
    render_project,
)

from .kube_cluster import BIN, BUILD_HINT, netpol_allows

SETTINGS = KubeSettings(system_namespace="safezone", hub_service_account="hub")
HUB = "system:serviceaccount:safezone:hub"


@pytest.fixture(scope="module")
def cluster_api(kube_policies):
    return kube_policies


def can(api, user: str, verb: str, resource: str, namespace: str) -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=user, resource_attributes=client.V1ResourceAttributes(
                verb=verb, resource=resource, namespace=namespace))))
    return review.status.allowed


@pytest.mark.integration
def test_provisioning_creates_a_locked_down_namespace(cluster_api):
    created = provision_project(cluster_api, "alpha", SETTINGS)
    assert "Namespace/sz-alpha" in created and "NetworkPolicy/default-deny" in created
    assert provision_project(cluster_api, "alpha", SETTINGS) == []  # idempotent
    core = client.CoreV1Api(cluster_api)
    labels = core.read_namespace("sz-alpha").metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["safezone.io/project"] == "alpha"
    policies = client.NetworkingV1Api(cluster_api).list_namespaced_network_policy("sz-alpha")
    assert {p.metadata.name for p in policies.items} == {
        "default-deny", "notebook-egress", "notebook-ingress"}
    assert core.read_namespaced_resource_quota("safezone-quota", "sz-alpha").spec.hard["pods"]
    assert core.read_namespaced_service_account("default", "sz-alpha"
                                                ).automount_service_account_token is False
    provision_project(cluster_api, "beta", SETTINGS)
    assert can(cluster_api, HUB, "create", "pods", "sz-alpha")
    assert can(cluster_api, HUB, "delete", "secrets", "sz-beta")
    assert not can(cluster_api, HUB, "create", "pods", "default")
    assert not can(cluster_api, HUB, "create", "rolebindings", "sz-alpha")


@pytest.mark.integration
def test_privileged_pod_refused_by_pod_security(cluster_api):
    provision_project(cluster_api, "gamma", SETTINGS)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]}}
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(cluster_api).create_namespaced_pod("sz-gamma", pod, dry_run="All")
    assert caught.value.status == 403 and "restricted" in caught.value.body


# -- reachability, from the analyser's verdicts on the rendered objects -------------------
def _pod(name: str, namespace: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "x", "ports": [
                {"containerPort": p} for p in (53, 8081, 8700, 8888, 9000)]}]},
            "status": {"podIP": "10.0.0.9", "hostIP": "10.0.0.1"}}


def _namespace(name: str, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}}}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    if not (BIN / "netpolicy").is_file():
        pytest.skip(f"netpol-analyzer missing: {BUILD_HINT}")
    root = tmp_path_factory.mktemp("netpol")
    objects = [_namespace("safezone"), _namespace("kube-system"),
               _pod("hub", "safezone", {"app.kubernetes.io/component": "hub"}),
               _pod("proxy", "safezone", {"app.kubernetes.io/component": "proxy"}),
               _pod("control-plane", "safezone",
                    {"app.kubernetes.io/component": "control-plane"}),
               _pod("minio", "safezone", {"app.kubernetes.io/component": "minio"}),
               _pod("other-dns", "safezone", {"app.kubernetes.io/component": "dns"}),
               _pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"})]
    for project in ("alpha", "beta"):
        for manifest in render_project(project, SETTINGS):
            if manifest["kind"] == "Namespace":
                manifest["metadata"]["labels"]["kubernetes.io/metadata.name"] = (
                    manifest["metadata"]["name"])
                objects.append(manifest)
            elif manifest["kind"] == "NetworkPolicy":
                objects.append(manifest)
        objects.append(_pod("notebook", namespace_for(project), {
            "safezone.io/component": "notebook", "safezone.io/project": project}))
    (root / "world.yaml").write_text(yaml.safe_dump_all(objects))
    return root


NOTEBOOK = "sz-alpha/notebook"


@pytest.mark.parametrize(("dest", "dest_ip", "port", "protocol", "expected"), [
    ("safezone/minio", None, 9000, "tcp", True),
    ("safezone/hub", None, 8081, "tcp", True),
    ("safezone/control-plane", None, 8700, "tcp", True),
    ("kube-system/kube-dns", None, 53, "udp", True),
    ("safezone/other-dns", None, 53, "udp", False),       # DNS only in kube-system
    ("safezone/minio", None, 8700, "tcp", False),         # right pod, wrong port
    ("sz-beta/notebook", None, 8888, "tcp", False),       # another project
    (None, "169.254.169.254", 80, "tcp", False),          # cloud metadata server
    (None, "8.8.8.8", 443, "tcp", False),                 # the internet
    (None, "1.1.1.1", 53, "udp", False),                  # outside DNS
])
def test_notebook_egress(world, dest, dest_ip, port, protocol, expected):
    assert netpol_allows(world, NOTEBOOK, dest=dest, dest_ip=dest_ip, port=port,
                   protocol=protocol) is expected


@pytest.mark.parametrize(("source", "expected"), [
    ("safezone/proxy", True), ("safezone/hub", True), ("sz-beta/notebook", False),
    ("safezone/minio", False)])
def test_notebook_ingress(world, source, expected):
    assert netpol_allows(world, source, dest=NOTEBOOK, port=8888) is expected


@pytest.mark.integration
def test_control_plane_provisions_on_create_and_clears_on_archive(stack, kube_policies):
    """Through the REST API: a new project gets its namespace; archiving removes its
    running notebook pods and their grant Secrets."""
    from safezone.kube.provision import ProjectNamespaces

    from .support import unique

    stack.zone.namespaces = ProjectNamespaces(kube_policies, SETTINGS)
    try:
        name = unique("kp")
        stack.api("admin").post("/api/projects", json={"name": name}).raise_for_status()
        core = client.CoreV1Api(kube_policies)
        namespace = namespace_for(name)
        assert core.read_namespace(namespace).metadata.labels["safezone.io/project"] == name
        from .test_kube_admission import good_pod

        pod = good_pod("nb")
        pod["metadata"]["labels"]["safezone.io/project"] = name
        core.create_namespaced_secret(namespace, client.V1Secret(metadata=client.V1ObjectMeta(
            name="sz-grant-g1", labels={"safezone.io/session": "g1"})))
        core.create_namespaced_pod(namespace, pod)
        stack.api("admin").post(f"/api/projects/{name}/archive").raise_for_status()
        assert not core.list_namespaced_secret(namespace,
                                               label_selector="safezone.io/session").items
        from .support import wait_until

        wait_until(lambda: not core.list_namespaced_pod(namespace).items, timeout=30)
    finally:
        stack.zone.namespaces = None
