"""The SafeZone Kubernetes spawner against a real kube-apiserver (kwok as the node) and
the real control plane.

No container can start here, so the spawner is driven directly (start/stop) instead of
through a hub waiting for the server's HTTP port: that wait is the only part not run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from kubernetes import client
from traitlets.config import Config

from safezone import grants
from safezone.kube.provision import KubeSettings, provision_project
from safezone.sandbox.limits import limits_for

from .conftest import NOTEBOOK_IMAGE
from .support import provision, report_measure, wait_until

pytestmark = pytest.mark.integration


def make_spawner(stack, kube, user: str, project: str):
    # kubernetes_asyncio reads $KUBECONFIG when first imported: set it, then import
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    from spawner.kube import SafeZoneKubeSpawner

    config = Config()
    config.SafeZoneKubeSpawner.image = NOTEBOOK_IMAGE
    config.SafeZoneKubeSpawner.control_plane_url = stack.control_plane.url
    config.SafeZoneKubeSpawner.control_plane_token = stack.spawner_token
    config.SafeZoneKubeSpawner.start_timeout = 60
    config.SafeZoneKubeSpawner.node_selector = {"type": "kwok"}
    config.SafeZoneKubeSpawner.tolerations = [
        {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]
    hub_user = SimpleNamespace(name=user, id=1, url=f"/user/{user}/", escaped_name=user)
    spawner = SafeZoneKubeSpawner(_mock=True, user=hub_user, config=config)
    spawner.api_token = "hub-token-placeholder"
    spawner.user_options = {"project": project}
    return spawner


@pytest.fixture
def member_project(stack, kube_policies):
    setup = provision(stack, member="alice")
    provision_project(kube_policies, setup.project, KubeSettings("safezone", "hub"))
    return setup, client.CoreV1Api(kube_policies)


def bind_to_kwok(core, namespace: str, pod_name: str) -> None:
    """There is no kube-scheduler here: bind the pending pod to the kwok node."""
    def pending() -> bool:
        try:
            core.read_namespaced_pod(pod_name, namespace)
            return True
        except client.ApiException:
            return False
    wait_until(pending, timeout=30, interval=0.1)
    core.create_namespaced_binding(namespace, client.V1Binding(
        metadata=client.V1ObjectMeta(name=pod_name),
        target=client.V1ObjectReference(kind="Node", name="kwok-node-0")),
        _preload_content=False)


def test_start_and_stop_for_an_approved_member(stack, kube, member_project):
    setup, core = member_project
    namespace = f"sz-{setup.project}"

    async def scenario() -> None:
        spawner = make_spawner(stack, kube, "alice", setup.project)
        started = time.monotonic()
        task = asyncio.ensure_future(spawner.start())
        await asyncio.to_thread(bind_to_kwok, core, namespace, spawner.pod_name)
        await task
        report_measure(f"kubernetes spawner: start → pod Running on kwok in "
                       f"{time.monotonic() - started:.2f} s")
        pod = core.read_namespaced_pod(spawner.pod_name, namespace)
        assert pod.status.phase == "Running"
        labels = pod.metadata.labels
        assert labels["safezone.io/project"] == setup.project
        assert labels["safezone.io/user"] == "alice"
        assert labels["safezone.io/component"] == "notebook"
        assert pod.spec.automount_service_account_token is False
        container = pod.spec.containers[0]
        assert container.security_context.allow_privilege_escalation is False
        assert container.security_context.capabilities.drop == ["ALL"]
        limits = limits_for(setup.project)  # policies/sandbox.yaml, as the local cgroups
        assert float(container.resources.limits["cpu"]) == limits.cpus
        assert int(container.resources.limits["memory"]) == limits.memory_bytes
        secret_name = f"sz-grant-{spawner.grant_id}"
        assert container.env_from[0].secret_ref.name == secret_name
        assert not any(e.name.startswith("AWS_") for e in container.env or [])
        # the server's hub token is nowhere in the pod object (readable with `view`)
        assert spawner.api_token not in json.dumps(core.api_client.sanitize_for_serialization(pod))
        secret = core.read_namespaced_secret(secret_name, namespace)
        assert base64.b64decode(secret.data["JUPYTERHUB_API_TOKEN"]).decode() == spawner.api_token
        access_key = base64.b64decode(secret.data["AWS_ACCESS_KEY_ID"]).decode()
        assert access_key in stack.zone.broker.session_identities()
        grant_id = spawner.grant_id

        await spawner.stop(now=True)
        await asyncio.to_thread(wait_until, lambda: not core.list_namespaced_pod(
            namespace).items, 30)
        with pytest.raises(client.ApiException):
            core.read_namespaced_secret(secret_name, namespace)
        assert access_key not in stack.zone.broker.session_identities()
        assert grant_id not in [g.id for g in grants.active_grants(stack.zone)]

    asyncio.run(scenario())


@pytest.mark.parametrize("who", ["bob", "forged", "expired"])
def test_no_pod_without_a_grant(stack, kube, member_project, clock, who):
    setup, core = member_project
    other = provision(stack, member="carol")
    provision_project(core.api_client, other.project, KubeSettings("safezone", "hub"))
    user, project = {"bob": ("bob", setup.project), "forged": ("alice", other.project),
                     "expired": ("alice", setup.project)}[who]
    if who == "expired":
        clock.advance(timedelta(days=31))  # provision() approved alice for 30 days

    async def scenario() -> None:
        spawner = make_spawner(stack, kube, user, project)
        with pytest.raises(Exception, match="no approved membership"):
            await spawner.start()

    asyncio.run(scenario())
    for namespace in (f"sz-{setup.project}", f"sz-{other.project}"):
        assert not core.list_namespaced_pod(namespace).items
        assert not core.list_namespaced_secret(namespace,
                                               label_selector="safezone.io/session").items


def test_grant_latency(stack, member_project):
    """What a spawn waits for before the pod is even created: POST /api/sessions."""
    import statistics

    setup, _ = member_project
    spawner_api = stack.api("spawner")
    timings = []
    for i in range(10):
        started = time.perf_counter()
        response = spawner_api.post("/api/sessions", json={
            "user": "alice", "project": setup.project, "server_name": f"s{i}"})
        timings.append(time.perf_counter() - started)
        assert response.status_code == 201
        spawner_api.delete(f"/api/sessions/{response.json()['grant_id']}")
    report_measure(f"grant latency (POST /api/sessions, 10 runs): median "
                   f"{statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms")
    assert statistics.median(timings) < 2
