"""The Helm chart: lint, schema, server-side validation of every object, install and
upgrade into a real kube-apiserver of its own.

There is no kube-controller-manager here, so Deployments and StatefulSets create no pods:
each pod template is instead submitted as a Pod (server dry run) into a namespace that
enforces Pod Security ``restricted``.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from kubernetes import client, utils

from safezone.config import REPO_ROOT, Settings
from safezone.storage.policies import DatasetLocation, session_policy

from .kube_cluster import BIN, BUILD_HINT, missing_binaries, start_cluster

pytestmark = pytest.mark.integration
CHART = REPO_ROOT / "helm" / "safezone"
HELM = BIN / "helm"
NAMESPACE = "safezone-system"


def helm(*args: str, kubeconfig=None, check: bool = True) -> subprocess.CompletedProcess:
    command = [str(HELM), *args]
    if kubeconfig:
        command += ["--kubeconfig", str(kubeconfig)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if missing_binaries() or not HELM.is_file():
        pytest.skip(f"Kubernetes test binaries missing: {BUILD_HINT}")
    cluster = start_cluster(tmp_path_factory.mktemp("helm-kube"))
    yield cluster
    cluster.stop()


def rendered(*sets: str) -> list[dict]:
    args = ["template", "sz", str(CHART), "--namespace", NAMESPACE, "--kube-version", "1.34.12"]
    for item in sets:
        args += ["--set", item]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def test_lint_strict_and_schema_refuses_unknown_keys():
    if not HELM.is_file():
        pytest.skip(f"helm missing: {BUILD_HINT}")
    helm("lint", "--strict", str(CHART))
    bad = helm("lint", "--strict", str(CHART), "--set", "hub.typo=1", check=False)
    assert bad.returncode != 0 and "additional properties" in (bad.stdout + bad.stderr).lower()


def test_every_value_has_a_description():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value, node, path):
        assert node.get("description"), f"{path or 'root'} has no description"
        if isinstance(value, dict) and "properties" in node:
            for key, child in value.items():
                assert key in node["properties"], f"{path}.{key} is not in the schema"
                walk(child, node["properties"][key], f"{path}.{key}")

    walk(values, schema, "")


def test_the_notebook_pod_cidr_reaches_the_session_policy(monkeypatch):
    """notebooks.podCIDR -> SAFEZONE_NOTEBOOK_NETWORKS of the control plane -> every Allow of
    a session policy holds only from that CIDR; Deny statements get no network condition
    (they hold from everywhere)."""
    if not HELM.is_file():
        pytest.skip(f"helm missing: {BUILD_HINT}")

    def control_plane_env(*sets: str) -> dict[str, str]:
        deployment = next(d for d in rendered(*sets) if d["kind"] == "Deployment"
                          and d["metadata"]["name"] == "control-plane")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e["value"] for e in container["env"] if "value" in e}

    assert control_plane_env()["SAFEZONE_NOTEBOOK_NETWORKS"] == ""  # default: no condition
    env = control_plane_env("notebooks.podCIDR=10.244.0.0/16")
    assert env["SAFEZONE_NOTEBOOK_NETWORKS"] == "10.244.0.0/16"
    bad = helm("template", "sz", str(CHART), "--set", "notebooks.podCIDR=pods", check=False)
    assert bad.returncode != 0 and "podCIDR" in bad.stderr

    monkeypatch.setenv("SAFEZONE_NOTEBOOK_NETWORKS", env["SAFEZONE_NOTEBOOK_NETWORKS"])
    monkeypatch.delenv("SAFEZONE_NOTEBOOK_EXCLUDED", raising=False)
    storage = Settings.from_env().storage
    policy = session_policy("demo", "alice", [DatasetLocation("deid-a", "deid-a", "v1/")],
                            networks=storage.notebook_networks,
                            excluded=storage.notebook_excluded)
    allows = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    denies = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert allows and denies
    for statement in allows:
        assert statement["Condition"]["IpAddress"] == {"aws:SourceIp": ["10.244.0.0/16"]}
        assert "NotIpAddress" not in statement["Condition"]
    for statement in denies:
        condition = statement.get("Condition", {})
        assert "IpAddress" not in condition and "NotIpAddress" not in condition


def test_every_object_is_valid_for_the_api_server(cluster):
    api = cluster.api_client()
    client.CoreV1Api(api).create_namespace(client.V1Namespace(
        metadata=client.V1ObjectMeta(name=NAMESPACE)))
    for doc in rendered():
        namespaced = doc["kind"] not in {"ClusterRole", "ClusterRoleBinding",
                                         "ValidatingAdmissionPolicy",
                                         "ValidatingAdmissionPolicyBinding"}
        utils.create_from_dict(api, doc, namespace=NAMESPACE if namespaced else None,
                               dry_run="All")


def test_pod_templates_pass_pod_security_restricted(cluster):
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name="psa-check", labels={"pod-security.kubernetes.io/enforce": "restricted"})))
    core.create_namespaced_service_account("psa-check", client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="default")))  # no controller-manager to make it
    templates = [d for d in rendered() if d["kind"] in {"Deployment", "StatefulSet"}]
    assert {d["metadata"]["name"] for d in templates} == {"hub", "proxy", "control-plane",
                                                           "minio"}
    for workload in templates:
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": workload["metadata"]["name"]},
               "spec": workload["spec"]["template"]["spec"]}
        pod["spec"].pop("serviceAccountName", None)
        for claim in workload["spec"].get("volumeClaimTemplates", []):  # as the controller does
            pod["spec"].setdefault("volumes", []).append({
                "name": claim["metadata"]["name"],
                "persistentVolumeClaim": {"claimName": f"{claim['metadata']['name']}-0"}})
        response = core.create_namespaced_pod("psa-check", pod, dry_run="All")
        assert response.metadata.name == workload["metadata"]["name"]


def test_install_and_upgrade_rolls_the_hub(cluster):
    api = cluster.api_client()
    helm("install", "sz", str(CHART), "--namespace", "safezone-chart", "--create-namespace",
         "--set", "hub.admins={admin}", "--wait=false", kubeconfig=cluster.kubeconfig)
    apps = client.AppsV1Api(api)

    def checksum() -> str:
        hub = apps.read_namespaced_deployment("hub", "safezone-chart")
        return hub.spec.template.metadata.annotations["checksum/config"]

    before = checksum()
    assert client.AdmissionregistrationV1Api(api).read_validating_admission_policy(
        "safezone-notebook-pods")
    helm("upgrade", "sz", str(CHART), "--namespace", "safezone-chart",
         "--set", "hub.admins={admin,carol}", kubeconfig=cluster.kubeconfig)
    assert checksum() != before  # a changed hub config changes the pod template: it rolls
    tokens = client.CoreV1Api(api).read_namespaced_secret("hub-tokens", "safezone-chart")
    helm("upgrade", "sz", str(CHART), "--namespace", "safezone-chart",
         "--set", "hub.admins={admin,carol}", kubeconfig=cluster.kubeconfig)
    again = client.CoreV1Api(api).read_namespaced_secret("hub-tokens", "safezone-chart")
    assert again.data == tokens.data  # generated tokens survive upgrades
    metrics = client.CoreV1Api(api).read_namespaced_secret("control-plane-metrics",
                                                           "safezone-chart")
    assert len(metrics.data["token"]) >= 48  # generated at install (base64 of 48 chars)


def test_control_plane_probes_and_the_metrics_token():
    """Readiness asks the database, MinIO and the audit anchoring; liveness only the
    process; GET /metrics takes its token from a generated Secret; worker processes share
    a multiprocess folder on the pod's /tmp volume."""
    if not HELM.is_file():
        pytest.skip(f"helm missing: {BUILD_HINT}")
    docs = rendered()
    plane = next(d for d in docs if d["kind"] == "Deployment"
                 and d["metadata"]["name"] == "control-plane")
    container = plane["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/health/ready"
    assert container["readinessProbe"]["timeoutSeconds"] >= 3  # MinIO's check waits 2 s
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/health/live"
    env = {e["name"]: e for e in container["env"]}
    assert env["SAFEZONE_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "control-plane-metrics", "key": "token"}
    folder = env["PROMETHEUS_MULTIPROC_DIR"]["value"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert any(folder.startswith(m.rstrip("/") + "/") for m in mounts)  # writable, not root fs
    secret = next(d for d in docs if d["kind"] == "Secret"
                  and d["metadata"]["name"] == "control-plane-metrics")
    assert len(secret["data"]["token"]) >= 48
    hub = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "hub")
    hub_env = str(hub["spec"]["template"]["spec"])
    assert "control-plane-metrics" not in hub_env  # the hub never holds the scraper's token


def test_oidc_values_reach_the_hub_as_environment():
    """hub.oidc.* -> the hub's environment (ConfigMap) and its client secret as a file
    mounted from the named Secret; the secret's value is never rendered."""
    if not HELM.is_file():
        pytest.skip(f"helm missing: {BUILD_HINT}")
    sets = ("hub.oidc.issuer=https://idp.example/realms/r", "hub.oidc.clientId=hub",
            "hub.oidc.callbackUrl=https://zone.example/hub/oauth_callback",
            "hub.oidc.usernameClaim=email", "hub.oidc.groupsClaim=roles",
            "hub.oidc.clientSecret.name=idp", "hub.oidc.clientSecret.key=secret",
            "hub.oidc.mfa.amr={otp,hwk}")
    docs = rendered(*sets)
    config = next(d for d in docs if d["kind"] == "ConfigMap"
                  and d["metadata"]["name"] == "hub-config")["data"]
    assert {k: v for k, v in config.items() if k.startswith("SAFEZONE_OIDC_")} == {
        "SAFEZONE_OIDC_ISSUER": "https://idp.example/realms/r",
        "SAFEZONE_OIDC_CLIENT_ID": "hub",
        "SAFEZONE_OIDC_CALLBACK_URL": "https://zone.example/hub/oauth_callback",
        "SAFEZONE_OIDC_USERNAME_CLAIM": "email", "SAFEZONE_OIDC_GROUPS_CLAIM": "roles",
        "SAFEZONE_OIDC_SCOPES": "openid profile email",
        "SAFEZONE_OIDC_MFA_ACR": "", "SAFEZONE_OIDC_MFA_AMR": "otp,hwk"}
    hub = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "hub")
    pod = hub["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["SAFEZONE_OIDC_CLIENT_SECRET_FILE"] == "/etc/safezone-oidc/client-secret"
    volume = next(v for v in pod["volumes"] if v["name"] == "oidc-client")
    assert volume["secret"] == {"secretName": "idp",
                                "items": [{"key": "secret", "path": "client-secret"}]}
    assert {"name": "oidc-client", "mountPath": "/etc/safezone-oidc", "readOnly": True} in \
        pod["containers"][0]["volumeMounts"]
    default = next(d for d in rendered() if d["kind"] == "ConfigMap"
                   and d["metadata"]["name"] == "hub-config")["data"]
    assert default["SAFEZONE_OIDC_ISSUER"] == "" and "SAFEZONE_OIDC_CLIENT_ID" not in default
    missing = helm("template", "sz", str(CHART), "--set", sets[0], check=False)
    assert missing.returncode != 0 and "callbackUrl" in missing.stderr


def test_control_plane_replicas_and_workers_need_postgresql():
    """controlPlane.replicas and .workers reach the Deployment; with the embedded SQLite
    database more than one process is refused at render time, with the reason."""
    if not HELM.is_file():
        pytest.skip(f"helm missing: {BUILD_HINT}")
    plane = next(d for d in rendered("controlPlane.replicas=2", "controlPlane.workers=3")
                 if d["kind"] == "Deployment" and d["metadata"]["name"] == "control-plane")
    assert plane["spec"]["replicas"] == 2
    container = plane["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SAFEZONE_WORKERS"] == "3"
    for setting in ("controlPlane.replicas=2", "controlPlane.workers=2"):
        refused = helm("template", "sz", str(CHART), "--set", "database.embedded.enabled=true",
                       "--set", setting, check=False)
        assert refused.returncode != 0
        assert "need PostgreSQL" in refused.stderr


def test_minio_audit_webhook_batches_into_a_queue_volume_of_its_own():
    """minio.audit.* -> MinIO's audit webhook: batch and queue sizes, a queue folder on a
    volume of its own (not inside /data, where a folder is a bucket) made 0700 before
    MinIO starts."""
    if not HELM.is_file():
        pytest.skip(f"helm missing: {BUILD_HINT}")
    docs = rendered("minio.audit.batchSize=50", "minio.audit.queueStorage=5Gi")
    minio = next(d for d in docs if d["kind"] == "StatefulSet"
                 and d["metadata"]["name"] == "minio")
    pod = minio["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MINIO_AUDIT_WEBHOOK_BATCH_SIZE_safezone"] == "50"
    assert env["MINIO_AUDIT_WEBHOOK_QUEUE_SIZE_safezone"] == "100000"
    assert env["_MINIO_API_XFF_HEADER"] == "off"  # remotehost not from X-Forwarded-For
    queue = env["MINIO_AUDIT_WEBHOOK_QUEUE_DIR_safezone"]
    assert {"name": "audit-queue", "mountPath": "/audit-queue"} in container["volumeMounts"]
    assert queue.startswith("/audit-queue/") and not queue.startswith("/data")
    init = next(c for c in pod["initContainers"] if c["name"] == "audit-queue")
    assert f"chmod 0700 {queue}" in init["command"][-1]
    assert init["securityContext"]["runAsNonRoot"] is True  # MinIO's user (the pod's)
    claims = {c["metadata"]["name"]: c["spec"] for c in minio["spec"]["volumeClaimTemplates"]}
    assert claims["audit-queue"]["resources"]["requests"]["storage"] == "5Gi"
    bad = helm("template", "sz", str(CHART), "--set", "minio.audit.batchSize=0", check=False)
    assert bad.returncode != 0 and "batchSize" in bad.stderr


def test_the_proxy_range_is_trusted_for_login_addresses():
    """proxy.podCIDR -> SAFEZONE_RECORDS_TRUSTED_PROXIES of the hub's and the control
    plane's containers (both sit behind the proxy: a login's or a call's address is the
    last X-Forwarded-For hop the proxy added); unset, neither gets it and nothing is
    trusted beyond loopback; a malformed range is refused."""
    if not HELM.is_file():
        pytest.skip(f"helm missing: {BUILD_HINT}")
    variable = "SAFEZONE_RECORDS_TRUSTED_PROXIES"

    def trusted(*sets: str) -> dict[str, list]:
        """Each container's values of the variable, from env and from envFrom ConfigMaps."""
        docs = rendered(*sets)
        maps = {d["metadata"]["name"]: d.get("data") or {} for d in docs
                if d["kind"] == "ConfigMap"}
        found = {}
        for deployment in (d for d in docs if d["kind"] == "Deployment"):
            for c in deployment["spec"]["template"]["spec"]["containers"]:
                values = [e["value"] for e in c.get("env") or [] if e["name"] == variable]
                values += [maps[f["configMapRef"]["name"]][variable]
                           for f in c.get("envFrom") or [] if "configMapRef" in f
                           and variable in maps[f["configMapRef"]["name"]]]
                found[f"{deployment['metadata']['name']}/{c['name']}"] = values
        return found

    given = trusted(r"proxy.podCIDR=10.244.0.0/16\,10.245.0.0/16")  # --set: \, is a comma
    assert given["hub/hub"] == given["control-plane/control-plane"] == [
        "10.244.0.0/16,10.245.0.0/16"]
    assert all(values == [] for values in trusted().values())
    assert {"hub/hub", "control-plane/control-plane"} <= set(trusted())
    bad = helm("template", "sz", str(CHART), "--set", "proxy.podCIDR=anywhere", check=False)
    assert bad.returncode != 0 and "podCIDR" in bad.stderr


def test_install_warns_when_session_keys_work_from_anywhere(cluster):
    """An empty notebooks.podCIDR renders no network condition: the install notes say so,
    in both languages, and say nothing once it is set (a server-side dry run of the
    release the install test makes: the chart's cluster-wide objects belong to it)."""
    def notes(*sets: str) -> str:
        args = ["upgrade", "--install", "sz", str(CHART), "--dry-run=server", "--namespace",
                "safezone-chart", "--create-namespace", "--set", "hub.admins={admin}"]
        for item in sets:
            args += ["--set", item]
        return helm(*args, kubeconfig=cluster.kubeconfig).stdout.partition("NOTES:")[2]

    warned = notes()
    assert "WARNING: notebooks.podCIDR is empty" in warned and "경고" in warned
    assert "WARNING" not in notes("notebooks.podCIDR=10.244.0.0/16")
