"""``/metrics`` and the health endpoints on the real stack (MinIO, hub, control plane).

The stack's control plane runs in this process, so its instruments and the de-
identification pipeline's (run here, as the steward's CLI would) share one registry.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from dataclasses import replace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from safezone import projects
from safezone.api.metrics import scrape_registry
from safezone.audit import AuditUnanchored
from safezone.deid.recipe import load_recipe
from safezone.permissions import ADMIN_SCOPE, STEWARD_SCOPE, Identity

from .support import (
    PIPELINE_KEY,
    TINY_RECIPE,
    ThreadedServer,
    browser_session,
    issue_grant,
    notebook_s3,
    provision,
    submit_and_wait,
    unique,
)

pytestmark = pytest.mark.integration
TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,140\nBusan,M,45\nBusan,F,50\n"


@pytest.fixture
def metrics_token(stack):
    """The stack's control plane with a scraper token (put back afterwards)."""
    token, saved = secrets.token_urlsafe(32), stack.zone.settings
    stack.zone.settings = replace(saved, metrics_token=token)
    yield token
    stack.zone.settings = saved


def scrape(stack, token: str) -> dict[tuple[str, tuple], float]:
    response = httpx.get(f"{stack.control_plane.url}/metrics", timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_scrapes_without_the_token_are_refused_and_see_nothing(stack, metrics_token):
    url = f"{stack.control_plane.url}/metrics"
    tries = {
        "none": {},
        "wrong": {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"},
        "hub token": {"Authorization": f"token {stack.tokens['admin']}"},
        "right value, other scheme": {"Authorization": f"token {metrics_token}"},
        "no value": {"Authorization": "Bearer"},
    }
    for what, headers in tries.items():
        response = httpx.get(url, headers=headers, timeout=30)
        assert response.status_code == 401, what
        assert response.headers["www-authenticate"] == "Bearer"
        assert "safezone_" not in response.text and "# HELP" not in response.text, what
    # through the hub's proxy too (the service prefix), and an admin's hub token is no key
    proxied = httpx.get(f"{stack.hub_url}/services/safezone/metrics", timeout=30,
                        headers={"Authorization": f"token {stack.tokens['admin']}"})
    assert proxied.status_code == 401 and "safezone_" not in proxied.text


def test_no_token_configured_means_no_one_scrapes(stack):
    assert stack.zone.settings.metrics_token == ""
    response = httpx.get(f"{stack.control_plane.url}/metrics", timeout=30,
                         headers={"Authorization": "Bearer x"})
    assert response.status_code == 401 and "safezone_" not in response.text


def test_request_latency_is_labelled_by_route_template_never_by_path(stack, metrics_token):
    name = "safezone_http_request_duration_seconds_count"
    before = scrape(stack, metrics_token)
    missing = uuid.uuid4().hex[:16]
    assert stack.api("alice").get("/api/projects").status_code == 200
    assert stack.api("alice").get(f"/api/exports/{missing}").status_code == 404
    stray = f"/nothing-here-{uuid.uuid4().hex}"
    assert httpx.get(stack.control_plane.url + stray, timeout=30).status_code == 404
    text = httpx.get(f"{stack.control_plane.url}/metrics", timeout=30,
                     headers={"Authorization": f"Bearer {metrics_token}"}).text
    after = samples(text)
    assert value(after, name, method="GET", route="/api/projects", status="2xx") == \
        value(before, name, method="GET", route="/api/projects", status="2xx") + 1
    assert value(after, name, method="GET", route="/api/exports/{request_id}",
                 status="4xx") >= 1
    assert value(after, name, method="GET", route="<unmatched>", status="4xx") >= 1
    assert missing not in text and stray not in text  # no ids, no raw paths in labels
    # the access line's request id is on the response
    assert len(stack.api("alice").get("/api/projects").headers["x-request-id"]) == 16


def test_grant_export_and_check_metrics_follow_the_zone(stack, metrics_token):
    setup = provision(stack, member="alice")
    before = scrape(stack, metrics_token)
    # a server of its own: alice's default server may hold a grant of an earlier test,
    # which this one would replace (the count would not move)
    grant = issue_grant(stack, "alice", setup.project, server_name=unique("metrics"))
    during = scrape(stack, metrics_token)
    assert value(during, "safezone_active_grants") == value(before, "safezone_active_grants") + 1

    notebook_s3(stack, grant).put_object(Bucket="outbox", Key=f"{setup.project}/alice/t.csv",
                                         Body=TABLE)
    created = stack.api("alice").post("/api/exports", json={
        "project": setup.project, "title": "results",
        "files": [{"path": "t.csv", "justification": "aggregate table"}]})
    assert created.status_code == 201, created.text
    drafted = scrape(stack, metrics_token)
    state = "safezone_export_requests"
    assert value(drafted, state, state="draft") == value(during, state, state="draft") + 1
    request = submit_and_wait(stack.api("alice"), created.json()["id"])
    assert request["status"] == "in_review"
    checked = scrape(stack, metrics_token)
    assert value(checked, state, state="draft") == value(during, state, state="draft")
    assert value(checked, state, state="in_review") == value(during, state,
                                                             state="in_review") + 1
    count = "safezone_disclosure_check_duration_seconds_count"
    assert value(checked, count, outcome="ok") == value(before, count, outcome="ok") + 1
    assert value(checked, "safezone_disclosure_check_duration_seconds_sum", outcome="ok") > \
        value(before, "safezone_disclosure_check_duration_seconds_sum", outcome="ok")

    ended = stack.api("spawner").delete(f"/api/sessions/{grant['grant_id']}")
    assert ended.status_code == 200, ended.text
    after = scrape(stack, metrics_token)
    assert value(after, "safezone_active_grants") == value(before, "safezone_active_grants")


def test_deid_runs_are_counted_by_outcome(stack, metrics_token):
    from safezone import datasets
    from safezone.deid import pipeline

    runs = "safezone_deid_runs_total"
    before = scrape(stack, metrics_token)
    steward = Identity("steward", "user", frozenset({STEWARD_SCOPE}))
    name = unique("deid-m")
    raw = "raw-" + name.removeprefix("deid-")
    datasets.register_dataset(stack.zone, steward, raw, "raw")
    stack.zone.broker.write_object(raw, "upload.csv", b"id,age\n1,40\n")
    pipeline.run(stack.zone, steward, load_recipe(TINY_RECIPE), raw, "upload.csv", name,
                 PIPELINE_KEY)
    with pytest.raises(Exception, match="raw-"):  # refused: the input is not raw data
        pipeline.run(stack.zone, steward, load_recipe(TINY_RECIPE), name, "data.parquet",
                     unique("deid-n"), PIPELINE_KEY)
    after = scrape(stack, metrics_token)
    assert value(after, runs, outcome="succeeded") == value(before, runs,
                                                            outcome="succeeded") + 1
    assert value(after, runs, outcome="refused") == value(before, runs, outcome="refused") + 1


COUNTING = """
import os, sys
from safezone.api import metrics
metrics.DEID_RUNS.labels("succeeded").inc()
metrics.REQUEST_SECONDS.labels("GET", "/api/projects", "2xx").observe(0.01)
"""


def test_processes_share_counts_through_the_multiprocess_folder(zone, tmp_path):
    """Two processes (uvicorn workers, or the CLI beside the control plane) write into
    PROMETHEUS_MULTIPROC_DIR; one scrape sums them, and the zone's state is read once."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", COUNTING], env=env, timeout=60,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert len(list(folder.glob("*.db"))) >= 2  # one file per process
    found = samples(generate(zone, folder))
    assert value(found, "safezone_deid_runs_total", outcome="succeeded") == 2
    assert value(found, "safezone_http_request_duration_seconds_count", method="GET",
                 route="/api/projects", status="2xx") == 2
    assert value(found, "safezone_active_grants") == 0
    assert value(found, "safezone_export_requests", state="draft") == 0


def generate(zone, folder) -> str:
    from prometheus_client import generate_latest

    return generate_latest(scrape_registry(zone, folder)).decode()


# -- health -------------------------------------------------------------------------------
def test_live_and_ready_on_the_stack(stack):
    for path in ("/api/health", "/api/health/live", "/api/health/ready"):
        response = httpx.get(stack.control_plane.url + path, timeout=30)
        assert response.status_code == 200, (path, response.text)
    assert httpx.get(f"{stack.control_plane.url}/api/health/ready").json() == {"status": "ready"}


def test_ready_turns_503_while_minio_is_away_and_back_after(fragile):
    minio, zone = fragile
    server = ThreadedServer(zone).start()
    try:
        ready = f"{server.url}/api/health/ready"
        assert httpx.get(ready, timeout=30).status_code == 200
        admin = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
        minio.process.stop()
        with pytest.raises(AuditUnanchored):  # committed, but its anchor cannot be written
            projects.create_project(zone, admin, unique("p"))
        assert zone.unanchored
        away = httpx.get(ready, timeout=30)
        assert away.status_code == 503
        reasons = away.json()["reasons"]
        assert any("MinIO" in r for r in reasons) and any("audit" in r for r in reasons)
        assert minio.endpoint not in away.text and minio.root_password not in away.text
        live = httpx.get(f"{server.url}/api/health/live", timeout=30)
        assert live.status_code == 200  # liveness does not ask MinIO: no restart loop
        minio.restart()
        back = httpx.get(ready, timeout=30)
        assert back.status_code == 200, back.text  # the probe re-anchored the head
        assert not zone.unanchored
    finally:
        server.stop()


def test_browser_pages_are_observed_too(stack, metrics_token):
    """A page request through the hub's proxy (service prefix stripped) is labelled by its
    route template as well."""
    browser = browser_session(stack, "alice")
    assert browser.get("pages/").status_code == 200
    found = scrape(stack, metrics_token)
    routes = {dict(labels).get("route") for (name, labels) in found
              if name == "safezone_http_request_duration_seconds_count"}
    assert "/pages/" in routes or "/pages" in routes, sorted(r for r in routes if r)


WORKER_APP = '''
from fastapi import FastAPI
from safezone import logs
from safezone.api.metrics import Observe


def make():
    app = FastAPI()
    app.add_middleware(Observe)

    @app.get("/items/{item}")
    def item(item: str):
        return {"item": item}

    return app
'''


def test_uvicorn_workers_log_json_and_share_request_counts(tmp_path):
    """What safezone.api.main does with several workers: uvicorn's worker processes get the
    JSON logging (log_config) and count into one multiprocess folder."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    from safezone.local.processes import free_port, wait_for_http

    (tmp_path / "worker_app.py").write_text(WORKER_APP)
    folder = tmp_path / "prometheus"
    folder.mkdir()
    port = free_port()
    serve = (f"import uvicorn; from safezone import logs; uvicorn.run('worker_app:make', "
             f"factory=True, workers=2, port={port}, log_level='info', "
             f"log_config=logs.dict_config())")
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-c", serve], cwd=tmp_path, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder),
                                   "PYTHONPATH": str(tmp_path)})
    try:
        wait_for_http(f"http://127.0.0.1:{port}/items/warmup", 60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for i in range(40):
                assert client.get(f"/items/{uuid.uuid4().hex[:8]}{i}").status_code == 200
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))
    found = samples(generate_latest(registry).decode())
    count = value(found, "safezone_http_request_duration_seconds_count", method="GET",
                  route="/items/{item}", status="2xx")
    assert count >= 41  # the warm-up and the 40, whichever worker served them
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()
             if line.strip()]
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert len(access) >= 41 and {line["route"] for line in access} == {"/items/{item}"}
    pids = {line["message"] for line in lines if "Started server process" in line["message"]}
    assert len(pids) == 2  # two workers, both logging JSON
