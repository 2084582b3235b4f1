"""A real node: pods run on containerd, Services route through kube-proxy, cluster DNS
answers, and kube-router enforces NetworkPolicies: packets are dropped, not analysed.

Each probe is a pod that tries one connection and exits 0 (it connected) or 1 (refused or
timed out); the server pod's own log shows whether anything reached it.
"""

from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client

from .kube_node import NODE, NODE_POD_CIDR, NodeCluster, start_or_skip, wait_pods_ready
from .support import MEASUREMENTS

pytestmark = [pytest.mark.integration, pytest.mark.node_cluster]
NAMESPACE = "netpol-check"
SERVER = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("served", self.path, flush=True)
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
http.server.ThreadingHTTPServer(("", 8080), Handler).serve_forever()
"""
CLIENT = """
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[2])
while True:  # a new pod's address reaches the enforcer's sets a moment after it starts
    try:
        urllib.request.urlopen(sys.argv[1], timeout=2).read()
        break
    except Exception as exc:
        if time.monotonic() > deadline:
            print("refused:", exc); sys.exit(1)
        time.sleep(0.5)
print("connected")
"""
PATIENCE = 8  # seconds a client keeps trying: a refusal is a refusal for all of them
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
              "runAsNonRoot": True, "runAsUser": 1000,
              "seccompProfile": {"type": "RuntimeDefault"}}


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> NodeCluster:
    cluster = start_or_skip(tmp_path_factory.mktemp("node-cluster"))
    MEASUREMENTS.append("node cluster: " + ", ".join(
        f"{k} {v:.1f} s" for k, v in cluster.timings.items()))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def core(node: NodeCluster) -> client.CoreV1Api:
    api = client.CoreV1Api(node.api_client())
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    return api


def python_pod(node: NodeCluster, name: str, labels: dict, code: str, *args: str,
               restart: str = "Never") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"restartPolicy": restart, "automountServiceAccountToken": False,
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": node.images["base"],
                                     "imagePullPolicy": "Never",
                                     "command": ["python3", "-u", "-c", code, *args],
                                     "securityContext": RESTRICTED}]}}


@pytest.fixture(scope="module")
def server(node: NodeCluster, core: client.CoreV1Api) -> str:
    """An HTTP server pod behind a Service; returns the Service's DNS name."""
    node.apply([python_pod(node, "server", {"app": "server"}, SERVER, restart="Always"),
                {"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "server", "namespace": NAMESPACE},
                 "spec": {"selector": {"app": "server"},
                          "ports": [{"port": 80, "targetPort": 8080}]}}])
    wait_pods_ready(node, NAMESPACE, "app=server", 60)
    return f"server.{NAMESPACE}.svc.cluster.local"


def connect(node: NodeCluster, core: client.CoreV1Api, url: str,
            labels: dict | None = None) -> bool:
    """Run a client pod that fetches ``url``; True when it connected."""
    name = f"client-{uuid.uuid4().hex[:6]}"
    node.apply([python_pod(node, name, {"role": "client", **(labels or {})}, CLIENT, url,
                           str(PATIENCE))])
    deadline = time.monotonic() + 60 + PATIENCE
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, NAMESPACE)
        if pod.status.phase in ("Succeeded", "Failed"):
            log = core.read_namespaced_pod_log(name, NAMESPACE)
            core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
            assert ("connected" in log) == (pod.status.phase == "Succeeded"), log
            return pod.status.phase == "Succeeded"
        time.sleep(0.3)
    raise TimeoutError(f"client pod {name} did not finish: {pod.status}")


def served(core: client.CoreV1Api) -> int:
    """How many requests the server pod has answered."""
    server_pod = core.list_namespaced_pod(NAMESPACE, label_selector="app=server").items[0]
    return core.read_namespaced_pod_log(server_pod.metadata.name, NAMESPACE).count("served")


def network_policy(name: str, ingress: list) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"podSelector": {"matchLabels": {"app": "server"}},
                     "policyTypes": ["Ingress"], "ingress": ingress}}


def test_every_component_works_on_the_node(node: NodeCluster, core: client.CoreV1Api):
    [ready] = [c for c in core.read_node(NODE).status.conditions if c.type == "Ready"]
    assert ready.status == "True"
    assert core.read_node(NODE).spec.pod_cidr == NODE_POD_CIDR  # controller-manager
    assert core.read_namespaced_service_account("default", NAMESPACE)  # its SA controller
    dns = core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns").items
    assert [p.status.phase for p in dns] == ["Running"]
    assert dns[0].spec.node_name == NODE  # the scheduler bound it


def test_a_pod_reaches_a_service_by_its_cluster_dns_name(node, core, server):
    before = served(core)
    assert connect(node, core, f"http://{server}/")
    assert served(core) == before + 1
    assert not connect(node, core, f"http://no-such-service.{NAMESPACE}.svc.cluster.local/")


def test_network_policies_are_enforced_on_packets(node, core, networking, server):
    before = served(core)
    networking.create_namespaced_network_policy(NAMESPACE, network_policy("deny-all", []))
    time.sleep(2)  # kube-router syncs on the policy event
    assert not connect(node, core, f"http://{server}/")
    assert served(core) == before  # dropped before it reached the server

    networking.create_namespaced_network_policy(NAMESPACE, network_policy("allow-friends", [
        {"from": [{"podSelector": {"matchLabels": {"friend": "yes"}}}],
         "ports": [{"protocol": "TCP", "port": 8080}]}]))
    time.sleep(2)
    assert connect(node, core, f"http://{server}/", labels={"friend": "yes"})
    assert served(core) == before + 1
    assert not connect(node, core, f"http://{server}/", labels={"friend": "no"})
    assert served(core) == before + 1

    networking.delete_namespaced_network_policy("allow-friends", NAMESPACE)
    networking.delete_namespaced_network_policy("deny-all", NAMESPACE)
    time.sleep(2)
    assert connect(node, core, f"http://{server}/")


@pytest.fixture(scope="module")
def networking(node: NodeCluster) -> client.NetworkingV1Api:
    return client.NetworkingV1Api(node.api_client())


def test_teardown_leaves_nothing_on_the_host(node: NodeCluster):
    """Last in this module: mounts, interfaces, namespaces, tables, sets, processes."""
    started = time.monotonic()
    left = node.stop()
    MEASUREMENTS.append(f"node cluster: teardown {time.monotonic() - started:.1f} s")
    assert left == {}
