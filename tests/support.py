"""Test support: real MinIO, real databases, the control plane in a thread, a real hub."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx
import uvicorn
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from safezone import datasets
from safezone.api.app import create_app
from safezone.api.headers import KEEP_ALIVE_SECONDS
from safezone.config import Settings, StorageSettings
from safezone.deid import pipeline
from safezone.deid.recipe import load_recipe
from safezone.local.processes import ManagedProcess, free_port, wait_for_http
from safezone.local.services import start_hub, start_minio
from safezone.permissions import STEWARD_SCOPE, Identity
from safezone.sandbox.network import ZoneNetwork
from safezone.zone import Zone
from spawner.demo_auth import hash_password

from .netns import InNamespace

PG_URL_VAR = "SAFEZONE_TEST_DATABASE_URL"
# The tests' zone network: sandboxes, MinIO's S3 port, the hub API and the control plane
# live on it, exactly as in `safezone local up` (which uses szbr0, 10.99.0.0/24). One per
# test run (named after its pid), so two runs on one machine do not share rules.
ZONE_NET = ZoneNetwork(bridge=f"szt{os.getpid()}",
                       subnet=f"10.{100 + (os.getpid() >> 8) % 100}.{os.getpid() % 256}.0/24")


# MinIO's audit webhook token (access records): the control planes of the tests run in
# this process and read it from the environment, as a deployed one does
RECORDS_TOKEN = os.environ.setdefault("SAFEZONE_RECORDS_TOKEN", secrets.token_hex(24))
# the hub's proxy reaches the control plane from the bridge's gateway: the browser's address
# is the last hop it forwards
os.environ.setdefault("SAFEZONE_RECORDS_TRUSTED_PROXIES", f"{ZONE_NET.gateway}/32")


def remove_stale_test_networks() -> None:
    """Bridges of test runs that were killed before their teardown."""
    for bridge in Path("/sys/class/net").glob("szt*"):
        pid = bridge.name[3:]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            ZoneNetwork(bridge=bridge.name).down()


def unique(prefix: str) -> str:
    """A fresh name for a project or dataset, so tests never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fresh_database_url(tmp_dir: Path) -> str:
    """An empty database: a new SQLite file, or a new database on the PostgreSQL server."""
    base = os.environ.get(PG_URL_VAR)
    if not base:
        return f"sqlite:///{tmp_dir / f'sz-{uuid.uuid4().hex[:8]}.sqlite'}"
    url = make_url(base)
    name = f"sz_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@dataclass
class MinioHandle:
    endpoint: str
    root_user: str
    root_password: str
    process: ManagedProcess
    data_dir: Path
    port: int
    console_port: int
    issuer_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    # where this MinIO sends its audit log: the first stack on it listens there
    records_port: int = 0
    records_claimed: bool = False

    @property
    def audit_webhook(self) -> tuple[str, str]:
        return (f"http://{ZONE_NET.gateway}:{self.records_port}/api/records/minio",
                RECORDS_TOKEN)

    def claim_records_port(self) -> int | None:
        """The webhook's port for the first control plane started on this MinIO."""
        if self.records_claimed or not self.records_port:
            return None
        self.records_claimed = True
        return self.records_port

    def s3(self, access_key: str, secret_key: str, session_token: str | None = None):
        return boto3.client("s3", endpoint_url=f"http://{self.endpoint}",
                            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                            aws_session_token=session_token,
                            region_name="us-east-1",
                            config=BotoConfig(retries={"max_attempts": 1}))

    def root_s3(self):
        return self.s3(self.root_user, self.root_password)

    def restart(self) -> None:
        self.process = start_minio(self.data_dir, self.port, self.console_port,
                                   self.root_user, self.root_password, self.process.log_path,
                                   host=self.endpoint.rsplit(":", 1)[0],
                                   audit_webhook=self.audit_webhook if self.records_port
                                   else None)


def launch_minio(tmp_dir: Path) -> MinioHandle:
    """MinIO's S3 port on the zone bridge's gateway, reachable by sandboxes."""
    port, console, records = free_port(), free_port(), free_port()
    user, password = "szroot", secrets.token_urlsafe(18)
    data = tmp_dir / "minio-data"
    ZONE_NET.allow(port, storage=True)
    handle = MinioHandle(f"{ZONE_NET.gateway}:{port}", user, password, None, data,  # type: ignore[arg-type]
                         port, console, records_port=records)
    handle.process = start_minio(data, port, console, user, password, tmp_dir / "minio.log",
                                 host=ZONE_NET.gateway, audit_webhook=handle.audit_webhook)
    return handle


def make_zone(minio: MinioHandle, database_url: str, hub_api_url: str = "",
              service_token: str = "") -> Zone:
    storage = StorageSettings(endpoint=minio.endpoint,
                              public_endpoint=f"http://{minio.endpoint}",
                              root_user=minio.root_user, root_password=minio.root_password,
                              issuer_password=minio.issuer_password,
                              lock_retention_days=1,
                              anchor_prefix=f"anchors-{uuid.uuid4().hex[:8]}/",
                              notebook_networks=(ZONE_NET.subnet,),
                              notebook_excluded=(ZONE_NET.excluded,))
    settings = Settings(database_url=database_url, storage=storage,
                        hub_api_url=hub_api_url or "http://127.0.0.1:1/hub/api",
                        service_token=service_token, base_url="/services/safezone/",
                        inside_networks=(ZONE_NET.subnet,), inside_excluded=(ZONE_NET.excluded,))
    zone = Zone.from_settings(settings)
    zone.broker.bootstrap()
    return zone


class ThreadedServer:
    """The control plane's ASGI app on a loopback port, in this process (tests move its clock)."""

    def __init__(self, zone: Zone, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.port, self.host = port or free_port(), host
        config = uvicorn.Config(create_app(zone, sweep=False), host=host,
                                port=self.port, log_level="warning", proxy_headers=False,
                                timeout_keep_alive=KEEP_ALIVE_SECONDS)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ThreadedServer:
        self.thread.start()
        wait_for_http(f"{self.url}/api/health", 30)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


# grace never joins anything: the tests of a person with no project use her (bob and carol
# apply and are approved in other tests of the same stack)
USERS = ("admin", "admin2", "reviewer", "dave", "erin", "alice", "bob", "carol", "grace",
         "steward", "operator")


@dataclass
class Stack:
    """MinIO + control plane + JupyterHub (+ configurable-http-proxy) for one test session."""

    minio: MinioHandle
    zone: Zone
    control_plane: ThreadedServer
    hub: ManagedProcess
    hub_url: str
    passwords: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)
    spawner_token: str = ""
    state_dir: Path | None = None  # the hub's, the workspaces', the sandboxes' folders
    database_url: str = ""
    proxy_api_port: int = 0
    hub_env: dict[str, str] = field(default_factory=dict)  # to restart the hub as it was

    def api(self, user: str) -> httpx.Client:
        """An HTTP client of the control plane acting as ``user`` (their real hub token)."""
        token = self.spawner_token if user == "spawner" else self.tokens[user]
        return httpx.Client(base_url=self.control_plane.url, timeout=30,
                            headers={"Authorization": f"token {token}"})

    def hub_api(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.hub_url}/hub/api", timeout=60,
                            headers={"Authorization": f"token {self.tokens[user]}"})


def hub_token(hub_url: str, user: str, password: str) -> str:
    response = httpx.post(f"{hub_url}/hub/api/users/{user}/tokens", timeout=30,
                          json={"auth": {"username": user, "password": password},
                                "note": "safezone tests"})
    response.raise_for_status()
    return response.json()["token"]


def launch_stack(tmp_dir: Path, minio: MinioHandle, extra_env: dict[str, str] | None = None
                 ) -> Stack:
    service_token, spawner_token = secrets.token_hex(24), secrets.token_hex(24)
    hub_port, hub_api_port, proxy_api_port = free_port(), free_port(), free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    zone = make_zone(minio, fresh_database_url(tmp_dir),
                     hub_api_url=f"http://{ZONE_NET.gateway}:{hub_api_port}/hub/api",
                     service_token=service_token)
    control_plane = ThreadedServer(zone, host=ZONE_NET.gateway,
                                   port=minio.claim_records_port()).start()
    ZONE_NET.allow(control_plane.port)
    ZONE_NET.allow(hub_api_port)
    passwords = {name: secrets.token_urlsafe(12) for name in USERS}
    users_file = tmp_dir / "users.json"
    users_file.write_text(json.dumps({n: hash_password(p) for n, p in passwords.items()}))
    env = {
        "SAFEZONE_MODE": "local",
        "SAFEZONE_HUB_URL": hub_url,
        "SAFEZONE_HUB_PORT": str(hub_api_port),
        "SAFEZONE_HUB_IP": ZONE_NET.gateway,
        "SAFEZONE_SANDBOX_BRIDGE": ZONE_NET.bridge,
        "SAFEZONE_SANDBOX_SUBNET": ZONE_NET.subnet,
        "SAFEZONE_SANDBOX_STATE_DIR": str(tmp_dir / "sandbox"),
        "SAFEZONE_PROXY_API_PORT": str(proxy_api_port),
        "SAFEZONE_CONTROL_PLANE_URL": control_plane.url,
        "SAFEZONE_SERVICE_TOKEN": service_token,
        "SAFEZONE_SPAWNER_TOKEN": spawner_token,
        "SAFEZONE_USERS_FILE": str(users_file),
        "SAFEZONE_ADMINS": "admin,admin2",
        "SAFEZONE_REVIEWERS": "reviewer,dave,erin",
        "SAFEZONE_STEWARDS": "steward",
        "SAFEZONE_HUB_OPERATORS": "operator",
        "SAFEZONE_WORKSPACE_ROOT": str(tmp_dir / "workspaces"),
        "SAFEZONE_START_TIMEOUT": "90",
        **(extra_env or {}),
    }
    hub = start_hub(env, tmp_dir / "hub", hub_url, tmp_dir / "hub.log")
    stack = Stack(minio, zone, control_plane, hub, hub_url, passwords,
                  spawner_token=spawner_token, state_dir=tmp_dir,
                  database_url=zone.settings.database_url, proxy_api_port=proxy_api_port,
                  hub_env=env)
    try:
        for name, password in passwords.items():
            stack.tokens[name] = hub_token(hub_url, name, password)
    except BaseException:  # a stack that did not come up leaves no hub behind
        hub.stop()
        control_plane.stop()
        raise
    return stack


MEASUREMENTS: list[str] = []


def report_measure(line: str) -> None:
    """A figure printed in the test summary (see conftest.pytest_terminal_summary)."""
    MEASUREMENTS.append(line)


def port_is_free(port: int) -> bool:
    """Nothing listens on ``port`` (on any address): the zone's own check."""
    from safezone.local.processes import PortInUse, require_free_ports

    try:
        require_free_ports({"probe": port})
    except PortInUse:
        return False
    return True


def wait_until(predicate, timeout: float = 30, interval: float = 0.1) -> float:
    """Poll until ``predicate()`` is true; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s")


@dataclass
class Provisioned:
    project: str
    dataset: str
    raw_dataset: str
    member: str
    offered: list[str] = field(default_factory=list)


TINY_RECIPE = """
version: 1
columns:
  id: {technique: keep}
  age: {technique: keep}
catalogue:
  title: {ko: 시험 데이터, en: Test data}
  description: {ko: 시험용 가명 데이터, en: De-identified test data}
  keywords: [test]
  publisher: Test institution
  temporal: {start: "2024-01-01", end: "2024-12-31"}
  accrual_periodicity: irregular
  licence: {title: Safezone terms of use}
  columns:
    id: {description: row number}
    age: {description: age in years}
"""
PIPELINE_KEY = b"test-key-kept-outside-the-zone"


def attested_dataset(zone: Zone, name: str, body: bytes = b"id,age\n1,40\n",
                     recipe: str = TINY_RECIPE) -> dict:
    """A de-identified dataset made the only way there is: raw upload, then the pipeline."""
    steward = Identity("steward", "user", frozenset({STEWARD_SCOPE}))
    raw = "raw-" + name.removeprefix("deid-")[:55]
    datasets.register_dataset(zone, steward, raw, "raw")
    zone.broker.write_object(raw, "upload.csv", body)
    return pipeline.run(zone, steward, load_recipe(recipe), raw, "upload.csv", name,
                        PIPELINE_KEY)


def steward_env(zone: Zone) -> dict[str, str]:
    """The environment a data steward's ``safezone deid …`` runs with inside the zone."""
    storage = zone.settings.storage
    return {**os.environ, "SAFEZONE_DATABASE_URL": zone.settings.database_url,
            "SAFEZONE_MINIO_ENDPOINT": storage.endpoint,
            "SAFEZONE_MINIO_ROOT_USER": storage.root_user,
            "SAFEZONE_MINIO_ROOT_PASSWORD": storage.root_password,
            "SAFEZONE_MINIO_ISSUER_PASSWORD": storage.issuer_password,
            "SAFEZONE_AUDIT_ANCHOR_PREFIX": storage.anchor_prefix}


def start_control_plane_process(zone: Zone, log_path: Path,
                                extra_env: dict[str, str] | None = None
                                ) -> tuple[ManagedProcess, str]:
    """``python -m safezone.api.main`` for ``zone`` (its database, MinIO and hub), as a
    zone runs it: a process of its own on the zone network. Returns it and its URL."""
    import sys

    port = free_port()
    ZONE_NET.allow(port)
    url = f"http://{ZONE_NET.gateway}:{port}"
    settings = zone.settings
    env = {**steward_env(zone),
           "SAFEZONE_MINIO_PUBLIC_URL": settings.storage.public_endpoint,
           "SAFEZONE_MINIO_ANCHOR_PASSWORD": zone.broker.anchor_password,
           "SAFEZONE_LOCK_RETENTION_DAYS": str(settings.storage.lock_retention_days),
           "SAFEZONE_NOTEBOOK_NETWORKS": ",".join(settings.storage.notebook_networks),
           "SAFEZONE_NOTEBOOK_EXCLUDED": ",".join(settings.storage.notebook_excluded),
           "SAFEZONE_INSIDE_NETWORKS": ",".join(settings.inside_networks),
           "SAFEZONE_INSIDE_EXCLUDED": ",".join(settings.inside_excluded),
           "PROMETHEUS_MULTIPROC_DIR": str(log_path.parent / f"{log_path.stem}-prometheus"),
           "JUPYTERHUB_API_URL": settings.hub_api_url,
           "JUPYTERHUB_API_TOKEN": settings.service_token,
           "JUPYTERHUB_SERVICE_URL": url,
           **(extra_env or {})}
    process = ManagedProcess.start(log_path.stem, [sys.executable, "-m", "safezone.api.main"],
                                   log_path, env=env, cwd=Path(__file__).resolve().parent.parent)
    try:
        wait_for_http(f"{url}/api/health/ready", 90, process)
    except BaseException:
        process.stop()
        raise
    return process, url


def register_published_dataset(stack: Stack, name: str, body: bytes = b"id,age\n1,40\n"
                               ) -> None:
    attested_dataset(stack.zone, name, body)
    stack.api("admin").post(f"/api/datasets/{name}/publish").raise_for_status()


# the provisioned project's dataset: 1,000 rows, so a count of 120 in an exported table is a
# plausible count (a count can never exceed the rows of the project's data)
DATASET_ROWS = 1000
DATASET_BODY = ("id,age\n" + "".join(f"{i},{20 + i % 60}\n" for i in range(DATASET_ROWS))
                ).encode()


def provision(stack: Stack, member: str = "alice", days_valid: float = 30) -> Provisioned:
    """A project with one published de-identified dataset, a raw dataset and one member."""
    from datetime import timedelta

    project, dataset, raw = unique("proj"), unique("deid-ds"), unique("raw-ds")
    admin = stack.api("admin")
    admin.post("/api/projects", json={"name": project, "title": "test"}).raise_for_status()
    register_published_dataset(stack, dataset, DATASET_BODY)
    admin.post(f"/api/projects/{project}/datasets", json={"dataset": dataset}
               ).raise_for_status()
    admin.post("/api/datasets", json={"name": raw, "classification": "raw"}).raise_for_status()
    stack.minio.root_s3().put_object(Bucket=raw, Key="people.csv",
                                     Body=b"name,rrn\nHong,900101-1234567\n")
    expires = stack.zone.now() + timedelta(days=days_valid)
    admin.post(f"/api/projects/{project}/members/{member}/approve",
               json={"expires_at": expires.isoformat()}).raise_for_status()
    return Provisioned(project, dataset, raw, member)


def issue_grant(stack: Stack, user: str, project: str, server_name: str = "") -> dict:
    """Ask for a grant exactly as the spawner does (its hub token, its endpoint)."""
    response = stack.api("spawner").post(
        "/api/sessions", json={"user": user, "project": project, "server_name": server_name})
    assert response.status_code == 201, response.text
    return response.json()


def notebook_s3(stack: Stack, grant: dict):
    """An S3 client holding exactly the credentials a notebook server receives, used from
    inside the zone's notebook network (a namespace on the bridge, as a sandbox is)."""
    return env_s3(stack.minio, grant["environment"])


def env_s3(minio: MinioHandle, env: dict[str, str]):
    """``session_s3`` of the keys in a notebook server's environment."""
    return session_s3(minio, env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                      env["AWS_SESSION_TOKEN"])


def grant_s3(minio: MinioHandle, grant):
    """``session_s3`` of an issued grant's keys (``grants.IssuedGrant``)."""
    return session_s3(minio, grant.access_key, grant.secret_key, grant.session_token)


def session_s3(minio: MinioHandle, access_key: str, secret_key: str,
               session_token: str | None = None):
    """An S3 client of session keys, used from inside the zone's notebook network: keys
    are refused elsewhere (aws:SourceIp), which would make any denial test pass for that
    reason alone."""
    return InNamespace(minio.s3(access_key, secret_key, session_token), probe_namespace())


_PROBE: list[str] = []


def probe_namespace() -> str:
    """A network namespace on the zone bridge, where the tests stand for a notebook."""
    if not _PROBE:
        _PROBE.append(ZONE_NET.attach()[0])
    return _PROBE[0]


def hub_login(stack: Stack, user: str) -> httpx.Client:
    """A cookie-holding client logged in to the hub with the user's password."""
    return hub_login_at(stack.hub_url, user, stack.passwords[user])


def hub_login_at(hub_url: str, user: str, password: str) -> httpx.Client:
    """The same for any hub (e.g. one in a cluster, through its proxy Service)."""
    client = httpx.Client(base_url=hub_url, timeout=60)
    client.get("/hub/login")
    response = client.post("/hub/login", data={"username": user, "password": password,
                                               "_xsrf": client.cookies.get("_xsrf")})
    assert response.status_code == 302, response.text[:300]
    return client


def browser_session(stack: Stack, user: str) -> httpx.Client:
    """Logged in to the Safezone pages through the hub's OAuth, as a browser would be.

    Requests carry the page cookie and the CSRF header the pages' forms carry.
    """
    return pages_session(hub_login(stack, user), stack.hub_url)


def pages_session(client: httpx.Client, hub_url: str) -> httpx.Client:
    """Turn a client logged in to the hub into one of the Safezone pages (OAuth, cookie,
    CSRF header), based at the control plane's service prefix."""
    from safezone.web.session import COOKIE, csrf_token

    response = client.get("/services/safezone/pages/", follow_redirects=True)
    assert response.status_code in (200, 403), response.text[:300]
    token = client.cookies.get(COOKIE)
    assert token, "the OAuth login set no session cookie"
    client.headers["X-Safezone-CSRF"] = csrf_token(token)
    client.base_url = httpx.URL(f"{hub_url}/services/safezone/")
    return client


def wait_for_checks(client: httpx.Client, request_id: str, timeout: float = 60) -> dict:
    """The request once the background checks have finished with it."""
    seen: dict = {}

    def done() -> bool:
        seen.update(client.get(f"/api/exports/{request_id}").json())
        return seen.get("status") not in {"submitted", "checking"}

    wait_until(done, timeout, 0.1)
    return seen


def submit_and_wait(client: httpx.Client, request_id: str) -> dict:
    """Submit (which returns at once, in ``checking``) and wait for the review to open."""
    response = client.post(f"/api/exports/{request_id}/submit")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "checking"
    return wait_for_checks(client, request_id)


def download(browser: httpx.Client, request_id: str, file_id: int) -> httpx.Response:
    """What the request page does: make a counted link, post its token, get the bytes."""
    link = browser.post(f"api/exports/{request_id}/files/{file_id}/links")
    if link.status_code != 201:
        return link
    return browser.post("api/download", json={"token": link.json()["token"]})


def server_process(user: str, server: str = "") -> tuple[int, dict[str, str]] | None:
    """The pid and environment of a running notebook server's process (read as root from
    /proc, as code in its kernel reads its own)."""
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            raw = environ.read_bytes().decode(errors="replace")
        except OSError:
            continue
        pairs = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
        if pairs.get("JUPYTERHUB_USER") == user and pairs.get(
                "JUPYTERHUB_SERVER_NAME", "") == server and "AWS_ACCESS_KEY_ID" in pairs:
            return int(environ.parent.name), pairs
    return None


def server_environment(user: str, server: str = "") -> dict[str, str] | None:
    found = server_process(user, server)
    return found[1] if found else None


def keys_refused(s3, bucket: str) -> bool:
    """True once MinIO no longer knows a session's keys; a call that times out (a client
    with short timeouts) is "not yet" and is asked again."""
    try:
        s3.get_object(Bucket=bucket, Key="data.parquet")
        return False
    except ClientError as exc:
        return exc.response["Error"]["Code"] == "InvalidAccessKeyId"
    except BotoCoreError:
        return False


def assert_serves_nothing_out(token: httpx.Client, browser: httpx.Client, prefix: str) -> None:
    """A notebook server, through the hub with its user's token (``token``, based at the
    server) and browser cookie (``browser``, based at the hub, the server at ``prefix``):
    the contents API gives no binary, base64 or large content, there are no nbconvert or
    terminal routes, Lab's download/export commands and news are off — and notebooks still
    open and save. Shared by the local zone's and the Kubernetes zone's tests."""
    put = token.put("/api/contents/small.txt", json={"type": "file", "format": "text",
                                                     "content": "region,count\nSeoul,120\n"})
    assert put.status_code in (200, 201), put.text
    assert token.get("/api/contents/small.txt").json()["content"].startswith("region")
    secret = base64.b64encode(bytes(range(256))).decode()
    token.put("/api/contents/blob.dat", json={"type": "file", "format": "base64",
                                              "content": secret}).raise_for_status()
    token.put("/api/contents/big.txt", json={"type": "file", "format": "text",
                                             "content": "x" * (1 << 20) + "y"}
              ).raise_for_status()
    browser.get(f"{prefix}/lab", follow_redirects=True)  # the server's own OAuth cookie
    for client, base in ((token, ""), (browser, prefix)):
        for path in ("/api/contents/blob.dat?content=1&format=base64",
                     "/api/contents/blob.dat?content=1",
                     "/api/contents/blob.dat?content=1&format=text",
                     "/api/contents/big.txt?content=1",
                     "/api/contents/small.txt?content=1&format=base64",
                     "/files/small.txt"):
            refused = client.get(base + path)
            assert refused.status_code == 403, (path, refused.status_code, refused.text[:200])
            assert secret not in refused.text and "xxxx" not in refused.text
    for method, path in (("GET", "/nbconvert/html/t.ipynb?download=true"),
                         ("POST", "/nbconvert/html/t.ipynb"), ("GET", "/api/nbconvert"),
                         ("POST", "/api/terminals"), ("GET", "/terminals/1")):
        assert token.request(method, path).status_code == 404, (method, path)
    notebook = {"type": "notebook", "content": {
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "source": "1+1", "metadata": {},
                   "execution_count": 1, "outputs": []}]}}
    token.put("/api/contents/t.ipynb", json=notebook).raise_for_status()
    opened = token.get("/api/contents/t.ipynb")
    assert opened.status_code == 200 and opened.json()["content"]["cells"][0]["source"] == "1+1"
    assert token.put("/api/contents/t.ipynb", json=notebook).status_code == 200  # saves
    lab = browser.get(f"{prefix}/lab", follow_redirects=True).text
    config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', lab,
                                  re.S).group(1))
    assert {"@jupyterlab/docmanager-extension:download",
            "@jupyterlab/filebrowser-extension:download",
            "@jupyterlab/notebook-extension:export",
            "@jupyterlab/apputils-extension:announcements"} <= set(config["disabledExtensions"])
    assert config["news"]["disabled"] is True
