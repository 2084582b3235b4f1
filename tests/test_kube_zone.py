"""The chart's zone in a real cluster: ``helm install`` of helm/safezone with the locally
built images on the node cluster (tests/kube_node.py); its pods run and their probes pass.

Storage: the node has no volume provisioner, so the test makes hostPath PersistentVolumes
of a class of its own for MinIO's data and the control plane's embedded database.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time

import httpx
import pytest
from kubernetes import client

from safezone.config import REPO_ROOT
from spawner.demo_auth import hash_password

from .kernels import KernelSession
from .kube_cluster import BIN
from .kube_node import NODE_IP, NodeCluster, start_or_skip, wait_pods_ready
from .support import (
    MEASUREMENTS,
    assert_serves_nothing_out,
    hub_login_at,
    hub_token,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.node_cluster]
CHART = REPO_ROOT / "helm" / "safezone"
NAMESPACE = "safezone-system"
STORAGE_CLASS = "safezone-test-local"
NODE_PORT = 30080
COMPONENTS = ("hub", "proxy", "control-plane", "minio")
USERS = ("admin", "alice", "bob", "rita", "rhea")
PROJECT = "demo-health"  # what `safezone deid demo` seeds (safezone/local/demo.py)
WAIT_FOR_DNS = """
import socket, time
started = time.monotonic()
while True:
    try:
        socket.getaddrinfo("minio.safezone-system.svc.cluster.local", 9000)
        break
    except OSError:
        if time.monotonic() - started > 60:
            raise
        time.sleep(0.5)
print(f"{time.monotonic() - started:.1f} s", end="")
"""


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
    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    users = json.dumps({user: hash_password(p) for user, p in passwords.items()})
    core.create_namespaced_secret(NAMESPACE, client.V1Secret(
        metadata=client.V1ObjectMeta(name="demo-users"), string_data={"users.json": users}))
    node.apply([local_volume(node, "zone-minio", "2Gi"),
                local_volume(node, "zone-database", "1Gi"),
                local_volume(node, "zone-hub", "1Gi"),
                local_volume(node, "zone-minio-audit", "1Gi")])
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
         "--set", "minio.audit.queueStorage=1Gi",
         "--set", "database.embedded.enabled=true",
         "--set", f"database.embedded.storageClass={STORAGE_CLASS}",
         "--set", f"hub.storage.storageClass={STORAGE_CLASS}",
         "--set", "hub.admins={admin}", "--set", "hub.reviewers={rita,rhea}",
         "--set", "hub.demoUsersSecret=demo-users",
         "--set", "notebooks.podCIDR=10.244.0.0/16")
    for component in COMPONENTS:
        wait_pods_ready(node, NAMESPACE, f"app.kubernetes.io/component={component}", 300)
    MEASUREMENTS.append(f"kubernetes zone: helm install to all pods Ready "
                        f"{time.monotonic() - started:.1f} s")
    # the hub adds the control plane's route once it reaches the proxy's API: a new pod's
    # address reaches the policy enforcer's sets a moment after the pod starts
    url = f"http://{NODE_IP}:{NODE_PORT}"
    wait_until(lambda: httpx.get(f"{url}/services/safezone/api/health",
                                 timeout=10).status_code == 200, timeout=120, interval=1)
    MEASUREMENTS.append(f"kubernetes zone: helm install to the control plane answering "
                        f"through the proxy {time.monotonic() - started:.1f} s")
    seeded = exec_in(node, NAMESPACE, "app.kubernetes.io/component=control-plane",
                     ["safezone", "deid", "demo", "--member", "alice"])
    assert f"project {PROJECT}" in seeded, seeded
    return {"url": url, "minio": minio_secret, "passwords": passwords,
            "tokens": {u: hub_token(url, u, p) for u, p in passwords.items()}}


def exec_in(node: NodeCluster, namespace: str, selector: str, command: list[str]) -> str:
    """Run a command in the first pod matching ``selector`` (kubectl exec); its output."""
    from kubernetes.stream import stream

    core = client.CoreV1Api(node.api_client())
    pod = core.list_namespaced_pod(namespace, label_selector=selector).items[0]
    return stream(core.connect_get_namespaced_pod_exec, pod.metadata.name, namespace,
                  command=command, stderr=True, stdout=True, stdin=False, tty=False)


def hub_login(zone: dict, user: str) -> httpx.Client:
    return hub_login_at(zone["url"], user, zone["passwords"][user])


def server_model(zone: dict, user: str) -> dict | None:
    response = httpx.get(f"{zone['url']}/hub/api/users/{user}", timeout=30,
                         headers={"Authorization": f"token {zone['tokens'][user]}"})
    return response.json()["servers"].get("")


@pytest.fixture(scope="module")
def alice_server(node: NodeCluster, zone: dict) -> dict:
    """alice logs in through the proxy Service and starts a demo-health server."""
    browser = hub_login(zone, "alice")
    offered = re.findall(r'<option value="([^"]+)"', browser.get("/hub/spawn").text)
    assert offered == [PROJECT]
    started = time.monotonic()
    response = browser.post("/hub/spawn", data={"project": PROJECT,
                                                "_xsrf": browser.cookies.get("_xsrf")})
    assert response.status_code in (302, 303), response.text[:500]
    wait_until(lambda: (server_model(zone, "alice") or {}).get("ready"), timeout=300,
               interval=0.5)
    MEASUREMENTS.append(f"kubernetes zone: alice's notebook pod ready "
                        f"{time.monotonic() - started:.1f} s after POST /hub/spawn")
    core = client.CoreV1Api(node.api_client())
    [pod] = core.list_namespaced_pod(f"sz-{PROJECT}",
                                     label_selector="safezone.io/user=alice").items
    kernel = KernelSession(f"{zone['url']}/user/alice/", zone["tokens"]["alice"], timeout=120)
    waited = kernel.run(WAIT_FOR_DNS)  # the enforcer admits a new pod a moment after it starts
    MEASUREMENTS.append(f"kubernetes zone: cluster DNS answered alice's kernel after {waited}")
    yield {"pod": pod, "browser": browser, "kernel": kernel}
    kernel.close()


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


def logs(node: NodeCluster, component: str, lines: int = 40) -> str:
    core = client.CoreV1Api(node.api_client())
    pod = core.list_namespaced_pod(NAMESPACE, label_selector=(
        f"app.kubernetes.io/component={component}")).items[0]
    return core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE, tail_lines=lines)


def test_the_hub_and_control_plane_answer_through_the_proxy_service(node, zone: dict):
    page = httpx.get(f"{zone['url']}/hub/login", timeout=10)
    assert page.status_code == 200 and 'name="password"' in page.text
    health = httpx.get(f"{zone['url']}/services/safezone/api/health", timeout=10)
    assert health.status_code == 200, (health.headers, logs(node, "hub"))
    assert health.json() == {"status": "ok"}


def test_alice_notebook_runs_in_her_project_namespace_restricted(node, alice_server):
    core = client.CoreV1Api(node.api_client())
    pod = alice_server["pod"]
    namespace = core.read_namespace(pod.metadata.namespace)
    assert namespace.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert pod.spec.automount_service_account_token is False
    assert not any(v.projected for v in pod.spec.volumes or [])  # no service-account token
    assert pod.metadata.labels["safezone.io/component"] == "notebook"
    session = pod.metadata.labels["safezone.io/session"]
    assert core.read_namespaced_secret(f"sz-grant-{session}", pod.metadata.namespace)
    assert pod.status.pod_ip.startswith("10.244.")
    token = alice_server["kernel"].run("import os; print(os.environ['JUPYTERHUB_API_TOKEN'])")
    assert token.strip() and token.strip() not in json.dumps(
        node.api_client().sanitize_for_serialization(pod))  # in the Secret, not the spec


def test_the_hub_may_not_read_session_secrets(node, alice_server):
    """The hub starts and stops pods and writes their Secrets; it cannot read any Secret
    (each holds a session's keys and server token)."""
    review = client.AuthorizationV1Api(node.api_client())
    hub = f"system:serviceaccount:{NAMESPACE}:hub"

    def may(verb: str, resource: str) -> bool:
        return review.create_subject_access_review(client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(user=hub, resource_attributes=(
                client.V1ResourceAttributes(namespace=f"sz-{PROJECT}", verb=verb,
                                            resource=resource))))).status.allowed

    assert may("create", "pods") and may("delete", "secrets")
    for verb in ("get", "list", "watch"):
        assert not may(verb, "secrets"), verb
    assert not may("create", "pods/exec") and not may("get", "pods/log")


def test_a_kernel_in_the_pod_reads_the_dataset_through_the_minio_service(zone, alice_server):
    """The welcome notebook's load cell, as alice would run it."""
    out = alice_server["kernel"].run(
        "import json\n"
        "nb = json.load(open('Welcome.ipynb'))\n"
        "cell = next(c for c in nb['cells'] if c['cell_type'] == 'code'"
        " and 'read_parquet' in ''.join(c['source']))\n"
        "exec(''.join(cell['source']))\n"
        "import re\n"
        "print(json.dumps({'rows': len(df), 'columns': sorted(df.columns), 'rrn_like':"
        " int(df['rrn'].astype(str).str.fullmatch(r'\\d{6}-\\d{7}').sum())}))\n")
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded["rows"] > 1000
    assert "name" not in loaded["columns"] and "phone" not in loaded["columns"]  # deleted
    assert loaded["rrn_like"] == 0  # pseudonymised: no resident number is left


# -- reachability: what alice's kernel can open, observed, next to netpol-analyzer ---------
SYSTEM = f"{NAMESPACE}.svc.cluster.local"
PROBE = """
import json, socket, urllib.request, urllib.error
def tcp(host, port):
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False
def status(url):
    try:
        return urllib.request.urlopen(url, timeout=5).status
    except urllib.error.HTTPError as exc:
        return exc.code
targets = json.loads(%r)
print(json.dumps({"tcp": {name: tcp(host, port) for name, (host, port) in targets.items()},
                  "control plane without a token": status(%r),
                  "hub API without a token": status(%r),
                  "MinIO without keys": status(%r)}))
"""


class HostListener:
    """A TCP listener on a host address; counts who connected (nothing may)."""

    def __init__(self, address: str, port: int) -> None:
        import socket
        import threading

        self.accepted = 0
        self.sock = socket.create_server((address, port))
        self.sock.settimeout(0.5)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def other_project(node: NodeCluster, zone: dict) -> dict:
    """Another project's namespace (as the control plane provisions it) with a notebook
    pod listening on 8888."""
    from safezone.kube.provision import KubeSettings, provision_project

    from .test_kube_admission import good_pod

    provision_project(node.api_client(), "other", KubeSettings(system_namespace=NAMESPACE))
    core = client.CoreV1Api(node.api_client())
    core.create_namespaced_secret("sz-other", client.V1Secret(
        metadata=client.V1ObjectMeta(name="sz-grant-g1")))
    pod = good_pod("notebook-other")
    pod["metadata"]["namespace"] = "sz-other"
    pod["metadata"]["labels"]["safezone.io/project"] = "other"
    container = pod["spec"]["containers"][0]
    container.update(image=node.images["notebook"], imagePullPolicy="Never",
                     command=["python3", "-m", "http.server", "8888"])
    node.apply([pod])
    [ready] = wait_pods_ready(node, "sz-other", "safezone.io/component=notebook", 120)
    return {"pod": ready.metadata.name, "ip": ready.status.pod_ip}


def live_world(node: NodeCluster, folder) -> object:
    """The cluster's namespaces, pods and NetworkPolicies as YAML for netpol-analyzer."""
    import yaml

    api = node.api_client()
    core, networking = client.CoreV1Api(api), client.NetworkingV1Api(api)
    docs = []
    for kind, items in (("Namespace", core.list_namespace().items),
                        ("Pod", core.list_pod_for_all_namespaces().items),
                        ("NetworkPolicy",
                         networking.list_network_policy_for_all_namespaces().items)):
        for item in items:
            doc = api.sanitize_for_serialization(item)
            doc.update(apiVersion="networking.k8s.io/v1" if kind == "NetworkPolicy" else "v1",
                       kind=kind)
            doc["metadata"].pop("managedFields", None)
            docs.append(doc)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "world.yaml").write_text(yaml.safe_dump_all(docs))
    return folder


def test_reachability_from_alice_kernel_is_enforced_and_matches_the_analyser(
        node, zone, alice_server, other_project, tmp_path):
    from .kube_cluster import netpol_allows
    from .kube_node import METADATA_IP, OUTSIDE_IP

    core = client.CoreV1Api(node.api_client())
    api_port = int(node.api_url.rsplit(":", 1)[1])
    kubelet_port = core.read_node("szk-node").status.daemon_endpoints.kubelet_endpoint.port

    def pod_of(namespace: str, selector: str) -> str:
        return f"{namespace}/" + core.list_namespaced_pod(
            namespace, label_selector=selector).items[0].metadata.name

    component = "app.kubernetes.io/component="
    # name: (host, port, expected, (analyser destination pod | None, destination ip, port))
    targets = {
        "hub API": (f"hub.{SYSTEM}", 8081, True, (pod_of(NAMESPACE, component + "hub"),
                                                   None, 8081)),
        "control plane": (f"control-plane.{SYSTEM}", 8700, True,
                          (pod_of(NAMESPACE, component + "control-plane"), None, 8700)),
        "MinIO": (f"minio.{SYSTEM}", 9000, True, (pod_of(NAMESPACE, component + "minio"),
                                                   None, 9000)),
        "cluster DNS (TCP)": ("kube-dns.kube-system.svc.cluster.local", 53, True,
                              (pod_of("kube-system", "k8s-app=kube-dns"), None, 53)),
        "proxy API": (f"proxy-api.{SYSTEM}", 8001, False,
                      (pod_of(NAMESPACE, component + "proxy"), None, 8001)),
        "proxy, public side": (f"proxy-public.{SYSTEM}", 80, False,
                               (pod_of(NAMESPACE, component + "proxy"), None, 8000)),
        "another project's notebook": (other_project["ip"], 8888, False,
                                       (f"sz-other/{other_project['pod']}", None, 8888)),
        "Kubernetes API (Service)": ("kubernetes.default.svc.cluster.local", 443, False,
                                     (None, NODE_IP, api_port)),
        "Kubernetes API (node)": (NODE_IP, api_port, False, (None, NODE_IP, api_port)),
        "kubelet": (NODE_IP, kubelet_port, False, (None, NODE_IP, kubelet_port)),
        "the internet (listener on the node)": (OUTSIDE_IP, 8080, False,
                                                (None, OUTSIDE_IP, 8080)),
        "cloud metadata (listener on the node)": (METADATA_IP, 80, False,
                                                  (None, METADATA_IP, 80)),
    }
    listeners = [HostListener(OUTSIDE_IP, 8080), HostListener(METADATA_IP, 80)]
    try:
        import socket

        for listener, (host, port) in zip(listeners, [(OUTSIDE_IP, 8080), (METADATA_IP, 80)],
                                          strict=True):
            socket.create_connection((host, port), timeout=3).close()  # they do listen
            wait_until(lambda li=listener: li.accepted == 1, timeout=5)
            listener.accepted = 0
        code = PROBE % (json.dumps({n: (t[0], t[1]) for n, t in targets.items()}),
                        f"http://control-plane.{SYSTEM}:8700/services/safezone/api/projects",
                        f"http://hub.{SYSTEM}:8081/hub/api/user",
                        f"http://minio.{SYSTEM}:9000/deid-health-2024/")
        observed = json.loads(alice_server["kernel"].run(code).strip().splitlines()[-1])
        assert [li.accepted for li in listeners] == [0, 0]  # nothing reached them
    finally:
        for listener in listeners:
            listener.close()

    world = live_world(node, tmp_path / "world")
    source = f"{alice_server['pod'].metadata.namespace}/{alice_server['pod'].metadata.name}"
    table = []
    for name, (_host, _port, expected, (dest, dest_ip, port)) in targets.items():
        analysed = netpol_allows(world, source, dest=dest, dest_ip=dest_ip, port=port)
        table.append(f"  {name:40} observed {'open' if observed['tcp'][name] else 'refused':8}"
                     f" analyser {'allow' if analysed else 'deny'}")
        assert observed["tcp"][name] is expected, name
        assert analysed is expected, f"netpol-analyzer disagrees on {name}"
    MEASUREMENTS.append("kubernetes zone: reachability from alice's kernel\n" + "\n".join(table))
    assert observed["control plane without a token"] in (401, 403)
    assert observed["hub API without a token"] == 403
    assert observed["MinIO without keys"] == 403


# -- the export flow and the end of a session, in the cluster ------------------------------
def control_plane(zone: dict, user: str) -> httpx.Client:
    """The control plane through the proxy Service, with the user's hub token."""
    return httpx.Client(base_url=f"{zone['url']}/services/safezone/", timeout=60,
                        headers={"Authorization": f"token {zone['tokens'][user]}"})


def test_the_export_flow_runs_end_to_end_in_the_cluster(zone, alice_server):
    """Save to the outbox and submit from the kernel; two reviewers approve; the release
    is downloaded through the control plane, byte for byte what was frozen."""
    import hashlib

    from .support import download, pages_session, wait_for_checks
    from .test_hub_flow import EXPORT_FROM_NOTEBOOK

    out = alice_server["kernel"].run(EXPORT_FROM_NOTEBOOK + "print(request['id'])\n")
    status_line, request_id = out.strip().splitlines()[-2:]
    assert status_line.startswith("in_review")
    alice = control_plane(zone, "alice")
    request = wait_for_checks(alice, request_id)
    assert request["required_approvals"] == 2  # the dominance finding asks for two
    for reviewer in ("rita", "rhea"):
        for f in request["files"]:
            vote = control_plane(zone, reviewer).post(f"api/exports/{request_id}/votes", json={
                "file_id": f["id"], "decision": "approve", "comment": "checked",
                "override_reason": "the dominant cell is a synthetic test value"})
            assert vote.status_code == 200, vote.text
    released = alice.get(f"api/exports/{request_id}").json()
    assert released["status"] == "released"
    file = released["files"][0]
    refused = alice.post(f"api/exports/{request_id}/files/{file['id']}/links")
    assert refused.status_code == 403  # downloads are the pages' alone, never a token's
    browser = pages_session(hub_login(zone, "alice"), zone["url"])
    body = download(browser, request_id, file["id"])
    assert body.status_code == 200, body.text[:300]
    assert hashlib.sha256(body.content).hexdigest() == file["sha256"]


def session_keys(alice_server: dict) -> tuple[str, str, str]:
    out = alice_server["kernel"].run(
        "import os; print(os.environ['AWS_ACCESS_KEY_ID'], os.environ['AWS_SECRET_ACCESS_KEY'],"
        " os.environ['AWS_SESSION_TOKEN'])")
    key, secret, token = out.split()
    return key, secret, token


def minio_as(node: NodeCluster, key: str, secret: str, token: str):
    """An S3 client on MinIO's pod address, from the node (inside the pod network)."""
    import boto3
    from botocore.config import Config

    core = client.CoreV1Api(node.api_client())
    pod = core.list_namespaced_pod(NAMESPACE, label_selector=(
        "app.kubernetes.io/component=minio")).items[0]
    return boto3.client("s3", endpoint_url=f"http://{pod.status.pod_ip}:9000",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        aws_session_token=token, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1}, connect_timeout=3))


def dataset_read(s3) -> str:
    """"read" when the session's keys read the demo dataset, else MinIO's error code."""
    from botocore.exceptions import ClientError

    try:
        listed = s3.list_objects_v2(Bucket="deid-health-2024")
        return "read" if listed.get("KeyCount", 0) else "empty"
    except ClientError as exc:
        return exc.response["Error"]["Code"]


def test_the_notebook_pod_serves_nothing_out(zone, alice_server):
    """The image's server config (the same folder the local sandbox uses), through the
    proxy Service with alice's token and her browser cookie."""
    token = httpx.Client(base_url=f"{zone['url']}/user/alice", timeout=60,
                         headers={"Authorization": f"token {zone['tokens']['alice']}"})
    assert_serves_nothing_out(token, alice_server["browser"], "/user/alice")


def test_stopping_deletes_the_pod_and_its_secret_and_ends_the_grant(node, zone, alice_server):
    core = client.CoreV1Api(node.api_client())
    pod = alice_server["pod"]
    namespace, session = pod.metadata.namespace, pod.metadata.labels["safezone.io/session"]
    s3 = minio_as(node, *session_keys(alice_server))
    assert dataset_read(s3) == "read"  # the keys work while the server runs
    alice_server["kernel"].close()
    hub = httpx.Client(base_url=f"{zone['url']}/hub/api", timeout=60,
                       headers={"Authorization": f"token {zone['tokens']['alice']}"})
    assert hub.delete("/users/alice/server").status_code in (202, 204)
    wait_until(lambda: server_model(zone, "alice") is None, timeout=60, interval=0.5)
    assert dataset_read(s3) == "InvalidAccessKeyId"  # ended before stop() returned
    wait_until(lambda: not core.list_namespaced_pod(
        namespace, label_selector=f"safezone.io/session={session}").items, timeout=60)
    assert not core.list_namespaced_secret(
        namespace, label_selector=f"safezone.io/session={session}").items


def start_alice(node: NodeCluster, zone: dict):
    """A fresh server of alice's, ready; its pod."""
    browser = hub_login(zone, "alice")
    response = browser.post("/hub/spawn", data={"project": PROJECT,
                                                "_xsrf": browser.cookies.get("_xsrf")})
    assert response.status_code in (302, 303), response.text[:300]
    wait_until(lambda: (server_model(zone, "alice") or {}).get("ready"), timeout=300,
               interval=0.5)
    core = client.CoreV1Api(node.api_client())
    [pod] = core.list_namespaced_pod(f"sz-{PROJECT}",
                                     label_selector="safezone.io/user=alice").items
    return pod


def secret_keys(node: NodeCluster, pod) -> tuple[str, str, str]:
    """The session's keys, read from its Secret with the cluster's admin credentials."""
    import base64

    core = client.CoreV1Api(node.api_client())
    session = pod.metadata.labels["safezone.io/session"]
    data = core.read_namespaced_secret(f"sz-grant-{session}", pod.metadata.namespace).data
    return tuple(base64.b64decode(data[k]).decode() for k in (  # type: ignore[return-value]
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))


def session_gone(node: NodeCluster, pod) -> bool:
    core = client.CoreV1Api(node.api_client())
    return not core.list_namespaced_secret(pod.metadata.namespace, label_selector=(
        f"safezone.io/session={pod.metadata.labels['safezone.io/session']}")).items


def test_a_pod_that_dies_takes_its_keys_and_secret_along(node, zone):
    """The pod is deleted behind the hub's back (eviction, a lost node, kubectl): the hub's
    poll finds it gone, which ends the grant and deletes the session Secret."""
    pod = start_alice(node, zone)
    s3 = minio_as(node, *secret_keys(node, pod))
    assert dataset_read(s3) == "read"
    core = client.CoreV1Api(node.api_client())
    deleted = time.monotonic()
    core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                               grace_period_seconds=0)
    wait_until(lambda: dataset_read(s3) == "InvalidAccessKeyId", timeout=5, interval=0.1)
    MEASUREMENTS.append(f"kubernetes zone: pod deleted → its keys refused after "
                        f"{time.monotonic() - deleted:.2f} s (hub poll every 2 s)")
    wait_until(lambda: session_gone(node, pod), timeout=30, interval=0.5)
    wait_until(lambda: server_model(zone, "alice") is None, timeout=30, interval=0.5)


def test_a_pod_gone_at_hub_restart_takes_its_keys_along(node, zone):
    """The hub is down (scaled to 0) while alice's pod disappears; the restarted hub finds
    the server in its database (a volume), polls it and ends the grant."""
    pod = start_alice(node, zone)
    s3 = minio_as(node, *secret_keys(node, pod))
    assert dataset_read(s3) == "read"
    apps, core = client.AppsV1Api(node.api_client()), client.CoreV1Api(node.api_client())
    hub = {"app.kubernetes.io/component": "hub"}
    selector = ",".join(f"{k}={v}" for k, v in hub.items())
    apps.patch_namespaced_deployment_scale("hub", NAMESPACE, {"spec": {"replicas": 0}})
    wait_until(lambda: not core.list_namespaced_pod(NAMESPACE, label_selector=selector).items,
               timeout=60, interval=0.5)
    core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                               grace_period_seconds=0)
    wait_until(lambda: not core.list_namespaced_pod(pod.metadata.namespace, label_selector=(
        "safezone.io/user=alice")).items, timeout=60, interval=0.5)
    assert dataset_read(s3) == "read"  # nobody has noticed yet: the hub is down
    apps.patch_namespaced_deployment_scale("hub", NAMESPACE, {"spec": {"replicas": 1}})
    wait_pods_ready(node, NAMESPACE, selector, 180)
    ready = time.monotonic()
    # The new hub pod's address must first be admitted by the NetworkPolicy enforcer
    # (kube-router syncs its sets some seconds after a pod starts): until then neither the
    # proxy nor the control plane reaches it. The proxy reaching it marks that moment.
    wait_until(lambda: reachable(f"{zone['url']}/hub/health"), timeout=120, interval=0.2)
    admitted = time.monotonic()
    # the enforcer admits the pod to each policy's sets on its own sync: the hub's calls to
    # the control plane may pass a moment after the proxy's to the hub (measured, printed)
    wait_until(lambda: dataset_read(s3) == "InvalidAccessKeyId", timeout=10, interval=0.1)
    MEASUREMENTS.append(
        f"kubernetes zone: hub restarted → a pod found gone has its keys refused "
        f"{time.monotonic() - admitted:.2f} s after the network admitted the new hub pod "
        f"({time.monotonic() - ready:.2f} s after it was Ready)")
    wait_until(lambda: session_gone(node, pod), timeout=30, interval=0.5)


def reachable(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_archiving_the_project_removes_its_workloads(node, zone):
    """A fresh server of alice's, then the administrator archives the project."""
    start_alice(node, zone)
    core = client.CoreV1Api(node.api_client())
    namespace = f"sz-{PROJECT}"
    assert core.list_namespaced_pod(namespace, label_selector="safezone.io/user=alice").items
    archived = control_plane(zone, "admin").post(f"api/projects/{PROJECT}/archive")
    assert archived.status_code == 200, archived.text
    wait_until(lambda: not core.list_namespaced_pod(namespace).items, timeout=60)
    assert not core.list_namespaced_secret(namespace,
                                           label_selector="safezone.io/session").items
    wait_until(lambda: server_model(zone, "alice") is None, timeout=60, interval=0.5)
