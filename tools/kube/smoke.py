"""Smoke check of the local control plane started by tools/kube/smoke.sh.

Checks, with the `kubernetes` Python client and the admin kubeconfig:
  * RBAC is enforced (a token of a user without bindings is refused),
  * a Node annotated kwok.x-k8s.io/node=fake becomes Ready (kwok),
  * a Pod bound to it with spec.nodeName (there is no kube-scheduler) reaches
    phase Running and condition Ready (kwok),
  * PodSecurity admission rejects a privileged Pod in a namespace labelled
    pod-security.kubernetes.io/enforce=restricted.

Usage: python tools/kube/smoke.py KUBECONFIG [UNPRIVILEGED_TOKEN]
Exits 0 when every check passes; prints one line per check.
"""

from __future__ import annotations

import sys
import time

from kubernetes import client, config
from kubernetes.client.rest import ApiException

NS = "kwok-smoke"
NODE = "kwok-node-0"
POD = "hello"
TIMEOUT = 60.0


def wait_for(what: str, check, timeout: float = TIMEOUT) -> float:
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise SystemExit(f"FAIL: {what} not reached within {timeout:.0f}s")
        time.sleep(0.25)


def restricted_container(name: str) -> client.V1Container:
    return client.V1Container(
        name=name,
        image="registry.k8s.io/pause:3.10",
        security_context=client.V1SecurityContext(
            allow_privilege_escalation=False,
            run_as_non_root=True,
            run_as_user=1000,
            capabilities=client.V1Capabilities(drop=["ALL"]),
            seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
        ),
    )


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    kubeconfig = sys.argv[1]
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()

    version = client.VersionApi().get_code()
    print(f"ok: apiserver {version.git_version}")

    if len(sys.argv) > 2:
        cfg = client.Configuration.get_default_copy()
        cfg.refresh_api_key_hook = None  # would reload the admin token
        cfg.api_key = {"authorization": "Bearer " + sys.argv[2]}
        try:
            client.CoreV1Api(client.ApiClient(cfg)).list_namespaced_pod("default")
        except ApiException as e:
            if e.status != 403:
                raise
            print("ok: RBAC refuses an unbound user (403)")
        else:
            raise SystemExit("FAIL: an unbound user could list pods")

    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(
                name=NS, labels={"pod-security.kubernetes.io/enforce": "restricted"}
            )
        )
    )
    # No kube-controller-manager runs, so nothing creates the "default"
    # ServiceAccount that the ServiceAccount admission plugin requires.
    core.create_namespaced_service_account(
        NS, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
    )

    core.create_node(
        client.V1Node(
            metadata=client.V1ObjectMeta(
                name=NODE,
                annotations={"kwok.x-k8s.io/node": "fake"},
                labels={"type": "kwok", "kubernetes.io/hostname": NODE},
            )
        )
    )

    def node_ready() -> bool:
        node = core.read_node(NODE)
        return any(
            c.type == "Ready" and c.status == "True"
            for c in (node.status.conditions or [])
        )

    took = wait_for(f"node {NODE} Ready", node_ready)
    print(f"ok: node {NODE} Ready after {took:.1f}s")

    core.create_namespaced_pod(
        NS,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=POD),
            spec=client.V1PodSpec(
                node_name=NODE,
                automount_service_account_token=False,
                security_context=client.V1PodSecurityContext(run_as_non_root=True),
                containers=[restricted_container("main")],
            ),
        ),
    )

    def pod_running() -> bool:
        pod = core.read_namespaced_pod(POD, NS)
        ready = any(
            c.type == "Ready" and c.status == "True"
            for c in (pod.status.conditions or [])
        )
        return pod.status.phase == "Running" and ready

    took = wait_for(f"pod {NS}/{POD} Running", pod_running)
    pod = core.read_namespaced_pod(POD, NS)
    print(
        f"ok: pod {NS}/{POD} phase={pod.status.phase} podIP={pod.status.pod_ip} "
        f"after {took:.1f}s"
    )

    bad = client.V1Pod(
        metadata=client.V1ObjectMeta(name="privileged"),
        spec=client.V1PodSpec(
            node_name=NODE,
            containers=[
                client.V1Container(
                    name="main",
                    image="registry.k8s.io/pause:3.10",
                    security_context=client.V1SecurityContext(privileged=True),
                )
            ],
        ),
    )
    try:
        core.create_namespaced_pod(NS, bad)
    except ApiException as e:
        if e.status != 403 or "PodSecurity" not in (e.body or ""):
            raise
        print("ok: PodSecurity (restricted) rejects a privileged pod (403)")
    else:
        raise SystemExit("FAIL: a privileged pod was admitted in a restricted namespace")

    print("smoke: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
