"""A real Kubernetes control plane for tests: etcd + kube-apiserver + kwok on loopback.

Binaries come from ``scripts/kube-tools.sh`` (built from the Go module proxy into
``.cache/kube/bin``). No node runs containers here: kwok plays the kubelet, so pods get
bound and reach Running without any container starting.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from safezone.config import REPO_ROOT
from safezone.local.processes import ManagedProcess, free_port

BIN = REPO_ROOT / ".cache" / "kube" / "bin"
STAGES = REPO_ROOT / ".cache" / "kube" / "kwok-stages.yaml"
NODE = "kwok-node-0"
BUILD_HINT = "run scripts/kube-tools.sh (needs Go; builds etcd, kube-apiserver, kwok, helm)"


def missing_binaries() -> list[str]:
    names = ["etcd", "kube-apiserver", "kwok"]
    return [n for n in names if not (BIN / n).is_file()] + ([] if STAGES.is_file()
                                                            else ["kwok-stages.yaml"])


def wait_for_probe(what: str, probe, timeout: float, process: ManagedProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{process.tail()}")
        try:
            if probe():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout}s:\n{process.tail()}")


@dataclass
class KubeCluster:
    root: Path
    kubeconfig: Path
    api_url: str
    ca_file: Path
    admin_token: str
    processes: list[ManagedProcess] = field(default_factory=list)

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig))

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def start_etcd(root: Path) -> tuple[ManagedProcess, str]:
    """A one-member etcd on loopback; its client URL."""
    etcd_port, peer_port = free_port(), free_port()
    etcd = ManagedProcess.start("etcd", [
        str(BIN / "etcd"), "--name", "test", "--data-dir", str(root / "etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
        "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
        "--initial-cluster", f"test=http://127.0.0.1:{peer_port}", "--log-level", "warn"],
        root / "etcd.log")
    url = f"http://127.0.0.1:{etcd_port}"
    wait_for_probe("etcd", lambda: httpx.get(f"{url}/health").status_code == 200, 30, etcd)
    return etcd, url


def write_kubeconfig(path: Path, api_url: str, ca: Path, token: str) -> Path:
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: "{api_url}", certificate-authority: "{ca}"}}
users:
- name: user
  user: {{token: "{token}"}}
contexts:
- name: test
  context: {{cluster: test, user: user}}
current-context: test
""")
    path.chmod(0o600)
    return path


def start_cluster(root: Path) -> KubeCluster:
    root.mkdir(parents=True, exist_ok=True)
    api_port, kwok_port = free_port(), free_port()
    subprocess.run(["openssl", "genrsa", "-out", str(root / "sa.key"), "2048"], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", str(root / "sa.key"), "-pubout", "-out",
                    str(root / "sa.pub")], check=True, capture_output=True)
    token = secrets.token_hex(24)
    (root / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n")
    processes: list[ManagedProcess] = []
    etcd, etcd_url = start_etcd(root)
    processes.append(etcd)
    api = ManagedProcess.start("kube-apiserver", [
        str(BIN / "kube-apiserver"), "--etcd-servers", etcd_url,
        "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
        "--secure-port", str(api_port), "--cert-dir", str(root / "certs"),
        "--token-auth-file", str(root / "tokens.csv"), "--authorization-mode", "RBAC",
        "--enable-admission-plugins", "NamespaceLifecycle,ServiceAccount,PodSecurity",
        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file", str(root / "sa.pub"),
        "--service-account-signing-key-file", str(root / "sa.key"),
        "--service-cluster-ip-range", "10.96.0.0/16", "--allow-privileged=true",
        "--endpoint-reconciler-type", "none", "--profiling=false"], root / "apiserver.log")
    processes.append(api)
    ca = root / "certs" / "apiserver.crt"
    api_url = f"https://127.0.0.1:{api_port}"
    wait_for_probe("kube-apiserver", lambda: ca.exists() and httpx.get(
        f"{api_url}/readyz", verify=str(ca), headers={"Authorization": f"Bearer {token}"}
    ).status_code == 200, 120, api)
    kubeconfig = write_kubeconfig(root / "kubeconfig", api_url, ca, token)
    kwok = ManagedProcess.start("kwok", [
        str(BIN / "kwok"), "--kubeconfig", str(kubeconfig), "--config", str(STAGES),
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
        "--cidr", "10.0.0.1/24", "--node-ip", "10.0.0.1",
        "--node-lease-duration-seconds", "40", "--server-address", f"127.0.0.1:{kwok_port}"],
        root / "kwok.log")
    processes.append(kwok)
    kwok_health = f"http://127.0.0.1:{kwok_port}/healthz"
    wait_for_probe("kwok", lambda: httpx.get(kwok_health).status_code == 200, 30, kwok)
    cluster = KubeCluster(root, kubeconfig, api_url, ca, token, processes)
    _add_fake_node(cluster)
    return cluster


def _add_fake_node(cluster: KubeCluster) -> None:
    from kubernetes import client

    core = client.CoreV1Api(cluster.api_client())
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(
        name=NODE, annotations={"kwok.x-k8s.io/node": "fake"},
        labels={"type": "kwok", "kubernetes.io/hostname": NODE})))


def netpol_allows(world: Path, source: str, *, port: int, protocol: str = "tcp",
            dest: str | None = None, dest_ip: str | None = None) -> bool:
    """netpol-analyzer's verdict on one connection between the objects in ``world``."""
    src_ns, src_pod = source.split("/")
    args = [str(BIN / "netpolicy"), "eval", "--dirpath", str(world), "-n", src_ns,
            "-s", src_pod, "-p", str(port), "--protocol", protocol]
    if dest:
        dst_ns, dst_pod = dest.split("/")
        args += ["--destination-namespace", dst_ns, "-d", dst_pod]
    else:
        args += ["--destination-ip", dest_ip]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    verdict = out.stdout.strip().rsplit(" ", 1)[-1].lower()
    assert verdict in {"true", "false"}, out.stdout
    return verdict == "true"
