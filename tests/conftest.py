"""Session-wide real services: one MinIO server, one control plane + JupyterHub stack."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from .support import (
    MEASUREMENTS,
    ZONE_NET,
    MinioHandle,
    Stack,
    fresh_database_url,
    launch_minio,
    launch_stack,
    make_zone,
    remove_stale_test_networks,
)

ATTACKS = {"passed": 0, "failed": 0}
ESCAPES = {"tried": 0, "succeeded": 0}
# a sandbox test that checks the notebook still works (no escape tried): left out of the count
NOT_AN_ESCAPE = "not_an_escape"


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", f"{NOT_AN_ESCAPE}: a sandbox test that tries no "
                            "escape (not counted in 'sandbox: N escapes tried')")


def pytest_runtest_logreport(report) -> None:
    """Count the security suite's attacks (tests/security/test_attacks_*)."""
    attack = "tests/security/test_attacks_" in report.nodeid.replace("\\", "/")
    if attack and (report.when == "call" or report.failed):
        ATTACKS["passed" if report.passed else "failed"] += 1
    escape = ("tests/security/test_sandbox_escapes" in report.nodeid.replace("\\", "/")
              and NOT_AN_ESCAPE not in report.keywords)
    if escape and (report.when == "call" or report.failed):
        ESCAPES["tried"] += 1
        ESCAPES["succeeded"] += 0 if report.passed else 1


def pytest_terminal_summary(terminalreporter) -> None:
    if ATTACKS["passed"] or ATTACKS["failed"]:
        terminalreporter.section("security")
        terminalreporter.write_line(f"security: {ATTACKS['passed']} attacks refused"
                                    + (f", {ATTACKS['failed']} got through or broke"
                                       if ATTACKS["failed"] else ""))
    if ESCAPES["tried"]:
        terminalreporter.section("sandbox")
        terminalreporter.write_line(f"sandbox: {ESCAPES['tried']} escapes tried, "
                                    f"{ESCAPES['succeeded']} succeeded")
    if MEASUREMENTS:
        terminalreporter.section("measured")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def zone_network() -> Iterator:
    """The zone bridge and its nftables rules (root), removed at the end."""
    remove_stale_test_networks()
    yield ZONE_NET.up()
    ZONE_NET.down()


@pytest.fixture(scope="session")
def minio(tmp_path_factory: pytest.TempPathFactory, zone_network) -> Iterator[MinioHandle]:
    handle = launch_minio(tmp_path_factory.mktemp("minio"))
    yield handle
    handle.process.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, minio: MinioHandle) -> Iterator[Stack]:
    stack = launch_stack(tmp_path_factory.mktemp("stack"), minio)
    yield stack
    stack.hub.stop(timeout=20)
    stack.control_plane.stop()


@pytest.fixture
def zone(tmp_path, minio):
    """A zone of its own (fresh database) on the shared MinIO, without a hub."""
    return make_zone(minio, fresh_database_url(tmp_path))


@pytest.fixture
def fragile(tmp_path):
    """A MinIO server of the test's own (to stop and restart) and a zone on it."""
    minio = launch_minio(tmp_path)
    zone = make_zone(minio, fresh_database_url(tmp_path))
    yield minio, zone
    minio.process.stop()


@pytest.fixture
def clock(stack: Stack) -> Iterator:
    """The stack's clock; moved forward by a test and put back afterwards."""
    saved = stack.zone.clock.offset
    yield stack.zone.clock
    stack.zone.clock.offset = saved


def days(n: float) -> timedelta:
    return timedelta(days=n)


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory):
    """A real kube-apiserver + etcd + kwok; skipped only when the binaries are absent."""
    from .kube_cluster import BUILD_HINT, missing_binaries, start_cluster

    missing = missing_binaries()
    if missing:
        pytest.skip(f"Kubernetes test binaries missing ({', '.join(missing)}): {BUILD_HINT}")
    cluster = start_cluster(tmp_path_factory.mktemp("kube"))
    yield cluster
    cluster.stop()


NOTEBOOK_IMAGE = "registry.example/safezone/notebook:1.0"


@pytest.fixture(scope="session")
def kube_policies(kube):
    """The cluster-wide parts the chart installs: admission policies, their parameters
    (allowed images), and the hub's per-project role."""
    import yaml
    from kubernetes import client, utils

    from safezone.config import POLICIES_DIR

    api = kube.api_client()
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="safezone-system")))
    core.create_namespaced_config_map("safezone-system", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="safezone-admission"),
        data={"allowedImages": f"{NOTEBOOK_IMAGE}, registry.example/safezone/notebook:0.9"}))
    for name in ("admission.yaml", "hub-project-role.yaml"):
        for doc in yaml.safe_load_all((POLICIES_DIR / "kubernetes" / name).read_text()):
            utils.create_from_dict(api, doc)
    return api
