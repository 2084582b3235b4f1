"""The chart's zone in a real cluster: ``helm install`` of helm/safezone with the locally
built images on the node cluster (tests/kube_node.py); its pods run and their probes pass.

Storage: the node has no volume provisioner, so the test makes hostPath PersistentVolumes
of a class of its own for MinIO's data and the control plane's embedded database.
"""

from __future__ import annotations

import secrets
import subprocess
import time

import httpx
import pytest
from kubernetes import client

from safezone.config import REPO_ROOT

from .kube_cluster import BIN
from .kube_node import NODE_IP, NodeCluster, start_or_skip, wait_pods_ready
from .support import MEASUREMENTS

pytestmark = [pytest.mark.integration, pytest.mark.node_cluster]
CHART = REPO_ROOT / "helm" / "safezone"
NAMESPACE = "safezone-system"
STORAGE_CLASS = "safezone-test-local"
NODE_PORT = 30080
COMPONENTS = ("hub", "proxy", "control-plane", "minio")


def helm(node: NodeCluster, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "helm"), *args, "--kubeconfig", str(node.kubeconfig)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def local_volume(node: NodeCluster, name: str, size: str) -> dict:
    """A hostPath PersistentVolume owned by the pods' user (uid 1000)."""
    path = node.root / "volumes" / name
    path.mkdir(parents=True)
    path.chmod(0o700)
    subprocess.run(["chown", "1000:1000", str(path)], check=True)
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": STORAGE_CLASS,
                     "persistentVolumeReclaimPolicy": "Retain",
                     "hostPath": {"path": str(path), "type": "Directory"}}}


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> NodeCluster:
    cluster = start_or_skip(tmp_path_factory.mktemp("zone-cluster"))
    yield cluster
    left = cluster.stop()
    assert left == {}, f"the node cluster left {left}"


@pytest.fixture(scope="module")
def zone(node: NodeCluster) -> dict:
    """helm install, then every component's pods Ready; returns what the tests need."""
    core = client.CoreV1Api(node.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    minio_secret = {"rootUser": "safezone-root", "rootPassword": secrets.token_urlsafe(24),
                    "issuerPassword": secrets.token_urlsafe(24)}
    core.create_namespaced_secret(NAMESPACE, client.V1Secret(
        metadata=client.V1ObjectMeta(name="safezone-minio"), string_data=minio_secret))
    node.apply([local_volume(node, "zone-minio", "2Gi"),
                local_volume(node, "zone-database", "1Gi")])
    images = node.images
    started = time.monotonic()
    helm(node, "install", "sz", str(CHART), "--namespace", NAMESPACE,
         "--set", f"images.hub={images['hub']}",
         "--set", f"images.controlPlane={images['control-plane']}",
         "--set", f"images.notebook={images['notebook']}",
         "--set", f"images.proxy={images['proxy']}",
         "--set", f"images.minio={images['minio']}",
         "--set", "images.pullPolicy=Never",
         "--set", "proxy.service.type=NodePort", "--set", f"proxy.service.nodePort={NODE_PORT}",
         "--set", "minio.storage=2Gi", "--set", f"minio.storageClass={STORAGE_CLASS}",
         "--set", "database.embedded.enabled=true",
         "--set", f"database.embedded.storageClass={STORAGE_CLASS}",
         "--set", "hub.admins={admin}", "--set", "hub.reviewers={rita,rhea}",
         "--set", "notebooks.podCIDR=10.244.0.0/16")
    for component in COMPONENTS:
        wait_pods_ready(node, NAMESPACE, f"app.kubernetes.io/component={component}", 300)
    MEASUREMENTS.append(f"kubernetes zone: helm install to all pods Ready "
                        f"{time.monotonic() - started:.1f} s")
    return {"url": f"http://{NODE_IP}:{NODE_PORT}", "minio": minio_secret}


def test_every_component_runs_with_passing_probes(node: NodeCluster, zone: dict):
    core = client.CoreV1Api(node.api_client())
    pods = core.list_namespaced_pod(NAMESPACE).items
    by_component = {p.metadata.labels["app.kubernetes.io/component"]: p for p in pods}
    assert set(by_component) == set(COMPONENTS)
    for component, pod in by_component.items():
        container = pod.spec.containers[0]
        assert container.readiness_probe and container.liveness_probe, component
        assert pod.status.container_statuses[0].ready, component
        assert container.security_context.read_only_root_filesystem, component
        assert pod.spec.security_context.run_as_non_root, component


def test_the_hub_answers_through_the_proxy_service(zone: dict):
    page = httpx.get(f"{zone['url']}/hub/login", timeout=10)
    assert page.status_code == 200
    health = httpx.get(f"{zone['url']}/services/safezone/api/health", timeout=10)
    assert health.status_code == 200, health.text
