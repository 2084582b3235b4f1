"""Session keys work only from the notebook network: the ``aws:SourceIp`` condition of
``policies/minio/session.yaml``, on a real MinIO reached through a network namespace.

A veth pair joins this host (10.98.N.1) to a namespace (10.98.N.2, the "notebook"); MinIO
listens on 10.98.N.1 only. The zone's session keys are for 10.98.N.0/24 minus 10.98.N.1/32,
so the same keys read the dataset from the namespace and are refused from the host.

Spoofing. The pinned MinIO (``internal/handlers/proxy.go``, ``GetSourceIPRaw``) takes
``aws:SourceIp`` from the client's own ``X-Forwarded-For``, ``X-Real-IP`` or ``Forwarded``
header before the peer address, and ``_MINIO_API_XFF_HEADER=off`` switches off only the
first. ``SPOOFED`` records what it did when the host sent each header naming the
namespace's address: every header MinIO still reads lets the host through. The condition
therefore only narrows *where keys are used* if nothing outside the notebook network can
reach MinIO directly (or only through a proxy that overwrites these headers): the local
zone must restrict who may connect to MinIO at the network layer. That defence is built
separately; these tests pin the behaviour it has to cover.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from minio import MinioAdmin
from minio.credentials import StaticProvider

from safezone import datasets, grants, memberships, projects
from safezone.config import Settings, StorageSettings
from safezone.deid.pipeline import OUTPUT_KEY
from safezone.local.processes import ManagedProcess, free_port, wait_for_http
from safezone.local.services import minio_binary
from safezone.models import SessionGrant
from safezone.permissions import ADMIN_SCOPE, SESSIONS_SCOPE, Identity
from safezone.storage.policies import DatasetLocation, session_policy
from safezone.zone import Zone

from .support import MinioHandle, attested_dataset, fresh_database_url, unique

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
SPAWNER = Identity("safezone-spawner", "service", frozenset({SESSIONS_SCOPE}))
HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")
# (MinIO's _MINIO_API_XFF_HEADER, header the host adds naming the namespace) -> outcome
SPOOFED = {
    ("on", "X-Forwarded-For"): "pass",
    ("on", "X-Real-IP"): "pass",
    ("on", "Forwarded"): "pass",
    ("off", "X-Forwarded-For"): "deny",
    ("off", "X-Real-IP"): "pass",
    ("off", "Forwarded"): "pass",
}


# -- settings and the rendered document (no services) ----------------------------------
def test_networks_are_read_from_the_environment_and_validated(monkeypatch):
    monkeypatch.setenv("SAFEZONE_NOTEBOOK_NETWORKS", " 10.98.0.0/24, fd00:98::/64 ")
    monkeypatch.setenv("SAFEZONE_NOTEBOOK_EXCLUDED", "10.98.0.1")
    storage = Settings.from_env().storage
    assert storage.notebook_networks == ("10.98.0.0/24", "fd00:98::/64")
    assert storage.notebook_excluded == ("10.98.0.1/32",)  # canonical: what MinIO parses

    monkeypatch.delenv("SAFEZONE_NOTEBOOK_NETWORKS")
    monkeypatch.delenv("SAFEZONE_NOTEBOOK_EXCLUDED")
    storage = Settings.from_env().storage
    assert storage.notebook_networks == storage.notebook_excluded == ()

    for networks, excluded, message in [
            (("10.98.0.0/33",), (), "SAFEZONE_NOTEBOOK_NETWORKS: '10.98.0.0/33'"),
            (("notebooks",), (), "SAFEZONE_NOTEBOOK_NETWORKS: 'notebooks'"),
            (("10.98.0.1/24",), (), "host bits set"),
            (("10.98.0.0/24",), ("10.99.0.1/8",), "SAFEZONE_NOTEBOOK_EXCLUDED"),
            ((), ("10.99.0.1/32",), "NETWORKS is empty")]:
        with pytest.raises(ValueError, match=message):
            StorageSettings(endpoint="x", public_endpoint="x", root_user="r",
                            root_password="p", notebook_networks=networks,
                            notebook_excluded=excluded)


def test_every_allow_carries_the_network_condition_and_denies_stay_unconditional():
    locations = [DatasetLocation("deid-a", "deid-a", ""), DatasetLocation("deid-b", "deid-b",
                                                                          "v1/")]
    plain = session_policy("demo", "alice", locations)
    policy = session_policy("demo", "alice", locations, networks=("10.98.7.0/24",),
                            excluded=("10.98.7.1/32",))
    assert not any("IpAddress" in s.get("Condition", {}) for s in plain["Statement"])
    assert len(policy["Statement"]) == len(plain["Statement"])
    for before, after in zip(plain["Statement"], policy["Statement"], strict=True):
        if after["Effect"] == "Deny":
            assert after == before  # no network condition: a Deny holds from everywhere
            assert not {"IpAddress", "NotIpAddress"} & set(after.get("Condition", {}))
            continue
        assert after["Condition"] == {**before.get("Condition", {}),
                                      "IpAddress": {"aws:SourceIp": ["10.98.7.0/24"]},
                                      "NotIpAddress": {"aws:SourceIp": ["10.98.7.1/32"]}}
    listing = next(s for s in policy["Statement"] if s["Sid"] == "ListDataset1")
    assert listing["Condition"]["StringLike"] == {"s3:prefix": ["v1/*"]}  # kept
    # no exclusions: no NotIpAddress operator (MinIO refuses an empty value list)
    open_policy = session_policy("demo", "alice", locations, networks=("10.98.7.0/24",))
    assert all(set(s["Condition"]) - {"StringLike"} == {"IpAddress"}
               for s in open_policy["Statement"] if s["Effect"] == "Allow")


# -- a notebook network of our own -----------------------------------------------------
@dataclass(frozen=True)
class Link:
    netns: str
    host_veth: str
    host_ip: str  # 10.98.N.1: MinIO listens here; the host's requests come from here
    inner_ip: str  # 10.98.N.2: the notebook's address, inside the namespace
    network: str  # 10.98.N.0/24


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def _unused_subnet() -> int:
    used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    free = [n for n in range(1, 255) if f"10.98.{n}." not in used]
    return random.choice(free)


@pytest.fixture(scope="module")
def link() -> Iterator[Link]:
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 (ip netns, veth)")
    tag, n = secrets.token_hex(3), _unused_subnet()
    found = Link(f"sz-net-{tag}", f"szv{tag}h", f"10.98.{n}.1", f"10.98.{n}.2",
                 f"10.98.{n}.0/24")
    inner = f"szv{tag}n"
    try:
        _ip("netns", "add", found.netns)
        _ip("link", "add", found.host_veth, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", found.netns)
        _ip("addr", "add", f"{found.host_ip}/24", "dev", found.host_veth)
        _ip("link", "set", found.host_veth, "up")
        _ip("-n", found.netns, "addr", "add", f"{found.inner_ip}/24", "dev", inner)
        _ip("-n", found.netns, "link", "set", inner, "up")
        _ip("-n", found.netns, "link", "set", "lo", "up")
        yield found
    finally:
        _ip("link", "del", found.host_veth, check=False)  # takes its peer with it
        _ip("netns", "del", found.netns, check=False)


@dataclass
class Site:
    """A MinIO on the link's host address, a zone on it, and one session's keys."""

    xff: str  # _MINIO_API_XFF_HEADER of this MinIO
    minio: MinioHandle
    zone: Zone
    grant: grants.IssuedGrant
    bucket: str


def _start_minio(data: Path, address: str, port: int, user: str, password: str,
                 log: Path, xff: str) -> ManagedProcess:
    """MinIO listening on ``address`` only (services.start_minio binds loopback)."""
    env = {**os.environ, "MINIO_ROOT_USER": user, "MINIO_ROOT_PASSWORD": password,
           "MINIO_BROWSER": "off", "MINIO_UPDATE": "off", "MINIO_CI_CD": "1",
           "_MINIO_API_XFF_HEADER": xff}
    process = ManagedProcess.start(
        "minio", [str(minio_binary()), "server", str(data), "--address", f"{address}:{port}",
                  "--console-address", f"127.0.0.1:{free_port()}", "--quiet"], log, env=env)
    wait_for_http(f"http://{address}:{port}/minio/health/ready", 60, process)
    return process


def _network_zone(minio: MinioHandle, database_url: str, link: Link) -> Zone:
    """tests.support.make_zone, with the session keys tied to the link's network."""
    storage = StorageSettings(endpoint=minio.endpoint, public_endpoint=f"http://{minio.endpoint}",
                              root_user=minio.root_user, root_password=minio.root_password,
                              issuer_password=minio.issuer_password, lock_retention_days=1,
                              anchor_prefix=f"anchors-{uuid.uuid4().hex[:8]}/",
                              notebook_networks=(link.network,),
                              notebook_excluded=(f"{link.host_ip}/32",))
    zone = Zone.from_settings(Settings(database_url=database_url, storage=storage,
                                       hub_api_url="http://127.0.0.1:1/hub/api"))
    zone.broker.bootstrap()
    return zone


@pytest.fixture(scope="module", params=["on", "off"], ids=["xff-on", "xff-off"])
def site(request, link: Link, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp(f"netminio-{request.param}")
    port, user, password = free_port(), "szroot", secrets.token_urlsafe(18)
    process = _start_minio(tmp / "data", link.host_ip, port, user, password,
                           tmp / "minio.log", request.param)
    try:
        minio = MinioHandle(f"{link.host_ip}:{port}", user, password, process, tmp / "data",
                            port, 0)
        zone = _network_zone(minio, fresh_database_url(tmp), link)
        project, dataset = unique("p"), unique("deid-net")
        projects.create_project(zone, ADMIN, project)
        attested_dataset(zone, dataset)
        datasets.change_status(zone, ADMIN, dataset, "publish")
        projects.attach_dataset(zone, ADMIN, project, dataset)
        memberships.approve_membership(zone, ADMIN, project, "alice",
                                       zone.now() + timedelta(days=1))
        grant = grants.issue_grant(zone, SPAWNER, "alice", project)
        yield Site(request.param, minio, zone, grant, dataset)
    finally:
        process.stop()


# -- requests from either side ---------------------------------------------------------
_GET = """
import json, sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
endpoint, bucket, key = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(retries={"max_attempts": 1}))
try:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    print(json.dumps({"outcome": "pass", "size": len(body)}))
except ClientError as exc:
    print(json.dumps({"outcome": "deny", "code": exc.response["Error"]["Code"]}))
"""


def from_notebook(site: Site, link: Link) -> dict:
    """GetObject of the dataset with the session's keys, from inside the namespace."""
    env = {"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": site.grant.access_key,
           "AWS_SECRET_ACCESS_KEY": site.grant.secret_key,
           "AWS_SESSION_TOKEN": site.grant.session_token, "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    done = subprocess.run(["ip", "netns", "exec", link.netns, sys.executable, "-c", _GET,
                           f"http://{site.minio.endpoint}", site.bucket, OUTPUT_KEY],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def from_host(site: Site, header: tuple[str, str] | None = None) -> str:
    """The same GetObject from the host's own namespace (source 10.98.N.1), optionally with
    one extra header (signed with the request, as any client may)."""
    s3 = site.minio.s3(site.grant.access_key, site.grant.secret_key, site.grant.session_token)
    if header:
        def add(request, **_) -> None:
            request.headers[header[0]] = header[1]

        s3.meta.events.register("before-sign.s3.GetObject", add)
    try:
        s3.get_object(Bucket=site.bucket, Key=OUTPUT_KEY)["Body"].read()
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied", exc.response
        return "deny"
    return "pass"


@pytest.mark.integration
def test_the_session_identity_in_minio_carries_the_condition(site, link):
    root = MinioAdmin(endpoint=site.minio.endpoint, secure=False,
                      credentials=StaticProvider(site.minio.root_user, site.minio.root_password))
    with site.zone.sessions() as db:  # the grant's keys hold its session parent's policy
        parent = db.get(SessionGrant, site.grant.grant_id).parent
    policy = json.loads(root.policy_info(parent))
    for statement in policy["Statement"]:
        condition = statement.get("Condition", {})
        if statement["Effect"] == "Deny":  # no network condition: holds from everywhere
            assert not {"IpAddress", "NotIpAddress"} & set(condition)
        else:
            assert condition["IpAddress"]["aws:SourceIp"] == [link.network]
            assert condition["NotIpAddress"]["aws:SourceIp"] == [f"{link.host_ip}/32"]


@pytest.mark.integration
def test_keys_work_from_the_notebook_network_and_not_from_the_host(site, link):
    assert from_notebook(site, link)["outcome"] == "pass"
    assert from_host(site) == "deny"
    # the host does reach MinIO: it is the keys that are refused there, not the connection
    root = site.minio.root_s3().get_object(Bucket=site.bucket, Key=OUTPUT_KEY)
    assert root["Body"].read()


@pytest.mark.integration
def test_what_a_spoofed_source_header_does(site, link):
    """Each header naming the namespace's address, sent from the host: see ``SPOOFED`` and
    the module docstring for why MinIO must not be reachable from outside the network."""
    forms = {"X-Forwarded-For": link.inner_ip, "X-Real-IP": link.inner_ip,
             "Forwarded": f"for={link.inner_ip}"}
    observed = {(site.xff, name): from_host(site, (name, forms[name])) for name in HEADERS}
    expected = {key: value for key, value in SPOOFED.items() if key[0] == site.xff}
    assert observed == expected
    assert from_host(site) == "deny"  # and without a header the host is still refused
