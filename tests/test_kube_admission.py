"""Safezone's ValidatingAdmissionPolicies, enforced by a real kube-apiserver.

Each violation is refused with Safezone's own message in a project namespace whose Pod
Security level is relaxed (so only our policy stands in the way), and refused again in a
namespace with Pod Security ``restricted`` (both layers). The spawner's pod shape passes.
"""

from __future__ import annotations

import copy

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .conftest import NOTEBOOK_IMAGE as IMAGE
from .kube_cluster import NODE
from .support import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(kube_policies):
    core = client.CoreV1Api(kube_policies)
    for name, level in (("sz-relaxed", "privileged"), ("sz-strict", "restricted")):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=name, labels={"safezone.io/project": "demo",
                               "pod-security.kubernetes.io/enforce": level})))
        core.create_namespaced_service_account(name, client.V1ServiceAccount(
            metadata=client.V1ObjectMeta(name="default")))
    wait_until(lambda: _admits(core), timeout=30, interval=0.5)  # policies take a moment
    return core


def _admits(core) -> bool:
    try:
        core.create_namespaced_pod("sz-relaxed", {**good_pod("probe"), "spec": {
            **good_pod("probe")["spec"], "hostNetwork": True}}, dry_run="All")
    except ApiException as exc:
        return exc.status in (403, 422) and "Safezone" in exc.body
    return False


def good_pod(name: str, session: str = "g1") -> dict:
    """The shape the SafeZone Kubernetes spawner produces."""
    restricted = {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                  "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {
            "safezone.io/project": "demo", "safezone.io/user": "alice",
            "safezone.io/component": "notebook", "safezone.io/session": session}},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "notebook", "image": IMAGE, "securityContext": restricted,
                            "envFrom": [{"secretRef": {"name": f"sz-grant-{session}"}}],
                            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
            "volumes": [{"name": "grant", "secret": {"secretName": f"sz-grant-{session}"}}],
        },
    }


def mutate(name: str, change) -> dict:
    pod = copy.deepcopy(good_pod(name))
    change(pod)
    return pod


VIOLATIONS = {
    "no-labels": (lambda p: p["metadata"].pop("labels"), "need the labels"),
    "wrong-project": (lambda p: p["metadata"]["labels"].update({"safezone.io/project": "other"}),
                      "this namespace's project"),
    "host-path": (lambda p: p["spec"]["volumes"].append(
        {"name": "h", "hostPath": {"path": "/etc"}}), "hostPath"),
    "host-network": (lambda p: p["spec"].update({"hostNetwork": True}), "host network"),
    "host-pid": (lambda p: p["spec"].update({"hostPID": True}), "host network"),
    "privileged": (lambda p: p["spec"]["containers"][0]["securityContext"].update(
        {"privileged": True, "allowPrivilegeEscalation": True}), "privileged"),
    "image": (lambda p: p["spec"]["containers"][0].update({"image": "docker.io/evil:latest"}),
              "docker.io/evil:latest"),
    "other-secret": (lambda p: p["spec"]["volumes"].append(
        {"name": "o", "secret": {"secretName": "sz-grant-someone-else"}}), "own session"),
    "other-pvc": (lambda p: p["spec"]["volumes"].append(
        {"name": "c", "persistentVolumeClaim": {"claimName": "sz-work-other"}}), "own session"),
    "env-secret": (lambda p: p["spec"]["containers"][0].update({"env": [{"name": "X", "valueFrom": {
        "secretKeyRef": {"name": "hub-secret", "key": "k"}}}]}), "own session"),
    "sa-token": (lambda p: p["spec"].update({"automountServiceAccountToken": True}),
                 "service account token"),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_violation_refused_with_safezone_message(api, case):
    change, words = VIOLATIONS[case]
    with pytest.raises(ApiException) as caught:
        api.create_namespaced_pod("sz-relaxed", mutate(f"bad-{case}", change))
    assert caught.value.status in (403, 422)
    assert "Safezone" in caught.value.body and words in caught.value.body, caught.value.body
    with pytest.raises(ApiException):  # and with Pod Security restricted on as well
        api.create_namespaced_pod("sz-strict", mutate(f"bad-{case}", change))


def test_spawner_pod_is_admitted_and_runs_on_kwok(api):
    pod = good_pod("notebook-alice", session="g2")
    pod["spec"]["nodeName"] = NODE  # no scheduler here: bind directly, kwok plays kubelet
    api.create_namespaced_pod("sz-strict", pod)

    def running() -> bool:
        return api.read_namespaced_pod("notebook-alice", "sz-strict").status.phase == "Running"

    wait_until(running, timeout=30, interval=0.2)


def test_pods_outside_project_namespaces_are_not_judged(api):
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="plain")))
    api.create_namespaced_service_account("plain", client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="default")))
    pod = mutate("unlabelled", lambda p: p["metadata"].pop("labels"))
    api.create_namespaced_pod("plain", pod, dry_run="All")
