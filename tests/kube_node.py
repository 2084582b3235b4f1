"""A real single-node Kubernetes cluster for tests, whose pods run.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, a kubelet on Debian's
containerd (CRI, runc) with the CNI bridge plugin, kube-proxy (iptables), CoreDNS as a pod
and kube-router's NetworkPolicy controller (iptables + ipset). Binaries come from
``scripts/kube-tools.sh`` (Go module proxy), images from ``scripts/images.sh`` (debootstrap
+ buildah, imported with ``ctr``). Nothing is mocked.

The node's addresses live on a veth pair (this machine has no dummy interfaces): the node
IP, an address standing for the internet, and the cloud metadata address. Everything the
cluster adds to the host is removed by ``stop()``, which returns what it could not remove.

Run by hand: ``python -m tests.kube_node`` starts it and prints how to reach it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from safezone.config import REPO_ROOT
from safezone.local.processes import ManagedProcess, free_port

from . import kube_host
from .kube_cluster import BIN, start_etcd, wait_for_probe, write_kubeconfig
from .kube_pki import write_pki

CACHE = REPO_ROOT / ".cache" / "kube"
CNI_BIN = CACHE / "cni" / "bin"
IMAGES = REPO_ROOT / ".cache" / "images" / "images.txt"
CONTAINERD_ROOT = CACHE / "containerd"  # kept between runs: imported images stay

NODE = "szk-node"
NODE_IF = "szk-host"
NODE_IP = "10.250.0.1"
OUTSIDE_IP = "198.51.100.7"      # TEST-NET-2: stands for an address on the internet
METADATA_IP = "169.254.169.254"  # the cloud metadata service's address
POD_CIDR = "10.244.0.0/16"
NODE_POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.97.0.0/16"
KUBERNETES_SERVICE_IP = "10.97.0.1"
DNS_IP = "10.97.0.10"
BRIDGE = "szk-cni0"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"
COREDNS_IMAGE = "localhost/safezone/coredns:v1.14.7"
IDENTITIES = {  # who each component is to the API server (token file: user, uid, groups)
    "admin": ("admin", "system:masters"),
    "kubelet": (f"system:node:{NODE}", "system:nodes"),
    "controller-manager": ("system:kube-controller-manager", ""),
    "scheduler": ("system:kube-scheduler", ""),
    "kube-proxy": ("system:kube-proxy", ""),
    "kube-router": ("safezone:kube-router", ""),
}
NODE_BINARIES = ("etcd", "kube-apiserver", "kubelet", "kube-controller-manager",
                 "kube-scheduler", "kube-proxy", "kube-router", "coredns")
HOST_TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "iptables", "ipset",
              "conntrack")


def missing_parts() -> list[str]:
    """What the node cluster needs and this machine lacks (one name each)."""
    missing = [n for n in NODE_BINARIES if not (BIN / n).exists()]
    missing += [f"cni/{n}" for n in ("bridge", "host-local", "loopback", "portmap")
                if not (CNI_BIN / n).exists()]
    missing += [t for t in HOST_TOOLS if not shutil.which(t)]
    if not IMAGES.is_file():
        missing.append("images (scripts/images.sh)")
    return missing


def start_or_skip(root: Path) -> NodeCluster:
    """The node cluster, or a skip naming what is missing; in CI a missing part fails."""
    import pytest

    missing = missing_parts() + ([] if os.geteuid() == 0 else ["root"])
    if missing:
        message = (f"node cluster parts missing ({', '.join(missing)}): run scripts/test.sh, "
                   "which builds them (scripts/kube-tools.sh, scripts/images.sh)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return start_node_cluster(root)


def local_images() -> dict[str, tuple[str, Path]]:
    """name -> (reference, OCI archive) from scripts/images.sh's list."""
    images = {}
    for line in IMAGES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, ref, tar = line.split()
            images[name] = (ref, Path(tar) if Path(tar).is_absolute() else REPO_ROOT / tar)
    return images


@dataclass
class NodeCluster:
    root: Path
    run_dir: Path
    api_url: str
    ca: Path
    kubeconfig: Path
    tokens: dict[str, str]
    images: dict[str, str]
    before: kube_host.HostState
    old_sysctls: dict[str, str]
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    stopped: dict[str, list[str]] | None = None
    preexisting: frozenset[int] = frozenset()  # processes from BIN that ran before the start

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig))

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return kube_host.run("ctr", "--address", str(self.containerd_socket), "-n", "k8s.io",
                             *args, check=check)

    def apply(self, docs: list[dict]) -> None:
        from kubernetes import utils

        api = self.api_client()
        for doc in docs:
            utils.create_from_dict(api, doc)

    def stop(self) -> dict[str, list[str]]:
        """Tear everything down; return what was left on the host (empty when clean)."""
        if self.stopped is not None:
            return self.stopped
        self._delete_workloads()
        for name in ("kube-router", "kube-proxy", "kubelet", "kube-scheduler",
                     "kube-controller-manager"):
            if name in self.processes:
                self.processes[name].stop(timeout=15)
        self._stop_containers()
        if "containerd" in self.processes:
            self.processes["containerd"].stop(timeout=15)
        for pid in kube_host.pids_running(str(self.containerd_socket)):  # orphaned shims
            kube_host.run("kill", "-9", str(pid), check=False)
        self._clean_rules()
        for name in ("kube-apiserver", "etcd"):
            if name in self.processes:
                self.processes[name].stop()
        roots = (self.root, self.run_dir, CONTAINERD_ROOT)
        kube_host.remove_added(self.before, roots)
        for key, value in self.old_sysctls.items():
            kube_host.set_sysctl(key, value)
        left = kube_host.HostState.capture().added_since(self.before, roots)
        processes = [str(p) for p in set(kube_host.pids_running(str(self.run_dir))
                                          + kube_host.pids_running(str(BIN)))
                     - self.preexisting]  # e.g. the API-level test cluster's
        if processes:
            left["processes"] = processes
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.stopped = left
        return left

    def _delete_workloads(self) -> None:
        """Delete every pod through the API so the kubelet unmounts and unplugs them."""
        if "kubelet" not in self.processes or self.processes["kubelet"].popen.poll() is not None:
            return
        from kubernetes import client

        api = self.api_client()
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        try:
            for namespace in [n.metadata.name for n in core.list_namespace().items]:
                for kind in ("deployment", "stateful_set", "daemon_set", "replica_set"):
                    getattr(apps, f"delete_collection_namespaced_{kind}")(namespace)
                core.delete_collection_namespaced_pod(namespace, grace_period_seconds=1)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and core.list_pod_for_all_namespaces().items:
                time.sleep(0.5)
            deadline = time.monotonic() + 30  # the kubelet removes the sandboxes after that
            while time.monotonic() < deadline and self.ctr("containers", "ls", "-q",
                                                           check=False).stdout.strip():
                time.sleep(0.5)
        except Exception:  # best effort: what is left is removed below
            pass

    def _stop_containers(self) -> None:
        if "containerd" not in self.processes:
            return
        for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "kill", "-a", "-s", "SIGKILL", task, check=False)
            self.ctr("tasks", "delete", "-f", task, check=False)
        for container in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            self.ctr("containers", "delete", container, check=False)

    def _clean_rules(self) -> None:
        """kube-proxy's and kube-router's own clean-up of their iptables rules and ipsets."""
        kube_host.run(str(BIN / "kube-proxy"), "--cleanup", check=False)
        kube_host.run(str(BIN / "kube-router"), "--cleanup-config", check=False)
        # what their clean-up left (a rule still naming one of kube-router's ipsets keeps
        # the set from being destroyed): every remaining KUBE-* rule and chain
        for save, restore in (("iptables-save", "iptables-restore"),
                              ("ip6tables-save", "ip6tables-restore")):
            rules = subprocess.run([save], capture_output=True, text=True, check=False).stdout
            if "KUBE-" in rules:
                kept = "".join(line for line in rules.splitlines(keepends=True)
                               if "KUBE-" not in line)
                subprocess.run([restore], input=kept, text=True, check=False)


def _wait_http(what: str, url: str, process: ManagedProcess, timeout: float = 60,
               **kwargs) -> None:
    wait_for_probe(what, lambda: httpx.get(url, timeout=2, **kwargs).status_code == 200,
               timeout, process)


def start_node_cluster(root: Path) -> NodeCluster:
    """Start the whole cluster; on failure, tear down what was started and re-raise."""
    root.mkdir(parents=True, exist_ok=True)
    run_dir = Path(f"/run/szk-{secrets.token_hex(3)}")  # unix socket paths must be short
    run_dir.mkdir(mode=0o700)
    before = kube_host.HostState.capture()
    tokens = {name: secrets.token_hex(24) for name in IDENTITIES}
    cluster = NodeCluster(root, run_dir, "", root / "pki" / "ca.crt", root / "admin.kubeconfig",
                          tokens, {}, before, {},
                          preexisting=frozenset(kube_host.pids_running(str(BIN))))
    try:
        _start(cluster)
    except BaseException:
        left = cluster.stop()
        if left:
            print(f"node cluster: left after a failed start: {left}")
        raise
    return cluster


def _start(c: NodeCluster) -> None:
    started = time.monotonic()
    kube_host.add_node_interface(NODE_IF, [f"{NODE_IP}/24", f"{OUTSIDE_IP}/32",
                                           f"{METADATA_IP}/32"])
    c.old_sysctls["net.ipv4.ip_forward"] = kube_host.set_sysctl("net.ipv4.ip_forward", "1")
    pki = write_pki(c.root / "pki", NODE_IP, KUBERNETES_SERVICE_IP)
    (c.root / "tokens.csv").write_text("".join(
        f"{c.tokens[n]},{user},{user}" + (f",{group}" if group else "") + "\n"
        for n, (user, group) in IDENTITIES.items()))
    etcd, etcd_url = start_etcd(c.root)
    c.processes["etcd"] = etcd
    _start_apiserver(c, pki, etcd_url)
    configs = {n: write_kubeconfig(c.root / f"{n}.kubeconfig", c.api_url, pki.ca, c.tokens[n])
               for n in IDENTITIES}
    _grant_kube_router(c)
    _start_controllers(c, configs, pki)
    _start_containerd(c)
    c.timings["control plane"] = time.monotonic() - started
    _import_images(c)
    _start_kubelet(c, configs["kubelet"], pki)
    _start_proxy_and_router(c, configs)
    _wait_node_ready(c)
    c.timings["start to node Ready"] = time.monotonic() - started
    _start_dns(c)
    c.timings["start to DNS Ready"] = time.monotonic() - started


def _start_apiserver(c: NodeCluster, pki, etcd_url: str) -> None:
    port = free_port()
    api = ManagedProcess.start("kube-apiserver", [
        str(BIN / "kube-apiserver"), "--etcd-servers", etcd_url,
        "--bind-address", NODE_IP, "--advertise-address", NODE_IP, "--secure-port", str(port),
        "--tls-cert-file", str(pki.apiserver_cert), "--tls-private-key-file",
        str(pki.apiserver_key), "--client-ca-file", str(pki.ca),
        "--kubelet-client-certificate", str(pki.kubelet_client_cert),
        "--kubelet-client-key", str(pki.kubelet_client_key),
        "--token-auth-file", str(c.root / "tokens.csv"), "--authorization-mode", "Node,RBAC",
        "--enable-admission-plugins", "NodeRestriction,PodSecurity",
        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file", str(pki.service_account_pub),
        "--service-account-signing-key-file", str(pki.service_account_key),
        "--service-cluster-ip-range", SERVICE_CIDR, "--allow-privileged=false",
        "--kubelet-preferred-address-types", "InternalIP",  # the node's name is not in DNS
        "--profiling=false"], c.root / "apiserver.log")
    c.processes["kube-apiserver"] = api
    c.api_url = f"https://{NODE_IP}:{port}"
    wait_for_probe("kube-apiserver", lambda: httpx.get(
        f"{c.api_url}/readyz", verify=str(pki.ca), timeout=2,
        headers={"Authorization": f"Bearer {c.tokens['admin']}"}).status_code == 200, 120, api)
    write_kubeconfig(c.kubeconfig, c.api_url, pki.ca, c.tokens["admin"])


def _grant_kube_router(c: NodeCluster) -> None:
    """kube-router reads what it enforces and nothing more (its upstream RBAC, read-only)."""
    watch = ["get", "list", "watch"]
    c.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "safezone:kube-router"},
         "rules": [{"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes",
                                                     "endpoints"], "verbs": watch},
                   {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
                    "verbs": watch},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                    "verbs": watch}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "safezone:kube-router"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "safezone:kube-router"},
         "subjects": [{"kind": "User", "name": "safezone:kube-router"}]}])


def _start_controllers(c: NodeCluster, configs: dict[str, Path], pki) -> None:
    cm_port, sched_port = free_port(), free_port()
    cm = ManagedProcess.start("kube-controller-manager", [
        str(BIN / "kube-controller-manager"), "--kubeconfig", str(configs["controller-manager"]),
        "--bind-address", "127.0.0.1", "--secure-port", str(cm_port), "--leader-elect=false",
        "--use-service-account-credentials=true",
        "--service-account-private-key-file", str(pki.service_account_key),
        "--root-ca-file", str(pki.ca), "--allocate-node-cidrs=true",
        "--cluster-cidr", POD_CIDR, "--node-cidr-mask-size", "24",
        "--service-cluster-ip-range", SERVICE_CIDR, "--profiling=false"],
        c.root / "controller-manager.log")
    c.processes["kube-controller-manager"] = cm
    sched = ManagedProcess.start("kube-scheduler", [
        str(BIN / "kube-scheduler"), "--kubeconfig", str(configs["scheduler"]),
        "--bind-address", "127.0.0.1", "--secure-port", str(sched_port), "--leader-elect=false",
        "--profiling=false"], c.root / "scheduler.log")
    c.processes["kube-scheduler"] = sched
    _wait_http("kube-controller-manager", f"https://127.0.0.1:{cm_port}/healthz", cm,
               verify=False)
    _wait_http("kube-scheduler", f"https://127.0.0.1:{sched_port}/healthz", sched, verify=False)


def _start_containerd(c: NodeCluster) -> None:
    CONTAINERD_ROOT.mkdir(parents=True, exist_ok=True)
    net_d = c.run_dir / "cni" / "net.d"
    net_d.mkdir(parents=True)
    (net_d / "10-safezone.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "safezone-test", "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": NODE_POD_CIDR}]],
                      "routes": [{"dst": "0.0.0.0/0"}],
                      "dataDir": str(c.run_dir / "cni" / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}))
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    config = c.run_dir / "containerd.toml"
    config.write_text(f"""version = 2
root = "{CONTAINERD_ROOT}"
state = "{c.run_dir / 'containerd'}"
[grpc]
  address = "{c.containerd_socket}"
[ttrpc]
  address = "{c.run_dir / 'containerd.ttrpc.sock'}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c.run_dir / 'opt'}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # the sandbox may not lower oom_score_adj here: without this runc fails with
  # "can't get final child's PID from pipe"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  netns_mounts_under_state_dir = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{net_d}"
""")
    containerd = ManagedProcess.start("containerd", ["containerd", "--config", str(config)],
                                      c.root / "containerd.log")
    c.processes["containerd"] = containerd
    wait_for_probe("containerd", lambda: c.containerd_socket.exists() and c.ctr(
        "version", check=False).returncode == 0, 30, containerd)


def _archive_digest(tar: Path) -> str:
    """The manifest digest an OCI archive holds (its index.json)."""
    import tarfile

    with tarfile.open(tar) as archive:
        index = json.load(archive.extractfile("index.json"))
    return index["manifests"][0]["digest"]


def _import_images(c: NodeCluster) -> None:
    """Import the locally built images; skipped for one containerd already has, by digest."""
    started = time.monotonic()

    def have() -> dict[str, str]:
        rows = c.ctr("images", "ls").stdout.splitlines()[1:]
        return {row.split()[0]: row.split()[2] for row in rows if row.strip()}
    present = have()
    for name, (ref, tar) in local_images().items():
        c.images[name] = ref
        digest = _archive_digest(tar)
        if present.get(ref) != digest:
            c.ctr("images", "import", "--no-unpack", str(tar))
            if have().get(ref) != digest:
                raise RuntimeError(f"importing {tar} gave no image {ref}@{digest}")
    c.timings["image import"] = time.monotonic() - started


def _start_kubelet(c: NodeCluster, kubeconfig: Path, pki) -> None:
    port, healthz = free_port(), free_port()
    resolv = c.root / "resolv.conf"  # pods' upstream resolver: none (no internet)
    resolv.write_text("")
    config = c.root / "kubelet.yaml"
    config.write_text(yaml.safe_dump({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": NODE_IP, "port": port, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": healthz,
        "containerRuntimeEndpoint": f"unix://{c.containerd_socket}",
        # cgroup v1 with cgroupfs, no QoS hierarchy: what this machine's runc/containerd take
        "cgroupDriver": "cgroupfs", "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki.ca)}},
        "authorization": {"mode": "Webhook"},
        "clusterDomain": "cluster.local", "clusterDNS": [DNS_IP], "resolvConf": str(resolv),
        # a shared build machine's disk: never evict for it, never collect our images
        "evictionHard": {"nodefs.available": "1%", "imagefs.available": "1%",
                         "memory.available": "100Mi"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False, "podPidsLimit": 4096,
        "maxPods": 30, "staticPodPath": "",
    }))
    kubelet = ManagedProcess.start("kubelet", [
        str(BIN / "kubelet"), "--config", str(config), "--kubeconfig", str(kubeconfig),
        "--hostname-override", NODE, "--node-ip", NODE_IP,
        "--root-dir", str(c.root / "kubelet"), "--cert-dir", str(c.root / "kubelet-pki")],
        c.root / "kubelet.log")
    c.processes["kubelet"] = kubelet
    _wait_http("kubelet", f"http://127.0.0.1:{healthz}/healthz", kubelet, timeout=60)


def _start_proxy_and_router(c: NodeCluster, configs: dict[str, Path]) -> None:
    healthz, metrics = free_port(), free_port()
    config = c.root / "kube-proxy.yaml"
    config.write_text(yaml.safe_dump({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "mode": "iptables", "clusterCIDR": POD_CIDR, "hostnameOverride": NODE,
        "clientConnection": {"kubeconfig": str(configs["kube-proxy"])},
        "healthzBindAddress": f"127.0.0.1:{healthz}",
        "metricsBindAddress": f"127.0.0.1:{metrics}",
        "conntrack": {"maxPerCore": 0},  # leave the host's conntrack table size alone
        "nodePortAddresses": [f"{NODE_IP}/32"],
    }))
    proxy = ManagedProcess.start("kube-proxy", [str(BIN / "kube-proxy"), "--config",
                                                str(config)], c.root / "kube-proxy.log")
    c.processes["kube-proxy"] = proxy
    router_health = free_port()
    router = ManagedProcess.start("kube-router", [
        str(BIN / "kube-router"), "--kubeconfig", str(configs["kube-router"]),
        "--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
        "--hostname-override", NODE, "--health-port", str(router_health),
        "--metrics-port", "0", "--service-cluster-ip-range", SERVICE_CIDR],
        c.root / "kube-router.log")
    c.processes["kube-router"] = router
    _wait_http("kube-proxy", f"http://127.0.0.1:{healthz}/healthz", proxy, timeout=60)
    _wait_http("kube-router", f"http://127.0.0.1:{router_health}/healthz", router, timeout=60)


def _wait_node_ready(c: NodeCluster) -> None:
    from kubernetes import client

    core = client.CoreV1Api(c.api_client())

    def ready() -> bool:
        nodes = core.list_node().items
        return bool(nodes) and any(cond.type == "Ready" and cond.status == "True"
                                   for cond in nodes[0].status.conditions or [])
    wait_for_probe("node Ready", ready, 120, c.processes["kubelet"])


def _start_dns(c: NodeCluster) -> None:
    """CoreDNS as a pod in kube-system (label k8s-app=kube-dns, as NetworkPolicies name it)."""
    docs = list(yaml.safe_load_all((Path(__file__).parent / "kube_dns.yaml").read_text()
                                   .replace("{DNS_IP}", DNS_IP)
                                   .replace("{COREDNS_IMAGE}", COREDNS_IMAGE)))
    c.apply(docs)
    wait_pods_ready(c, "kube-system", "k8s-app=kube-dns", 120)


def wait_pods_ready(c: NodeCluster, namespace: str, selector: str, timeout: float) -> list:
    from kubernetes import client

    core = client.CoreV1Api(c.api_client())
    deadline = time.monotonic() + timeout
    pods: list = []
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        if pods and all(any(cond.type == "Ready" and cond.status == "True"
                            for cond in p.status.conditions or []) for p in pods):
            return pods
        time.sleep(0.5)
    states = [(p.metadata.name, p.status.phase, [
        (s.name, s.state.to_dict()) for s in p.status.container_statuses or []]) for p in pods]
    raise TimeoutError(f"pods {selector} in {namespace} not Ready after {timeout}s: {states}")


if __name__ == "__main__":
    import tempfile

    cluster = start_node_cluster(Path(tempfile.mkdtemp(prefix="szk-")))
    print(f"KUBECONFIG={cluster.kubeconfig}\ntimings: {cluster.timings}\n"
          "press Enter to tear down")
    try:
        input()
    finally:
        print(f"left: {cluster.stop()}")
