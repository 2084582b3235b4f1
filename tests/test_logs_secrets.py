"""No secret in any log: a full flow on a zone of its own, then every log it wrote is
searched for every secret it made.

The zone runs as in production: MinIO, the control plane as its own process
(``python -m safezone.api.main``, JSON logs on stderr into its log file), JupyterHub with
configurable-http-proxy (both into the hub's log), and the steward's ``safezone deid``
commands (their stderr kept as logs too). The flow: a steward de-identifies and an
administrator publishes; alice logs in through the hub's OAuth, gets a session grant (the
spawner's call) with MinIO keys, writes to her outbox from the notebook network, submits an
export; a reviewer approves it; alice downloads it through a counted link; a scraper reads
/metrics; wrong tokens and a token in a query string are tried.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from safezone.local.processes import ManagedProcess, free_port
from safezone.local.services import start_hub
from safezone.storage.broker import derived_password
from spawner.demo_auth import hash_password

from .support import (
    TINY_RECIPE,
    ZONE_NET,
    download,
    env_s3,
    fresh_database_url,
    hub_login_at,
    hub_token,
    launch_minio,
    make_zone,
    pages_session,
    start_control_plane_process,
    steward_env,
    unique,
    wait_for_checks,
)

pytestmark = [pytest.mark.integration, pytest.mark.db_independent]
TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,140\nBusan,M,45\nBusan,F,50\n"
USERS = ("admin", "reviewer", "alice", "steward")
MIN_SECRET = 12  # shorter values (a language cookie, "1") are not secrets


def test_no_secret_reaches_any_log(tmp_path, zone_network):
    secret_values: dict[str, str] = {}
    logs: dict[str, Path] = {}
    minio = launch_minio(tmp_path / "minio")
    logs["minio"] = minio.process.log_path
    processes: list[ManagedProcess] = [minio.process]
    try:
        zone, cp_url, hub_url = _start_zone(tmp_path, minio, secret_values, logs, processes)
        _full_flow(tmp_path, zone, minio, cp_url, hub_url, secret_values, logs)
    finally:
        for process in reversed(processes):
            process.stop(timeout=20)

    texts = {name: path.read_text(errors="replace") for name, path in logs.items()
             if path.exists()}
    seen = {what: value for what, value in secret_values.items() if len(value) >= MIN_SECRET}
    assert len(seen) >= 25, sorted(seen)  # every kind below was collected
    leaks = [f"{what} in {name}" for name, text in texts.items()
             for what, value in seen.items() if value in text]
    assert not leaks, leaks

    # the scan saw real logs: the control plane's is JSON lines, access lines included
    plane = [json.loads(line) for line in texts["control-plane"].splitlines() if line.strip()]
    assert len(plane) >= 40, texts["control-plane"][-2000:]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in plane)
    access = [line for line in plane if line["logger"] == "uvicorn.access"]
    routes = {(line["route"], line["status"]) for line in access}
    assert ("/api/sessions", 201) in routes and ("/metrics", 401) in routes, routes
    assert all(len(line["request_id"]) == 16 and line["duration_ms"] >= 0 for line in access)
    assert not any("?" in line["message"] for line in access)  # no query string, ever
    assert len(texts["hub"].splitlines()) >= 40 and "[ConfigProxy]" in texts["hub"]
    sizes = {name: len(text) for name, text in texts.items()}
    assert sizes["control-plane"] > 5_000 and sizes["hub"] > 5_000, sizes
    assert sum(sizes.values()) > 15_000, sizes  # MinIO runs --quiet: its log may be empty


def _start_zone(tmp: Path, minio, secret_values: dict, logs: dict, processes: list):
    """MinIO is up; start the control plane (a process) and the hub (with its proxy)."""
    service_token, spawner_token = secrets.token_hex(24), secrets.token_hex(24)
    proxy_token, metrics_token = secrets.token_hex(32), secrets.token_urlsafe(32)
    hub_port, hub_api_port = free_port(), free_port()
    proxy_api_port = free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    zone = make_zone(minio, fresh_database_url(tmp),
                     hub_api_url=f"http://{ZONE_NET.gateway}:{hub_api_port}/hub/api",
                     service_token=service_token)  # the steward's CLI settings come from it
    storage = zone.settings.storage
    logs["control-plane"] = tmp / "control-plane.log"
    plane, cp_url = start_control_plane_process(zone, logs["control-plane"], {
        "SAFEZONE_METRICS_TOKEN": metrics_token,
        "SAFEZONE_LOG_LEVEL": "INFO",
        "JUPYTERHUB_SERVICE_PREFIX": "/services/safezone/",
        "JUPYTERHUB_SERVICE_NAME": "safezone",
    })
    processes.append(plane)
    ZONE_NET.allow(hub_api_port)

    passwords = {name: secrets.token_urlsafe(12) for name in USERS}
    users_file = tmp / "users.json"
    users_file.write_text(json.dumps({n: hash_password(p) for n, p in passwords.items()}))
    hub_env = {
        "SAFEZONE_MODE": "local", "SAFEZONE_HUB_URL": hub_url,
        "SAFEZONE_HUB_PORT": str(hub_api_port), "SAFEZONE_HUB_IP": ZONE_NET.gateway,
        "SAFEZONE_SANDBOX_BRIDGE": ZONE_NET.bridge, "SAFEZONE_SANDBOX_SUBNET": ZONE_NET.subnet,
        "SAFEZONE_SANDBOX_STATE_DIR": str(tmp / "sandbox"),
        "SAFEZONE_PROXY_API_PORT": str(proxy_api_port),
        "SAFEZONE_CONTROL_PLANE_URL": cp_url,
        "SAFEZONE_SERVICE_TOKEN": service_token, "SAFEZONE_SPAWNER_TOKEN": spawner_token,
        "SAFEZONE_USERS_FILE": str(users_file), "SAFEZONE_ADMINS": "admin",
        "SAFEZONE_REVIEWERS": "reviewer", "SAFEZONE_STEWARDS": "steward",
        "SAFEZONE_WORKSPACE_ROOT": str(tmp / "workspaces"),
        "CONFIGPROXY_AUTH_TOKEN": proxy_token,
    }
    logs["hub"] = tmp / "hub.log"
    processes.append(start_hub(hub_env, tmp / "hub", hub_url, logs["hub"]))

    secret_values.update({
        "minio root password": storage.root_password,
        "issuer password": storage.issuer_password,
        "anchor writer password": derived_password(storage.root_password, "anchor-writer"),
        "released reader password": derived_password(storage.root_password,
                                                     "released-reader"),
        "control-plane service token": service_token, "spawner token": spawner_token,
        "proxy API token": proxy_token, "metrics token": metrics_token,
        **{f"password of {n}": p for n, p in passwords.items()},
    })
    cookie_secret = tmp / "hub" / "jupyterhub_cookie_secret"
    if cookie_secret.exists():
        secret_values["hub cookie secret"] = cookie_secret.read_text().strip()
    zone.passwords = passwords  # type: ignore[attr-defined]
    zone.spawner_token = spawner_token  # type: ignore[attr-defined]
    zone.metrics_token = metrics_token  # type: ignore[attr-defined]
    return zone, cp_url, hub_url


def _full_flow(tmp: Path, zone, minio, cp_url: str, hub_url: str, secret_values: dict,
               logs: dict) -> None:
    passwords = zone.passwords
    tokens = {n: hub_token(hub_url, n, p) for n, p in passwords.items()}
    secret_values.update({f"hub API token of {n}": t for n, t in tokens.items()})

    def api(user: str) -> httpx.Client:
        token = zone.spawner_token if user == "spawner" else tokens[user]
        return httpx.Client(base_url=cp_url, timeout=60,
                            headers={"Authorization": f"token {token}"})

    # the steward de-identifies with the CLI (its stderr is a log as well)
    key = secrets.token_urlsafe(24)
    secret_values["pseudonymisation key"] = key
    (tmp / "key").write_text(key)
    (tmp / "recipe.yaml").write_text(TINY_RECIPE)
    (tmp / "upload.csv").write_bytes(b"id,age\n" + b"".join(
        f"{i},{20 + i % 60}\n".encode() for i in range(1000)))
    dataset = unique("deid-logs")
    raw = "raw-" + dataset.removeprefix("deid-")
    env = {**steward_env(zone), "SAFEZONE_LOG_LEVEL": "INFO"}
    for i, args in enumerate([
            ["deid", "upload", str(tmp / "upload.csv"), "--to", f"{raw}/upload.csv"],
            ["deid", "run", "--recipe", str(tmp / "recipe.yaml"), "--input",
             f"{raw}/upload.csv", "--dataset", dataset, "--key-file", str(tmp / "key")]]):
        done = subprocess.run([sys.executable, "-m", "safezone.cli", *args], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        logs[f"cli-{i}"] = tmp / f"cli-{i}.log"
        logs[f"cli-{i}"].write_text(done.stdout + done.stderr)

    project = unique("logs")
    admin = api("admin")
    admin.post(f"/api/datasets/{dataset}/publish").raise_for_status()
    admin.post("/api/projects", json={"name": project, "title": "logs"}).raise_for_status()
    admin.post(f"/api/projects/{project}/datasets", json={"dataset": dataset}
               ).raise_for_status()
    approve = admin.post(f"/api/projects/{project}/members/alice/approve",
                         json={"expires_at": (zone.now() + timedelta(days=30)).isoformat()})
    assert approve.status_code == 200, approve.text

    # alice logs in to the hub and the pages (OAuth through the proxy)
    browser = pages_session(hub_login_at(hub_url, "alice", passwords["alice"]), hub_url)
    assert browser.get("pages/").status_code == 200
    for cookie in browser.cookies.jar:
        secret_values[f"cookie {cookie.name}"] = cookie.value or ""
    secret_values["CSRF value"] = browser.headers["X-Safezone-CSRF"]

    # the spawner's grant: session keys, used from the notebook network
    granted = api("spawner").post("/api/sessions", json={"user": "alice", "project": project,
                                                         "server_name": ""})
    assert granted.status_code == 201, granted.text
    grant = granted.json()
    grant_env = grant["environment"]
    secret_values["session access key"] = grant_env["AWS_ACCESS_KEY_ID"]
    secret_values["session secret key"] = grant_env["AWS_SECRET_ACCESS_KEY"]
    secret_values["session token"] = grant_env["AWS_SESSION_TOKEN"]
    s3 = env_s3(minio, grant_env)
    s3.get_object(Bucket=dataset, Key="data.parquet")["Body"].read()
    s3.put_object(Bucket="outbox", Key=f"{project}/alice/counts.csv", Body=TABLE)

    # export: submit, checks, approval, release, a counted download
    created = api("alice").post("/api/exports", json={
        "project": project, "title": "results",
        "files": [{"path": "counts.csv", "justification": "aggregate table"}]})
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert api("alice").post(f"/api/exports/{request_id}/submit").status_code == 202
    request = wait_for_checks(api("alice"), request_id, timeout=120)
    assert request["status"] == "in_review", request
    for f in request["files"]:
        vote = api("reviewer").post(f"/api/exports/{request_id}/votes", json={
            "file_id": f["id"], "decision": "approve", "comment": "", "override_reason": ""})
        assert vote.status_code == 200, vote.text
    assert api("alice").get(f"/api/exports/{request_id}").json()["status"] == "released"
    file_id = request["files"][0]["id"]
    link = browser.post(f"api/exports/{request_id}/files/{file_id}/links")
    assert link.status_code == 201, link.text
    secret_values["download link token"] = link.json()["token"]
    fetched = browser.post("api/download", json={"token": link.json()["token"]})
    assert fetched.status_code == 200 and fetched.content.lstrip(b"\xef\xbb\xbf") == TABLE
    assert download(browser, request_id, file_id).status_code == 200

    # a scraper, a wrong token, and a token where none belongs (a query string)
    scraped = httpx.get(f"{cp_url}/metrics", timeout=30,
                        headers={"Authorization": f"Bearer {zone.metrics_token}"})
    assert scraped.status_code == 200 and "safezone_active_grants 1.0" in scraped.text
    assert httpx.get(f"{cp_url}/metrics", timeout=30).status_code == 401
    wrong = secrets.token_hex(16)
    secret_values["a wrong token"] = wrong
    assert httpx.get(f"{cp_url}/api/me", timeout=30,
                     headers={"Authorization": f"token {wrong}"}).status_code == 401
    stray = secrets.token_urlsafe(24)
    secret_values["a token in a query string"] = stray
    httpx.get(f"{cp_url}/api/projects?token={stray}", timeout=30)
    httpx.get(f"{hub_url}/hub/api/user?token={stray}", timeout=30)

    ended = api("spawner").delete(f"/api/sessions/{grant['grant_id']}")
    assert ended.status_code == 200, ended.text
    time.sleep(0.5)  # the last access lines reach the files


# -- the formatter and the redaction filter, on their own ---------------------------------
def test_lines_are_json_and_credentials_are_redacted():
    import io
    import logging

    from safezone.logs import json_handler

    stream = io.StringIO()
    logger = logging.getLogger("safezone.test-redaction")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(json_handler(stream))
    key, hub = secrets.token_urlsafe(30), secrets.token_hex(16)
    try:
        logger.info('said "%s" with password=%s and Authorization: Bearer %s, hub %s',
                    "a quote", "hunter2-long", key, hub)
        logger.info("project %s, dataset %s, route %s", "logs-1a2b3c4d",
                    "deid-health-2024-regional", "/api/exports/{request_id}")
    finally:
        logger.handlers.clear()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert {"time", "level", "logger", "message"} <= first.keys()
    text = stream.getvalue()
    assert key not in text and hub not in text and "hunter2-long" not in text
    assert 'said "a quote"' in first["message"] and "[redacted]" in first["message"]
    # names, routes and ids stay readable
    assert second["message"] == ("project logs-1a2b3c4d, dataset deid-health-2024-regional, "
                                 "route /api/exports/{request_id}")


def test_access_lines_carry_the_route_never_the_query():
    import logging

    from safezone.logs import ACCESS, AccessFields

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("10.0.0.1:5", "GET", "/oauth_callback?code=abc&state=x", "1.1",
                                302), None)
    ACCESS.set({"request_id": "0123456789abcdef", "route": "/oauth_callback",
                "duration_ms": 3.5})
    assert AccessFields().filter(record)
    assert record.getMessage() == "GET /oauth_callback 302"
    assert (record.route, record.status, record.request_id) == ("/oauth_callback", 302,
                                                                "0123456789abcdef")
    assert "code=" not in str(record.__dict__)
